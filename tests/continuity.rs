//! Flows that never break (issue #20, part 1), nftables in the lab:
//! long-lived connections (a line every 50 ms from the real server, each
//! acknowledged through the director) opened while rs01 is down all run
//! on rs02; rs01 coming back takes the buckets that are its own again,
//! its weight raised takes more, rs02 drained takes no new flow, and a
//! new service makes the directors load their tables whole — yet every
//! one of those connections goes on, on rs02, because the director
//! pinned each flow to the real server it started on; `drain --wait`
//! waits for them while they run and returns once they have closed.
//! Without the pins (tried by rendering the unpinned rule alone), all 40
//! broke: rs01's return resets those in its buckets, the drain the rest.

use std::process::Child;
use std::time::Duration;

use lbdeploy::agent::check::health::{Timing, up_within};
use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;
use lbdeploy::lab::demo::kill_here;
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab, within};
use crate::support::subnet::Subnet;
use crate::vrrp_lab::wait_sole_holder;

/// The TCP check on a fast schedule (with `delay_loop: 1s`).
const TCP: &str = "{ tcp: { connect_timeout: 1s, retry: 0 } }";

/// How many long-lived connections, and their first client port.
pub(crate) const STREAMS: u16 = 40;
pub(crate) const STREAM_PORT: u16 = 31000;

/// The client's side of the streams: opens `count` connections from
/// ports `base…` to `/stream`, reads until the stop file appears (or the
/// time limit), then prints for each who sent its lines, how many, how
/// long ago the last came, and the error that ended it, if any.
const CLIENT: &str = r#"
import json, os, select, socket, sys, time
vip, base, count, stop, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
conns = []
for port in range(base, base + count):
    c = {"port": port, "names": set(), "lines": 0, "last": time.time(), "error": None, "buf": b""}
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.settimeout(2)
        s.connect((vip, 80))
        s.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        s.setblocking(False)
        c["sock"] = s
    except OSError as e:
        c["error"] = "connect: " + str(e)
    conns.append(c)
print("open", flush=True)
deadline = time.time() + limit
while time.time() < deadline and not os.path.exists(stop):
    live = [c for c in conns if c["error"] is None]
    ready, _, _ = select.select([c["sock"] for c in live], [], [], 0.1)
    for c in live:
        if c["sock"] not in ready:
            continue
        try:
            data = c["sock"].recv(65536)
        except OSError as e:
            c["error"] = str(e)
            continue
        if not data:
            c["error"] = "closed"
            continue
        *lines, c["buf"] = (c["buf"] + data).split(b"\n")
        for line in lines:
            line = line.strip()
            if line and not line.startswith(b"HTTP/") and b":" not in line:
                c["names"].add(line.decode())
                c["lines"] += 1
                c["last"] = time.time()
now = time.time()
print(json.dumps([{"port": c["port"], "names": sorted(c["names"]), "lines": c["lines"],
                   "quiet": now - c["last"], "error": c["error"]} for c in conns]))
"#;

/// The streams, running on the client (also used by `bgp`).
pub(crate) struct Streams {
    child: Child,
    stop: std::path::PathBuf,
    _dir: TempDir,
}

impl Streams {
    /// Open the streams to `vip` and return once they are open.
    pub(crate) fn open(lab: &TestLab, vip: &str) -> Self {
        let dir = TempDir::new("continuity-streams");
        let script = dir.path().join("client.py");
        std::fs::write(&script, CLIENT).unwrap();
        let stop = dir.path().join("stop");
        let mut child = lab
            .lab_cmd(&["exec", "client", "--", "python3"])
            .arg(&script)
            .args([vip, &STREAM_PORT.to_string(), &STREAMS.to_string()])
            .arg(&stop)
            // Ends by itself should the test die before the stop file.
            .arg("90")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut out, &mut first).unwrap();
        assert_eq!(first.trim(), "open", "the stream client did not start");
        child.stdout = Some(out.into_inner());
        Streams { child, stop, _dir: dir }
    }

    /// Stop them and say how each went.
    pub(crate) fn close(self) -> Vec<Value> {
        std::fs::write(&self.stop, b"").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("stream client: {e}: {text}"))
    }
}

/// Whether stream `c` of a report went on: no error, every line from
/// `server`, and lines until the end (none missing for a second).
fn intact(c: &Value, server: &str) -> bool {
    c["error"].is_null()
        && c["names"] == serde_json::json!([server])
        && c["quiet"].as_f64().unwrap_or(f64::MAX) <= 1.0
}

/// The example cluster named `name` with TCP checks every second on
/// both real servers.
fn checked(s: Subnet, name: &str, vrid: u8) -> Inventory {
    Inventory::example(s)
        .cluster(name)
        .virtual_router_id(vrid)
        .service_option("delay_loop: 1s")
        .check("rs01", TCP)
        .check("rs02", TCP)
}

/// A probe of who answers new flows: `answered_by(what, servers)` waits
/// until 20 requests through the VIP are answered by exactly `servers`,
/// within the checks' bound for a server coming back. Every try is from
/// new client ports: a port reused within TIME_WAIT may fail.
fn answered_by(lab: &TestLab, s: Subnet) -> impl FnMut(&str, &[&str]) + '_ {
    let timing = Timing {
        delay_loop: Duration::from_secs(1),
        retry: 0,
        delay_before_retry: Duration::from_secs(1),
        rise: 1,
    };
    let bound = up_within(timing) + timing.delay_loop + Duration::from_secs(2);
    let mut base = 40000;
    move |what, expected| {
        within(bound, what, || {
            base += 20;
            lab.answers(&s.url(), base, 20).into_keys().collect::<Vec<_>>()
                == expected
        });
    }
}

#[test]
fn r20_established_flows_keep_their_real_server_through_a_return_a_weight_and_a_drain()
 {
    let s = Subnet::allocate();
    let inv = checked(s, "continuity", 63);
    let lab = lab_or_skip!("continuity", inv);
    let vip = s.vip();
    lab.apply_until_forwarding(&vip);
    let mut answered_by = answered_by(&lab, s);
    answered_by("rs01 and rs02 answering", &["rs01", "rs02"]);
    lab.exec_ok("rs01", &kill_here("[l]bdeploy lab responder"));
    answered_by("rs02 alone with rs01 down", &["rs02"]);

    let streams = Streams::open(&lab, &vip);
    lab.swap_responder("rs01", "--name rs01");
    answered_by("rs01 back among new flows", &["rs01", "rs02"]);
    // rs01's weight 1 → 3: more buckets move to it (an apply, so the
    // agents reload).
    let inv = inv.weight("rs01", 3);
    lab.rewrite_inventory(&inv);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    // Drained, and waited for: the streams still go through rs02.
    let out =
        lab.lbdeploy_exit(3, &["drain", "rs02", "--wait", "--timeout", "3s"]);
    assert!(out.contains("still forwarded to after"), "{out}");
    // A new service, listed first: the table is loaded whole, over the
    // installed one, every service in a new place.
    let text = inv.to_string().replacen(
        "virtual_services:\n",
        &format!(
            "virtual_services:\n  - {{ name: alt, vip: {vip}, port: 8080, \
             scheduler: rr, real_servers: [{{ host: rs01, port: 8080 }}] }}\n"
        ),
        1,
    );
    lab.rewrite_inventory(&text);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    answered_by("rs01 alone for new flows, rs02 drained", &["rs01"]);
    // A second of streaming after all four events.
    std::thread::sleep(Duration::from_secs(1));
    let report = streams.close();

    assert_eq!(report.len(), usize::from(STREAMS));
    let broken: Vec<&Value> =
        report.iter().filter(|c| !intact(c, "rs02")).collect();
    assert!(
        broken.is_empty(),
        "{} of {STREAMS} long-lived connections broke: {broken:#?}",
        broken.len()
    );

    // The streams closed: `--wait` sees rs02's count stand still for its
    // quiet time (plus the agents' 5 s count refresh and a poll).
    let started = std::time::Instant::now();
    let out = lab.lbdeploy_exit(0, &["drain", "rs02", "--wait"]);
    assert!(out.contains("no packet forwarded to it for 15s"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(15 + 5 + 5), "{out}");
}

/// Across a VRRP failover on nftables: the backup computes the same
/// bucket table as the master, so 40 streams opened with both real
/// servers up go on, each on its server, after the master stops (`agent
/// stop`: it resigns, the backup takes over after its skew time).
///
/// Then the case pins cannot cover, measured and reported (BENCHMARKS.md,
/// "Flows kept per event"): streams opened while rs01 was down, rs01
/// back, then a failover. The new master has none of the old one's pins,
/// so the flows whose buckets went home to rs01 are reset (IPVS with
/// `mh` loses the same share; only a connection-state copy such as
/// keepalived's sync daemon keeps them).
#[test]
fn r20_a_failover_keeps_flows_on_the_same_bucket_table() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!(
        "continuity-failover",
        checked(s, "continuity-failover", 64)
    );
    let vip = s.vip();
    lab.apply_until_forwarding(&vip);
    let mdi = master_down_interval(Version::V2, 70, Duration::from_secs(1));
    wait_sole_holder(&lab, &vip, "keepalived01", mdi + Duration::from_secs(4));
    let mut answered_by = answered_by(&lab, s);
    answered_by("both real servers in the pool", &["rs01", "rs02"]);

    let streams = Streams::open(&lab, &vip);
    lab.exec_ok("keepalived01", "lbdeploy agent stop");
    wait_sole_holder(&lab, &vip, "keepalived02", mdi + Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(2));
    let report = streams.close();
    let mut servers = std::collections::BTreeMap::<String, usize>::new();
    for c in &report {
        let name = c["names"][0].as_str().unwrap_or("-").to_owned();
        *servers.entry(name).or_default() += 1;
    }
    let broken: Vec<&Value> = report
        .iter()
        .filter(|c| !intact(c, c["names"][0].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(report.len(), usize::from(STREAMS));
    assert_eq!(servers.len(), 2, "the streams used both servers: {servers:?}");
    assert!(
        broken.is_empty(),
        "{} of {STREAMS} streams broke in the failover: {broken:#?}",
        broken.len()
    );

    // keepalived01 back (it preempts: another failover on the same table),
    // rs01 down, streams on rs02, rs01 back, then keepalived01 stops.
    lab.exec_ok(
        "keepalived01",
        "lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
    );
    wait_sole_holder(&lab, &vip, "keepalived01", mdi + Duration::from_secs(4));
    lab.exec_ok("rs01", &kill_here("[l]bdeploy lab responder"));
    answered_by("rs02 alone with rs01 down", &["rs02"]);
    let streams = Streams::open(&lab, &vip);
    lab.swap_responder("rs01", "--name rs01");
    answered_by("rs01 back among new flows", &["rs01", "rs02"]);
    lab.exec_ok("keepalived01", "lbdeploy agent stop");
    wait_sole_holder(&lab, &vip, "keepalived02", mdi + Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(2));
    let report = streams.close();
    let kept = report.iter().filter(|c| intact(c, "rs02")).count();
    eprintln!(
        "continuity: a failover with both servers up kept {STREAMS} of \
         {STREAMS} ({servers:?}); streams opened while rs01 was down, rs01 \
         back, then a failover: {kept} of {STREAMS} kept"
    );
}
