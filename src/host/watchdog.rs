//! The watchdog: the detached process that ends a pending activation,
//! committing it once `host confirm` has marked it, rolling it back at the
//! deadline otherwise.
//!
//! Its choice is [`decide`], a pure function of what it observes, so the
//! same rule serves the watchdog, `host confirm` (finishing for a dead
//! watchdog) and the next activation (cleaning up after a crash).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::layout::Layout;
use super::lock::process_alive;
use super::rollback;
use super::snapshot::{self, Pending};
use crate::util::files;

/// How often the watchdog looks for the confirmation.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// What a pending activation's observer should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep the activation: it was confirmed.
    Commit,
    /// Undo it: the deadline passed without confirmation.
    RollBack,
    /// Look again later (no later than the deadline).
    Wait(Duration),
}

/// The step for a pending activation with deadline `deadline_ms` (Unix
/// milliseconds), at `now_ms`. A confirmation seen wins even after the
/// deadline: it was given, and the host has not yet started undoing.
pub fn decide(confirmed: bool, now_ms: u64, deadline_ms: u64) -> Step {
    if confirmed {
        Step::Commit
    } else if now_ms >= deadline_ms {
        Step::RollBack
    } else {
        Step::Wait(Duration::from_millis(deadline_ms - now_ms).min(POLL))
    }
}

/// What to do on finding a pending activation when starting a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Its watchdog still runs: refuse the new activation.
    Refuse,
    /// Its watchdog died: finish its job now.
    Finish(Step),
}

/// The recovery for a pending activation whose watchdog is (not) alive.
/// A dead watchdog's job is done at once: commit when confirmed, roll back
/// otherwise, deadline or not, since nobody would watch the deadline.
pub(crate) fn recover(watchdog_alive: bool, confirmed: bool) -> Recovery {
    match (watchdog_alive, confirmed) {
        (true, _) => Recovery::Refuse,
        (false, true) => Recovery::Finish(Step::Commit),
        (false, false) => Recovery::Finish(Step::RollBack),
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The reason recorded when nobody confirmed within `ms`.
pub(crate) fn timeout_reason(ms: u64) -> String {
    let secs = ms as f64 / 1000.0;
    format!("not confirmed within {secs}s")
}

/// Whether the pending activation's watchdog runs.
pub(crate) fn watchdog_alive(layout: &Layout) -> bool {
    files::read_text_opt(&layout.pending_watchdog())
        .ok()
        .flatten()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| process_alive(pid, "watchdog"))
}

/// Whether `host confirm` marked the pending activation.
pub fn confirmed(layout: &Layout) -> bool {
    layout.pending_confirmed().exists()
}

/// Carry out `step` for `pending` (nothing for `Wait`).
///
/// # Errors
/// When the commit or rollback fails.
pub(crate) fn carry_out(
    layout: &Layout,
    pending: &Pending,
    step: Step,
) -> anyhow::Result<()> {
    match step {
        Step::Commit => rollback::commit(layout, pending),
        Step::RollBack => rollback::roll_back(
            layout,
            pending,
            &timeout_reason(pending.activation.confirm_timeout_ms),
        ),
        Step::Wait(_) => Ok(()),
    }
}

/// Start the watchdog, detached from the SSH session: its own process
/// group, stdin from /dev/null, output to `$STATE/watchdog.log`; and
/// record its PID.
///
/// # Errors
/// When it cannot be started.
pub fn spawn(layout: &Layout) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = files::open_append(&layout.watchdog_log(), 0o600)
        .context("opening the watchdog log")?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let child = Command::new(exe)
        .args(["host", "watchdog"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the watchdog")?;
    let pid = child.id();
    files::write_atomic(
        &layout.pending_watchdog(),
        format!("{pid}\n").as_bytes(),
        0o644,
    )?;
    Ok(pid)
}

/// `host watchdog`: wait for the confirmation, then commit or roll back.
///
/// # Errors
/// When the pending state cannot be read, or the commit or rollback fails
/// (then `pending/` stays for the next activation to finish).
pub fn run(layout: &Layout) -> anyhow::Result<()> {
    let deadline: u64 = files::read_text_opt(&layout.pending_deadline())?
        .context("no pending deadline")?
        .trim()
        .parse()
        .context("a corrupt pending deadline")?;
    loop {
        let Some(pending) = snapshot::load(layout)? else {
            // Someone else (a confirm for a dead watchdog) finished it.
            return Ok(());
        };
        match decide(confirmed(layout), now_ms(), deadline) {
            Step::Wait(d) => std::thread::sleep(d),
            step => {
                let g = pending.activation.generation;
                eprintln!("watchdog: generation {g}: {step:?}");
                return carry_out(layout, &pending, step);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_commits_even_late() {
        assert_eq!(decide(true, 10, 100), Step::Commit);
        assert_eq!(decide(true, 200, 100), Step::Commit);
    }

    #[test]
    fn deadline_rolls_back() {
        assert_eq!(decide(false, 100, 100), Step::RollBack);
        assert_eq!(decide(false, 101, 100), Step::RollBack);
    }

    #[test]
    fn waits_no_longer_than_the_deadline_or_a_poll() {
        assert_eq!(decide(false, 0, 30), Step::Wait(Duration::from_millis(30)));
        assert_eq!(decide(false, 0, 10_000), Step::Wait(POLL));
    }

    #[test]
    fn live_watchdog_refuses_dead_one_is_finished() {
        assert_eq!(recover(true, false), Recovery::Refuse);
        assert_eq!(recover(true, true), Recovery::Refuse);
        assert_eq!(recover(false, true), Recovery::Finish(Step::Commit));
        assert_eq!(recover(false, false), Recovery::Finish(Step::RollBack));
    }

    #[test]
    fn reason_in_seconds() {
        assert_eq!(timeout_reason(300), "not confirmed within 0.3s");
        assert_eq!(timeout_reason(30_000), "not confirmed within 30s");
    }
}
