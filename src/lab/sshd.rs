//! SSH in the lab: a real sshd on every managed host, and a controller set
//! up to reach them with strict host-key checking and no prompts.
//!
//! Keys are made once per lab with `ssh-keygen` and kept in the state
//! directory: one client key (authorised for root on every host) and one
//! host key per host. Inside a host everything sshd reads sits in
//! [`HOST_SSH_DIR`], including `authorized_keys`: keeping it out of `/root`
//! leaves `/root` as empty as on a fresh host, for the tool under test to
//! fill. The controller gets `/root/.ssh/{config,known_hosts,id_ed25519}`
//! so that `ssh rs01` just works there.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::cmd::Cmd;
use super::holder;
use super::state::{LabState, Layout, ProcKind, ProcRecord};
use super::topology::{HostInit, LabHost, Role};
use crate::util::files;

/// Inside a host: sshd's configuration, host key and authorised keys.
pub(crate) const HOST_SSH_DIR: &str = "/etc/ssh/lbdeploy-lab";

/// Create an ed25519 key pair at `path` (and `path.pub`) unless it exists.
///
/// # Errors
/// When `ssh-keygen` fails.
pub(crate) fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .run()?;
    Ok(())
}

/// Where `host`'s host key is kept in the state directory.
pub(crate) fn host_key(layout: &Layout, host: &LabHost) -> std::path::PathBuf {
    layout.host_dir(host).join("ssh_host_ed25519_key")
}

/// Put sshd's files into every managed host and the client setup into the
/// controller. Keys must exist ([`keygen`]), namespace hosts' holders run
/// and systemd hosts not be booted yet.
///
/// # Errors
/// When a key cannot be read or a file cannot be written into a host.
pub fn install(layout: &Layout, state: &LabState) -> anyhow::Result<()> {
    let client_pub = public_key(&layout.client_key())?;
    let authorized = format!("{client_pub}\n");
    let managed: Vec<_> =
        state.topology.hosts.iter().filter(|h| h.role.has_sshd()).collect();
    let mut host_keys = Vec::new();
    for &h in &managed {
        // A systemd host gets them in its own layer before it boots.
        let root = match h.init {
            HostInit::Namespace => holder::path_in(state.holder(&h.name)?, "/"),
            HostInit::Systemd => layout.upper(h),
        };
        let key = host_key(layout, h);
        let dir = HOST_SSH_DIR.trim_start_matches('/');
        let private = std::fs::read(&key)?;
        let config = sshd_config(h);
        let files = [
            ("ssh_host_ed25519_key", private.as_slice(), 0o600),
            ("sshd_config", config.as_bytes(), 0o644),
            ("authorized_keys", authorized.as_bytes(), 0o600),
        ];
        for (name, contents, mode) in files {
            let path = root.join(dir).join(name);
            files::write_atomic(&path, contents, mode).with_context(|| {
                format!("writing {HOST_SSH_DIR}/{name} in host {}", h.name)
            })?;
        }
        host_keys.push((h, public_key(&key)?));
    }
    for h in state.topology.hosts.iter().filter(|h| h.role == Role::Controller)
    {
        let holder = state.holder(&h.name)?;
        let private = std::fs::read(layout.client_key())?;
        let files = [
            ("id_ed25519", private, 0o600),
            ("id_ed25519.pub", authorized.clone().into_bytes(), 0o644),
            (
                "config",
                client_config(managed.iter().copied()).into_bytes(),
                0o600,
            ),
            (
                "known_hosts",
                known_hosts(host_keys.iter().cloned()).into_bytes(),
                0o644,
            ),
        ];
        for (name, contents, mode) in files {
            holder::install(
                holder,
                &format!("/root/.ssh/{name}"),
                &contents,
                mode,
            )?;
        }
        std::fs::set_permissions(
            holder::path_in(holder, "/root/.ssh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
    }
    Ok(())
}

/// Start `host`'s sshd (at `sshd`, an absolute path) in the foreground of
/// its own process, inside the host held by `holder`.
///
/// # Errors
/// When it cannot be started.
pub fn start(
    host: &LabHost,
    holder: i32,
    sshd: &Path,
    log: &Path,
) -> anyhow::Result<ProcRecord> {
    let sshd = sshd.to_string_lossy();
    let config = format!("{HOST_SSH_DIR}/sshd_config");
    let args = [sshd.as_ref(), "-D", "-e", "-f", &config];
    holder::spawn_in(host, holder, ProcKind::Sshd, &args, log)
}

/// The public half of the key at `path`, one line.
///
/// # Errors
/// When `path.pub` cannot be read.
pub(crate) fn public_key(path: &Path) -> anyhow::Result<String> {
    let pub_path = path.with_extension("pub");
    let text = std::fs::read_to_string(&pub_path)
        .with_context(|| format!("reading {}", pub_path.display()))?;
    Ok(text.trim().to_owned())
}

/// The sshd configuration of `host`.
///
/// sshd is started with `-D -e` and tracked by the PID the lab recorded,
/// so no pid file; no PAM, since the lab has no PAM stack of its own; keys
/// only. It listens only on the host's inventory address.
pub(crate) fn sshd_config(host: &LabHost) -> String {
    format!(
        "# Written by `lbdeploy lab up` for lab host {name}.\n\
         ListenAddress {listen}\n\
         HostKey {dir}/ssh_host_ed25519_key\n\
         PidFile none\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         UseDNS no\n\
         Subsystem sftp internal-sftp\n",
        name = host.name,
        listen = listen_address(host),
        dir = HOST_SSH_DIR,
    )
}

/// `ADDR:PORT` as sshd's `ListenAddress` and ssh's known_hosts want it
/// (`[v6]:port`).
fn listen_address(host: &LabHost) -> String {
    std::net::SocketAddr::new(host.address.addr, host.ssh_port).to_string()
}

/// The controller's `~/.ssh/config`: every managed host by inventory name.
pub(crate) fn client_config<'a>(
    hosts: impl IntoIterator<Item = &'a LabHost>,
) -> String {
    let mut s = String::from(
        "# Written by `lbdeploy lab up`: every inventory host by name.\n",
    );
    for h in hosts {
        let _ = write!(
            s,
            "\nHost {}\n    HostName {}\n    Port {}\n",
            h.name, h.address.addr, h.ssh_port
        );
    }
    s.push_str(
        "\nHost *\n\
         \x20   User root\n\
         \x20   IdentityFile /root/.ssh/id_ed25519\n\
         \x20   UserKnownHostsFile /root/.ssh/known_hosts\n\
         \x20   StrictHostKeyChecking yes\n\
         \x20   BatchMode yes\n\
         \x20   ConnectTimeout 5\n",
    );
    s
}

/// The controller's `known_hosts`: each host's key under its name and its
/// address, so `ssh rs01` and `ssh root@192.168.1.21` both check strictly.
pub fn known_hosts<'a>(
    hosts: impl IntoIterator<Item = (&'a LabHost, String)>,
) -> String {
    hosts
        .into_iter()
        .map(|(h, key)| {
            let names = if h.ssh_port == 22 {
                format!("{},{}", h.name, h.address.addr)
            } else {
                format!(
                    "[{}]:{p},[{}]:{p}",
                    h.name,
                    h.address.addr,
                    p = h.ssh_port
                )
            };
            // Drop the key's comment: known_hosts lines are `names type key`.
            let key: Vec<_> = key.split_whitespace().take(2).collect();
            format!("{names} {}\n", key.join(" "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::Role;

    fn host(name: &str, addr: &str, port: u16) -> LabHost {
        LabHost {
            name: name.into(),
            role: Role::Director,
            address: addr.parse().unwrap(),
            interface: "eth0".into(),
            ssh_port: port,
            http_ports: vec![],
            init: crate::lab::topology::HostInit::Namespace,
            netns: format!("lbd-x-{name}"),
            switch_port: "p0".into(),
            uplink: crate::lab::topology::Uplink::Switch,
            routes: Vec::new(),
        }
    }

    #[test]
    fn sshd_listens_only_on_the_host_address() {
        let c = sshd_config(&host("k1", "192.168.1.11/24", 22));
        assert!(c.contains("ListenAddress 192.168.1.11:22\n"), "{c}");
        assert!(c.contains("PidFile none\n") && c.contains("UsePAM no\n"));
        assert!(c.contains(
            "AuthorizedKeysFile /etc/ssh/lbdeploy-lab/authorized_keys\n"
        ));
        let c = sshd_config(&host("k1", "fd00::11/64", 2222));
        assert!(c.contains("ListenAddress [fd00::11]:2222\n"), "{c}");
    }

    #[test]
    fn client_config_names_every_host_and_is_strict() {
        let hs = [
            host("k1", "192.168.1.11/24", 22),
            host("rs1", "192.168.1.21/24", 2222),
        ];
        let c = client_config(&hs);
        assert!(
            c.contains("\nHost k1\n    HostName 192.168.1.11\n    Port 22\n"),
            "{c}"
        );
        assert!(c.contains(
            "\nHost rs1\n    HostName 192.168.1.21\n    Port 2222\n"
        ));
        assert!(c.contains("    StrictHostKeyChecking yes\n"));
    }

    #[test]
    fn known_hosts_lists_name_and_address() {
        let hs = [
            host("k1", "192.168.1.11/24", 22),
            host("rs1", "192.168.1.21/24", 2222),
        ];
        let kh = known_hosts(
            hs.iter()
                .map(|h| (h, "ssh-ed25519 AAAAkey lbdeploy-lab".to_owned())),
        );
        assert_eq!(
            kh,
            "k1,192.168.1.11 ssh-ed25519 AAAAkey\n\
             [rs1]:2222,[192.168.1.21]:2222 ssh-ed25519 AAAAkey\n"
        );
    }
}
