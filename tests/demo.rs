//! `lbdeploy lab demo` on the example inventories, as the README runs
//! them: every step must behave, and nothing is left behind — the VRRP
//! story on namespace hosts and on hosts booting systemd (issue #18), and
//! the active-active story on `inventory.bgp.example.yml` (issue #20).

use std::process::Command;

use crate::support::lab::{
    LBDEPLOY, Remains, TempDir, describe, is_root, skip,
};

/// Run `lab demo --keep ARGS` on the example inventory `example` (a file
/// of the repository), check that every step behaved and that `lab down`
/// leaves nothing; what the demo said.
fn demo(name: &str, example: &str, args: &[&str]) -> Option<String> {
    if !is_root() {
        skip(name);
        return None;
    }
    // Short: BIRD's control socket in the lab's state must fit a socket
    // path (107 bytes).
    let dir = TempDir::new(example.trim_end_matches(".yml"));
    let inventory = dir.path().join("inventory.yml");
    let example = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
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
    let Some(said) = demo(
        "the_demo_runs_every_step_on_the_example_inventory",
        "inventory.example.yml",
        &[],
    ) else {
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
        "inventory.example.yml",
        &["--init", "systemd"],
    ) else {
        return;
    };
    assert!(said.contains("VIP released after"), "{said}");
    assert!(said.contains("resumed at once, no failover"), "{said}");
}

/// On the BGP example the demo tells the active-active story: the router
/// routes the VIP over all three directors, which all carry requests; a
/// director's agent killed, the router drops it within BFD's bound while
/// the client's streams and requests go on without a failure; it
/// announces again (issue #20).
#[test]
fn r20_the_demo_runs_every_step_on_the_bgp_example_inventory() {
    let Some(said) = demo(
        "r20_the_demo_runs_every_step_on_the_bgp_example_inventory",
        "inventory.bgp.example.yml",
        &[],
    ) else {
        return;
    };
    assert!(said.contains("the router's route has 3 next hops"), "{said}");
    let carried = said.split_once("the directors carried ").unwrap().1;
    for d in ["d1", "d2", "d3"] {
        assert!(carried.contains(&format!("{d} ")), "{said}");
    }
    assert!(said.contains("the router dropped d1 after"), "{said}");
    assert!(said.contains("next hops now d2, d3;"), "{said}");
    assert!(said.contains("12 streams unbroken"), "{said}");
    assert!(said.contains("answered, 0 failed"), "{said}");
    assert!(said.contains("d1 announces again: 3 next hops"), "{said}");
    let (after_apply, after_kill) =
        said.split_once("lbdeploy status, after the kill:").unwrap();
    assert!(after_apply.contains("all well"), "{said}");
    assert!(after_kill.contains("agent not answering"), "{said}");
}
