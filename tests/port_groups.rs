//! Issue #21: a port group (`ports: [80, 8080]`) on the nftables data
//! plane, through `apply` and the running directors — keepalived's
//! fwmark service without the hand-written mangle rules. Persistent, it
//! keeps a client on one real server across both ports, even after the
//! table changed under it: clients pinned to rs01 while rs02 was down
//! stay with rs01 on the other port once rs02 is back, while clients new
//! to the service spread over both (so the table did change, and the
//! test cannot pass by hashing alone).

use std::time::Duration;

use lbdeploy::agent::check::health::{Timing, down_within, up_within};
use lbdeploy::lab::demo::kill_here;
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, within};
use crate::support::subnet::Subnet;

/// rs02's check: down within 1 + 2 × 1 + 0.5 s of its responder dying,
/// back within a `delay_loop` and a probe.
const CHECK: &str =
    "{ tcp: { connect_timeout: 1s, retry: 1, delay_before_retry: 500ms } }";
const TIMING: Timing = Timing {
    delay_loop: Duration::from_secs(1),
    retry: 1,
    delay_before_retry: Duration::from_millis(500),
    rise: 1,
};

/// How many client addresses each group of clients has: with 16 new
/// clients spread over two servers, all 16 on one is a 1 in 32,768 event.
const CLIENTS: u8 = 16;

/// What keepalived01's agent says of rs02 (`10.x.y.22`) of `web`.
fn rs02_up(lab: &TestLab, s: Subnet) -> Option<bool> {
    let out = lab.exec_ok("keepalived01", "lbdeploy agent status --json");
    let status: Value = serde_json::from_str(&out).ok()?;
    status["details"]["forwarding"]["real_servers"]["web"][s.addr(22)].as_bool()
}

/// Who answers `port` of the VIP for the client at address `from`.
fn answer(lab: &TestLab, s: Subnet, from: &str, port: u16) -> String {
    lab.exec_ok(
        "client",
        &format!(
            "curl -sS --fail --max-time 2 --interface {from} http://{}:{port}/",
            s.vip()
        ),
    )
    .trim()
    .to_owned()
}

/// Start a responder of `rs` on `port` (beside any other), and wait
/// until it listens: 5 s at most, so one that cannot start fails the
/// test instead of hanging it.
fn serve(lab: &TestLab, rs: &str, port: u16) {
    lab.exec_ok(
        rs,
        &format!(
            "setsid lbdeploy lab responder --port {port} --name {rs} \
             </dev/null >/dev/null 2>&1 & \
             for i in $(seq 500); do ss -Hltn 'sport = :{port}' | grep -q . \
             && exit 0; sleep 0.01; done; exit 1"
        ),
    );
}

#[test]
fn r21_a_persistent_port_group_keeps_a_client_on_one_server_across_ports() {
    let s = Subnet::allocate();
    let inventory = Inventory::example(s)
        .cluster("ports")
        .service_option("name: web")
        .service_option("delay_loop: 1s")
        .service_option("persistence_timeout: 300s")
        .check("rs02", CHECK)
        .top("dataplane: nftables\n")
        .to_string()
        .replace("    port: 80\n", "    ports: [80, 8080]\n");
    let lab = lab_or_skip!("ports", inventory);
    for rs in ["rs01", "rs02"] {
        serve(&lab, rs, 8080);
    }
    // Two groups of client addresses on the client's own interface.
    let (pinned, fresh): (Vec<String>, Vec<String>) = (
        (0..CLIENTS).map(|k| s.addr(150 + k)).collect(),
        (0..CLIENTS).map(|k| s.addr(170 + k)).collect(),
    );
    for a in pinned.iter().chain(&fresh) {
        lab.exec_ok("client", &format!("ip addr add {a}/24 dev eth0"));
    }
    lab.apply_until_forwarding(&s.vip());

    // rs02 down: every client of the first group is sent to rs01, and
    // pinned there.
    lab.exec_ok("rs02", &kill_here("[l]bdeploy lab responder --port 80 "));
    let bound = down_within(TIMING, Duration::from_secs(1)) + TIMING.delay_loop;
    within(bound, "rs02 seen down", || rs02_up(&lab, s) == Some(false));
    for a in &pinned {
        assert_eq!(answer(&lab, s, a, 80), "rs01", "client {a} on port 80");
    }

    // rs02 back: the first group stays with rs01 on both ports; the
    // second, new to the service, spreads.
    serve(&lab, "rs02", 80);
    let bound = up_within(TIMING) + Duration::from_secs(1) + TIMING.delay_loop;
    within(bound, "rs02 seen up", || rs02_up(&lab, s) == Some(true));
    for a in &pinned {
        for port in [8080, 80] {
            assert_eq!(answer(&lab, s, a, port), "rs01", "client {a}:{port}");
        }
    }
    let spread: Vec<String> =
        fresh.iter().map(|a| answer(&lab, s, a, 8080)).collect();
    assert!(
        spread.iter().any(|n| n == "rs02")
            && spread.iter().any(|n| n == "rs01"),
        "new clients all on one server: {spread:?}"
    );
    // And each new client on the same server on the other port.
    for (a, on) in fresh.iter().zip(&spread) {
        assert_eq!(&answer(&lab, s, a, 80), on, "client {a} across ports");
    }
}
