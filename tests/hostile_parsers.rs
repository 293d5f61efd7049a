//! Hostile input to the parsers (issue #17, finding 7): the inventory
//! loader must refuse nesting and sizes past its named bounds quickly, with
//! the place named, in bounded memory, and load honest input in time linear
//! in its size; the keepalived.conf importer shows at most 1,000
//! diagnostics, however much junk it reads. The binary runs under `ulimit -v` and `timeout`, so a
//! regression shows as a failure here, not as a machine out of memory.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lbdeploy::inventory;

use crate::support::lab::{LBDEPLOY, TempDir};

/// The address space the binary may use: far above what a refused input
/// needs, far below what reading `/dev/zero` or a quadratic walk takes.
const MEMORY_KIB: u32 = 1 << 20;

/// How long a refusal may take; it takes milliseconds.
const SECONDS: u32 = 20;

/// `lbdeploy ARGS` under the memory and time bounds above.
fn bounded(args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_KIB}; exec timeout {SECONDS} \"$0\" \"$@\""
        ))
        .arg(LBDEPLOY)
        .args(args)
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(SECONDS.into()),
        "lbdeploy {args:?} ran into the timeout"
    );
    out
}

/// Run `validate -i file` on `text` and return the exit code and stderr.
fn validate(dir: &TempDir, text: &str) -> (Option<i32>, String) {
    let file = dir.path().join("inventory.yml");
    std::fs::write(&file, text).unwrap();
    let out = bounded(&["validate", "-i", file.to_str().unwrap()]);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn deep_block_nesting_is_refused_at_its_line() {
    let dir = TempDir::new("hostile-yaml-block");
    // 3,000 levels overflowed the stack of the position index.
    let text: String =
        (0..3_000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
    let (code, stderr) = validate(&dir, &text);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("inventory.yml:65:"), "{stderr}");
    assert!(stderr.contains("nested deeper than 64 levels"), "{stderr}");
}

#[test]
fn deep_flow_nesting_is_refused_at_its_line() {
    let dir = TempDir::new("hostile-yaml-flow");
    // 64k levels took 41 s in the deserialiser (quadratic); closed and
    // unclosed runs are both refused.
    for tail in ["", "]"] {
        let n = 1 << 16;
        let text =
            format!("cluster: x\na: {}{}\n", "[".repeat(n), tail.repeat(n));
        let (code, stderr) = validate(&dir, &text);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("inventory.yml:2:"), "{stderr}");
        assert!(stderr.contains("nested deeper than"), "{stderr}");
    }
}

#[test]
fn an_inventory_that_is_no_regular_file_is_refused_unread() {
    let dir = TempDir::new("hostile-yaml-special");
    let fifo = dir.path().join("fifo.yml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [Path::new("/dev/zero"), &fifo, dir.path()] {
        let out = bounded(&["validate", "-i", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not a regular file"), "{path:?}: {stderr}");
    }
}

#[test]
fn an_inventory_past_the_size_bound_is_refused() {
    let dir = TempDir::new("hostile-yaml-huge");
    // One byte over 16 MiB, as a comment: only the size is wrong.
    let text = format!("#{}\n", "x".repeat((16 << 20) - 1));
    let (code, stderr) = validate(&dir, &text);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("larger than 16777216 bytes"), "{stderr}");
}

/// The example inventory with `hosts` more real servers: about five lines
/// each.
fn wide(hosts: usize) -> String {
    let example = include_str!("../inventory.example.yml");
    let mut extra = String::from("real_servers:\n");
    for i in 0..hosts {
        extra.push_str(&format!(
            "  - name: w{i}\n    address: 10.{}.{}.{}/8\n    interface: \
             eth0\n    arp_suppression: sysctl\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    example.replacen("real_servers:\n", &extra, 1)
}

/// The fastest of three loads of `text`: the least disturbed by the other
/// work on the machine.
fn load_time(text: &str) -> Duration {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let loaded = inventory::load_str(
                Path::new("wide.yml"),
                text,
                Path::new("."),
                &inventory::System,
            );
            let took = started.elapsed();
            if let Err(e) = loaded {
                panic!("the wide inventory does not load:\n{e}");
            }
            took
        })
        .min()
        .unwrap()
}

#[test]
fn load_time_grows_linearly_with_the_inventory() {
    // Twice the hosts may take at most three times as long: linear with
    // slack for a shared machine; a quadratic walk takes four times.
    let small = load_time(&wide(4_000));
    let large = load_time(&wide(8_000));
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    eprintln!("4,000 hosts: {small:?}, 8,000 hosts: {large:?}, ×{ratio:.2}");
    assert!(ratio < 3.0, "{small:?} → {large:?}: ×{ratio:.2}");
}

/// One line of a million words (2 MB): the importer reads it in time
/// linear in its length. Counting each word's column from the line's
/// start took 46 s.
#[test]
fn an_import_of_one_long_line_is_linear() {
    let dir = TempDir::new("hostile-import-long-line");
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(&conf, format!("{}\n", "a ".repeat(1_000_000))).unwrap();
    let started = Instant::now();
    let out = bounded(&["import-keepalived", conf.to_str().unwrap()]);
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A keepalived.conf that includes files of junk up to the importer's
/// read bound (16 MiB): one diagnostic per line was 240,000 lines of
/// output; the first 1,000 are shown and the rest counted.
#[test]
fn an_import_of_junk_shows_a_bounded_number_of_diagnostics() {
    let dir = TempDir::new("hostile-import-junk");
    let junk: String = (0..200_000).map(|i| format!("junk_{i} x\n")).collect();
    for n in 0..6 {
        std::fs::write(dir.path().join(format!("junk{n}")), &junk).unwrap();
    }
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(&conf, format!("include {}/junk*\n", dir.path().display()))
        .unwrap();
    let out = bounded(&["import-keepalived", conf.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 1_002, "{} lines", lines.len());
    let untold = lines[lines.len() - 2];
    assert!(
        untold.starts_with("… and ")
            && untold.ends_with("only the first 1000 are kept"),
        "{untold}"
    );
    let total = stderr.matches("junk_").count();
    assert!(total <= 1_000, "{total}");
    assert!(lines[lines.len() - 1].starts_with("import failed ("), "{stderr}");
}
