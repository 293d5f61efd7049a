//! The whole cluster in the lab, as `apply` leaves it: client → VIP →
//! master director (VRRP, nftables DSR) → real servers, with health checks
//! taking a stopped real server out and VRRP moving the VIP when the master
//! dies. Bounds come from the protocol and the check timing, never tuned
//! sleeps.

use std::collections::BTreeMap;
use std::time::Duration;

use lbdeploy::agent::check::health::{Timing, down_within, up_within};
use lbdeploy::agent::dataplane::buckets;
use lbdeploy::agent::dataplane::nft::verify::{map_elements, pairs};
use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;
use lbdeploy::lab::demo::kill_here;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab, within};
use crate::support::subnet::Subnet;

/// The TCP check on a fast schedule (with the service's `delay_loop` of
/// 1 s): down within 1 s + 2 × 1 s + 1 × 0.5 s.
const TCP: &str =
    "{ tcp: { connect_timeout: 1s, retry: 1, delay_before_retry: 500ms } }";

/// The example cluster with [`TCP`] checking each real server.
fn checked(s: Subnet) -> Inventory {
    Inventory::example(s)
        .cluster("cluster")
        .virtual_router_id(61)
        .service_option("delay_loop: 1s")
        .check("rs01", TCP)
        .check("rs02", TCP)
}

fn holds_vip(lab: &TestLab, s: Subnet, host: &str) -> bool {
    lab.exec_ok(host, "ip -o -4 addr show eth0")
        .contains(&format!(" {}/", s.vip()))
}

fn pid_of(lab: &TestLab, host: &str, kind: &str) -> i64 {
    lab.status()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == host)
        .and_then(|h| {
            h["processes"].as_array()?.iter().find(|p| p["kind"] == kind)
        })
        .and_then(|p| p["pid"].as_i64())
        .unwrap_or_else(|| panic!("{host} has no {kind} process"))
}

#[test]
fn the_cluster_balances_drops_a_dead_server_and_survives_its_master() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("cluster", checked(s));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    // keepalived01 has the higher priority: master once its Master_Down
    // timer ran out, and then forwarding.
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    within(
        mdi + Duration::from_secs(2),
        "keepalived01 holding the VIP",
        || holds_vip(&lab, s, "keepalived01"),
    );
    within(Duration::from_secs(5), "traffic through the VIP", || {
        lab.exec("client", &format!("curl -sf --max-time 1 {}", s.url()))
            .status
            .success()
    });
    assert!(
        !holds_vip(&lab, s, "keepalived02"),
        "the VIP is on both directors"
    );

    let seen = lab.answers(&s.url(), 40000, 100);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["rs01", "rs02"], "{seen:?}");
    for n in seen.values() {
        assert!((35..=65).contains(n), "{seen:?}");
    }

    // rs02's HTTP server stops: its check fails and it leaves the pool.
    let http = pid_of(&lab, "rs02", "responder");
    lab.exec_ok("rs02", &format!("kill {http}"));
    let timing = Timing {
        delay_loop: Duration::from_secs(1),
        retry: 1,
        delay_before_retry: Duration::from_millis(500),
        rise: 1,
    };
    let bound = down_within(timing, Duration::from_secs(1)) + timing.delay_loop;
    within(bound, "rs02 marked down", || {
        lab.exec_ok("keepalived01", "lbdeploy agent status --json")
            .contains(&format!("\"{}\": false", s.addr(22)))
    });
    let seen = lab.answers(&s.url(), 41000, 200);
    assert_eq!(
        seen.get("rs01"),
        Some(&200),
        "200 requests in a row, all answered by rs01: {seen:?}"
    );

    // The master dies (agent and supervisor, as a crash would): the backup
    // takes the VIP within Master_Down_Interval and forwards.
    let backup_mdi =
        master_down_interval(Version::V2, 70, Duration::from_secs(1));
    // Only this host's processes: the lab shares one PID namespace.
    lab.exec_ok(
        "keepalived01",
        "me=$(readlink /proc/self/ns/net); for p in $(pgrep -f '[l]bdeploy agent'); do \
         [ \"$(readlink /proc/$p/ns/net)\" = \"$me\" ] && kill -9 $p; done; true",
    );
    let took = within(
        backup_mdi + Duration::from_millis(500),
        "keepalived02 taking the VIP",
        || holds_vip(&lab, s, "keepalived02"),
    );
    eprintln!(
        "failover: VIP on keepalived02 {took:?} after kill -9 (bound {backup_mdi:?})"
    );
    within(Duration::from_secs(5), "traffic through keepalived02", || {
        lab.exec("client", &format!("curl -sf --max-time 1 {}", s.url()))
            .status
            .success()
    });
    let seen = lab.answers(&s.url(), 42000, 20);
    assert_eq!(seen.get("rs01"), Some(&20), "{seen:?}");
}

/// A switch floods frames for a MAC it has forgotten to every port — here
/// the old master's, after its port went down. The new master receives
/// them and must not forward them (`meta pkttype host`): otherwise two
/// directors would send the same flow to real servers.
#[test]
fn the_new_master_does_not_forward_frames_flooded_for_the_old_one() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("cluster-flood", checked(s));
    let vip = s.vip();
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let has_vip = |host: &str| {
        lab.exec_ok(host, "ip -o -4 addr show eth0")
            .contains(&format!(" {vip}/"))
    };
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    within(mdi + Duration::from_secs(2), "keepalived01 master", || {
        has_vip("keepalived01")
    });
    let old_mac = lab
        .exec_ok("keepalived01", "cat /sys/class/net/eth0/address")
        .trim()
        .to_owned();
    let new_mac = lab
        .exec_ok("keepalived02", "cat /sys/class/net/eth0/address")
        .trim()
        .to_owned();

    // Unplug the master: the bridge forgets its MAC, the backup takes over.
    lab.set_switch_port("keepalived01", "down");
    let backup_mdi =
        master_down_interval(Version::V2, 70, Duration::from_secs(1));
    within(backup_mdi + Duration::from_secs(1), "keepalived02 master", || {
        has_vip("keepalived02")
    });
    within(Duration::from_secs(5), "keepalived02 forwarding", || {
        lab.exec_ok("keepalived02", "lbdeploy agent status --json")
            .contains("\"forwarding\": [\n        \"")
    });

    // The client still believes the VIP is at the old MAC: its frames are
    // flooded, keepalived02 sees them (tcpdump proves it) and drops them.
    lab.exec_ok(
        "client",
        &format!(
            "ip neigh replace {vip} lladdr {old_mac} dev eth0 nud permanent"
        ),
    );
    let scratch = TempDir::new("cluster-flood-capture");
    let capture = scratch.path().join("flood.txt");
    let capture = capture.display();
    lab.exec_ok(
        "keepalived02",
        &format!(
            "(timeout 4 tcpdump -l -n -i eth0 -c 1 ether dst {old_mac} and tcp port 80 \
             > {capture} 2>/dev/null &) ; sleep 0.5"
        ),
    );
    let flooded =
        lab.exec("client", &format!("curl -s --max-time 2 http://{vip}/"));
    assert!(
        !flooded.status.success(),
        "a flooded frame was forwarded: {flooded:?}"
    );
    within(
        Duration::from_secs(5),
        "tcpdump on keepalived02 seeing the flooded frame",
        || {
            lab.exec_ok("keepalived02", &format!("cat {capture}"))
                .contains(" > ")
        },
    );

    // Addressed to keepalived02 itself, the same request goes through.
    lab.exec_ok(
        "client",
        &format!(
            "ip neigh replace {vip} lladdr {new_mac} dev eth0 nud permanent"
        ),
    );
    let direct =
        lab.exec("client", &format!("curl -sf --max-time 2 http://{vip}/"));
    assert!(direct.status.success(), "{direct:?}");
}

/// A planned switchover (`agent stop`: priority-0 advert, VIP removed)
/// loses no request: the old master keeps forwarding what still reaches it
/// until the new master has announced itself.
#[test]
fn a_planned_switchover_loses_no_request() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("cluster-switchover", checked(s));
    let vip = s.vip();
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    within(mdi + Duration::from_secs(2), "keepalived01 master", || {
        lab.exec_ok("keepalived01", "ip -o -4 addr show eth0")
            .contains(&format!(" {vip}/"))
    });
    within(Duration::from_secs(5), "traffic through the VIP", || {
        lab.exec("client", &format!("curl -sf --max-time 1 http://{vip}/"))
            .status
            .success()
    });
    let scratch = TempDir::new("cluster-switchover-probe");
    let log = scratch.path().join("codes");
    // About 3 s of requests, one every 10 ms, while the master stops.
    let probe = lab
        .lab_cmd(&["exec", "client", "--", "sh", "-c"])
        .arg(format!(
            "for i in $(seq 1 250); do curl -s -o /dev/null --max-time 1 -w '%{{http_code}}\\n' \
             http://{vip}/; sleep 0.01; done > {}",
            log.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab.exec_ok("keepalived01", "lbdeploy agent stop");
    let out = probe.wait_with_output().unwrap();
    assert!(out.status.success());
    let codes = std::fs::read_to_string(&log).unwrap();
    let lost: Vec<&str> = codes.lines().filter(|c| *c != "200").collect();
    assert_eq!(codes.lines().count(), 250);
    assert!(lost.is_empty(), "{} of 250 requests failed: {lost:?}", lost.len());
    assert!(
        lab.exec_ok("keepalived02", "ip -o -4 addr show eth0")
            .contains(&format!(" {vip}/")),
        "keepalived02 took over"
    );
}

/// The sorry server (keepalived's `sorry_server`, a real-server host of
/// its own with the VIP on its `lo`) takes all the traffic when the
/// service loses its quorum — here 2 of two weight-1 servers, so one down
/// is enough though the other still answers — gives it back when the
/// quorum returns, and takes it again with every real server down.
#[test]
fn the_sorry_server_answers_below_quorum_and_with_every_server_down() {
    let s = Subnet::allocate();
    let tcp = "{ tcp: { connect_timeout: 1s, retry: 0 } }";
    let inv = Inventory::example(s)
        .cluster("sorry")
        .real_server("sorry", 23)
        .virtual_router_id(62)
        .service_option("delay_loop: 1s")
        .service_option("quorum: 2")
        .service_option(&format!("sorry_server: {}:80", s.addr(23)))
        .check("rs01", tcp)
        .check("rs02", tcp);
    let lab = lab_or_skip!("cluster-sorry", inv);
    let url = s.url();
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    // Who answers 20 requests from new client ports (`base`…).
    let who = |base: u16| -> Vec<String> {
        lab.answers(&url, base, 20).into_keys().collect()
    };
    let timing = Timing {
        delay_loop: Duration::from_secs(1),
        retry: 0,
        delay_before_retry: Duration::from_secs(1),
        rise: 1,
    };
    let down = down_within(timing, Duration::from_secs(1)) + timing.delay_loop;
    let up = up_within(timing) + timing.delay_loop;
    // Every try from new ports: a port reused within TIME_WAIT may fail.
    let mut base = 44000;
    let mut answered_by = |what: &str, bound, expected: &[&str]| {
        within(bound, what, || {
            base += 20;
            who(base) == expected
        });
    };
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    let start = mdi + Duration::from_secs(5);
    answered_by("rs01 and rs02 answering", start, &["rs01", "rs02"]);
    lab.exec_ok("rs02", &kill_here("[l]bdeploy lab responder"));
    answered_by("the sorry server alone below quorum", down, &["sorry"]);
    lab.swap_responder("rs02", "--name rs02");
    answered_by("rs01 and rs02 with the quorum back", up, &["rs01", "rs02"]);
    for rs in ["rs01", "rs02"] {
        lab.exec_ok(rs, &kill_here("[l]bdeploy lab responder"));
    }
    answered_by("the sorry server with every server down", down, &["sorry"]);
}

/// A data-plane table removed by hand on the master comes back within one
/// recheck period, and traffic through the VIP with it; so does an element
/// of its map deleted by hand (the table's one map is compared in the
/// first check after anyone else's nftables transaction).
#[test]
fn a_table_removed_by_hand_is_put_back() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("cluster-tamper", checked(s));
    let url = s.url();
    lab.apply_until_forwarding(&s.vip());
    lab.exec_ok("keepalived01", "nft delete table netdev lbdeploy");
    let bound =
        lbdeploy::agent::director::forward::RECHECK + Duration::from_secs(2);
    let took = within(bound, "the table put back", || {
        lab.exec("keepalived01", "nft list table netdev lbdeploy")
            .status
            .success()
    });
    eprintln!("table restored after {took:?}");
    within(Duration::from_secs(2), "traffic again", || {
        lab.exec("client", &format!("curl -sf --max-time 1 {url}"))
            .status
            .success()
    });
    let map = || {
        let json =
            lab.exec_ok("keepalived01", "nft -j list map netdev lbdeploy s0");
        map_elements(&json).unwrap().remove("s0").unwrap()
    };
    let whole = map();
    // The example's service of two real servers.
    assert_eq!(whole.len(), buckets::count(2));
    lab.exec_ok("keepalived01", "nft delete element netdev lbdeploy s0 { 0 }");
    let took = within(bound, "the map refilled", || map() == whole);
    eprintln!("map refilled after {took:?}");
    // So is an incarnation map (flows are pinned through it).
    let incarnations = || {
        let json =
            lab.exec_ok("keepalived01", "nft -j list map netdev lbdeploy m0");
        pairs(&json).unwrap()
    };
    let live = incarnations();
    assert_eq!(live.len(), 2, "{live:?}");
    lab.exec_ok(
        "keepalived01",
        &format!("nft delete element netdev lbdeploy m0 {{ {} }}", live[0].0),
    );
    let took =
        within(bound, "the incarnations put back", || incarnations() == live);
    eprintln!("incarnations put back after {took:?}");
}

/// How long a client sticks to its real server in
/// [`one_server_of_three_leaving_and_returning_moves_only_its_own_flows`]:
/// long enough to outlast rs03's return, short enough to wait out.
const PERSISTENCE: Duration = Duration::from_secs(15);

/// Issue #7: removing one of three real servers moves at most its own
/// flows, and bringing it back moves exactly those back. The flows are
/// fixed: 60 client addresses, with persistence so that each address is
/// one flow in the bucket table (every request a new source port, so no
/// 4-tuple is reused within TIME_WAIT). The real servers' checks decide,
/// as in production: rs03's web server stops, then comes back. As with
/// IPVS, a client that moved keeps its new server while its persistence
/// lasts (its pin names that server's incarnation), and goes back where
/// the table says once it has lapsed.
#[test]
fn one_server_of_three_leaving_and_returning_moves_only_its_own_flows() {
    let s = Subnet::allocate();
    let inv = Inventory::example(s)
        .cluster("moves")
        .real_server("rs03", 23)
        .backend("rs03")
        .virtual_router_id(63)
        .service_option(&format!(
            "persistence_timeout: {}s",
            PERSISTENCE.as_secs()
        ))
        .service_option("delay_loop: 1s")
        .check("rs01", TCP)
        .check("rs02", TCP)
        .check("rs03", TCP);
    let lab = lab_or_skip!("cluster-moves", inv);
    lab.apply_until_forwarding(&s.vip());
    let url = s.url();
    let clients: Vec<String> = (101..161).map(|h| s.addr(h)).collect();
    lab.exec_ok(
        "client",
        &clients
            .iter()
            .map(|a| format!("ip addr add {a}/24 dev eth0"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    // Which real server each client address's request reaches.
    let flows = || -> BTreeMap<String, String> {
        let script = clients
            .iter()
            .map(|a| {
                format!(
                    "echo {a} $(curl -s --max-time 1 --interface {a} {url})"
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        lab.exec_ok("client", &script)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, who)| (a.to_owned(), who.trim().to_owned()))
            .collect()
    };
    let status = |rip: u8, up: bool| {
        lab.exec_ok("keepalived01", "lbdeploy agent status --json")
            .contains(&format!("\"{}\": {up}", s.addr(rip)))
    };
    let timing = Timing {
        delay_loop: Duration::from_secs(1),
        retry: 1,
        delay_before_retry: Duration::from_millis(500),
        rise: 1,
    };
    let before = flows();
    let per = |m: &BTreeMap<String, String>, who: &str| {
        m.values().filter(|w| *w == who).count()
    };
    for who in ["rs01", "rs02", "rs03"] {
        assert!(per(&before, who) > 0, "{who} got no flow: {before:?}");
    }
    assert_eq!(before.len(), clients.len(), "{before:?}");

    lab.exec_ok("rs03", &kill_here("[l]bdeploy lab responder"));
    let bound = down_within(timing, Duration::from_secs(1)) + timing.delay_loop;
    within(bound, "rs03 marked down", || status(23, false));
    let without = flows();
    let mut moved = 0;
    for (addr, was) in &before {
        let now = &without[addr];
        if was == "rs03" {
            assert!(now == "rs01" || now == "rs02", "{addr}: {now:?}");
            moved += 1;
        } else {
            assert_eq!(now, was, "{addr} moved off {was} though {was} stayed");
        }
    }
    eprintln!(
        "rs03 down: {moved} of {} flows moved, all of them rs03's",
        clients.len()
    );

    lab.swap_responder("rs03", "--name rs03");
    let bound = up_within(timing) + timing.delay_loop;
    within(bound, "rs03 back up", || status(23, true));
    assert_eq!(flows(), without, "rs03 back: each client persists");
    // The pins lapse a persistence after each client's last packet.
    std::thread::sleep(PERSISTENCE + Duration::from_secs(1));
    assert_eq!(flows(), before, "rs03 back: every flow where it was");
}
