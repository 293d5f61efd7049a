//! Where and as whom to reach an inventory host: its `ssh:` overrides over
//! the inventory's `ssh:` defaults.

use std::path::PathBuf;

use crate::inventory::{Become, HostSsh, Inventory, KnownHosts, SshDefaults};

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
    /// How `user` becomes root for every command (see `transport::remote`).
    pub become_: Become,
    /// The controller's environment variable holding the sudo password;
    /// only with `become_: Sudo`.
    pub become_password_env: Option<String>,
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
    let become_ = host.become_.unwrap_or(defaults.become_);
    let become_password_env = match become_ {
        Become::None => None,
        Become::Sudo => host
            .become_password_env
            .or_else(|| defaults.become_password_env.clone()),
    };
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
        become_,
        become_password_env,
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
    fn become_falls_back_to_the_default_and_a_host_may_opt_out() {
        let sudo = |host: &str| {
            let mut inv = inventory(host);
            inv.ssh.become_ = Become::Sudo;
            inv.ssh.become_password_env = Some("PW".into());
            Target::of(&inv, "d1").unwrap()
        };
        let t = sudo("");
        assert_eq!(t.become_, Become::Sudo);
        assert_eq!(t.become_password_env.as_deref(), Some("PW"));
        let t = sudo(", ssh: { become_password_env: D1_PW }");
        assert_eq!(t.become_password_env.as_deref(), Some("D1_PW"));
        let t = sudo(", ssh: { become: none, become_password_env: D1_PW }");
        assert_eq!((t.become_, t.become_password_env), (Become::None, None));
        let t = Target::of(&inventory(""), "d1").unwrap();
        assert_eq!(t.become_, Become::None);
    }

    #[test]
    fn unknown_host_is_none() {
        assert!(Target::of(&inventory(""), "nope").is_none());
    }
}
