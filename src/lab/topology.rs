//! What a lab consists of, computed from the inventory alone (pure).
//!
//! A [`Topology`] lists every host the lab builds with its role, address,
//! interface, SSH port and HTTP ports, where its link is plugged and the
//! routes it needs, and the names of the namespaces that hold them.
//!
//! With `lab.router`, a router host joins the hosts' segment and the
//! client moves behind it, on a link of its own:
//!
//! ```text
//!   client ── eth1 router eth0 ── br0 ── directors, real servers, controller
//!   lab.client  client_side  address
//! ```
//!
//! The client's default route and every director's and real server's route
//! to the client's subnet go through the router, so the client's traffic
//! to a VIP takes the router's (multipath) route to the directors and the
//! real servers' direct answers find their way back.
//!
//! Names derive from a short lab id, a hash of the state directory, so two
//! labs with different state directories never share a namespace name and
//! tests can run labs in parallel. The plan is stored in
//! the state file; `up` compares it with the inventory to know whether an
//! existing lab is the one asked for.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inventory::{IfAddr, Inventory, LabRouter, Port};

/// Where labs keep their state unless `--state-dir` says otherwise; one
/// directory per cluster below it, so labs of different clusters coexist.
pub(crate) const DEFAULT_STATE_ROOT: &str = "/var/lib/lbdeploy-lab";

/// Every namespace of a lab starts with this, so `ip netns list` shows at a
/// glance what belongs to lbdeploy.
const NETNS_PREFIX: &str = "lbd";

/// The longest interface name Linux accepts (IFNAMSIZ − 1).
const IFNAME_MAX: usize = 15;

/// The bridge inside the switch namespace.
pub(crate) const BRIDGE: &str = "br0";

/// The router's name in the lab (`lab exec router`); the inventory's
/// hosts may not take it (validation).
pub(crate) const ROUTER: &str = "router";

/// The router's interface on its link to the client (its interface on the
/// hosts' segment is `eth0`, as the other lab hosts').
const ROUTER_CLIENT_SIDE: &str = "eth1";

/// What a lab host is for; decides which daemons it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// An inventory director: sshd.
    Director,
    /// An inventory real server: sshd and the HTTP responder.
    RealServer,
    /// Runs `lbdeploy plan/apply`; has the SSH client setup, no sshd.
    Controller,
    /// Sends traffic to the VIP; no sshd.
    Client,
    /// Routes between the client and the cluster and peers with the
    /// directors over BGP (BIRD); no sshd.
    Router,
}

impl Role {
    /// Whether the host runs its own sshd (the hosts lbdeploy manages).
    pub(crate) fn has_sshd(self) -> bool {
        matches!(self, Role::Director | Role::RealServer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Director => "director",
            Role::RealServer => "real-server",
            Role::Controller => "controller",
            Role::Client => "client",
            Role::Router => "router",
        })
    }
}

/// How a managed lab host runs: what `lab up --init` chooses.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum HostInit {
    /// Namespaces around this machine's own file system: up in
    /// milliseconds, no init system (the agent runs under its supervisor).
    #[default]
    Namespace,
    /// A Debian root file system booting systemd in a container, with its
    /// own network namespace each boot: what real hosts are, reboots
    /// included (see `machine`).
    Systemd,
}

/// One host of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LabHost {
    /// The inventory name; also the host's `hostname`.
    pub name: String,
    /// What the host is for.
    pub role: Role,
    /// Address and prefix on `interface`.
    pub address: IfAddr,
    /// The interface name inside the host, as the inventory says.
    pub interface: String,
    /// The port sshd listens on (the inventory's, per host or global).
    pub ssh_port: u16,
    /// Ports the HTTP responder answers on (real servers only).
    pub http_ports: Vec<u16>,
    /// How it runs; the hosts without sshd (controller, client, router)
    /// are always [`HostInit::Namespace`].
    #[serde(default)]
    pub init: HostInit,
    /// The host's network namespace; for a systemd host, its machine name
    /// (the container makes a fresh namespace at every boot).
    pub netns: String,
    /// The other end of the host's veth: its port on the bridge, inside
    /// the switch namespace; for a host whose uplink is the router, the
    /// router's interface on their link.
    pub switch_port: String,
    /// Where the other end of its veth is.
    #[serde(default, skip_serializing_if = "Uplink::is_switch")]
    pub uplink: Uplink,
    /// Routes beyond its own subnet, each through a gateway on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<LabRoute>,
}

/// Where a host's veth pair ends on the other side.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Uplink {
    /// A port of the lab's bridge: the hosts' segment.
    #[default]
    Switch,
    /// The router, as a link of two: the client behind `lab.router`.
    Router {
        /// The router's address on the link (`lab.router.client_side`).
        address: IfAddr,
    },
}

impl Uplink {
    /// Whether the host is on the bridge (the default, left out of the
    /// state file so labs without a router record what they always did).
    pub fn is_switch(&self) -> bool {
        *self == Uplink::Switch
    }
}

/// A route a lab host needs beyond its own subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LabRoute {
    /// The destination subnet (its network address); `None` is the
    /// default route.
    pub to: Option<IfAddr>,
    /// The gateway, on the host's own subnet.
    pub via: IpAddr,
}

impl LabRoute {
    /// The destination as `ip route` takes it.
    pub fn destination(&self) -> String {
        self.to.map_or_else(|| "default".to_owned(), |to| to.to_string())
    }

    /// `ip`'s family option for it (`default` alone does not say).
    pub fn family(&self) -> &'static str {
        if self.via.is_ipv6() { "-6" } else { "-4" }
    }
}

/// The whole lab: one switch and its hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Topology {
    /// The cluster name from the inventory.
    pub cluster: String,
    /// Short id derived from the state directory; in every namespace name.
    pub id: String,
    /// The namespace holding the bridge all hosts are plugged into.
    pub switch_netns: String,
    /// Directors, real servers, controller, the router (with
    /// `lab.router`) and the client, in that order: the router's
    /// namespace exists before the client's link to it is made.
    pub hosts: Vec<LabHost>,
}

/// Why an inventory cannot become a lab.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    /// The inventory has no `lab:` section.
    #[error(
        "the inventory has no `lab:` section — add the two extra lab hosts, \
         e.g.\n  lab:\n    controller: 192.168.1.10/24\n    client: \
         192.168.1.100/24"
    )]
    NoLabSection,
    /// A host's uplink is a router the lab does not have.
    #[error(
        "host {0} is plugged into the lab's router, but the lab has none — \
         take the lab down and build it again"
    )]
    NoRouter(String),
}

impl Topology {
    /// The plan for `inv` with its state in `state_dir`.
    ///
    /// Directors and real servers run as `init`.
    ///
    /// # Errors
    /// [`PlanError::NoLabSection`] when the controller and client addresses
    /// are missing.
    pub fn new(
        inv: &Inventory,
        state_dir: &Path,
        init: HostInit,
    ) -> Result<Self, PlanError> {
        let lab = inv.lab.as_ref().ok_or(PlanError::NoLabSection)?;
        let id = lab_id(state_dir);
        let global_port = port(inv.ssh.port);
        let port_of = |ssh: &Option<crate::inventory::HostSsh>| {
            ssh.as_ref().and_then(|s| s.port).map_or(global_port, port)
        };
        let host = |name: &str,
                    role: Role,
                    address,
                    interface: &str,
                    ssh_port| {
            LabHost {
                name: name.to_owned(),
                role,
                address,
                interface: interface.to_owned(),
                ssh_port,
                http_ports: Vec::new(),
                init: if role.has_sshd() { init } else { HostInit::Namespace },
                netns: String::new(),
                switch_port: String::new(),
                uplink: Uplink::Switch,
                routes: Vec::new(),
            }
        };
        // Behind a router, the managed hosts reach the client through it.
        let to_client = lab.router.as_ref().map(|r| LabRoute {
            to: Some(network(r.client_side)),
            via: r.address.addr,
        });
        let mut hosts = Vec::new();
        for d in &inv.directors {
            let (a, i) = (d.address, &d.interface);
            let mut h = host(&d.name, Role::Director, a, i, port_of(&d.ssh));
            h.routes.extend(to_client);
            hosts.push(h);
        }
        for r in &inv.real_servers {
            let (a, i) = (r.address, &r.interface);
            let mut h = host(&r.name, Role::RealServer, a, i, port_of(&r.ssh));
            h.http_ports = http_ports(inv, &r.name);
            h.routes.extend(to_client);
            hosts.push(h);
        }
        // The extra hosts are not managed, so they take the lab's own
        // defaults: interface eth0 and (unused) port 22.
        hosts.push(host(
            "controller",
            Role::Controller,
            lab.controller,
            "eth0",
            22,
        ));
        let mut client = host("client", Role::Client, lab.client, "eth0", 22);
        if let Some(r) = &lab.router {
            hosts.push(host(ROUTER, Role::Router, r.address, "eth0", 22));
            put_behind(&mut client, r);
        }
        hosts.push(client);
        for (i, h) in hosts.iter_mut().enumerate() {
            h.netns = host_netns(&id, i, &h.name);
            h.switch_port = match h.uplink {
                Uplink::Switch => switch_port(i, &h.name),
                Uplink::Router { .. } => ROUTER_CLIENT_SIDE.to_owned(),
            };
        }
        Ok(Self {
            cluster: inv.cluster.clone(),
            switch_netns: format!("{NETNS_PREFIX}-{id}"),
            id,
            hosts,
        })
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The router, when the inventory has `lab.router`.
    pub fn router(&self) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.role == Role::Router)
    }

    /// The namespace where the other end of `host`'s veth goes: the
    /// switch, or the router.
    ///
    /// # Errors
    /// When `host`'s uplink is a router the lab does not have (a state
    /// file edited by hand).
    pub fn upstream(&self, host: &LabHost) -> Result<&str, PlanError> {
        match host.uplink {
            Uplink::Switch => Ok(&self.switch_netns),
            Uplink::Router { .. } => self
                .router()
                .map(|r| r.netns.as_str())
                .ok_or_else(|| PlanError::NoRouter(host.name.clone())),
        }
    }

    /// Every namespace the lab creates, switch first (a systemd host's
    /// are the container's own).
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.switch_netns.as_str()).chain(
            self.hosts
                .iter()
                .filter(|h| h.init == HostInit::Namespace)
                .map(|h| h.netns.as_str()),
        )
    }
}

/// Put the client on a link of its own to `router`, its default route
/// through it.
fn put_behind(client: &mut LabHost, router: &LabRouter) {
    client.uplink = Uplink::Router { address: router.client_side };
    client.routes.push(LabRoute { to: None, via: router.client_side.addr });
}

/// The subnet `a` is in, as its network address and prefix
/// (`10.9.0.100/24` → `10.9.0.0/24`), the form `ip route` requires.
fn network(a: IfAddr) -> IfAddr {
    let addr = match a.addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(a.prefix));
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask.unwrap_or(0)))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(a.prefix));
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask.unwrap_or(0)))
        }
    };
    IfAddr { addr, prefix: a.prefix }
}

/// The ports real server `name` serves in the inventory's virtual services
/// (DR keeps the service port, so this is the real server entry's port);
/// port 80 when no service names it, so every real server answers HTTP.
fn http_ports(inv: &Inventory, name: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = inv
        .virtual_services
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .filter(|rs| rs.host.as_deref() == Some(name))
        .map(|rs| port(rs.port))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        ports.push(80);
    }
    ports
}

fn port(p: Port) -> u16 {
    u16::try_from(p.get()).expect("Port is bounded to 1–65535")
}

/// The default state directory of a cluster's lab.
pub(crate) fn default_state_dir(cluster: &str) -> PathBuf {
    Path::new(DEFAULT_STATE_ROOT).join(safe_component(cluster, "cluster"))
}

/// Six hex digits of a hash of the state directory: short enough for the
/// names below, stable across runs (FNV-1a, not `std`'s randomised hasher),
/// and different for the labs that tests run side by side.
pub(crate) fn lab_id(state_dir: &Path) -> String {
    let h = crate::util::fnv::fnv1a(state_dir.as_os_str().as_encoded_bytes());
    format!("{:06x}", h & 0xff_ffff)
}

/// `lbd-<id>-<host>`: readable in `ip netns list`. Names that are not safe
/// as a file name under /run/netns fall back to the host's position.
fn host_netns(id: &str, index: usize, name: &str) -> String {
    format!(
        "{NETNS_PREFIX}-{id}-{}",
        safe_component(name, &format!("h{index}"))
    )
}

/// The switch-side veth end: `p<index>-<name>`, cut to IFNAMSIZ. It lives
/// only inside the lab's switch namespace (the pair is created there, the
/// other end directly in the host's namespace), so it cannot collide with
/// the machine's interfaces or another lab's; the index keeps it unique
/// within the lab when names share a prefix.
fn switch_port(index: usize, name: &str) -> String {
    let mut s = format!("p{index}-{name}");
    if s.len() > IFNAME_MAX || s.contains(['/', ' ', ':']) {
        s = format!("p{index}");
    }
    s
}

/// `name` when it is a harmless single path component, else `fallback`.
fn safe_component(name: &str, fallback: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok { name.to_owned() } else { fallback.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_id_is_stable_and_differs_per_state_dir() {
        let a = lab_id(Path::new("/tmp/a"));
        assert_eq!(a, lab_id(Path::new("/tmp/a")));
        assert_ne!(a, lab_id(Path::new("/tmp/b")));
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn namespace_names_are_readable_and_safe() {
        assert_eq!(host_netns("abc123", 0, "rs01"), "lbd-abc123-rs01");
        assert_eq!(host_netns("abc123", 3, "a/b"), "lbd-abc123-h3");
        assert_eq!(host_netns("abc123", 4, ".."), "lbd-abc123-h4");
    }

    #[test]
    fn switch_ports_fit_ifnamsiz() {
        assert_eq!(switch_port(0, "rs01"), "p0-rs01");
        assert_eq!(switch_port(12, "keepalived01"), "p12");
        for i in 0..200 {
            assert!(switch_port(i, "x".repeat(40).as_str()).len() <= 15);
        }
    }

    #[test]
    fn default_state_dir_is_per_cluster() {
        assert_eq!(
            default_state_dir("lvs-dr-demo"),
            Path::new("/var/lib/lbdeploy-lab/lvs-dr-demo")
        );
        assert_eq!(
            default_state_dir("../x"),
            Path::new("/var/lib/lbdeploy-lab/cluster")
        );
    }

    #[test]
    fn example_inventory_plans_six_hosts() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yml");
        let inv = crate::inventory::load(&path, &crate::inventory::System)
            .unwrap()
            .inventory;
        let plan =
            Topology::new(&inv, Path::new("/tmp/x"), HostInit::Namespace)
                .unwrap();
        let names: Vec<_> =
            plan.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "keepalived01",
                "keepalived02",
                "rs01",
                "rs02",
                "controller",
                "client"
            ]
        );
        let rs01 = plan.host("rs01").unwrap();
        assert_eq!(rs01.role, Role::RealServer);
        assert_eq!(rs01.http_ports, [80]);
        assert_eq!(rs01.address.to_string(), "192.168.1.21/24");
        assert!(plan.host("keepalived01").unwrap().http_ports.is_empty());
        assert_eq!(plan.namespaces().count(), 7);
        let booted =
            Topology::new(&inv, Path::new("/tmp/x"), HostInit::Systemd)
                .unwrap();
        let inits: Vec<_> = booted.hosts.iter().map(|h| h.init).collect();
        let (s, n) = (HostInit::Systemd, HostInit::Namespace);
        assert_eq!(inits, [s, s, s, s, n, n]);
        assert_eq!(
            booted.namespaces().count(),
            3,
            "switch, controller, client"
        );
        assert!(plan.hosts.iter().all(|h| h.uplink.is_switch()));
        assert!(plan.hosts.iter().all(|h| h.routes.is_empty()));
        assert!(plan.router().is_none());
        let mut inv = inv;
        inv.lab = None;
        assert!(
            Topology::new(&inv, Path::new("/tmp/x"), HostInit::Namespace)
                .is_err()
        );
    }

    #[test]
    fn a_router_puts_the_client_behind_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("inventory.bgp.example.yml");
        let inv = crate::inventory::load(&path, &crate::inventory::System)
            .unwrap()
            .inventory;
        let plan = Topology::new(&inv, Path::new("/tmp/x"), HostInit::Systemd)
            .unwrap();
        let names: Vec<_> =
            plan.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "d1",
                "d2",
                "d3",
                "rs01",
                "rs02",
                "controller",
                "router",
                "client"
            ]
        );
        let router = plan.router().unwrap();
        assert_eq!(router.role, Role::Router);
        assert_eq!(router.init, HostInit::Namespace);
        assert_eq!(router.address.to_string(), "192.168.1.1/24");
        assert_eq!(plan.upstream(router).unwrap(), plan.switch_netns);
        let client = plan.host("client").unwrap();
        let side = "10.9.0.1/24".parse().unwrap();
        assert_eq!(client.uplink, Uplink::Router { address: side });
        assert_eq!(client.switch_port, "eth1", "the router's interface");
        assert_eq!(plan.upstream(client).unwrap(), router.netns);
        assert_eq!(
            client.routes,
            [LabRoute { to: None, via: "10.9.0.1".parse().unwrap() }]
        );
        let to_client = LabRoute {
            to: Some("10.9.0.0/24".parse().unwrap()),
            via: "192.168.1.1".parse().unwrap(),
        };
        for name in ["d1", "d2", "d3", "rs01", "rs02"] {
            assert_eq!(plan.host(name).unwrap().routes, [to_client], "{name}");
        }
        assert!(plan.host("controller").unwrap().routes.is_empty());
        assert_eq!(to_client.destination(), "10.9.0.0/24");
        assert_eq!(client.routes[0].destination(), "default");
        assert_eq!(
            plan.namespaces().count(),
            4,
            "switch, controller, router, client"
        );
    }

    #[test]
    fn routes_name_the_network() {
        let a = "10.9.0.100/24".parse().unwrap();
        assert_eq!(network(a).to_string(), "10.9.0.0/24");
        let a = "fd00:9::64/64".parse().unwrap();
        assert_eq!(network(a).to_string(), "fd00:9::/64");
        let a = "10.9.0.100/0".parse().unwrap();
        assert_eq!(network(a).to_string(), "0.0.0.0/0");
    }
}
