//! Finding 8 of issue #17: exec checks, tracked scripts and hooks leak
//! processes. `sleep N | cat` run with a short timeout used to lose the
//! pipeline to init each time only `sh` was killed. Each case here runs
//! such a pipeline 20 times through what the agent runs commands with,
//! lets the timeout (or the agent's shutdown) end it, and scans `/proc`
//! for what is left.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lbdeploy::agent::alert::deliver;
use lbdeploy::agent::alert::event::{Event, What};
use lbdeploy::agent::paths::RUN_DIR_ENV;
use lbdeploy::agent::status;
use lbdeploy::agent::sys::process;
use lbdeploy::agent::track::script::{self, ScriptSpec};
use rustix::process::{Pid, Signal, kill_process};

use crate::support::lab::{LBDEPLOY, TempDir, describe};

/// How many commands each case starts at once.
const RUNS: usize = 20;

/// A `sleep` length no other process on the machine uses, so the scan
/// finds this test's processes only.
fn marker(case: u32) -> String {
    format!("31.5{}{case}", std::process::id())
}

/// The pipeline: `cat` reads the sleeper's output first, then names the
/// marker as a file, so both halves carry it on their command lines.
fn pipeline(m: &str) -> String {
    format!("sleep {m} | cat - {m}")
}

/// Live processes whose command line names `m` (zombies left for init
/// to reap do not count: they hold nothing).
fn live_with(m: &str) -> usize {
    pids_with(m).len()
}

/// The PIDs of [`live_with`]'s processes.
fn pids_with(m: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((pid, e))
        })
        .filter(|(_, e)| {
            let cmdline =
                std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let named =
                cmdline.split(|&b| b == 0).any(|arg| arg == m.as_bytes());
            let stat = std::fs::read_to_string(e.path().join("stat"))
                .unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            named && !state.is_some_and(|s| s.starts_with(['Z', 'X']))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Wait up to `limit` for the count of live processes naming `m` to
/// reach `want`; the count when it did or the time ran out.
fn settle(m: &str, want: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let n = live_with(m);
        if n == want || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_checks_killed_at_their_timeout_leave_no_processes() {
    let m = marker(1);
    let argv = ["/bin/sh", "-c", &pipeline(&m)].map(str::to_owned);
    let limit = Duration::from_millis(500);
    let runs = join_all((0..RUNS).map(|_| process::run(&argv, None, limit)));
    let watch = tokio::task::spawn_blocking({
        let m = m.clone();
        // Both halves of every pipeline are up before the timeout.
        move || settle(&m, 2 * RUNS, Duration::from_millis(400))
    });
    let started = Instant::now();
    let results = runs.await;
    assert!(started.elapsed() < Duration::from_secs(5), "not killed at once");
    assert_eq!(
        watch.await.unwrap(),
        2 * RUNS,
        "the pipelines did not all start"
    );
    for r in results {
        let e = r.unwrap_err();
        assert!(e.contains("killed, with its process group"), "{e}");
    }
    assert_eq!(settle(&m, 0, Duration::from_secs(2)), 0, "orphans left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_scripts_stopped_with_the_agent_leave_no_processes() {
    let m = marker(2);
    let spec = ScriptSpec {
        name: "chk".into(),
        argv: ["/bin/sh", "-c", &pipeline(&m)].map(str::to_owned).into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(60),
        rise: 1,
        fall: 1,
        user: None,
    };
    let trackers: Vec<_> =
        (0..RUNS).map(|_| script::spawn(spec.clone())).collect();
    let up = settle(&m, 2 * RUNS, Duration::from_secs(3));
    assert_eq!(up, 2 * RUNS, "the scripts did not all start");
    // The agent stopping drops its trackers, mid-run.
    drop(trackers);
    assert_eq!(settle(&m, 0, Duration::from_secs(2)), 0, "orphans left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_exec_hooks_killed_at_their_timeout_leave_no_processes() {
    let m = marker(3);
    let dir = std::env::temp_dir().join(format!("lbd-hostile-procs-{m}"));
    std::fs::create_dir_all(&dir).unwrap();
    let hook = dir.join("hook");
    std::fs::write(&hook, format!("#!/bin/sh\n{}\n", pipeline(&m))).unwrap();
    std::fs::set_permissions(
        &hook,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let event = Event {
        cluster: "c".into(),
        host: "h".into(),
        time: "t".into(),
        what: What::Vrrp {
            instance: "VI_1".into(),
            state: "master".into(),
            priority: 1,
        },
    };
    let program = hook.display().to_string();
    let started = Instant::now();
    let results =
        join_all((0..RUNS).map(|_| {
            deliver::exec(std::slice::from_ref(&program), None, &event)
        }))
        .await;
    // The hook's own timeout ends them all together.
    assert!(started.elapsed() < Duration::from_secs(20), "not killed");
    for r in results {
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("killed, with its process group"), "{e}");
    }
    assert_eq!(settle(&m, 0, Duration::from_secs(2)), 0, "orphans left");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ===== finding 12: the supervised agent's privileges =====

/// rs01's agent.yml as `apply` renders it (tests/golden/desired/example).
const REALSERVER: &str = "cluster: \"lvs-dr-demo\"\nhost: \"rs01\"\n\
                          interface: \"eth0\"\narp_suppression: \"sysctl\"\n\
                          vips:\n- 192.168.1.200\nkeep_vip_on_stop: false\n";

/// What the agent's capability sets must read in `/proc/PID/status`:
/// CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else.
const AGENT_CAPS: &str = "0000000000003000";

/// How long the agent may take to stop after its supervisor was killed:
/// its clean shutdown (priority-0 advert, VIPs removed) is bounded by the
/// supervisor's own stop allowance.
const ORPHAN_LIMIT: Duration = Duration::from_secs(10);

/// A supervised agent started by `agent start` in a network namespace of
/// its own (a veth `eth0` with the golden address), which it and its
/// supervisor hold; both are killed when this is dropped.
struct Supervised {
    dir: TempDir,
    supervisor: u32,
    agent: u32,
}

impl Supervised {
    fn start(mode: &str, config: &str) -> Self {
        let dir = TempDir::new(&format!("privs-{mode}"));
        let cfg = dir.path().join("agent.yml");
        std::fs::write(&cfg, config).unwrap();
        let out = Command::new("unshare")
            .args(["--net", "sh", "-c"])
            .arg(
                "ip link add eth0 type veth peer name eth0p && \
                 ip link set eth0p up && ip link set eth0 up && \
                 ip addr add 192.168.1.11/24 dev eth0 && exec \"$0\" \"$@\"",
            )
            .arg(LBDEPLOY)
            .args(["agent", "start", mode, "--config"])
            .arg(&cfg)
            .env(RUN_DIR_ENV, dir.path().join("run"))
            .output()
            .unwrap();
        let run = dir.path().join("run");
        let supervisor = std::fs::read_to_string(run.join("agent.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let agent = status::query(&run).map(|s| s.pid);
        let mut this =
            Self { dir, supervisor: supervisor.unwrap_or(0), agent: 0 };
        assert!(out.status.success(), "{}", describe(&out));
        this.agent = agent.expect("the agent answers once `start` returned");
        this
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The agent's capability sets, by name (`CapEff` …).
    fn caps(&self) -> Vec<(String, String)> {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.agent))
                .unwrap();
        text.lines()
            .filter(|l| l.starts_with("Cap"))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        for pid in [self.supervisor, self.agent] {
            if let Some(pid) = Pid::from_raw(pid as i32) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_default();
    let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
    state.is_some_and(|s| !s.starts_with(['Z', 'X']))
}

/// Whether `pid` ends within `limit`.
fn ends_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Every capability set of the agent is CAP_NET_ADMIN + CAP_NET_RAW.
fn assert_confined(host: &Supervised) {
    let caps = host.caps();
    let want: Vec<(String, String)> =
        ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
            .iter()
            .map(|k| ((*k).to_owned(), AGENT_CAPS.to_owned()))
            .collect();
    assert_eq!(caps, want);
}

/// Killing the supervisor with SIGKILL takes the agent with it.
fn assert_dies_with_its_supervisor(host: &Supervised) {
    assert!(alive(host.agent));
    signal(host.supervisor, Signal::KILL);
    assert!(ends_within(host.agent, ORPHAN_LIMIT), "the agent was orphaned");
}

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig).unwrap();
}

#[test]
fn the_supervised_realserver_keeps_net_admin_and_net_raw_only() {
    let host = Supervised::start("realserver", REALSERVER);
    assert_confined(&host);
    // With only those it still set its sysctls and put the VIP on `lo`.
    let s = status::query(&host.run_dir()).unwrap();
    assert!(s.healthy, "{s:?}");
    assert_dies_with_its_supervisor(&host);
}

/// keepalived01's agent.yml cut from the golden desired state, with
/// `instance` added to its VRRP instance.
fn golden_director(instance: &str) -> String {
    let golden = std::fs::read_to_string(
        "tests/golden/desired/example/keepalived01.txt",
    )
    .unwrap();
    let start = golden.find("=== /etc/lbdeploy/agent.yml").unwrap();
    let body = &golden[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[..body.find("\n=== ").unwrap_or(body.len())];
    body.replacen(
        "  preempt: true\n",
        &format!("  preempt: true\n{instance}"),
        1,
    )
}

/// [`golden_director`] with a notify hook that records the capabilities
/// hooks run with.
fn director_config(hook: &Path) -> String {
    golden_director(&format!("  notify: {{ master: {} }}\n", hook.display()))
}

#[test]
fn the_supervised_director_keeps_net_admin_and_net_raw_only_and_still_works() {
    let scratch = TempDir::new("privs-hook");
    let record = scratch.path().join("caps");
    let hook = scratch.path().join("hook");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ngrep CapEff /proc/self/status > {}.tmp && mv {0}.tmp {0}\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &hook,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let host = Supervised::start("director", &director_config(&hook));
    assert_confined(&host);
    // Master after the Master_Down_Interval (about 3.5 s at 1 s adverts):
    // VRRP's raw socket, the VIP and its data plane, and the hook ran.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !record.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let hooked = std::fs::read_to_string(&record).expect("the master hook ran");
    assert_eq!(hooked.trim(), format!("CapEff:\t{AGENT_CAPS}"));
    let s = status::query(&host.run_dir()).unwrap();
    assert!(s.healthy, "{s:?}");
    let details = s.details.to_string();
    assert!(
        details.contains("MASTER") || details.contains("master"),
        "{details}"
    );
    assert_dies_with_its_supervisor(&host);
}

/// A script user's hung script is killed at its timeout by the
/// supervised agent, whose capabilities are not root's: a signal to
/// another uid's process needs CAP_KILL, which the agent keeps with a
/// script user. Without it the kill failed (EPERM, ignored): the first
/// run hung the script's tracker until its `sleep` ended, and the
/// agent's stop left it behind.
#[test]
fn the_supervised_director_kills_a_script_users_hung_script() {
    let m = marker(4);
    let config = golden_director(
        "  track: { scripts: [{ name: hang, weight: -1 }] }\n",
    )
    .replacen(
        "virtual_services:\n",
        &format!(
            "vrrp_scripts:\n- {{ name: hang, command: [/bin/sh, -c, '{}'], \
             interval: 200ms, timeout: 100ms, user: nobody }}\n\
             virtual_services:\n",
            pipeline(&m)
        ),
        1,
    );
    let host = Supervised::start("director", &config);
    // A run every 200 ms, each killed at 100 ms: a new pipeline each time.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        seen.extend(pids_with(&m));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.len() >= 2 * 5, "{} processes seen in 3 s", seen.len());
    // A clean stop ends the run in flight with its pipeline.
    signal(host.supervisor, Signal::TERM);
    assert!(ends_within(host.agent, ORPHAN_LIMIT), "the agent did not stop");
    assert_eq!(settle(&m, 0, Duration::from_secs(2)), 0, "orphans left");
}
