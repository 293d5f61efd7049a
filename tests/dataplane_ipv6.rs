//! An IPv6 virtual service on the nftables data plane (issue #21): the
//! example cluster with its VIP fd77:N::200 ([`Inventory::ipv6`]) and a
//! web service on it, applied as an operator would. The master forwards
//! each IPv6 flow by the same bucket tables as IPv4 ones (hashed on the
//! IPv6 source and port), the real servers hold the VIP on `lo` and answer
//! the client directly, and no real server answers Neighbour Solicitations
//! for the VIP: the client's neighbour entry for it is the master's MAC.
//!
//! The real servers keep their IPv4 addresses (checks and MACs go by them);
//! each gets an IPv6 address on its link for its answers, as its network
//! configuration would give it.

use std::collections::BTreeMap;
use std::time::Duration;

use lbdeploy::agent::vrrp::packet::Version;

use crate::dataplane::dns_answers;
use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::within;
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{election_bound, wait_sole_holder};

#[test]
fn r21_ipv6_http_through_the_vip_spreads_and_only_the_master_answers_for_it() {
    let s = Subnet::allocate();
    let vip = s.vip6();
    let inv = Inventory::example(s).ipv6().top(&format!(
        "dataplane: nftables\n\
         virtual_services:\n\
         \x20 - vip: '{vip}'\n\
         \x20   port: 80\n\
         \x20   scheduler: rr\n\
         \x20   delay_loop: 1s\n\
         \x20   real_servers:\n\
         \x20     - {{ host: rs01, port: 80 }}\n\
         \x20     - {{ host: rs02, port: 80 }}\n"
    ));
    let lab = lab_or_skip!("ipv6-service", inv);
    for (host, n) in [("client", 100), ("rs01", 21), ("rs02", 22)] {
        let addr = s.addr6(n);
        lab.exec_ok(host, &format!("ip addr add {addr}/64 dev eth0 nodad"));
    }
    for host in ["rs01", "rs02"] {
        lab.swap_responder(host, &format!("--name {host} --listen ::"));
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    for host in ["rs01", "rs02"] {
        let lo = lab.exec_ok(host, "ip -6 addr show dev lo");
        assert!(lo.contains(&format!("{vip}/128")), "{host}: {lo}");
    }
    let url = format!("http://[{vip}]/");
    let get = || lab.exec("client", &format!("curl -sf --max-time 1 {url}"));
    // Both real servers' checks pass within a few `delay_loop`s of 1 s.
    within(Duration::from_secs(10), "traffic through the IPv6 VIP", || {
        get().status.success()
    });
    let mut answers = BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        let out = get();
        assert!(out.status.success(), "a request through {url} failed");
        let who = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        *answers.entry(who).or_default() += 1;
    }
    assert_eq!(
        answers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["rs01", "rs02"],
        "{answers:?}"
    );
    let master = lab.exec_ok("keepalived01", "cat /sys/class/net/eth0/address");
    let neigh = lab.exec_ok("client", &format!("ip -6 neigh show {vip}"));
    assert!(
        neigh.contains(&format!("lladdr {} ", master.trim())),
        "the client resolved {vip} to another host than the master: {neigh}"
    );
}

/// UDP over IPv6 (issue #21): a DNS service on the IPv6 VIP, its real
/// servers' responders answering from the VIP (`IPV6_PKTINFO`; the
/// client's socket is connected to the VIP, so an answer from any other
/// address is not one) and checked by `dns` checks over their IPv4
/// addresses. Queries from 100 source ports reach both real servers; 20
/// queries from one port stay on one.
#[test]
fn r21_ipv6_dns_through_the_vip_spreads_flows_and_keeps_each_on_one_server() {
    let s = Subnet::allocate();
    let vip = s.vip6();
    let check = "{ dns: { name: lab.test, type: TXT, connect_timeout: 1s, \
                 retry: 1, delay_before_retry: 500ms } }";
    let inv = Inventory::example(s).ipv6().top(&format!(
        "dataplane: nftables\n\
         virtual_services:\n\
         \x20 - name: dns\n\
         \x20   vip: '{vip}'\n\
         \x20   port: 53\n\
         \x20   protocol: udp\n\
         \x20   scheduler: rr\n\
         \x20   delay_loop: 1s\n\
         \x20   real_servers:\n\
         \x20     - {{ host: rs01, port: 53, checks: [{check}] }}\n\
         \x20     - {{ host: rs02, port: 53, checks: [{check}] }}\n"
    ));
    let lab = lab_or_skip!("ipv6-dns", inv);
    for (host, n) in [("client", 100), ("rs01", 21), ("rs02", 22)] {
        let addr = s.addr6(n);
        lab.exec_ok(host, &format!("ip addr add {addr}/64 dev eth0 nodad"));
    }
    for host in ["rs01", "rs02"] {
        lab.swap_responder(
            host,
            &format!("--name {host} --listen :: --dns-port 53"),
        );
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    let wait = Duration::from_secs(1);
    // Both real servers' checks pass within a few `delay_loop`s of 1 s.
    within(Duration::from_secs(10), "DNS through the IPv6 VIP", || {
        dns_answers(&lab, &vip, &[(39999, 1)], wait)
            .get(&39999)
            .is_some_and(|names| names[0] != "-")
    });
    let table = lab.exec_ok("keepalived01", "nft list table netdev lbdeploy");
    assert!(table.contains("udp dport 53"), "no UDP rule:\n{table}");

    let ports: Vec<(u16, usize)> = (40000..40100).map(|p| (p, 1)).collect();
    let mut spread = BTreeMap::<String, usize>::new();
    for names in dns_answers(&lab, &vip, &ports, wait).into_values() {
        for name in names {
            *spread.entry(name).or_default() += 1;
        }
    }
    assert_eq!(
        spread.keys().map(String::as_str).collect::<Vec<_>>(),
        ["rs01", "rs02"],
        "every query answered, by both real servers: {spread:?}"
    );
    let flow = dns_answers(&lab, &vip, &[(41000, 20)], wait);
    let names = &flow[&41000];
    assert!(
        names.len() == 20 && names.iter().all(|n| n == &names[0] && n != "-"),
        "one flow was answered by several real servers (or none): {names:?}"
    );
    eprintln!(
        "ipv6 udp: 100 flows answered {spread:?}; one flow of 20 on {}",
        names[0]
    );
}
