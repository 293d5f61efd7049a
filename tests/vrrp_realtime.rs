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
use crate::vrrp_lab::{
    agent_status, election_bound, logs, vrrp, wait_sole_holder,
};

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

/// The VRRP thread of `host`'s agent once an agent whose status
/// satisfies `ready` answers, within [`RESTART_BOUND`].
fn agent_once(
    lab: &TestLab,
    host: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> (String, Vec<Task>, Task) {
    let until = Instant::now() + RESTART_BOUND;
    let mut st = serde_json::Value::Null;
    while Instant::now() < until {
        let out = lab.exec(host, "lbdeploy agent status --json");
        st = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.success() && ready(&st) {
            return vrrp_thread(lab, host);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no such agent on {host} in {RESTART_BOUND:?}; the last: {st}")
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
/// an apply restarts the agent, and the VRRP thread — and no other
/// thread — is `SCHED_RR` at the priority, its CPU time without
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

    // A reload cannot change the thread's scheduling: the apply restarts
    // the agent (`r16_apply_restarts_for_settings_only_a_start_applies`).
    let old_pid = st["pid"].clone();
    lab.rewrite_inventory(&inventory().top("vrrp_rt_priority: 20\n"));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let (pid, others, vrrp) =
        agent_once(&lab, "keepalived01", |st| st["pid"] != old_pid);
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

/// `VmLck` of process `pid` on `host`, in kB.
fn locked_kb(lab: &TestLab, host: &str, pid: &str) -> u64 {
    let status = lab.exec_ok(host, &format!("cat /proc/{pid}/status"));
    let line = status.lines().find(|l| l.starts_with("VmLck:"));
    let line = line.unwrap_or_else(|| panic!("no VmLck:\n{status}"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap()
}

/// How many times `host`'s agents have logged becoming master.
fn masterships(lab: &TestLab, host: &str) -> usize {
    lab.exec_ok(host, "cat /run/lbdeploy/agent.log")
        .matches("-> MASTER")
        .count()
}

/// How long the VIP watcher's samples on `host` show the VIP away each
/// time it went (lines `NANOSECONDS 0|1`, written at each change).
fn vip_gaps(lab: &TestLab, host: &str) -> Vec<Duration> {
    let samples = lab.exec_ok(host, "cat /run/vipwatch");
    let changes: Vec<(u128, bool)> = samples
        .lines()
        .filter_map(|l| {
            let (t, held) = l.split_once(' ')?;
            Some((t.parse().ok()?, held == "1"))
        })
        .collect();
    changes
        .windows(2)
        .filter(|w| !w[0].1 && w[1].1)
        .map(|w| Duration::from_nanos((w[1].0 - w[0].0) as u64))
        .collect()
}

/// Issue #16: the settings only a start of the agent applies — a new
/// `vrrp_rt_priority`, `vrrp_no_swap` and the first script user — make
/// `apply` restart the agent, not reload it, on hosts without systemd
/// (the lab's), and the plan says why. The restarted master runs with the
/// new scheduling, capabilities (CAP_SYS_NICE, CAP_SETUID, CAP_SETGID, CAP_KILL,
/// CAP_IPC_LOCK for itself) and locked memory (`VmLck`, zero before), and its restart is no
/// failover: it hands over (no priority-0 advert), resumes as master, and
/// the backup never becomes master; the VIP is away from the master once,
/// for less than two advert intervals (measured inside its namespace).
#[test]
fn r16_apply_restarts_for_settings_only_a_start_applies() {
    let s = Subnet::allocate();
    let inventory =
        || vrrp(s, 3).instance_option("notify: { master: [/bin/true] }");
    let lab = lab_or_skip!("vrrp-restart", inventory());
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    let st = agent_status(&lab, "keepalived01");
    let old_pid = st["pid"].to_string();
    assert_eq!(locked_kb(&lab, "keepalived01", &old_pid), 0);
    assert_eq!(st["details"]["memory"], serde_json::Value::Null, "{st}");
    let backup_masterships = masterships(&lab, "keepalived02");

    lab.rewrite_inventory(&inventory().top(
        "vrrp_rt_priority: 20\nvrrp_no_swap: true\nscript_user: nobody\n",
    ));
    let plan = lab.lbdeploy(&["plan"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    let why = "~ service lbdeploy-agent: restart: vrrp_rt_priority changed, \
               vrrp_no_swap changed, script_user changed";
    assert_eq!(plan.matches(why).count(), 2, "{why} twice in:\n{plan}");

    // Watch the VIP on the master while it restarts: a line at each
    // change, at most 2,000 samples (about 30 s).
    let watcher = lab.exec_ok(
        "keepalived01",
        &format!(
            "setsid sh -c 'last=; for i in $(seq 2000); do \
               if ip -o addr show dev eth0 | grep -q \" {vip}/\"; \
               then n=1; else n=0; fi; \
               [ \"$n\" != \"$last\" ] && echo \"$(date +%s%N) $n\"; \
               last=$n; sleep 0.01; done' \
             </dev/null >/run/vipwatch 2>&1 & echo $!"
        ),
    );
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    lab.exec_ok("keepalived01", &format!("kill {} || true", watcher.trim()));

    let st = agent_status(&lab, "keepalived01");
    let pid = st["pid"].to_string();
    assert_ne!(pid, old_pid, "not restarted:\n{out}");
    assert_eq!(st["details"]["vrrp_instances"][0]["state"], "MASTER", "{st}");
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    assert!(log.contains("stopping for a restart"), "{log}");
    assert!(log.contains("resuming as master"), "{log}");
    assert_eq!(
        masterships(&lab, "keepalived02"),
        backup_masterships,
        "the backup took over:\n{}",
        logs(&lab)
    );
    let gaps = vip_gaps(&lab, "keepalived01");
    eprintln!("the master's VIP was away for {gaps:?} during its restart");
    assert!(gaps.len() <= 1, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g < 2 * Duration::from_secs(1)), "{gaps:?}");
    wait_sole_holder(&lab, &vip, "keepalived01", Duration::ZERO);

    // The new agent: real-time VRRP thread, its own capabilities from the
    // new configuration, memory locked.
    let (_, _, vrrp) = vrrp_thread(&lab, "keepalived01");
    assert_eq!((vrrp.policy, vrrp.rt_priority), (SCHED_RR, 20), "{vrrp:?}");
    let caps = lab.exec_ok(
        "keepalived01",
        &format!("grep -E '^Cap(Eff|Amb|Bnd)' /proc/{pid}/status"),
    );
    assert!(
        caps.contains("CapEff:\t00000000008070e0")
            && caps.contains("CapAmb:\t0000000000003000")
            && caps.contains("CapBnd:\t0000000000003000"),
        "{caps}"
    );
    let locked = locked_kb(&lab, "keepalived01", &pid);
    eprintln!("the agent with vrrp_no_swap has {locked} kB locked");
    assert!(locked > 0, "{}\n{log}", st["details"]["memory"]);
    assert_eq!(
        st["details"]["memory"],
        serde_json::json!({"locked": true}),
        "{st}"
    );
    let text = lab.exec_ok("keepalived01", "lbdeploy agent status");
    assert!(text.contains("\nmemory  locked\n"), "{text}");

    // A rollback that brings such a setting back restarts the agent too:
    // the backup's activation of the old inventory (real-time off) fails
    // its smoke test, and the configuration it rolls back to (priority
    // 20) takes a start, not a reload, on a host without systemd.
    lab.rewrite_inventory(&inventory());
    let out = lab.lbdeploy_exit(
        3,
        &[
            "apply",
            "--yes",
            "--confirm-timeout",
            "2s",
            "--smoke-test",
            "[ \"$LBDEPLOY_HOST\" != keepalived02 ]",
        ],
    );
    assert!(out.contains("keepalived02  rolled back: the smoke test"), "{out}");
    let (_, _, vrrp) = agent_once(&lab, "keepalived02", |st| {
        st["details"]["vrrp_thread"]["policy"] == "SCHED_RR"
    });
    assert_eq!((vrrp.policy, vrrp.rt_priority), (SCHED_RR, 20), "{vrrp:?}");
    // The backup's restarts moved nothing: the master still holds the VIP
    // alone.
    wait_sole_holder(&lab, &vip, "keepalived01", Duration::ZERO);
}

/// How many times `host`'s agent has logged becoming master, in the
/// journal (systemd hosts).
fn journal_masterships(lab: &TestLab, host: &str) -> usize {
    lab.exec_ok(host, "journalctl -u lbdeploy-agent -o cat --no-pager")
        .matches("-> MASTER")
        .count()
}

/// Issue #16 on systemd hosts (`lab up --init systemd`): the same kind of
/// apply restarts the agent through its unit (`daemon-reload`, `systemctl
/// restart`), whose `RestartKillSignal=SIGUSR1` makes it a hand-over:
/// the master ends without resigning, `ExecStopPost` cleans up and stamps
/// its mark, and the new agent resumes as master — the backup never
/// becomes master. The unit's `LimitMEMLOCK=infinity` lets the agent lock
/// its memory without CAP_IPC_LOCK where systemd may raise the limit; in
/// a container that may not, the agent runs unlocked and says why.
#[test]
fn r16_a_restart_under_systemd_hands_over() {
    let s = Subnet::allocate();
    let inventory = || vrrp(s, 3);
    let Some(lab) = TestLab::up_with(
        "vrrp-restart-sd",
        &inventory().to_string(),
        &["--init", "systemd"],
    ) else {
        return;
    };
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    let old_pid = agent_status(&lab, "keepalived01")["pid"].to_string();
    let backup_masterships = journal_masterships(&lab, "keepalived02");

    lab.rewrite_inventory(
        &inventory().top("vrrp_rt_priority: 20\nvrrp_no_swap: true\n"),
    );
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let st = agent_status(&lab, "keepalived01");
    let pid = st["pid"].to_string();
    assert_ne!(pid, old_pid, "not restarted:\n{out}");
    assert_eq!(st["details"]["vrrp_instances"][0]["state"], "MASTER", "{st}");
    let journal = lab.exec_ok(
        "keepalived01",
        "journalctl -u lbdeploy-agent -o cat --no-pager",
    );
    assert!(journal.contains("stopping for a restart"), "{journal}");
    assert!(journal.contains("resuming as master"), "{journal}");
    assert_eq!(
        journal_masterships(&lab, "keepalived02"),
        backup_masterships,
        "the backup took over"
    );
    wait_sole_holder(&lab, &vip, "keepalived01", Duration::ZERO);
    // systemd raises the limits only as far as its own hard limits go: a
    // container whose hard RLIMIT_MEMLOCK is finite (this machine's: 8
    // MiB, and no CAP_SYS_RESOURCE to lift it) gets the warning instead.
    let init = lab.exec_ok("keepalived01", "cat /proc/1/limits");
    let unlimited = init
        .lines()
        .any(|l| l.starts_with("Max locked memory") && l.contains("unlimited"));
    let locked = locked_kb(&lab, "keepalived01", &pid);
    eprintln!(
        "under systemd the agent has {locked} kB locked (init's memlock \
         limit unlimited: {unlimited})"
    );
    let memory = &st["details"]["memory"];
    if unlimited {
        assert!(locked > 0, "{memory}");
        assert_eq!(memory, &serde_json::json!({"locked": true}));
    } else {
        assert_eq!(locked, 0);
        let warning = memory["warning"].as_str().unwrap_or_default();
        assert!(
            warning.starts_with(
                "vrrp_no_swap: cannot lock the agent's memory: \
                 RLIMIT_MEMLOCK is"
            ),
            "{memory}"
        );
    }
}
