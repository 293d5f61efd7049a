//! The host side of `apply` (issue #4): `lbdeploy host activate|confirm|
//! watchdog|unlock`, run for real against a scratch root
//! (`LBDEPLOY_HOST_ROOT`), plus one activation in a lab host with real
//! paths, real sysctls and a confirmation over a new SSH connection.
//!
//! Timed waits poll with a bound derived from the confirmation timeout;
//! [`Host`]'s drop kills any watchdog still waiting, even on panic.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{LBDEPLOY, TempDir, describe};
use crate::support::subnet::Subnet;

const STATE: &str = "var/lib/lbdeploy";
pub(crate) const FORWARD: &str = "proc/sys/net/ipv4/ip_forward";

/// A scratch host root; dropping it kills a waiting watchdog and removes
/// the directory.
struct Host {
    dir: TempDir,
}

impl Host {
    fn new(name: &str) -> Self {
        let host = Self { dir: TempDir::new(&format!("host-{name}")) };
        host.write(FORWARD, "0\n", 0o644);
        host
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    fn write(&self, rel: &str, content: &str, mode: u32) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap();
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path(rel)).ok()
    }

    fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel)).unwrap().permissions().mode() & 0o7777
    }

    fn mtime(&self, rel: &str) -> SystemTime {
        std::fs::metadata(self.path(rel)).unwrap().modified().unwrap()
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(LBDEPLOY)
            .args(args)
            .env("LBDEPLOY_HOST_ROOT", self.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running lbdeploy");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn activate(&self, activation: &Value) -> Output {
        self.run(&["host", "activate"], &activation.to_string())
    }

    /// Activate, which must succeed; the report.
    fn activate_ok(&self, activation: &Value) -> Value {
        let out = self.activate(activation);
        assert!(out.status.success(), "activate\n{}", describe(&out));
        serde_json::from_slice(&out.stdout).expect("a JSON report")
    }

    fn confirm(&self, n: u64) -> Output {
        self.run(&["host", "confirm", &n.to_string()], "")
    }

    fn confirm_ok(&self, n: u64) {
        let out = self.confirm(n);
        assert!(out.status.success(), "confirm {n}\n{}", describe(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("confirmed generation {n}\n")
        );
    }

    /// Poll until `cond` holds, at most `bound`.
    fn wait_until(&self, bound: Duration, what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < bound,
                "{what} not within {bound:?}; watchdog log:\n{}",
                self.read(&format!("{STATE}/watchdog.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every file under the root with its content, for "nothing changed".
    fn tree(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), &mut out);
        out.sort();
        out
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        kill_watchdog(self.read(&format!("{STATE}/pending/watchdog.pid")));
    }
}

/// Kill the watchdog whose `pending/watchdog.pid` reads `pid_file`, if any
/// (a test's host going away must not leave one waiting).
pub(crate) fn kill_watchdog(pid_file: Option<String>) {
    if let Some(pid) = pid_file
        .and_then(|p| p.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ =
            rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// An activation of generation `n` with `files` (path, mode, content).
pub(crate) fn activation(
    n: u64,
    files: &[(&str, u32, &str)],
    timeout_ms: u64,
) -> Value {
    json!({
        "apply_id": format!("apply-{n}"),
        "holder": "ops@controller pid 42: lbdeploy apply",
        "generation": n,
        "agent": "realserver",
        "service": "lbdeploy-agent",
        "config": "/etc/lbdeploy/agent.yml",
        "binary": "/usr/local/sbin/lbdeploy",
        "staged_binary": null,
        "files": files.iter().map(|(p, m, c)| json!({
            "path": p, "mode": m, "content": c
        })).collect::<Vec<_>>(),
        "sysctls": { "net.ipv4.ip_forward": "1" },
        "service_action": null,
        "confirm_timeout_ms": timeout_ms,
    })
}

pub(crate) const AGENT: &str = "/etc/lbdeploy/agent.yml";
pub(crate) const SYSCTL: &str = "/etc/sysctl.d/90-lbdeploy.conf";
/// Long enough never to expire during a test.
pub(crate) const LONG: u64 = 120_000;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn activate_then_confirm_commits_generation() {
    let h = Host::new("commit");
    let a = activation(
        1,
        &[(AGENT, 0o640, "vip: x\n"), (SYSCTL, 0o644, "s\n")],
        LONG,
    );
    let report = h.activate_ok(&a);
    assert_eq!(report["generation"], 1);
    assert_eq!(report["written"], json!([AGENT, SYSCTL]));
    assert_eq!(report["sysctls"], json!(["net.ipv4.ip_forward"]));
    assert_eq!(h.read(AGENT).as_deref(), Some("vip: x\n"));
    assert_eq!(h.mode(AGENT), 0o640);
    assert_eq!(h.read(FORWARD).as_deref(), Some("1\n"));
    assert!(h.path(&format!("{STATE}/pending/state.json")).exists());
    assert_eq!(h.read(&format!("{STATE}/generation")), None);
    assert!(!h.path(&format!("{STATE}/lock")).exists(), "lock released");

    h.confirm_ok(1);
    assert_eq!(h.read(&format!("{STATE}/generation")).as_deref(), Some("1\n"));
    assert_eq!(
        h.read(&format!("{STATE}/manifest")).unwrap(),
        format!("{AGENT}\n{SYSCTL}\n")
    );
    assert!(!h.path(&format!("{STATE}/pending")).exists());
    let gen1 = format!("{STATE}/generations/1");
    assert_eq!(h.mode(&gen1), 0o700);
    assert_eq!(
        h.read(&format!("{gen1}/etc%2Flbdeploy%2Fagent.yml")).as_deref(),
        Some("vip: x\n")
    );
    let files: Value =
        serde_json::from_str(&h.read(&format!("{gen1}/files.json")).unwrap())
            .unwrap();
    assert_eq!(files[0]["path"], AGENT);
    assert_eq!(files[0]["mode"], 0o640);
    let journal = h.read(&format!("{STATE}/journal")).unwrap();
    assert!(journal.ends_with("\t1\tconfirmed\tapply-1\n"), "{journal}");
    // Idempotent.
    h.confirm_ok(1);
}

#[test]
fn second_identical_activation_rewrites_nothing() {
    let h = Host::new("noop");
    let files = [(AGENT, 0o644, "a\n"), (SYSCTL, 0o644, "s\n")];
    h.activate_ok(&activation(1, &files, LONG));
    h.confirm_ok(1);
    let before = (h.mtime(AGENT), h.mtime(SYSCTL));
    let report = h.activate_ok(&activation(2, &files, LONG));
    assert_eq!(report["written"], json!([]));
    assert_eq!(report["removed"], json!([]));
    assert_eq!(report["sysctls"], json!([]));
    h.confirm_ok(2);
    assert_eq!((h.mtime(AGENT), h.mtime(SYSCTL)), before);
    assert_eq!(h.read(&format!("{STATE}/generation")).as_deref(), Some("2\n"));
}

#[test]
fn unconfirmed_activation_rolls_back_byte_for_byte() {
    let h = Host::new("rollback");
    let original = "hand-made\n\0 bytes\u{00e9}\n";
    h.write(AGENT, original, 0o600);
    h.write("usr/local/sbin/lbdeploy", "old binary", 0o755);
    h.write("usr/local/sbin/.lbdeploy.staged", "new binary", 0o600);
    let timeout = 300;
    let mut a = activation(
        1,
        &[(AGENT, 0o644, "new\n"), (SYSCTL, 0o644, "s\n")],
        timeout,
    );
    a["staged_binary"] = json!("/usr/local/sbin/.lbdeploy.staged");
    let report = h.activate_ok(&a);
    assert_eq!(report["binary_replaced"], true);
    assert_eq!(
        h.read("usr/local/sbin/lbdeploy").as_deref(),
        Some("new binary")
    );
    assert_eq!(h.read(AGENT).as_deref(), Some("new\n"));

    let last = format!("{STATE}/last-rollback.json");
    h.wait_until(
        Duration::from_millis(timeout) + Duration::from_secs(10),
        "the rollback",
        || !h.path(&format!("{STATE}/pending")).exists(),
    );
    assert_eq!(h.read(AGENT).as_deref(), Some(original));
    assert_eq!(h.mode(AGENT), 0o600);
    assert!(!h.path(SYSCTL).exists(), "a new file is removed again");
    assert_eq!(h.read(FORWARD).as_deref(), Some("0\n"));
    assert_eq!(
        h.read("usr/local/sbin/lbdeploy").as_deref(),
        Some("old binary")
    );
    assert_eq!(h.read(&format!("{STATE}/generation")), None);
    let record: Value = serde_json::from_str(&h.read(&last).unwrap()).unwrap();
    assert_eq!(record["generation"], 1);
    assert_eq!(record["apply_id"], "apply-1");
    assert_eq!(record["reason"], "not confirmed within 0.3s");
    let journal = h.read(&format!("{STATE}/journal")).unwrap();
    assert!(journal.ends_with("\t1\trolled back\tapply-1\n"), "{journal}");

    let out = h.confirm(1);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("generation 1 was rolled back at ")
            && stderr(&out).contains(": not confirmed within 0.3s"),
        "{}",
        describe(&out)
    );
}

#[test]
fn failing_step_rolls_back_at_once() {
    let h = Host::new("fail");
    h.write(AGENT, "old\n", 0o644);
    let mut a = activation(1, &[(AGENT, 0o644, "new\n")], LONG);
    // No such sysctl: setting it fails after the file was written.
    a["sysctls"] = json!({ "net.nonexistent.key": "1" });
    let out = h.activate(&a);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("failed and was rolled back"),
        "{}",
        describe(&out)
    );
    assert_eq!(h.read(AGENT).as_deref(), Some("old\n"));
    assert!(!h.path(&format!("{STATE}/pending")).exists());
    assert!(!h.path(&format!("{STATE}/lock")).exists());
    assert!(out.stdout.is_empty());
}

#[test]
fn dropped_file_is_removed() {
    let h = Host::new("drop");
    h.activate_ok(&activation(
        1,
        &[(AGENT, 0o644, "a\n"), (SYSCTL, 0o644, "s\n")],
        LONG,
    ));
    h.confirm_ok(1);
    let report = h.activate_ok(&activation(2, &[(AGENT, 0o644, "a\n")], LONG));
    assert_eq!(report["removed"], json!([SYSCTL]));
    assert!(!h.path(SYSCTL).exists());
    h.confirm_ok(2);
    assert_eq!(
        h.read(&format!("{STATE}/manifest")).unwrap(),
        format!("{AGENT}\n")
    );
}

#[test]
fn pending_activation_refuses_the_next() {
    let h = Host::new("pending");
    h.activate_ok(&activation(1, &[(AGENT, 0o644, "a\n")], LONG));
    let out = h.activate(&activation(2, &[(AGENT, 0o644, "b\n")], LONG));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "locked: host is waiting for confirmation of generation 1 (apply apply-1)"
        )
    );
    assert_eq!(h.read(AGENT).as_deref(), Some("a\n"));
    let out = h.confirm(2);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("generation 1 (apply apply-1) is pending"));
    h.confirm_ok(1);
}

fn write_lock(h: &Host, pid: u32) {
    let lock = json!({
        "apply_id": "other", "holder": "bob@ctl2 pid 9: lbdeploy apply",
        "pid": pid, "since": "2025-06-01T10:00:00Z",
    });
    h.write(&format!("{STATE}/lock"), &lock.to_string(), 0o644);
}

#[test]
fn locked_host_names_holder() {
    let h = Host::new("locked");
    // A live process whose command line says `host`, like an activation.
    let mut holder = Command::new("sh")
        .args(["-c", "sleep 60; : host activate"])
        .spawn()
        .unwrap();
    write_lock(&h, holder.id());
    let out = h.activate(&activation(1, &[(AGENT, 0o644, "a\n")], LONG));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "locked: host is locked by apply other (bob@ctl2 pid 9: lbdeploy \
             apply, since 2025-06-01T10:00:00Z)"
        )
    );
    assert!(!h.path(AGENT).exists());
}

#[test]
fn stale_lock_says_how_to_unlock() {
    let h = Host::new("stale");
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    write_lock(&h, pid);
    let out = h.activate(&activation(1, &[(AGENT, 0o644, "a\n")], LONG));
    assert_eq!(out.status.code(), Some(1));
    let first = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("locked: host is locked by apply other ("),
        "{first}"
    );
    assert!(
        first.ends_with(
            "which is no longer running — break the lock with `lbdeploy \
             unlock other`"
        ),
        "{first}"
    );

    let out = h.run(&["host", "unlock", "mine"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("locked by apply other (bob@ctl2"),
        "{}",
        describe(&out)
    );
    assert!(h.path(&format!("{STATE}/lock")).exists());
    let out = h.run(&["host", "unlock", "other"], "");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!h.path(&format!("{STATE}/lock")).exists());
    let out = h.run(&["host", "unlock", "other"], "");
    assert!(stderr(&out).contains("not locked"), "{}", describe(&out));

    h.activate_ok(&activation(1, &[(AGENT, 0o644, "a\n")], LONG));
    h.confirm_ok(1);
}

#[test]
fn bad_json_changes_nothing() {
    let h = Host::new("badjson");
    h.write(AGENT, "old\n", 0o644);
    let before = h.tree();
    for input in ["", "{", "{\"apply_id\": 3}", "[]"] {
        let out = h.run(&["host", "activate"], input);
        assert_eq!(out.status.code(), Some(1), "{input:?}");
        assert!(
            stderr(&out).starts_with("lbdeploy: error: "),
            "{}",
            describe(&out)
        );
    }
    let mut escape = activation(1, &[("/etc/../../outside", 0o644, "x")], LONG);
    let out = h.activate(&escape);
    assert_eq!(out.status.code(), Some(1));
    escape["files"] =
        json!([{ "path": "relative", "mode": 420, "content": "" }]);
    assert_eq!(h.activate(&escape).status.code(), Some(1));
    assert_eq!(h.tree(), before);
}

#[test]
fn confirm_of_unknown_generation_fails() {
    let h = Host::new("unknown");
    let out = h.confirm(7);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("generation 7 was never activated"),
        "{}",
        describe(&out)
    );
}

/// In a lab host: real paths, a real (per-namespace) sysctl, and the
/// confirmation over a new SSH connection from the controller.
#[test]
fn lab_activation_confirmed_over_a_new_ssh_connection() {
    let lab =
        lab_or_skip!("host-activate", Inventory::example(Subnet::allocate()));
    let dir = TempDir::new("host-lab-activation");
    let file = dir.path().join("activation.json");
    let mut a = activation(1, &[(AGENT, 0o644, "lab\n")], 60_000);
    a["sysctls"] = json!({ "net.ipv4.conf.all.arp_ignore": "1" });
    std::fs::write(&file, a.to_string()).unwrap();
    let report = lab.exec_ok(
        "rs01",
        &format!("{LBDEPLOY} host activate < {}", file.display()),
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["written"], json!([AGENT]));
    assert_eq!(
        lab.exec_ok("rs01", "cat /proc/sys/net/ipv4/conf/all/arp_ignore"),
        "1\n"
    );
    let out =
        lab.ssh("controller", "rs01", &format!("{LBDEPLOY} host confirm 1"));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(lab.exec_ok("rs01", "cat /var/lib/lbdeploy/generation"), "1\n");
    assert_eq!(lab.exec_ok("rs01", &format!("cat {AGENT}")), "lab\n");
    // Private to rs01.
    assert!(!lab.exec("rs02", &format!("test -e {AGENT}")).status.success());
}

/// Whether process `pid` catches SIGHUP (bit 0 of `SigCgt`), i.e. has
/// replaced the default, terminating disposition.
fn catches_hangup(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("SigCgt:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .is_some_and(|mask| mask & 1 != 0)
}

/// A vanishing SSH session sends SIGHUP; the activation must still end
/// whole rather than die half-way.
#[test]
fn hangup_does_not_interrupt_an_activation() {
    let h = Host::new("hangup");
    let mut child = Command::new(LBDEPLOY)
        .args(["host", "activate"])
        .env("LBDEPLOY_HOST_ROOT", h.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    h.wait_until(Duration::from_secs(10), "SIGHUP handling", || {
        catches_hangup(pid)
    });
    let raw = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(raw, rustix::process::Signal::HUP).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let a = activation(1, &[(AGENT, 0o644, "a\n")], LONG);
    stdin.write_all(a.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    h.confirm_ok(1);
}

/// A watchdog that died (host crash, OOM kill) leaves a pending
/// activation; the next activation rolls it back first, then proceeds.
#[test]
fn next_activation_rolls_back_after_a_dead_watchdog() {
    let h = Host::new("deadwatchdog");
    h.write(AGENT, "before\n", 0o644);
    h.activate_ok(&activation(1, &[(AGENT, 0o644, "one\n")], LONG));
    let pid: i32 = h
        .read(&format!("{STATE}/pending/watchdog.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let raw = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(raw, rustix::process::Signal::KILL).unwrap();
    // Gone, or a zombie until init reaps it.
    h.wait_until(Duration::from_secs(10), "the watchdog's death", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit_once(") ").is_some_and(|r| r.1.starts_with('Z'))
        })
    });
    let report = h.activate_ok(&activation(2, &[(SYSCTL, 0o644, "s\n")], LONG));
    // Generation 1 was undone (AGENT back as before), so nothing to remove.
    assert_eq!(report["removed"], json!([]));
    assert_eq!(h.read(AGENT).as_deref(), Some("before\n"));
    let record: Value = serde_json::from_str(
        &h.read(&format!("{STATE}/last-rollback.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["generation"], 1);
    assert_eq!(record["reason"], "its watchdog died before confirmation");
    h.confirm_ok(2);
}
