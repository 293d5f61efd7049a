//! Active-active directors over BGP and ECMP (issue #20, part 2): three
//! directors announce one VIP to the lab's router (BIRD, ECMP hashing on
//! addresses and ports), which spreads the client's flows over them; every
//! director has the same bucket table, so each flow reaches its real
//! server whichever director it crosses. A director that stops withdraws
//! first and keeps forwarding through its grace; a director whose agent
//! is killed takes BIRD with it, and BFD moves its flows within
//! `interval × multiplier`; a director that loses every real server
//! withdraws. Long-lived connections (a line every 50 ms) live through
//! all of it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use lbdeploy::lab::demo::kill_here;

use crate::continuity::{STREAM_PORT, STREAMS, Streams};
use crate::failsafe::agent_pid;
use crate::lab_or_skip;
use crate::support::lab::{TestLab, within};
use crate::support::subnet::Subnet;

/// Where the agents serve metrics.
const METRICS: u16 = 9813;

/// The directors: name and last octet.
const DIRECTORS: [(&str, u8); 3] = [("d1", 11), ("d2", 12), ("d3", 13)];

/// BFD as the inventory sets it: 100 ms × 3 to detect, 100 ms between
/// packets; and what measuring adds: unplugging (an `ip` to find the
/// port, one to set it down), the router's BIRD moving the route into
/// the kernel and the poll's forks every 5 ms — 150 ms on an idle
/// machine, a little more under CI's load on two cores (553 ms in all,
/// once). Still far below the 3 s hold time that would withdraw it
/// without BFD.
const BFD_DETECT: Duration = Duration::from_millis(300);
const BFD_INTERVAL: Duration = Duration::from_millis(100);
const POLL_SLACK: Duration = Duration::from_millis(300);

/// A BGP session's set-up in the lab: BIRD's connect retry is 5 s and its
/// start delay 5 s after an error; two rounds and the first reconcile.
const SESSION_UP: Duration = Duration::from_secs(25);

/// The inventory: three directors, two real servers, a service on a VIP
/// of its own subnet announced over BGP to the lab's router, which has the
/// client behind it on a third.
fn inventory(s: Subnet, client: Subnet, vip: &str) -> String {
    let mut y = format!(
        "cluster: bgp-{}\ndataplane: nftables\ndirectors:\n",
        s.octet()
    );
    for (name, n) in DIRECTORS {
        y += &format!(
            "  - {{ name: {name}, address: {}, interface: eth0, \
             priority: 100 }}\n",
            s.cidr(n)
        );
    }
    y += &format!(
        "real_servers:\n\
         \x20 - {{ name: rs01, address: {}, interface: eth0 }}\n\
         \x20 - {{ name: rs02, address: {}, interface: eth0 }}\n\
         bgp:\n\
         \x20 local_as: 65001\n\
         \x20 peers: [{{ address: {}, as: 65000 }}]\n\
         \x20 bfd: {{ interval: 100ms, multiplier: 3 }}\n\
         \x20 hold_time: 3s\n\
         \x20 drain_grace: 2s\n\
         metrics: {{ listen: '0.0.0.0:{METRICS}' }}\n\
         virtual_services:\n\
         \x20 - vip: {vip}\n\
         \x20   port: 80\n\
         \x20   scheduler: rr\n\
         \x20   announce: bgp\n\
         \x20   delay_loop: 1s\n\
         \x20   real_servers:\n\
         \x20     - {{ host: rs01, port: 80, checks: [{{ tcp: {{ connect_timeout: 1s, retry: 0 }} }}] }}\n\
         \x20     - {{ host: rs02, port: 80, checks: [{{ tcp: {{ connect_timeout: 1s, retry: 0 }} }}] }}\n\
         lab:\n\
         \x20 controller: {}\n\
         \x20 client: {}\n\
         \x20 router: {{ address: {}, client_side: {}, as: 65000 }}\n",
        s.cidr(21),
        s.cidr(22),
        s.addr(1),
        s.cidr(10),
        client.cidr(100),
        s.cidr(1),
        client.cidr(1),
    );
    y
}

/// A lab of [`inventory`] applied, each director announcing the VIP: the
/// lab, the hosts' subnet, the client's and the VIP; `None` (skipped)
/// without root.
fn announced(name: &str) -> Option<(TestLab, Subnet, Subnet, String)> {
    let (s, client, v) =
        (Subnet::allocate(), Subnet::allocate(), Subnet::allocate());
    let vip = v.addr(100);
    let lab = TestLab::up(name, &inventory(s, client, &vip))?;
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    hops_become(&lab, s, &vip, &[11, 12, 13], SESSION_UP);
    Some((lab, s, client, vip))
}

/// The directors the router sends `vip` to now: the next hops of its
/// route.
fn next_hops(lab: &TestLab, vip: &str) -> BTreeSet<String> {
    let route = lab.exec_ok("router", &format!("ip -4 route show {vip}"));
    route
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_owned())
        .collect()
}

/// Wait until the router's next hops for `vip` are the directors
/// `octets`, within `bound`; return how long it took.
fn hops_become(
    lab: &TestLab,
    s: Subnet,
    vip: &str,
    octets: &[u8],
    bound: Duration,
) -> Duration {
    let want: BTreeSet<String> = octets.iter().map(|n| s.addr(*n)).collect();
    let start = Instant::now();
    within(bound, &format!("the router's next hops become {want:?}"), || {
        next_hops(lab, vip) == want
    });
    start.elapsed()
}

/// The connections of `report` that broke: an error, a second server, or
/// silent for more than a second.
fn broken(report: &[Value]) -> Vec<&Value> {
    report
        .iter()
        .filter(|c| {
            !c["error"].is_null()
                || c["names"].as_array().is_none_or(|n| n.len() != 1)
                || c["quiet"].as_f64().unwrap_or(f64::MAX) > 1.0
        })
        .collect()
}

#[test]
fn r20_three_directors_share_a_vip_over_bgp_and_flows_survive_them_leaving() {
    let Some((lab, s, _, vip)) = announced("bgp-ecmp") else { return };

    // Requests from many source ports reach both real servers.
    let mut servers = BTreeSet::new();
    for port in 40000..40030 {
        let out = lab.exec_ok(
            "client",
            &format!("curl -sf --max-time 2 --local-port {port} http://{vip}/"),
        );
        servers.insert(out.trim().to_owned());
    }
    assert_eq!(servers.len(), 2, "both real servers answer: {servers:?}");
    let blackhole =
        |host| lab.exec_ok(host, "ip route show type blackhole").contains(&vip);
    assert!(blackhole("d1"), "d1 holds no blackhole route for {vip}");
    // Each director's metrics: the VIP announced, the session and BFD up.
    let metrics = lab.exec_ok(
        "controller",
        &format!(
            "curl -sS --fail --max-time 2 http://{}:{METRICS}/metrics",
            s.addr(12)
        ),
    );
    let peer = format!("peer_{}", s.addr(1).replace('.', "_"));
    for sample in [
        format!("lbdeploy_bgp_announced{{vip=\"{vip}\"}} 1"),
        format!("lbdeploy_bgp_session_up{{peer=\"{peer}\"}} 1"),
        format!("lbdeploy_bgp_bfd_up{{peer=\"{peer}\"}} 1"),
    ] {
        assert!(metrics.contains(&sample), "no {sample} in\n{metrics}");
    }

    let streams = Streams::open(&lab, &vip);
    std::thread::sleep(Duration::from_secs(1));
    // d1 stops: it withdraws first, then forwards through its grace.
    let stopped = until_withdrawn(&lab, s, &vip, "d1", || {
        lab.exec_ok("d1", "lbdeploy agent stop");
    });
    hops_become(&lab, s, &vip, &[12, 13], Duration::from_secs(3));
    within(Duration::from_secs(5), "d1 dropping its blackhole route", || {
        !blackhole("d1")
    });
    // d2's agent is killed: BIRD dies with it and tells the router; the
    // supervisor's cleanup removes the blackhole route the agent could
    // not, then starts the agent again, which puts it back and announces
    // again.
    let pid = agent_pid(&lab, "d2");
    let held =
        format!("ip route show table all type blackhole | grep -qwF {vip}");
    lab.exec_ok("d2", &held);
    let (killed, cleaned) = until_not(&lab, "d2", &held, || {
        until_withdrawn(&lab, s, &vip, "d2", || {
            lab.exec_ok("d2", &format!("kill -9 {pid}"));
        })
    });
    let cleaned = cleaned.unwrap_or_else(|| {
        panic!(
            "d2 kept its blackhole route for {vip} after its agent was killed"
        )
    });
    hops_become(&lab, s, &vip, &[12, 13], SESSION_UP);
    assert!(blackhole("d2"), "d2's new agent holds no blackhole route");
    // d2 goes silent (unplugged): BFD withdraws it in 3 × 100 ms.
    let silent = until_withdrawn(&lab, s, &vip, "d2", || {
        lab.set_switch_port("d2", "down");
    });
    eprintln!(
        "bgp: withdrawn at the router {stopped:?} after a stop, {killed:?} \
         after a kill -9 of the agent ({cleaned:?} to its blackhole route's \
         removal), {silent:?} after going silent"
    );
    // A stop and a kill are told at once (an update, a Cease).
    assert!(stopped < Duration::from_secs(1), "stop: {stopped:?}");
    assert!(killed < Duration::from_secs(1), "kill: {killed:?}");
    assert!(
        silent <= BFD_DETECT + BFD_INTERVAL + POLL_SLACK,
        "BFD took {silent:?} to withdraw a silent director"
    );
    std::thread::sleep(Duration::from_secs(1));
    let report = streams.close();
    assert_eq!(report.len(), usize::from(STREAMS));
    let broken = broken(&report);
    assert!(
        broken.is_empty(),
        "{} of {STREAMS} long-lived connections broke: {broken:#?}",
        broken.len()
    );
}

/// Do `act` to `host` and time, on the router, until its next hop is
/// gone.
fn until_withdrawn(
    lab: &TestLab,
    s: Subnet,
    vip: &str,
    host: &str,
    act: impl FnOnce(),
) -> Duration {
    let hop = next_hops(lab, vip)
        .into_iter()
        .find(|h| DIRECTORS.iter().any(|(d, n)| *d == host && *h == s.addr(*n)))
        .unwrap_or_else(|| panic!("{host} is not a next hop of {vip}"));
    let routed = format!("ip -4 route show {vip} | grep -q \"via {hop} \"");
    let ((), took) = until_not(lab, "router", &routed, act);
    took.unwrap_or_else(|| panic!("{host} still a next hop of {vip} after 10s"))
}

/// Do `act`, and time on `host` until the shell test `holds` fails
/// (tried every 5 ms, for 10 s at most): what `act` returned, and how
/// long after it began that took; `None` when `holds` never failed.
fn until_not<T>(
    lab: &TestLab,
    host: &str,
    holds: &str,
    act: impl FnOnce() -> T,
) -> (T, Option<Duration>) {
    lab.exec_ok(
        host,
        &format!(
            "rm -f /run/bgp-took; \
             setsid sh -c 'for i in $(seq 2000); do \
               {holds} || {{ date +%s%N > /run/bgp-took; exit; }}; \
               sleep 0.005; done; echo never > /run/bgp-took' \
             </dev/null >/dev/null 2>&1 &"
        ),
    );
    // The hosts' clocks are this machine's.
    let since_epoch = std::time::UNIX_EPOCH.elapsed().unwrap();
    let start = u64::try_from(since_epoch.as_nanos()).unwrap();
    let done = act();
    let mut took = String::new();
    within(Duration::from_secs(12), &format!("the wait on {host}"), || {
        took = lab.exec_ok(host, "cat /run/bgp-took 2>/dev/null || true");
        !took.trim().is_empty()
    });
    let end = took.trim().parse::<u64>().ok();
    (done, end.map(|end| Duration::from_nanos(end.saturating_sub(start))))
}

#[test]
fn r20_a_director_without_a_healthy_real_server_withdraws() {
    let Some((lab, s, _, vip)) = announced("bgp-withdraw") else { return };
    for rs in ["rs01", "rs02"] {
        lab.exec_ok(rs, &kill_here("[l]bdeploy lab responder"));
    }
    // Checks every second fail at once (retry 0): then the VIP goes.
    hops_become(&lab, s, &vip, &[], Duration::from_secs(5));
    lab.swap_responder("rs01", "--name rs01");
    hops_become(&lab, s, &vip, &[11, 12, 13], Duration::from_secs(5));
}

#[test]
fn r20_plan_refuses_a_bgp_director_without_bird_naming_the_bgp_block() {
    let (s, client, v) =
        (Subnet::allocate(), Subnet::allocate(), Subnet::allocate());
    let text = inventory(s, client, &v.addr(100));
    let line = 1 + text.lines().position(|l| l == "bgp:").unwrap();
    let lab = lab_or_skip!("bgp-no-bird", text);
    // d2's mount namespace is its own (private propagation): BIRD is gone
    // there only.
    lab.exec_ok("d2", "mount --bind /dev/null /usr/sbin/bird");
    let out = lab.lbdeploy(&["plan"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "inventory.yml:{line}:1: d2 announces VIPs over BGP and has no BIRD"
        )) && text.contains("apt-get install bird2"),
        "{text}"
    );
    assert!(!text.contains("d1 announces"), "{text}");
}

/// The control of the test above: directors whose tables differ (d3
/// alone sees rs02 drained, as a health check failing on one director
/// only would) reset the flows that move to d3 when d1 and d2 leave —
/// what `r20_three_directors_…` would catch if the tables ever differed.
/// Every stream that crossed d1 or d2 to rs02 (about half of the 40)
/// moves to d3, which sends it to rs01: that none breaks is as likely as
/// 27 coin tosses all coming up heads.
#[test]
fn r20_control_flows_moving_to_a_director_with_another_table_break() {
    let Some((lab, s, _, vip)) = announced("bgp-control") else { return };
    lab.exec_ok("d3", &format!("lbdeploy agent drain {}", s.addr(22)));
    let streams = Streams::open(&lab, &vip);
    std::thread::sleep(Duration::from_secs(1));
    for d in ["d1", "d2"] {
        lab.exec_ok(d, "lbdeploy agent stop");
    }
    hops_become(&lab, s, &vip, &[13], Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(2));
    let report = streams.close();
    assert!(
        !broken(&report).is_empty(),
        "no connection broke although d3's table differs: {report:#?}"
    );
}

/// Where the router sends each stream's flow (client ports
/// `STREAM_PORT…`, to `vip`:80) now: `ip route get` hashes a flow as
/// forwarding does. One `PORT via HOP` line per stream.
fn stream_routes(lab: &TestLab, client: Subnet, vip: &str) -> Vec<String> {
    let out = lab.exec_ok(
        "router",
        &format!(
            "dev=$(ip -o addr show to {} | awk '{{print $2; exit}}'); \
             for p in $(seq {STREAM_PORT} {}); do \
               echo \"$p $(ip -4 route get {vip} from {} iif $dev ipproto tcp \
                 sport $p dport 80 | grep -o 'via [^ ]*')\"; \
             done",
            client.addr(1),
            STREAM_PORT + STREAMS - 1,
            client.addr(100),
        ),
    );
    out.lines().map(str::to_owned).collect()
}

/// Flows survive what moves them between directors or buckets while the
/// directors agree: the router rehashing (its multipath hash seed
/// changed: flows move to other directors, whose tables are the same),
/// a real server coming back (flows opened while it was down stay on
/// the other, each pinned on the director it crosses) and a drain (on
/// every director).
#[test]
fn r20_flows_survive_a_router_rehash_a_real_server_returning_and_a_drain() {
    let Some((lab, s, client, vip)) = announced("bgp-rehash") else {
        return;
    };
    let answered = |base: u16| -> BTreeSet<String> {
        (base..base + 20)
            .map(|port| {
                let out = lab.exec(
                    "client",
                    &format!(
                        "curl -sf --max-time 2 --local-port {port} http://{vip}/"
                    ),
                );
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            })
            .collect()
    };
    let both: BTreeSet<String> = ["rs01".into(), "rs02".into()].into();

    // The router rehashes: streams opened with both servers up move to
    // other directors and go on.
    let streams = Streams::open(&lab, &vip);
    let before = stream_routes(&lab, client, &vip);
    lab.exec_ok("router", "sysctl -qw net.ipv4.fib_multipath_hash_seed=4242");
    let after = stream_routes(&lab, client, &vip);
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert!(moved > 0, "the new seed moved no stream: {after:?}");
    std::thread::sleep(Duration::from_secs(2));
    let report = streams.close();
    let rehashed = broken(&report);
    assert!(
        rehashed.is_empty(),
        "{} of {STREAMS} streams broke when {moved} moved director: \
         {rehashed:#?}",
        rehashed.len()
    );

    // rs01 down; streams on rs02; rs01 back; rs02 drained everywhere.
    lab.exec_ok("rs01", &kill_here("[l]bdeploy lab responder"));
    let mut base = 40000;
    within(Duration::from_secs(5), "rs02 alone with rs01 down", || {
        base += 20;
        answered(base) == ["rs02".to_owned()].into()
    });
    let streams = Streams::open(&lab, &vip);
    lab.swap_responder("rs01", "--name rs01");
    within(Duration::from_secs(5), "rs01 back among new flows", || {
        base += 20;
        answered(base) == both
    });
    // Drained once every director sees rs01 up again, as an operator
    // would after `lbdeploy status`: a director whose check has not yet
    // seen it back would have no live server left, withdraw, and its
    // flows — pinned there only — would move (the router's next hops
    // changed) to directors whose tables send some of them to rs01.
    let rs01 = format!("\"{}\": true", s.addr(21));
    within(Duration::from_secs(5), "every director seeing rs01 up", || {
        DIRECTORS.iter().all(|(d, _)| {
            lab.exec_ok(d, "lbdeploy agent status --json").contains(&rs01)
        })
    });
    lab.lbdeploy_exit(0, &["drain", "rs02"]);
    within(Duration::from_secs(5), "rs01 alone for new flows", || {
        base += 20;
        answered(base) == ["rs01".to_owned()].into()
    });
    std::thread::sleep(Duration::from_secs(1));
    let report = streams.close();
    let kept: Vec<&Value> = report
        .iter()
        .filter(|c| c["names"] == serde_json::json!(["rs02"]))
        .collect();
    let lost = broken(&report);
    assert!(
        lost.is_empty() && kept.len() == report.len(),
        "{} of {STREAMS} streams broke through rs01's return and rs02's \
         drain: {lost:#?}",
        lost.len()
    );
    eprintln!(
        "bgp: a new router hash seed moved {moved} of {STREAMS} streams to \
         other directors, none broke; {STREAMS} of {STREAMS} kept through a \
         real server's return and a drain"
    );
}
