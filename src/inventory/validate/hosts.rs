//! The hosts' rules: at least one director, unique names and addresses
//! across directors, real servers and the lab's hosts, valid interface
//! names, no VIP that a host owns, and no name or SSH target that `ssh`
//! would read as an option; and the lab's router (`lab.router`): on the
//! hosts' segment, a peer the directors list, the client behind it.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::inventory::diag::Finding;
use crate::inventory::schema::{BgpPeer, Inventory, Lab, LabRouter};
use crate::inventory::values::IfAddr;

/// The lab's router's name in `lbdeploy lab exec`, which no inventory host
/// may take while the lab has one.
const ROUTER_NAME: &str = "router";

/// The longest interface name Linux accepts (IFNAMSIZ − 1).
pub(crate) const IFNAME_MAX: usize = 15;

/// Every host rule, in order: directors present, names and addresses
/// unique, the lab's addresses free, the lab's router, VIPs owned by no
/// host.
pub(crate) fn hosts(inv: &Inventory, out: &mut Vec<Finding>) {
    if inv.directors.is_empty() {
        out.push(Finding::error(
            "directors",
            "no directors — list at least one load-balancer host",
        ));
    }
    let mut addrs = unique_hosts(inv, out);
    lab_addresses(inv, &mut addrs, out);
    lab_router(inv, out);
    vips_owned_by_hosts(inv, &addrs, out);
    no_option_lookalikes(inv, out);
}

/// Host names, `ssh.host` and `ssh.user` never start with `-`: on a command
/// line `-oProxyCommand=…` is an option that runs a command on the
/// controller (issue #17, finding 4). `transport` also puts `--` before
/// the destination; this rule says so at the right line first.
fn no_option_lookalikes(inv: &Inventory, out: &mut Vec<Finding>) {
    let hosts =
        inv.directors
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("directors[{i}]"), &d.name, &d.ssh))
            .chain(
                inv.real_servers.iter().enumerate().map(|(i, r)| {
                    (format!("real_servers[{i}]"), &r.name, &r.ssh)
                }),
            );
    let mut fields = vec![("ssh.user".to_owned(), inv.ssh.user.as_str())];
    for (path, name, ssh) in hosts {
        fields.push((format!("{path}.name"), name.as_str()));
        let Some(ssh) = ssh else { continue };
        if let Some(host) = &ssh.host {
            fields.push((format!("{path}.ssh.host"), host.as_str()));
        }
        if let Some(user) = &ssh.user {
            fields.push((format!("{path}.ssh.user"), user.as_str()));
        }
    }
    for (path, value) in fields {
        if value.starts_with('-') || value.is_empty() {
            out.push(Finding::error(
                path,
                "must not be empty or start with `-` — ssh would read it \
                 as an option",
            ));
        }
    }
}

/// Directors then real servers: unique names, unique addresses, valid
/// interface names. Returns who owns each address, for the later rules.
fn unique_hosts(
    inv: &Inventory,
    out: &mut Vec<Finding>,
) -> HashMap<IpAddr, String> {
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut addrs: HashMap<IpAddr, String> = HashMap::new();
    let all = inv
        .directors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (format!("directors[{i}]"), &d.name, d.address, &d.interface)
        })
        .chain(inv.real_servers.iter().enumerate().map(|(i, r)| {
            (format!("real_servers[{i}]"), &r.name, r.address, &r.interface)
        }));
    for (path, name, address, interface) in all {
        if let Some(first) = names.insert(name.as_str(), path.clone()) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "host name `{name}` is already used by {first} — \
                     host names must be unique"
                ),
            ));
        }
        if let Some(first) = addrs.insert(address.addr, path.clone()) {
            out.push(Finding::error(
                format!("{path}.address"),
                format!(
                    "address {} is already used by {first} — every host \
                     needs its own address",
                    address.addr
                ),
            ));
        }
        interface_name(interface, &format!("{path}.interface"), out);
    }
    addrs
}

/// The lab's controller, client and router need addresses no host uses;
/// they join `addrs` as owners.
fn lab_addresses(
    inv: &Inventory,
    addrs: &mut HashMap<IpAddr, String>,
    out: &mut Vec<Finding>,
) {
    let Some(lab) = &inv.lab else { return };
    let mut fields =
        vec![("controller", lab.controller), ("client", lab.client)];
    if let Some(r) = &lab.router {
        fields.push(("router.address", r.address));
        fields.push(("router.client_side", r.client_side));
    }
    for (field, a) in fields {
        if let Some(first) = addrs.insert(a.addr, format!("lab.{field}")) {
            out.push(Finding::error(
                format!("lab.{field}"),
                format!(
                    "address {} is already used by {first} — the lab \
                     hosts need addresses of their own",
                    a.addr
                ),
            ));
        }
    }
}

/// The lab's router sits between the client and the hosts and peers
/// with every director over BGP: one leg on the hosts' segment, one on a
/// segment of its own with the client, listed as a peer under `bgp:`,
/// and named as no inventory host is.
fn lab_router(inv: &Inventory, out: &mut Vec<Finding>) {
    let Some(lab) = &inv.lab else { return };
    let Some(router) = &lab.router else { return };
    router_on_hosts_segment(inv, router, out);
    client_behind_router(lab, router, out);
    router_is_a_peer(inv, router, out);
    let names = inv
        .directors
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("directors[{i}]"), &d.name))
        .chain(
            inv.real_servers
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("real_servers[{i}]"), &r.name)),
        );
    for (path, name) in names.filter(|(_, n)| *n == ROUTER_NAME) {
        out.push(Finding::error(
            format!("{path}.name"),
            format!(
                "`{name}` is the name of the lab's router (`lab.router`) — \
                 rename this host, or `lbdeploy lab exec {name}` could not \
                 tell them apart"
            ),
        ));
    }
}

/// The directors peer with the router directly and the real servers
/// answer the client through it: each must share a subnet with it.
fn router_on_hosts_segment(
    inv: &Inventory,
    router: &LabRouter,
    out: &mut Vec<Finding>,
) {
    let hosts =
        inv.directors.iter().map(|d| ("director", &d.name, d.address)).chain(
            inv.real_servers
                .iter()
                .map(|r| ("real server", &r.name, r.address)),
        );
    let apart = |a: IfAddr| {
        !a.contains(router.address.addr) || !router.address.contains(a.addr)
    };
    if let Some((role, name, a)) = hosts.into_iter().find(|h| apart(h.2)) {
        out.push(Finding::error(
            "lab.router.address",
            format!(
                "{} is not on the hosts' segment: {role} {name} is {a} — \
                 give the router an address in the hosts' subnet, where the \
                 directors peer with it and the real servers answer the \
                 client through it",
                router.address
            ),
        ));
    }
}

/// With a router the client has a segment of its own: the router's
/// `client_side` subnet, apart from the hosts'.
fn client_behind_router(lab: &Lab, router: &LabRouter, out: &mut Vec<Finding>) {
    let (hosts, side) = (router.address, router.client_side);
    if hosts.addr.is_ipv6() != side.addr.is_ipv6() {
        out.push(Finding::error(
            "lab.router.client_side",
            format!(
                "{side} is not of the family of lab.router.address ({hosts}) \
                 — the lab routes one family: give both legs addresses of \
                 the hosts' family"
            ),
        ));
        return;
    }
    if hosts.contains(side.addr) || side.contains(hosts.addr) {
        out.push(Finding::error(
            "lab.router.client_side",
            format!(
                "{side} overlaps the hosts' segment ({hosts}) — the router \
                 joins two segments: give its client side a subnet of its \
                 own"
            ),
        ));
        return;
    }
    let client = lab.client;
    if side.contains(client.addr) {
        return;
    }
    let message = if hosts.contains(client.addr) {
        format!(
            "{client} is on the hosts' segment, but with `lab.router` the \
             client sits behind the router — give it an address in the \
             subnet of lab.router.client_side ({side}), its gateway"
        )
    } else {
        format!(
            "{client} is not in the subnet of lab.router.client_side \
             ({side}) — give it an address there: the router is its gateway"
        )
    };
    out.push(Finding::error("lab.client", message));
}

/// The router peers with the directors: there must be a `bgp:` block,
/// and the peers every director uses (the shared list, and each
/// director's own) must list the router with its AS.
fn router_is_a_peer(
    inv: &Inventory,
    router: &LabRouter,
    out: &mut Vec<Finding>,
) {
    let Some(bgp) = &inv.bgp else {
        out.push(Finding::error(
            "lab.router",
            "the lab's router peers with the directors over BGP, but there \
             is no `bgp:` block — add one (local_as, and the router under \
             peers) or remove lab.router",
        ));
        return;
    };
    let addr = router.address.addr;
    match bgp.peers.iter().find(|p| p.address == addr) {
        None => out.push(Finding::error(
            "lab.router.address",
            format!(
                "the lab's router is {addr} but `bgp.peers` does not list it \
                 — the directors would not peer with it; add `{{address: \
                 {addr}, as: {}}}` to `bgp.peers`",
                router.asn
            ),
        )),
        Some(p) => same_as(router, p, "bgp.peers", "lab.router.as", out),
    }
    for (i, d) in inv.directors.iter().enumerate() {
        let Some(own) = d.bgp.as_ref().and_then(|b| b.peers.as_ref()) else {
            continue;
        };
        let path = format!("directors[{i}].bgp.peers");
        match own.iter().find(|p| p.address == addr) {
            None => out.push(Finding::error(
                &path,
                format!(
                    "director {} has peers of its own without the lab's \
                     router {addr} — it would not peer with it; add \
                     `{{address: {addr}, as: {}}}` here",
                    d.name, router.asn
                ),
            )),
            Some(p) => same_as(router, p, &path, &path, out),
        }
    }
}

/// The router's AS must be the one the directors expect of it.
fn same_as(
    router: &LabRouter,
    peer: &BgpPeer,
    list: &str,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if peer.remote_as != router.asn {
        out.push(Finding::error(
            path,
            format!(
                "the lab's router has AS {} but `{list}` lists {} with AS {} \
                 — the sessions would fail on the AS: make them the same",
                router.asn, peer.address, peer.remote_as
            ),
        ));
    }
}

/// A VIP must be an address no host (nor lab host) owns.
fn vips_owned_by_hosts(
    inv: &Inventory,
    addrs: &HashMap<IpAddr, String>,
    out: &mut Vec<Finding>,
) {
    let vips: Vec<(String, IpAddr)> = inv
        .vrrp_instances
        .iter()
        .enumerate()
        .flat_map(|(i, vi)| {
            vi.virtual_addresses.iter().enumerate().map(move |(j, va)| {
                (
                    format!(
                        "vrrp_instances[{i}].virtual_addresses[{j}].address"
                    ),
                    va.address.addr,
                )
            })
        })
        .collect();
    for (path, vip) in vips {
        if let Some(owner) = addrs.get(&vip) {
            out.push(Finding::error(
                path,
                format!(
                    "VIP {vip} is the address of {owner} — a VIP must be an \
                     address no host owns"
                ),
            ));
        }
    }
}

pub(crate) fn interface_name(name: &str, path: &str, out: &mut Vec<Finding>) {
    let valid = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && !name.contains(['/', ' ', ':'])
        && name != "."
        && name != "..";
    if !valid {
        out.push(Finding::error(
            path,
            format!(
                "`{name}` is not a Linux interface name — use 1–{IFNAME_MAX} \
                 characters without `/`, `:` or spaces"
            ),
        ));
    }
}
