//! Health checks and notifications of a running cluster, against real
//! processes: a real server's HTTP responder is swapped for one that
//! answers the wrong status, another page or too late, and the directors
//! must take it out of the pool within keepalived's bound and put it back
//! only after `rise` successes; webhooks and emails of a director land in
//! sinks inside the lab's controller; a mail server that never answers
//! must not slow the checks down. A half-open check must see a server stop
//! or vanish without ever opening a connection to it, a ping check a
//! server that stops answering echoes, a DNS check of a UDP service a
//! server whose answer is not the one expected, a UDP check a server
//! whose datagram answer is wrong or missing, an SMTP check a mail
//! server that refuses its greeting or HELO, and an HTTPS check that
//! verifies a server whose certificate has expired or names another host.
//!
//! Every bound comes from the check timing ([`down_within`],
//! [`up_within`]) plus one `delay_loop` of slack; the agent status is
//! polled, never slept on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lbdeploy::agent::check::health::{Timing, down_within, up_within};
use lbdeploy::lab::demo::kill_here;
use md5::{Digest, Md5};
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab, within};
use crate::support::sinks::Sink;
use crate::support::subnet::Subnet;
use crate::support::test_ca::TestCa;

/// Every check's schedule in these labs.
const DELAY_LOOP: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
const RETRY: u32 = 1;
const PAUSE: Duration = Duration::from_millis(500);
/// rs02's HTTP check wants two successes in a row to come back.
const RISE: u32 = 2;

/// Where the controller's sinks listen.
const WEBHOOK_PORT: u16 = 8025;
const SMTP_PORT: u16 = 2525;

fn timing(rise: u32) -> Timing {
    Timing {
        delay_loop: DELAY_LOOP,
        retry: RETRY,
        delay_before_retry: PAUSE,
        rise,
    }
}

/// From a server's failure to its removal, with one `delay_loop` of slack.
fn down_bound() -> Duration {
    down_within(timing(RISE), TIMEOUT) + DELAY_LOOP
}

/// From a server's repair to its return: `rise` successes, one attempt
/// that may still be in flight against the broken responder, and one
/// `delay_loop` of slack.
fn up_bound() -> Duration {
    up_within(timing(RISE)) + TIMEOUT + DELAY_LOOP
}

/// The example cluster as service `web`: rs01 with a TCP check, rs02
/// with an HTTP check of its page (status 200 and the digest of `rs02\n`)
/// and `rise: 2`.
fn checked(s: Subnet) -> Inventory {
    let digest = lbdeploy::util::hex::hex(&Md5::digest(b"rs02\n"));
    let timing = format!(
        "connect_timeout: {}ms, retry: {RETRY}, delay_before_retry: {}ms",
        TIMEOUT.as_millis(),
        PAUSE.as_millis()
    );
    Inventory::example(s)
        .cluster("checks")
        .virtual_router_id(71)
        .service_option("name: web")
        .service_option(&format!("delay_loop: {}ms", DELAY_LOOP.as_millis()))
        .check("rs01", &format!("{{ tcp: {{ {timing} }} }}"))
        .check(
            "rs02",
            &format!(
                "{{ http_get: {{ path: /lvstest.html, digest: {digest}, \
                 rise: {RISE}, {timing} }} }}"
            ),
        )
}

/// What keepalived01's agent says of real server `rip` of `web`.
fn verdict(lab: &TestLab, rip: &str) -> Option<bool> {
    verdict_in(lab, "web", rip)
}

/// What keepalived01's agent says of real server `rip` of `service`.
fn verdict_in(lab: &TestLab, service: &str, rip: &str) -> Option<bool> {
    let out = lab.exec_ok("keepalived01", "lbdeploy agent status --json");
    let status: Value = serde_json::from_str(&out).ok()?;
    status["details"]["forwarding"]["real_servers"][service][rip].as_bool()
}

/// Break rs02 with a responder started with `args`: it must be marked
/// down within the bound, with `reason` in keepalived01's log, and the VIP
/// must then send every request to rs01 (from client ports `ports…`, new
/// to the real servers: a port reused within TIME_WAIT may be refused by
/// PAWS). Mend it: it must come back, not before its second success and
/// within the bound.
fn break_and_mend(
    lab: &TestLab,
    s: Subnet,
    what: &str,
    args: &str,
    reason: &str,
    ports: u16,
) {
    let rip = s.addr(22);
    let start = Instant::now();
    lab.swap_responder("rs02", args);
    within(down_bound(), &format!("rs02 marked down for {what}"), || {
        verdict(lab, &rip) == Some(false)
    });
    let down = start.elapsed();
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let line = format!("real server {rip} of web is down: {reason}");
    assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    let seen = lab.answers(&s.url(), ports, 20);
    assert_eq!(seen.get("rs01"), Some(&20), "{what}: {seen:?}");

    let start = Instant::now();
    lab.swap_responder("rs02", "--name rs02");
    within(up_bound(), &format!("rs02 back after {what}"), || {
        verdict(lab, &rip) == Some(true)
    });
    let up = start.elapsed();
    // Its first success comes after the swap began; the second one, a
    // delay_loop later at the earliest, is what brings it back.
    let earliest = DELAY_LOOP * (RISE - 1);
    assert!(
        up >= earliest,
        "{what}: back after {up:?}, before its 2nd success"
    );
    eprintln!(
        "{what}: down after {down:?} (bound {:?}), back after {up:?} \
         (bounds {earliest:?}..{:?})",
        down_bound(),
        up_bound()
    );
}

#[test]
fn http_checks_catch_a_wrong_status_a_changed_page_and_a_slow_answer() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("checks-http", checked(s));
    lab.apply_until_forwarding(&s.vip());
    break_and_mend(
        &lab,
        s,
        "a 503",
        "--name rs02 --status 503",
        "status 503, not 200",
        40000,
    );
    let changed = lbdeploy::util::hex::hex(&Md5::digest(b"rs02-v2\n"));
    break_and_mend(
        &lab,
        s,
        "a changed page",
        "--name rs02-v2",
        &format!("body digest {changed}"),
        41000,
    );
    break_and_mend(
        &lab,
        s,
        "an answer after the timeout",
        "--name rs02 --delay 3s",
        &format!(
            "GET /lvstest.html from {}:80: no complete answer within \
             {TIMEOUT:?}",
            s.addr(22)
        ),
        42000,
    );
}

/// The JSON of the next webhook from keepalived01 for which `wanted`
/// holds.
fn webhook(
    sink: &Sink,
    bound: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let json = |request: &str| -> Option<Value> {
        let (_, body) = request.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    };
    let request = sink
        .next(bound, |r| {
            json(r).is_some_and(|v| v["host"] == "keepalived01" && wanted(&v))
        })
        .unwrap_or_else(|| panic!("no webhook for {what} within {bound:?}"));
    assert!(request.starts_with("POST /hook HTTP/1.0\r\n"), "{request}");
    json(&request).expect("a JSON body")
}

/// The next email dialogue whose message has `subject`.
fn email(sink: &Sink, bound: Duration, subject: &str) -> String {
    let dialogue = sink
        .next(bound, |d| d.contains(&format!("\r\nSubject: {subject}\r\n")))
        .unwrap_or_else(|| panic!("no email `{subject}` within {bound:?}"));
    assert!(dialogue.contains("MAIL FROM:<lb@example.org>\r\n"), "{dialogue}");
    assert!(dialogue.contains("RCPT TO:<ops@example.org>\r\n"), "{dialogue}");
    dialogue
}

/// A `notification` block: webhooks to `webhook`, emails through the
/// controller's port `smtp_port`.
fn notification(s: Subnet, webhook: &str, smtp_port: u16) -> String {
    format!(
        "notification:
  webhook: {webhook}
  email: {{ to: [ops@example.org], from: lb@example.org, smtp_server: '{}:{smtp_port}', timeout: 30s }}
",
        s.addr(10)
    )
}

#[test]
fn a_running_director_notifies_by_webhook_and_email() {
    let s = Subnet::allocate();
    let hook = format!("http://{}:{WEBHOOK_PORT}/hook", s.addr(10));
    let inventory = checked(s)
        .service_option("quorum: 2")
        .top(&notification(s, &hook, SMTP_PORT));
    let cluster = inventory.cluster_name();
    let lab = lab_or_skip!("checks-notify", inventory);
    let controller = lab.netns("controller");
    let hooks = Sink::webhook(&controller, WEBHOOK_PORT);
    let mails = Sink::smtp(&controller, SMTP_PORT);
    lab.apply_until_forwarding(&s.vip());
    let soon = Duration::from_secs(5);
    let master = webhook(&hooks, soon, "keepalived01 master", |v| {
        v["event"] == "vrrp" && v["state"] == "master"
    });
    assert_eq!(master["cluster"], cluster);
    assert_eq!(
        (&master["instance"], &master["priority"]),
        (&"VI_1".into(), &120.into()),
        "{master}"
    );
    email(
        &mails,
        soon,
        &format!("[{cluster}] keepalived01: VRRP instance VI_1 is now MASTER"),
    );

    // rs02 stops: it goes down, and with it the service's quorum of 2.
    lab.exec_ok("rs02", &kill_here("[l]bdeploy lab responder"));
    let bound = down_bound() + soon;
    let rip = s.addr(22);
    let down = webhook(&hooks, bound, "rs02 down", |v| {
        v["event"] == "real_server" && v["up"] == false
    });
    assert_eq!(
        (&down["service"], &down["address"]),
        (&"web".into(), &rip.clone().into())
    );
    let reason = down["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("connect to {rip}:80")), "{down}");
    let lost = webhook(&hooks, soon, "quorum lost", |v| v["event"] == "quorum");
    assert_eq!(
        (&lost["service"], &lost["up"], &lost["weight"], &lost["threshold"]),
        (&"web".into(), &false.into(), &1.into(), &2.into()),
        "{lost}"
    );
    let subject =
        format!("[{cluster}] keepalived01: real server {rip} of web is DOWN");
    assert!(
        email(&mails, soon, &subject).contains(reason),
        "the reason in the body"
    );
    email(
        &mails,
        soon,
        &format!("[{cluster}] keepalived01: service web lost quorum"),
    );

    // Back: the quorum is regained.
    lab.swap_responder("rs02", "--name rs02");
    let gained = webhook(&hooks, up_bound() + soon, "quorum regained", |v| {
        v["event"] == "quorum"
    });
    assert_eq!(
        (&gained["up"], &gained["weight"]),
        (&true.into(), &2.into()),
        "{gained}"
    );
    email(
        &mails,
        soon,
        &format!("[{cluster}] keepalived01: service web gained quorum"),
    );
}

#[test]
fn a_hung_mail_server_and_a_dead_webhook_do_not_delay_the_checks() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("checks-hung-notifier", checked(s));
    lab.apply_until_forwarding(&s.vip());
    let rip = s.addr(22);
    let measure = |label: &str| {
        let start = Instant::now();
        lab.exec_ok("rs02", &kill_here("[l]bdeploy lab responder"));
        within(down_bound(), &format!("rs02 down {label}"), || {
            verdict(&lab, &rip) == Some(false)
        });
        let down = start.elapsed();
        let start = Instant::now();
        lab.swap_responder("rs02", "--name rs02");
        within(up_bound(), &format!("rs02 back {label}"), || {
            verdict(&lab, &rip) == Some(true)
        });
        eprintln!(
            "{label}: down after {down:?} (bound {:?}), back after {:?} (bound {:?})",
            down_bound(),
            start.elapsed(),
            up_bound()
        );
    };
    measure("without notifications");

    // A mail server that accepts and never answers (the agent gives up
    // after 30 s), and a webhook on a port nobody listens on.
    let hung = Sink::silent(&lab.netns("controller"), SMTP_PORT);
    let dead = format!("http://{}:9/hook", s.addr(10));
    lab.rewrite_inventory(&checked(s).top(&notification(s, &dead, SMTP_PORT)));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    measure("with a hung mail server and a dead webhook");
    let peer = hung.next(Duration::from_secs(1), |p| {
        p.starts_with(&format!("{}:", s.addr(11)))
    });
    assert!(peer.is_some(), "keepalived01 never tried the hung mail server");
}

/// TCP counters of `host`'s network namespace (`/proc/net/snmp`).
fn tcp_counters(lab: &TestLab, host: &str) -> HashMap<String, u64> {
    let snmp = lab.exec_ok(host, "cat /proc/net/snmp");
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// rs01's half-open check: no retry, so that one lost SYN would fail it
/// were it not sent again within the timeout.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_millis(2500);

fn half_open_timing() -> Timing {
    Timing { retry: 0, rise: 1, ..timing(1) }
}

/// rs01 checked half-open: it is checked without ever accepting a
/// connection, rides out lost SYNs, yet goes down when its responder stops
/// (RST) and when it is unplugged (no answer), and comes back each time.
#[test]
fn a_half_open_check_never_opens_a_connection_yet_sees_a_server_stop() {
    let s = Subnet::allocate();
    let half_open = checked(s).check(
        "rs01",
        &format!(
            "{{ tcp: {{ half_open: true, connect_timeout: {}ms, retry: 0, \
             delay_before_retry: {}ms }} }}",
            HALF_OPEN_TIMEOUT.as_millis(),
            PAUSE.as_millis()
        ),
    );
    let lab = lab_or_skip!("checks-syn", half_open);
    lab.apply_until_forwarding(&s.vip());
    let rip = s.addr(21);
    let down_bound =
        down_within(half_open_timing(), HALF_OPEN_TIMEOUT) + DELAY_LOOP;
    let up_bound = up_within(half_open_timing()) + HALF_OPEN_TIMEOUT;

    // Both directors check rs01 once per delay_loop. Over three of them
    // rs01 answers SYNs (segments out) but completes no handshake and
    // retransmits nothing: the directors' RSTs close every half-open.
    // rs02's HTTP check, a full connect, opens connections meanwhile.
    let (rs01, rs02) = (tcp_counters(&lab, "rs01"), tcp_counters(&lab, "rs02"));
    std::thread::sleep(DELAY_LOOP * 3);
    let (rs01_after, rs02_after) =
        (tcp_counters(&lab, "rs01"), tcp_counters(&lab, "rs02"));
    let grew = |a: &HashMap<String, u64>, b: &HashMap<String, u64>, k: &str| {
        b[k] - a[k]
    };
    assert_eq!(grew(&rs01, &rs01_after, "PassiveOpens"), 0, "rs01 accepted");
    assert_eq!(grew(&rs01, &rs01_after, "RetransSegs"), 0, "rs01 resent");
    assert!(
        grew(&rs01, &rs01_after, "OutSegs") >= 4,
        "rs01 answered no SYNs: {rs01:?} → {rs01_after:?}"
    );
    assert!(grew(&rs02, &rs02_after, "PassiveOpens") >= 4, "rs02 unchecked");
    assert_eq!(verdict(&lab, &rip), Some(true));

    // rs01 drops every other SYN from keepalived01: each first SYN lost is
    // sent again after 1 s, within the timeout, so rs01 stays up.
    lab.exec_ok(
        "rs01",
        &format!(
            "nft -f - <<'EOF'
table inet lossy {{
  chain input {{
    type filter hook input priority -10;
    ip saddr {} tcp dport 80 tcp flags syn numgen inc mod 2 == 0 counter drop
  }}
}}
EOF",
            s.addr(11)
        ),
    );
    let until = Instant::now() + DELAY_LOOP * 8;
    while Instant::now() < until {
        assert_eq!(verdict(&lab, &rip), Some(true), "a lost SYN failed rs01");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dropped = lab.exec_ok("rs01", "nft list chain inet lossy input");
    let packets: u64 = dropped
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(packets >= 3, "rs01 dropped too few SYNs to tell: {dropped}");
    lab.exec_ok("rs01", "nft delete table inet lossy");

    let start = Instant::now();
    lab.exec_ok("rs01", &kill_here("[l]bdeploy lab responder"));
    within(down_bound, "rs01 marked down by its half-open check", || {
        verdict(&lab, &rip) == Some(false)
    });
    let down = start.elapsed();
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let line = format!(
        "real server {rip} of web is down: SYN to {rip}:80: refused (RST)"
    );
    assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    let seen = lab.answers(&s.url(), 43000, 20);
    assert_eq!(seen.get("rs02"), Some(&20), "{seen:?}");

    let start = Instant::now();
    lab.swap_responder("rs01", "--name rs01");
    within(up_bound, "rs01 back after its half-open check", || {
        verdict(&lab, &rip) == Some(true)
    });
    let up = start.elapsed();

    // Unplugged, rs01 answers nothing: the probes time out instead.
    lab.set_switch_port("rs01", "down");
    within(down_bound, "unplugged rs01 marked down", || {
        verdict(&lab, &rip) == Some(false)
    });
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let line =
        format!("SYN to {rip}:80: no answer within {HALF_OPEN_TIMEOUT:?}");
    assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    lab.set_switch_port("rs01", "up");
    within(up_bound, "rs01 back once plugged in", || {
        verdict(&lab, &rip) == Some(true)
    });
    eprintln!(
        "half-open: {packets} SYNs lost without a false down; down after \
         {down:?}, back after {up:?} (bounds {down_bound:?}, {up_bound:?})"
    );
}

/// The rule that makes rs02 deaf to echo requests, in its namespace.
const DROP_ECHO: &str = "nft add table inet lbtest && nft add chain inet \
    lbtest input '{ type filter hook input priority 0; }' && nft add rule \
    inet lbtest input icmp type echo-request drop";

/// The `ping` check: rs02, checked by ICMP echo only, is taken out of the
/// pool when it stops answering echoes (an nftables rule in its own
/// namespace drops them, the host otherwise up and serving) and put back
/// when it answers again, each within the bound its timing gives plus one
/// `delay_loop` of slack.
#[test]
fn a_server_that_stops_answering_echoes_is_down_and_comes_back() {
    let s = Subnet::allocate();
    let ping = format!(
        "{{ ping: {{ connect_timeout: {}ms, retry: {RETRY}, \
         delay_before_retry: {}ms }} }}",
        TIMEOUT.as_millis(),
        PAUSE.as_millis()
    );
    let lab = lab_or_skip!("checks-ping", checked(s).check("rs02", &ping));
    lab.apply_until_forwarding(&s.vip());
    let rip = s.addr(22);
    within(DELAY_LOOP * 3, "rs02 up by ping", || {
        verdict(&lab, &rip) == Some(true)
    });

    let start = Instant::now();
    lab.exec_ok("rs02", DROP_ECHO);
    let bound = down_within(timing(1), TIMEOUT) + DELAY_LOOP;
    within(bound, "rs02 marked down", || verdict(&lab, &rip) == Some(false));
    let down = start.elapsed();
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let line = format!(
        "real server {rip} of web is down: no echo reply from {rip} within \
         {TIMEOUT:?}"
    );
    assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    assert_eq!(verdict(&lab, &s.addr(21)), Some(true), "rs01 stays up");

    let start = Instant::now();
    lab.exec_ok("rs02", "nft delete table inet lbtest");
    let bound = up_within(timing(1)) + TIMEOUT + DELAY_LOOP;
    within(bound, "rs02 back", || verdict(&lab, &rip) == Some(true));
    eprintln!("ping: down after {down:?}, back after {:?}", start.elapsed());
}

/// The address rs01's DNS check expects for `lab.test`, and the one a
/// misconfigured server answers instead.
const DNS_EXPECTED: &str = "192.0.2.53";
const DNS_WRONG: &str = "192.0.2.66";

/// The example cluster as UDP service `dns` on port 53, each real server
/// checked by an A query of `lab.test` that must have [`DNS_EXPECTED`]
/// among its answers.
fn dns_checked(s: Subnet) -> String {
    let check = format!(
        "{{ dns: {{ name: lab.test, type: A, expect: [{DNS_EXPECTED}], \
         connect_timeout: {}ms, retry: {RETRY}, delay_before_retry: {}ms }} }}",
        TIMEOUT.as_millis(),
        PAUSE.as_millis()
    );
    Inventory::example(s)
        .cluster("checks-dns")
        .virtual_router_id(74)
        .service_option("name: dns")
        .service_option("protocol: udp")
        .service_option(&format!("delay_loop: {}ms", DELAY_LOOP.as_millis()))
        .check("rs01", &check)
        .check("rs02", &check)
        .to_string()
        // The example's service is on port 80, its real servers too.
        .replace("    port: 80\n", "    port: 53\n")
        .replace("port: 80,", "port: 53,")
}

/// The probes of real server `rip` of `service` so far: passed, failed.
fn runs(lab: &TestLab, service: &str, rip: &str) -> (u64, u64) {
    let out = lab.exec_ok("keepalived01", "lbdeploy agent status --json");
    let status: Value = serde_json::from_str(&out).unwrap_or_default();
    status["details"]["real_server_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["service"] == service && c["address"] == rip)
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            (n("runs_ok"), n("runs_failed"))
        })
        .unwrap_or_default()
}

/// Swap `host`'s responder for one that also answers DNS on UDP 53, A
/// queries with `address`.
fn answer_dns(lab: &TestLab, host: &str, address: &str) {
    lab.swap_responder(
        host,
        &format!("--name {host} --dns-port 53 --dns-answer {address}"),
    );
}

/// The `dns` check on a UDP service: with both responders answering the
/// expected address, rs01's probes pass (counted by the agent, not just
/// the starting verdict); when rs01 answers another address it is taken
/// out within the bound, with the reason in the log, and rs02 stays;
/// answering right again, it comes back within the bound.
#[test]
fn a_dns_check_takes_out_a_server_that_answers_the_wrong_address() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("checks-dns", dns_checked(s));
    for host in ["rs01", "rs02"] {
        answer_dns(&lab, host, DNS_EXPECTED);
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let (rip, other) = (s.addr(21), s.addr(22));
    // Verdicts start up: proof of passing is two probes passed and none
    // failed, the second at the latest two delay_loops after the agent's
    // start, which apply waits for (one delay_loop of slack).
    within(DELAY_LOOP * 3 + TIMEOUT, "rs01's DNS probes passing", || {
        runs(&lab, "dns", &rip).0 >= 2
    });
    assert_eq!(runs(&lab, "dns", &rip).1, 0, "a probe of rs01 failed");
    assert_eq!(verdict_in(&lab, "dns", &rip), Some(true));

    let start = Instant::now();
    answer_dns(&lab, "rs01", DNS_WRONG);
    let down_bound = down_within(timing(1), TIMEOUT) + DELAY_LOOP;
    within(down_bound, "rs01 marked down for a wrong answer", || {
        verdict_in(&lab, "dns", &rip) == Some(false)
    });
    let down = start.elapsed();
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let line = format!(
        "real server {rip} of dns is down: dns: {DNS_EXPECTED} not among \
         the answers {DNS_WRONG}"
    );
    assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    assert_eq!(verdict_in(&lab, "dns", &other), Some(true), "rs02 stays up");

    let start = Instant::now();
    answer_dns(&lab, "rs01", DNS_EXPECTED);
    let up_bound = up_within(timing(1)) + TIMEOUT + DELAY_LOOP;
    within(up_bound, "rs01 back", || {
        verdict_in(&lab, "dns", &rip) == Some(true)
    });
    eprintln!(
        "dns: down after {down:?} (bound {down_bound:?}), back after {:?} \
         (bound {up_bound:?})",
        start.elapsed()
    );
}

/// The example cluster as service `NAME` on `port` (UDP when `udp`), each
/// real server checked by a check of `kind` with `options` (YAML flow
/// mapping entries) and the timing of these labs.
fn protocol_checked(
    s: Subnet,
    (cluster, vrid): (&str, u8),
    (name, port, udp): (&str, u16, bool),
    (kind, options): (&str, &str),
) -> String {
    let check = format!(
        "{{ {kind}: {{ {options}, connect_timeout: {}ms, retry: {RETRY}, \
         delay_before_retry: {}ms }} }}",
        TIMEOUT.as_millis(),
        PAUSE.as_millis()
    );
    let mut inventory = Inventory::example(s)
        .cluster(cluster)
        .virtual_router_id(vrid)
        .service_option(&format!("name: {name}"))
        .service_option(&format!("delay_loop: {}ms", DELAY_LOOP.as_millis()))
        .check("rs01", &check)
        .check("rs02", &check);
    if udp {
        inventory = inventory.service_option("protocol: udp");
    }
    inventory
        .to_string()
        // The example's service is on port 80, its real servers too.
        .replace("    port: 80\n", &format!("    port: {port}\n"))
        .replace("port: 80,", &format!("port: {port},"))
}

/// From a change of rs01's answer to its verdict `up` in `service`,
/// within the bound its timing gives plus one `delay_loop` of slack; with
/// `reason` in keepalived01's log when it goes down. Returns how long it
/// took.
fn verdict_becomes(
    lab: &TestLab,
    s: Subnet,
    service: &str,
    up: bool,
    reason: &str,
) -> Duration {
    let rip = s.addr(21);
    let start = Instant::now();
    let bound = match up {
        false => down_within(timing(1), TIMEOUT) + DELAY_LOOP,
        true => up_within(timing(1)) + TIMEOUT + DELAY_LOOP,
    };
    let what =
        format!("rs01 of {service} {}", if up { "back" } else { "down" });
    within(bound, &what, || verdict_in(lab, service, &rip) == Some(up));
    if !up {
        let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
        let line = format!("real server {rip} of {service} is down: {reason}");
        assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    }
    assert_eq!(
        verdict_in(lab, service, &s.addr(22)),
        Some(true),
        "rs02 stays up"
    );
    start.elapsed()
}

/// The port of the UDP service and of its responders.
const UDP_PORT: u16 = 5514;

/// The `udp` check: `ping` sent, a reply starting with `pong` required.
/// rs01 answering `pang` is taken out, and put back when it answers
/// `pong` again; answering nothing at all (its UDP port closed, so an
/// ICMP port unreachable comes back) it is taken out again, and back once
/// it answers. Each within the bound its timing gives.
#[test]
fn a_udp_check_takes_out_a_server_whose_answer_is_wrong_or_missing() {
    let s = Subnet::allocate();
    // `ping`, and a reply that starts with `pong`.
    let check = (
        "udp",
        "payload: '70696e67', require_reply: true, \
                         reply: '706f6e67'",
    );
    let service = ("syslog", UDP_PORT, true);
    let inventory = protocol_checked(s, ("checks-udp", 76), service, check);
    let lab = lab_or_skip!("checks-udp", inventory);
    let answer = |host: &str, text: Option<&str>| {
        let udp = match text {
            Some(t) => format!("--udp-port {UDP_PORT} --udp-answer {t}"),
            None => String::new(),
        };
        lab.swap_responder(host, &format!("--name {host} {udp}"));
    };
    for host in ["rs01", "rs02"] {
        answer(host, Some("pong"));
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    within(DELAY_LOOP * 3 + TIMEOUT, "rs01 up by udp", || {
        verdict_in(&lab, "syslog", &s.addr(21)) == Some(true)
    });

    answer("rs01", Some("pang"));
    let wrong = verdict_becomes(
        &lab,
        s,
        "syslog",
        false,
        "udp: the reply's byte 1 is 61, not 6f",
    );
    answer("rs01", Some("pong"));
    let back = verdict_becomes(&lab, s, "syslog", true, "");
    answer("rs01", None);
    let refused = format!(
        "udp: {}:{UDP_PORT} refused the datagram (nothing listens on UDP \
         {UDP_PORT})",
        s.addr(21)
    );
    let missing = verdict_becomes(&lab, s, "syslog", false, &refused);
    answer("rs01", Some("pong"));
    let again = verdict_becomes(&lab, s, "syslog", true, "");
    eprintln!(
        "udp: down after {wrong:?} (wrong), back after {back:?}, down \
         after {missing:?} (missing), back after {again:?}"
    );
}

/// The port of the mail service and of its responders.
const SMTP_SERVICE_PORT: u16 = 25;

/// The `smtp` check: rs01 greeting with 554 is taken out and put back
/// when it greets with 220; answering HELO with 502 it is taken out
/// again, and back once it answers 250. Each within the bound its timing
/// gives.
#[test]
fn an_smtp_check_takes_out_a_server_that_refuses_its_greeting_or_helo() {
    let s = Subnet::allocate();
    let check = ("smtp", "helo_name: lb.lab.test");
    let service = ("mail", SMTP_SERVICE_PORT, false);
    let inventory = protocol_checked(s, ("checks-smtp", 77), service, check);
    let lab = lab_or_skip!("checks-smtp", inventory);
    let speak = |host: &str, codes: &str| {
        lab.swap_responder(
            host,
            &format!("--name {host} --smtp-port {SMTP_SERVICE_PORT} {codes}"),
        );
    };
    for host in ["rs01", "rs02"] {
        speak(host, "");
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    within(DELAY_LOOP * 3 + TIMEOUT, "rs01 up by smtp", || {
        verdict_in(&lab, "mail", &s.addr(21)) == Some(true)
    });

    speak("rs01", "--smtp-greeting 554");
    let greeting = verdict_becomes(
        &lab,
        s,
        "mail",
        false,
        "smtp: greeting `554 rs01 ESMTP lbdeploy lab`, not 220",
    );
    speak("rs01", "");
    let back = verdict_becomes(&lab, s, "mail", true, "");
    speak("rs01", "--smtp-helo 502");
    let helo = verdict_becomes(
        &lab,
        s,
        "mail",
        false,
        "smtp: HELO answered `502 rs01`, not 250",
    );
    speak("rs01", "");
    let again = verdict_becomes(&lab, s, "mail", true, "");
    eprintln!(
        "smtp: down after {greeting:?} (greeting), back after {back:?}, \
         down after {helo:?} (HELO), back after {again:?}"
    );
}

/// Swap rs01's responder for one that also serves HTTPS on 443 with the
/// certificate and key `files`, answering `status`.
fn serve_https(lab: &TestLab, files: &(PathBuf, PathBuf), status: u16) {
    lab.swap_responder(
        "rs01",
        &format!(
            "--name rs01 --status {status} --tls-port 443 --tls-cert {} \
             --tls-key {}",
            files.0.display(),
            files.1.display()
        ),
    );
}

/// Issue #21: an `http_get` check over TLS that verifies (keepalived's
/// SSL_GET with a CA and SNI): rs01's probes pass with a certificate the
/// inventory's CA signed for the SNI name; an expired certificate, one
/// for another name, and the right certificate with a wrong status each
/// take rs01 out within the bound, with the reason in the log, and it
/// comes back each time the right server returns.
#[test]
fn an_https_check_takes_out_a_server_with_a_bad_certificate_or_status() {
    let s = Subnet::allocate();
    let dir = TempDir::new("checks-https");
    let ca = TestCa::new("checks CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let sni = "rs01.lab.test";
    let good = ca.server_files(dir.path(), "good", sni, false);
    let expired = ca.server_files(dir.path(), "expired", sni, true);
    let misnamed =
        ca.server_files(dir.path(), "misnamed", "rs9.lab.test", false);
    let check = format!(
        "{{ http_get: {{ path: /, connect_port: 443, tls: {{ sni_name: {sni}, \
         verify: true, ca_file: '{}' }}, connect_timeout: {}ms, retry: \
         {RETRY}, delay_before_retry: {}ms }} }}",
        ca_file.display(),
        TIMEOUT.as_millis(),
        PAUSE.as_millis()
    );
    let inventory = Inventory::example(s)
        .cluster("checks-https")
        .virtual_router_id(75)
        .service_option("name: web")
        .service_option(&format!("delay_loop: {}ms", DELAY_LOOP.as_millis()))
        .check("rs01", &check)
        .top("metrics:\n  listen: '0.0.0.0:9105'\n");
    let lab = lab_or_skip!("checks-https", inventory);
    serve_https(&lab, &good, 200);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let rip = s.addr(21);
    // Verdicts start up: two probes passed and none failed, as for dns.
    within(DELAY_LOOP * 3 + TIMEOUT, "rs01's HTTPS probes passing", || {
        runs(&lab, "web", &rip).0 >= 2
    });
    assert_eq!(runs(&lab, "web", &rip).1, 0, "a probe of rs01 failed");
    // The certificate's end, as the metric alerts use it (rcgen's valid
    // certificates end in 4096).
    let metrics = lab.exec_ok(
        "controller",
        &format!(
            "curl -sS --fail --max-time 2 http://{}:9105/metrics",
            s.addr(11)
        ),
    );
    let gauge = format!(
        "lbdeploy_check_certificate_expiry_timestamp_seconds{{service=\"web\",\
         address=\"{rip}\",port=\"80\"}} "
    );
    let end: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&gauge)?.parse().ok())
        .unwrap_or_else(|| panic!("no `{gauge}` in:\n{metrics}"));
    assert!(end > 4_000_000_000.0, "{end}");

    let down_bound = down_within(timing(1), TIMEOUT) + DELAY_LOOP;
    let up_bound = up_within(timing(1)) + TIMEOUT + DELAY_LOOP;
    let wrong = [
        (&expired, 200, "certificate expired"),
        (&misnamed, 200, "certificate not valid for name"),
        (&good, 500, "status 500, not 200"),
    ];
    for (files, status, reason) in wrong {
        serve_https(&lab, files, status);
        within(down_bound, &format!("rs01 down: {reason}"), || {
            verdict(&lab, &rip) == Some(false)
        });
        let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
        let down = format!("real server {rip} of web is down: ");
        assert!(
            log.lines().any(|l| l.contains(&down) && l.contains(reason)),
            "no `{down}…{reason}` in the agent's log:\n{log}"
        );
        serve_https(&lab, &good, 200);
        within(up_bound, &format!("rs01 back after {reason}"), || {
            verdict(&lab, &rip) == Some(true)
        });
    }
}
