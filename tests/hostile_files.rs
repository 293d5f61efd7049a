//! Issue #17, files: lbdeploy writing into hostile places.
//!
//! * Finding 3: `import-keepalived -o DIR/inv.yml` and `plan --out` in a
//!   world-writable directory where an attacker planted symlinks under
//!   every name an earlier version would have used: a 0600 file elsewhere
//!   stays untouched, and a symlink at the target itself is refused.
//! * Finding 9: a full disk at every step of an activation. The host's
//!   state directory is a tiny tmpfs (mounted in a private mount
//!   namespace, as a lab host's paths are), filled to leave 0, 1, 2, …
//!   pages before the activation and again between activation and
//!   confirmation. Every case ends whole: either the new generation is
//!   committed, or the host is at its previous generation byte for byte
//!   and the failure is reported; once space is freed, the next
//!   activation (numbered above every number the host has seen) converges.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::host::{AGENT, FORWARD, LONG, SYSCTL, activation, kill_watchdog};
use crate::support::inventory::Inventory;
use crate::support::lab::{LBDEPLOY, TempDir, describe};
use crate::support::subnet::Subnet;

/// How many of the next PIDs get planted names: the finding's attacker
/// covered the PIDs the writer was about to get.
const NEXT_PIDS: u32 = 200;

/// A world-writable, sticky directory (like `/tmp`) and, outside it, the
/// 0600 file the attacker wants root to overwrite.
struct Shared {
    dir: TempDir,
    secret: TempDir,
}

impl Shared {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(&format!("shared-{name}"));
        let perms = std::fs::Permissions::from_mode(0o1777);
        std::fs::set_permissions(dir.path(), perms).unwrap();
        let secret = TempDir::new(&format!("secret-{name}"));
        let s = Self { dir, secret };
        std::fs::write(s.victim(), "root's secret\n").unwrap();
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(s.victim(), perms).unwrap();
        s
    }

    fn victim(&self) -> PathBuf {
        self.secret.path().join("victim")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Symlinks to the victim under every temporary name earlier writers
    /// used for `name`: `.NAME.tmp` and `.NAME.lbdeploy-tmp.PID.N` for the
    /// next PIDs. Returns the planted names.
    fn plant(&self, name: &str) -> Vec<String> {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1000);
        let mut planted = vec![format!(".{name}.tmp")];
        for pid in last + 1..=last + NEXT_PIDS {
            for n in 0..2 {
                planted.push(format!(".{name}.lbdeploy-tmp.{pid}.{n}"));
            }
        }
        for p in &planted {
            symlink(self.victim(), self.path(p)).unwrap();
        }
        planted
    }

    fn assert_victim_untouched(&self) {
        let v = self.victim();
        assert_eq!(std::fs::read_to_string(&v).unwrap(), "root's secret\n");
        assert_eq!(mode(&v), 0o600);
    }

    /// The directory's names other than `planted`.
    fn others(&self, planted: &[String]) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !planted.contains(n))
            .collect();
        names.sort();
        names
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn import(out: &Path) -> Output {
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/import/seed-dr");
    let args = std::fs::read_to_string(case.join("input.args")).unwrap();
    Command::new(LBDEPLOY)
        .arg("import-keepalived")
        .args(args.lines())
        .arg("-o")
        .arg(out)
        .current_dir(&case)
        .output()
        .unwrap()
}

/// Finding 3, import: symlinks planted under every predictable temporary
/// name are not followed; a symlink at the target is refused by name.
#[test]
fn import_output_in_a_shared_directory_follows_no_planted_symlink() {
    let shared = Shared::new("import");
    let planted = shared.plant("inv.yml");
    let out = import(&shared.path("inv.yml"));
    assert!(out.status.success(), "{}", describe(&out));
    shared.assert_victim_untouched();
    assert_eq!(shared.others(&planted), ["inv.yml"]);
    let text = std::fs::read_to_string(shared.path("inv.yml")).unwrap();
    assert!(text.contains("directors:"), "{text}");

    let link = shared.path("linked.yml");
    symlink(shared.victim(), &link).unwrap();
    let refused = import(&link);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!("{} is a symbolic link", link.display())),
        "{said}"
    );
    shared.assert_victim_untouched();
    assert_eq!(shared.others(&planted), ["inv.yml", "linked.yml"]);
}

/// Finding 3, `plan --out` (against a lab, since a plan needs hosts):
/// planted symlinks are not followed, the saved plan is 0600, and a
/// symlink at the target is refused.
#[test]
fn saved_plan_in_a_shared_directory_follows_no_planted_symlink() {
    let lab = crate::lab_or_skip!(
        "hostile-plan-out",
        Inventory::example(Subnet::allocate())
    );
    let shared = Shared::new("plan-out");
    let planted = shared.plant("reviewed.plan");
    let saved = shared.path("reviewed.plan");
    lab.lbdeploy_exit(
        2,
        &["plan", "--detailed-exitcode", "--out", saved.to_str().unwrap()],
    );
    shared.assert_victim_untouched();
    assert_eq!(shared.others(&planted), ["reviewed.plan"]);
    assert_eq!(mode(&saved), 0o600);

    let link = shared.path("linked.plan");
    symlink(shared.victim(), &link).unwrap();
    let out = lab.lbdeploy(&["plan", "--out", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is a symbolic link"), "{said}");
    shared.assert_victim_untouched();
}

/// The state directory's tmpfs: 32 pages, room for a committed generation
/// and a pending one, and small enough to fill in a blink.
const STATE_FS: &str = "size=128k";
const STATE: &str = "var/lib/lbdeploy";
/// The page size tmpfs accounts in.
const PAGE: u64 = 4096;
/// Pages left free in the sweep: from none up to more than any step of
/// an activation or commit needs.
const SWEEP: u64 = 10;

/// A scratch host root whose state directory is a tmpfs of its own, in a
/// private mount namespace held by a `sleep`: the mount vanishes with the
/// holder, whatever happens to the test.
struct FullHost {
    dir: TempDir,
    holder: Child,
}

impl FullHost {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(&format!("enospc-{name}"));
        std::fs::create_dir_all(dir.path().join(STATE)).unwrap();
        let f = dir.path().join(FORWARD);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "0\n").unwrap();
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let h = Self { dir, holder };
        // Ready once `sleep` runs: unshare has then made its own namespace
        // and its mounts private, so ours never propagate to the machine.
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let proc = format!("/proc/{}", h.pid());
        let start = Instant::now();
        while std::fs::read_to_string(format!("{proc}/comm")).unwrap()
            != "sleep\n"
            || std::fs::read_link(format!("{proc}/ns/mnt")).unwrap() == ours
        {
            assert!(start.elapsed() < Duration::from_secs(10), "unshare");
            std::thread::sleep(Duration::from_millis(10));
        }
        let state = h.dir.path().join(STATE);
        let out = h
            .enter(&["mount", "-t", "tmpfs", "-o", STATE_FS, "tmpfs"])
            .arg(&state)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount\n{}", describe(&out));
        h
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A command run in the holder's mount namespace.
    fn enter(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.pid().to_string()).arg("-m").arg("--");
        c.args(argv).env("LBDEPLOY_HOST_ROOT", self.dir.path());
        c
    }

    /// `rel` under the root, as seen in the holder's namespace.
    fn path(&self, rel: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid()))
            .join(self.dir.path().strip_prefix("/").unwrap())
            .join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path(rel)).ok()
    }

    fn lbdeploy(&self, args: &[&str], stdin: &str) -> Output {
        let mut argv = vec![LBDEPLOY];
        argv.extend_from_slice(args);
        let mut child = self
            .enter(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn activate(&self, a: &Value) -> Output {
        self.lbdeploy(&["host", "activate"], &a.to_string())
    }

    fn confirm(&self, n: u64) -> Output {
        self.lbdeploy(&["host", "confirm", &n.to_string()], "")
    }

    /// Activate and confirm generation `n`, which must work.
    fn converge(&self, n: u64, files: &[(&str, u32, &str)]) {
        let out = self.activate(&activation(n, files, LONG));
        assert!(out.status.success(), "activate {n}\n{}", describe(&out));
        // Finding 13: the deadline is on the boot-time clock.
        let deadline = self.read(&format!("{STATE}/pending/deadline"));
        assert!(
            deadline.as_deref().is_some_and(|d| d.starts_with("boottime-ms ")),
            "{deadline:?}"
        );
        let out = self.confirm(n);
        assert!(
            out.status.success(),
            "confirm {n}\n{}\n--- watchdog log ---\n{}\n--- journal ---\n{}",
            describe(&out),
            self.read(&format!("{STATE}/watchdog.log")).unwrap_or_default(),
            self.read(&format!("{STATE}/journal")).unwrap_or_default()
        );
        assert_eq!(
            self.read(&format!("{STATE}/generation")),
            Some(format!("{n}\n"))
        );
    }

    /// Fill the state file system so that `pages` pages stay free.
    fn fill(&self, pages: u64) {
        let state = self.path(STATE);
        let st = rustix::fs::statvfs(&state).unwrap();
        let free = st.f_bavail * st.f_bsize;
        assert!(free >= pages * PAGE, "only {free} bytes free");
        let fill = vec![0u8; usize::try_from(free - pages * PAGE).unwrap()];
        std::fs::write(state.join("fill"), fill).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.path(&format!("{STATE}/fill"))).unwrap();
    }

    /// What a generation is: every file under the root but bookkeeping
    /// (journal, rollback record, watchdog log, highest number seen) and
    /// the filler. Byte for byte, with modes.
    fn generation_view(&self) -> Vec<(PathBuf, u32, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let bookkeeping = [
                    "journal",
                    "last-rollback.json",
                    "watchdog.log",
                    "generation-seen",
                    "fill",
                ];
                if p.is_dir() {
                    walk(&p, out);
                } else if !bookkeeping.contains(&name.as_str()) {
                    let m = std::fs::metadata(&p).unwrap();
                    let mode = m.permissions().mode() & 0o7777;
                    out.push((p.clone(), mode, std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path("/"), &mut out);
        out.sort();
        out
    }

    /// The next number, as the controller picks it from the facts.
    fn next_number(&self) -> u64 {
        let read = |f: &str| {
            self.read(&format!("{STATE}/{f}"))
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        read("generation").max(read("generation-seen")).unwrap_or(0) + 1
    }
}

impl Drop for FullHost {
    fn drop(&mut self) {
        kill_watchdog(self.read(&format!("{STATE}/pending/watchdog.pid")));
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Where the disk fills in [`enospc_sweep`].
#[derive(Debug, Clone, Copy)]
enum FillAt {
    /// Before `host activate`: the before-image, the lock, the staging.
    Activation,
    /// Between activation and `host confirm`: the commit.
    Commit,
}

const ONE: &[(&str, u32, &str)] =
    &[(AGENT, 0o644, "one\n"), (SYSCTL, 0o644, "s = 1\n")];
const TWO: &[(&str, u32, &str)] = &[
    (AGENT, 0o600, "two, longer\n"),
    ("/etc/lbdeploy/extra.yml", 0o644, "extra\n"),
];

/// One case: generation 1 committed, the disk filled to leave `pages`
/// pages at `at`, generation 2 tried; it ends committed, or failed with
/// the host at generation 1 byte for byte. Returns whether it failed.
fn enospc_case(at: FillAt, pages: u64) -> bool {
    let h = FullHost::new(&format!("{at:?}-{pages}"));
    h.converge(1, ONE);
    let before = h.generation_view();
    if let FillAt::Activation = at {
        h.fill(pages);
    }
    let a = h.activate(&activation(2, TWO, LONG));
    let failure = match a.status.success() {
        false => Some(a),
        true => {
            if let FillAt::Commit = at {
                h.fill(pages);
            }
            let c = h.confirm(2);
            (!c.status.success()).then_some(c)
        }
    };
    let failed = failure.is_some();
    match failure {
        Some(out) => {
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                said.contains("No space left on device"),
                "{at:?} {pages}: the failure names its cause\n{said}"
            );
            assert!(
                h.generation_view() == before,
                "{at:?} {pages}: not back at generation 1 byte for byte\n{said}"
            );
            assert!(h.read(&format!("{STATE}/pending/state.json")).is_none());
        }
        None => {
            assert_eq!(h.read(AGENT).as_deref(), Some("two, longer\n"));
            assert_eq!(h.read(SYSCTL), None);
        }
    }
    // Space back: a number the host has seen is refused, and the next
    // apply's number (above every one seen) converges.
    if h.path(&format!("{STATE}/fill")).exists() {
        h.free();
    }
    if failed
        && h.read(&format!("{STATE}/generation-seen")).as_deref() == Some("2\n")
    {
        let again = h.activate(&activation(2, TWO, LONG));
        assert!(!again.status.success(), "generation 2 reused");
        let said = String::from_utf8_lossy(&again.stderr);
        assert!(said.contains("never used twice"), "{said}");
    }
    let next = h.next_number();
    h.converge(next, TWO);
    assert_eq!(h.read(AGENT).as_deref(), Some("two, longer\n"));
    failed
}

/// Issue #17, finding 9: ENOSPC at each step of activation and commit.
#[test]
fn r17_a_full_disk_at_any_step_leaves_a_whole_generation() {
    if !crate::support::lab::is_root() {
        crate::support::lab::skip("enospc");
        return;
    }
    for at in [FillAt::Activation, FillAt::Commit] {
        let outcomes: Vec<bool> =
            (0..=SWEEP).map(|pages| enospc_case(at, pages)).collect();
        // The sweep must cross from failing to succeeding, or it tested
        // nothing.
        assert!(outcomes[0], "{at:?}: a full disk did not fail");
        assert!(!outcomes[SWEEP as usize], "{at:?}: {SWEEP} pages too few");
    }
}

/// The state of rs01 that makes up its generation, read in the lab.
fn lab_generation(lab: &crate::support::lab::TestLab) -> String {
    lab.exec_ok(
        "rs01",
        "cd /var/lib/lbdeploy && cat generation manifest && \
         for f in $(cat manifest); do echo \"== $f\"; stat -c %a \"$f\"; \
         cat \"$f\"; done",
    )
}

fn lab_number(lab: &crate::support::lab::TestLab, file: &str) -> u64 {
    lab.exec_ok("rs01", &format!("cat /var/lib/lbdeploy/{file}"))
        .trim()
        .parse()
        .unwrap()
}

/// Issue #17, finding 9, end to end through `plan` and `apply`: a host
/// stuck with an unfinished activation is planned as a change, not "no
/// changes"; a full state directory on rs01 fails the apply there (rs01
/// stays at its generation byte for byte) at whichever step it fills;
/// every number the controller hands out is new; once space is back,
/// apply converges.
#[test]
fn r17_apply_through_a_stuck_activation_and_a_full_disk() {
    let lab = crate::lab_or_skip!(
        "hostile-enospc-apply",
        Inventory::example(Subnet::allocate())
    );
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let first = lab_number(&lab, "generation");

    // A stuck activation: activated by hand, its watchdog killed.
    let file = lab.inventory().with_file_name("stuck.json");
    let stuck =
        activation(first + 1, &[("/etc/lbdeploy/stuck", 0o644, "x\n")], LONG);
    std::fs::write(&file, stuck.to_string()).unwrap();
    lab.exec_ok(
        "rs01",
        &format!("{LBDEPLOY} host activate < {}", file.display()),
    );
    lab.exec_ok(
        "rs01",
        "kill -9 $(cat /var/lib/lbdeploy/pending/watchdog.pid)",
    );
    let plan = lab.lbdeploy_exit(2, &["plan", "--detailed-exitcode"]);
    assert!(plan.contains("unfinished activation"), "{plan}");
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let after_stuck = lab_number(&lab, "generation");
    assert!(after_stuck > first + 1, "number {} reused", first + 1);
    lab.exec_ok("rs01", "test ! -e /etc/lbdeploy/stuck");
    lab.lbdeploy_exit(0, &["plan", "--detailed-exitcode"]);

    // A full disk: rs01's state directory on a small tmpfs of its own.
    lab.exec_ok(
        "rs01",
        "mkdir /run/state-save && cp -a /var/lib/lbdeploy/. /run/state-save/ \
         && mount -t tmpfs -o size=256k tmpfs /var/lib/lbdeploy \
         && cp -a /run/state-save/. /var/lib/lbdeploy/",
    );
    let mut numbers = vec![after_stuck];
    let mut failures = 0;
    for pages in 0..=SWEEP {
        // Something to change on rs01, and the disk filled to `pages`.
        lab.exec_ok(
            "rs01",
            "echo '# hand edit' >> /etc/sysctl.d/90-lbdeploy.conf",
        );
        let before = lab_generation(&lab);
        lab.exec_ok(
            "rs01",
            &format!(
                "cd /var/lib/lbdeploy && rm -f fill && \
                 avail=$(df -B1 --output=avail . | tail -1) && \
                 head -c $((avail - {pages} * {PAGE})) /dev/zero > fill"
            ),
        );
        let out = lab.lbdeploy(&["apply", "--yes"]);
        lab.exec_ok("rs01", "rm -f /var/lib/lbdeploy/fill");
        // A number that reached rs01 is never handed out again.
        let seen = lab_number(&lab, "generation-seen");
        let last = *numbers.last().unwrap();
        assert!(seen >= last, "numbers {numbers:?}, then {seen}");
        if seen > last {
            numbers.push(seen);
        }
        match out.status.code() {
            Some(0) => break,
            _ => {
                failures += 1;
                let said = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(said.contains("No space left on device"), "{said}");
                assert_eq!(
                    lab_generation(&lab),
                    before,
                    "{pages} pages\n{said}"
                );
                lab.lbdeploy_exit(2, &["plan", "--detailed-exitcode"]);
            }
        }
    }
    assert!(failures > 0, "a full disk never failed the apply");
    lab.lbdeploy_exit(0, &["plan", "--detailed-exitcode"]);
    let last = lab_number(&lab, "generation");
    assert_eq!(Some(&last), numbers.last(), "{numbers:?}");
}
