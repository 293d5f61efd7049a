//! `lbdeploy import-keepalived` (issue #9), run as the real binary.
//!
//! Each folder of `tests/golden/import/<case>/` holds the command's
//! arguments (`input.args`, one per line, run from that folder), the files
//! they name (`input.*`), and what it must print: `expected.yml` (stdout;
//! absent when the import fails) and `expected.stderr`. A case succeeds
//! with exit 0 exactly when it has an `expected.yml`, which must also load
//! and validate as an inventory. `LBDEPLOY_UPDATE_GOLDEN=1` rewrites the
//! expected files; review their diff like code.

use std::path::{Path, PathBuf};
use std::process::Command;

use lbdeploy::inventory::{self, Inventory};

use crate::golden;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/import")
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Run the binary from `dir` with the arguments of `input.args`.
fn run_case(dir: &Path) -> Run {
    let args = std::fs::read_to_string(dir.join("input.args")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
        .arg("import-keepalived")
        .args(args.lines().filter(|l| !l.is_empty()))
        .current_dir(dir)
        .output()
        .unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn load(name: &str, text: &str) -> Inventory {
    inventory::load_str(
        Path::new(name),
        text,
        Path::new("."),
        &inventory::System,
    )
    .unwrap_or_else(|e| panic!("{name} does not load:\n{e}"))
    .inventory
}

fn check_case(dir: &Path) -> Result<(), String> {
    let run = run_case(dir);
    let expected_status = i32::from(!dir.join("expected.yml").exists());
    let updating = std::env::var_os("LBDEPLOY_UPDATE_GOLDEN").is_some();
    if !updating && run.status != expected_status {
        return Err(format!(
            "exit status {} instead of {expected_status}\n{}",
            run.status, run.stderr
        ));
    }
    golden::check(&dir.join("expected.yml"), &run.stdout)?;
    golden::check(&dir.join("expected.stderr"), &run.stderr)?;
    if run.status == 0 {
        load("expected.yml", &run.stdout);
    }
    Ok(())
}

#[test]
fn golden_cases() {
    let dirs = golden::cases("import");
    assert!(dirs.len() >= 15, "issue #9 asks for at least 15 cases");
    let failures: Vec<_> = dirs
        .iter()
        .filter_map(|d| {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            check_case(d).err().map(|e| format!("== {name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The seed cluster written as keepalived.conf for both directors imports
/// into exactly `inventory.example.yml`, comments aside.
#[test]
fn seed_round_trips_to_the_example_inventory() {
    let run = run_case(&cases_dir().join("seed-dr"));
    assert_eq!(run.status, 0, "{}", run.stderr);
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yml");
    let example = std::fs::read_to_string(example).unwrap();
    assert_eq!(
        load("imported", &run.stdout),
        load("inventory.example.yml", &example)
    );
}

/// The blog's published configuration forgets the `}` of the first
/// real_server: the error says where, in which block, and what to do.
#[test]
fn published_seed_config_gets_the_missing_brace_hint() {
    let run = run_case(&cases_dir().join("seed-blog-brace"));
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains(
            "input.keepalived01.conf:41:1: error: real_server 192.168.1.22 80 \
             opened inside real_server 192.168.1.21 80 (line 34): a closing \
             brace is probably missing before line 41"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn output_file_is_written_and_strict_refuses_warnings() {
    let dir = cases_dir().join("seed-dr");
    let args = std::fs::read_to_string(dir.join("input.args")).unwrap();
    let out = std::env::temp_dir()
        .join(format!("lbdeploy-import-{}.yml", std::process::id()));
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
            .arg("import-keepalived")
            .args(args.lines())
            .args(extra)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let written = run(&["-o", out.to_str().unwrap()]);
    assert_eq!(written.status.code(), Some(0));
    assert!(written.stdout.is_empty(), "-o keeps stdout empty");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(
        "# from input.keepalived01.conf:13, input.keepalived02.conf:13"
    ));
    std::fs::remove_file(&out).unwrap();
    let strict = run(&["--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(strict.stdout.is_empty());
}

/// Issue #21: `--json` is a report on stdout, nothing on stderr: the
/// inventory when one was made, every diagnostic located, and counts that
/// agree with them.
#[test]
fn json_reports_the_inventory_and_every_diagnostic() {
    let json = |case: &str, extra: &[&str]| {
        let dir = cases_dir().join(case);
        let args = std::fs::read_to_string(dir.join("input.args")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
            .args(["--json", "import-keepalived"])
            .args(args.lines().filter(|l| !l.is_empty()))
            .args(extra)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let counted = |severity: &str| {
            doc["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["severity"] == severity)
                .count() as u64
        };
        assert_eq!(doc["errors"].as_u64(), Some(counted("error")), "{doc}");
        assert_eq!(doc["warnings"].as_u64(), Some(counted("warning")), "{doc}");
        (out.status.code(), doc)
    };
    let (code, doc) = json("seed-dr", &[]);
    assert_eq!(code, Some(0));
    assert_eq!(doc["imported"], true);
    assert!(doc["warnings"].as_u64().unwrap() > 0, "{doc}");
    let text = run_case(&cases_dir().join("seed-dr")).stdout;
    assert_eq!(doc["inventory"].as_str(), Some(text.as_str()));
    assert_eq!(doc["counts"]["directors"], 2);

    let (code, doc) = json("seed-dr", &["--strict"]);
    assert_eq!((code, &doc["imported"]), (Some(1), &false.into()));
    assert!(doc["inventory"].is_null());

    let (code, doc) = json("seed-blog-brace", &[]);
    assert_eq!((code, &doc["imported"]), (Some(1), &false.into()));
    assert!(
        doc["diagnostics"].as_array().unwrap().iter().any(|d| {
            d["file"] == "input.keepalived01.conf"
                && d["line"] == 41
                && d["column"] == 1
                && d["severity"] == "error"
        }),
        "{doc}"
    );
}

/// The whole migration an operator makes: import the seed cluster's
/// keepalived.conf files and rc.local scripts, validate the result, plan it
/// against a lab whose rs01 still carries the old set-up's VIP on
/// `eth0:1`, and apply it: rs01 is left alone with the reason until the
/// operator removes that address, then everything converges.
#[test]
fn imported_seed_cluster_validates_plans_and_applies_in_a_lab() {
    let run = run_case(&cases_dir().join("seed-dr"));
    assert_eq!(run.status, 0, "{}", run.stderr);
    let lab = crate::lab_or_skip!("import-apply", run.stdout);
    let validate = Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
        .arg("-i")
        .arg(lab.inventory())
        .arg("validate")
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        crate::support::lab::describe(&validate)
    );
    // What the blog's script left: `ifconfig eth0:1 $VIP up` from rc.local.
    let old_vip = "ip addr add 192.168.1.200/24 dev eth0 label eth0:1";
    lab.exec_ok("rs01", old_vip);
    let plan = lab.lbdeploy_exit(2, &["plan", "--detailed-exitcode"]);
    assert!(
        plan.contains("Plan: 4 hosts to change, 0 unchanged, 0 unreachable."),
        "{plan}"
    );
    assert!(
        plan.contains("  ! VIP 192.168.1.200/24 is on eth0 (label eth0:1), left by the old set-up"),
        "{plan}"
    );
    let out = lab.lbdeploy_exit(3, &["apply", "--yes"]);
    assert!(
        out.contains("failed: left untouched: VIP 192.168.1.200/24 is on eth0"),
        "{out}"
    );
    assert!(
        lab.exec("rs01", "test -e /etc/lbdeploy/agent.yml").status.code()
            == Some(1),
        "rs01 was changed"
    );
    lab.exec_ok("rs01", "ip addr del 192.168.1.200/24 dev eth0");
    // rs02 converged in the first apply; the rest now.
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    assert!(out.contains("Apply: 3 changed, 1 ok; generation"), "{out}");
    lab.lbdeploy_exit(0, &["plan", "--detailed-exitcode"]);
}

/// A keepalived.conf may come from anyone and the import may run as root:
/// an `include` of a file that is no configuration (`/etc/shadow`, here a
/// look-alike) must not copy its lines into warnings or the inventory,
/// and `include /dev/zero` is refused before a byte is read.
#[test]
fn an_included_secret_file_is_never_echoed() {
    let dir = std::env::temp_dir()
        .join(format!("lbdeploy-import-shadow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let secret = "root:$y$j9T$s3cr3tHash$w0rd:19000:0:99999:7:::";
    std::fs::write(dir.join("shadow"), format!("{secret}\nhunter2 x\n"))
        .unwrap();
    let seed = cases_dir().join("seed-dr/input.keepalived01.conf");
    let mut conf = std::fs::read_to_string(seed).unwrap();
    // At the top level, and inside global_defs (its catch-all once quoted
    // what it did not know).
    conf.push_str(
        "include shadow\nglobal_defs {\n include shadow\n}\ninclude /dev/zero\n",
    );
    std::fs::write(dir.join("keepalived.conf"), conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
        .args(["import-keepalived", "keepalived.conf"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for word in ["s3cr3t", "root:", "hunter2"] {
        assert!(!all.contains(word), "{word} echoed:\n{all}");
    }
    assert!(all.contains("/dev/zero: not a regular file"), "{all}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `include /*/*/*/*` walks the whole file system, `/proc` and its
/// thousands of entries a process included: the expansion is refused at
/// its bound of listed entries, at once and naming it, instead of reading
/// for minutes what it finds.
#[test]
fn an_include_pattern_over_the_whole_file_system_is_refused() {
    let dir = std::env::temp_dir()
        .join(format!("lbdeploy-import-wide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = cases_dir().join("seed-dr/input.keepalived01.conf");
    let mut conf = std::fs::read_to_string(seed).unwrap();
    conf.push_str("include /*/*/*/*\n");
    std::fs::write(dir.join("keepalived.conf"), conf).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lbdeploy"))
        .args(["import-keepalived", "keepalived.conf"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "`include /*/*/*/*` is not read: with the includes before it, it \
             lists more than 10000 directory entries"
        ),
        "{said}"
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
