//! The host lock: one activation at a time.
//!
//! `$STATE/lock` is created with `O_EXCL` and holds who took it (apply ID,
//! holder, PID, time) so that a refused apply can say who is in the way,
//! and whether that apply still runs (a dead holder's lock is broken by
//! `lbdeploy unlock ID`, never silently). The lock is held only while
//! `host activate` runs; the wait for confirmation is guarded by the
//! pending activation itself (see [`super::watchdog`]).

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::layout::Layout;
use crate::util::files;

/// What the lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The apply holding the lock.
    pub apply_id: String,
    /// Who runs that apply (`user@host pid N: command`).
    pub holder: String,
    /// The `host activate` process holding it on this host.
    pub pid: u32,
    /// When it was taken (RFC 3339).
    pub since: String,
}

/// Why this host refuses an activation right now. Its message starts with
/// `locked:` so the controller can tell it from other failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Another activation holds the lock.
    #[error(
        "locked: host is locked by apply {} ({}, since {}){}",
        .lock.apply_id, .lock.holder, .lock.since,
        if *.alive { String::new() } else {
            format!(" which is no longer running — break the lock with \
                     `lbdeploy unlock {}`", .lock.apply_id)
        }
    )]
    Locked {
        /// The lock file's content.
        lock: LockInfo,
        /// Whether its process still runs.
        alive: bool,
    },
    /// A previous activation still waits for its confirmation.
    #[error(
        "locked: host is waiting for confirmation of generation {generation} \
         (apply {apply_id})"
    )]
    Pending {
        /// The generation awaiting confirmation.
        generation: u64,
        /// The apply that activated it.
        apply_id: String,
    },
}

/// Whether process `pid` runs and its command line contains `needle`
/// (guarding against a recycled PID).
pub(crate) fn process_alive(pid: u32, needle: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has exited; only its parent's wait is missing.
        if let Some(rest) = stat.rsplit_once(") ") {
            if rest.1.starts_with('Z') {
                return false;
            }
        }
    }
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains(needle)
}

/// The lock, held; dropping it releases it.
#[derive(Debug)]
pub(crate) struct LockGuard {
    path: PathBuf,
    info: LockInfo,
}

impl LockGuard {
    /// Take the lock for `apply_id`.
    ///
    /// # Errors
    /// [`Refusal::Locked`] (inside the error) when someone holds it, or an
    /// I/O error.
    pub(crate) fn acquire(
        layout: &Layout,
        apply_id: &str,
        holder: &str,
    ) -> anyhow::Result<Self> {
        let path = layout.lock();
        files::create_dirs(&layout.state())?;
        let info = LockInfo {
            apply_id: apply_id.to_string(),
            holder: holder.to_string(),
            pid: std::process::id(),
            since: humantime::format_rfc3339_seconds(
                std::time::SystemTime::now(),
            )
            .to_string(),
        };
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let lock = read(&path)?.context("the lock vanished; retry")?;
                let alive = process_alive(lock.pid, "host");
                return Err(Refusal::Locked { lock, alive }.into());
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating {}", path.display()));
            }
        };
        let json = serde_json::to_vec(&info)?;
        if let Err(e) = f.write_all(&json).and_then(|()| f.sync_all()) {
            // A lock left empty (a full disk) would block every later
            // activation as "not a lock file": it is ours, remove it.
            let _ = files::remove_opt(&path);
            return Err(e)
                .with_context(|| format!("writing {}", path.display()));
        }
        Ok(Self { path, info })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Only our own lock: someone may have broken it with `unlock`.
        if read(&self.path).ok().flatten().as_ref() == Some(&self.info) {
            let _ = files::remove_opt(&self.path);
        }
    }
}

/// The lock file's content, if there is one.
///
/// # Errors
/// When it cannot be read or parsed.
pub fn read(path: &Path) -> anyhow::Result<Option<LockInfo>> {
    let Some(text) = files::read_text_opt(path)
        .with_context(|| format!("reading {}", path.display()))?
    else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not a lock file", path.display()))
}

/// `host unlock ID`: remove the lock if apply `id` holds it.
///
/// # Errors
/// When there is no lock, or someone else holds it.
pub fn unlock(layout: &Layout, id: &str) -> anyhow::Result<()> {
    match read(&layout.lock())? {
        None => anyhow::bail!("host is not locked"),
        Some(lock) if lock.apply_id == id => {
            files::remove_opt(&layout.lock())?;
            Ok(())
        }
        Some(lock) => anyhow::bail!(
            "host is locked by apply {} ({}, since {}), not by {id}; \
             nothing removed",
            lock.apply_id,
            lock.holder,
            lock.since
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> LockInfo {
        LockInfo {
            apply_id: "a1".into(),
            holder: "ops@ctl pid 7: lbdeploy apply".into(),
            pid: 7,
            since: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn live_lock_names_holder() {
        let msg = Refusal::Locked { lock: info(), alive: true }.to_string();
        assert_eq!(
            msg,
            "locked: host is locked by apply a1 (ops@ctl pid 7: lbdeploy \
             apply, since 2025-01-01T00:00:00Z)"
        );
    }

    #[test]
    fn dead_lock_says_how_to_break_it() {
        let msg = Refusal::Locked { lock: info(), alive: false }.to_string();
        assert!(msg.starts_with("locked: host is locked by apply a1 ("));
        assert!(msg.ends_with(
            "which is no longer running — break the lock with \
             `lbdeploy unlock a1`"
        ));
    }

    #[test]
    fn pending_names_generation() {
        let msg = Refusal::Pending { generation: 4, apply_id: "a2".into() }
            .to_string();
        assert_eq!(
            msg,
            "locked: host is waiting for confirmation of generation 4 \
             (apply a2)"
        );
    }

    #[test]
    fn own_process_is_alive_and_nonsense_is_not() {
        assert!(process_alive(std::process::id(), ""));
        assert!(!process_alive(u32::MAX - 1, ""));
    }
}
