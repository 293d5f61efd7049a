//! The controller's lock: `.lbdeploy/lock` next to the inventory, so two
//! applies of the same inventory cannot interleave. It records who holds
//! it; one whose process is gone is reported as stale with the command that
//! breaks it, never broken silently (the other apply may be on another
//! controller sharing the directory).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What the lock file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    /// The apply's id (also on every host's lock).
    pub id: String,
    /// `user@host`.
    pub by: String,
    /// The controller host.
    pub host: String,
    /// Its process.
    pub pid: u32,
    /// RFC 3339.
    pub since: String,
    /// The command line.
    pub command: String,
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct Lock {
    path: PathBuf,
}

impl Holder {
    /// This process, about to run `command`.
    pub fn me(id: &str, command: &str) -> Self {
        let host = hostname();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| match rustix::process::geteuid().is_root() {
                true => "root".to_owned(),
                false => format!("uid{}", rustix::process::geteuid().as_raw()),
            });
        Self {
            id: id.to_owned(),
            by: format!("{user}@{host}"),
            host,
            pid: std::process::id(),
            since: humantime::format_rfc3339_seconds(
                std::time::SystemTime::now(),
            )
            .to_string(),
            command: command.to_owned(),
        }
    }

    /// `apply ID (user@host pid N, since T: command)`.
    pub fn describe(&self) -> String {
        format!(
            "apply {} ({} pid {}, since {}: {})",
            self.id, self.by, self.pid, self.since, self.command
        )
    }

    /// Whether the holder's process still runs, as far as this machine can
    /// tell (a holder on another machine is assumed alive).
    fn alive(&self) -> bool {
        self.host != hostname()
            || Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// This machine's name.
pub fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

impl Lock {
    /// Take the lock in `state_dir`.
    ///
    /// # Errors
    /// When another apply holds it (named, with how to break a stale one),
    /// or the file cannot be written.
    pub(crate) fn acquire(
        state_dir: &Path,
        holder: Holder,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir).with_context(|| {
            format!("cannot create {}", state_dir.display())
        })?;
        let path = state_dir.join("lock");
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(serde_json::to_string(&holder)?.as_bytes())?;
                f.sync_all()?;
                Ok(Self { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let other = read(&path)?;
                if other.alive() {
                    bail!(
                        "the inventory is locked by {} — wait for it to finish \
                         (if it is gone, break the lock with `lbdeploy unlock {}`)",
                        other.describe(),
                        other.id
                    );
                }
                bail!(
                    "the inventory is locked by {}, which no longer runs (a \
                     stale lock) — check what it left, then break the lock \
                     with `lbdeploy unlock {}`",
                    other.describe(),
                    other.id
                );
            }
            Err(e) => Err(e)
                .with_context(|| format!("cannot create {}", path.display())),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read(path: &Path) -> anyhow::Result<Holder> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the lock {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the lock {} is damaged; remove it by hand if no apply runs",
            path.display()
        )
    })
}

/// Remove the lock in `state_dir` if `id` holds it. `Ok(false)` when there
/// is no lock.
///
/// # Errors
/// When another apply holds it.
pub(crate) fn break_lock(state_dir: &Path, id: &str) -> anyhow::Result<bool> {
    let path = state_dir.join("lock");
    if !path.exists() {
        return Ok(false);
    }
    let holder = read(&path)?;
    if holder.id != id {
        bail!(
            "the inventory's lock is held by {}, not {id}",
            holder.describe()
        );
    }
    std::fs::remove_file(&path)
        .with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir()
            .join(format!("lbd-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn second_holder_is_told_who_holds_it() {
        let d = dir("held");
        let lock =
            Lock::acquire(&d, Holder::me("a1", "lbdeploy apply")).unwrap();
        let e = Lock::acquire(&d, Holder::me("a2", "lbdeploy apply"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("locked by apply a1") && e.contains("lbdeploy apply"),
            "{e}"
        );
        drop(lock);
        Lock::acquire(&d, Holder::me("a3", "x")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_dead_holder_is_stale_and_broken_by_id_only() {
        let d = dir("stale");
        let mut h = Holder::me("old", "lbdeploy apply");
        h.pid = u32::MAX - 1;
        let lock = Lock::acquire(&d, h).unwrap();
        std::mem::forget(lock);
        let e =
            Lock::acquire(&d, Holder::me("new", "x")).unwrap_err().to_string();
        assert!(
            e.contains("stale") && e.contains("lbdeploy unlock old"),
            "{e}"
        );
        assert!(break_lock(&d, "other").is_err());
        assert!(break_lock(&d, "old").unwrap());
        assert!(!break_lock(&d, "old").unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
