//! `lbdeploy status`, the pure part: the one script each host runs, its
//! answer read back (bounded, every failure that host's error), the
//! warnings drawn from all hosts together, and the table for people.
//!
//! # Answer format
//! The script prints sections, each opened by `== NAME NONCE` where NONCE
//! is a random token of this query: no byte the agent or the host prints
//! can open or close a section.
//!
//! ```text
//! lbdeploy-status 1 NONCE
//! == agent NONCE        `lbdeploy agent status --json` (or its error)
//! == addr NONCE         `ip -o addr show`
//! == arp NONCE          `IFACE.KEY VALUE` for the ARP sysctls
//! == generation NONCE   the host's committed generation
//! == end NONCE
//! ```
//!
//! # JSON
//! [`Report`] is the schema of `lbdeploy status --json` (documented in the
//! README); fields are only ever added.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::agent::dataplane::stats::Traffic;
use crate::agent::status::{Status, bgp_session_up};
use crate::inventory::Mode;
use crate::inventory::drained::Drained;
use crate::plan::facts::ip_addr_line;
use crate::util::shell;
use crate::util::terminal::escape;

/// The most bytes of one host's answer that are read: the agent's status
/// is a few KiB, its addresses a few hundred bytes each. Each section is
/// cut at its share on the host (`head -c`), and an answer longer than
/// this is refused as that host's error.
pub(crate) const ANSWER_MAX: usize = 512 << 10;

/// The share of [`ANSWER_MAX`] the agent's status may take.
const AGENT_MAX: usize = 256 << 10;

/// The share of [`ANSWER_MAX`] the address list may take.
const ADDR_MAX: usize = 192 << 10;

/// The ARP sysctls a real server's suppression is judged by.
const ARP_KEYS: [&str; 2] = ["arp_ignore", "arp_announce"];

/// The script one host runs: `binary` is the agent binary there.
pub(crate) fn script(binary: &str, nonce: &str) -> String {
    let b = shell::quote(binary);
    let mut s = format!("echo 'lbdeploy-status 1 {nonce}'\n");
    s += &format!(
        "echo '== agent {nonce}'\n\
         {b} agent status --json 2>&1 | head -c {AGENT_MAX}; echo\n\
         echo '== addr {nonce}'\n\
         ip -o addr show 2>&1 | head -c {ADDR_MAX}\n\
         echo '== arp {nonce}'\n"
    );
    for iface in ["all", "lo"] {
        for key in ARP_KEYS {
            s += &format!(
                "echo \"{iface}.{key} $(cat /proc/sys/net/ipv4/conf/{iface}/{key} \
                 2>/dev/null | head -c 16)\"\n"
            );
        }
    }
    s += &format!(
        "echo '== generation {nonce}'\n\
         head -c 32 {}/generation 2>/dev/null; echo\n\
         echo '== end {nonce}'\n",
        crate::plan::facts::STATE_DIR
    );
    s
}

/// One VRRP instance as a director reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceView {
    /// The instance.
    pub name: String,
    /// `MASTER`, `BACKUP`, `FAULT`, … as the agent says.
    pub state: String,
    /// The configured priority.
    pub priority: u64,
    /// The priority in force (tracking moves it).
    pub effective_priority: u64,
    /// Why it is in fault, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The instance's VIPs this host holds now (from its addresses).
    pub vips_held: Vec<IpAddr>,
    /// The state it left last and when (RFC 3339), as
    /// `{ "from": "BACKUP", "at": "…" }`; absent before the first change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition: Option<LastTransition>,
}

/// A VRRP instance's last state change, as its agent reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastTransition {
    /// The state left.
    pub from: String,
    /// When, RFC 3339, as the host's clock says.
    pub at: String,
}

/// A director's BGP speaker, from its agent's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpView {
    /// The VIPs it announces now.
    #[serde(default)]
    pub announced: Vec<IpAddr>,
    /// Its sessions.
    #[serde(default)]
    pub sessions: Vec<SessionView>,
    /// Why BIRD could not be run or steered, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One BGP session as a director's BIRD reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// BIRD's protocol name (`peer_ADDRESS`).
    pub name: String,
    /// BIRD's detail: the BGP state first (`Established`).
    pub info: String,
    /// Whether the session is up, as the agent said; `None` from an agent
    /// older than the field ([`bgp_session_up`] then reads `info`). Not
    /// in this report's JSON, whose readers have `info`.
    #[serde(default, skip_serializing)]
    pub established: Option<bool>,
    /// What BIRD exports to the peer.
    #[serde(default)]
    pub exported: Vec<String>,
    /// The BFD session's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
}

impl SessionView {
    /// Whether the session is up.
    fn is_up(&self) -> bool {
        bgp_session_up(self.established, &self.info)
    }
}

/// One real server as one director sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealServerView {
    /// The service.
    pub service: String,
    /// The real server's address.
    pub address: IpAddr,
    /// Whether its checks pass.
    pub up: bool,
    /// The weight the director forwards to it with (0 while drained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// What this director's data plane counted of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// Why it is down, as this director's checks said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Drained on this director (`lbdeploy drain`): weight 0.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
    /// When the certificate its check over TLS last saw expires, in
    /// seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_expiry: Option<u64>,
}

/// How long before a real server's certificate expires `status` warns:
/// two weeks, time for a renewal to go through change control.
pub const CERTIFICATE_WARNING: u64 = 14 * 86_400;

/// What one host's agent says, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    /// `healthy`, `degraded` or `unhealthy`.
    pub health: String,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
    /// The agent process.
    pub pid: u32,
    /// The agent's version.
    pub version: String,
}

/// One host in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostView {
    /// Inventory name.
    pub name: String,
    /// Director or real server.
    pub role: Mode,
    /// Why the host could not be asked or answered nonsense; the other
    /// fields are empty then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why its agent could not be asked (not running), when the host was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_error: Option<String>,
    /// Its agent, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentView>,
    /// The generation committed on the host.
    pub generation: Option<u64>,
    /// A director's VRRP instances.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceView>,
    /// A director's real servers, by service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<RealServerView>,
    /// A real server's addresses on `lo` other than loopback.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lo_vips: Vec<IpAddr>,
    /// A real server's ARP sysctls, `IFACE.KEY` → value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub arp: BTreeMap<String, String>,
    /// A director's BGP speaker, when it has a `bgp:` block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpView>,
}

impl HostView {
    /// A host that could not be asked.
    pub fn failed(name: &str, role: Mode, error: String) -> Self {
        HostView {
            name: name.to_owned(),
            role,
            error: Some(error),
            agent_error: None,
            agent: None,
            generation: None,
            instances: Vec::new(),
            real_servers: Vec::new(),
            lo_vips: Vec::new(),
            arp: BTreeMap::new(),
            bgp: None,
        }
    }
}

/// The whole answer of `lbdeploy status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The schema's version.
    pub format: u32,
    /// The inventory's cluster.
    pub cluster: String,
    /// The controller's latest generation.
    pub generation: Option<u64>,
    /// What needs attention, worst first; empty when all is well.
    pub warnings: Vec<String>,
    /// Every host asked, inventory order.
    pub hosts: Vec<HostView>,
}

impl Report {
    /// All well: no warning (every problem is one).
    pub fn ok(&self) -> bool {
        self.warnings.is_empty()
    }
}

/// Split the answer into its sections, checking the header and the end.
fn sections<'a>(
    text: &'a str,
    nonce: &str,
) -> Result<BTreeMap<&'a str, &'a str>, String> {
    let header = format!("lbdeploy-status 1 {nonce}\n");
    let Some(mut rest) = text.strip_prefix(&header) else {
        return Err("the answer does not start with the status header (a \
                    login banner, or a shell that is not sh?)"
            .to_owned());
    };
    let mut out = BTreeMap::new();
    let mut name: Option<&str> = None;
    let mut body_start = rest;
    let close = |name: Option<&'a str>,
                 start: &'a str,
                 at: &'a str,
                 out: &mut BTreeMap<&'a str, &'a str>| {
        if let Some(n) = name {
            out.insert(n, &start[..start.len() - at.len()]);
        }
    };
    loop {
        let opener = "== ";
        let Some(i) = find_marker(rest, opener, nonce) else {
            return Err("the answer was cut short".to_owned());
        };
        let at = &rest[i..];
        close(name, body_start, at, &mut out);
        let line_end = at.find('\n').map_or(at.len(), |e| e + 1);
        let section = at[opener.len()..].split(' ').next().unwrap_or_default();
        if section == "end" {
            return Ok(out);
        }
        name = Some(section);
        rest = &at[line_end..];
        body_start = rest;
    }
}

/// Where the next `== NAME NONCE` line starts in `text`.
fn find_marker(text: &str, opener: &str, nonce: &str) -> Option<usize> {
    let mut from = 0;
    while from <= text.len() {
        let i = from + text[from..].find(opener)?;
        let line_start = i == 0 || text.as_bytes()[i - 1] == b'\n';
        let line = text[i..].split('\n').next().unwrap_or_default();
        if line_start && line.ends_with(&format!(" {nonce}")) {
            return Some(i);
        }
        from = i + opener.len();
    }
    None
}

/// Read one host's answer. `vips` are each VRRP instance's VIPs, from the
/// inventory.
///
/// # Errors
/// The host's error: an answer too long, cut short or not this script's.
pub(crate) fn parse(
    name: &str,
    role: Mode,
    answer: &[u8],
    nonce: &str,
    vips: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<HostView, String> {
    if answer.len() > ANSWER_MAX {
        return Err(format!(
            "the answer is longer than {ANSWER_MAX} bytes: refused"
        ));
    }
    let text = String::from_utf8_lossy(answer);
    let s = sections(&text, nonce)?;
    let mut view = HostView::failed(name, role, String::new());
    view.error = None;
    let agent_text = s.get("agent").copied().unwrap_or_default().trim();
    match crate::agent::status::decode(agent_text) {
        Ok(status) => agent(&mut view, &status),
        Err(_) => {
            let first = agent_text.lines().next().unwrap_or("no answer");
            let first = first.trim_start_matches("lbdeploy: error: ");
            view.agent_error = Some(first.to_owned());
        }
    }
    // `ip -o addr show` lines, as the facts script reads them.
    let addrs: Vec<_> = s
        .get("addr")
        .copied()
        .unwrap_or_default()
        .lines()
        .filter_map(ip_addr_line)
        .collect();
    for inst in &mut view.instances {
        let mine = vips.get(&inst.name).map(Vec::as_slice).unwrap_or(&[]);
        inst.vips_held = mine
            .iter()
            .copied()
            .filter(|v| addrs.iter().any(|a| a.ip == *v && a.interface != "lo"))
            .collect();
    }
    if role == Mode::Realserver {
        view.lo_vips = addrs
            .iter()
            .filter(|a| a.interface == "lo" && !a.ip.is_loopback())
            .map(|a| a.ip)
            .collect();
        for line in s.get("arp").copied().unwrap_or_default().lines() {
            if let Some((k, v)) = line.split_once(' ') {
                view.arp.insert(k.to_owned(), v.trim().to_owned());
            }
        }
    }
    let generation = s.get("generation").copied().unwrap_or_default().trim();
    view.generation = generation.parse().ok();
    Ok(view)
}

/// What the agent's status says, into `view`.
fn agent(view: &mut HostView, status: &Status) {
    view.agent = Some(AgentView {
        health: status.health().to_owned(),
        degraded: status.degraded.clone(),
        pid: status.pid,
        version: status.version.clone(),
    });
    let d = &status.details;
    for i in d["vrrp_instances"].as_array().into_iter().flatten() {
        let name = i["name"].as_str().unwrap_or("?").to_owned();
        view.instances.push(InstanceView {
            name,
            state: i["state"].as_str().unwrap_or("?").to_owned(),
            priority: i["priority"].as_u64().unwrap_or(0),
            effective_priority: i["effective_priority"].as_u64().unwrap_or(0),
            fault: i["fault"].as_str().map(str::to_owned),
            vips_held: Vec::new(),
            last_transition: match (
                i["last_transition"]["from"].as_str(),
                i["last_transition"]["at"].as_str(),
            ) {
                (Some(from), Some(at)) => Some(LastTransition {
                    from: from.to_owned(),
                    at: at.to_owned(),
                }),
                _ => None,
            },
        });
    }
    // A host's answer is untrusted: a shape that does not fit is no view.
    view.bgp = BgpView::deserialize(&d["forwarding"]["bgp"]).ok();
    let servers = d["forwarding"]["real_servers"].as_object();
    let traffic = &d["forwarding"]["traffic"];
    let because = &d["forwarding"]["down_because"];
    let drained =
        Vec::<Drained>::deserialize(&d["drained"]).unwrap_or_default();
    let checked = d["real_server_checks"].as_array().map(Vec::as_slice);
    let checks = |service: &str, address: &str| {
        checked
            .unwrap_or_default()
            .iter()
            .find(|c| c["service"] == service && c["address"] == address)
    };
    let weight = |service: &str, address: &str| {
        let c = checks(service, address)?;
        c["weight"].as_u64()?.try_into().ok()
    };
    for (service, rs) in servers.into_iter().flatten() {
        for (address, up) in rs.as_object().into_iter().flatten() {
            let Ok(parsed) = address.parse() else { continue };
            view.real_servers.push(RealServerView {
                service: service.clone(),
                address: parsed,
                up: up.as_bool().unwrap_or(false),
                weight: weight(service, address),
                reason: because[service][address].as_str().map(str::to_owned),
                traffic: Traffic::deserialize(&traffic[service][address]).ok(),
                drained: drained.iter().any(|d| d.covers(service, parsed)),
                certificate_expiry: checks(service, address)
                    .and_then(|c| c["certificate_expiry"].as_u64()),
            });
        }
    }
}

/// A real server whose certificate (as a check over TLS last saw it,
/// the earliest any director saw) expired, or expires within
/// [`CERTIFICATE_WARNING`] of `now`.
fn certificate_warnings(
    directors: &[&HostView],
    now: u64,
    w: &mut Vec<String>,
) {
    let mut earliest: BTreeMap<(&str, IpAddr), u64> = BTreeMap::new();
    for rs in directors.iter().flat_map(|h| &h.real_servers) {
        if let Some(at) = rs.certificate_expiry {
            let e = earliest.entry((&rs.service, rs.address)).or_insert(at);
            *e = (*e).min(at);
        }
    }
    for ((service, address), at) in earliest {
        let date = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(at),
        );
        if at <= now {
            w.push(format!(
                "{service}: real server {address}'s certificate expired {date}"
            ));
        } else if at - now < CERTIFICATE_WARNING {
            w.push(format!(
                "{service}: real server {address}'s certificate expires {date} \
                 (in {} days)",
                (at - now) / 86_400
            ));
        }
    }
}

/// BGP's warnings: a session that is not up, BIRD not steered, and a VIP
/// announced by some directors only (the others withdrew it: they see
/// no healthy real server, or cannot forward).
fn bgp_warnings(directors: &[&HostView], w: &mut Vec<String>) {
    let speakers: Vec<(&str, &BgpView)> = directors
        .iter()
        .filter_map(|h| Some((h.name.as_str(), h.bgp.as_ref()?)))
        .collect();
    for (name, b) in &speakers {
        if let Some(e) = &b.last_error {
            w.push(format!("{name}: BGP: {e}"));
        }
        for s in b.sessions.iter().filter(|s| !s.is_up()) {
            w.push(format!("{name}: BGP session {} is {}", s.name, s.info));
        }
    }
    let vips: BTreeSet<IpAddr> =
        speakers.iter().flat_map(|(_, b)| b.announced.clone()).collect();
    for vip in vips {
        let silent: Vec<&str> = speakers
            .iter()
            .filter(|(_, b)| !b.announced.contains(&vip))
            .map(|(name, _)| *name)
            .collect();
        if !silent.is_empty() {
            w.push(format!(
                "{vip}: announced by {} of {} directors (not by {})",
                speakers.len() - silent.len(),
                speakers.len(),
                silent.join(", ")
            ));
        }
    }
}

/// Each director's BGP sessions and what it announces: a table after the
/// directors', nothing where no director speaks BGP.
fn write_bgp(
    out: &mut impl Write,
    directors: &[&HostView],
) -> std::io::Result<()> {
    let speakers: Vec<(&str, &BgpView)> = directors
        .iter()
        .filter_map(|h| Some((h.name.as_str(), h.bgp.as_ref()?)))
        .collect();
    if speakers.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<16} {:<22} {:<12} {:<6} ANNOUNCES",
        "DIRECTOR", "BGP SESSION", "STATE", "BFD"
    )?;
    for (name, b) in speakers {
        let announced: Vec<String> =
            b.announced.iter().map(IpAddr::to_string).collect();
        let announced = match announced.is_empty() {
            true => "nothing".to_owned(),
            false => announced.join(" "),
        };
        for s in &b.sessions {
            let state = s.info.split_whitespace().next().unwrap_or("?");
            writeln!(
                out,
                "{:<16} {:<22} {:<12} {:<6} {}",
                escape(name),
                escape(&s.name),
                escape(state),
                escape(s.bfd.as_deref().unwrap_or("-")),
                announced
            )?;
        }
        if b.sessions.is_empty() {
            writeln!(
                out,
                "{:<16} {:<22} {:<12} {:<6} {announced}",
                escape(name),
                "-",
                "-",
                "-"
            )?;
        }
    }
    Ok(())
}

/// What each director's data plane counted of each real server: a table
/// after the real servers' verdicts, nothing where nothing was counted.
fn write_traffic(
    out: &mut impl Write,
    directors: &[&HostView],
) -> std::io::Result<()> {
    let counted: Vec<(&HostView, &RealServerView, &Traffic)> = directors
        .iter()
        .flat_map(|h| {
            h.real_servers
                .iter()
                .filter_map(move |rs| Some((*h, rs, rs.traffic.as_ref()?)))
        })
        .collect();
    if counted.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<16} {:<22} {:<16} {:>7} {:>8} {:>12} {:>14}",
        "SERVICE",
        "REAL SERVER",
        "DIRECTOR",
        "ACTIVE",
        "INACTIVE",
        "PACKETS",
        "BYTES"
    )?;
    let or_dash = |n: Option<u32>| n.map_or("-".to_owned(), |n| n.to_string());
    for (h, rs, t) in counted {
        writeln!(
            out,
            "{:<16} {:<22} {:<16} {:>7} {:>8} {:>12} {:>14}",
            escape(&rs.service),
            rs.address,
            escape(&h.name),
            or_dash(t.active_connections),
            or_dash(t.inactive_connections),
            t.packets,
            t.bytes
        )?;
    }
    Ok(())
}

/// Every warning the hosts' views call for, worst first: hosts that could
/// not be asked, agents not running or not healthy, then the cluster's
/// consistency — each VRRP instance with exactly one master, no VIP held
/// by a host that is not its master, every real server up (and judged
/// alike by every director), every host at the controller's latest
/// generation.
pub(crate) fn warnings(
    hosts: &[HostView],
    latest: Option<u64>,
    instances: &[String],
    now: u64,
) -> Vec<String> {
    let mut w = Vec::new();
    for h in hosts {
        if let Some(e) = &h.error {
            w.push(format!("{}: unreachable or unreadable: {e}", h.name));
        } else if let Some(e) = &h.agent_error {
            w.push(format!("{}: agent not answering: {e}", h.name));
        } else if let Some(a) =
            h.agent.as_ref().filter(|a| a.health != "healthy")
        {
            let why = match a.degraded.is_empty() {
                true => String::new(),
                false => format!(": {}", a.degraded.join("; ")),
            };
            w.push(format!("{}: agent {}{why}", h.name, a.health));
        }
    }
    let directors: Vec<&HostView> = hosts
        .iter()
        .filter(|h| h.role == Mode::Director && h.agent.is_some())
        .collect();
    if !directors.is_empty() {
        for name in instances {
            let masters: Vec<&str> = directors
                .iter()
                .filter(|h| {
                    h.instances
                        .iter()
                        .any(|i| &i.name == name && i.state == "MASTER")
                })
                .map(|h| h.name.as_str())
                .collect();
            match masters.len() {
                0 => w.push(format!("{name}: no master")),
                1 => {}
                _ => w.push(format!(
                    "{name}: {} masters: {}",
                    masters.len(),
                    masters.join(", ")
                )),
            }
        }
    }
    bgp_warnings(&directors, &mut w);
    for h in &directors {
        for i in h.instances.iter().filter(|i| i.state != "MASTER") {
            for vip in &i.vips_held {
                w.push(format!(
                    "{}: holds VIP {vip} of {} but is {}",
                    h.name, i.name, i.state
                ));
            }
        }
    }
    let mut verdicts: BTreeMap<(&str, IpAddr), Vec<(&str, bool)>> =
        BTreeMap::new();
    for h in &directors {
        for rs in &h.real_servers {
            verdicts
                .entry((&rs.service, rs.address))
                .or_default()
                .push((&h.name, rs.up));
        }
    }
    for ((service, address), v) in verdicts {
        if v.iter().all(|(_, up)| !*up) {
            let on: Vec<&str> = v.iter().map(|(d, _)| *d).collect();
            w.push(format!(
                "{service}: real server {address} is down on {}",
                on.join(", ")
            ));
        } else if v.iter().any(|(_, up)| !*up) {
            let say = |want: bool| {
                v.iter()
                    .filter(|(_, up)| *up == want)
                    .map(|(d, _)| *d)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            w.push(format!(
                "{service}: real server {address} is up on {} and down on {}",
                say(true),
                say(false)
            ));
        }
    }
    certificate_warnings(&directors, now, &mut w);
    if let Some(latest) = latest {
        for h in hosts.iter().filter(|h| h.error.is_none()) {
            if h.generation != Some(latest) {
                let at =
                    h.generation.map_or("none".to_owned(), |g| g.to_string());
                w.push(format!(
                    "{}: at generation {at}, the controller's latest is {latest}",
                    h.name
                ));
            }
        }
    }
    w
}

/// The report for people: the warnings up top, then the directors, the
/// real servers as each director sees them, and the real-server hosts.
/// Everything a host supplied is escaped.
///
/// # Errors
/// Only those of `out`.
pub(crate) fn write_text(
    out: &mut impl Write,
    r: &Report,
) -> std::io::Result<()> {
    let latest = r.generation.map_or("none".to_owned(), |g| g.to_string());
    writeln!(
        out,
        "cluster {} — controller generation {latest}",
        escape(&r.cluster)
    )?;
    if r.warnings.is_empty() {
        writeln!(out, "all well")?;
    }
    for w in &r.warnings {
        writeln!(out, "WARNING {}", escape(w))?;
    }
    let generation =
        |h: &HostView| h.generation.map_or("-".to_owned(), |g| g.to_string());
    let agent = |h: &HostView| match (&h.error, &h.agent_error, &h.agent) {
        (Some(_), _, _) => "unreachable".to_owned(),
        (_, Some(_), _) => "not running".to_owned(),
        (_, _, Some(a)) => format!("{} pid {}", a.health, a.pid),
        _ => "?".to_owned(),
    };
    let directors: Vec<&HostView> =
        r.hosts.iter().filter(|h| h.role == Mode::Director).collect();
    if !directors.is_empty() {
        writeln!(
            out,
            "\n{:<16} {:<22} {:>4}  VRRP",
            "DIRECTOR", "AGENT", "GEN"
        )?;
        for h in &directors {
            let vrrp: Vec<String> = h
                .instances
                .iter()
                .map(|i| {
                    let held: Vec<String> =
                        i.vips_held.iter().map(IpAddr::to_string).collect();
                    format!(
                        "{} {} {}/{}{}{}",
                        i.name,
                        i.state,
                        i.priority,
                        i.effective_priority,
                        match held.is_empty() {
                            true => String::new(),
                            false => format!(" [{}]", held.join(" ")),
                        },
                        match &i.last_transition {
                            Some(t) =>
                                format!(" (from {} at {})", t.from, t.at),
                            None => String::new(),
                        }
                    )
                })
                .collect();
            writeln!(
                out,
                "{:<16} {:<22} {:>4}  {}",
                escape(&h.name),
                escape(&agent(h)),
                generation(h),
                escape(&vrrp.join(", "))
            )?;
        }
        write_bgp(out, &directors)?;
        let mut rows: BTreeMap<(&str, IpAddr), Vec<String>> = BTreeMap::new();
        for (n, h) in directors.iter().enumerate() {
            for rs in &h.real_servers {
                let row = rows
                    .entry((&rs.service, rs.address))
                    .or_insert_with(|| vec!["-".to_owned(); directors.len()]);
                let mut cell = if rs.up { "up" } else { "DOWN" }.to_owned();
                if let Some(w) = rs.weight {
                    cell += &format!(" w{w}");
                }
                if rs.drained {
                    cell += " drained";
                }
                row[n] = cell;
            }
        }
        if !rows.is_empty() {
            // One column per director, as wide as its name.
            let widths: Vec<usize> = directors
                .iter()
                // As wide as a long cell, `DOWN w100 drained`.
                .map(|h| escape(&h.name).len().max(17))
                .collect();
            let mut line = format!("{:<16} {:<22}", "SERVICE", "REAL SERVER");
            for (h, w) in directors.iter().zip(&widths) {
                line += &format!(" {:<w$}", escape(&h.name));
            }
            writeln!(out, "\n{}", line.trim_end())?;
            for ((service, address), row) in rows {
                let mut line =
                    format!("{:<16} {:<22}", escape(service), address);
                for (v, w) in row.iter().zip(&widths) {
                    line += &format!(" {v:<w$}");
                }
                writeln!(out, "{}", line.trim_end())?;
            }
        }
        for h in &directors {
            for rs in &h.real_servers {
                if let Some(reason) = rs.reason.as_ref().filter(|_| !rs.up) {
                    writeln!(
                        out,
                        "{} {} DOWN on {}: {}",
                        escape(&rs.service),
                        rs.address,
                        escape(&h.name),
                        escape(reason)
                    )?;
                }
            }
        }
        write_traffic(out, &directors)?;
    }
    let servers: Vec<&HostView> =
        r.hosts.iter().filter(|h| h.role == Mode::Realserver).collect();
    if !servers.is_empty() {
        writeln!(
            out,
            "\n{:<16} {:<22} {:>4}  {:<20} ARP",
            "REAL SERVER", "AGENT", "GEN", "VIPS ON LO"
        )?;
        for h in servers {
            let vips: Vec<String> =
                h.lo_vips.iter().map(IpAddr::to_string).collect();
            let arp: Vec<String> =
                h.arp.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                out,
                "{:<16} {:<22} {:>4}  {:<20} {}",
                escape(&h.name),
                escape(&agent(h)),
                generation(h),
                vips.join(" "),
                escape(&arp.join(" "))
            )?;
        }
    }
    for h in r.hosts.iter() {
        if let Some(e) = h.error.as_ref().or(h.agent_error.as_ref()) {
            writeln!(out, "\n{}: {}", escape(&h.name), escape(e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "n0nce";

    fn answer(agent: &str, addr: &str) -> String {
        format!(
            "lbdeploy-status 1 {NONCE}\n== agent {NONCE}\n{agent}\n\
             == addr {NONCE}\n{addr}== arp {NONCE}\nall.arp_ignore 1\n\
             lo.arp_announce 2\n== generation {NONCE}\n4\n== end {NONCE}\n"
        )
    }

    const DIRECTOR: &str = r#"{"mode":"director","pid":7,"config":"/c","config_sha256":"x","started_at":"t","loaded_at":"t","reloads":0,"last_reload_error":null,"healthy":true,"version":"0.1.0","details":{"vrrp_instances":[{"name":"VI_1","vrid":51,"state":"BACKUP","priority":100,"effective_priority":100,"last_transition":{"from":"MASTER","at":"2026-12-05T13:00:00Z"}}],"real_server_checks":[{"service":"web","address":"10.0.0.21","port":80,"weight":3}],"forwarding":{"down_because":{"web":{"10.0.0.22":"tcp: connection refused\u001b[2J"}},"real_servers":{"web":{"10.0.0.21":true,"10.0.0.22":false}},"traffic":{"web":{"10.0.0.21":{"packets":120,"bytes":9000,"connections":7,"active_connections":2,"inactive_connections":1}}}},"drained":[{"address":"10.0.0.22","service":"web"}]}}"#;

    fn vips() -> BTreeMap<String, Vec<IpAddr>> {
        BTreeMap::from([("VI_1".into(), vec!["10.0.0.200".parse().unwrap()])])
    }

    #[test]
    fn r19_a_directors_answer_is_read() {
        let addr = "2: eth0    inet 10.0.0.200/24 scope global secondary eth0\\       valid_lft forever\n";
        let a = answer(DIRECTOR, addr);
        let v =
            parse("d2", Mode::Director, a.as_bytes(), NONCE, &vips()).unwrap();
        assert_eq!(v.generation, Some(4));
        assert_eq!(v.agent.as_ref().unwrap().health, "healthy");
        assert_eq!(v.instances[0].state, "BACKUP");
        assert_eq!(
            v.instances[0].vips_held,
            ["10.0.0.200".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(v.real_servers.len(), 2);
        let counted = v.real_servers[0].traffic.unwrap();
        assert_eq!(counted.active_connections, Some(2));
        assert_eq!((counted.packets, counted.bytes), (120, 9000));
        assert_eq!(v.real_servers[1].traffic, None, "nothing counted of it");
        assert!(!v.real_servers[0].drained && v.real_servers[1].drained);
        let mut out = Vec::new();
        let r = Report {
            format: 1,
            cluster: "c".into(),
            generation: Some(4),
            warnings: Vec::new(),
            hosts: vec![v.clone()],
        };
        write_text(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "web              10.0.0.21              d2                     \
                 2        1          120           9000\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("10.0.0.22              DOWN drained\n"),
            "{text}"
        );
        assert!(text.contains("10.0.0.21              up w3\n"), "{text}");
        assert_eq!(
            v.real_servers[1].reason.as_deref(),
            Some("tcp: connection refused\u{1b}[2J")
        );
        assert!(
            text.contains("web 10.0.0.22 DOWN on d2: tcp: connection refused"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
        let t = v.instances[0].last_transition.as_ref().unwrap();
        assert_eq!(
            (t.from.as_str(), t.at.as_str()),
            ("MASTER", "2026-12-05T13:00:00Z")
        );
        assert!(v.arp.is_empty(), "ARP settings are a real server's");
    }

    #[test]
    fn r19_a_hostile_or_broken_answer_is_that_hosts_error() {
        let parse = |text: &str| {
            parse("rs1", Mode::Realserver, text.as_bytes(), NONCE, &vips())
        };
        // The agent's text cannot open a section: it lacks the nonce.
        let sneaky = "x\n== end other\n== generation 9";
        let v = parse(&answer(sneaky, "")).unwrap();
        assert_eq!(v.generation, Some(4));
        assert!(v.agent_error.as_deref() == Some("x"), "{v:?}");
        let not_running = "lbdeploy: error: the agent is not running: …";
        let v = parse(&answer(not_running, "")).unwrap();
        assert_eq!(
            v.agent_error.as_deref(),
            Some("the agent is not running: …")
        );
        assert_eq!(v.arp["all.arp_ignore"], "1");
        let e = parse("banner\n").unwrap_err();
        assert!(e.contains("status header"), "{e}");
        let cut = answer(DIRECTOR, "");
        let e = parse(&cut[..cut.len() - 20]).unwrap_err();
        assert!(e.contains("cut short"), "{e}");
        let huge = "x".repeat(ANSWER_MAX + 1);
        assert!(parse(&huge).unwrap_err().contains("longer than"));
    }

    fn director(name: &str, state: &str, held: bool, up: bool) -> HostView {
        let mut h = HostView::failed(name, Mode::Director, String::new());
        h.error = None;
        h.generation = Some(4);
        h.agent = Some(AgentView {
            health: "healthy".into(),
            degraded: Vec::new(),
            pid: 1,
            version: "0".into(),
        });
        h.instances.push(InstanceView {
            name: "VI_1".into(),
            state: state.into(),
            priority: 100,
            effective_priority: 100,
            fault: None,
            last_transition: None,
            vips_held: match held {
                true => vec!["10.0.0.200".parse().unwrap()],
                false => Vec::new(),
            },
        });
        h.real_servers.push(RealServerView {
            service: "web".into(),
            address: "10.0.0.21".parse().unwrap(),
            up,
            weight: None,
            reason: None,
            traffic: None,
            drained: false,
            certificate_expiry: None,
        });
        h
    }

    /// Issue #21: a certificate expired or expiring within two weeks, as
    /// the earliest director saw it, is warned of; a later one is not.
    #[test]
    fn r21_certificates_near_their_end_are_warned_of() {
        let day = 86_400;
        let now = 1_800_000_000;
        let seen = |d: &str, at: u64| {
            let mut h = director(d, "MASTER", true, true);
            h.real_servers[0].certificate_expiry = Some(at);
            h
        };
        let w = |hosts: &[HostView]| warnings(hosts, None, &[], now);
        assert_eq!(w(&[seen("d1", now + 30 * day)]), Vec::<String>::new());
        assert_eq!(
            w(&[seen("d1", now + 30 * day), seen("d2", now + 3 * day + 5)]),
            ["web: real server 10.0.0.21's certificate expires \
                 2027-01-18T08:00:05Z (in 3 days)"]
        );
        assert_eq!(
            w(&[seen("d1", now - day)]),
            [
                "web: real server 10.0.0.21's certificate expired 2027-01-14T08:00:00Z"
            ]
        );
    }

    #[test]
    fn r19_the_clusters_inconsistencies_are_warned_of() {
        let inst = ["VI_1".to_owned()];
        let good = [
            director("d1", "MASTER", true, true),
            director("d2", "BACKUP", false, true),
        ];
        assert_eq!(warnings(&good, Some(4), &inst, 0), Vec::<String>::new());
        let two = [
            director("d1", "MASTER", true, true),
            director("d2", "MASTER", true, false),
        ];
        let w = warnings(&two, Some(5), &inst, 0);
        assert_eq!(
            w,
            [
                "VI_1: 2 masters: d1, d2",
                "web: real server 10.0.0.21 is up on d1 and down on d2",
                "d1: at generation 4, the controller's latest is 5",
                "d2: at generation 4, the controller's latest is 5",
            ]
        );
        let mut none = [
            director("d1", "BACKUP", true, true),
            HostView::failed("d2", Mode::Director, "ssh: refused".into()),
        ];
        none[0].real_servers[0].up = false;
        none[0].agent.as_mut().unwrap().health = "degraded".into();
        none[0].agent.as_mut().unwrap().degraded = vec!["data plane: x".into()];
        let w = warnings(&none, None, &inst, 0);
        assert_eq!(
            w,
            [
                "d1: agent degraded: data plane: x",
                "d2: unreachable or unreadable: ssh: refused",
                "VI_1: no master",
                "d1: holds VIP 10.0.0.200 of VI_1 but is BACKUP",
                "web: real server 10.0.0.21 is down on d1",
            ]
        );
    }

    #[test]
    fn r20_bgp_sessions_down_and_vips_not_announced_everywhere_are_warned_of() {
        let speaker = |name: &str, info: &str, announced: &[&str]| {
            let mut h = director(name, "BACKUP", false, true);
            h.instances.clear();
            h.bgp = Some(BgpView {
                announced: announced
                    .iter()
                    .map(|a| a.parse().unwrap())
                    .collect(),
                sessions: vec![SessionView {
                    name: "peer_10_0_0_1".into(),
                    info: info.into(),
                    established: None,
                    exported: Vec::new(),
                    bfd: Some("Up".into()),
                }],
                last_error: None,
            });
            h
        };
        let vip = "10.20.0.100";
        let all = [
            speaker("d1", "Established", &[vip]),
            speaker("d2", "Established", &[vip]),
        ];
        assert_eq!(warnings(&all, Some(4), &[], 0), Vec::<String>::new());
        let mut text = Vec::new();
        let r = Report {
            format: 1,
            cluster: "c".into(),
            generation: Some(4),
            warnings: Vec::new(),
            hosts: all.to_vec(),
        };
        write_text(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("d2               peer_10_0_0_1          Established  Up     10.20.0.100"),
            "{text}"
        );
        let some = [
            speaker("d1", "Established", &[vip]),
            speaker("d2", "Active        Socket: Connection refused", &[]),
        ];
        assert_eq!(
            warnings(&some, Some(4), &[], 0),
            [
                "d2: BGP session peer_10_0_0_1 is Active        Socket: Connection refused",
                "10.20.0.100: announced by 1 of 2 directors (not by d2)",
            ]
        );
    }

    #[test]
    fn r19_the_text_escapes_what_hosts_said() {
        let mut h = director("d1", "MASTER\x1b[2J", true, true);
        h.agent_error = Some("gone\x1b]0;x\x07".into());
        let r = Report {
            format: 1,
            cluster: "c".into(),
            generation: Some(4),
            warnings: vec!["VI_1: no master".into()],
            hosts: vec![h],
        };
        let mut out = Vec::new();
        write_text(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
        assert!(text.contains("WARNING VI_1: no master\n"), "{text}");
        assert!(text.contains("web              10.0.0.21"), "{text}");
    }
}
