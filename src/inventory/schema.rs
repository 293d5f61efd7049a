//! The inventory schema: what an operator writes in `inventory.yml`.
//!
//! Field names follow keepalived's keywords where one exists
//! (`virtual_router_id`, `advert_int`, `delay_loop`, `persistence_timeout`,
//! `connect_timeout`, `retry`, `delay_before_retry`), so an operator who knows
//! keepalived.conf finds the same words. Every struct refuses unknown keys; a
//! typo is an error, never a silently ignored setting.
//!
//! This module only describes shapes and defaults. Cross-field rules (names
//! that must exist, ranges that depend on the VRRP version, ...) live in
//! `validate`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::values::{
    Asn, Bounded, Duration, IfAddr, Port, Priority, RouterId, RtPriority,
    ScriptUser, Weight,
};

mod bgp;
mod check;
pub use bgp::*;
pub use check::*;

/// The whole inventory: one cluster of directors and real servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// A name for the cluster, used in notifications and on hosts.
    pub cluster: String,
    /// SSH settings every host inherits unless it overrides them.
    #[serde(default)]
    pub ssh: SshDefaults,
    /// The kernel data plane the directors program.
    #[serde(default)]
    pub dataplane: Dataplane,
    /// IPVS's connection sync daemon (keepalived's `lvs_sync_daemon`):
    /// the master of `instance` sends its connection entries to the
    /// backups, so that a failover keeps established connections
    /// whatever the scheduler. IPVS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_sync: Option<IpvsSync>,
    /// The load balancers (keepalived's hosts).
    pub directors: Vec<Director>,
    /// The hosts behind the VIP that lbdeploy manages.
    #[serde(default)]
    pub real_servers: Vec<RealServerHost>,
    /// VRRP instances (keepalived's `vrrp_instance` blocks); none where
    /// every VIP is announced over BGP.
    #[serde(default)]
    pub vrrp_instances: Vec<VrrpInstance>,
    /// Scripts instances track (keepalived's `vrrp_script` blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<VrrpScript>,
    /// Instances that fail together (keepalived's `vrrp_sync_group`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_sync_groups: Vec<SyncGroup>,
    /// Files instances track (keepalived's `vrrp_track_file`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_track_files: Vec<TrackFile>,
    /// Processes instances track (keepalived's `vrrp_track_process`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_track_processes: Vec<TrackProcess>,
    /// Virtual services (keepalived's `virtual_server` blocks).
    #[serde(default)]
    pub virtual_services: Vec<VirtualService>,
    /// Where state changes are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    /// BGP for the VIPs of services with `announce: bgp`: every director
    /// announces them to these routers (active-active, ECMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<Bgp>,
    /// Refuse scripts, checks and hooks that someone but root could
    /// replace (keepalived's `enable_script_security`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub script_security: bool,
    /// Who runs the scripts, checks and hooks that do not name their own
    /// `user` (keepalived's `script_user`): `USER` or `USER:GROUP`; the
    /// agent's user (root) when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_user: Option<ScriptUser>,
    /// Run each director's VRRP thread under SCHED_RR at this priority
    /// (keepalived's `vrrp_rt_priority`), so adverts and the master-down
    /// timer keep their time on a starved machine; absent, the thread is
    /// scheduled as any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_rt_priority: Option<RtPriority>,
    /// Lock each director agent's memory so that it is never paged out
    /// (keepalived's `vrrp_no_swap`, and its `checker_no_swap`: one
    /// process does both here): a host under memory pressure then cannot
    /// stall the VRRP loop on a page fault.
    #[serde(default, skip_serializing_if = "is_false")]
    pub vrrp_no_swap: bool,
    /// Where every agent serves Prometheus metrics, unless its host sets
    /// its own; off when neither does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Extra hosts of the network-namespace lab (`lbdeploy lab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<Lab>,
}

// ===== SSH =====

/// SSH settings shared by all hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshDefaults {
    /// Remote user: root, or a user that becomes root through `become`.
    #[serde(default = "default_ssh_user")]
    pub user: String,
    /// Remote port.
    #[serde(default = "default_ssh_port")]
    pub port: Port,
    /// Private key; the SSH agent and `~/.ssh/config` apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// How unknown host keys are treated.
    #[serde(default)]
    pub known_hosts: KnownHosts,
    /// A known_hosts file to use instead of the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<PathBuf>,
    /// How a user other than root becomes root for every remote command.
    #[serde(
        default,
        rename = "become",
        skip_serializing_if = "Become::is_none"
    )]
    pub become_: Become,
    /// The controller's environment variable holding the sudo password,
    /// for sudo rules without NOPASSWD. Only the variable's name is in the
    /// inventory; the value is read when a command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_password_env: Option<String>,
}

impl Default for SshDefaults {
    fn default() -> Self {
        Self {
            user: default_ssh_user(),
            port: default_ssh_port(),
            identity_file: None,
            known_hosts: KnownHosts::default(),
            known_hosts_file: None,
            become_: Become::None,
            become_password_env: None,
        }
    }
}

/// How the SSH user becomes root, as Ansible's `become`: lbdeploy's
/// remote commands (the facts script, the upload, `lbdeploy host …`) all
/// need root.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Become {
    /// The SSH user is root already.
    #[default]
    None,
    /// Every remote command runs under `sudo`.
    Sudo,
}

impl Become {
    /// Whether no become method is set (the default, not serialised).
    pub fn is_none(&self) -> bool {
        *self == Self::None
    }
}

fn default_ssh_user() -> String {
    "root".to_owned()
}

fn default_ssh_port() -> Port {
    Port::new(22).expect("22 is a valid port")
}

/// Host-key checking policy, as OpenSSH's `StrictHostKeyChecking`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum KnownHosts {
    /// Refuse hosts whose key is not already known (`yes`).
    #[default]
    Strict,
    /// Record the key of a new host, refuse a changed one (`accept-new`).
    AcceptNew,
}

/// Per-host SSH overrides; every field falls back to [`SshDefaults`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSsh {
    /// Name or address to connect to, when it is not the host's `address`
    /// (a management network, a name from `~/.ssh/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Remote user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Remote port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// Private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// Host-key checking policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<KnownHosts>,
    /// How this host's user becomes root (`none` opts out of a global
    /// `sudo`).
    #[serde(
        default,
        rename = "become",
        skip_serializing_if = "Option::is_none"
    )]
    pub become_: Option<Become>,
    /// The environment variable holding this host's sudo password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_password_env: Option<String>,
}

// ===== hosts =====

/// The kernel data plane of the directors.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dataplane {
    /// IPVS where the kernel has it, nftables otherwise.
    #[default]
    Auto,
    /// IPVS over generic netlink (what keepalived programs).
    Ipvs,
    /// nftables netdev ingress rules rewriting the destination MAC.
    Nftables,
}

/// `ipvs_sync`: which VRRP instance drives IPVS's sync daemon, over
/// which interface, with which sync id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsSync {
    /// The VRRP instance whose master runs the master daemon; every
    /// other director runs the backup daemon.
    pub instance: String,
    /// The interface the daemons' multicast goes over; each director's
    /// own `interface` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The sync id (0–255), the same on every director: a backup takes
    /// only its master's entries. The instance's `virtual_router_id`
    /// when left out, as keepalived's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<Bounded<0, 255>>,
}

/// A load-balancer host that runs `lbdeploy agent director`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Director {
    /// Host name, unique in the inventory.
    pub name: String,
    /// The host's address and prefix on `interface`; also the SSH target.
    pub address: IfAddr,
    /// The interface that faces the clients and carries the VIP
    /// (keepalived's `interface`).
    pub interface: String,
    /// Default VRRP priority (keepalived's `priority`), 1–254.
    pub priority: Priority,
    /// Initial state hint (keepalived's `state MASTER|BACKUP`); the election
    /// decides, this only says what the operator expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VrrpState>,
    /// Where this host's agent serves metrics, instead of the
    /// inventory's `metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// This director's BGP settings over the inventory's `bgp:` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<DirectorBgp>,
    /// SSH overrides for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<HostSsh>,
}

/// keepalived's `state` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    /// Expected to hold the VIP.
    Master,
    /// Expected to stand by.
    Backup,
}

/// A real server that lbdeploy manages (ARP suppression, VIP on `lo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerHost {
    /// Host name, unique in the inventory.
    pub name: String,
    /// The real server's address (RIP) and prefix; also the SSH target.
    pub address: IfAddr,
    /// The interface facing the directors.
    pub interface: String,
    /// How the host is kept from answering ARP for the VIP.
    #[serde(default)]
    pub arp_suppression: ArpSuppression,
    /// Leave the VIP on `lo` when the agent stops (for servers that must
    /// keep serving while lbdeploy is upgraded); removed by default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_vip_on_stop: bool,
    /// Where this host's agent serves metrics, instead of the
    /// inventory's `metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// SSH overrides for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<HostSsh>,
}

/// How a real server hides the VIP from ARP (the arptables of old).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ArpSuppression {
    /// `arp_ignore=1`, `arp_announce=2`.
    #[default]
    Sysctl,
    /// An nftables `arp` table that drops requests for the VIP.
    Nftables,
}

// ===== metrics =====

/// Prometheus metrics from an agent: `GET /metrics` on `listen`, in the
/// text exposition format (`agent::metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `ADDR:PORT` (`[ADDR]:PORT` for IPv6) the agent listens on.
    pub listen: SocketAddr,
}

// ===== VRRP =====

/// One VRRP instance: a virtual router shared by the directors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    /// Instance name (keepalived's `vrrp_instance VI_1`).
    pub name: String,
    /// The VRID, 1–255, unique per network segment.
    pub virtual_router_id: RouterId,
    /// VRRP version: 2 (RFC 3768, keepalived's default) or 3 (RFC 5798).
    #[serde(default = "default_vrrp_version")]
    pub version: u8,
    /// Advertisement interval; whole seconds for v2, centiseconds for v3.
    #[serde(default = "default_advert_int")]
    pub advert_int: Duration,
    /// VRRPv2 simple-password authentication (keepalived's `auth_type PASS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Whether a higher-priority director takes the VIP back (keepalived's
    /// default; `nopreempt` is `preempt: false`).
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// How long after start-up a director waits before preempting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<Duration>,
    /// Per-director priorities for this instance, overriding the directors'
    /// own `priority` (for active/active pairs with one VIP each).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub priorities: BTreeMap<String, Priority>,
    /// Unicast peers (keepalived's `unicast_peer`); multicast when empty.
    /// Every director's address, in the VIPs' family: each director sends
    /// to every listed address but its own, and with IPv6 speaks from its
    /// own (keepalived's `unicast_src_ip`), found on its interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<IpAddr>,
    /// Compute the VRRPv3 checksum without the IPv4 pseudo-header
    /// (keepalived's `v3_checksum_as_v2`), for peers that do so.
    #[serde(default, skip_serializing_if = "is_false")]
    pub v3_checksum_as_v2: bool,
    /// The VIPs (keepalived's `virtual_ipaddress`).
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Scripts run on transitions (keepalived's `notify_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyHooks>,
    /// Send an email on transitions (keepalived's `smtp_alert`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub smtp_alert: bool,
    /// How the master announces the VIPs (keepalived's `garp_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp: Option<Garp>,
    /// What moves this instance's priority or puts it in fault
    /// (keepalived's `track_interface`, `track_script`).
    #[serde(default, skip_serializing_if = "Track::is_empty")]
    pub track: Track,
}

/// What an instance tracks, each with keepalived's weight: 0 (the
/// default) puts the instance in FAULT while the object fails; a positive
/// weight is added to the priority while it is OK, a negative one
/// subtracted while it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// Interfaces that must be up with a carrier (`track_interface`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<TrackInterface>,
    /// Scripts of `vrrp_scripts` that must succeed (`track_script`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<TrackRef>,
    /// Files of `vrrp_track_files` whose number moves the priority
    /// (`track_file`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<TrackRef>,
    /// Processes of `vrrp_track_processes` that must run
    /// (`track_process`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<TrackRef>,
}

impl Track {
    /// Nothing tracked.
    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty()
            && self.scripts.is_empty()
            && self.files.is_empty()
            && self.processes.is_empty()
    }
}

/// A file whose integer content moves the priority (keepalived's
/// `vrrp_track_file`): the number times the weight is added; with weight
/// 0, any number but 0 is a FAULT. A missing or unreadable file reads 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    /// Its name, for `track.files`.
    pub name: String,
    /// The file, absolute.
    pub path: PathBuf,
    /// keepalived's weight, −253–253 (default 1).
    #[serde(default = "default_file_weight")]
    pub weight: i32,
    /// Negate the weight (keepalived's `weight N reverse`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reverse: bool,
    /// Write a starting number when the agent starts tracking the file
    /// (keepalived's `init_file`), so a fresh host does not depend on
    /// someone having created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<FileInit>,
}

/// The number a tracked file starts with (keepalived's `init_file VALUE
/// [overwrite]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInit {
    /// The number written, a 32-bit integer (default 0).
    #[serde(default)]
    pub value: i64,
    /// Write it at every start and reload, not only when the file is
    /// missing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub overwrite: bool,
}

fn default_file_weight() -> i32 {
    1
}

/// Processes that must be running (keepalived's `vrrp_track_process`):
/// OK while at least `quorum` (and at most `quorum_max`) match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackProcess {
    /// Its name, for `track.processes`.
    pub name: String,
    /// The process name as `/proc/PID/comm` has it (at most 15 bytes),
    /// or, with `parameters`, the command line's first word.
    pub process: String,
    /// The command line's other words; leave out to match the name only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<String>>,
    /// How `parameters` compare: `exact` (default), `partial` (these
    /// first, anything after), `initial` (as partial, the last a prefix).
    #[serde(default, skip_serializing_if = "is_default_match")]
    pub param_match: ParamMatch,
    /// The fewest matching processes that are OK.
    #[serde(default = "default_one")]
    pub quorum: u32,
    /// The most matching processes that are OK; no bound when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_max: Option<u32>,
    /// keepalived's weight, −253–253; 0: FAULT while not OK.
    #[serde(default)]
    pub weight: i32,
    /// Negate the weight: running is what is bad.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reverse: bool,
    /// How long a change to OK must hold before it counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_delay: Option<Duration>,
    /// How long a change to failed must hold before it counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_delay: Option<Duration>,
}

/// keepalived's `param_match`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ParamMatch {
    /// Exactly the parameters given.
    #[default]
    Exact,
    /// The parameters given first, anything after.
    Partial,
    /// As `partial`, the last given one a prefix.
    Initial,
}

fn is_default_match(m: &ParamMatch) -> bool {
    *m == ParamMatch::Exact
}

/// A tracked interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackInterface {
    /// Its name on every director.
    pub name: String,
    /// keepalived's weight, −253–253; 0: FAULT while it is down.
    #[serde(default)]
    pub weight: i32,
}

/// A tracked script, file or process, by its name in `vrrp_scripts`,
/// `vrrp_track_files` or `vrrp_track_processes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackRef {
    /// Its name.
    pub name: String,
    /// Overrides its own weight for this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Negates that weight (keepalived's `weight N reverse` in an
    /// instance's track list); only with `weight`, which overrides the
    /// object's own weight and `reverse` together, as keepalived's does.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reverse: bool,
}

/// Instances that fail together (keepalived's `vrrp_sync_group`): when
/// one of them is in FAULT, all are, so a two-legged director never holds
/// one leg's VIP without the other's. Their priorities must rank the
/// directors alike, so elections move them together too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    /// The group's name, for logs and its hooks.
    pub name: String,
    /// Its instances, by name; each in one group at most.
    pub instances: Vec<String>,
    /// Scripts run when the whole group has entered a state, with `GROUP
    /// NAME STATE 0` as arguments (keepalived's group `notify_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyHooks>,
}

/// keepalived's bound on a tracking weight.
pub const TRACK_WEIGHT_MAX: i32 = 253;

/// A health script the directors run for their instances (keepalived's
/// `vrrp_script`): run every `interval`, killed with its process group
/// past `timeout`; failed after `fall` failures in a row, OK again after
/// `rise` successes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpScript {
    /// Its name, for `track.scripts`.
    pub name: String,
    /// The program and its arguments, run directly, without a shell
    /// (write `[/bin/sh, -c, "…"]` to have one).
    pub command: Vec<String>,
    /// How often it runs.
    #[serde(default = "default_script_interval")]
    pub interval: Duration,
    /// How long one run may take; the interval when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// keepalived's weight, −253–253 (see [`Track`]).
    #[serde(default)]
    pub weight: i32,
    /// Negate the weight (keepalived's `weight N reverse`): a positive
    /// weight is subtracted while the script succeeds, a negative one
    /// added while it fails, and with weight 0 success is the FAULT.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reverse: bool,
    /// Successes in a row that make a failed script OK.
    #[serde(default = "default_one")]
    pub rise: u32,
    /// Failures in a row that make an OK script failed.
    #[serde(default = "default_one")]
    pub fall: u32,
    /// Who runs it, when not `script_user` (keepalived's `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ScriptUser>,
}

fn default_script_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_one() -> u32 {
    1
}

/// Gratuitous ARP (unsolicited Neighbour Advertisement for IPv6) bursts:
/// one burst of `*_repeat` per VIP at once, a second after `*_delay`
/// (none when zero), for switches and neighbours that missed the first.
/// The defaults are keepalived's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    /// On becoming master (`garp_master_delay`).
    #[serde(default = "default_garp_delay")]
    pub master_delay: Duration,
    /// On becoming master (`garp_master_repeat`), 1–100.
    #[serde(default = "default_garp_repeat")]
    pub master_repeat: u32,
    /// When a master hears a lower-priority advert: a split brain or a
    /// partition healing (`garp_lower_prio_delay`).
    #[serde(default = "default_garp_delay")]
    pub lower_priority_delay: Duration,
    /// The same case's burst (`garp_lower_prio_repeat`), 0–100; 0 sends
    /// none.
    #[serde(default = "default_garp_repeat")]
    pub lower_priority_repeat: u32,
}

/// The most announcements per VIP in one burst: keepalived has no bound,
/// but a burst is sent at once from the VRRP loop, and a hundred already
/// outlasts any switch's learning.
pub const GARP_REPEAT_MAX: u32 = 100;

/// The longest delay before the second burst.
pub const GARP_DELAY_MAX: Duration = Duration::from_secs(3600);

impl Default for Garp {
    fn default() -> Self {
        Self {
            master_delay: default_garp_delay(),
            master_repeat: default_garp_repeat(),
            lower_priority_delay: default_garp_delay(),
            lower_priority_repeat: default_garp_repeat(),
        }
    }
}

fn default_garp_delay() -> Duration {
    Duration::from_secs(5)
}

fn default_garp_repeat() -> u32 {
    5
}

fn default_vrrp_version() -> u8 {
    2
}

fn default_advert_int() -> Duration {
    Duration::from_secs(1)
}

fn default_true() -> bool {
    true
}

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

/// VRRPv2 PASS authentication; the password comes from exactly one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Only `pass` exists: RFC 3768's AH was removed from VRRP (RFC 5798 §9).
    #[serde(rename = "type")]
    pub kind: AuthType,
    /// The password inline (keepalived's `auth_pass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The name of an environment variable on the controller holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file on the controller holding it (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// VRRP authentication types lbdeploy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// Simple text password, at most 8 bytes (RFC 2338 §5.3.6.1).
    Pass,
}

/// A VIP held by the VRRP master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualAddress {
    /// The VIP with its prefix, e.g. `192.168.1.200/24`.
    pub address: IfAddr,
    /// Interface label such as `eth0:1`, so `ifconfig` shows the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Programs run on VRRP transitions, each an argv list (as
/// `notification.exec`: no shell unless written `[/bin/sh, -c, "…"]`),
/// with keepalived's `INSTANCE|GROUP NAME STATE PRIORITY` appended
/// (keepalived's `notify_master`, `notify_backup`, `notify_fault`,
/// `notify`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyHooks {
    /// Run on becoming master.
    #[serde(
        default,
        deserialize_with = "exec_argv",
        skip_serializing_if = "Option::is_none"
    )]
    pub master: Option<Vec<String>>,
    /// Run on becoming backup.
    #[serde(
        default,
        deserialize_with = "exec_argv",
        skip_serializing_if = "Option::is_none"
    )]
    pub backup: Option<Vec<String>>,
    /// Run on entering fault.
    #[serde(
        default,
        deserialize_with = "exec_argv",
        skip_serializing_if = "Option::is_none"
    )]
    pub fault: Option<Vec<String>>,
    /// Run on every transition.
    #[serde(
        default,
        deserialize_with = "exec_argv",
        skip_serializing_if = "Option::is_none"
    )]
    pub any: Option<Vec<String>>,
    /// Who runs these hooks, when not `script_user` (keepalived's
    /// `notify_* SCRIPT USER GROUP`, one user for the block here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ScriptUser>,
}

// ===== virtual services =====

/// One load-balanced service: a VIP, a port and its real servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualService {
    /// A name for logs and plans; `VIP:PORT/PROTO` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The VIP; one of a VRRP instance's virtual addresses, or announced
    /// over BGP (`announce: bgp`).
    pub vip: IpAddr,
    /// How the VIP reaches the clients: held by a VRRP master (`vrrp`,
    /// the default) or announced by every director over BGP (`bgp`).
    #[serde(default, skip_serializing_if = "Announce::is_vrrp")]
    pub announce: Announce,
    /// The service port; or `ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// Several ports and port ranges served as one service, instead of
    /// `port` (keepalived's fwmark service, without the mangle rules):
    /// `[80, 443]`, `[8000-8100]`. A persistent one keeps a client on one
    /// real server across all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpan>,
    /// Transport protocol (keepalived's `protocol TCP`).
    #[serde(default)]
    pub protocol: Protocol,
    /// Scheduling algorithm (keepalived's `lb_algo`).
    pub scheduler: Scheduler,
    /// Forwarding method (keepalived's `lb_kind`).
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Client affinity (keepalived's `persistence_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<Duration>,
    /// Interval between health checks (keepalived's `delay_loop`; its
    /// default is 60s).
    #[serde(default = "default_delay_loop")]
    pub delay_loop: Duration,
    /// Minimum healthy weight sum for the service to be up (keepalived's
    /// `quorum`).
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// Tolerance around the quorum before changing state.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hysteresis: u32,
    /// Where traffic goes when no real server is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SocketAddr>,
    /// Keep failed real servers with weight 0 instead of removing them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inhibit_on_failure: bool,
    /// The real servers behind the VIP.
    pub real_servers: Vec<RealServer>,
}

impl VirtualService {
    /// The ports it serves: `port`, or `ports`.
    pub fn spans(&self) -> Vec<PortSpan> {
        match self.port {
            Some(p) => vec![PortSpan::one(p.get() as u16)],
            None => self.ports.clone(),
        }
    }

    /// The port it is named and checked by: `port`, or the first of
    /// `ports`; 0 when it has neither (which validation refuses).
    pub fn first_port(&self) -> u16 {
        self.spans().first().map_or(0, |s| s.first)
    }
}

/// A port, or a range of ports, of a service's `ports`: `443` or
/// `8000-8100` (both ends served).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpan {
    /// The first port.
    pub first: u16,
    /// The last port; `first` for one port.
    pub last: u16,
}

impl PortSpan {
    /// The one port `port`.
    pub fn one(port: u16) -> Self {
        Self { first: port, last: port }
    }

    /// Whether it shares a port with `other`.
    pub fn overlaps(&self, other: &PortSpan) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// `80`, or a range of two ports joined by `sep` (`8000-8100` as the
    /// inventory and nft write it, `8000:8100` as iptables does), each
    /// part exactly a number. The caller words the error: a keepalived
    /// import must not quote what it cannot read.
    ///
    /// # Errors
    /// [`SpanError`]: a part that is no port 1–65535, or a range whose
    /// first port is past its last.
    pub fn parse_with(s: &str, sep: char) -> Result<Self, SpanError> {
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(SpanError::NotAPort),
        };
        let span = match s.split_once(sep) {
            Some((a, b)) => Self { first: port(a)?, last: port(b)? },
            None => Self::one(port(s)?),
        };
        match span.first <= span.last {
            true => Ok(span),
            false => Err(SpanError::Backwards(span)),
        }
    }
}

/// Why text is no [`PortSpan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanError {
    /// A part is no port 1–65535.
    NotAPort,
    /// The range runs backwards: its first port is past its last.
    Backwards(PortSpan),
}

/// `80` or `8000-8100`, as nft writes them.
impl std::fmt::Display for PortSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first == self.last {
            true => write!(f, "{}", self.first),
            false => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

impl std::str::FromStr for PortSpan {
    type Err = String;

    /// `443` or `8000-8100`, blanks around either port allowed.
    fn from_str(s: &str) -> Result<Self, String> {
        let trimmed = match s.split_once('-') {
            Some((a, b)) => format!("{}-{}", a.trim(), b.trim()),
            None => s.trim().to_owned(),
        };
        Self::parse_with(&trimmed, '-').map_err(|e| match e {
            SpanError::NotAPort => format!(
                "`{s}` is not a port (1–65535) or a range such as 8000-8100"
            ),
            SpanError::Backwards(span) => format!(
                "`{s}` runs backwards — write {}-{}",
                span.last, span.first
            ),
        })
    }
}

impl Serialize for PortSpan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.first == self.last {
            true => s.serialize_u16(self.first),
            false => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for PortSpan {
    fn deserialize<D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Text(String),
        }
        let text = match Form::deserialize(d)? {
            Form::Number(n) => n.to_string(),
            Form::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn default_delay_loop() -> Duration {
    Duration::from_secs(60)
}

fn default_quorum() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Transport protocol of a virtual service.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// IPVS scheduling algorithms, by their kernel names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Locality-based least connections.
    Lblc,
    /// Locality-based least connections with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
}

impl Scheduler {
    /// Whether the scheduler already pins a client to one real server by
    /// hashing, which makes persistence redundant.
    pub(crate) fn is_hashing(self) -> bool {
        matches!(self, Scheduler::Sh | Scheduler::Dh | Scheduler::Mh)
    }

    /// Whether the nftables data plane can carry it out: it has no
    /// connection state, so only schedulers that are a function of the
    /// flow (spread by a weighted hash of it) fit.
    pub(crate) fn is_stateless(self) -> bool {
        matches!(
            self,
            Scheduler::Rr | Scheduler::Wrr | Scheduler::Sh | Scheduler::Mh
        )
    }
}

/// How a director hands packets to a real server (keepalived's `lb_kind`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Direct routing: rewrite the destination MAC.
    #[default]
    Dr,
    /// NAT (not supported yet).
    Nat,
    /// IP-in-IP tunnelling (not supported yet).
    Tun,
}

/// A real server of one virtual service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// A managed real-server host, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// An unmanaged server's address; lbdeploy never connects to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// The port on the real server (DR keeps the service port).
    pub port: Port,
    /// Scheduling weight; 0 drains the server.
    #[serde(default = "default_weight")]
    pub weight: Weight,
    /// Health checks; the server is up only when all pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

fn default_weight() -> Weight {
    Weight::new(1).expect("1 is a valid weight")
}

// ===== notification and lab =====

/// Where state changes are reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// keepalived's `notification_email` and `smtp_server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// A program and its arguments, run directly (no shell) with the
    /// event's words appended: `[/usr/local/bin/notify, --flag]`; a shell
    /// only when asked for, as `[/bin/sh, -c, "…"]`. A single word may be
    /// written as a plain string; a string with spaces is refused (it
    /// would be taken for a program's path, see [`exec_argv`]).
    #[serde(
        default,
        deserialize_with = "exec_argv",
        skip_serializing_if = "Option::is_none"
    )]
    pub exec: Option<Vec<String>>,
    /// Who runs `exec`, when not `script_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_user: Option<ScriptUser>,
    /// An `http://` URL that receives each event as a JSON POST: inline,
    /// or from the controller's environment or a file, so a token in its
    /// path or query stays out of the inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// Where a webhook's URL comes from. `webhook: http://…` is the URL
/// inline; the mapping form gives it exactly one way — `url`, `url_env`
/// (a variable of the controller's environment) or `url_file` (a file on
/// the controller) — and the controller resolves it when it renders the
/// agents' files, so the agent only ever sees a URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Webhook {
    /// `webhook: http://…`.
    Url(String),
    /// `webhook: { url | url_env | url_file: … }`.
    Source(WebhookSource),
}

/// The mapping form of [`Webhook`]; validation wants exactly one field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSource {
    /// The URL inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name of an environment variable on the controller holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// A file on the controller holding it (one trailing newline
    /// ignored), relative to the inventory's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// For an `https://` URL: a PEM file on the controller with the CAs
    /// the server's certificate must chain to, instead of the director's
    /// CA bundle (a private CA); relative to the inventory's directory.
    /// The controller reads it and ships it in the agent's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Webhook {
    /// The URL when it is written in the inventory itself.
    pub fn inline(&self) -> Option<&str> {
        match self {
            Self::Url(url) => Some(url),
            Self::Source(s) => s.url.as_deref(),
        }
    }

    /// The CA file an `https://` webhook is verified with, if given.
    pub fn ca_file(&self) -> Option<&Path> {
        match self {
            Self::Url(_) => None,
            Self::Source(s) => s.ca_file.as_deref(),
        }
    }

    /// Replace the inline URL, in whichever form it was written; nothing
    /// when the URL comes from elsewhere.
    pub fn set_inline(&mut self, url: String) {
        match self {
            Self::Url(u) => *u = url,
            Self::Source(WebhookSource { url: Some(u), .. }) => *u = url,
            Self::Source(_) => {}
        }
    }
}

/// A string or a mapping, by hand rather than `#[serde(untagged)]`: an
/// untagged enum reports any mistake as "did not match any variant",
/// where the mapping's own errors (an unknown field) say what is wrong.
impl<'de> Deserialize<'de> for Webhook {
    fn deserialize<D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Webhook;

            fn expecting(
                &self,
                f: &mut std::fmt::Formatter<'_>,
            ) -> std::fmt::Result {
                f.write_str(
                    "a URL, or a mapping with one of `url`, `url_env`, \
                     `url_file` (and an optional `ca_file`)",
                )
            }

            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> Result<Webhook, E> {
                Ok(Webhook::Url(v.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Webhook, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(map);
                WebhookSource::deserialize(d).map(Webhook::Source)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `exec:` as an argv list, or as one word. A string with whitespace is
/// refused with the list it probably means: it used to be run as a path
/// ("No such file") while the operator meant a command line, and running
/// it through a shell instead would make every quote in it matter.
///
/// # Errors
/// A string with whitespace, or neither a string nor a list of strings.
pub fn exec_argv<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Word(String),
        List(Vec<String>),
    }
    match Option::<Form>::deserialize(d) {
        Ok(None) => Ok(None),
        Ok(Some(Form::List(argv))) => Ok(Some(argv)),
        Ok(Some(Form::Word(w))) if !w.contains(char::is_whitespace) => {
            Ok(Some(vec![w]))
        }
        Ok(Some(Form::Word(line))) => {
            let words: Vec<String> = split_words(&line)
                .iter()
                .map(|w| match w.contains([' ', ',', '"']) {
                    true => format!("'{}'", w.escape_debug()),
                    false => w.escape_debug().to_string(),
                })
                .collect();
            Err(D::Error::custom(format!(
                "a command line in one string is not split — write the \
                 program and its arguments as a list: `[{}]` (for a \
                 shell: `[/bin/sh, -c, \"…\"]`)",
                words.join(", ")
            )))
        }
        Err(_) => Err(D::Error::custom(
            "expected a program and its arguments as a list, e.g. \
             `[/usr/local/bin/notify, --flag]`",
        )),
    }
}

/// A command line split into words as keepalived splits a script's
/// string: on whitespace, with single or double quotes grouping words
/// that hold spaces (the quotes themselves dropped); no other shell
/// syntax. The importer turns keepalived's `notify` strings into argv
/// lists with it, and `exec_argv` shows the list an operator meant.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// Email notification over SMTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// Recipients (`notification_email`).
    pub to: Vec<String>,
    /// Sender (`notification_email_from`).
    pub from: String,
    /// `host` or `host:port` (`smtp_server`); without a port, `tls`'s
    /// (25 in clear, 587 for STARTTLS, 465 for TLS).
    pub smtp_server: String,
    /// Give up after this long (`smtp_connect_timeout`).
    #[serde(default = "default_smtp_timeout")]
    pub timeout: Duration,
    /// How the connection to the server is protected; `none` is
    /// keepalived's plain relay.
    #[serde(default, skip_serializing_if = "SmtpTls::is_none")]
    pub tls: SmtpTls,
    /// With `tls`: a PEM file on the controller with the CAs the server's
    /// certificate must chain to, instead of the director's CA bundle;
    /// relative to the inventory's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// With `tls`: log in before sending (SMTP AUTH, RFC 4954).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SmtpAuth>,
}

impl Email {
    /// keepalived's kind: to a relay in clear, without logging in.
    pub fn relay(
        to: Vec<String>,
        from: String,
        smtp_server: String,
        timeout: Duration,
    ) -> Self {
        Self {
            to,
            from,
            smtp_server,
            timeout,
            tls: SmtpTls::None,
            ca_file: None,
            auth: None,
        }
    }
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

/// How an email's SMTP connection is protected.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// In clear, as keepalived speaks to its relay (port 25 by default).
    #[default]
    None,
    /// In clear until `STARTTLS` (RFC 3207), then TLS before anything of
    /// the message is sent; a server that does not offer it gets nothing
    /// (port 587 by default, the submission port).
    Starttls,
    /// TLS from the first byte (RFC 8314 §3.3; port 465 by default).
    Implicit,
}

impl SmtpTls {
    /// Whether the connection stays in clear.
    pub fn is_none(&self) -> bool {
        *self == Self::None
    }

    /// The port when `smtp_server` names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Implicit => 465,
        }
    }
}

/// SMTP AUTH's credentials: a user name, and the password from the
/// controller's environment or a file (never the inventory), which the
/// controller reads when it renders the agents' configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpAuth {
    /// The account.
    pub username: String,
    /// A variable of the controller's environment holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file on the controller holding it (only the owner may read it),
    /// relative to the inventory's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// The two extra hosts of the lab; real deployments leave this out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// Where `lbdeploy plan/apply` run from inside the lab.
    pub controller: IfAddr,
    /// Where test traffic to the VIP comes from: on the hosts' segment,
    /// or behind `router` on a segment of its own.
    pub client: IfAddr,
    /// A router between the client and the cluster, running BIRD: it
    /// peers with every director over BGP and spreads the client's flows
    /// over the directors that announce a VIP (ECMP). For inventories
    /// with `announce: bgp` services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<LabRouter>,
}

/// The lab's router: one leg on the hosts' segment (the directors' BGP
/// peer), one on the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabRouter {
    /// Its address on the hosts' segment: what the directors list under
    /// `bgp.peers`.
    pub address: IfAddr,
    /// Its address on the client's segment: the client's gateway.
    pub client_side: IfAddr,
    /// Its autonomous system.
    #[serde(rename = "as")]
    pub asn: Asn,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_as_keepalived_splits_them() {
        assert_eq!(split_words("/bin/x.sh a  b"), ["/bin/x.sh", "a", "b"]);
        assert_eq!(
            split_words("/bin/x 'two words' \"x y\"z ''"),
            ["/bin/x", "two words", "x yz", ""]
        );
        assert!(split_words("  ").is_empty());
    }

    #[test]
    fn exec_is_a_list_or_one_word() {
        let n = |y: &str| serde_yaml::from_str::<Notification>(y);
        let argv = n("exec: [/bin/n, --flag]").unwrap().exec.unwrap();
        assert_eq!(argv, ["/bin/n", "--flag"]);
        assert_eq!(n("exec: /bin/n").unwrap().exec.unwrap(), ["/bin/n"]);
        let err = n("exec: /bin/n --flag 'a b'").unwrap_err().to_string();
        assert!(err.contains("`[/bin/n, --flag, 'a b']`"), "{err}");
        assert!(n("exec: 3").is_err());
        assert_eq!(n("{}").unwrap().exec, None);
    }

    #[test]
    fn a_webhook_is_a_url_or_says_where_its_url_is() {
        let w = |y: &str| serde_yaml::from_str::<Notification>(y);
        let inline = w("webhook: http://h/x").unwrap().webhook.unwrap();
        assert_eq!(inline, Webhook::Url("http://h/x".into()));
        let env = w("webhook: { url_env: HOOK }").unwrap().webhook.unwrap();
        let source = WebhookSource {
            url_env: Some("HOOK".into()),
            ..Default::default()
        };
        assert_eq!(env, Webhook::Source(source));
        let err = w("webhook: { url_var: X }").unwrap_err().to_string();
        assert!(err.contains("unknown field `url_var`"), "{err}");
        assert!(w("webhook: 3").is_err());
        // Each form serialises as it was written.
        for y in ["webhook: http://h/x\n", "webhook:\n  url_file: u\n"] {
            assert_eq!(serde_yaml::to_string(&w(y).unwrap()).unwrap(), y);
        }
    }

    #[test]
    fn the_inline_url_is_replaced_in_its_own_form() {
        let mut url = Webhook::Url("http://a/".into());
        url.set_inline("http://b/".into());
        assert_eq!(url.inline(), Some("http://b/"));
        let mut source = Webhook::Source(WebhookSource {
            url: Some("http://a/".into()),
            ..Default::default()
        });
        source.set_inline("http://b/".into());
        assert_eq!(source.inline(), Some("http://b/"));
        let mut env = Webhook::Source(WebhookSource {
            url_env: Some("HOOK".into()),
            ..Default::default()
        });
        env.set_inline("http://b/".into());
        assert_eq!(env.inline(), None);
    }

    /// One reading of a port span for the inventory (`-`, blanks around
    /// the ports allowed) and for iptables rules (`:`, each part exactly
    /// a number); the errors say which is wrong, for each caller to word.
    #[test]
    fn port_spans_read_with_either_separator() {
        let span = |first, last| PortSpan { first, last };
        assert_eq!("8000 - 8100".parse(), Ok(span(8000, 8100)));
        assert_eq!(" 443 ".parse(), Ok(span(443, 443)));
        assert_eq!(
            PortSpan::parse_with("8000:8100", ':'),
            Ok(span(8000, 8100))
        );
        assert_eq!(PortSpan::parse_with(" 80", ':'), Err(SpanError::NotAPort));
        assert_eq!(PortSpan::parse_with("0", '-'), Err(SpanError::NotAPort));
        assert_eq!(
            PortSpan::parse_with("90:80", ':'),
            Err(SpanError::Backwards(span(90, 80)))
        );
        assert_eq!(
            "90-80".parse::<PortSpan>(),
            Err("`90-80` runs backwards — write 80-90".to_owned())
        );
    }
}
