//! `lbdeploy drain` and `undrain` in the lab (issue #19, item 4), as an
//! operator takes a real server out for maintenance: rs01 drained on both
//! directors takes no new flow (the namespace lab forwards with nftables;
//! that its established flows go on is `continuity`'s test), `lbdeploy
//! status` shows it drained on
//! each and `plan` as an override of the inventory, it stays drained
//! across the master's agent restart, and undrained
//! it takes its share again. The inventory never changes. A drained file
//! a director cannot read makes its agent degraded, and is not written
//! over; `apply --undrain` clears it with every other drain.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, within};
use crate::support::subnet::Subnet;

/// How soon a drain or undrain reaches the data plane: the agent has
/// reloaded when the command returns; the forwarding loop then rebuilds
/// the table. With a loaded machine's slack.
const BOUND: Duration = Duration::from_secs(5);

/// Who answered 20 requests through the VIP, from fresh client ports
/// (`round` keeps each round's ports apart).
fn answered(lab: &TestLab, vip: &str, round: u16) -> BTreeMap<String, usize> {
    lab.answers(&format!("http://{vip}/"), 20000 + 20 * round, 20)
}

/// Whether `director`'s status says rs01 (`address`) is drained.
fn drained_on(lab: &TestLab, director: &str, address: &str) -> bool {
    let out = lab.lbdeploy(&["--json", "status"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let hosts = json["hosts"].as_array().cloned().unwrap_or_default();
    let host = hosts.iter().find(|h| h["name"] == director);
    let servers = host.map(|h| h["real_servers"].clone()).unwrap_or_default();
    servers
        .as_array()
        .into_iter()
        .flatten()
        .any(|rs| rs["address"] == address && rs["drained"] == true)
}

#[test]
fn r19_a_drained_real_server_takes_no_flow_until_undrained() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("drain", Inventory::example(s));
    let vip = s.vip();
    let rs01 = s.addr(21);
    lab.apply_until_forwarding(&vip);
    let mut round = 0;
    let mut spread = |lab: &TestLab| {
        round += 1;
        answered(lab, &vip, round)
    };
    let both = spread(&lab);
    assert!(both.contains_key("rs01") && both.contains_key("rs02"), "{both:?}");

    let out = lab.lbdeploy_exit(0, &["drain", "rs01"]);
    for d in ["keepalived01", "keepalived02"] {
        assert!(out.contains(&format!("  {d}: {rs01}: drained")), "{out}");
    }
    let only_rs02 = BTreeMap::from([("rs02".to_owned(), 20)]);
    within(BOUND, "rs01 out of the flows", || spread(&lab) == only_rs02);
    for d in ["keepalived01", "keepalived02"] {
        assert!(drained_on(&lab, d, &rs01), "{d} does not say rs01 is drained");
    }
    let text = lab.lbdeploy(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("up w0 drained"), "{text}");
    // `plan` changes nothing for it, and says so.
    let plan = lab.lbdeploy_exit(0, &["plan"]);
    assert!(plan.contains("Plan: 0 hosts to change"), "{plan}");
    for d in ["keepalived01", "keepalived02"] {
        assert!(plan.contains(&format!("\n  {d}: {rs01}\n")), "{plan}");
    }
    assert!(
        plan.contains("Drained at runtime, not by the inventory"),
        "{plan}"
    );
    // Again, waiting: nothing changes, and no director forwards rs01 a
    // packet (nftables counts packets, not connections).
    let again = lab.lbdeploy_exit(0, &["drain", "rs01", "--wait"]);
    assert!(again.contains("already drained"), "{again}");
    assert!(again.contains("no packet forwarded to it for 15s"), "{again}");

    // The master's agent restarted: still drained.
    lab.exec_ok(
        "keepalived01",
        "lbdeploy agent restart director --config /etc/lbdeploy/agent.yml",
    );
    within(BOUND, "rs02 alone after the restart", || spread(&lab) == only_rs02);
    assert!(drained_on(&lab, "keepalived01", &rs01));

    let out = lab.lbdeploy_exit(0, &["undrain", "rs01"]);
    assert!(
        out.contains(&format!("  keepalived01: {rs01}: back in service")),
        "{out}"
    );
    within(BOUND, "rs01 back in the flows", || {
        spread(&lab).contains_key("rs01")
    });
    assert!(!drained_on(&lab, "keepalived01", &rs01));

    // A drained file keepalived02 cannot read: its agent drains nothing
    // and says why; `drain` does not write over it, and says so.
    lab.exec_ok(
        "keepalived02",
        "echo '[oops' > /var/lib/lbdeploy/drained.json && lbdeploy agent reload",
    );
    let status = lab.exec("keepalived02", "lbdeploy agent status");
    assert_eq!(status.status.code(), Some(3), "not degraded");
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("/var/lib/lbdeploy/drained.json"), "{said}");
    let out = lab.lbdeploy(&["drain", "rs01"]);
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("keepalived02: FAILED")
            && said.contains("fix or remove it first"),
        "{said}"
    );
    // `apply --undrain` clears both: the drain keepalived01 took and the
    // list keepalived02 cannot read; `plan --undrain` says so first, and
    // nothing once done.
    let plan =
        lab.lbdeploy_exit(2, &["plan", "--undrain", "--detailed-exitcode"]);
    assert!(
        plan.contains(&format!(
            "~ undrain {rs01}: /var/lib/lbdeploy/drained.json"
        )) && plan.contains("~ undrain a list that does not parse"),
        "{plan}"
    );
    assert!(!plan.contains("Drained at runtime"), "{plan}");
    lab.lbdeploy_exit(0, &["apply", "--undrain", "--yes"]);
    within(BOUND, "rs01 back after apply --undrain", || {
        spread(&lab).contains_key("rs01")
    });
    for d in ["keepalived01", "keepalived02"] {
        assert!(!drained_on(&lab, d, &rs01), "{d} still drains rs01");
        lab.exec_ok(
            d,
            "lbdeploy agent status && ! test -e /var/lib/lbdeploy/drained.json",
        );
    }
    let plan = lab.lbdeploy_exit(0, &["plan", "--undrain"]);
    assert!(plan.contains("Plan: 0 hosts to change"), "{plan}");

    // A host the inventory does not have: refused before any director.
    let out = lab.lbdeploy(&["drain", "rs09"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("`rs09` is not a real server"), "{said}");
}
