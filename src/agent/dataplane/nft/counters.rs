//! What the table counted of each real server: the counting sets `c{i}`
//! ([`mod@super::compile`]) as `nft -j list sets table netdev lbdeploy`
//! prints them, read back into each service's real servers. Pure.
//!
//! The listing is the kernel's, but read as any input: a set that is not
//! a counting set of ours, an element that is not a MAC, a counter that
//! is not a number are passed over, never an error — what can be read is
//! reported.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::{Compiled, Mac};
use crate::agent::dataplane::stats::{Traffic, TrafficByService};
use crate::inventory::agent::DirectorConfig;

/// Packets and bytes forwarded to each MAC, by service index.
pub type Counted = BTreeMap<usize, BTreeMap<Mac, (u64, u64)>>;

/// The counting sets' elements in `listing`, the JSON of `nft -j list
/// sets table netdev lbdeploy`.
pub fn parse(listing: &str) -> Counted {
    let mut counted = Counted::new();
    let Ok(doc) = serde_json::from_str::<Value>(listing) else {
        return counted;
    };
    let items = doc["nftables"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for set in items.iter().filter_map(|item| item.get("set")) {
        let Some(i) = set["name"]
            .as_str()
            .and_then(|n| n.strip_prefix('c'))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        // A set read counts: what it does not hold got nothing.
        let read = counted.entry(i).or_default();
        let elements = set["elem"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for e in elements.iter().map(|e| &e["elem"]) {
            let mac = e["val"].as_str().and_then(|m| m.parse().ok());
            let counter = &e["counter"];
            let (Some(mac), Some(packets), Some(bytes)) =
                (mac, counter["packets"].as_u64(), counter["bytes"].as_u64())
            else {
                continue;
            };
            read.insert(mac, (packets, bytes));
        }
    }
    counted
}

/// Each configured real server's counts, by service name and address:
/// service `i` of `table` is the configuration's service of its name,
/// and a real server's count is its MAC's (`macs`, from the neighbour
/// table). Real servers on one host share its MAC, and its count.
pub fn traffic(
    config: &DirectorConfig,
    table: &Compiled,
    macs: &BTreeMap<IpAddr, Mac>,
    counted: &Counted,
) -> TrafficByService {
    let mut out = TrafficByService::new();
    for (i, forwarded) in table.services.iter().enumerate() {
        let Some(by_mac) = counted.get(&i) else { continue };
        let name = &forwarded.service.name;
        let Some(svc) =
            config.virtual_services.iter().find(|s| &s.name == name)
        else {
            continue;
        };
        let sorry = svc.sorry_server.map(|a| a.ip());
        let addresses = svc.real_servers.iter().map(|r| r.address).chain(sorry);
        for address in addresses {
            // A MAC the set does not hold was forwarded nothing since the
            // table was loaded, or for the set's timeout.
            let Some(&(packets, bytes)) =
                macs.get(&address).map(|m| by_mac.get(m).unwrap_or(&(0, 0)))
            else {
                continue;
            };
            out.entry(name.clone()).or_default().insert(
                address,
                Traffic { packets, bytes, ..Traffic::default() },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `nft -j list sets` printed in the lab for one service's set
    /// after 20 flows (trimmed), with a set of someone else's beside it.
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"set": {"family": "netdev", "name": "c0", "table": "lbdeploy", "type": "ether_addr", "size": 65536, "flags": ["timeout"], "timeout": 3600,
         "elem": [{"elem": {"val": "02:00:00:00:00:01", "expires": 3599, "counter": {"packets": 11, "bytes": 1408}}},
                  {"elem": {"val": "02:00:00:00:00:02", "expires": 3599, "counter": {"packets": 9, "bytes": 1152}}}]}},
        {"set": {"family": "netdev", "name": "blocked", "table": "lbdeploy", "elem": [{"elem": {"val": "02:00:00:00:00:03", "counter": {"packets": 1, "bytes": 1}}}]}}]}"#;

    fn mac(last: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, last])
    }

    #[test]
    fn a_listing_gives_each_macs_packets_and_bytes() {
        let counted = parse(LISTING);
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert_eq!(counted[&0][&mac(1)], (11, 1408));
        assert_eq!(counted[&0][&mac(2)], (9, 1152));
    }

    #[test]
    fn each_real_server_gets_its_macs_count_under_its_service() {
        let config: DirectorConfig = serde_yaml::from_str(
            "{ cluster: c, host: d1, interface: eth0, address: 10.1.0.11/24,
               dataplane: nftables,
               vrrp_instances: [{ name: VI_1, virtual_router_id: 9,
                 version: 3, advert_int: 1s, priority: 100, preempt: true,
                 virtual_addresses: [{ address: 10.1.0.200/24 }] }],
               virtual_services: [{ name: dns, vip: 10.1.0.200, port: 53,
                 protocol: udp, scheduler: rr, delay_loop: 6s, quorum: 1,
                 real_servers: [{ address: 10.1.0.21, port: 53, weight: 1 },
                                { address: 10.1.0.22, port: 53, weight: 1 },
                                { address: 10.1.0.23, port: 53, weight: 1 }] }] }",
        )
        .unwrap();
        let ip = |last: u8| IpAddr::from([10, 1, 0, last]);
        // .23's MAC is not known: it is not forwarded to, nor counted.
        let macs = BTreeMap::from([(ip(21), mac(1)), (ip(22), mac(2))]);
        let rules = super::super::ruleset(
            &config,
            mac(0xaa),
            &macs,
            |_, _| true,
            |_| true,
            ["VI_1".to_owned()].into(),
        )
        .unwrap();
        let table = super::super::compile(rules, None);
        let t = traffic(&config, &table, &macs, &parse(LISTING));
        let dns = &t["dns"];
        assert_eq!(dns.len(), 2, "{t:?}");
        assert_eq!((dns[&ip(21)].packets, dns[&ip(21)].bytes), (11, 1408));
        assert_eq!(dns[&ip(22)].packets, 9);
        assert_eq!(dns[&ip(22)].connections, None, "nftables keeps none");
        // A set read without an element for a MAC: nothing forwarded to it.
        let empty = r#"{"nftables": [{"set": {"name": "c0", "elem": []}}]}"#;
        let t = traffic(&config, &table, &macs, &parse(empty));
        assert_eq!((t["dns"][&ip(21)].packets, t["dns"].len()), (0, 2));
    }

    #[test]
    fn what_cannot_be_read_is_passed_over() {
        for broken in [
            "",
            "not json",
            "{}",
            r#"{"nftables": 3}"#,
            r#"{"nftables": [{"set": {"name": "c", "elem": []}}]}"#,
            r#"{"nftables": [{"set": {"name": "c99999999999999999999999"}}]}"#,
            r#"{"nftables": [{"set": {"name": "c0", "elem": [{"elem": {"val": "zz", "counter": {"packets": 1, "bytes": 1}}}]}}]}"#,
            r#"{"nftables": [{"set": {"name": "c0", "elem": [{"elem": {"val": "02:00:00:00:00:01", "counter": {"packets": -1, "bytes": 1}}}]}}]}"#,
            r#"{"nftables": [{"set": {"name": "c0", "elem": [{"elem": {"val": "02:00:00:00:00:01"}}]}}]}"#,
        ] {
            let counted = parse(broken);
            assert!(counted.values().all(BTreeMap::is_empty), "{broken}");
        }
    }
}
