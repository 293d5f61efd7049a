//! Issue #17, files: lbdeploy writing into hostile places.
//!
//! * Findings 3: `import-keepalived -o DIR/inv.yml` and `plan --out` in a
//!   world-writable directory where an attacker planted symlinks under
//!   every name an earlier version would have used: a 0600 file elsewhere
//!   stays untouched, and a symlink at the target itself is refused.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
