//! Real systemd hosts (issue #18): the example cluster on lab hosts that
//! boot systemd (`lab up --init systemd`: systemd-nspawn containers with a
//! fresh network namespace at every boot), applied over SSH as on any
//! Debian host, then rebooted and power-cut. After each boot, with no
//! apply, the real server holds the VIP on `lo` with ARP suppressed, the
//! director is master again and the client is served.
//!
//! Bounds: the agent is up once systemd has started it after sshd, well
//! within [`AGENT_UP`]; a director that boots preempts after its
//! Master_Down_Interval (`election_bound`).

use std::time::{Duration, Instant};

use lbdeploy::agent::vrrp::packet::Version;

use crate::support::inventory::Inventory;
use crate::support::lab::{Remains, TestLab, within};
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{election_bound, wait_sole_holder};

/// From `lab reboot`/`lab crash` returning (the host's sshd listens) to
/// its agent having put back what it keeps: the unit starts in the same
/// boot transaction as sshd, so this is start-up and one netlink round,
/// with room for a loaded 2-core machine.
const AGENT_UP: Duration = Duration::from_secs(5);

/// The first instance of the example cluster runs VRRPv2.
const V: Version = Version::V2;

/// The example cluster on systemd hosts; `None` when not root.
fn systemd_lab(name: &str, inventory: &Inventory) -> Option<TestLab> {
    TestLab::up_with(name, &inventory.to_string(), &["--init", "systemd"])
}

/// The example cluster reporting by email to a relay that is not there:
/// a warning from each director at each event.
fn with_missing_relay(s: Subnet) -> Inventory {
    Inventory::example(s).top(
        "notification:\n  email:\n    to: [ops@example.org]\n    \
         from: lb@example.org\n    smtp_server: 127.0.0.1\n",
    )
}

/// Whether real server `host` is as its agent keeps it: the VIP on `lo`
/// and the kernel told not to answer ARP for it.
fn real_server_whole(lab: &TestLab, host: &str, vip: &str) -> bool {
    let lo = lab.exec_ok(host, "ip -o addr show dev lo");
    let arp = lab.exec_ok(
        host,
        "cat /proc/sys/net/ipv4/conf/all/arp_ignore \
         /proc/sys/net/ipv4/conf/all/arp_announce",
    );
    lo.contains(&format!(" {vip}/32")) && arp.split_whitespace().eq(["1", "2"])
}

#[test]
fn r18_hosts_come_back_serving_after_reboots_and_power_cuts() {
    let s = Subnet::allocate();
    let Some(lab) = systemd_lab("systemd-reboot", &with_missing_relay(s))
    else {
        return;
    };
    let vip = s.vip();
    lab.apply_until_forwarding(&vip);
    for h in ["keepalived01", "keepalived02", "rs01", "rs02"] {
        assert_eq!(
            lab.exec_ok(h, "systemctl is-enabled lbdeploy-agent").trim(),
            "enabled",
            "{h}"
        );
        assert_eq!(
            lab.exec_ok(h, "systemctl is-active lbdeploy-agent").trim(),
            "active",
            "{h}"
        );
    }

    // The shipped unit, hardened, under a real systemd: OK in its own
    // judgement, and the agent's warnings reach the journal as warnings
    // (the example's email relay is not there: a warning each event).
    let exposure = lab.exec_ok(
        "keepalived01",
        "systemd-analyze security lbdeploy-agent | tail -1",
    );
    let score: f64 = exposure
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no score in {exposure:?}"));
    assert!(score <= 3.0, "{exposure}");
    let warnings = || {
        lab.exec_ok(
            "keepalived01",
            "journalctl -u lbdeploy-agent -p warning -o cat --no-pager",
        )
    };
    within(AGENT_UP, "the failed email's warning in the journal", || {
        warnings().contains("level=warn")
    });
    assert!(!warnings().contains("level=info"), "{}", warnings());
    let all = lab.exec_ok(
        "keepalived01",
        "journalctl -u lbdeploy-agent -o cat --no-pager",
    );
    assert!(all.contains("level=info"), "{all}");
    assert!(!all.contains("<6>") && !all.contains("<4>"), "{all}");

    // Real servers: a clean reboot, then a power cut. Each boot starts
    // with no VIP and default ARP settings (a fresh network namespace).
    for (how, host) in [("reboot", "rs01"), ("crash", "rs02")] {
        lab.lab_ok(&[how, host]);
        let took =
            within(AGENT_UP, &format!("{host} whole after {how}"), || {
                real_server_whole(&lab, host, &vip)
            });
        eprintln!("{host}: VIP on lo and ARP suppressed {took:?} after {how}");
        within(AGENT_UP, "the client served through the VIP", || {
            lab.curl_vip().status.success()
        });
    }

    // The master: a power cut makes the backup master within its
    // Master_Down_Interval; the master boots, preempts, and serves.
    for how in ["crash", "reboot"] {
        let cut = Instant::now();
        lab.lab_ok(&[how, "keepalived01"]);
        let booted = cut.elapsed();
        wait_sole_holder(&lab, &vip, "keepalived01", election_bound(V));
        let master = cut.elapsed();
        within(
            Duration::from_secs(1),
            "the client served after preemption",
            || lab.curl_vip().status.success(),
        );
        eprintln!(
            "keepalived01 {how}: booted in {booted:?}, master again after \
             {master:?}, served at {:?}",
            cut.elapsed()
        );
    }

    let status = lab.status();
    assert!(
        status["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["init"] == "systemd")
            .count()
            == 4,
        "{status}"
    );
    let remains = Remains::of(&status);
    let mut lab = lab;
    let down = lab.down();
    assert!(down.status.success(), "{down:?}");
    remains.assert_gone();
}

/// Whether `host` has no trace of the agent's unit: no file or link under
/// `/etc/systemd`, and nothing systemd lists (a dangling enable link shows
/// as `not-found` in `list-units --all`).
fn no_unit_trace(lab: &TestLab, host: &str) -> Result<(), String> {
    let found = lab.exec_ok(
        host,
        "find /etc/systemd /run/systemd/system -name 'lbdeploy-agent*'; \
         systemctl list-units --all --no-legend 'lbdeploy-agent*'; \
         systemctl list-unit-files --no-legend 'lbdeploy-agent*'; true",
    );
    match found.trim() {
        "" => Ok(()),
        left => Err(left.to_owned()),
    }
}

#[test]
fn r18_plan_sees_and_apply_repairs_the_unit_and_a_rolled_back_install_leaves_no_trace()
 {
    let s = Subnet::allocate();
    let Some(lab) = systemd_lab("systemd-unit", &Inventory::example(s)) else {
        return;
    };

    // A first install whose smoke test fails is rolled back whole.
    let out = lab.lbdeploy_exit(
        3,
        &["apply", "--yes", "--limit", "rs01", "--smoke-test", "false"],
    );
    assert!(out.contains("rs01  rolled back"), "{out}");
    no_unit_trace(&lab, "rs01").unwrap_or_else(|left| panic!("{left}"));

    lab.apply_until_forwarding(&s.vip());
    lab.lbdeploy_exit(0, &["plan", "--detailed-exitcode"]);

    // While an apply waits for its confirmation (the smoke test runs
    // then), the host's magic-rollback watchdog is a unit of its own, not
    // a process of the SSH session.
    lab.rewrite_inventory(&Inventory::example(s).weight("rs01", 2));
    let smoke = "ssh $LBDEPLOY_HOST systemctl list-units --no-legend \
                 --state=active 'lbdeploy-watchdog-*' | grep -q watchdog";
    lab.lbdeploy_exit(0, &["apply", "--yes", "--smoke-test", smoke]);

    // Three ways an agent's unit goes wrong behind lbdeploy's back.
    lab.exec_ok("rs01", "systemctl disable lbdeploy-agent");
    // `systemctl mask` refuses a unit whose file is in /etc (and a
    // runtime mask in /run loses to it): masking it means this.
    lab.exec_ok(
        "rs02",
        "ln -sf /dev/null /etc/systemd/system/lbdeploy-agent.service && \
         systemctl daemon-reload",
    );
    lab.exec_ok(
        "keepalived02",
        "mkdir -p /etc/systemd/system/lbdeploy-agent.service.d && \
         printf '[Service]\\nEnvironment=HIDDEN=1\\n' \
           > /etc/systemd/system/lbdeploy-agent.service.d/override.conf && \
         systemctl daemon-reload",
    );
    let plan = lab.lbdeploy_exit(2, &["plan", "--detailed-exitcode"]);
    for line in [
        "~ unit lbdeploy-agent: disabled, would not start after a reboot: enable",
        "~ unit lbdeploy-agent: masked, cannot start: unmask and enable",
        "- /etc/systemd/system/lbdeploy-agent.service.d/override.conf (a drop-in \
         overriding the agent's unit)",
        "-Environment=HIDDEN=1",
    ] {
        assert!(plan.contains(line), "{line:?} not in\n{plan}");
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    for h in ["rs01", "rs02", "keepalived02"] {
        assert_eq!(
            lab.exec_ok(h, "systemctl is-enabled lbdeploy-agent").trim(),
            "enabled",
            "{h}"
        );
    }
    assert_eq!(
        lab.exec_ok(
            "keepalived02",
            "systemctl show -p DropInPaths --value lbdeploy-agent; \
             systemctl show -p Environment --value lbdeploy-agent"
        )
        .trim(),
        // The drop-in's HIDDEN=1 gone; the unit's own environment only.
        "LBDEPLOY_CGROUP=delegated"
    );
    lab.lbdeploy_exit(0, &["plan", "--detailed-exitcode"]);

    // The proof: after a reboot both real servers' agents are back.
    for rs in ["rs01", "rs02"] {
        lab.lab_ok(&["reboot", rs]);
        within(AGENT_UP, &format!("{rs} whole after reboot"), || {
            real_server_whole(&lab, rs, &s.vip())
        });
    }

    // Issue #19: rs02 leaves the inventory. Its retirement stops and
    // disables the agent and removes the unit without a trace, and a
    // reboot brings none of it back.
    lab.rewrite_inventory(
        &Inventory::example(s).weight("rs01", 2).without("rs02"),
    );
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    assert!(out.contains("rs02          changed"), "{out}");
    let retired = |when: &str| {
        no_unit_trace(&lab, "rs02")
            .unwrap_or_else(|left| panic!("{when}: {left}"));
        let lo = lab.exec_ok("rs02", "ip -o addr show dev lo");
        assert!(!lo.contains(&format!(" {}/", s.vip())), "{when}: {lo}");
    };
    retired("retired");
    // As long as an agent takes to come back after a reboot: none does.
    lab.lab_ok(&["reboot", "rs02"]);
    std::thread::sleep(AGENT_UP);
    retired("after a reboot");
}
