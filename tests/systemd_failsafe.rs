//! The fail-safe rule under systemd (issue #16 item 5, on the real hosts
//! of issue #18): the example cluster on systemd hosts, where the unit's
//! `ExecStopPost=… agent cleanup` removes what a dead agent held and
//! `Restart=` brings it back. The phases and bounds are `failsafe`'s,
//! which runs the same tests under lbdeploy's own supervisor.

use std::time::Duration;

use crate::failsafe::{
    SLACK, converged, corrupt_and_kill_the_master,
    kill_the_master_and_see_it_resume, restore_the_master,
};
use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, within};
use crate::support::subnet::Subnet;
use crate::vrrp_lab::holders;

/// The unit's `RestartSec=`: on bookworm's systemd (252, before
/// `RestartSteps=`) every restart waits this long, never longer.
const RESTART_SEC: Duration = Duration::from_secs(1);

/// The example cluster on VRRPv2 on systemd hosts; `None` when not root.
fn systemd_lab(name: &str, s: Subnet) -> Option<TestLab> {
    let inventory = Inventory::example(s).version(2);
    TestLab::up_with(name, &inventory.to_string(), &["--init", "systemd"])
}

/// keepalived01's agent log: its unit's journal.
fn journal(lab: &TestLab) -> String {
    lab.exec_ok(
        "keepalived01",
        "journalctl -u lbdeploy-agent -o cat --no-pager",
    )
}

/// How many times systemd has restarted keepalived01's agent.
fn restarts(lab: &TestLab) -> u32 {
    lab.exec_ok(
        "keepalived01",
        "systemctl show -p NRestarts --value lbdeploy-agent",
    )
    .trim()
    .parse()
    .expect("NRestarts is a number")
}

/// Test A under systemd: a corrupt configuration and `kill -9`; nothing
/// held within a second, the backup sole master; systemd retries every
/// second, each failed start holding nothing; the good file brings the
/// agent back without apply. Also: the unit this systemd (252) gets has
/// no key it does not know.
#[test]
fn r16_under_systemd_a_dead_master_holds_nothing_and_comes_back() {
    let s = Subnet::allocate();
    let Some(lab) = systemd_lab("systemd-failsafe-corrupt", s) else {
        return;
    };
    converged(&lab, s);
    let unknown = lab.exec_ok(
        "keepalived01",
        "journalctl -b --no-pager | grep 'lbdeploy-agent.service' | \
         grep 'Unknown key' || true",
    );
    assert_eq!(unknown.trim(), "", "keys this systemd does not know");
    let before = restarts(&lab);
    corrupt_and_kill_the_master(&lab, s);

    // systemd keeps trying, at RestartSec= each time, and never gives up;
    // between two tries the host holds nothing.
    let tries = 3;
    within(
        (RESTART_SEC + SLACK) * tries + SLACK * 4,
        "three restarts by systemd",
        || restarts(&lab) >= before + tries,
    );
    assert_ne!(
        lab.exec_ok(
            "keepalived01",
            "systemctl show -p ActiveState --value lbdeploy-agent"
        )
        .trim(),
        "failed",
        "systemd gave up"
    );
    assert!(
        journal(&lab).contains("agent.yml"),
        "the journal names the bad file:\n{}",
        journal(&lab)
    );
    assert_eq!(holders(&lab, &s.vip()), ["keepalived02"]);
    assert!(
        !lab.exec("keepalived01", "nft list table netdev lbdeploy")
            .status
            .success(),
        "a failed start left the table"
    );
    restore_the_master(&lab, s, RESTART_SEC);
}

/// Test B under systemd: `kill -9` of the healthy master's agent. The
/// unit's cleanup takes the VIP away within a second, systemd restarts
/// the agent after `RestartSec=` (1 s), within two advert intervals of
/// the release, so it resumes as master: no failover.
#[test]
fn r16_under_systemd_a_killed_healthy_master_resumes_without_a_failover() {
    let s = Subnet::allocate();
    let Some(lab) = systemd_lab("systemd-failsafe-kill", s) else {
        return;
    };
    converged(&lab, s);
    let before = restarts(&lab);
    kill_the_master_and_see_it_resume(&lab, s, || journal(&lab));
    assert_eq!(restarts(&lab), before + 1, "{}", journal(&lab));
}
