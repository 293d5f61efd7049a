//! Where and as whom to reach an inventory host: its `ssh:` overrides over
//! the inventory's `ssh:` defaults.

use std::path::PathBuf;

use crate::inventory::{HostSsh, Inventory, KnownHosts, SshDefaults};

/// One host's SSH destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The inventory name, for messages.
    pub name: String,
    /// What `ssh` connects to: `ssh.host`, else the host's address.
    pub destination: String,
    /// Remote user.
    pub user: String,
    /// Remote port.
    pub port: u16,
    /// Private key; `~/.ssh/config` and the agent decide when absent.
    pub identity_file: Option<PathBuf>,
    /// Strict or accept-new.
    pub known_hosts: KnownHosts,
    /// A known_hosts file instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
}

impl Target {
    /// The target of inventory host `name`, or `None` when there is no such
    /// director or real server.
    pub fn of(inv: &Inventory, name: &str) -> Option<Self> {
        let (address, ssh) = inv
            .directors
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.address.addr, d.ssh.as_ref()))
            .or_else(|| {
                inv.real_servers
                    .iter()
                    .find(|r| r.name == name)
                    .map(|r| (r.address.addr, r.ssh.as_ref()))
            })?;
        Some(resolve(name, &address.to_string(), &inv.ssh, ssh))
    }

    /// `user@destination` (with the port when not 22), for messages.
    pub fn display(&self) -> String {
        if self.port == 22 {
            format!("{}@{}", self.user, self.destination)
        } else {
            format!("{}@{}:{}", self.user, self.destination, self.port)
        }
    }
}

fn resolve(
    name: &str,
    address: &str,
    defaults: &SshDefaults,
    host: Option<&HostSsh>,
) -> Target {
    let host = host.cloned().unwrap_or_default();
    Target {
        name: name.to_owned(),
        destination: host.host.unwrap_or_else(|| address.to_owned()),
        user: host.user.unwrap_or_else(|| defaults.user.clone()),
        port: host.port.unwrap_or(defaults.port).get() as u16,
        identity_file: host
            .identity_file
            .or_else(|| defaults.identity_file.clone()),
        known_hosts: host.known_hosts.unwrap_or(defaults.known_hosts),
        known_hosts_file: defaults.known_hosts_file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(extra: &str) -> Inventory {
        let text = format!(
            "cluster: t
ssh: {{ user: deploy, port: 2222 }}
directors:
  - {{ name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100{extra} }}
vrrp_instances:
  - {{ name: VI_1, virtual_router_id: 1, virtual_addresses: [{{ address: 10.0.0.100/24 }}] }}
"
        );
        serde_yaml::from_str(&text).unwrap()
    }

    #[test]
    fn defaults_apply_and_address_is_the_destination() {
        let t = Target::of(&inventory(""), "d1").unwrap();
        assert_eq!(t.destination, "10.0.0.1");
        assert_eq!((t.user.as_str(), t.port), ("deploy", 2222));
        assert_eq!(t.display(), "deploy@10.0.0.1:2222");
    }

    #[test]
    fn host_overrides_win() {
        let inv = inventory(", ssh: { host: mgmt-d1, user: root, port: 22 }");
        let t = Target::of(&inv, "d1").unwrap();
        assert_eq!(t.display(), "root@mgmt-d1");
    }

    #[test]
    fn unknown_host_is_none() {
        assert!(Target::of(&inventory(""), "nope").is_none());
    }
}
