//! Which VIPs a director announces now (pure).
//!
//! A router sends a VIP's flows to every director that announces it, so
//! a director announces only what it can forward: its table installed
//! and verified by the last reconcile, the VIP's services jumped to, and
//! at least one of them with quorum. Anything else withdraws it, and the
//! flows go to the other directors.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::inventory::Announce;
use crate::inventory::agent::DirectorConfig;

/// Every VIP of `config` announced over BGP.
pub(crate) fn vips(config: &DirectorConfig) -> BTreeSet<IpAddr> {
    config
        .virtual_services
        .iter()
        .filter(|s| s.announce == Announce::Bgp)
        .map(|s| s.vip)
        .collect()
}

/// The VIPs to announce: none unless the data plane's last reconcile
/// succeeded (`plane_ok`); else each VIP all of whose services are
/// `forwarding` and one of which `has_quorum`.
pub(crate) fn announced(
    config: &DirectorConfig,
    plane_ok: bool,
    forwarding: &[String],
    has_quorum: impl Fn(&str) -> bool,
) -> BTreeSet<IpAddr> {
    if !plane_ok {
        return BTreeSet::new();
    }
    vips(config)
        .into_iter()
        .filter(|vip| {
            let services = || {
                config.virtual_services.iter().filter(move |s| s.vip == *vip)
            };
            services().all(|s| forwarding.contains(&s.name))
                && services().any(|s| has_quorum(&s.name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DirectorConfig {
        serde_yaml::from_str(
            "cluster: c\nhost: d1\ninterface: eth0\naddress: 10.0.0.11/24\n\
             dataplane: nftables\nvrrp_instances: []\n\
             virtual_services:\n\
             - {name: web, vip: 10.20.0.100, announce: bgp, port: 80, \
                protocol: tcp, scheduler: mh, delay_loop: 1s, quorum: 1, \
                real_servers: []}\n\
             - {name: tls, vip: 10.20.0.100, announce: bgp, port: 443, \
                protocol: tcp, scheduler: mh, delay_loop: 1s, quorum: 1, \
                real_servers: []}\n\
             - {name: dns, vip: 10.20.0.53, announce: bgp, port: 53, \
                protocol: udp, scheduler: mh, delay_loop: 1s, quorum: 1, \
                real_servers: []}\n\
             - {name: vrrp, vip: 10.0.0.200, port: 80, protocol: tcp, \
                scheduler: rr, delay_loop: 1s, quorum: 1, real_servers: []}\n",
        )
        .unwrap()
    }

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn only_bgp_vips_are_announced() {
        assert_eq!(vips(&config()), ips(&["10.20.0.53", "10.20.0.100"]));
    }

    #[test]
    fn a_vip_is_announced_while_all_its_services_forward_and_one_has_quorum() {
        let c = config();
        let all: Vec<String> =
            ["web", "tls", "dns", "vrrp"].map(String::from).to_vec();
        let every = |_: &str| true;
        assert_eq!(
            announced(&c, true, &all, every),
            ips(&["10.20.0.53", "10.20.0.100"])
        );
        assert!(announced(&c, false, &all, every).is_empty(), "plane broken");
        let some: Vec<String> = ["web", "dns"].map(String::from).to_vec();
        assert_eq!(
            announced(&c, true, &some, every),
            ips(&["10.20.0.53"]),
            "tls is not jumped to"
        );
        let tls_only = |s: &str| s == "tls";
        assert_eq!(
            announced(&c, true, &all, tls_only),
            ips(&["10.20.0.100"]),
            "web without quorum, tls with: the VIP stays; dns has none"
        );
    }
}
