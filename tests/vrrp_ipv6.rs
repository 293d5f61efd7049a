//! VRRPv3 over IPv6 in the lab (issue #6): lbdeploy's director agent
//! against Debian's keepalived on ff02::12, each way round, and the
//! unsolicited Neighbour Advertisements a new master sends, seen on the
//! wire and in a client's neighbour table, unicast peers over IPv6, and an
//! agent started while its link-local address is still tentative.
//! Each lab's subnet carries its own (IPv4) addresses and its IPv6 VIP
//! fd77:N::200 ([`Inventory::ipv6`]); VRRP speaks from each director's
//! link-local address, which the kernel gives every veth — or, with
//! unicast peers, from its own address among them.
//!
//! Bounds are the protocol's, as in `vrrp_lab`: after `kill -9` the
//! backup holds the VIP within its Master_Down_Interval plus 100 ms of
//! measurement slack.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use lbdeploy::agent::vrrp::packet::{
    Addrs, Advert, AdvertV3, MULTICAST_V6, PseudoHeader, V3Checksum, Version,
};
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab, within};
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{
    Keepalived, agent_pids, election_bound, failover, instance,
    keepalived_pids, logs, start_keepalived, takeover_bound, v3_keepalived,
    wait_sole_holder,
};

fn adverts_received(lab: &TestLab, host: &str) -> u64 {
    instance(lab, host)["counters"]["adverts_received"].as_u64().unwrap()
}

/// Wait, at most one advert interval plus slack, until lbdeploy's
/// instance on `host` has received another advert (keepalived's: the
/// other director runs keepalived by now).
fn wait_next_advert(lab: &TestLab, host: &str) {
    let before = adverts_received(lab, host);
    let bound = Duration::from_millis(1100);
    let until = Instant::now() + bound;
    while adverts_received(lab, host) == before {
        assert!(Instant::now() < until, "no advert within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// None of the adverts lbdeploy's instance on `host` got failed its
/// checksum or hop limit.
fn assert_clean_counters(lab: &TestLab, host: &str) {
    let c = &instance(lab, host)["counters"];
    assert_eq!(c["bad_checksum"], 0, "{host}: {c}");
    assert_eq!(c["bad_ttl"], 0, "{host}: {c}");
}

/// keepalived master and lbdeploy backup, then lbdeploy master and
/// keepalived backup, in one lab: the priority-120 director wins, the VIP
/// is on it alone, and `kill -9` moves the VIP to the other within its
/// Master_Down_Interval.
#[test]
fn interop_v3_ipv6_multicast_both_ways() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("vrrp6-interop", Inventory::example(s).ipv6());
    let vip = s.vip6();
    let cidr = format!("{vip}/64");
    let v = Version::V3;
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(v));
    assert_eq!(instance(&lab, "keepalived02")["state"], "BACKUP");

    // keepalived -> lbdeploy.
    start_keepalived(&lab, s, "keepalived01", &v3_keepalived(&cidr, 120, ""));
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(v));
    assert_eq!(instance(&lab, "keepalived02")["state"], "BACKUP");
    wait_next_advert(&lab, "keepalived02");
    let pids = keepalived_pids(&lab, "keepalived01");
    let took = failover(&lab, &vip, &pids, "keepalived02");
    eprintln!(
        "keepalived -> lbdeploy v3 IPv6 failover after kill -9: {took:?}"
    );
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));
    assert_eq!(instance(&lab, "keepalived02")["state"], "MASTER");
    assert_clean_counters(&lab, "keepalived02");

    // lbdeploy -> keepalived: keepalived left its VIP behind when killed
    // (clear it as an operator would); lbdeploy takes keepalived01 back
    // by preempting, then keepalived replaces lbdeploy on keepalived02.
    lab.exec_ok("keepalived01", &format!("ip addr del {cidr} dev eth0"));
    lab.exec_ok(
        "keepalived01",
        "lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
    );
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(v));
    start_keepalived(&lab, s, "keepalived02", &v3_keepalived(&cidr, 70, ""));
    // keepalived (priority 70, starting as backup) has heard our adverts
    // if it is still backup once its Master_Down_Interval has passed.
    std::thread::sleep(takeover_bound(v));
    wait_sole_holder(&lab, &vip, "keepalived01", Duration::ZERO);
    assert_eq!(instance(&lab, "keepalived01")["state"], "MASTER");
    let pids = agent_pids(&lab, "keepalived01");
    let took = failover(&lab, &vip, &pids, "keepalived02");
    eprintln!(
        "lbdeploy -> keepalived v3 IPv6 failover after kill -9: {took:?}"
    );
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));
}

/// The MAC of `host`'s eth0.
fn mac(lab: &TestLab, host: &str) -> String {
    lab.exec_ok(host, "cat /sys/class/net/eth0/address").trim().to_owned()
}

/// The link-layer address the client's neighbour table holds for `ip`.
fn client_neighbour(lab: &TestLab, ip: &str) -> String {
    let out = lab.exec_ok("client", &format!("ip -6 neigh show {ip} dev eth0"));
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Two lbdeploy directors; the client talks to the VIP, so it has a
/// neighbour entry for keepalived01. Crash keepalived01: keepalived02
/// takes over and announces the VIP — tcpdump on the client sees the
/// Neighbour Advertisements (from keepalived02's MAC, to all nodes, hop
/// limit 255, Override set, target the VIP), and the client's entry
/// moves to keepalived02's MAC without the client asking. Then the hop
/// limit (from `IPV6_HOPLIMIT`) and the checksum (over the destination
/// from `IPV6_PKTINFO`) of adverts the client sends are checked.
#[test]
fn new_master_announces_ipv6_vip_with_neighbour_advertisements() {
    let s = Subnet::allocate();
    let lab =
        lab_or_skip!("vrrp6-neighbour-advert", Inventory::example(s).ipv6());
    let vip = s.vip6();
    let v = Version::V3;
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(v));
    let (old_mac, new_mac) =
        (mac(&lab, "keepalived01"), mac(&lab, "keepalived02"));

    // The client gets an address on the VIP's prefix and sends the VIP a
    // datagram, which makes it resolve the VIP to keepalived01's MAC.
    lab.exec_ok(
        "client",
        &format!("ip addr add {}/64 dev eth0 nodad", s.addr6(100)),
    );
    lab.exec_ok(
        "client",
        &format!("bash -c 'echo resolve > /dev/udp/{vip}/9'"),
    );
    let until = Instant::now() + Duration::from_secs(3);
    while client_neighbour(&lab, &vip) != old_mac {
        assert!(
            Instant::now() < until,
            "the client did not resolve {vip} to {old_mac}: {}",
            lab.exec_ok("client", "ip -6 neigh")
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let scratch = TempDir::new("vrrp6-na-capture");
    let (capture, log) =
        (scratch.path().join("na.txt"), scratch.path().join("tcpdump.log"));
    let (capture, log) = (capture.display(), log.display());
    lab.exec_ok(
        "client",
        &format!(
            "(timeout 20 tcpdump -l -n -e -v -i eth0 \
               'icmp6 and ip6[40] == 136' > {capture} 2> {log} &); \
             for i in $(seq 200); do grep -q 'listening on' {log} && exit 0; \
               sleep 0.05; done; cat {log}; exit 1"
        ),
    );
    let pids = agent_pids(&lab, "keepalived01");
    let took = failover(&lab, &vip, &pids, "keepalived02");
    eprintln!("lbdeploy -> lbdeploy v3 IPv6 failover after kill -9: {took:?}");
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));

    // The first burst goes out as the VIP is added: five adverts, at once.
    let until = Instant::now() + Duration::from_secs(2);
    let adverts = loop {
        let text = lab.exec_ok("client", &format!("cat {capture}"));
        let adverts: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&format!("tgt is {vip}")))
            .map(str::to_owned)
            .collect();
        if adverts.len() >= 5 || Instant::now() > until {
            break adverts;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(adverts.len() >= 5, "NAs seen by the client: {adverts:?}");
    for a in &adverts {
        assert!(a.contains(&format!("{new_mac} > 33:33:00:00:00:01")), "{a}");
        assert!(a.contains("hlim 255"), "{a}");
        assert!(a.contains(&format!("{vip} > ff02::1")), "{a}");
    }
    let verbose = lab.exec_ok("client", &format!("cat {capture}"));
    assert!(verbose.contains("Flags [override]"), "{verbose}");
    assert!(verbose.contains("link-address option"), "{verbose}");
    assert!(verbose.contains(&new_mac), "{verbose}");

    // The client sent nothing since; its entry follows the NA.
    assert_eq!(client_neighbour(&lab, &vip), new_mac);

    // An advert that would take over (priority 250) but arrives with hop
    // limit 64, and one with hop limit 255 and a broken checksum: both are
    // dropped and counted; the master stays master.
    let before = instance(&lab, "keepalived02");
    let client_ll: Ipv6Addr = lab
        .exec_ok("client", "ip -6 -o addr show dev eth0 scope link")
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let ip = PseudoHeader::V6 { src: client_ll, dst: MULTICAST_V6 };
    let advert = Advert::V3(AdvertV3 {
        vrid: 51,
        priority: 250,
        max_adver_int: 100,
        addrs: Addrs::V6(vec![vip.parse().unwrap()]),
    })
    .encode(&ip, V3Checksum::Rfc5798)
    .unwrap();
    send_raw6(&lab, &advert, 64);
    let mut bad_sum = advert.clone();
    bad_sum[6] ^= 0x55;
    send_raw6(&lab, &bad_sum, 255);
    let counted = |v: &Value| {
        let c = &v["counters"];
        (c["bad_ttl"].as_u64().unwrap(), c["bad_checksum"].as_u64().unwrap())
    };
    let (ttl0, sum0) = counted(&before);
    let until = Instant::now() + Duration::from_secs(2);
    let after = loop {
        let after = instance(&lab, "keepalived02");
        if counted(&after) == (ttl0 + 1, sum0 + 1) || Instant::now() > until {
            break after;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(counted(&after), (ttl0 + 1, sum0 + 1), "{after}");
    assert_eq!(after["state"], "MASTER");
    assert_eq!(
        after["counters"]["transitions"],
        before["counters"]["transitions"]
    );
}

/// Send `msg` from the client to ff02::12 on eth0, on a raw IPv6 socket
/// for protocol 112 with hop limit `hops`.
fn send_raw6(lab: &TestLab, msg: &[u8], hops: u8) {
    let hex: String = msg.iter().map(|b| format!("{b:02x}")).collect();
    lab.exec_ok(
        "client",
        &format!(
            "python3 -c 'import socket; \
             s=socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112); \
             s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, {hops}); \
             s.sendto(bytes.fromhex(\"{hex}\"), \
               (\"ff02::12\", 0, 0, socket.if_nametoindex(\"eth0\")))'"
        ),
    );
}

/// Unicast over IPv6, as keepalived's `unicast_src_ip` / `unicast_peer`:
/// the inventory lists both directors' IPv6 addresses and each lbdeploy
/// director speaks from the one that is its own. lbdeploy pair first
/// (the backup hears the master's unicast adverts), then keepalived takes
/// keepalived01 over and preempts lbdeploy's master from its own unicast
/// address; `kill -9` moves the VIP back to lbdeploy within its
/// Master_Down_Interval.
#[test]
fn interop_v3_ipv6_unicast() {
    let s = Subnet::allocate();
    let vip = s.vip6();
    let cidr = format!("{vip}/64");
    let lab =
        lab_or_skip!("vrrp6-unicast", Inventory::example(s).ipv6().unicast());
    for (host, me) in [("keepalived01", 11), ("keepalived02", 12)] {
        lab.exec_ok(
            host,
            &format!("ip -6 addr add {}/64 dev eth0 nodad", s.addr6(me)),
        );
    }
    let v = Version::V3;
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(v));
    assert_eq!(instance(&lab, "keepalived02")["state"], "BACKUP");
    wait_next_advert(&lab, "keepalived02");

    let ka = Keepalived {
        priority: 120,
        version: 3,
        unicast: true,
        vip_cidr: &cidr,
        options: "",
    };
    start_keepalived(&lab, s, "keepalived01", &ka);
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(v));
    wait_next_advert(&lab, "keepalived02");
    assert_eq!(instance(&lab, "keepalived02")["state"], "BACKUP");
    assert_clean_counters(&lab, "keepalived02");
    let pids = keepalived_pids(&lab, "keepalived01");
    let took = failover(&lab, &vip, &pids, "keepalived02");
    eprintln!("keepalived -> lbdeploy v3 IPv6 unicast failover: {took:?}");
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));
}

/// A director started with its link — at boot, or right after `ip link
/// set up` — finds its link-local address still in duplicate address
/// detection, which the kernel will not bind. It waits DAD out and starts
/// (the kernel's defaults take 1–2 s; the agent waits up to 5 s), instead
/// of failing until its supervisor tries again.
#[test]
fn an_agent_started_with_its_link_waits_out_duplicate_address_detection() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("vrrp6-dad", Inventory::example(s).ipv6());
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(
        &lab,
        &s.vip6(),
        "keepalived01",
        election_bound(Version::V3),
    );
    lab.exec_ok("keepalived02", "lbdeploy agent stop");
    let log = "/run/lbdeploy/agent.log";
    let before = lab.exec_ok("keepalived02", &format!("cat {log}")).len();
    let start = Instant::now();
    let tentative = lab.exec_ok(
        "keepalived02",
        "ip link set eth0 down && ip link set eth0 up && \
         ip -6 addr show dev eth0 scope link tentative && \
         lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
    );
    assert!(
        tentative.contains("fe80::"),
        "the link-local address was not tentative at the start:\n{tentative}"
    );
    let backup = || {
        let out = lab.exec("keepalived02", "lbdeploy agent status --json");
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|s| {
            s["details"]["vrrp_instances"][0]["state"] == "BACKUP"
        })
    };
    within(Duration::from_secs(7), "keepalived02 backup again", backup);
    let took = start.elapsed();
    let log = lab.exec_ok("keepalived02", &format!("cat {log}"));
    let since = &log[before..];
    assert!(
        since.contains("waiting for duplicate address detection on eth0"),
        "{since}"
    );
    assert_eq!(since.matches("started the agent").count(), 1, "{since}");
    assert!(!since.contains("the agent exited"), "{since}");
    eprintln!("started as backup {took:?} after the link came up");
}
