//! Finding 8 of issue #17: exec checks, tracked scripts and hooks leak
//! processes. `sleep N | cat` run with a short timeout used to lose the
//! pipeline to init each time only `sh` was killed. Each case here runs
//! such a pipeline 20 times through what the agent runs commands with,
//! lets the timeout (or the agent's shutdown) end it, and scans `/proc`
//! for what is left.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lbdeploy::agent::alert::deliver;
use lbdeploy::agent::alert::event::{Event, What};
use lbdeploy::agent::sys::process;
use lbdeploy::agent::track::script::{self, ScriptSpec};

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
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let cmdline =
                std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let named =
                cmdline.split(|&b| b == 0).any(|arg| arg == m.as_bytes());
            let stat = std::fs::read_to_string(e.path().join("stat"))
                .unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            named && !state.is_some_and(|s| s.starts_with(['Z', 'X']))
        })
        .count()
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
    let runs = join_all((0..RUNS).map(|_| process::run(&argv, limit)));
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
        join_all((0..RUNS).map(|_| deliver::exec(&program, &event))).await;
    // The hook's own timeout ends them all together.
    assert!(started.elapsed() < Duration::from_secs(20), "not killed");
    for r in results {
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("killed, with its process group"), "{e}");
    }
    assert_eq!(settle(&m, 0, Duration::from_secs(2)), 0, "orphans left");
    std::fs::remove_dir_all(&dir).unwrap();
}
