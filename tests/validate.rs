//! `lbdeploy validate`: the example is clean, and every bad inventory under
//! `tests/golden/validate/` reports its exact field paths, lines and
//! messages.

use std::path::Path;
use std::process::Command;

use lbdeploy::inventory::{self, Environment};

use crate::golden;

/// A controller environment where exactly one secret variable is set and no
/// secret file exists, so the secret checks are deterministic.
struct TestEnv;

impl Environment for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        (name == "LBDEPLOY_TEST_PASSWORD").then(|| "secret".to_owned())
    }

    fn read_file(&self, _: &Path) -> Option<String> {
        None
    }
}

/// Load a case and render what `validate` prints for it.
fn render(input: &Path) -> String {
    let source = std::fs::read_to_string(input).expect("case input");
    let name = Path::new("input.yml");
    match inventory::load_str(name, &source, Path::new("."), &TestEnv) {
        Ok(loaded) => loaded.warnings.to_string(),
        Err(inventory::Error::Invalid(d)) => d.to_string(),
        Err(e) => panic!("{}: unexpected {e}", input.display()),
    }
}

#[test]
fn bad_inventories_report_located_messages() {
    let cases = golden::cases("validate");
    assert!(cases.len() >= 26, "the table needs at least 25 bad inventories");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let actual = render(&case.join("input.yml"));
            golden::check(&case.join("expected.txt"), &actual).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_case_fails_and_the_valid_one_passes() {
    for case in golden::cases("validate") {
        let source = std::fs::read_to_string(case.join("input.yml")).unwrap();
        let loaded = inventory::load_str(
            Path::new("input.yml"),
            &source,
            Path::new("."),
            &TestEnv,
        );
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect_ok = name.starts_with("valid") || name.ends_with("-warning");
        assert_eq!(loaded.is_ok(), expect_ok, "{name}");
    }
}

#[test]
fn five_errors_are_all_reported() {
    for case in ["five-errors", "five-load-errors"] {
        let input = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/validate")
            .join(case)
            .join("input.yml");
        let out = render(&input);
        assert_eq!(out.matches(": error: ").count(), 5, "{case}:\n{out}");
    }
}

fn lbdeploy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("lbdeploy runs")
}

#[test]
fn example_inventory_validates_clean() {
    let out =
        lbdeploy(&["-i", "inventory.example.yml", "validate", "--strict"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("valid (0 error(s), 0 warning(s))"), "{stderr}");
}

#[test]
fn bad_inventory_exits_1_with_located_errors() {
    let case = "tests/golden/validate/five-errors/input.yml";
    let out = lbdeploy(&["-i", case, "validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{case}:6:5: error: directors[0].priority: priority 255 is \
             reserved for the owner"
        )),
        "{stderr}"
    );
}

#[test]
fn warnings_fail_only_with_strict() {
    let case = "tests/golden/validate/priority-tie-warning/input.yml";
    assert_eq!(lbdeploy(&["-i", case, "validate"]).status.code(), Some(0));
    let strict = lbdeploy(&["-i", case, "validate", "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("invalid with --strict"), "{stderr}");
}

#[test]
fn json_output_is_data_on_stdout() {
    let case = "tests/golden/validate/weight-negative/input.yml";
    let out = lbdeploy(&["-i", case, "--json", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let first = &doc["diagnostics"][0];
    assert_eq!(first["path"], "virtual_services[0].real_servers[0].weight");
    assert_eq!(first["line"], 38);
    assert_eq!(first["severity"], "error");
}

#[test]
fn missing_default_inventory_suggests_the_example() {
    let dir = std::env::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
        .arg("validate")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-i inventory.example.yml"), "{stderr}");
}

#[test]
fn example_round_trips_through_yaml() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yml");
    let loaded = inventory::load(&path, &TestEnv).expect("example loads");
    let yaml = serde_yaml::to_string(&loaded.inventory).unwrap();
    let again = inventory::load_str(&path, &yaml, Path::new("."), &TestEnv)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again.inventory, loaded.inventory);
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let bash = lbdeploy(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&bash.stdout).contains("import-keepalived")
    );
    let man = lbdeploy(&["manpage"]);
    assert!(
        String::from_utf8_lossy(&man.stdout).starts_with(".ie \\n(.g .ds Aq")
    );
}
