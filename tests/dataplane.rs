//! The nftables DSR data plane in the lab, real kernel: the table lbdeploy
//! renders, installed on a director holding the VIP, forwards the client's
//! connections to the real servers by MAC. The director's and real servers'
//! VIP set-up is done by hand here so that only the data plane is under
//! test (the agents do it in the end-to-end tests).

use std::collections::BTreeMap;

use lbdeploy::agent::dataplane::buckets::Backend;
use lbdeploy::agent::dataplane::nft::{Mac, Proto, Ruleset, Service, render};

use crate::lab_or_skip;
use crate::support::lab::{TempDir, TestLab, example_inventory};

const N: u8 = 86;

fn vip() -> String {
    format!("10.77.{N}.200")
}

fn mac(lab: &TestLab, host: &str) -> Mac {
    lab.exec_ok(host, "cat /sys/class/net/eth0/address").parse().unwrap()
}

/// The VIP on the director's eth0 and on the real servers' lo, with ARP
/// suppressed on the real servers — what VRRP and the real-server agent do.
fn hold_vip(lab: &TestLab) {
    lab.exec_ok("keepalived01", &format!("ip addr add {}/24 dev eth0", vip()));
    for rs in ["rs01", "rs02"] {
        lab.exec_ok(
            rs,
            &format!(
                "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                 && ip addr add {}/32 dev lo",
                vip()
            ),
        );
    }
}

fn install(lab: &TestLab, dir: &TempDir, weights: [u32; 2], persistent: bool) {
    let backends = ["rs01", "rs02"]
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (host, weight))| {
            let key = format!("10.77.{N}.{}:80", 21 + i);
            (Backend { key, weight }, mac(lab, host))
        })
        .collect();
    let rules = Ruleset {
        interface: "eth0".into(),
        mac: mac(lab, "keepalived01"),
        services: vec![Service {
            vip: vip().parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
            persistent,
            backends,
        }],
    };
    let file = dir.path().join("table.nft");
    std::fs::write(&file, render(&rules)).unwrap();
    lab.exec_ok("keepalived01", &format!("nft -f {}", file.display()));
}

/// Who answered `count` requests from the client, each from its own source
/// port from `base` on (a port is not reused while its last connection
/// lingers in TIME_WAIT).
fn spread(lab: &TestLab, base: u16, count: u16) -> BTreeMap<String, usize> {
    let out = lab.exec_ok(
        "client",
        &format!(
            "for p in $(seq {base} {}); do curl -s --max-time 2 --local-port $p http://{}/; done",
            base + count - 1,
            vip()
        ),
    );
    let mut seen = BTreeMap::new();
    // The responder ends its answer with a newline; a failed request
    // prints nothing and shows up as a missing count.
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        *seen.entry(line.trim().to_owned()).or_default() += 1;
    }
    seen
}

#[test]
fn nft_dsr_spreads_flows_by_weight_and_keeps_connections_whole() {
    let lab = lab_or_skip!("dataplane-nft", example_inventory(N));
    let dir = TempDir::new("dataplane-nft-rules");
    hold_vip(&lab);

    install(&lab, &dir, [1, 1], false);
    let seen = spread(&lab, 40000, 200);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["rs01", "rs02"], "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 200, "every request answered");
    for (host, n) in &seen {
        assert!((70..=130).contains(n), "{host} served {n} of 200: {seen:?}");
    }
    // A request sent in pieces is several packets of one connection; had
    // any of them reached the other real server, it would have reset the
    // connection instead of answering.
    let mut answered = BTreeMap::<String, usize>::new();
    for p in 41000..41008 {
        let out = lab.exec_ok(
            "client",
            &format!(
                "(printf 'GET / HTTP/1.0\\r\\n'; sleep 0.2; printf 'X-Slow: 1\\r\\n'; \
                 sleep 0.2; printf '\\r\\n') | busybox nc -p {p} {} 80",
                vip()
            ),
        );
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out}"
        );
        let name = out.lines().last().unwrap().trim().to_owned();
        *answered.entry(name).or_default() += 1;
    }
    assert_eq!(
        answered.len(),
        2,
        "8 slow connections all on one server: {answered:?}"
    );

    install(&lab, &dir, [3, 1], false);
    let seen = spread(&lab, 42000, 200);
    let rs01 = seen.get("rs01").copied().unwrap_or(0) as f64 / 200.0;
    assert!((0.65..=0.85).contains(&rs01), "3:1 gave {seen:?}");

    install(&lab, &dir, [1, 1], true);
    let seen = spread(&lab, 44000, 50);
    assert_eq!(
        seen.len(),
        1,
        "persistence: one client, one real server: {seen:?}"
    );
}
