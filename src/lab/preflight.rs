//! Checks before the lab touches anything: root, the tools it runs, and
//! addresses that would collide with the machine's own.
//!
//! Every problem is reported at once with what to do (the Debian package to
//! install, the address to change), as the inventory validation does. The
//! decisions are pure functions; only [`check`] looks at the machine.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::cmd::Cmd;
use super::topology::HostInit;
use crate::inventory::Announce::Bgp;
use crate::inventory::{Inventory, service_label};
use crate::util::programs::which;

/// The programs the lab runs, with the Debian package providing each.
/// `nft` is not run by the lab itself but by what is tested in it (the
/// nftables data plane and ARP suppression), so a lab without it would only
/// fail later and more obscurely.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("mount", "mount"),
];

/// What the lab's router (`lab.router`) runs besides [`TOOLS`]: BIRD,
/// its client for `lab status`, and `sysctl` to make it forward.
const ROUTER_TOOLS: &[(&str, &str)] =
    &[("bird", "bird2"), ("birdc", "bird2"), ("sysctl", "procps")];

/// What systemd hosts (`lab up --init systemd`) run besides [`TOOLS`]:
/// the container, and the builder of its root file system (needed only
/// until the cache holds one, but checked up front all the same: a cache
/// can be removed, and a missing tool found half-way helps nobody).
const SYSTEMD_TOOLS: &[(&str, &str)] =
    &[("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap")];

/// The absolute paths of the tools the lab runs, found by [`check`].
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// `sshd`; it must be started by absolute path (it re-executes itself
    /// for every connection).
    pub sshd: PathBuf,
    /// The root file system systemd hosts boot, once it is known to be
    /// there (`rootfs::ensure`).
    pub rootfs: Option<PathBuf>,
    /// `bird`, when the lab has a router.
    pub bird: Option<PathBuf>,
}

/// Refuse to build a lab on this machine unless it can work.
///
/// # Errors
/// One error listing every problem: not root, missing tools (with the
/// `apt-get install` line), inventory addresses already on the machine.
pub fn check(inv: &Inventory, init: HostInit) -> anyhow::Result<Tools> {
    let mut problems = Vec::new();
    if !rustix::process::geteuid().is_root() {
        problems.push(
            "the lab needs root (network namespaces, mounts, sshd) — run it \
             with sudo or as root"
                .to_owned(),
        );
    }
    let mut missing = missing_tools(TOOLS, |t| which(t).is_some());
    if init == HostInit::Systemd {
        missing.extend(missing_tools(SYSTEMD_TOOLS, |t| which(t).is_some()));
    }
    let router = inv.lab.as_ref().is_some_and(|l| l.router.is_some());
    if router {
        missing.extend(missing_tools(ROUTER_TOOLS, |t| which(t).is_some()));
    }
    if !missing.is_empty() {
        problems.push(missing_message(&missing));
    }
    match machine_addresses() {
        Ok(on_machine) => {
            problems.extend(collisions(&inventory_addresses(inv), &on_machine));
        }
        Err(e) => {
            problems.push(format!("cannot list this machine's addresses: {e}"))
        }
    }
    if !problems.is_empty() {
        let mut msg = String::from("cannot build the lab:");
        for p in &problems {
            let _ = write!(msg, "\n  - {p}");
        }
        anyhow::bail!(msg);
    }
    let sshd = which("sshd").expect("checked above");
    let bird = router.then(|| which("bird")).flatten();
    Ok(Tools { sshd, rootfs: None, bird })
}

/// The tools of `wanted` that `found` does not find, with their packages.
fn missing_tools(
    wanted: &[(&'static str, &'static str)],
    found: impl Fn(&str) -> bool,
) -> Vec<(&'static str, &'static str)> {
    wanted.iter().copied().filter(|(tool, _)| !found(tool)).collect()
}

fn missing_message(missing: &[(&str, &str)]) -> String {
    let tools: Vec<_> = missing.iter().map(|(t, _)| *t).collect();
    let packages: BTreeSet<_> = missing.iter().map(|(_, p)| *p).collect();
    format!(
        "missing {} — install with `apt-get install {}`",
        tools.join(", "),
        packages.into_iter().collect::<Vec<_>>().join(" ")
    )
}

/// Every address the lab would put on an interface: the hosts', the lab's
/// extra hosts' (the router's two legs too) and the VIPs, each with where
/// it comes from.
fn inventory_addresses(inv: &Inventory) -> Vec<(IpAddr, String)> {
    let mut out = Vec::new();
    for d in &inv.directors {
        out.push((d.address.addr, format!("director {}", d.name)));
    }
    for r in &inv.real_servers {
        out.push((r.address.addr, format!("real server {}", r.name)));
    }
    if let Some(lab) = &inv.lab {
        out.push((lab.controller.addr, "lab.controller".into()));
        out.push((lab.client.addr, "lab.client".into()));
        if let Some(r) = &lab.router {
            out.push((r.address.addr, "lab.router.address".into()));
            out.push((r.client_side.addr, "lab.router.client_side".into()));
        }
    }
    for vi in &inv.vrrp_instances {
        for va in &vi.virtual_addresses {
            out.push((va.address.addr, format!("VIP of {}", vi.name)));
        }
    }
    for vs in inv.virtual_services.iter().filter(|vs| vs.announce == Bgp) {
        if !out.iter().any(|(a, _)| *a == vs.vip) {
            out.push((vs.vip, format!("VIP of {}", service_label(vs))));
        }
    }
    out
}

/// The inventory addresses that are also on one of the machine's own
/// interfaces. Inside a namespace they would work, but a lab that shares an
/// address with the machine makes every `ping` and `ssh` ambiguous to the
/// person reading it, and hints the inventory describes the real network.
fn collisions(
    wanted: &[(IpAddr, String)],
    on_machine: &[(IpAddr, String)],
) -> Vec<String> {
    wanted
        .iter()
        .filter_map(|(addr, what)| {
            let (_, ifname) = on_machine.iter().find(|(a, _)| a == addr)?;
            Some(format!(
                "{what} has address {addr}, which this machine already has on \
                 {ifname} — give the lab addresses of its own (e.g. from \
                 10.0.0.0/8) in the inventory"
            ))
        })
        .collect()
}

/// `ip -j addr show` in the machine's own namespace, as (address, ifname).
fn machine_addresses() -> anyhow::Result<Vec<(IpAddr, String)>> {
    let json = Cmd::new("ip").args(["-j", "addr", "show"]).stdout()?;
    parse_ip_addr_json(&json)
}

fn parse_ip_addr_json(json: &str) -> anyhow::Result<Vec<(IpAddr, String)>> {
    #[derive(Deserialize)]
    struct Link {
        ifname: String,
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    #[derive(Deserialize)]
    struct Addr {
        local: Option<IpAddr>,
    }
    let links: Vec<Link> = serde_json::from_str(json)?;
    Ok(links
        .into_iter()
        .flat_map(|l| {
            let ifname = l.ifname;
            l.addr_info
                .into_iter()
                .filter_map(move |a| Some((a.local?, ifname.clone())))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_packages_once_each() {
        let missing = missing_tools(TOOLS, |t| {
            !["ssh", "ssh-keygen", "nft"].contains(&t)
        });
        assert_eq!(
            missing_message(&missing),
            "missing nft, ssh, ssh-keygen — install with `apt-get install \
             nftables openssh-client`"
        );
        assert!(missing_tools(TOOLS, |_| true).is_empty());
    }

    #[test]
    fn finds_collisions_with_machine_addresses() {
        let json = r#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifname":"eth0","addr_info":[{"local":"192.168.1.11","prefixlen":24},{"local":"fe80::1"}]},
            {"ifname":"dummy0"}]"#;
        let machine = parse_ip_addr_json(json).unwrap();
        assert_eq!(machine.len(), 3);
        let wanted = [
            (
                "192.168.1.11".parse().unwrap(),
                "director keepalived01".to_owned(),
            ),
            (
                "192.168.1.12".parse().unwrap(),
                "director keepalived02".to_owned(),
            ),
        ];
        let found = collisions(&wanted, &machine);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(
                "director keepalived01 has address 192.168.1.11, which this \
                 machine already has on eth0"
            ),
            "{}",
            found[0]
        );
    }
}
