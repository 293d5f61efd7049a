//! The IPVS back end: the kernel's own L4 load balancer, programmed over
//! generic netlink (family `"IPVS"`), for kernels that have it.
//!
//! * [`codec`] — the messages' bytes (pure, numbers from `linux/ip_vs.h`);
//! * [`mod@reconcile`] — the difference between the table lbdeploy wants and
//!   the kernel's, as operations (pure; never a flush);
//! * [`client`] — the netlink socket: [`Ipvs::connect`], [`Ipvs::dump`],
//!   [`Ipvs::apply`];
//! * [`marks`] — port groups as fwmark services: each group's mark
//!   (pure) and the nftables table that marks its packets;
//! * [`syncd`] — which connection sync daemon runs, from the driving
//!   VRRP instance's state (pure; keepalived's `lvs_sync_daemon`);
//! * [`plane`] — the [`Dataplane`](super::Dataplane) the director's
//!   forwarding loop drives: [`desired`] and [`sync`] on every change.
//!
//! Typical use (what the director worker does on each change):
//!
//! ```no_run
//! # use lbdeploy::agent::dataplane::ipvs::*;
//! # fn f(config: &lbdeploy::inventory::agent::DirectorConfig) -> anyhow::Result<()> {
//! let mut ipvs = Ipvs::connect()?; // once
//! let record = owned_path(&lbdeploy::agent::paths::run_dir());
//! // on every configuration or health change:
//! let desired = desired(
//!     config,
//!     |_svc, _rs| true, // real server health
//!     |_svc| true,      // service quorum
//! );
//! let (plan, _counted) = sync(&mut ipvs, &desired, &record)?;
//! for f in &plan.foreign { eprintln!("left alone: {f}"); }
//! # Ok(()) }
//! ```
//!
//! [`sync`] is [`Ipvs::dump`], [`fn@reconcile`], [`Ipvs::apply`] and the
//! [`Owned`] record around them; use those directly to plan without
//! applying (e.g. a dry run):
//!
//! ```no_run
//! # use lbdeploy::agent::dataplane::ipvs::*;
//! # fn f(desired: &Table, owned: &Owned) -> anyhow::Result<()> {
//! let plan = reconcile(desired, &Ipvs::connect()?.dump()?, owned);
//! # Ok(()) }
//! ```
//!
//! The client is blocking (netlink to the local kernel answers at once);
//! async callers wrap it in `spawn_blocking`.

pub mod client;
pub mod codec;
pub mod marks;
pub mod plane;
pub mod reconcile;
pub mod syncd;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::client::{Error, Ipvs};
pub(crate) use self::plane::Plane;
pub use self::reconcile::{Foreign, Op, Owned, Plan, reconcile, withdraw};
use crate::agent::dataplane::stats::{Traffic, TrafficByService};
use crate::inventory::Protocol;
use crate::inventory::agent::{
    DirectorConfig, RealServerConfig, ServiceConfig,
};

/// `IP_VS_SVC_F_PERSISTENT` (`linux/ip_vs.h`).
pub(crate) const IP_VS_SVC_F_PERSISTENT: u32 = 0x1;

/// A virtual service's identity in the kernel: what `ipvsadm -t/-u/-f`
/// names, and what every later command about it must repeat.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    /// A protocol, address and port (`ipvsadm -t` / `-u`).
    Addr {
        /// The L4 protocol.
        proto: Proto,
        /// The VIP.
        addr: IpAddr,
        /// The port.
        port: u16,
    },
    /// A firewall mark (`ipvsadm -f`): a port group's service, whose
    /// packets [`marks`] marks; or someone else's, recognised to be left
    /// alone.
    Fwmark {
        /// Whether the service is IPv6.
        v6: bool,
        /// The mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// The key of a configured service: its firewall `mark` for a port
    /// group (see [`marks::assign`]), else its protocol, VIP and port.
    pub fn of(svc: &ServiceConfig, mark: Option<u32>) -> Self {
        if let Some(mark) = mark {
            return ServiceKey::Fwmark { v6: svc.vip.is_ipv6(), mark };
        }
        ServiceKey::Addr {
            proto: match svc.protocol {
                Protocol::Tcp => Proto::Tcp,
                Protocol::Udp => Proto::Udp,
            },
            addr: svc.vip,
            port: svc.port.get() as u16,
        }
    }

    /// Whether the service is IPv6 (its `IPVS_SVC_ATTR_AF`).
    pub(crate) fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { v6, .. } => *v6,
        }
    }
}

/// As `ipvsadm -Ln` prints it: `TCP 10.0.0.1:80`, `UDP [2001:db8::1]:53`,
/// `FWM 5`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { proto, addr, port } => {
                write!(f, "{proto} {}", SocketAddr::new(*addr, *port))
            }
            ServiceKey::Fwmark { v6, mark } => {
                write!(f, "FWM {mark}{}", if *v6 { " IPv6" } else { "" })
            }
        }
    }
}

/// An L4 protocol number as IPVS stores it (`IPVS_SVC_ATTR_PROTOCOL`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// `IPPROTO_TCP` (6).
    Tcp,
    /// `IPPROTO_UDP` (17).
    Udp,
    /// `IPPROTO_SCTP` (132), which a hand-made service may use.
    Sctp,
    /// Any other number the kernel reports.
    Other(u16),
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u16 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
            Proto::Other(n) => n,
        }
    }

    /// The protocol with IP protocol number `n`.
    pub(crate) fn from_number(n: u16) -> Self {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            132 => Proto::Sctp,
            n => Proto::Other(n),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Tcp => f.write_str("TCP"),
            Proto::Udp => f.write_str("UDP"),
            Proto::Sctp => f.write_str("SCTP"),
            Proto::Other(n) => write!(f, "proto{n}"),
        }
    }
}

/// What the kernel requires of a new or changed service besides its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The scheduler's name (`rr`, `wrr`, `sh`, ...); the kernel loads
    /// `ip_vs_<name>`.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` without the kernel's own `IP_VS_SVC_F_HASHED`.
    pub flags: u32,
    /// Persistence timeout in seconds (0 when not persistent).
    pub timeout: u32,
    /// Persistence granularity: an IPv4 netmask (`0xffffffff` = one client
    /// address) or an IPv6 prefix length (128).
    pub netmask: u32,
}

/// A real server's identity within a service.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
pub struct DestKey {
    /// The real server's address.
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::new(self.addr, self.port).fmt(f)
    }
}

/// A destination's settings: all of them are required by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    /// How packets reach it.
    pub forward: Forward,
    /// Its share; 0 = no new connections (quiesced).
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper: u32,
    /// Lower connection threshold (0 = none).
    pub lower: u32,
}

/// The forwarding method (`IP_VS_CONN_F_*` under `IP_VS_CONN_F_FWD_MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// `IP_VS_CONN_F_MASQ` (0): NAT.
    Masq,
    /// `IP_VS_CONN_F_LOCALNODE` (1): the director itself.
    Local,
    /// `IP_VS_CONN_F_TUNNEL` (2): IP-in-IP.
    Tunnel,
    /// `IP_VS_CONN_F_DROUTE` (3): Direct Routing, lbdeploy's method.
    Route,
    /// Any other value the kernel reports.
    Other(u32),
}

impl Forward {
    /// The `IPVS_DEST_ATTR_FWD_METHOD` value.
    pub fn bits(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::Route => 3,
            Forward::Other(n) => n,
        }
    }

    /// The method of an `IPVS_DEST_ATTR_FWD_METHOD` value.
    pub(crate) fn from_bits(bits: u32) -> Self {
        match bits {
            0 => Forward::Masq,
            1 => Forward::Local,
            2 => Forward::Tunnel,
            3 => Forward::Route,
            n => Forward::Other(n),
        }
    }
}

/// `ipvsadm -Ln`'s words: Masq, Local, Tunnel, Route.
impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Forward::Masq => f.write_str("Masq"),
            Forward::Local => f.write_str("Local"),
            Forward::Tunnel => f.write_str("Tunnel"),
            Forward::Route => f.write_str("Route"),
            Forward::Other(n) => write!(f, "fwd{n}"),
        }
    }
}

/// One service with its destinations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The service's settings.
    pub settings: Settings,
    /// Its destinations.
    pub dests: BTreeMap<DestKey, Dest>,
}

/// A whole IPVS table, ordered so that dumps and plans are deterministic.
pub type Table = BTreeMap<ServiceKey, Entry>;

/// What the kernel counted of each destination of a dumped table.
pub type Counted = BTreeMap<(ServiceKey, DestKey), Traffic>;

/// Each configured service's key in the kernel's table, in the
/// configuration's order: a port group's is its fwmark service's. `None`
/// for a group past the marks lbdeploy has ([`marks::Full`], which the
/// back end refuses before it builds a table).
fn keys(config: &DirectorConfig) -> Vec<Option<ServiceKey>> {
    let marks = marks::assign(config).unwrap_or_default();
    config
        .virtual_services
        .iter()
        .enumerate()
        .map(|(i, svc)| match (svc.is_group(), marks.get(&i)) {
            (false, _) => Some(ServiceKey::of(svc, None)),
            (true, Some(&mark)) => Some(ServiceKey::of(svc, Some(mark))),
            (true, None) => None,
        })
        .collect()
}

/// Each configured real server's counts in `counted`, by service name and
/// address (a server the table does not hold, being down, is absent); a
/// port group's are its fwmark service's, all its ports together. Pure.
pub fn traffic(config: &DirectorConfig, counted: &Counted) -> TrafficByService {
    let mut out = TrafficByService::new();
    for (svc, key) in config.virtual_services.iter().zip(keys(config)) {
        let Some(key) = key else { continue };
        for rs in &svc.real_servers {
            let dest = DestKey { addr: rs.address, port: rs.port.get() as u16 };
            if let Some(t) = counted.get(&(key, dest)) {
                out.entry(svc.name.clone()).or_default().insert(rs.address, *t);
            }
        }
    }
    out
}

/// The table `config` asks for. `up` says whether a real server passes its
/// health checks: one that does not is left out, or kept with weight 0
/// when the service has `inhibit_on_failure` (its established connections
/// then live on; keepalived's behaviour). When `has_quorum` says a service
/// lost its quorum, or none of its weight is left, its sorry server takes
/// the place of all of them. Pure.
///
/// Persistence is `IP_VS_SVC_F_PERSISTENT` with the timeout in whole
/// seconds (at least 1) and a single-address netmask, as keepalived's
/// `persistence_timeout` without `persistence_granularity`.
///
/// A port group is one fwmark service ([`marks`]): one persistence
/// template per client then holds across all its ports. Its real servers
/// keep their configured port, as keepalived's fwmark services do; Direct
/// Routing never rewrites a port, so each packet reaches the port it was
/// sent to.
pub fn desired(
    config: &DirectorConfig,
    up: impl Fn(&ServiceConfig, &RealServerConfig) -> bool,
    has_quorum: impl Fn(&ServiceConfig) -> bool,
) -> Table {
    let mut table = Table::new();
    for (svc, key) in config.virtual_services.iter().zip(keys(config)) {
        let Some(key) = key else { continue };
        let netmask = if svc.vip.is_ipv6() { 128 } else { u32::MAX };
        let settings = match svc.persistence_timeout {
            Some(t) => Settings {
                scheduler: scheduler_name(svc),
                flags: IP_VS_SVC_F_PERSISTENT,
                timeout: t.get().as_secs().clamp(1, u64::from(u32::MAX)) as u32,
                netmask,
            },
            None => Settings {
                scheduler: scheduler_name(svc),
                flags: 0,
                timeout: 0,
                netmask,
            },
        };
        let mut dests = BTreeMap::new();
        for rs in &svc.real_servers {
            let weight = match (up(svc, rs), svc.inhibit_on_failure) {
                (true, _) => rs.weight,
                (false, true) => 0,
                (false, false) => continue,
            };
            dests.insert(
                DestKey { addr: rs.address, port: rs.port.get() as u16 },
                Dest { forward: Forward::Route, weight, upper: 0, lower: 0 },
            );
        }
        let live: u64 = dests.values().map(|d| u64::from(d.weight)).sum();
        if crate::agent::dataplane::backend::sorry_takes_over(
            has_quorum(svc),
            live,
        ) && let Some(sorry) = svc.sorry_server
        {
            // The real servers leave (or idle at weight 0) for it.
            match svc.inhibit_on_failure {
                true => dests.values_mut().for_each(|d| d.weight = 0),
                false => dests.clear(),
            }
            dests.insert(
                DestKey { addr: sorry.ip(), port: sorry.port() },
                Dest { forward: Forward::Route, weight: 1, upper: 0, lower: 0 },
            );
        }
        table.insert(key, Entry { settings, dests });
    }
    table
}

/// The kernel's name for a scheduler: the inventory's, in lower case.
fn scheduler_name(svc: &ServiceConfig) -> String {
    format!("{:?}", svc.scheduler).to_lowercase()
}

/// Where the set of services and destinations lbdeploy installed is kept:
/// `RUN_DIR/ipvs-owned.json`. It lives under `/run` on purpose: that is
/// emptied at boot, exactly when the kernel's IPVS table is, so the record
/// never outlives what it describes.
pub fn owned_path(run_dir: &Path) -> PathBuf {
    run_dir.join("ipvs-owned.json")
}

/// One reconcile, as the director worker runs it: dump the kernel's table,
/// compute the [`Plan`] against `desired` and the record at `record` (see
/// `owned_path`), apply it, and record `desired` as lbdeploy's. Before
/// applying, the record is widened to old ∪ new, so a failure half-way
/// still lets the next run remove what this one created. Returns the plan
/// (for the log: its operations and what was left alone) and what the
/// kernel had counted of each destination when the table was dumped.
///
/// # Errors
/// An unreadable record, a refused dump or operation, an unwritable
/// record.
pub fn sync(
    ipvs: &mut Ipvs,
    desired: &Table,
    record: &Path,
) -> anyhow::Result<(Plan, Counted)> {
    let owned = Owned::load(record)?;
    let (current, counted) = ipvs.dump_counted()?;
    let plan = reconcile(desired, &current, &owned);
    let mut pending = Owned::of(desired);
    pending.services.extend(owned.services.iter().copied());
    pending.dests.extend(owned.dests.iter().copied());
    if pending != owned {
        pending.save(record)?;
    }
    ipvs.apply(&plan.ops)?;
    let now = Owned::of(desired);
    if now != pending {
        now.save(record)?;
    }
    Ok((plan, counted))
}

/// Remove what the agent may have left in the kernel's IPVS table without
/// its configuration: the services `listed` in its holdings or in the
/// record at `record`, as [`withdraw`] plans it, and the record narrowed
/// to what is left. A kernel without IPVS holds nothing: an empty plan.
///
/// # Errors
/// An unreadable record, a refused dump or deletion, an unwritable record.
pub fn remove(
    listed: &BTreeSet<ServiceKey>,
    record: &Path,
) -> anyhow::Result<Plan> {
    let mut ipvs = match Ipvs::connect() {
        Ok(ipvs) => ipvs,
        Err(Error::NoIpvs) => return Ok(Plan::default()),
        Err(e) => return Err(e.into()),
    };
    let owned = Owned::load(record)?;
    let (plan, left) = withdraw(&ipvs.dump()?, listed, &owned);
    ipvs.apply(&plan.ops)?;
    if left != owned {
        left.save(record)?;
    }
    Ok(plan)
}

/// The table as lines, one per service and one per destination under it,
/// in the words of `ipvsadm -Ln` — what `lbdeploy agent ipvs-dump` prints
/// and the VM test compares with ipvsadm's own listing:
///
/// ```text
/// TCP 10.0.0.100:80 wrr
///   -> 10.0.1.1:80 Route 1
/// UDP 10.0.0.100:53 rr persistent 60
/// ```
pub fn render(table: &Table) -> String {
    let mut out = String::new();
    for (key, entry) in table {
        let s = &entry.settings;
        out.push_str(&format!("{key} {}", s.scheduler));
        if s.flags & IP_VS_SVC_F_PERSISTENT != 0 {
            out.push_str(&format!(" persistent {}", s.timeout));
        }
        out.push('\n');
        for (dk, d) in &entry.dests {
            out.push_str(&format!("  -> {dk} {} {}\n", d.forward, d.weight));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "cluster: c
host: d1
interface: eth0
address: 10.0.0.11/24
dataplane: ipvs
vrrp_instances: []
virtual_services:
- name: web
  vip: 10.0.0.200
  port: 80
  protocol: tcp
  scheduler: wrr
  delay_loop: 6s
  quorum: 1
  inhibit_on_failure: true
  real_servers:
  - { address: 10.0.0.21, port: 80, weight: 2 }
  - { address: 10.0.0.22, port: 80, weight: 1 }
- name: dns6
  vip: 2001:db8::200
  port: 53
  protocol: udp
  scheduler: sh
  persistence_timeout: 1m
  delay_loop: 6s
  quorum: 1
  real_servers:
  - { address: 2001:db8::21, port: 53, weight: 1 }
  - { address: 2001:db8::22, port: 53, weight: 1 }
";

    #[test]
    fn desired_table_from_config() {
        let config: DirectorConfig = serde_yaml::from_str(CONFIG).unwrap();
        let down =
            |rs: &RealServerConfig| rs.address.to_string().ends_with("22");
        let t = desired(&config, |_, rs| !down(rs), |_| true);
        assert_eq!(
            render(&t),
            "TCP 10.0.0.200:80 wrr\n  \
             -> 10.0.0.21:80 Route 2\n  \
             -> 10.0.0.22:80 Route 0\n\
             UDP [2001:db8::200]:53 sh persistent 60\n  \
             -> [2001:db8::21]:53 Route 1\n"
        );
        let dns = t.values().nth(1).unwrap();
        assert_eq!(dns.settings.netmask, 128);
        assert_eq!(t.values().next().unwrap().settings.netmask, u32::MAX);
    }

    /// A port group is one fwmark service (persistence then holds across
    /// its ports), its real servers at their own port; the other
    /// services keep their address key. What the kernel counts of the
    /// fwmark service is the group's traffic.
    #[test]
    fn a_port_group_is_one_fwmark_service() {
        let text = CONFIG.replace(
            "  port: 80\n  protocol: tcp\n  scheduler: wrr\n",
            "  port: 8080\n  ports: [8080, 8443]\n  protocol: tcp\n  \
             scheduler: wrr\n  persistence_timeout: 10m\n",
        );
        let config: DirectorConfig = serde_yaml::from_str(&text).unwrap();
        let mark = marks::assign(&config).unwrap()[&0];
        let t = desired(&config, |_, _| true, |_| true);
        assert_eq!(
            render(&t),
            format!(
                "UDP [2001:db8::200]:53 sh persistent 60\n  \
                 -> [2001:db8::21]:53 Route 1\n  \
                 -> [2001:db8::22]:53 Route 1\n\
                 FWM {mark} wrr persistent 600\n  \
                 -> 10.0.0.21:80 Route 2\n  \
                 -> 10.0.0.22:80 Route 1\n"
            )
        );
        let key = ServiceKey::Fwmark { v6: false, mark };
        assert_eq!(t[&key].settings.netmask, u32::MAX);
        let seen = Traffic { connections: Some(7), ..Traffic::default() };
        let dest = DestKey { addr: "10.0.0.21".parse().unwrap(), port: 80 };
        let counted = Counted::from([((key, dest), seen)]);
        let by = traffic(&config, &counted);
        assert_eq!(by["web"][&dest.addr].connections, Some(7));
    }

    #[test]
    fn the_sorry_server_stands_in_when_no_real_server_takes_traffic() {
        let text = CONFIG.replace(
            "  inhibit_on_failure: true\n",
            "  inhibit_on_failure: true\n  sorry_server: 10.0.0.99:8080\n",
        );
        let config: DirectorConfig = serde_yaml::from_str(&text).unwrap();
        let t = desired(&config, |_, _| false, |_| false);
        assert!(
            render(&t).contains("-> 10.0.0.99:8080 Route 1\n"),
            "{}",
            render(&t)
        );
        let t = desired(&config, |_, _| true, |_| true);
        assert!(!render(&t).contains("10.0.0.99"));
    }

    #[test]
    fn below_quorum_the_sorry_server_replaces_the_live_servers() {
        let text = CONFIG.replace(
            "  inhibit_on_failure: true\n",
            "  inhibit_on_failure: true\n  sorry_server: 10.0.0.99:8080\n",
        );
        let config: DirectorConfig = serde_yaml::from_str(&text).unwrap();
        let web = |svc: &ServiceConfig| svc.name != "web";
        let t = desired(&config, |_, _| true, web);
        assert!(
            render(&t).starts_with(
                "TCP 10.0.0.200:80 wrr\n  \
                 -> 10.0.0.21:80 Route 0\n  \
                 -> 10.0.0.22:80 Route 0\n  \
                 -> 10.0.0.99:8080 Route 1\n"
            ),
            "inhibited servers idle at weight 0: {}",
            render(&t)
        );
        let plain = text.replace("  inhibit_on_failure: true\n", "");
        let config: DirectorConfig = serde_yaml::from_str(&plain).unwrap();
        let t = desired(&config, |_, _| true, web);
        assert!(
            render(&t).starts_with(
                "TCP 10.0.0.200:80 wrr\n  -> 10.0.0.99:8080 Route 1\nUDP"
            ),
            "{}",
            render(&t)
        );
    }
}
