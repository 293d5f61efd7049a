//! The `metrics` rules: a port the agent can listen on, a cluster-wide
//! address that every host has, and no real server whose metrics port is
//! the port of a service it serves.

use std::net::{IpAddr, SocketAddr};

use crate::inventory::diag::Finding;
use crate::inventory::schema::{Inventory, Metrics, PortSpan};

/// Every `metrics` rule: the inventory's, each director's and each real
/// server's.
pub(crate) fn metrics(inv: &Inventory, out: &mut Vec<Finding>) {
    if let Some(m) = &inv.metrics {
        port(m, "metrics.listen", out);
        let ip = m.listen.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            out.push(Finding::error(
                "metrics.listen",
                format!(
                    "the inventory's `metrics.listen` applies to every host, \
                     and {ip} is one address — listen on {} (every address) \
                     or set `metrics.listen` under each host",
                    wildcard(m.listen)
                ),
            ));
        }
    }
    for (i, d) in inv.directors.iter().enumerate() {
        if let Some(m) = &d.metrics {
            port(m, &format!("directors[{i}].metrics.listen"), out);
        }
    }
    for (i, r) in inv.real_servers.iter().enumerate() {
        let own = r.metrics.is_some();
        let Some(m) = r.metrics.or(inv.metrics) else { continue };
        let path = if own {
            format!("real_servers[{i}].metrics.listen")
        } else {
            "metrics.listen".to_owned()
        };
        if own {
            port(&m, &path, out);
        }
        // The same port below PORT_MIN is reported once, above.
        let listen = m.listen;
        let served = inv.virtual_services.iter().find(|vs| {
            vs.spans().iter().any(|s| s.overlaps(&PortSpan::one(listen.port())))
                && vs.real_servers.iter().any(|rs| {
                    rs.host.as_deref() == Some(r.name.as_str())
                        || rs.address == Some(r.address.addr)
                })
                && takes(listen.ip(), &[vs.vip, r.address.addr])
        });
        if let Some(vs) = served {
            out.push(Finding::error(
                path,
                format!(
                    "real server {} serves {} — its agent's metrics need \
                     another port",
                    r.name,
                    SocketAddr::new(vs.vip, listen.port())
                ),
            ));
        }
    }
}

/// The lowest port the agent can bind: below it binding takes
/// CAP_NET_BIND_SERVICE, which the agent does not keep (its unit's
/// bounding set and the supervisor's both leave it out).
pub(crate) const PORT_MIN: u16 = 1024;

/// Port 0 would be a new random port at every start: nothing could
/// scrape it; a port below [`PORT_MIN`] the agent cannot bind.
fn port(m: &Metrics, path: &str, out: &mut Vec<Finding>) {
    let p = m.listen.port();
    if p == 0 {
        out.push(Finding::error(
            path,
            "port 0 is a random port at every start — give a fixed port, \
             e.g. 9105",
        ));
    } else if p < PORT_MIN {
        out.push(Finding::error(
            path,
            format!(
                "port {p} is below {PORT_MIN}, which the agent cannot bind \
                 (it keeps no CAP_NET_BIND_SERVICE) — use e.g. 9105"
            ),
        ));
    }
}

/// Whether a socket bound to `ip` takes connections to any of `addrs`.
fn takes(ip: IpAddr, addrs: &[IpAddr]) -> bool {
    ip.is_unspecified() || addrs.contains(&ip)
}

/// `listen` on every address of its family.
fn wildcard(listen: SocketAddr) -> String {
    match listen {
        SocketAddr::V4(a) => format!("0.0.0.0:{}", a.port()),
        SocketAddr::V6(a) => format!("[::]:{}", a.port()),
    }
}
