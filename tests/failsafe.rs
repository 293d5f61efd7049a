//! The fail-safe rule in the lab (issue #16 item 5): a host whose agent is
//! not running holds nothing of it. The example cluster, lbdeploy on both
//! directors under lbdeploy's supervisor, real namespaces and sshd. The
//! phases shared with the same tests under systemd (`systemd_failsafe`)
//! are functions of their own.
//!
//! Times are measured inside the namespaces by shells polling every 5 ms
//! with `date +%s%N` (one clock for all of them), not slept for; the
//! bounds come from the protocol (`vrrp_lab`'s `takeover_bound`,
//! `election_bound`) and from the supervisor's restart policy.

use std::collections::BTreeMap;
use std::time::Duration;

use lbdeploy::agent::vrrp::packet::Version;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, within};
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{
    DIRECTORS, agent_status, election_bound, holders, logs, takeover_bound,
    wait_sole_holder,
};

/// How soon after the agent's death its host must hold nothing: the
/// supervisor notices the exit at once and the cleanup is a few netlink
/// requests and one `nft`.
pub(crate) const CLEANED_WITHIN: Duration = Duration::from_secs(1);

/// Measurement and process start-up slack on top of a bound.
pub(crate) const SLACK: Duration = Duration::from_millis(500);

/// The example cluster on VRRPv2, brought to keepalived01 holding the VIP
/// with its data plane installed.
pub(crate) fn converged(lab: &TestLab, s: Subnet) {
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(lab, &s.vip(), "keepalived01", election_bound(V));
    within(SLACK * 10, "table netdev lbdeploy on keepalived01", || {
        lab.exec("keepalived01", "nft list table netdev lbdeploy")
            .status
            .success()
    });
    let holdings =
        lab.exec_ok("keepalived01", "cat /run/lbdeploy/holdings.json");
    assert!(
        holdings.contains(&format!("\"ip\":\"{}\"", s.vip())),
        "{holdings}"
    );
    assert!(holdings.contains("\"nft_table\":true"), "{holdings}");
}

pub(crate) const V: Version = Version::V2;

/// The agent's PID on `host` (not the supervisor's).
pub(crate) fn agent_pid(lab: &TestLab, host: &str) -> u64 {
    agent_status(lab, host)["pid"].as_u64().expect("the agent reports its pid")
}

/// Start, in the background on `host`, a shell that writes each change of
/// whether `host` holds `vip` as `NANOS 1|0` to `/run/failsafe-trace`
/// for `secs` seconds, then `/run/failsafe-done`.
fn trace(lab: &TestLab, host: &str, vip: &str, secs: u32) {
    lab.exec_ok(
        host,
        &format!(
            "rm -f /run/failsafe-trace /run/failsafe-done; \
             setsid sh -c 'end=$(( $(date +%s%N) + {secs}000000000 )); p=x; \
               while [ $(date +%s%N) -lt $end ]; do \
                 if ip -o addr show dev eth0 | grep -q \" {vip}/\"; \
                 then c=1; else c=0; fi; \
                 [ $c != $p ] && echo \"$(date +%s%N) $c\"; p=$c; \
                 sleep 0.005; \
               done > /run/failsafe-trace; touch /run/failsafe-done' \
             </dev/null >/dev/null 2>&1 &"
        ),
    );
}

/// The trace of `host`, once complete: `(nanos, holds)` in order.
fn traced(lab: &TestLab, host: &str) -> Vec<(u64, bool)> {
    within(Duration::from_secs(30), "the trace to end", || {
        lab.exec(host, "test -e /run/failsafe-done").status.success()
    });
    lab.exec_ok(host, "cat /run/failsafe-trace")
        .lines()
        .map(|l| {
            let (t, c) = l.split_once(' ').expect("NANOS 0|1");
            (t.parse().unwrap(), c == "1")
        })
        .collect()
}

/// Test A. A master whose agent dies and cannot come back (its
/// configuration is corrupt) holds nothing within a second; the backup
/// takes over alone within its takeover bound; the supervisor keeps
/// retrying with growing waits, and brings the agent back by itself once
/// the file is good again.
#[test]
fn a_dead_master_holds_nothing_and_comes_back_by_itself() {
    let s = Subnet::allocate();
    let lab =
        lab_or_skip!("failsafe-corrupt", Inventory::example(s).version(2));
    converged(&lab, s);
    let vip = s.vip();
    let supervisor = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.pid");
    corrupt_and_kill_the_master(&lab, s);

    // The supervisor lives on and retries, each wait longer than the
    // last: 1 s, 2 s, 4 s after the failed starts.
    let log = || lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    within(Duration::from_secs(1 + 2) + SLACK * 4, "a 4 s wait", || {
        log().contains("restarting the agent in 4s")
    });
    let text = log();
    let at = |wait: &str| {
        text.find(&format!("restarting the agent in {wait}"))
            .unwrap_or_else(|| panic!("no {wait} wait:\n{text}"))
    };
    assert!(at("1s") < at("2s") && at("2s") < at("4s"), "{text}");
    assert!(!text.contains("giving up"), "{text}");
    assert!(
        lab.exec("keepalived01", &format!("kill -0 {}", supervisor.trim()))
            .status
            .success(),
        "the supervisor is gone\n{text}"
    );
    assert_eq!(holders(&lab, &vip), ["keepalived02"], "{text}");

    // The current wait is at most 8 s by now.
    restore_the_master(&lab, s, Duration::from_secs(8));
}

/// The master's configuration corrupted and its agent killed: within
/// [`CLEANED_WITHIN`] keepalived01 holds no VIP and no table, and
/// keepalived02 takes over alone within its takeover bound. The good file
/// is kept in `/run/agent.yml.good` for [`restore_the_master`].
pub(crate) fn corrupt_and_kill_the_master(lab: &TestLab, s: Subnet) {
    let vip = s.vip();
    let pid = agent_pid(lab, "keepalived01");
    lab.exec_ok(
        "keepalived01",
        "cp /etc/lbdeploy/agent.yml /run/agent.yml.good && \
         echo 'vrrp_instances: [' > /etc/lbdeploy/agent.yml",
    );
    // keepalived02 waits for the VIP from the moment of the kill.
    lab.exec_ok(
        "keepalived02",
        &format!(
            "rm -f /run/failsafe-took; \
             setsid sh -c 'until ip -o addr show dev eth0 | grep -q \" {vip}/\"; \
               do sleep 0.005; done; date +%s%N > /run/failsafe-took' \
             </dev/null >/dev/null 2>&1 &"
        ),
    );
    // Kill the agent, not the supervisor, and wait inside keepalived01
    // until neither the VIP nor the table is there.
    let out = lab.exec_ok(
        "keepalived01",
        &format!(
            "s=$(date +%s%N); kill -9 {pid}; \
             while ip -o addr show dev eth0 | grep -q ' {vip}/' || \
                   nft list tables netdev | grep -q 'table netdev lbdeploy$'; do \
               sleep 0.005; \
               [ $(( $(date +%s%N) - s )) -gt 10000000000 ] && break; \
             done; echo $s $(( ($(date +%s%N) - s) / 1000 ))"
        ),
    );
    let (killed, cleaned) = out.trim().split_once(' ').unwrap();
    let killed: u64 = killed.parse().unwrap();
    let cleaned = Duration::from_micros(cleaned.parse().unwrap());
    eprintln!("failsafe: the dead master held nothing after {cleaned:?}");
    assert!(cleaned <= CLEANED_WITHIN, "{cleaned:?}\n{}", logs(lab));
    assert!(
        !lab.exec("keepalived01", "nft list table netdev lbdeploy")
            .status
            .success(),
        "the table is still on keepalived01"
    );
    assert!(!holders(lab, &vip).contains(&"keepalived01"));

    // The backup takes over, alone, within its Master_Down_Interval.
    within(takeover_bound(V) + SLACK, "keepalived02's takeover", || {
        lab.exec("keepalived02", "test -s /run/failsafe-took").status.success()
    });
    let took: u64 = lab
        .exec_ok("keepalived02", "cat /run/failsafe-took")
        .trim()
        .parse()
        .unwrap();
    let took = Duration::from_nanos(took - killed);
    eprintln!("failsafe: keepalived02 took over {took:?} after the kill");
    assert!(took <= takeover_bound(V), "{took:?}\n{}", logs(lab));
    assert_eq!(holders(lab, &vip), ["keepalived02"]);
}

/// Put the master's good configuration back: its agent is back without
/// `apply` once the current restart wait (at most `wait`) is over, and
/// preempts.
pub(crate) fn restore_the_master(lab: &TestLab, s: Subnet, wait: Duration) {
    lab.exec_ok(
        "keepalived01",
        "cp /run/agent.yml.good /etc/lbdeploy/agent.yml",
    );
    within(wait + SLACK * 4, "the agent back", || {
        lab.exec("keepalived01", "lbdeploy agent status").status.success()
    });
    wait_sole_holder(lab, &s.vip(), "keepalived01", election_bound(V));
}

/// One moment of the cluster: who holds the VIP, from the traces.
type Timeline = BTreeMap<u64, BTreeMap<&'static str, bool>>;

/// The holders at every change seen in either director's trace.
fn timeline(traces: &[(&'static str, Vec<(u64, bool)>)]) -> Timeline {
    let mut changes: Vec<(u64, &'static str, bool)> = traces
        .iter()
        .flat_map(|(h, t)| t.iter().map(move |&(at, c)| (at, *h, c)))
        .collect();
    changes.sort();
    let mut now = BTreeMap::new();
    let mut out = Timeline::new();
    for (at, host, holds) in changes {
        now.insert(host, holds);
        out.insert(at, now.clone());
    }
    out
}

/// Test B. A healthy master's agent killed with SIGKILL: the supervisor
/// removes its VIP at once and restarts it after 1 s, within two advert
/// intervals of the release, so it resumes as master
/// (`agent::mastership`) before the backup's Master_Down_Interval (3.7
/// s) runs out: no failover at all, the VIP away from keepalived01 for
/// about the restart delay. Also asserted: never two holders for longer
/// than a Master_Down_Interval, exactly one at the end.
#[test]
fn a_killed_healthy_master_resumes_without_a_failover() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("failsafe-kill", Inventory::example(s).version(2));
    converged(&lab, s);
    kill_the_master_and_see_it_resume(&lab, s, || {
        lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log")
    });
}

/// Test B's body: the healthy master's agent killed, the traces of both
/// directors read and judged. `log` is keepalived01's agent log, wherever
/// its init keeps it.
pub(crate) fn kill_the_master_and_see_it_resume(
    lab: &TestLab,
    s: Subnet,
    log: impl Fn() -> String,
) {
    let vip = s.vip();
    let pid = agent_pid(lab, "keepalived01");
    let window = 14;
    for host in DIRECTORS {
        trace(lab, host, &vip, window);
    }
    let killed: u64 = lab
        .exec_ok(
            "keepalived01",
            &format!("sleep 0.2; date +%s%N; kill -9 {pid}"),
        )
        .trim()
        .parse()
        .unwrap();
    let traces: Vec<(&'static str, Vec<(u64, bool)>)> =
        DIRECTORS.iter().map(|&h| (h, traced(lab, h))).collect();
    let timeline = timeline(&traces);
    let ms = |t: u64| Duration::from_nanos(t.saturating_sub(killed));

    // How long keepalived01 was without the VIP.
    let one = &traces[0].1;
    let gone = one.iter().find(|&&(t, c)| t >= killed && !c).map(|p| p.0);
    let back = gone.and_then(|g| one.iter().find(|&&(t, c)| t > g && c));
    let absent = match (gone, back) {
        (Some(g), Some(&(b, _))) => Some(Duration::from_nanos(b - g)),
        _ => None,
    };
    // Who held the VIP alone, in turn: each change of sole holder is a
    // failover.
    let mut sole = Vec::new();
    let mut both_since = None;
    let mut longest_both = Duration::ZERO;
    for (&at, now) in &timeline {
        let held: Vec<&str> =
            now.iter().filter(|(_, c)| **c).map(|(h, _)| *h).collect();
        match held.len() {
            2 => {
                both_since.get_or_insert(at);
            }
            _ => {
                if let Some(since) = both_since.take() {
                    longest_both =
                        longest_both.max(Duration::from_nanos(at - since));
                }
            }
        }
        if let [h] = held[..]
            && sole.last().is_none_or(|(last, _)| *last != h)
        {
            sole.push((h, ms(at)));
        }
    }
    let failovers = sole.len().saturating_sub(1);
    eprintln!(
        "failsafe: kill -9 of the master's agent: keepalived01's VIP gone \
         {:?} after the kill, back after {absent:?} away; sole holders in \
         turn {sole:?}; {failovers} failovers; longest overlap \
         {longest_both:?}",
        gone.map(ms)
    );
    assert!(
        longest_both <= takeover_bound(V),
        "two holders for {longest_both:?}\n{}",
        logs(lab)
    );
    assert!(both_since.is_none(), "two holders at the end\n{}", logs(lab));
    assert!(gone.is_some_and(|g| ms(g) <= CLEANED_WITHIN), "{traces:?}");
    assert_eq!(failovers, 0, "{sole:?}\n{}", logs(lab));
    let resumed = 2 * Duration::from_secs(1);
    assert!(absent.is_some_and(|a| a < resumed), "{absent:?}");
    assert!(log().contains("resuming as master"), "{}", logs(lab));
    wait_sole_holder(lab, &vip, "keepalived01", election_bound(V));
    assert_eq!(holders(lab, &vip).len(), 1);
}
