//! One tracking script, keepalived's `vrrp_script`: a command run every
//! `interval`, OK after `rise` consecutive successes and failed after
//! `fall` consecutive failures ([`RiseFall`], shared with the health
//! checks). It starts OK, as keepalived's scripts do without
//! `init_fail`, so a director that restarts does not give up its VIPs
//! while its first runs are under way.
//!
//! Each script is one task of its own, so a slow or hung script delays
//! nothing but itself — never the VRRP loop that reads its state. The
//! command runs through [`sys::process`](crate::agent::sys::process):
//! from its argv, no shell unless the argv names one, in its own process
//! group that is killed whole at `timeout`.
//!
//! Runs never overlap: the task awaits each run before it schedules the
//! next. The next run starts `interval` after the previous one
//! *started* — so the cadence, and with it the `fall × interval` it
//! takes to notice a failure, does not stretch by the script's own
//! run time — or at once when the previous run took longer than that:
//! a script slower than its interval is run back to back rather than
//! skipped, since skipping would only delay the verdict further.

use std::time::Duration;

use super::Tracker;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::agent::check::health::RiseFall;
use crate::agent::sys::process;
use crate::inventory::ScriptUser;

/// A script to track, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// Its name (`chk_haproxy`), in log lines and status.
    pub name: String,
    /// The command: a program and its arguments, run without a shell.
    pub argv: Vec<String>,
    /// From one run's start to the next's.
    pub interval: Duration,
    /// How long a run may take before it is killed and counts as failed.
    pub timeout: Duration,
    /// Consecutive successes that make a failed script OK again.
    pub rise: u32,
    /// Consecutive failures that make an OK script failed.
    pub fall: u32,
    /// Who runs it; the agent's user when `None`.
    pub user: Option<ScriptUser>,
}

/// What a tracked script says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptState {
    /// OK, after rise/fall.
    pub ok: bool,
    /// Why the last run failed; `None` once a run succeeds.
    pub error: Option<String>,
}

/// Start tracking `spec`; its first run starts at once. Dropping the
/// tracker kills a run under way, with its process group.
pub fn spawn(spec: ScriptSpec) -> Tracker<ScriptState> {
    let (tx, state) = watch::channel(ScriptState { ok: true, error: None });
    Tracker::new(state, tokio::spawn(track(spec, tx)))
}

/// Run `spec` for ever, publishing its state on `tx`.
async fn track(spec: ScriptSpec, tx: watch::Sender<ScriptState>) {
    let name = &spec.name;
    let mut verdict = RiseFall::new(spec.rise, spec.fall);
    loop {
        let started = Instant::now();
        let result =
            process::run(&spec.argv, spec.user.as_ref(), spec.timeout).await;
        match (verdict.record(result.is_ok()), &result) {
            (Some(false), Err(e)) => {
                let n = spec.fall.max(1);
                let s = if n == 1 { "" } else { "s" };
                tracing::warn!(
                    script = %name,
                    "script {name}: failed ({e}) after {n} failure{s}"
                );
            }
            (Some(true), _) => {
                tracing::info!(script = %name, "script {name}: ok again");
            }
            _ => {}
        }
        let now = ScriptState { ok: verdict.is_up(), error: result.err() };
        tx.send_if_modified(|state| {
            let changed = *state != now;
            *state = now;
            changed
        });
        tokio::time::sleep_until(started + spec.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::agent::sys::process::testing::{pids_in, scratch, survivors};

    fn spec(argv: &[&str], interval_ms: u64, timeout_ms: u64) -> ScriptSpec {
        ScriptSpec {
            name: "chk_test".into(),
            argv: argv.iter().map(|&w| w.to_owned()).collect(),
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            rise: 1,
            fall: 1,
            user: None,
        }
    }

    /// Poll `cond` every 20 ms for up to 10 s.
    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not within 10 s: {what}");
    }

    /// The lines of `file`.
    fn lines(file: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    /// How many of `log`'s last lines in a row are `word`.
    fn trailing(log: &[String], word: &str) -> usize {
        log.iter().rev().take_while(|l| *l == word).count()
    }

    /// The state after its next change, within 10 s.
    async fn next_state(t: &mut Tracker<ScriptState>) -> ScriptState {
        let changed = t.state.changed();
        let waited = tokio::time::timeout(Duration::from_secs(10), changed);
        waited.await.expect("no change within 10 s").expect("task gone");
        t.state.borrow_and_update().clone()
    }

    #[tokio::test]
    async fn fails_after_fall_failures_and_recovers_after_rise_successes() {
        let dir = scratch("track-rise-fall");
        let (up, log) = (dir.join("up"), dir.join("log"));
        std::fs::write(&up, "").unwrap();
        // Succeeds while `up` exists, and logs each result.
        let text = format!(
            "if test -e {up}; then echo ok >> {log}; else \
             echo fail >> {log}; exit 1; fi",
            up = up.display(),
            log = log.display()
        );
        let mut s = spec(&["/bin/sh", "-c", &text], 100, 1_000);
        (s.rise, s.fall) = (2, 3);
        let mut t = spawn(s);
        assert!(t.state.borrow().ok, "starts OK");
        eventually("a first run", || !lines(&log).is_empty()).await;

        std::fs::remove_file(&up).unwrap();
        let failed = next_state(&mut t).await;
        assert_eq!(failed.error.as_deref(), Some("exit status 1"));
        if failed.ok {
            // The first failure is published before the verdict turns.
            let fails = trailing(&lines(&log), "fail");
            assert!((1..=2).contains(&fails), "ok after {fails} failures");
            let failed = next_state(&mut t).await;
            assert!(!failed.ok, "{failed:?}");
        }
        // Runs start 100 ms apart: at most one more has run since.
        let fails = trailing(&lines(&log), "fail");
        assert!((3..=4).contains(&fails), "failed after {fails} failures");

        std::fs::write(&up, "").unwrap();
        let first = next_state(&mut t).await;
        assert_eq!(first, ScriptState { ok: false, error: None });
        let ok = next_state(&mut t).await;
        assert_eq!(ok, ScriptState { ok: true, error: None });
        let oks = trailing(&lines(&log), "ok");
        assert!((2..=3).contains(&oks), "ok after {oks} successes");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_hung_script_killed_twenty_times_leaves_no_orphans() {
        let dir = scratch("track-hang");
        let pids = dir.join("pids");
        let text =
            format!("sleep 30 & echo $! >> {}; sleep 30", pids.display());
        let mut t = spawn(spec(&["/bin/sh", "-c", &text], 10, 100));
        let failed = next_state(&mut t).await;
        assert!(!failed.ok);
        let e = failed.error.unwrap_or_default();
        assert!(e.contains("killed, with its process group"), "{e}");
        eventually("20 runs", || pids_in(&pids).len() >= 20).await;
        drop(t);
        // Let the runtime drop the aborted task, and its run under way.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let forked = pids_in(&pids);
        assert!(forked.len() >= 20, "{} runs", forked.len());
        assert_eq!(survivors(&forked), Vec::<u32>::new(), "orphans");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn runs_never_overlap() {
        let dir = scratch("track-overlap");
        let (lock, log) = (dir.join("lock"), dir.join("log"));
        // Takes 200 ms, four times its interval; a second run while one
        // is under way finds the lock taken and says so.
        let text = format!(
            "mkdir {lock} || {{ echo overlap >> {log}; exit 1; }}; \
             echo start >> {log}; sleep 0.2; echo end >> {log}; rmdir {lock}",
            lock = lock.display(),
            log = log.display()
        );
        let t = spawn(spec(&["/bin/sh", "-c", &text], 50, 1_000));
        let ends = || lines(&log).iter().filter(|l| *l == "end").count();
        eventually("5 runs", || ends() >= 5).await;
        drop(t);
        let log = lines(&log);
        assert!(!log.iter().any(|l| l == "overlap"), "{log:?}");
        for (i, l) in log.iter().enumerate() {
            let want = if i % 2 == 0 { "start" } else { "end" };
            assert_eq!(l, want, "line {i} of {log:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn runs_start_an_interval_apart_whatever_they_take() {
        let dir = scratch("track-cadence");
        let starts = dir.join("starts");
        // Takes 150 ms of its 300 ms interval: starting the next run
        // 300 ms after this one ended would put starts 450 ms apart.
        let text = format!("date +%s%N >> {}; sleep 0.15", starts.display());
        let t = spawn(spec(&["/bin/sh", "-c", &text], 300, 1_000));
        eventually("4 runs", || lines(&starts).len() >= 4).await;
        drop(t);
        let ns: Vec<u128> =
            lines(&starts).iter().map(|l| l.parse().unwrap()).collect();
        for w in ns.windows(2) {
            let gap = Duration::from_nanos((w[1] - w[0]) as u64);
            assert!(
                (290..440).contains(&gap.as_millis()),
                "runs started {gap:?} apart: {ns:?}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
