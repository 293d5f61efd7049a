//! Which VIP addresses belong on `lo`, and which addresses elsewhere on the
//! host make running unsafe — pure functions of the configuration and the
//! kernel's address list, shared by start, reload and the watcher.

use std::net::IpAddr;

use crate::agent::sys::net::Address;

/// A VIP's host prefix: a real server holds exactly the address, never a
/// subnet, or `lo` would claim the whole subnet as local.
pub(crate) fn host_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The addresses the agent keeps on `lo` (interface `lo_index`), one per
/// VIP, duplicates dropped.
pub fn wanted(lo_index: u32, vips: &[IpAddr]) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    for &ip in vips {
        if !out.iter().any(|a| a.ip == ip) {
            out.push(Address {
                index: lo_index,
                ip,
                prefix: host_prefix(ip),
                label: None,
            });
        }
    }
    out
}

/// The addresses in `present` that put a VIP on an interface other than
/// `lo`: a real server that holds a VIP on its LAN interface answers ARP
/// for it and steals the directors' traffic, so the agent refuses to run.
pub(crate) fn conflicts<'a>(
    lo_index: u32,
    vips: &[IpAddr],
    present: &'a [Address],
) -> Vec<&'a Address> {
    present
        .iter()
        .filter(|a| a.index != lo_index && vips.contains(&a.ip))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wanted_uses_host_prefixes_and_drops_duplicates() {
        let got =
            wanted(1, &[ip("192.0.2.1"), ip("2001:db8::1"), ip("192.0.2.1")]);
        let short: Vec<_> =
            got.iter().map(|a| (a.index, a.ip, a.prefix)).collect();
        assert_eq!(
            short,
            [(1, ip("192.0.2.1"), 32), (1, ip("2001:db8::1"), 128)]
        );
    }

    #[test]
    fn conflicts_are_vips_off_loopback() {
        let a = |index, s: &str, prefix| Address {
            index,
            ip: ip(s),
            prefix,
            label: None,
        };
        let present = [
            a(1, "192.0.2.1", 32),
            a(2, "192.0.2.1", 24),
            a(2, "192.0.2.21", 24),
        ];
        assert_eq!(conflicts(1, &[ip("192.0.2.1")], &present), [&present[1]]);
        assert!(conflicts(1, &[ip("192.0.2.9")], &present).is_empty());
    }
}
