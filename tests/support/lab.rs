//! A lab per test: `TestLab` brings one up from an inventory string with
//! the real `lbdeploy` binary, in a state directory of its own, and takes it
//! down again when dropped, also when the test panics (the mini-redis
//! drop-guard pattern).
//!
//! Its inventory usually comes from [`super::inventory::Inventory`] on a
//! subnet from [`super::subnet::Subnet::allocate`], so labs run in parallel
//! without sharing an address; the lab id derived from the state directory
//! keeps namespace names apart.
//! Labs need root: [`TestLab::up`] returns `None` after printing a visible
//! skip message otherwise, and the [`lab_or_skip!`] macro returns from the
//! test.
//!
//! When a helper's command fails, the panic message carries the command,
//! its output and `lab status`, so a failure in CI can be read without
//! rerunning it (ripgrep's `assert_err` habit).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;
use lbdeploy::lab::demo::kill_here;
use serde_json::Value;

/// The binary under test.
pub const LBDEPLOY: &str = env!("CARGO_BIN_EXE_lbdeploy");

/// Bring a lab up or skip the test (return) when not root; the inventory
/// is anything that displays as its YAML, such as an `Inventory`.
#[macro_export]
macro_rules! lab_or_skip {
    ($name:expr, $inventory:expr) => {
        match $crate::support::lab::TestLab::up($name, &$inventory.to_string())
        {
            Some(lab) => lab,
            None => return,
        }
    };
}

/// Whether this process may build labs.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Say that test `name` was skipped for want of root. Written to the
/// stderr handle rather than with `eprintln!`, which libtest captures and
/// shows only for failing tests: a skip must be visible in a passing run.
pub fn skip(name: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED lab test `{name}`: the lab needs root (CI runs as root)"
    );
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory named after the test. A counter makes
    /// each one unique: two tests running at once under the same name (two
    /// supervised directors, say) would otherwise share one directory and
    /// one agent socket.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        Self(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running lab; dropping it runs `lbdeploy lab down`.
pub struct TestLab {
    // Field order matters: `Drop for TestLab` runs first, then `dir` is
    // removed.
    dir: TempDir,
    inventory: PathBuf,
    state_dir: PathBuf,
    down: bool,
}

impl TestLab {
    /// Bring up the lab for `inventory` (YAML text); `None` when not root.
    ///
    /// # Panics
    /// When `lab up` fails; the message has its output.
    pub fn up(name: &str, inventory: &str) -> Option<Self> {
        Self::up_with(name, inventory, &[])
    }

    /// [`TestLab::up`] with more arguments to `lab up` (`--init systemd`).
    pub fn up_with(name: &str, inventory: &str, args: &[&str]) -> Option<Self> {
        if !is_root() {
            skip(name);
            return None;
        }
        let dir = TempDir::new(name);
        let path = dir.path().join("inventory.yml");
        std::fs::write(&path, inventory).expect("writing the inventory");
        let lab = Self {
            state_dir: dir.path().join("state"),
            inventory: path,
            dir,
            down: false,
        };
        let mut up = vec!["up"];
        up.extend_from_slice(args);
        lab.lab_ok(&up);
        Some(lab)
    }

    /// The inventory file the lab was built from.
    pub fn inventory(&self) -> &Path {
        &self.inventory
    }

    /// Replace the inventory file by `inventory`, as an operator edits it
    /// between two runs of `lbdeploy`; the lab itself stays as it is.
    pub fn rewrite_inventory(&self, inventory: &impl std::fmt::Display) {
        std::fs::write(&self.inventory, inventory.to_string())
            .expect("rewriting the inventory");
    }

    /// Run `lbdeploy -i INVENTORY ARGS...` on the controller, as an
    /// operator would.
    pub fn lbdeploy(&self, args: &[&str]) -> Output {
        let inv = self.inventory.to_string_lossy();
        let mut all = vec!["exec", "controller", "--", "lbdeploy", "-i", &inv];
        all.extend_from_slice(args);
        self.lab(&all)
    }

    /// Like [`TestLab::lbdeploy`], which must exit with `code`; its stdout.
    pub fn lbdeploy_exit(&self, code: i32, args: &[&str]) -> String {
        let out = self.lbdeploy(args);
        if out.status.code() != Some(code) {
            let status = self.lab(&["status"]);
            panic!(
                "lbdeploy {} exited {:?}, not {code}\n{}\n--- lab status ---\n{}",
                args.join(" "),
                out.status.code(),
                describe(&out),
                describe(&status)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `lbdeploy -i INVENTORY lab --state-dir DIR ARGS...`.
    pub fn lab_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(LBDEPLOY);
        c.arg("-i").arg(&self.inventory).arg("lab");
        c.arg("--state-dir").arg(&self.state_dir).args(args);
        c
    }

    /// Run a `lab` subcommand.
    pub fn lab(&self, args: &[&str]) -> Output {
        self.lab_cmd(args).output().expect("running lbdeploy")
    }

    /// Run a `lab` subcommand that must succeed; its stdout.
    pub fn lab_ok(&self, args: &[&str]) -> String {
        let out = self.lab(args);
        self.check(&format!("lbdeploy lab {}", args.join(" ")), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `lab status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.lab_cmd(&["status"]).arg("--json").output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("lab status --json: {e}\n{}", describe(&out))
        })
    }

    /// Run `sh -c CMD` inside `host`.
    pub fn exec(&self, host: &str, cmd: &str) -> Output {
        self.lab(&["exec", host, "--", "sh", "-c", cmd])
    }

    /// Run `sh -c CMD` inside `host`, which must succeed; its stdout.
    pub fn exec_ok(&self, host: &str, cmd: &str) -> String {
        let out = self.exec(host, cmd);
        self.check(&format!("on {host}: {cmd}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `CMD` on `to` over SSH from `from` (usually the controller).
    pub fn ssh(&self, from: &str, to: &str, cmd: &str) -> Output {
        self.exec(from, &format!("ssh {to} {cmd}"))
    }

    /// Fetch `url` from `from` with curl; fails on HTTP errors.
    pub fn curl(&self, from: &str, url: &str) -> Output {
        self.exec(from, &format!("curl -sS --fail --max-time 5 {url}"))
    }

    /// Who answered `count` requests for `url` from the client, each from
    /// its own source port `base…` (so each is a new flow for the
    /// director's hash); a failed request counts as "".
    pub fn answers(
        &self,
        url: &str,
        base: u16,
        count: u16,
    ) -> BTreeMap<String, usize> {
        let out = self.exec_ok(
            "client",
            &format!(
                "for p in $(seq {base} {}); do curl -s --max-time 1 --local-port $p {url} || echo; done",
                base + count - 1
            ),
        );
        let mut seen = BTreeMap::new();
        for line in out.lines() {
            *seen.entry(line.trim().to_owned()).or_default() += 1;
        }
        seen
    }

    /// `apply --yes`, then wait until keepalived01 holds `vip` and the
    /// client gets an answer through it: the election of the example
    /// cluster's master (priority 120, VRRPv2, 1 s adverts) plus start-up.
    pub fn apply_until_forwarding(&self, vip: &str) {
        self.lbdeploy_exit(0, &["apply", "--yes"]);
        let mdi =
            master_down_interval(Version::V2, 120, Duration::from_secs(1));
        within(
            mdi + Duration::from_secs(5),
            "traffic through keepalived01",
            || {
                self.exec_ok("keepalived01", "ip -o -4 addr show eth0")
                    .contains(&format!(" {vip}/"))
                    && self
                        .exec(
                            "client",
                            &format!("curl -sf --max-time 1 http://{vip}/"),
                        )
                        .status
                        .success()
            },
        );
    }

    /// Set `host`'s port on the lab's switch (`p<index>-<name>` in the
    /// switch namespace) `up` or `down`: plugging the host in or out.
    pub fn set_switch_port(&self, host: &str, state: &str) {
        let ns = self.status()["switch_netns"].as_str().unwrap().to_owned();
        let out = Command::new("ip")
            .args(["-n", &ns, "-o", "link", "show"])
            .output()
            .unwrap();
        let port = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap().to_owned())
            .find(|name| name.ends_with(&format!("-{host}")))
            .unwrap_or_else(|| panic!("no switch port for {host}"));
        let ok = Command::new("ip")
            .args(["-n", &ns, "link", "set", &port, state])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip -n {ns} link set {port} {state}");
    }

    /// Replace `host`'s lab responder by `lbdeploy lab responder ARGS`
    /// (which must name it with `--name`); returns once the new one
    /// listens. The old one is gone before the new one binds, so the port
    /// is refused only for the moment between two commands. (Two commands:
    /// the second shell's own command line names the responder and would
    /// match the first one's `pgrep`.)
    pub fn swap_responder(&self, host: &str, args: &str) {
        self.exec_ok(host, &kill_here("[l]bdeploy lab responder"));
        // Each wait gives up after 5 s, so a responder that cannot start
        // fails the test instead of hanging it.
        let port_80 = "ss -Hltn 'sport = :80' | grep -q .";
        self.exec_ok(
            host,
            &format!(
                "for i in $(seq 500); do {port_80} || break; sleep 0.01; done; \
                 setsid lbdeploy lab responder --port 80 {args} </dev/null >/dev/null 2>&1 & \
                 for i in $(seq 500); do {port_80} && exit 0; sleep 0.01; done; exit 1"
            ),
        );
    }

    /// The network namespace of lab host `host`.
    pub fn netns(&self, host: &str) -> String {
        let status = self.status();
        status["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["name"] == host)
            .and_then(|h| h["netns"].as_str())
            .unwrap_or_else(|| panic!("no host {host} in {status}"))
            .to_owned()
    }

    /// Fetch `/` through the first virtual service's VIP from the client.
    pub fn curl_vip(&self) -> Output {
        let inv = lbdeploy::inventory::load(
            &self.inventory,
            &lbdeploy::inventory::System,
        )
        .expect("the test inventory loads")
        .inventory;
        let vs = inv.virtual_services.first().expect("a virtual service");
        self.curl("client", &format!("http://{}:{}/", vs.vip, vs.first_port()))
    }

    /// Run `lab down` now (and not again on drop); its output.
    pub fn down(&mut self) -> Output {
        self.down = true;
        self.lab(&["down"])
    }

    /// Panic with everything needed to understand a failed command.
    fn check(&self, what: &str, out: &Output) {
        if !out.status.success() {
            let status = self.lab(&["status"]);
            panic!(
                "{what} failed\n{}\n--- lab status ---\n{}",
                describe(out),
                describe(&status)
            );
        }
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        // Never panic here: the test may already be panicking, and a
        // second panic would abort before the lab is gone.
        match self.lab_cmd(&["down"]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "lab down failed in {}:\n{}",
                self.dir.path().display(),
                describe(&out)
            ),
            Err(e) => eprintln!("cannot run lab down: {e}"),
        }
    }
}

/// Poll `cond` every 20 ms until it holds; how long that took. Panics,
/// naming `what`, when it does not hold within `bound`.
pub fn within(
    bound: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < bound, "{what} not within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Status, stdout and stderr of a command, for panic messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Everything of a lab `down` must remove, taken from `lab status --json`
/// while the lab is up (or half up).
pub struct Remains {
    id: String,
    pids: Vec<i64>,
    state_dir: PathBuf,
}

impl Remains {
    /// Take the inventory of lab `status`.
    pub fn of(status: &Value) -> Self {
        let pids = status["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|h| {
                h["processes"].as_array().cloned().unwrap_or_default()
            })
            .filter_map(|p| p["pid"].as_i64())
            .collect();
        Self {
            id: status["id"].as_str().expect("status has an id").to_owned(),
            pids,
            state_dir: PathBuf::from(
                status["state_dir"].as_str().expect("state_dir"),
            ),
        }
    }

    /// Assert that nothing of the lab is left: no namespace, no process,
    /// no mount in any mount namespace on the machine, no state directory.
    ///
    /// Mounts are found by source: every mount a host makes is tagged
    /// `lbd-<id>-<host>`, and each host process lives in such a mount
    /// namespace, so this also catches processes nobody recorded.
    pub fn assert_gone(&self) {
        let prefix = format!("lbd-{}", self.id);
        let netns: Vec<_> = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert!(netns.is_empty(), "namespaces left: {netns:?}");
        let alive: Vec<_> =
            self.pids.iter().filter(|p| is_running(**p)).collect();
        assert!(alive.is_empty(), "processes left: {alive:?}");
        let mut mounts = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name();
            let Some(pid) = pid.to_str().filter(|p| p.parse::<u32>().is_ok())
            else {
                continue;
            };
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                    .unwrap_or_default();
            mounts.extend(
                info.lines()
                    .filter(|l| l.contains(&format!(" {prefix}")))
                    .map(|l| format!("pid {pid}: {l}")),
            );
        }
        assert!(mounts.is_empty(), "mounts left:\n{}", mounts.join("\n"));
        assert!(
            !self.state_dir.exists(),
            "state dir {} left",
            self.state_dir.display()
        );
    }
}

/// Whether `pid` runs (a zombie awaiting its reaper does not).
fn is_running(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}
