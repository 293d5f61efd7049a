//! Every feature under the hardened unit, on real systemd hosts (issue
//! #18 item 3): the agent's unit sandboxes it (`ProtectSystem=strict`,
//! `SystemCallFilter=@system-service`, `MemoryDenyWriteExecute=`,
//! `PrivateTmp=`, `UMask=0077`, two capabilities), and what it runs —
//! checks, scripts, hooks — runs inside the same sandbox. One cluster
//! uses every kind of check, notify hooks, a tracked script, file and
//! process, a `script_user`, `vrrp_rt_priority`, a webhook and email; each
//! one's effect is asserted, then `systemctl reload` and `systemctl
//! stop`.
//!
//! Where things are: the unit may write `/run/lbdeploy`,
//! `/var/lib/lbdeploy` and its private `/tmp` only, and the hooks run as
//! `nobody` here, so they write their marks into that `/tmp`, which the
//! host sees as `/tmp/systemd-private-…-lbdeploy-agent.service-…/tmp`. The
//! files the test flips for the scripts and checks are in `/run/lbd-test`,
//! which the sandbox reads.

use std::time::Duration;

use serde_json::Value;

use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;

use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, within};
use crate::support::sinks::Sink;
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{agent_status, instance, logs, wait_sole_holder};

const V: Version = Version::V2;
const ADVERT: Duration = Duration::from_secs(1);

/// Where the webhook and the SMTP relay listen, on the client.
const WEBHOOK_PORT: u16 = 8911;
const SMTP_PORT: u16 = 2526;

/// How often the checks and the script run.
const DELAY_LOOP: Duration = Duration::from_millis(500);
const SCRIPT_INTERVAL: Duration = Duration::from_millis(200);

/// A check marks a server down after `retry + 1` failures one
/// `delay_loop` apart (retry 1, no pause), and up after one success;
/// with a loaded machine's slack.
const CHECK_BOUND: Duration = Duration::from_secs(5);

/// The hooks' marks, as the host sees the unit's private `/tmp`.
const MARKS: &str =
    "/tmp/systemd-private-*-lbdeploy-agent.service-*/tmp/lbd-hooks";

/// What the exec check leaves running when it hangs: a `sleep` of this
/// length, out of its process group.
const ESCAPED: &str = "61.93";

/// The cluster: rs01 checked by `http_get`, `tcp` and `exec`, rs02 by a
/// half-open `tcp`, `ping`, and `dns`, `udp` and `smtp` against the
/// second responder [`PROTOCOLS`] starts; hooks for master, backup and fault; a
/// script (weight −60), a file (weight −10) and a process (weight 0)
/// tracked; scripts and hooks as `nobody`; the VRRP thread real-time;
/// webhook and email to the client.
fn features(s: Subnet, file_weight: i32) -> Inventory {
    let timing = "connect_timeout: 1s, retry: 1, delay_before_retry: 0s";
    let hook = |event: &str| {
        format!(
            "[/bin/sh, -c, 'echo \"$0 $(id -un)\" >> /tmp/lbd-hooks', {event}]"
        )
    };
    let client = s.addr(100);
    Inventory::example(s)
        .cluster("features")
        .version(2)
        .service_option("name: web")
        .service_option(&format!("delay_loop: {}ms", DELAY_LOOP.as_millis()))
        .check(
            "rs01",
            &format!(
                "{{ http_get: {{ path: /, {timing} }} }}, {{ tcp: {{ {timing} }} }}, \
                 {{ exec: {{ command: \"test ! -e /run/lbd-test/down-rs01 || \
                 {{ setsid sleep {ESCAPED} & sleep {ESCAPED}; }}\", \
                 timeout: 1s, retry: 1, delay_before_retry: 0s }} }}"
            ),
        )
        .check(
            "rs02",
            &format!(
                "{{ tcp: {{ half_open: true, {timing} }} }}, \
                 {{ ping: {{ {timing} }} }}, \
                 {{ dns: {{ name: lab.test, type: TXT, expect: [rs02], \
                 connect_port: {DNS_PORT}, {timing} }} }}, \
                 {{ udp: {{ payload: '6c6264', require_reply: true, \
                 reply: '6c6264', connect_port: {UDP_PORT}, {timing} }} }}, \
                 {{ smtp: {{ connect_port: {SMTP_CHECKED}, {timing} }} }}"
            ),
        )
        .instance_option(&format!(
            "notify: {{ master: {}, backup: {}, fault: {} }}",
            hook("master"),
            hook("backup"),
            hook("fault")
        ))
        .instance_option(
            "track: { scripts: [{ name: chk }], files: [{ name: prio }], \
             processes: [{ name: daemon }] }",
        )
        .top(&format!(
            "script_user: nobody\n\
             vrrp_rt_priority: 10\n\
             vrrp_scripts:\n  - {{ name: chk, command: [/bin/sh, -c, \
             'test ! -e /run/lbd-test/fail'], interval: {}ms, weight: -60, \
             fall: 2, rise: 2 }}\n\
             vrrp_track_files:\n  - {{ name: prio, path: /run/lbd-test/prio, \
             weight: {file_weight} }}\n\
             vrrp_track_processes:\n  - {{ name: daemon, process: lbd-daemon, \
             weight: 0 }}\n\
             notification:\n  webhook: http://{client}:{WEBHOOK_PORT}/hook\n  \
             email: {{ to: [ops@example.org], from: lb@example.org, \
             smtp_server: '{client}:{SMTP_PORT}', timeout: 30s }}\n",
            SCRIPT_INTERVAL.as_millis()
        ))
}

/// The ports of rs02's second responder, for its `dns`, `udp` (an echo)
/// and `smtp` checks; and the command that starts it (its HTTP port
/// unused).
const DNS_PORT: u16 = 5353;
const UDP_PORT: u16 = 5354;
const SMTP_CHECKED: u16 = 2525;
const PROTOCOLS: &str = "setsid lbdeploy lab responder --port 8099 --name rs02 \
                         --dns-port 5353 --udp-port 5354 --smtp-port 2525 \
                         </dev/null >/dev/null 2>&1 &";

/// What the test flips, on a director: the directory, the tracked file
/// at 0, and the tracked process (`sleep` under another name).
const PREPARE: &str = "mkdir -p /run/lbd-test && echo 0 > /run/lbd-test/prio \
                       && cp /bin/sleep /run/lbd-test/lbd-daemon";
const DAEMON: &str = "setsid /run/lbd-test/lbd-daemon 600 \
                      </dev/null >/dev/null 2>&1 & \
                      echo $! > /run/lbd-test/daemon.pid";

/// The hooks' marks on `host` (`EVENT USER` lines), "" before any.
fn marks(lab: &TestLab, host: &str) -> String {
    lab.exec_ok(host, &format!("cat {MARKS} 2>/dev/null; true"))
}

/// Wait until `host`'s hooks have marked `line`.
fn wait_mark(lab: &TestLab, host: &str, line: &str, bound: Duration) {
    let what = format!("{host}'s hook mark {line:?}");
    let found = std::cell::Cell::new(false);
    within(bound, &what, || {
        found.set(marks(lab, host).lines().any(|l| l == line));
        found.get()
    });
}

/// What keepalived01's agent says of real server `rip` of `web`.
fn verdict(lab: &TestLab, rip: &str) -> Option<bool> {
    let status = agent_status(lab, "keepalived01");
    status["details"]["forwarding"]["real_servers"]["web"][rip].as_bool()
}

/// The next webhook from `host` for which `wanted` holds.
fn webhook(
    sink: &Sink,
    host: &str,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let body = |r: &str| -> Option<Value> {
        serde_json::from_str(r.split_once("\r\n\r\n")?.1).ok()
    };
    let bound = Duration::from_secs(10);
    let request = sink
        .next(bound, |r| {
            body(r).is_some_and(|v| v["host"] == host && wanted(&v))
        })
        .unwrap_or_else(|| panic!("no webhook for {what} within {bound:?}"));
    body(&request).expect("a JSON body")
}

#[test]
fn r18_every_feature_works_under_the_hardened_unit() {
    let s = Subnet::allocate();
    let inventory = features(s, -10);
    let cluster = inventory.cluster_name();
    let Some(lab) = TestLab::up_with(
        "systemd-features",
        &inventory.to_string(),
        &["--init", "systemd"],
    ) else {
        return;
    };
    let client = lab.netns("client");
    let hooks = Sink::webhook(&client, WEBHOOK_PORT);
    let mails = Sink::smtp(&client, SMTP_PORT);
    for d in ["keepalived01", "keepalived02"] {
        lab.exec_ok(d, PREPARE);
        lab.exec_ok(d, DAEMON);
    }
    lab.exec_ok("rs02", PROTOCOLS);
    let vip = s.vip();
    lab.apply_until_forwarding(&vip);
    let elected = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    wait_sole_holder(&lab, &vip, "keepalived01", elected);

    // Hooks ran as the script user, in the unit's private /tmp; the
    // webhook and the email reached the client.
    let soon = Duration::from_secs(5);
    wait_mark(&lab, "keepalived01", "master nobody", soon);
    wait_mark(&lab, "keepalived02", "backup nobody", soon);
    webhook(&hooks, "keepalived01", "keepalived01 master", |v| {
        v["event"] == "vrrp" && v["state"] == "master"
    });
    let subject =
        format!("[{cluster}] keepalived01: VRRP instance VI_1 is now MASTER");
    mails
        .next(soon, |d| d.contains(&format!("\r\nSubject: {subject}\r\n")))
        .unwrap_or_else(|| panic!("no email {subject:?}"));

    // vrrp_rt_priority: the VRRP thread is SCHED_RR under the unit, by
    // its LimitRTPRIO=. Where the host's init cannot raise that limit
    // (these lab containers: the machine running them has no
    // CAP_SYS_RESOURCE, so every process keeps a hard limit of 0 and
    // systemd quietly sets the closest it can), the agent runs the thread
    // as any other and says why.
    let st = agent_status(&lab, "keepalived01");
    let pid = st["pid"].as_u64().expect("the agent's pid");
    let limits =
        lab.exec_ok("keepalived01", &format!("cat /proc/{pid}/limits"));
    let rtprio: u32 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max realtime priority"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("the agent's RLIMIT_RTPRIO");
    let thread = &st["details"]["vrrp_thread"];
    if rtprio >= 10 {
        assert_eq!(
            thread,
            &serde_json::json!({"policy": "SCHED_RR", "priority": 10}),
            "{st}"
        );
    } else {
        eprintln!(
            "NOT TESTED: SCHED_RR under the unit — this host's systemd \
             could not give LimitRTPRIO=10 (RLIMIT_RTPRIO {rtprio})"
        );
        assert_eq!(thread["policy"], "SCHED_OTHER", "{st}");
        let warning = thread["warning"].as_str().unwrap_or_default();
        assert!(warning.contains("LimitRTPRIO="), "{st}");
    }

    // Every kind of check passes, so each works in the sandbox (ping and
    // the half-open probe on raw sockets, exec through sh as nobody, the
    // DNS answer read and compared, the UDP echo, an SMTP dialogue).
    let (rs01, rs02) = (s.addr(21), s.addr(22));
    within(CHECK_BOUND, "both real servers up", || {
        verdict(&lab, &rs01) == Some(true) && verdict(&lab, &rs02) == Some(true)
    });
    // The exec check takes rs01 out, by its timeout: it hangs, having
    // started a `sleep` out of its process group (`setsid`), and is killed
    // with its cgroup, that `sleep` included. The half-open and ping
    // checks hold rs02 while its web server is up, the half-open one
    // takes it out when it stops.
    lab.exec_ok("keepalived01", "touch /run/lbd-test/down-rs01");
    within(CHECK_BOUND, "rs01 out by its exec check", || {
        verdict(&lab, &rs01) == Some(false)
    });
    lab.exec_ok("keepalived01", "rm /run/lbd-test/down-rs01");
    within(CHECK_BOUND, "rs01 back", || verdict(&lab, &rs01) == Some(true));
    // (`[p]`: the pattern does not match the shell that runs pgrep.)
    let escaped = format!("pgrep -fc 'slee[p] {ESCAPED}'; true");
    within(soon, "no process left by the hung checks", || {
        lab.exec_ok("keepalived01", &escaped).trim() == "0"
    });
    let journal =
        lab.exec_ok("keepalived01", "journalctl -u lbdeploy-agent -o cat");
    assert!(journal.contains("was killed, with its cgroup"), "{journal}");
    lab.exec_ok("rs01", "systemctl stop lbdeploy-lab-responder-80");
    within(CHECK_BOUND, "rs01 out by its http and tcp checks", || {
        verdict(&lab, &rs01) == Some(false)
    });
    lab.exec_ok("rs01", "systemctl start lbdeploy-lab-responder-80");
    lab.exec_ok("rs02", "systemctl stop lbdeploy-lab-responder-80");
    within(CHECK_BOUND, "rs02 out by its half-open check", || {
        verdict(&lab, &rs02) == Some(false)
    });
    lab.exec_ok("rs02", "systemctl start lbdeploy-lab-responder-80");
    within(CHECK_BOUND, "both back", || {
        verdict(&lab, &rs01) == Some(true) && verdict(&lab, &rs02) == Some(true)
    });

    // The tracked file: 2 × −10 from 120.
    lab.exec_ok("keepalived01", "echo 2 > /run/lbd-test/prio");
    within(soon, "the file's weight", || {
        instance(&lab, "keepalived01")["effective_priority"] == 100
    });
    // The tracked script fails: 100 − 60 = 40 < 70, keepalived02 takes
    // over, each director's hook says so, and the webhook.
    lab.exec_ok("keepalived01", "touch /run/lbd-test/fail");
    let noticed = SCRIPT_INTERVAL * 3;
    let handover = noticed + ADVERT + master_down_interval(V, 70, ADVERT);
    wait_sole_holder(&lab, &vip, "keepalived02", handover + soon);
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["effective_priority"], 40, "{st}");
    wait_mark(&lab, "keepalived02", "master nobody", soon);
    wait_mark(&lab, "keepalived01", "backup nobody", soon);
    webhook(&hooks, "keepalived02", "keepalived02 master", |v| {
        v["event"] == "vrrp" && v["state"] == "master"
    });
    lab.exec_ok(
        "keepalived01",
        "rm /run/lbd-test/fail; echo 0 > /run/lbd-test/prio",
    );
    wait_sole_holder(&lab, &vip, "keepalived01", handover + elected);

    // The tracked process (weight 0) dies: FAULT, and the fault hook.
    lab.exec_ok("keepalived01", "kill $(cat /run/lbd-test/daemon.pid)");
    within(ADVERT + soon, "keepalived01 in FAULT", || {
        instance(&lab, "keepalived01")["state"] == "FAULT"
    });
    wait_mark(&lab, "keepalived01", "fault nobody", soon);
    wait_sole_holder(&lab, &vip, "keepalived02", handover + soon);
    lab.exec_ok("keepalived01", DAEMON);
    wait_sole_holder(&lab, &vip, "keepalived01", handover + elected);

    // Reload: apply of a changed configuration is a `systemctl reload`;
    // so is one by hand. The file's new weight counts.
    let reloads = || agent_status(&lab, "keepalived01")["reloads"].clone();
    let before = reloads().as_u64().expect("a reload count");
    lab.rewrite_inventory(&features(s, -20));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    lab.exec_ok("keepalived01", "echo 1 > /run/lbd-test/prio");
    within(soon, "the file's new weight", || {
        instance(&lab, "keepalived01")["effective_priority"] == 100
    });
    lab.exec_ok("keepalived01", "systemctl reload lbdeploy-agent");
    assert_eq!(reloads(), before + 2, "{}", logs(&lab));
    lab.exec_ok("keepalived01", "echo 0 > /run/lbd-test/prio");

    // Stop: the master resigns, keepalived02 takes over at once, and
    // keepalived01 holds nothing.
    lab.exec_ok("keepalived01", "systemctl stop lbdeploy-agent");
    wait_sole_holder(&lab, &vip, "keepalived02", soon);
    assert!(
        !lab.exec("keepalived01", "nft list table netdev lbdeploy")
            .status
            .success(),
        "the table stayed after a stop"
    );
    let state = lab.exec(
        "keepalived01",
        "systemctl show -p ActiveState --value lbdeploy-agent",
    );
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "inactive");
    // Nothing of the sandbox refused on the way.
    let journal = lab.exec_ok(
        "keepalived01",
        "journalctl -u lbdeploy-agent -o cat --no-pager",
    );
    // (but the VRRP thread's refusal above, where the limit was 0).
    let journal: String = journal
        .lines()
        .filter(|l| rtprio >= 10 || !l.contains("under SCHED_RR"))
        .collect::<Vec<_>>()
        .join("\n");
    for refused in ["Read-only file system", "Operation not permitted"] {
        assert!(!journal.contains(refused), "{refused}:\n{journal}");
    }
}
