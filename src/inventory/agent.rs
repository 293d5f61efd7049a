//! The agent's configuration: everything one host's agent needs, and nothing
//! more.
//!
//! `apply` renders this file on each host from the inventory (through the
//! role's template) and the agent parses it with the types below, so a
//! template that drifts from what the agent understands fails the golden
//! tests, not a host. A real server's file carries no VRRP password; a
//! director's is written with mode 0600.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    Announce, ArpSuppression, Bfd, Check, Dataplane, Duration, Email, Garp,
    IfAddr, Metrics, NotifyHooks, Port, PortSpan, Protocol, RtPriority,
    Scheduler, ScriptUser, SyncGroup, Track, TrackFile, TrackProcess,
    VirtualAddress, VrrpScript,
};

/// The file in the agent's runtime directory that a host's retirement
/// (it has left the inventory) creates before it stops the agent, and
/// removes after: a real server stopping while it exists removes its VIPs
/// from `lo` whatever `keep_vip_on_stop` says — its ARP settings are
/// about to be put back, and a VIP left on `lo` would then be answered
/// for.
pub const RETIRING_MARK: &str = "retiring";

/// `lbdeploy agent director`'s configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorConfig {
    /// The cluster this host belongs to, for logs and notifications.
    pub cluster: String,
    /// This host's inventory name.
    pub host: String,
    /// The interface that carries the VIPs and VRRP.
    pub interface: String,
    /// This host's own address on `interface` (VRRP's primary address).
    pub address: IfAddr,
    /// The kernel data plane to program.
    pub dataplane: Dataplane,
    /// IPVS's connection sync daemon, driven by one instance
    /// (`agent::dataplane::ipvs::syncd`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_sync: Option<IpvsSyncConfig>,
    /// VRRP instances, with this director's priority resolved.
    pub vrrp_instances: Vec<VrrpConfig>,
    /// The scripts the instances track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<VrrpScript>,
    /// Instances that fail together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_sync_groups: Vec<SyncGroup>,
    /// The files the instances track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_track_files: Vec<TrackFile>,
    /// The processes the instances track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_track_processes: Vec<TrackProcess>,
    /// Virtual services, with real-server hosts resolved to addresses.
    #[serde(default)]
    pub virtual_services: Vec<ServiceConfig>,
    /// Where state changes are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationConfig>,
    /// Refuse programs that someone but root could replace
    /// ([`crate::agent::script_security`]).
    #[serde(default, skip_serializing_if = "is_default")]
    pub script_security: bool,
    /// SCHED_RR priority of the VRRP thread
    /// (`agent::sys::realtime`); absent, it is scheduled as any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_rt_priority: Option<RtPriority>,
    /// Lock the agent's memory (`mlockall`; `agent::sys::memory`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub vrrp_no_swap: bool,
    /// BGP for the services with `announce: bgp` (`agent::bgp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpConfig>,
    /// Where to serve Prometheus metrics (`agent::metrics`); none when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// The inventory's `ipvs_sync` for one director: its interface and sync
/// id resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsSyncConfig {
    /// The VRRP instance whose state picks the daemon.
    pub instance: String,
    /// The multicast interface.
    pub interface: String,
    /// The sync id.
    pub sync_id: u8,
}

/// The inventory's `notification` as the agent gets it: the webhook is a
/// URL, already resolved by the controller from `url_env` or `url_file`
/// (the agent has neither the controller's environment nor its files).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationConfig {
    /// keepalived's `notification_email` and `smtp_server`, with TLS and
    /// AUTH's user name; its `ca_file` and password sources are the
    /// controller's, resolved into the two fields below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// The PEM of the CAs the SMTP server's certificate must chain to;
    /// the host's CA bundle when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_ca: Option<String>,
    /// SMTP AUTH's password, read by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_password: Option<String>,
    /// The exec hook's argv; the event's words are appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// The `http://` or `https://` URL each event is POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The PEM of the CAs an `https://` webhook's certificate must chain
    /// to, read by the controller from `ca_file`; the host's CA bundle
    /// when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_ca: Option<String>,
    /// Who runs `exec`, when not the agent's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_user: Option<ScriptUser>,
}

/// One program a director's configuration runs, for the checks made
/// when it is loaded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Program<'a> {
    /// What runs it: `script chk`, `instance VI_1's notify hook`.
    pub what: String,
    /// The program as written (an exec check's first word).
    pub path: &'a str,
    /// Who runs it; the agent's user when `None`.
    pub user: Option<&'a ScriptUser>,
}

impl DirectorConfig {
    /// Every program the configuration runs, with what runs it and as
    /// whom: tracked scripts, notify hooks (instances and sync groups),
    /// the notification's exec hook and exec checks (their command's
    /// first word). Sorted, without repeats.
    pub fn programs(&self) -> Vec<Program<'_>> {
        let mut out = Vec::new();
        for s in &self.vrrp_scripts {
            out.extend(s.command.first().map(|p| Program {
                what: format!("script {}", s.name),
                path: p,
                user: s.user.as_ref(),
            }));
        }
        let hooks = self
            .vrrp_instances
            .iter()
            .map(|vi| (format!("instance {}", vi.name), &vi.notify))
            .chain(
                self.vrrp_sync_groups
                    .iter()
                    .map(|g| (format!("sync group {}", g.name), &g.notify)),
            );
        for (owner, notify) in hooks {
            let Some(n) = notify else { continue };
            for argv in
                [&n.master, &n.backup, &n.fault, &n.any].into_iter().flatten()
            {
                out.extend(argv.first().map(|p| Program {
                    what: format!("{owner}'s notify hook"),
                    path: p,
                    user: n.user.as_ref(),
                }));
            }
        }
        if let Some(n) = &self.notification
            && let Some(p) = n.exec.as_ref().and_then(|e| e.first())
        {
            out.push(Program {
                what: "the notification's exec hook".to_owned(),
                path: p,
                user: n.exec_user.as_ref(),
            });
        }
        for vs in &self.virtual_services {
            for rs in &vs.real_servers {
                for check in &rs.checks {
                    if let Check::Exec(e) = check
                        && let Some(p) = e.command.split_whitespace().next()
                    {
                        out.push(Program {
                            what: format!("service {}'s exec check", vs.name),
                            path: p,
                            user: e.user.as_ref(),
                        });
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether some program runs as another user than root, so the agent
    /// must keep `CAP_SETUID` and `CAP_SETGID` to start it.
    pub fn switches_user(&self) -> bool {
        self.programs().iter().any(|p| p.user.is_some_and(|u| !u.is_root()))
    }

    /// The settings that differ from `old` and that only a start of the
    /// agent applies, by name: its capabilities (a script user needs
    /// `CAP_SETUID`, `vrrp_rt_priority` `CAP_SYS_NICE`: a supervised agent
    /// keeps only those its configuration asked for at start), its VRRP
    /// thread's scheduling and its memory lock. A running agent cannot
    /// take them from a reload, so a plan that changes one restarts it,
    /// whatever the host's init system (the unit changes with them too,
    /// but a host without systemd has no unit to tell). Pure.
    pub fn restart_settings(&self, old: &DirectorConfig) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.vrrp_rt_priority != old.vrrp_rt_priority {
            changed.push("vrrp_rt_priority");
        }
        if self.vrrp_no_swap != old.vrrp_no_swap {
            changed.push("vrrp_no_swap");
        }
        if self.switches_user() != old.switches_user() {
            changed.push("script_user");
        }
        // BIRD's port needs a capability given at start.
        if self.bgp.is_some() != old.bgp.is_some() {
            changed.push("bgp");
        }
        changed
    }

    /// Give every program that names no user of its own `default` (the
    /// inventory's `script_user`): `agent.yml` says, for each program,
    /// who runs it, so the agent has no default to apply.
    pub fn default_script_user(&mut self, default: Option<&ScriptUser>) {
        let Some(default) = default else { return };
        let fill = |u: &mut Option<ScriptUser>| {
            u.get_or_insert_with(|| default.clone());
        };
        self.vrrp_scripts.iter_mut().for_each(|s| fill(&mut s.user));
        let instances = self.vrrp_instances.iter_mut().map(|v| &mut v.notify);
        let groups = self.vrrp_sync_groups.iter_mut().map(|g| &mut g.notify);
        instances.chain(groups).flatten().for_each(|n| fill(&mut n.user));
        if let Some(n) = &mut self.notification
            && n.exec.is_some()
        {
            fill(&mut n.exec_user);
        }
        let checks = self
            .virtual_services
            .iter_mut()
            .flat_map(|vs| &mut vs.real_servers)
            .flat_map(|rs| &mut rs.checks);
        for check in checks {
            if let Check::Exec(e) = check {
                fill(&mut e.user);
            }
        }
    }
}

/// One VRRP instance as this director runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpConfig {
    /// Instance name.
    pub name: String,
    /// The VRID.
    pub virtual_router_id: u8,
    /// 2 or 3.
    pub version: u8,
    /// Advertisement interval.
    pub advert_int: Duration,
    /// This director's priority in this instance.
    pub priority: u8,
    /// Whether a higher priority takes over from a running master.
    pub preempt: bool,
    /// Wait after start-up before preempting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<Duration>,
    /// The VRRPv2 PASS password, resolved from the inventory's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Peers to send adverts to; multicast when empty. Never this host.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// The only sources this director takes adverts from: the instance's
    /// other directors (its unicast peers when it has some). The agent
    /// drops everything else in the kernel, with a socket filter, because
    /// VRRPv2's PASS is plain text on the wire and so no authentication.
    /// Empty means anyone: an IPv6 instance over multicast, whose
    /// link-local sources the inventory does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_from: Vec<IpAddr>,
    /// VRRPv3 checksum without the pseudo-header.
    #[serde(default)]
    pub v3_checksum_as_v2: bool,
    /// The VIPs the master holds.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Scripts run on transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyHooks>,
    /// Email on transitions.
    #[serde(default)]
    pub smtp_alert: bool,
    /// Gratuitous ARP bursts; left out of the file when keepalived's
    /// defaults, as most are.
    #[serde(default, skip_serializing_if = "is_default")]
    pub garp: Garp,
    /// What it tracks, every script's weight resolved.
    #[serde(default, skip_serializing_if = "Track::is_empty")]
    pub track: Track,
}

/// This director's BGP speaker (BIRD, run by the agent), with every
/// override and secret resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpConfig {
    /// This director's autonomous system.
    pub local_as: u32,
    /// This director's router id.
    pub router_id: Ipv4Addr,
    /// The routers it announces to.
    pub peers: Vec<PeerConfig>,
    /// BFD on every session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
    /// Hold time offered; BIRD's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,
    /// Keepalive interval; a third of the hold time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,
    /// Forwarding kept after a withdrawal.
    pub drain_grace: Duration,
}

/// One BGP neighbour as a director's BIRD sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The router's address.
    pub address: IpAddr,
    /// The router's autonomous system.
    pub remote_as: u32,
    /// TCP MD5 password, resolved from the inventory's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// One virtual service as a director programs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Name for logs.
    pub name: String,
    /// The VIP.
    pub vip: IpAddr,
    /// How the VIP reaches the clients: the VRRP master holds it, or
    /// every director announces it over BGP.
    #[serde(default, skip_serializing_if = "Announce::is_vrrp")]
    pub announce: Announce,
    /// The port; the first of `ports` for a port group.
    pub port: Port,
    /// A port group's ports and ranges; empty for one `port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpan>,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Scheduling algorithm.
    pub scheduler: Scheduler,
    /// Client affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<Duration>,
    /// Interval between checks.
    pub delay_loop: Duration,
    /// Minimum healthy weight.
    pub quorum: u32,
    /// Tolerance around the quorum.
    #[serde(default)]
    pub hysteresis: u32,
    /// Fallback when nothing is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<std::net::SocketAddr>,
    /// Weight 0 instead of removal on failure.
    #[serde(default)]
    pub inhibit_on_failure: bool,
    /// The real servers, by address.
    pub real_servers: Vec<RealServerConfig>,
}

impl ServiceConfig {
    /// The ports it serves: a port group's `ports`, else its one `port` —
    /// what [`VirtualService::spans`](super::VirtualService::spans) reads
    /// from the inventory, for both data planes.
    pub fn spans(&self) -> Vec<PortSpan> {
        match self.ports.is_empty() {
            true => vec![PortSpan::one(self.port.get() as u16)],
            false => self.ports.clone(),
        }
    }

    /// Whether it is a port group (`ports:`): an IPVS fwmark service, a
    /// set of ports on nftables.
    pub fn is_group(&self) -> bool {
        !self.ports.is_empty()
    }
}

/// A real server as a director sees it: an address, never a host name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConfig {
    /// The RIP.
    pub address: IpAddr,
    /// The port.
    pub port: Port,
    /// Scheduling weight.
    pub weight: u32,
    /// Health checks.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// `lbdeploy agent realserver`'s configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RealserverConfig {
    /// The cluster this host belongs to.
    pub cluster: String,
    /// This host's inventory name.
    pub host: String,
    /// The interface facing the directors (its ARP behaviour is changed).
    pub interface: String,
    /// How ARP for the VIPs is suppressed.
    pub arp_suppression: ArpSuppression,
    /// The VIPs this host serves, added to `lo` as host routes.
    pub vips: Vec<IpAddr>,
    /// Leave the VIPs on `lo` when the agent stops — unless the host is
    /// being retired ([`RETIRING_MARK`]).
    #[serde(default)]
    pub keep_vip_on_stop: bool,
    /// Where to serve Prometheus metrics (`agent::metrics`); none when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// Why an agent configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read agent config {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration for this mode.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What serde found, with line and column.
        message: String,
    },
}

/// Read and parse an agent configuration of type `T`.
///
/// # Errors
/// When the file cannot be read or does not parse as `T`.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Read { path: path.to_owned(), source })?;
    parse(path, &text)
}

/// Parse agent configuration text; `path` is for messages.
///
/// # Errors
/// When the text does not parse as `T`.
pub fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, Error> {
    serde_yaml::from_str(text).map_err(|e| Error::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(extra: &str) -> ServiceConfig {
        serde_yaml::from_str(&format!(
            "name: web\nvip: 10.0.0.200\nport: 80\nprotocol: tcp\n\
             scheduler: rr\ndelay_loop: 6s\nquorum: 1\nreal_servers: []\n\
             {extra}"
        ))
        .unwrap()
    }

    /// One `port`, or a group's `ports` (whose first is also `port`, as
    /// `plan::desired` renders it): never both.
    #[test]
    fn spans_are_the_port_or_the_group() {
        let one = service("");
        assert_eq!(one.spans(), [PortSpan::one(80)]);
        assert!(!one.is_group());
        let group = service("ports: [80, 8000-8100]\n");
        assert_eq!(
            group.spans(),
            [PortSpan::one(80), PortSpan { first: 8000, last: 8100 }]
        );
        assert!(group.is_group());
    }
}
