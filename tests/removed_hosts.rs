//! Hosts that leave the inventory are retired (issue #19, item 5), in the
//! lab, the way an operator does it: delete the host's entry and apply.
//!
//! rs02 is removed. With `--keep-removed` the apply leaves it running but
//! remembers it; the next plan shows it as `- host rs02 (not in the
//! inventory)` and the apply retires it after the directors: its agent
//! stopped (its VIP off `lo`), its files gone, its ARP sysctls back to
//! the values they had before lbdeploy, its binary and generation kept.
//! Its agent had been told to keep its VIP on `lo` when it stops; a
//! retirement removes it all the same. A plan after that has nothing to
//! do, and a rollback to the first generation installs it again.
//!
//! keepalived01, the master, is removed: it is retired first and resigns,
//! and keepalived02 takes over before its own configuration changes.

use std::time::Duration;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::subnet::Subnet;
use crate::vrrp_lab::wait_sole_holder;

/// The ARP settings lbdeploy changes on a real server.
const ARP: &str =
    "sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce";

#[test]
fn r19_a_removed_real_server_is_retired_and_a_rollback_brings_it_back() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("removed", Inventory::example(s));
    let vip = s.vip();
    let original = lab.exec_ok("rs02", ARP);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let installed = |what: &str| {
        let arp = lab.exec_ok("rs02", ARP);
        assert_ne!(arp, original, "{what}: ARP settings");
        let lo = lab.exec_ok("rs02", "ip -o addr show dev lo");
        assert!(lo.contains(&format!(" {vip}/")), "{what}: {lo}");
        let agent = lab.exec("rs02", "lbdeploy agent status");
        assert!(agent.status.success(), "{what}: no agent on rs02");
    };
    installed("the first apply");

    // rs02 leaves the inventory; a weight changes too, so this apply
    // records a generation. Kept: it is neither planned nor touched.
    let without = || Inventory::example(s).without("rs02").weight("rs01", 2);
    lab.rewrite_inventory(&without());
    let out = lab.lbdeploy_exit(0, &["apply", "--yes", "--keep-removed"]);
    assert!(!out.contains("rs02"), "{out}");
    installed("apply --keep-removed");
    let config = lab.exec_ok("keepalived01", "cat /etc/lbdeploy/agent.yml");
    assert!(!config.contains(&s.addr(22)), "rs02 still served:\n{config}");

    // An agent told to keep its VIP on `lo` when it stops still gives it
    // up when its host is retired: the ARP settings that hid it go too.
    lab.exec_ok(
        "rs02",
        "sed -i 's/^keep_vip_on_stop: false$/keep_vip_on_stop: true/' \
           /etc/lbdeploy/agent.yml && \
         grep -qx 'keep_vip_on_stop: true' /etc/lbdeploy/agent.yml && \
         lbdeploy agent reload",
    );

    // The next plan retires it: the generation before remembered it.
    let plan = lab.lbdeploy(&["plan"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    for line in [
        "- host rs02 (not in the inventory):",
        "  - service lbdeploy-agent: stop (its VIPs go with it) and disable",
        "  - /etc/lbdeploy/agent.yml",
        "Plan: 1 hosts to change, 3 unchanged",
    ] {
        assert!(plan.contains(line), "`{line}` not in:\n{plan}");
    }
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    assert!(out.contains("rs02          changed"), "{out}");
    let lo = lab.exec_ok("rs02", "ip -o addr show dev lo");
    assert!(!lo.contains(&format!(" {vip}/")), "VIP left on lo: {lo}");
    assert_eq!(lab.exec_ok("rs02", ARP), original, "ARP not put back");
    let agent = lab.exec("rs02", "lbdeploy agent status");
    assert!(!agent.status.success(), "the agent still answers on rs02");
    let left = lab.exec_ok(
        "rs02",
        "ls /etc/lbdeploy /etc/sysctl.d 2>/dev/null; \
         cat /var/lib/lbdeploy/generation /var/lib/lbdeploy/manifest; \
         test -x /usr/local/sbin/lbdeploy && echo binary kept",
    );
    assert!(!left.contains("agent.yml") && !left.contains("lbdeploy.conf"));
    assert!(left.contains("3\nbinary kept"), "{left}");

    // Done: nothing more to do, and rs02 is not mentioned again.
    let plan = lab.lbdeploy(&["plan"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(!plan.contains("rs02"), "{plan}");
    assert!(plan.contains("Plan: 0 hosts to change, 3 unchanged"), "{plan}");

    // A rollback to a generation that had it installs it again.
    lab.lbdeploy_exit(0, &["rollback", "--to", "1", "--yes"]);
    installed("the rollback");
}

/// A removed director is retired before anything else changes: stopped,
/// the master resigns while keepalived02 still accepts its adverts, so
/// keepalived02 takes over at once, before its own configuration (which
/// no longer names keepalived01) is reloaded — as keepalived02's log
/// shows. Where other directors stay, a reconfiguration first would make
/// them drop keepalived01's adverts as a stranger's, and two would hold
/// the VIP until it stopped (here keepalived02, left alone, filters
/// nothing: the order is what this test sees).
#[test]
fn r19_a_removed_master_director_resigns_before_the_others_change() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("removed-director", Inventory::example(s));
    let vip = s.vip();
    lab.apply_until_forwarding(&vip);
    wait_sole_holder(&lab, &vip, "keepalived01", Duration::from_secs(10));

    let without: String = Inventory::example(s)
        .to_string()
        .lines()
        .filter(|l| !l.contains("name: keepalived01,"))
        .map(|l| format!("{l}\n"))
        .collect();
    lab.rewrite_inventory(&without);
    let plan = lab.lbdeploy(&["plan"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("- host keepalived01 (not in the inventory):"),
        "{plan}"
    );
    let log = || lab.exec_ok("keepalived02", "cat /run/lbdeploy/agent.log");
    let before = log().lines().count();
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    assert!(out.contains("keepalived01  changed"), "{out}");

    // The apply is over: keepalived02 alone holds the VIP and forwards.
    wait_sole_holder(&lab, &vip, "keepalived02", Duration::from_secs(1));
    assert!(lab.curl_vip().status.success(), "no traffic through keepalived02");
    let agent = lab.exec("keepalived01", "lbdeploy agent status");
    assert!(!agent.status.success(), "the agent still answers on keepalived01");
    let table = lab.exec("keepalived01", "nft list table netdev lbdeploy");
    assert!(!table.status.success(), "keepalived01 kept its nftables table");

    // In this apply, keepalived02 became master before it was
    // reconfigured.
    let log = log();
    let at = |what: &str| {
        log.lines()
            .skip(before)
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no `{what}` in:\n{log}"))
    };
    assert!(
        at("BACKUP -> MASTER") < at("reloaded /etc/lbdeploy/agent.yml"),
        "{log}"
    );
}
