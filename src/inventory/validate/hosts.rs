//! The hosts' rules: at least one director, unique names and addresses
//! across directors, real servers and the lab's hosts, valid interface
//! names, no VIP that a host owns, and no name or SSH target that `ssh`
//! would read as an option.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::inventory::diag::Finding;
use crate::inventory::schema::Inventory;

/// The longest interface name Linux accepts (IFNAMSIZ − 1).
pub(crate) const IFNAME_MAX: usize = 15;

/// Every host rule, in order: directors present, names and addresses
/// unique, the lab's addresses free, VIPs owned by no host.
pub(crate) fn hosts(inv: &Inventory, out: &mut Vec<Finding>) {
    if inv.directors.is_empty() {
        out.push(Finding::error(
            "directors",
            "no directors — list at least one load-balancer host",
        ));
    }
    let mut addrs = unique_hosts(inv, out);
    lab_addresses(inv, &mut addrs, out);
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

/// The lab's controller and client need addresses no host uses; they join
/// `addrs` as owners.
fn lab_addresses(
    inv: &Inventory,
    addrs: &mut HashMap<IpAddr, String>,
    out: &mut Vec<Finding>,
) {
    let Some(lab) = &inv.lab else { return };
    for (field, a) in [("controller", lab.controller), ("client", lab.client)] {
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
