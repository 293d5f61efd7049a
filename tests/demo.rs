//! `lbdeploy lab demo` on the example inventory, as the README's first
//! command runs it: every step must behave, and nothing is left behind —
//! on namespace hosts, and on hosts booting systemd (issue #18).

use std::process::Command;

use crate::support::lab::{
    LBDEPLOY, Remains, TempDir, describe, is_root, skip,
};

/// Run `lab demo --keep ARGS` on the example inventory, check that every
/// step behaved and that `lab down` leaves nothing; what the demo said.
fn demo(name: &str, args: &[&str]) -> Option<String> {
    if !is_root() {
        skip(name);
        return None;
    }
    let dir = TempDir::new(name);
    let inventory = dir.path().join("inventory.yml");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory.example.yml");
    std::fs::copy(example, &inventory).unwrap();
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        Command::new(LBDEPLOY)
            .arg("-i")
            .arg(&inventory)
            .arg("lab")
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .output()
            .unwrap()
    };
    // --keep, so that what the lab made can be listed before it goes.
    let mut demo = vec!["demo", "--keep"];
    demo.extend_from_slice(args);
    let out = run(&demo);
    let status = run(&["status", "--json"]);
    let down = run(&["down"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(down.status.success(), "{}", describe(&down));
    let status: serde_json::Value =
        serde_json::from_slice(&status.stdout).unwrap();
    Remains::of(&status).assert_gone();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    for step in 1..=7 {
        assert!(
            said.contains(&format!("[{step}/7]")),
            "step {step} missing: {said}"
        );
    }
    eprintln!("{said}");
    Some(said)
}

#[test]
fn the_demo_runs_every_step_on_the_example_inventory() {
    let Some(said) =
        demo("the_demo_runs_every_step_on_the_example_inventory", &[])
    else {
        return;
    };
    assert!(said.contains("client answered again after"), "{said}");
    // `lbdeploy status` as the operator sees it: all well after the
    // apply; after the crash, the master's agent missed and the real
    // server down.
    let (after_apply, after_failover) =
        said.split_once("lbdeploy status, after the failover:").unwrap();
    assert!(after_apply.contains("all well"), "{said}");
    assert!(after_failover.contains("agent not answering"), "{said}");
}

/// On systemd hosts the web server is a unit the demo stops (a killed one
/// comes back), and the killed master's agent is cleaned up by the unit's
/// `ExecStopPost` and restarted by systemd, master again at once.
#[test]
fn r18_the_demo_runs_every_step_on_systemd_hosts() {
    let Some(said) = demo(
        "r18_the_demo_runs_every_step_on_systemd_hosts",
        &["--init", "systemd"],
    ) else {
        return;
    };
    assert!(said.contains("VIP released after"), "{said}");
    assert!(said.contains("resumed at once, no failover"), "{said}");
}
