//! `host confirm N`: the controller, over a fresh SSH connection (proving
//! the host still answers), tells the host to keep generation N.
//!
//! Confirming marks `pending/confirmed` and waits, bounded, for the
//! watchdog to commit, so that exit 0 means "generation N is recorded".
//! It is idempotent: confirming a committed generation again succeeds.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::layout::Layout;
use super::rollback::LastRollback;
use super::snapshot;
use super::watchdog::{self, Recovery, Step};
use crate::util::files;

/// How long `host confirm` waits for the watchdog to commit.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

fn current_generation(layout: &Layout) -> anyhow::Result<Option<u64>> {
    Ok(files::read_text_opt(&layout.generation())?
        .and_then(|t| t.trim().parse().ok()))
}

fn rolled_back(
    layout: &Layout,
    n: u64,
) -> anyhow::Result<Option<LastRollback>> {
    Ok(files::read_text_opt(&layout.last_rollback())?
        .and_then(|t| serde_json::from_str::<LastRollback>(&t).ok())
        .filter(|r| r.generation == n))
}

fn rolled_back_error(r: &LastRollback) -> anyhow::Error {
    anyhow::anyhow!(
        "generation {} was rolled back at {}: {}",
        r.generation,
        r.at,
        r.reason
    )
}

/// Confirm generation `n`.
///
/// # Errors
/// When `n` was rolled back, is not the pending generation, or the
/// watchdog did not commit it within `WAIT`.
pub fn confirm(layout: &Layout, n: u64) -> anyhow::Result<()> {
    match snapshot::load(layout)? {
        Some(p) if p.activation.generation == n => {
            if let Err(e) =
                files::write_atomic(&layout.pending_confirmed(), b"", 0o644)
            {
                // The watchdog may see the mark the moment it is renamed
                // in, commit, and remove `pending/` before the writer's
                // fsync of that directory: then the mark did its job.
                if snapshot::load(layout)?.is_some() {
                    return Err(e);
                }
            }
            wait_for_commit(layout, n)
        }
        Some(p) => bail!(
            "generation {} (apply {}) is pending on this host, not {n}",
            p.activation.generation,
            p.activation.apply_id
        ),
        None if current_generation(layout)? == Some(n) => Ok(()),
        None => match rolled_back(layout, n)? {
            Some(r) => Err(rolled_back_error(&r)),
            None => bail!(
                "generation {n} was never activated on this host (its \
                 generation is {})",
                current_generation(layout)?
                    .map_or("none".to_string(), |g| g.to_string())
            ),
        },
    }
}

fn wait_for_commit(layout: &Layout, n: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match snapshot::load(layout)? {
            None => {
                if current_generation(layout)? == Some(n) {
                    return Ok(());
                }
                if let Some(r) = rolled_back(layout, n)? {
                    return Err(rolled_back_error(&r));
                }
                bail!("generation {n} vanished from this host unrecorded");
            }
            Some(p) => {
                // A dead watchdog cannot commit: do its job here.
                if let Recovery::Finish(Step::Commit) = watchdog::recover(
                    watchdog::watchdog_alive(layout),
                    watchdog::confirmed(layout),
                ) {
                    watchdog::carry_out(layout, &p, Step::Commit)?;
                    continue;
                }
            }
        }
        if start.elapsed() > WAIT {
            bail!(
                "the watchdog did not commit generation {n} within {}s; see \
                 {}",
                WAIT.as_secs(),
                layout.watchdog_log().display()
            );
        }
        std::thread::sleep(watchdog::POLL / 2);
    }
}
