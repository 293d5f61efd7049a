//! The director's VRRP thread under real-time scheduling in the lab
//! (issue #16, keepalived's `vrrp_rt_priority`): read from the kernel
//! (`/proc/PID/task/TID/stat`), not from the agent's word.
//!
//! The lab's agents run under lbdeploy's supervisor, confined to
//! CAP_NET_ADMIN + CAP_NET_RAW, and CAP_SYS_NICE for the agent alone when
//! it is configured with `vrrp_rt_priority`.

use std::time::{Duration, Instant};

use lbdeploy::agent::sys::realtime::{RUNAWAY_RTTIME, THREAD_NAME};
use lbdeploy::agent::vrrp::packet::Version;

use crate::lab_or_skip;
use crate::support::lab::TestLab;
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{agent_status, election_bound, vrrp, wait_sole_holder};

/// `SCHED_OTHER` and `SCHED_RR`, as `/proc/PID/stat` numbers them.
const SCHED_OTHER: u32 = 0;
const SCHED_RR: u32 = 2;

/// How long a restarted agent may take to answer its status again.
const RESTART_BOUND: Duration = Duration::from_secs(10);

/// One thread of a process: its name, `rt_priority` (stat field 40) and
/// `policy` (field 41).
#[derive(Debug)]
struct Task {
    comm: String,
    rt_priority: u32,
    policy: u32,
}

/// Every thread of process `pid` on `host`. The fields are counted after
/// the `)` that ends the command name, which may hold spaces: field 40
/// is the 38th after it.
fn tasks(lab: &TestLab, host: &str, pid: &str) -> Vec<Task> {
    let out = lab.exec_ok(
        host,
        &format!(
            "for t in /proc/{pid}/task/*; do \
               echo \"$(cat $t/comm) $(sed 's/.*) //' $t/stat | \
                 cut -d' ' -f38,39)\"; \
             done"
        ),
    );
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "{l:?}");
            Task {
                comm: f[0].to_owned(),
                rt_priority: f[1].parse().unwrap(),
                policy: f[2].parse().unwrap(),
            }
        })
        .collect()
}

/// The agent's pid on `host` and its VRRP thread.
fn vrrp_thread(lab: &TestLab, host: &str) -> (String, Vec<Task>, Task) {
    let pid = agent_status(lab, host)["pid"].to_string();
    let mut all = tasks(lab, host, &pid);
    let at = all.iter().position(|t| t.comm == THREAD_NAME);
    let at = at.unwrap_or_else(|| panic!("no {THREAD_NAME} thread: {all:?}"));
    let vrrp = all.remove(at);
    (pid, all, vrrp)
}

/// What the notify hook found about itself: its scheduling policy, one
/// line per run.
fn hook_policies(lab: &TestLab) -> Vec<u32> {
    lab.exec_ok("keepalived01", "cat /run/hook-policy 2>/dev/null || true")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Without `vrrp_rt_priority` the VRRP thread is `SCHED_OTHER`. With it,
/// an apply reloads the agent, which says the change waits for a restart
/// (status JSON and text); after `agent restart` the VRRP thread — and no
/// other thread — is `SCHED_RR` at the priority, its CPU time without
/// blocking is bounded, and a notify hook it started is not real-time.
/// An agent the kernel refuses (`EPERM`) runs all the same and says why.
#[test]
fn r16_the_vrrp_thread_is_sched_rr_only_with_vrrp_rt_priority() {
    let s = Subnet::allocate();
    let hook = "/run/hook.sh";
    let inventory = || {
        vrrp(s, 3).instance_option(&format!("notify: {{ master: [{hook}] }}"))
    };
    let lab = lab_or_skip!("vrrp-rt", inventory());
    lab.exec_ok(
        "keepalived01",
        &format!(
            "printf '#!/bin/sh\\nsed \"s/.*) //\" /proc/$$/stat | \
               cut -d\" \" -f39 >> /run/hook-policy\\n\
               grep CapEff /proc/$$/status >> /run/hook-caps\\n' > {hook}; \
             chmod +x {hook}"
        ),
    );
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));

    let (_, others, vrrp) = vrrp_thread(&lab, "keepalived01");
    assert_eq!((vrrp.policy, vrrp.rt_priority), (SCHED_OTHER, 0), "{vrrp:?}");
    assert!(others.iter().all(|t| t.policy == SCHED_OTHER), "{others:?}");
    let st = agent_status(&lab, "keepalived01");
    assert_eq!(
        st["details"]["vrrp_thread"],
        serde_json::json!({"policy": "SCHED_OTHER"})
    );

    lab.rewrite_inventory(&inventory().top("vrrp_rt_priority: 20\n"));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let st = agent_status(&lab, "keepalived01");
    let thread = &st["details"]["vrrp_thread"];
    assert_eq!(thread["policy"], "SCHED_OTHER", "{thread}");
    let warning = thread["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains(
            "vrrp_rt_priority 20 takes effect when the agent restarts"
        ),
        "{thread}"
    );

    let old_pid = st["pid"].clone();
    lab.exec_ok(
        "keepalived01",
        "lbdeploy agent restart director --config /etc/lbdeploy/agent.yml",
    );
    let until = Instant::now() + RESTART_BOUND;
    let (pid, others, vrrp) = loop {
        let out = lab.exec("keepalived01", "lbdeploy agent status --json");
        let st: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.success() && st["pid"] != old_pid {
            break vrrp_thread(&lab, "keepalived01");
        }
        assert!(Instant::now() < until, "no new agent in {RESTART_BOUND:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((vrrp.policy, vrrp.rt_priority), (SCHED_RR, 20), "{vrrp:?}");
    assert!(
        others.iter().all(|t| t.policy == SCHED_OTHER && t.rt_priority == 0),
        "only the vrrp thread is real-time: {others:?}"
    );
    // The capability that allowed it is the agent's own, not its
    // children's (ambient, bounding).
    let caps = lab.exec_ok(
        "keepalived01",
        &format!("grep -E '^Cap(Eff|Amb|Bnd)' /proc/{pid}/status"),
    );
    assert!(
        caps.contains("CapEff:\t0000000000803000")
            && caps.contains("CapAmb:\t0000000000003000")
            && caps.contains("CapBnd:\t0000000000003000"),
        "{caps}"
    );
    let st = agent_status(&lab, "keepalived01");
    assert_eq!(
        st["details"]["vrrp_thread"],
        serde_json::json!({"policy": "SCHED_RR", "priority": 20})
    );
    let text = lab.exec_ok("keepalived01", "lbdeploy agent status");
    assert!(text.contains("vrrp    thread SCHED_RR priority 20\n"), "{text}");
    let us = RUNAWAY_RTTIME.as_micros().to_string();
    let limits =
        lab.exec_ok("keepalived01", &format!("cat /proc/{pid}/limits"));
    let rttime = limits
        .lines()
        .find(|l| l.starts_with("Max realtime timeout"))
        .unwrap_or_default();
    let words: Vec<&str> = rttime.split_whitespace().collect();
    assert_eq!(words[3..], [us.as_str(), us.as_str(), "us"], "{limits}");

    // The restarted agent resumed mastership (a fast restart is no
    // failover) or won it again: either way its hook ran once more, from
    // the real-time thread's instance, and was not real-time itself.
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    let until = Instant::now() + Duration::from_secs(2);
    while hook_policies(&lab).len() < 2 {
        assert!(Instant::now() < until, "the master hook ran once only");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        hook_policies(&lab).iter().all(|p| *p == SCHED_OTHER),
        "{:?}",
        hook_policies(&lab)
    );
    let hook_caps = lab.exec_ok("keepalived01", "cat /run/hook-caps");
    assert!(
        hook_caps.lines().all(|l| l == "CapEff:\t0000000000003000"),
        "a hook has CAP_SYS_NICE:\n{hook_caps}"
    );

    // Refused: keepalived02's agent in the foreground without
    // CAP_SYS_NICE (gone from its bounding set) and with RLIMIT_RTPRIO 0.
    // It runs, as a backup, and says why it is not real-time.
    lab.exec_ok("keepalived02", "lbdeploy agent stop");
    lab.exec_ok(
        "keepalived02",
        "setsid setpriv --bounding-set=-sys_nice lbdeploy agent director \
           --config /etc/lbdeploy/agent.yml </dev/null >/run/fg.log 2>&1 &",
    );
    let until = Instant::now() + RESTART_BOUND;
    let st = loop {
        let out = lab.exec("keepalived02", "lbdeploy agent status --json");
        let st: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_default();
        if st["details"]["vrrp_instances"][0]["state"] == "BACKUP" {
            break st;
        }
        assert!(Instant::now() < until, "no backup in {RESTART_BOUND:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let thread = &st["details"]["vrrp_thread"];
    assert_eq!(thread["policy"], "SCHED_OTHER", "{thread}");
    let warning = thread["warning"].as_str().unwrap_or_default();
    assert!(
        warning.starts_with(
            "cannot run the vrrp thread under SCHED_RR at priority 20: \
             Operation not permitted"
        ),
        "{thread}"
    );
    let (_, _, vrrp) = vrrp_thread(&lab, "keepalived02");
    assert_eq!(vrrp.policy, SCHED_OTHER, "{vrrp:?}");
    let log = lab.exec_ok("keepalived02", "cat /run/fg.log");
    assert!(log.contains("cannot run the vrrp thread under SCHED_RR"), "{log}");
    let text = lab.exec_ok("keepalived02", "lbdeploy agent status");
    assert!(
        text.contains("vrrp    thread SCHED_OTHER\nwarning: cannot"),
        "{text}"
    );
    wait_sole_holder(&lab, &vip, "keepalived01", Duration::ZERO);
    lab.exec_ok("keepalived02", &format!("kill {}", st["pid"]));
}
