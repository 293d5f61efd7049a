//! The BGP rules: the `bgp:` block (peers, timers, passwords), each
//! director's overrides and router id, and the services announced over
//! BGP (no VRRP instance holds their VIP, the nftables data plane, a
//! peer of the VIP's family).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use super::environment::{Environment, PasswordProblem, secret_source};
use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Announce, BGP_INSTANCE, Bgp, BgpPeer, Dataplane, Inventory,
};

/// The longest TCP MD5 key Linux takes (`TCP_MD5SIG_MAXKEYLEN`).
const PASSWORD_MAX: usize = 80;

/// The most of a `password_file` read: far more than a key, so that a
/// longer one is told its length rather than refused unread.
const PASSWORD_FILE_MAX: u64 = 1024;

/// The most a director keeps forwarding after a withdrawal: longer only
/// delays a stop or an apply.
const DRAIN_GRACE_MAX: Duration = Duration::from_secs(600);

/// BFD intervals BIRD and the kernel timers handle well: below 10 ms a
/// busy director misses its own packets; above 10 s a hold time does
/// better.
const BFD_INTERVAL: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(10));

/// Every BGP rule; `vrrp_vips` are the VIPs the VRRP instances carry.
pub(crate) fn bgp(
    inv: &Inventory,
    vrrp_vips: &HashSet<IpAddr>,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    services(inv, vrrp_vips, out);
    for (i, vi) in inv.vrrp_instances.iter().enumerate() {
        if vi.name == BGP_INSTANCE {
            out.push(Finding::error(
                format!("vrrp_instances[{i}].name"),
                format!(
                    "`{BGP_INSTANCE}` stands for the services announced \
                     over BGP — give the instance another name"
                ),
            ));
        }
    }
    let Some(bgp) = &inv.bgp else {
        for (i, d) in inv.directors.iter().enumerate() {
            if d.bgp.is_some() {
                out.push(Finding::error(
                    format!("directors[{i}].bgp"),
                    "there is no `bgp:` block for this to override — add \
                     one (local_as, peers) or remove this",
                ));
            }
        }
        return;
    };
    block(inv, bgp, base, env, out);
    for (i, d) in inv.directors.iter().enumerate() {
        if let Some(peers) = d.bgp.as_ref().and_then(|o| o.peers.as_ref()) {
            let path = format!("directors[{i}].bgp.peers");
            peer_list(inv, peers, &path, base, env, out);
        }
    }
    router_ids(inv, bgp, out);
}

/// The services announced over BGP: a `bgp:` block to announce them
/// with, a VIP no VRRP instance holds and every service of that VIP
/// announced alike, the nftables data plane, and on every director a
/// peer of the VIP's family.
fn services(
    inv: &Inventory,
    vrrp_vips: &HashSet<IpAddr>,
    out: &mut Vec<Finding>,
) {
    let mut first: HashMap<IpAddr, (usize, Announce)> = HashMap::new();
    for (i, vs) in inv.virtual_services.iter().enumerate() {
        let path = format!("virtual_services[{i}]");
        let (j, announce) = *first.entry(vs.vip).or_insert((i, vs.announce));
        if announce != vs.announce {
            out.push(Finding::error(
                format!("{path}.announce"),
                format!(
                    "{} is announced by {} at virtual_services[{j}] — every \
                     service of one VIP is announced the same way",
                    vs.vip,
                    name(announce)
                ),
            ));
        }
        if vs.announce != Announce::Bgp {
            continue;
        }
        if inv.bgp.is_none() {
            out.push(Finding::error(
                format!("{path}.announce"),
                "`announce: bgp` needs a `bgp:` block (local_as, peers) — \
                 add one, or hold the VIP by VRRP",
            ));
        }
        if vrrp_vips.contains(&vs.vip) {
            out.push(Finding::error(
                format!("{path}.vip"),
                format!(
                    "{} is a VRRP instance's virtual address and announced \
                     over BGP — a VIP is held by one master or announced by \
                     every director, not both: remove it from \
                     `virtual_addresses` or drop `announce: bgp`",
                    vs.vip
                ),
            ));
        }
        if inv.dataplane != Dataplane::Nftables {
            out.push(Finding::error(
                format!("{path}.announce"),
                "`announce: bgp` needs `dataplane: nftables`: IPVS takes a \
                 VIP's packets only where the VIP is a local address, which \
                 a BGP director does not make it (not built yet)",
            ));
        }
        peer_of_family(inv, vs.vip, &path, out);
    }
}

fn name(announce: Announce) -> &'static str {
    match announce {
        Announce::Vrrp => "VRRP",
        Announce::Bgp => "BGP",
    }
}

/// Each director must have a peer of the VIP's family to announce it to.
fn peer_of_family(
    inv: &Inventory,
    vip: IpAddr,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let Some(bgp) = &inv.bgp else { return };
    for d in &inv.directors {
        let peers = bgp.for_director(d).peers;
        if !peers.is_empty()
            && !peers.iter().any(|p| p.address.is_ipv6() == vip.is_ipv6())
        {
            out.push(Finding::error(
                format!("{path}.vip"),
                format!(
                    "director {} has no {} peer to announce {vip} to — add \
                     one to `bgp.peers`",
                    d.name,
                    if vip.is_ipv6() { "IPv6" } else { "IPv4" }
                ),
            ));
        }
    }
}

/// The block's own rules: peers, timers, BFD, grace, and a service to
/// announce.
fn block(
    inv: &Inventory,
    bgp: &Bgp,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    peer_list(inv, &bgp.peers, "bgp.peers", base, env, out);
    timers(bgp, out);
    if let Some(bfd) = bgp.bfd {
        let i = bfd.interval.get();
        if i < BFD_INTERVAL.0
            || i > BFD_INTERVAL.1
            || i.subsec_micros() % 1000 != 0
        {
            out.push(Finding::error(
                "bgp.bfd.interval",
                format!(
                    "{} is outside 10ms–10s or not whole milliseconds — \
                     BFD below 10 ms misses its own packets on a busy \
                     director; above 10 s use `hold_time`",
                    bfd.interval
                ),
            ));
        }
    }
    if bgp.drain_grace.get() > DRAIN_GRACE_MAX {
        out.push(Finding::error(
            "bgp.drain_grace",
            format!(
                "{} is longer than 10m — a withdrawal spreads in seconds, \
                 and every stop and apply would wait this long",
                bgp.drain_grace
            ),
        ));
    }
    if !inv.virtual_services.iter().any(|vs| vs.announce == Announce::Bgp) {
        out.push(Finding::warning(
            "bgp",
            "no virtual service has `announce: bgp` — every director will \
             run BIRD and announce nothing",
        ));
    }
}

/// Hold time 0 or 3 s–65535 s, keepalive 1 s–65535 s below it, whole
/// seconds (RFC 4271 §4.2 counts them in seconds).
fn timers(bgp: &Bgp, out: &mut Vec<Finding>) {
    let seconds = |field: &str, d: Duration, min: u64, out: &mut Vec<_>| {
        let s = d.as_secs();
        if d.subsec_nanos() != 0 || s > 65535 || (s < min && s != 0) {
            out.push(Finding::error(
                format!("bgp.{field}"),
                format!(
                    "{} is not a BGP {} — whole seconds, {min}s–65535s \
                     (RFC 4271 §4.2)",
                    humantime::format_duration(d),
                    field.replace('_', " ")
                ),
            ));
        }
    };
    if let Some(h) = bgp.hold_time {
        seconds("hold_time", h.get(), 3, out);
    }
    if let Some(k) = bgp.keepalive_time {
        seconds("keepalive_time", k.get(), 1, out);
        if k.get().is_zero() {
            out.push(Finding::error(
                "bgp.keepalive_time",
                "0s sends no keepalives — leave it out for a third of the \
                 hold time",
            ));
        }
        if let Some(h) = bgp.hold_time
            && !h.get().is_zero()
            && k.get() >= h.get()
        {
            out.push(Finding::error(
                "bgp.keepalive_time",
                format!(
                    "{k} is not below the hold time ({h}) — the peer would \
                     drop the session between two keepalives"
                ),
            ));
        }
    }
}

/// A list of peers: some, each listed once, none of them a host of the
/// inventory, each password given at most one way and usable.
fn peer_list(
    inv: &Inventory,
    peers: &[BgpPeer],
    path: &str,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    if peers.is_empty() {
        out.push(Finding::error(
            path,
            "no peers — list the routers the directors announce to",
        ));
    }
    let hosts: HashMap<IpAddr, &str> = inv
        .directors
        .iter()
        .map(|d| (d.address.addr, d.name.as_str()))
        .chain(
            inv.real_servers.iter().map(|r| (r.address.addr, r.name.as_str())),
        )
        .collect();
    let mut seen = HashMap::new();
    for (j, p) in peers.iter().enumerate() {
        let ppath = format!("{path}[{j}]");
        if let Some(first) = seen.insert(p.address, j) {
            out.push(Finding::error(
                format!("{ppath}.address"),
                format!(
                    "{} is listed twice (first at {path}[{first}])",
                    p.address
                ),
            ));
        }
        if let Some(host) = hosts.get(&p.address) {
            out.push(Finding::error(
                format!("{ppath}.address"),
                format!(
                    "{} is {host}'s address — a peer is a router, not a \
                     host of this inventory",
                    p.address
                ),
            ));
        }
        if let Err(problem) = peer_password(p, base, env) {
            let field = format!("{ppath}{}", problem.field);
            out.push(Finding::error(field, problem.message));
        }
    }
}

/// The TCP MD5 password of `peer`, when it has one: from its variable in
/// the controller's environment or from its file (`base` resolves a
/// relative one; trailing line ends are dropped), not both; 1–80
/// printable ASCII characters without `"` or `\`, which bird.conf would
/// have to escape and routers' configurations often cannot hold. The one
/// reading of a peer's password, for validation, the agents'
/// configuration and the lab's router alike.
///
/// # Errors
/// Both sources given, a variable unset, a file that cannot be used, or a
/// value no TCP MD5 key can be.
pub fn peer_password(
    peer: &BgpPeer,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<String>, PasswordProblem> {
    let Some((field, value)) = read_password(peer, base, env)? else {
        return Ok(None);
    };
    match password_problem(&value) {
        None => Ok(Some(value)),
        Some(message) => Err(PasswordProblem { field, message }),
    }
}

/// The password's text and the field it came from, unchecked.
fn read_password(
    peer: &BgpPeer,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<(&'static str, String)>, PasswordProblem> {
    secret_source(
        peer.password_env.as_deref(),
        peer.password_file.as_deref(),
        PASSWORD_FILE_MAX,
        base,
        env,
    )
}

/// What is wrong with a password's value, without quoting it.
fn password_problem(v: &str) -> Option<String> {
    if v.is_empty() || v.len() > PASSWORD_MAX {
        return Some(format!(
            "the password is {} bytes — TCP MD5 keys are 1–{PASSWORD_MAX}",
            v.len()
        ));
    }
    if v.bytes().any(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
    {
        return Some(
            "the password holds a character other than printable ASCII, \
             or `\"` or `\\` — choose one without"
                .to_owned(),
        );
    }
    None
}

/// Every director has a router id (its own IPv4 address unless one is
/// set), and no two share one.
fn router_ids(inv: &Inventory, bgp: &Bgp, out: &mut Vec<Finding>) {
    let mut seen: HashMap<Ipv4Addr, &str> = HashMap::new();
    for (i, d) in inv.directors.iter().enumerate() {
        let Some(id) = bgp.for_director(d).router_id else {
            out.push(Finding::error(
                format!("directors[{i}].address"),
                format!(
                    "{} has an IPv6 address and BGP needs an IPv4 router id \
                     — set `bgp.router_id` under this director",
                    d.name
                ),
            ));
            continue;
        };
        let Some(other) = seen.insert(id, &d.name) else { continue };
        // Blame the setting the id came from.
        let own = d.bgp.as_ref().and_then(|o| o.router_id);
        let path = if own.is_some() {
            format!("directors[{i}].bgp.router_id")
        } else {
            "bgp.router_id".to_owned()
        };
        out.push(Finding::error(
            path,
            format!(
                "{} and {other} would both be router {id} — each director \
                 needs its own: leave `bgp.router_id` out (each then uses \
                 its address) or set it under each director",
                d.name
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_printable_ascii_of_1_to_80_bytes() {
        assert_eq!(password_problem("s3cret-pass"), None);
        assert!(password_problem("").is_some());
        assert!(password_problem(&"x".repeat(81)).is_some());
        assert_eq!(password_problem(&"x".repeat(80)), None);
        for bad in ["a\"b", "a\\b", "a\nb", "é"] {
            let m = password_problem(bad).expect(bad);
            assert!(!m.contains(bad), "the message quotes the password: {m}");
        }
    }
}
