//! `lbdeploy lab demo` on the example inventory, as the README's first
//! command runs it: every step must behave, and nothing is left behind.

use std::process::Command;

use crate::support::lab::{
    LBDEPLOY, Remains, TempDir, describe, is_root, skip,
};

#[test]
fn the_demo_runs_every_step_on_the_example_inventory() {
    if !is_root() {
        return skip("the_demo_runs_every_step_on_the_example_inventory");
    }
    let dir = TempDir::new("demo");
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
    let out = run(&["demo", "--keep"]);
    let status = run(&["status", "--json"]);
    let down = run(&["down"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(down.status.success(), "{}", describe(&down));
    let status: serde_json::Value =
        serde_json::from_slice(&status.stdout).unwrap();
    Remains::of(&status).assert_gone();
    let said = String::from_utf8_lossy(&out.stderr);
    for step in 1..=7 {
        assert!(
            said.contains(&format!("[{step}/7]")),
            "step {step} missing: {said}"
        );
    }
    assert!(said.contains("client answered again after"), "{said}");
}
