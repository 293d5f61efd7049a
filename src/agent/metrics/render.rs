//! The metric families, rendered from the agent's [`Status`] — the same
//! answer `lbdeploy agent status --json` prints, so the two never
//! disagree — from the process's own CPU time and memory, and from the
//! generation `apply` last confirmed on the host. Pure.
//!
//! The status's mode details are read through small views of their own
//! (`Director`, `Realserver`): a field the status does not have (an older
//! or a real-server agent) is an absent family, never an error.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::exposition::{Exposition, Kind};
use crate::agent::check::stats::{Histogram, LATENCY_BOUNDS, ServerChecks};
use crate::agent::dataplane::stats::{Reconciles, Traffic, TrafficByService};
use crate::agent::status::Status;

/// The VRRP states an instance can be in, as the status spells them
/// (keepalived's words), and as the `state` label spells them.
pub const VRRP_STATES: [(&str, &str); 4] = [
    ("MASTER", "master"),
    ("BACKUP", "backup"),
    ("FAULT", "fault"),
    ("STOP", "stop"),
];

/// The process's own figures, read from `/proc/self` by the adapter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Process {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: f64,
}

/// A director's details, as far as the metrics read them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Director {
    vrrp_instances: Vec<Instance>,
    forwarding: Option<Forwarding>,
    real_server_checks: Vec<ServerChecks>,
    dataplane_reconciles: Option<Reconciles>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Instance {
    name: String,
    vrid: u8,
    state: String,
    priority: u8,
    effective_priority: u8,
    master_adver_interval_ms: u64,
    counters: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Forwarding {
    forwarding: Vec<String>,
    real_servers: BTreeMap<String, BTreeMap<IpAddr, bool>>,
    quorum: BTreeMap<String, bool>,
    last_error: Option<String>,
    traffic: TrafficByService,
    bgp: Option<Bgp>,
}

/// A director's BGP speaker, as far as the metrics read it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Bgp {
    vips: Vec<IpAddr>,
    announced: Vec<IpAddr>,
    sessions: Vec<Session>,
}

/// One session, as far as the metrics read it: the status rendered is
/// this agent's own, so `established` is always there.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Session {
    name: String,
    established: bool,
    bfd: Option<String>,
}

/// The families of each real server's [`Traffic`], with the field each
/// reads: a sample only where the data plane counted it.
#[allow(clippy::type_complexity)]
const TRAFFIC: [(&str, Kind, &str, fn(&Traffic) -> Option<f64>); 5] = [
    (
        "lbdeploy_real_server_packets_total",
        Kind::Counter,
        "Packets the data plane forwarded to the real server (the clients' \
         direction: with Direct Routing the replies bypass the director).",
        |t| Some(t.packets as f64),
    ),
    (
        "lbdeploy_real_server_bytes_total",
        Kind::Counter,
        "Bytes the data plane forwarded to the real server.",
        |t| Some(t.bytes as f64),
    ),
    (
        "lbdeploy_real_server_connections_total",
        Kind::Counter,
        "Connections scheduled to the real server (IPVS).",
        |t| t.connections.map(|n| n as f64),
    ),
    (
        "lbdeploy_real_server_active_connections",
        Kind::Gauge,
        "The real server's established connections (IPVS's ActiveConn).",
        |t| t.active_connections.map(f64::from),
    ),
    (
        "lbdeploy_real_server_inactive_connections",
        Kind::Gauge,
        "The real server's other connection entries (IPVS's InActConn).",
        |t| t.inactive_connections.map(f64::from),
    ),
];

/// A real server's details, as far as the metrics read them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Realserver {
    vips: Vec<Vip>,
    restores: u64,
    last_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Vip {
    address: String,
    on_lo: bool,
}

/// Counters of an instance's status that count refused packets, with
/// the `reason` label each gets.
const REJECTED: [(&str, &str); 5] = [
    ("bad_ttl", "bad_ttl"),
    ("bad_checksum", "bad_checksum"),
    ("auth_failures", "auth_failure"),
    ("other_errors", "malformed"),
    ("strangers", "stranger"),
];

/// The exposition of `status`, `process` and the host's `generation`.
pub fn render(
    status: &Status,
    process: Option<Process>,
    generation: Option<u64>,
) -> String {
    let mut e = Exposition::default();
    agent(&mut e, status, process);
    if let Some(g) = generation {
        e.family(
            "lbdeploy_agent_generation",
            Kind::Gauge,
            "The generation lbdeploy apply last confirmed on this host.",
        );
        e.sample("lbdeploy_agent_generation", &[], g as f64);
    }
    match status.mode {
        crate::inventory::Mode::Director => {
            let d = Director::deserialize(&status.details).unwrap_or_default();
            vrrp(&mut e, &d.vrrp_instances);
            forwarding(&mut e, &d);
        }
        crate::inventory::Mode::Realserver => {
            let r =
                Realserver::deserialize(&status.details).unwrap_or_default();
            realserver(&mut e, &r);
        }
    }
    e.finish()
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Seconds since the epoch of an RFC 3339 time the status wrote.
fn epoch(rfc3339: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

fn agent(e: &mut Exposition, s: &Status, process: Option<Process>) {
    let mode = s.mode.to_string();
    e.family(
        "lbdeploy_agent_build_info",
        Kind::Gauge,
        "The agent's version and mode; always 1.",
    );
    e.sample(
        "lbdeploy_agent_build_info",
        &[("version", &s.version), ("mode", &mode)],
        1.0,
    );
    e.family(
        "lbdeploy_agent_healthy",
        Kind::Gauge,
        "1 while the agent's work is in order (agent status's healthy).",
    );
    e.sample("lbdeploy_agent_healthy", &[], flag(s.healthy));
    e.family(
        "lbdeploy_agent_degraded_reasons",
        Kind::Gauge,
        "How many reasons agent status gives for being degraded (running, \
         but not as configured); 0 when it is not.",
    );
    #[allow(clippy::cast_precision_loss)] // a handful of reasons
    let reasons = s.degraded.len() as f64;
    e.sample("lbdeploy_agent_degraded_reasons", &[], reasons);
    if let Some(t) = epoch(&s.started_at) {
        e.family(
            "lbdeploy_agent_start_time_seconds",
            Kind::Gauge,
            "When the agent process started, in seconds since the epoch; \
             changes() of it counts restarts.",
        );
        e.sample("lbdeploy_agent_start_time_seconds", &[], t);
    }
    e.family(
        "lbdeploy_agent_config_info",
        Kind::Gauge,
        "The SHA-256 of the configuration in effect; always 1.",
    );
    e.sample(
        "lbdeploy_agent_config_info",
        &[("sha256", &s.config_sha256)],
        1.0,
    );
    if let Some(t) = epoch(&s.loaded_at) {
        e.family(
            "lbdeploy_agent_config_loaded_time_seconds",
            Kind::Gauge,
            "When the configuration in effect was loaded, in seconds since \
             the epoch.",
        );
        e.sample("lbdeploy_agent_config_loaded_time_seconds", &[], t);
    }
    e.family(
        "lbdeploy_agent_reloads_total",
        Kind::Counter,
        "Reloads (SIGHUP) since the agent started, successful or not.",
    );
    e.sample("lbdeploy_agent_reloads_total", &[], s.reloads as f64);
    e.family(
        "lbdeploy_agent_reload_failed",
        Kind::Gauge,
        "1 while the last reload was refused and the old configuration \
         runs.",
    );
    e.sample(
        "lbdeploy_agent_reload_failed",
        &[],
        flag(s.last_reload_error.is_some()),
    );
    e.family(
        "lbdeploy_agent_log_lines_dropped_total",
        Kind::Counter,
        "Log lines the agent could not write and dropped.",
    );
    e.sample(
        "lbdeploy_agent_log_lines_dropped_total",
        &[],
        s.log_lines_dropped as f64,
    );
    if let Some(p) = process {
        e.family(
            "lbdeploy_agent_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time the agent process used, in seconds.",
        );
        e.sample("lbdeploy_agent_cpu_seconds_total", &[], p.cpu_seconds);
        e.family(
            "lbdeploy_agent_resident_memory_bytes",
            Kind::Gauge,
            "The agent process's resident memory, in bytes.",
        );
        e.sample("lbdeploy_agent_resident_memory_bytes", &[], p.resident_bytes);
    }
}

/// How a gauge reads its value off an instance.
type Reading = fn(&Instance) -> f64;

fn vrrp(e: &mut Exposition, instances: &[Instance]) {
    if instances.is_empty() {
        return;
    }
    let labels = |i: &Instance| (i.name.clone(), i.vrid.to_string());
    e.family(
        "lbdeploy_vrrp_state",
        Kind::Gauge,
        "1 for the state each VRRP instance is in, 0 for the others.",
    );
    for i in instances {
        let (name, vrid) = labels(i);
        for (spelled, label) in VRRP_STATES {
            e.sample(
                "lbdeploy_vrrp_state",
                &[("vrrp_instance", &name), ("vrid", &vrid), ("state", label)],
                flag(i.state == spelled),
            );
        }
    }
    let gauges: [(&str, &str, Reading); 3] = [
        (
            "lbdeploy_vrrp_priority",
            "The instance's configured priority.",
            |i| f64::from(i.priority),
        ),
        (
            "lbdeploy_vrrp_effective_priority",
            "The priority in force: the configured one moved by tracking.",
            |i| f64::from(i.effective_priority),
        ),
        (
            "lbdeploy_vrrp_master_advert_interval_seconds",
            "Master_Adver_Interval in force, in seconds.",
            |i| i.master_adver_interval_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        for i in instances {
            let (n, vrid) = labels(i);
            e.sample(name, &[("vrrp_instance", &n), ("vrid", &vrid)], value(i));
        }
    }
    let counters = [
        ("lbdeploy_vrrp_transitions_total", "transitions", "State changes."),
        (
            "lbdeploy_vrrp_adverts_sent_total",
            "adverts_sent",
            "Adverts sent (one per destination).",
        ),
        (
            "lbdeploy_vrrp_adverts_received_total",
            "adverts_received",
            "Adverts that passed every check.",
        ),
        (
            "lbdeploy_vrrp_send_errors_total",
            "send_errors",
            "Adverts or announcements the kernel refused to send.",
        ),
        (
            "lbdeploy_vrrp_vip_errors_total",
            "vip_errors",
            "VIP additions or removals netlink refused.",
        ),
        (
            "lbdeploy_vrrp_vip_restores_total",
            "vip_restores",
            "VIPs removed by someone else while master, and put back.",
        ),
    ];
    for (name, key, help) in counters {
        e.family(name, Kind::Counter, help);
        for i in instances {
            let (n, vrid) = labels(i);
            let v = i.counters.get(key).copied().unwrap_or(0);
            e.sample(name, &[("vrrp_instance", &n), ("vrid", &vrid)], v as f64);
        }
    }
    let rejected = "lbdeploy_vrrp_packets_rejected_total";
    e.family(rejected, Kind::Counter, "VRRP packets refused, by reason.");
    for i in instances {
        let (n, vrid) = labels(i);
        for (key, reason) in REJECTED {
            let v = i.counters.get(key).copied().unwrap_or(0);
            e.sample(
                rejected,
                &[("vrrp_instance", &n), ("vrid", &vrid), ("reason", reason)],
                v as f64,
            );
        }
    }
}

/// Each [`TRAFFIC`] family that has a sample, with its samples.
fn traffic(e: &mut Exposition, traffic: &TrafficByService) {
    for (name, kind, help, read) in TRAFFIC {
        let samples: Vec<(&str, String, f64)> = traffic
            .iter()
            .flat_map(|(service, servers)| {
                servers.iter().filter_map(|(address, t)| {
                    Some((service.as_str(), address.to_string(), read(t)?))
                })
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        e.family(name, kind, help);
        for (service, address, value) in samples {
            e.sample(
                name,
                &[("service", service), ("address", &address)],
                value,
            );
        }
    }
}

/// Whether each VIP is announced, each session up, each BFD session up.
fn bgp(e: &mut Exposition, b: &Bgp) {
    e.family(
        "lbdeploy_bgp_announced",
        Kind::Gauge,
        "1 while this director announces the VIP over BGP.",
    );
    for vip in &b.vips {
        let v = vip.to_string();
        let on = b.announced.contains(vip);
        e.sample("lbdeploy_bgp_announced", &[("vip", &v)], flag(on));
    }
    e.family(
        "lbdeploy_bgp_session_up",
        Kind::Gauge,
        "1 while the BGP session is Established.",
    );
    for s in &b.sessions {
        let up = flag(s.established);
        e.sample("lbdeploy_bgp_session_up", &[("peer", &s.name)], up);
    }
    e.family(
        "lbdeploy_bgp_bfd_up",
        Kind::Gauge,
        "1 while the session's BFD session is Up (BFD on only).",
    );
    for s in &b.sessions {
        if let Some(bfd) = &s.bfd {
            let up = flag(bfd == "Up");
            e.sample("lbdeploy_bgp_bfd_up", &[("peer", &s.name)], up);
        }
    }
}

fn forwarding(e: &mut Exposition, d: &Director) {
    if let Some(f) = &d.forwarding {
        e.family(
            "lbdeploy_dataplane_error",
            Kind::Gauge,
            "1 while the data plane's last attempt failed.",
        );
        e.sample("lbdeploy_dataplane_error", &[], flag(f.last_error.is_some()));
        e.family(
            "lbdeploy_service_quorum",
            Kind::Gauge,
            "1 while the service has its quorum of live weight.",
        );
        for (service, up) in &f.quorum {
            e.sample(
                "lbdeploy_service_quorum",
                &[("service", service)],
                flag(*up),
            );
        }
        e.family(
            "lbdeploy_service_forwarding",
            Kind::Gauge,
            "1 while this director forwards the service.",
        );
        for service in f.quorum.keys() {
            let on = f.forwarding.iter().any(|s| s == service);
            e.sample(
                "lbdeploy_service_forwarding",
                &[("service", service)],
                flag(on),
            );
        }
        e.family(
            "lbdeploy_real_server_up",
            Kind::Gauge,
            "1 while the real server passes its checks.",
        );
        for (service, servers) in &f.real_servers {
            for (address, up) in servers {
                let a = address.to_string();
                e.sample(
                    "lbdeploy_real_server_up",
                    &[("service", service), ("address", &a)],
                    flag(*up),
                );
            }
        }
        traffic(e, &f.traffic);
        if let Some(b) = &f.bgp {
            bgp(e, b);
        }
    }
    if let Some(r) = &d.dataplane_reconciles {
        e.family(
            "lbdeploy_dataplane_reconcile_errors_total",
            Kind::Counter,
            "Data-plane reconciles that failed.",
        );
        e.sample(
            "lbdeploy_dataplane_reconcile_errors_total",
            &[],
            r.errors as f64,
        );
        e.family(
            "lbdeploy_dataplane_reconcile_duration_seconds",
            Kind::Histogram,
            "How long each data-plane reconcile took.",
        );
        histogram(
            e,
            "lbdeploy_dataplane_reconcile_duration_seconds",
            &[],
            &r.duration,
        );
    }
    checks(e, &d.real_server_checks);
}

fn histogram(
    e: &mut Exposition,
    name: &str,
    labels: &[(&str, &str)],
    h: &Histogram,
) {
    e.histogram(name, labels, &LATENCY_BOUNDS, &h.buckets, h.sum_seconds);
}

fn checks(e: &mut Exposition, servers: &[ServerChecks]) {
    if servers.is_empty() {
        return;
    }
    let with = |s: &ServerChecks| (s.address.to_string(), s.port.to_string());
    e.family(
        "lbdeploy_real_server_weight",
        Kind::Gauge,
        "The real server's weight in the inventory.",
    );
    for s in servers {
        let (a, p) = with(s);
        e.sample(
            "lbdeploy_real_server_weight",
            &[("service", &s.service), ("address", &a), ("port", &p)],
            f64::from(s.weight),
        );
    }
    e.family(
        "lbdeploy_check_runs_total",
        Kind::Counter,
        "Health-check probes run, by result.",
    );
    for s in servers {
        let (a, p) = with(s);
        for (result, n) in [("success", s.runs_ok), ("failure", s.runs_failed)]
        {
            e.sample(
                "lbdeploy_check_runs_total",
                &[
                    ("service", &s.service),
                    ("address", &a),
                    ("port", &p),
                    ("result", result),
                ],
                n as f64,
            );
        }
    }
    e.family(
        "lbdeploy_check_consecutive_failures",
        Kind::Gauge,
        "Probes failed since the real server's last success.",
    );
    for s in servers {
        let (a, p) = with(s);
        e.sample(
            "lbdeploy_check_consecutive_failures",
            &[("service", &s.service), ("address", &a), ("port", &p)],
            s.consecutive_failures as f64,
        );
    }
    e.family(
        "lbdeploy_check_certificate_expiry_timestamp_seconds",
        Kind::Gauge,
        "When the certificate a check over TLS last saw expires (Unix time).",
    );
    for s in servers {
        let Some(at) = s.certificate_expiry else { continue };
        let (a, p) = with(s);
        e.sample(
            "lbdeploy_check_certificate_expiry_timestamp_seconds",
            &[("service", &s.service), ("address", &a), ("port", &p)],
            at as f64,
        );
    }
    e.family(
        "lbdeploy_check_duration_seconds",
        Kind::Histogram,
        "How long each health-check probe took, passed or failed.",
    );
    for s in servers {
        let (a, p) = with(s);
        histogram(
            e,
            "lbdeploy_check_duration_seconds",
            &[("service", &s.service), ("address", &a), ("port", &p)],
            &s.latency,
        );
    }
}

fn realserver(e: &mut Exposition, r: &Realserver) {
    e.family(
        "lbdeploy_realserver_vip_on_lo",
        Kind::Gauge,
        "1 while the VIP is on lo.",
    );
    for v in &r.vips {
        e.sample(
            "lbdeploy_realserver_vip_on_lo",
            &[("vip", &v.address)],
            flag(v.on_lo),
        );
    }
    e.family(
        "lbdeploy_realserver_restores_total",
        Kind::Counter,
        "Times the agent put a VIP or an ARP setting back.",
    );
    e.sample("lbdeploy_realserver_restores_total", &[], r.restores as f64);
    e.family(
        "lbdeploy_realserver_error",
        Kind::Gauge,
        "1 while the agent's last attempt to converge failed.",
    );
    e.sample("lbdeploy_realserver_error", &[], flag(r.last_error.is_some()));
}

/// The generation number in the text of the host's generation file;
/// `None` when it holds no number (no apply confirmed yet).
pub fn generation(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The process's CPU time and resident memory from the text of
/// `/proc/self/stat` and `/proc/self/status`; `None` when either does
/// not read as Linux writes it.
pub fn process(stat: &str, status: &str) -> Option<Process> {
    // Fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // USER_HZ is 100 on every Linux architecture's ABI.
    let cpu_seconds = (ticks(11)? + ticks(12)?) as f64 / 100.0;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Process { cpu_seconds, resident_bytes: (kib * 1024) as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::metrics::valid_name;
    use crate::inventory::Mode;
    use std::collections::BTreeSet;

    fn director() -> Status {
        let mut latency = Histogram::default();
        latency.observe(std::time::Duration::from_millis(3));
        Status::example(
            Mode::Director,
            serde_json::json!({
                "vrrp_instances": [{
                    "name": "VI_\"1\"\\\n", "vrid": 51, "state": "MASTER",
                    "priority": 150, "effective_priority": 140,
                    "master_adver_interval_ms": 1000,
                    "counters": { "adverts_sent": 12, "transitions": 1,
                                  "auth_failures": 3, "strangers": 4 }
                }],
                "forwarding": {
                    "master_of": ["VI_1"], "forwarding": ["web"],
                    "real_servers": { "web": { "10.0.0.21": true,
                                               "10.0.0.22": false } },
                    "quorum": { "web": true }, "last_error": null,
                    "traffic": { "web": {
                        "10.0.0.21": { "packets": 120, "bytes": 9000,
                                       "connections": 7,
                                       "active_connections": 2,
                                       "inactive_connections": 1 },
                        "10.0.0.22": { "packets": 5, "bytes": 300 } } },
                    "bgp": {
                        "running": true,
                        "vips": ["10.20.0.100", "10.20.0.101"],
                        "announced": ["10.20.0.100"],
                        "sessions": [{ "name": "peer_10_0_0_1",
                                       "state": "up",
                                       "info": "Established",
                                       "established": true,
                                       "exported": ["10.20.0.100/32"],
                                       "bfd": "Down" }]
                    }
                },
                "real_server_checks": [{
                    "service": "web", "address": "10.0.0.21", "port": 80,
                    "weight": 3, "runs_ok": 5, "runs_failed": 1,
                    "consecutive_failures": 0, "latency": latency,
                    "certificate_expiry": 1_800_000_000u64
                }],
                "dataplane_reconciles": { "errors": 1, "duration": latency },
            }),
        )
    }

    /// The format's rules, line by line: every family has one HELP and
    /// one TYPE line before its samples, each name is declared once,
    /// samples belong to the family above them (a histogram's with its
    /// suffixes), counters end in `_total`, and label values hold no raw
    /// line feed or unescaped quote.
    fn well_formed(text: &str) -> Result<(), String> {
        let mut declared = BTreeSet::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("");
                if !declared.insert(name.to_owned()) {
                    return Err(format!("{name} declared twice"));
                }
                current = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(line)?;
                if !declared.contains(name) {
                    return Err(format!("TYPE before HELP: {line}"));
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter without _total: {name}"));
                }
                current = Some((name.to_owned(), kind.to_owned()));
            } else {
                let (family, kind) = current.as_ref().ok_or(line)?;
                let name_end = line.find(['{', ' ']).ok_or(line)?;
                let name = &line[..name_end];
                let ok = name == family
                    || kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{family}{s}"));
                if !ok || !valid_name(name) {
                    return Err(format!("{name} outside its family: {line}"));
                }
                let value = line.rsplit(' ').next().ok_or(line)?;
                let parses = value.parse::<f64>().is_ok()
                    || ["+Inf", "-Inf", "NaN"].contains(&value);
                if !parses {
                    return Err(format!("bad value: {line}"));
                }
                if let Some(labels) = line[name_end..].strip_prefix('{') {
                    let labels = &labels[..labels.rfind('}').ok_or(line)?];
                    // Unescaped, every `"` opens or closes a value.
                    let unescaped =
                        labels.replace("\\\\", "").replace("\\\"", "");
                    if unescaped.matches('"').count() % 2 != 0 {
                        return Err(format!("bad quoting: {line}"));
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn a_director_renders_every_family_well_formed() {
        let text = render(
            &director(),
            Some(Process { cpu_seconds: 1.5, resident_bytes: 4096.0 }),
            Some(7),
        );
        well_formed(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let expect = [
            "lbdeploy_agent_build_info{version=\"0.1.0\",mode=\"director\"} 1\n",
            "lbdeploy_agent_reloads_total 2\n",
            "lbdeploy_agent_start_time_seconds 1767225600\n",
            "lbdeploy_agent_cpu_seconds_total 1.5\n",
            "lbdeploy_agent_generation 7\n",
            "lbdeploy_vrrp_state{vrrp_instance=\"VI_\\\"1\\\"\\\\\\n\",vrid=\"51\",state=\"master\"} 1\n",
            "lbdeploy_vrrp_state{vrrp_instance=\"VI_\\\"1\\\"\\\\\\n\",vrid=\"51\",state=\"backup\"} 0\n",
            "lbdeploy_vrrp_effective_priority{vrrp_instance=\"VI_\\\"1\\\"\\\\\\n\",vrid=\"51\"} 140\n",
            "reason=\"auth_failure\"} 3\n",
            "reason=\"stranger\"} 4\n",
            "lbdeploy_real_server_up{service=\"web\",address=\"10.0.0.22\"} 0\n",
            "lbdeploy_service_quorum{service=\"web\"} 1\n",
            "lbdeploy_real_server_weight{service=\"web\",address=\"10.0.0.21\",port=\"80\"} 3\n",
            "lbdeploy_check_runs_total{service=\"web\",address=\"10.0.0.21\",port=\"80\",result=\"failure\"} 1\n",
            "lbdeploy_check_certificate_expiry_timestamp_seconds{service=\"web\",address=\"10.0.0.21\",port=\"80\"} 1800000000\n",
            "lbdeploy_check_duration_seconds_bucket{service=\"web\",address=\"10.0.0.21\",port=\"80\",le=\"0.005\"} 1\n",
            "lbdeploy_dataplane_reconcile_errors_total 1\n",
            "lbdeploy_dataplane_reconcile_duration_seconds_count 1\n",
            "lbdeploy_real_server_packets_total{service=\"web\",address=\"10.0.0.21\"} 120\n",
            "lbdeploy_real_server_bytes_total{service=\"web\",address=\"10.0.0.22\"} 300\n",
            "lbdeploy_real_server_connections_total{service=\"web\",address=\"10.0.0.21\"} 7\n",
            "lbdeploy_real_server_active_connections{service=\"web\",address=\"10.0.0.21\"} 2\n",
            "lbdeploy_real_server_inactive_connections{service=\"web\",address=\"10.0.0.21\"} 1\n",
            "lbdeploy_bgp_announced{vip=\"10.20.0.100\"} 1\n",
            "lbdeploy_bgp_announced{vip=\"10.20.0.101\"} 0\n",
            "lbdeploy_bgp_session_up{peer=\"peer_10_0_0_1\"} 1\n",
            "lbdeploy_bgp_bfd_up{peer=\"peer_10_0_0_1\"} 0\n",
        ];
        for e in expect {
            assert!(text.contains(e), "missing {e:?} in\n{text}");
        }
        // What the data plane did not count has no sample.
        let unknown =
            "active_connections{service=\"web\",address=\"10.0.0.22\"}";
        assert!(!text.contains(unknown), "{text}");
    }

    #[test]
    fn a_real_server_and_an_empty_status_render_well_formed() {
        let rs = Status::example(
            Mode::Realserver,
            serde_json::json!({
                "vips": [{ "address": "10.0.0.200", "on_lo": true,
                           "added_by_agent": true }],
                "restores": 2, "last_error": "x",
            }),
        );
        let text = render(&rs, None, None);
        well_formed(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            text.contains(
                "lbdeploy_realserver_vip_on_lo{vip=\"10.0.0.200\"} 1\n"
            )
        );
        assert!(text.contains("lbdeploy_realserver_error 1\n"));
        assert!(!text.contains("cpu_seconds"), "{text}");
        assert!(!text.contains("generation"), "{text}");
        // Details the renderer does not understand are families left out.
        let odd = Status::example(
            Mode::Director,
            serde_json::json!({ "vrrp_instances": 3 }),
        );
        let text = render(&odd, None, None);
        well_formed(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("lbdeploy_agent_healthy 1\n"), "{text}");
        assert!(text.contains("lbdeploy_agent_degraded_reasons 0\n"));
        assert!(!text.contains("lbdeploy_vrrp"), "{text}");
        let degraded = Status {
            healthy: false,
            degraded: vec!["scheduler wlc needs IPVS".into()],
            ..odd
        };
        let text = render(&degraded, None, None);
        assert!(text.contains("lbdeploy_agent_degraded_reasons 1\n"));
    }

    #[test]
    fn the_checker_catches_what_it_checks() {
        assert!(well_formed("x 1\n").is_err(), "a sample without family");
        let twice = "# HELP a A.\n# TYPE a gauge\n# HELP a A.\n";
        assert!(well_formed(twice).is_err());
        let counter = "# HELP a A.\n# TYPE a counter\n";
        assert!(well_formed(counter).is_err());
        let quote = "# HELP a A.\n# TYPE a gauge\na{l=\"x\"\"} 1\n";
        assert!(well_formed(quote).is_err());
        let value = "# HELP a A.\n# TYPE a gauge\na one\n";
        assert!(well_formed(value).is_err());
    }

    #[test]
    fn the_generation_is_a_number_or_nothing() {
        assert_eq!(generation("12\n"), Some(12));
        assert_eq!(generation(""), None);
        assert_eq!(generation("x"), None);
    }

    #[test]
    fn cpu_and_memory_are_read_as_linux_writes_them() {
        let stat = "42 (lbdeploy (x)) S 1 42 42 0 -1 4194560 500 0 0 0 \
                    150 50 0 0 20 0 3 0 100 1000000 300";
        let status = "Name:\tlbdeploy\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(
            process(stat, status),
            Some(Process { cpu_seconds: 2.0, resident_bytes: 5_242_880.0 })
        );
        assert_eq!(process("garbage", status), None);
        assert_eq!(process(stat, "Name: x\n"), None);
    }
}
