//! The virtual services' rules: the VIP carried by VRRP, the forwarding
//! method and scheduler the data plane supports, the real servers (each
//! resolved, of the VIP's family on IPVS, listed once, its checks valid)
//! and the quorum.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use super::check::check_rules;
use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Announce, Dataplane, Forwarding, Inventory, RealServer, VirtualService,
};
use crate::inventory::values::vip_problem;

/// One service's rules, in order: VIP, forwarding and scheduling, real
/// servers, quorum. `vips` are the VIPs the VRRP instances carry.
pub(crate) fn virtual_service(
    inv: &Inventory,
    vs: &VirtualService,
    path: &str,
    vips: &HashSet<IpAddr>,
    out: &mut Vec<Finding>,
) {
    vip(vs, path, vips, out);
    ports(vs, path, out);
    forwarding_and_scheduling(inv, vs, path, out);
    real_servers(inv, vs, path, out);
    quorum(vs, path, out);
    quorum_reachable(vs, path, out);
}

/// The VIP must be carried by some VRRP instance, unless every director
/// announces it over BGP (the `bgp` rules).
fn vip(
    vs: &VirtualService,
    path: &str,
    vips: &HashSet<IpAddr>,
    out: &mut Vec<Finding>,
) {
    // A VRRP instance's VIPs are checked with the instance.
    if vs.announce == Announce::Bgp
        && let Some(what) = vip_problem(vs.vip)
    {
        out.push(Finding::error(
            format!("{path}.vip"),
            format!(
                "{} is {what} — a VIP is one host's unicast address",
                vs.vip
            ),
        ));
    }
    if vs.announce == Announce::Vrrp && !vips.contains(&vs.vip) {
        out.push(Finding::error(
            format!("{path}.vip"),
            format!(
                "{} is not a virtual address of any VRRP instance — add it \
                 to a `virtual_addresses` list, or no director will hold it",
                vs.vip
            ),
        ));
    }
}

/// The most spans (ports and ranges) one service's `ports` may list: far
/// more than an FTP or HTTP+HTTPS group needs, few enough for one rule.
pub(crate) const PORT_SPANS_MAX: usize = 64;

/// One of `port` and `ports`. A port group: spans that do not overlap,
/// at most [`PORT_SPANS_MAX`], and at most one persistent group per VIP
/// and protocol — on nftables their clients are pinned in one map keyed
/// by client address, which two groups would share; kept on IPVS too
/// (where each group is a fwmark service of its own), so that an
/// inventory means the same on both data planes. Any data plane: on IPVS
/// a group is a fwmark service whose packets the agent marks with `nft`
/// (`agent::dataplane::ipvs::marks`).
fn ports(vs: &VirtualService, path: &str, out: &mut Vec<Finding>) {
    let ppath = format!("{path}.ports");
    match (vs.port, vs.ports.is_empty()) {
        (None, true) => out.push(Finding::error(
            path,
            "no port — give the service's `port`, or its `ports` (e.g. \
             `ports: [80, 443]` or `ports: [8000-8100]`)",
        )),
        (Some(_), false) => {
            out.push(Finding::error(&ppath, "give `port` or `ports`, not both"))
        }
        _ => {}
    }
    if vs.ports.is_empty() {
        return;
    }
    if vs.ports.len() > PORT_SPANS_MAX {
        out.push(Finding::error(
            &ppath,
            format!(
                "{} ports and ranges, at most {PORT_SPANS_MAX} — join \
                 neighbours into ranges",
                vs.ports.len()
            ),
        ));
    }
    for (k, span) in vs.ports.iter().enumerate() {
        if let Some(other) = vs.ports[..k].iter().find(|o| o.overlaps(span)) {
            out.push(Finding::error(
                format!("{ppath}[{k}]"),
                format!("`{span}` overlaps `{other}` — list each port once"),
            ));
        }
    }
}

/// Whether `s` is a persistent port group: its clients are pinned by
/// address alone.
fn persistent_group(s: &VirtualService) -> bool {
    !s.ports.is_empty()
        && (s.persistence_timeout.is_some() || s.scheduler.is_hashing())
}

/// At most one persistent port group per VIP and protocol among `vs` and
/// the services `earlier` in the inventory (see [`ports`]).
pub(crate) fn one_persistent_group(
    vs: &VirtualService,
    earlier: &[VirtualService],
    path: &str,
    out: &mut Vec<Finding>,
) {
    if !persistent_group(vs) {
        return;
    }
    let first = earlier.iter().find(|s| {
        persistent_group(s) && s.vip == vs.vip && s.protocol == vs.protocol
    });
    if let Some(other) = first {
        out.push(Finding::error(
            format!("{path}.ports"),
            format!(
                "a second persistent port group on {} ({} is the first): a \
                 client's pin would hold for both — merge them into one \
                 service, or drop persistence from one",
                vs.vip,
                service_label(other)
            ),
        ));
    }
}

/// IPVS forwards within one address family: a real server of the other
/// family than the VIP's needs the nftables data plane (which forwards by
/// MAC, so an IPv6 VIP may sit in front of IPv4-addressed servers).
fn one_family_on_ipvs(
    inv: &Inventory,
    vs: &VirtualService,
    rpath: &str,
    target: IpAddr,
    out: &mut Vec<Finding>,
) {
    if inv.dataplane != Dataplane::Nftables
        && target.is_ipv6() != vs.vip.is_ipv6()
    {
        out.push(Finding::error(
            rpath,
            format!(
                "{target} is not of the VIP's family ({}): IPVS forwards \
                 within one family — give the real server's address of that \
                 family, or set `dataplane: nftables`",
                vs.vip
            ),
        ));
    }
}

/// Direct routing only; a scheduler the data plane can run; no
/// persistence on top of a hashing scheduler.
fn forwarding_and_scheduling(
    inv: &Inventory,
    vs: &VirtualService,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if vs.forwarding != Forwarding::Dr {
        out.push(Finding::error(
            format!("{path}.forwarding"),
            format!(
                "`{}` forwarding is not supported yet — use `dr`",
                format!("{:?}", vs.forwarding).to_lowercase()
            ),
        ));
    }
    if inv.dataplane == Dataplane::Nftables && !vs.scheduler.is_stateless() {
        out.push(Finding::error(
            format!("{path}.scheduler"),
            format!(
                "the `{}` scheduler needs connection state, which the \
                 nftables data plane does not keep — use `dataplane: ipvs`, \
                 or one of rr, wrr, sh, mh",
                format!("{:?}", vs.scheduler).to_lowercase()
            ),
        ));
    }
    if vs.persistence_timeout.is_some() && vs.scheduler.is_hashing() {
        out.push(Finding::warning(
            format!("{path}.persistence_timeout"),
            format!(
                "the `{}` scheduler already sends a client to the same real \
                 server; persistence adds nothing — remove one of them",
                format!("{:?}", vs.scheduler).to_lowercase()
            ),
        ));
    }
}

/// Some real servers; each resolved to an address, listed once per port,
/// and its checks valid.
fn real_servers(
    inv: &Inventory,
    vs: &VirtualService,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if vs.real_servers.is_empty() {
        out.push(Finding::warning(
            format!("{path}.real_servers"),
            "no real servers — the service will accept no traffic",
        ));
    }
    let mut targets = HashSet::new();
    for (j, rs) in vs.real_servers.iter().enumerate() {
        let rpath = format!("{path}.real_servers[{j}]");
        let target = target(inv, rs, &rpath, out);
        if let Some(t) = target {
            one_family_on_ipvs(inv, vs, &rpath, t, out);
        }
        if let Some(t) = target
            && !targets.insert((t, rs.port))
        {
            out.push(Finding::error(
                &rpath,
                format!(
                    "{t}:{} is listed twice in this service — remove one",
                    rs.port
                ),
            ));
        }
        for (k, check) in rs.checks.iter().enumerate() {
            let cpath = format!("{rpath}.checks[{k}]");
            check_rules(check, target, &cpath, out);
        }
    }
}

/// The real server's address: its managed host's, or the one given; none
/// (and a finding) when the host is unknown or not exactly one is given.
fn target(
    inv: &Inventory,
    rs: &RealServer,
    rpath: &str,
    out: &mut Vec<Finding>,
) -> Option<IpAddr> {
    match (&rs.host, rs.address) {
        (Some(host), None) => {
            match inv.real_servers.iter().find(|h| &h.name == host) {
                Some(h) => Some(h.address.addr),
                None => {
                    out.push(Finding::error(
                        format!("{rpath}.host"),
                        format!(
                            "`{host}` is not a host in `real_servers` — \
                             add it there, or write `address:` for a \
                             server lbdeploy does not manage"
                        ),
                    ));
                    None
                }
            }
        }
        (None, Some(addr)) => Some(addr),
        _ => {
            out.push(Finding::error(
                rpath,
                "give exactly one of `host` (a managed real server) or \
                 `address` (an unmanaged one)",
            ));
            None
        }
    }
}

/// keepalived's quorum rules: a service needs some live weight, and the
/// hysteresis band around the quorum must leave it above zero — keepalived
/// would quietly lower it to `quorum - 1`; here the operator decides.
fn quorum(vs: &VirtualService, path: &str, out: &mut Vec<Finding>) {
    if vs.quorum == 0 {
        out.push(Finding::error(
            format!("{path}.quorum"),
            "quorum 0 is met with no real server at all — use 1 (the \
             default) or more: the live weight the service needs",
        ));
    } else if vs.hysteresis >= vs.quorum {
        out.push(Finding::error(
            format!("{path}.hysteresis"),
            format!(
                "hysteresis {} is not below quorum {} — the service would \
                 only lose quorum with no live weight at all; use at most {}",
                vs.hysteresis,
                vs.quorum,
                vs.quorum - 1
            ),
        ));
    }
}

/// The quorum must be reachable: no more than the real servers' total
/// weight (when there are any).
fn quorum_reachable(vs: &VirtualService, path: &str, out: &mut Vec<Finding>) {
    let weights: u64 =
        vs.real_servers.iter().map(|r| u64::from(r.weight.get())).sum();
    if u64::from(vs.quorum) > weights && !vs.real_servers.is_empty() {
        out.push(Finding::warning(
            format!("{path}.quorum"),
            format!(
                "quorum {} exceeds the total weight {weights} of the real \
                 servers — the service can never be up",
                vs.quorum
            ),
        ));
    }
}

/// `VIP:PORT/proto`, how services are named in messages.
pub fn service_label(vs: &VirtualService) -> String {
    let proto = format!("{:?}", vs.protocol).to_lowercase();
    // A Port is 1–65535: the narrowing cannot lose anything.
    match vs.port {
        Some(p) => {
            format!("{}/{proto}", SocketAddr::new(vs.vip, p.get() as u16))
        }
        None => {
            let ports: Vec<String> =
                vs.ports.iter().map(ToString::to_string).collect();
            let vip = match vs.vip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            format!("{vip}:{}/{proto}", ports.join(","))
        }
    }
}
