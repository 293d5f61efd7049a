//! The lab's network: one namespace per host and one L2 segment, a Linux
//! bridge inside a switch namespace with a veth to every host — but the
//! client behind a router, whose veth goes to the router instead (a link
//! of two needs no bridge).
//!
//! ```text
//!   lbd-<id> (switch)            lbd-<id>-<host>
//!   ┌─────────────────┐          ┌──────────────────────────┐
//!   │ br0 ── p0-rs01 ─┼── veth ──┼─ eth0 192.168.1.21/24    │
//!   │     ── p1-...   │          │ lo                       │
//!   └─────────────────┘          └──────────────────────────┘
//! ```
//!
//! Each veth pair is created inside the switch namespace with its other end
//! placed directly in the host's namespace under the inventory's interface
//! name, so no lab interface ever appears in the machine's own namespace:
//! nothing is routed to or from the machine's real interfaces, and labs
//! cannot collide on interface names.

use std::path::Path;

use super::cmd::{Cmd, CmdError};
use super::topology::{BRIDGE, LabHost, Uplink};
use crate::inventory::IfAddr;

/// Whether the named network namespace exists.
pub fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Create a network namespace.
///
/// # Errors
/// When `ip netns add` fails (for example, the name is taken).
pub fn add(name: &str) -> Result<(), CmdError> {
    Cmd::new("ip").args(["netns", "add", name]).run().map(drop)
}

/// Delete a network namespace if it exists. Its interfaces go with it,
/// which also removes the peer veth ends in the switch.
///
/// # Errors
/// When `ip netns delete` fails.
pub fn delete(name: &str) -> Result<(), CmdError> {
    if !exists(name) {
        return Ok(());
    }
    Cmd::new("ip").args(["netns", "delete", name]).run().map(drop)
}

/// `ip -n NS ARGS...`.
fn ip(ns: &str, args: &[&str]) -> Result<(), CmdError> {
    Cmd::new("ip").args(["-n", ns]).args(args).run().map(drop)
}

/// Make `ns` a switch: a bridge, up. STP stays off (the default), so ports
/// forward as soon as they are up instead of after the forward delay.
///
/// # Errors
/// When an `ip` command fails.
pub(crate) fn build_switch(ns: &str) -> Result<(), CmdError> {
    ip(ns, &["link", "add", BRIDGE, "type", "bridge"])?;
    ip(ns, &["link", "set", BRIDGE, "up"])
}

/// Plug `host` in: a veth pair from `upstream` (the switch namespace, or
/// the router's for a host whose uplink is the router), the inventory
/// interface name, address and routes inside the host, `lo` up.
///
/// # Errors
/// When an `ip` command fails.
pub(crate) fn plug(upstream: &str, host: &LabHost) -> Result<(), CmdError> {
    let port = host.switch_port.as_str();
    let iface = host.interface.as_str();
    ip(
        upstream,
        &[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            iface,
            "netns",
            &host.netns,
        ],
    )?;
    match host.uplink {
        Uplink::Switch => {
            ip(upstream, &["link", "set", port, "master", BRIDGE, "up"])?
        }
        Uplink::Router { address } => {
            add_address(upstream, port, address)?;
            ip(upstream, &["link", "set", port, "up"])?;
        }
    }
    add_address(&host.netns, iface, host.address)?;
    ip(&host.netns, &["link", "set", iface, "up"])?;
    ip(&host.netns, &["link", "set", "lo", "up"])?;
    for route in &host.routes {
        let (to, via) = (route.destination(), route.via.to_string());
        ip(&host.netns, &[route.family(), "route", "add", &to, "via", &via])?;
    }
    Ok(())
}

/// Put `address` on `iface` in namespace `ns`.
fn add_address(ns: &str, iface: &str, address: IfAddr) -> Result<(), CmdError> {
    let addr = address.to_string();
    let mut add = vec!["addr", "add", &addr, "dev", iface];
    if address.addr.is_ipv6() {
        // Duplicate address detection would keep the address tentative
        // (unusable) for a second or more; the lab's addresses are unique
        // on its segment by validation.
        add.push("nodad");
    }
    ip(ns, &add)
}

/// Set `key` to `value` in namespace `ns` (`sysctl -w` run inside it:
/// `net.*` settings belong to the namespace of whoever writes them).
///
/// # Errors
/// When `sysctl` fails (for example, the kernel lacks the setting).
pub(crate) fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), CmdError> {
    Cmd::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .arg(format!("{key}={value}"))
        .run()
        .map(drop)
}
