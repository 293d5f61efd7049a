//! Putting the host back as the before-image says, and committing a
//! confirmed generation: the two ways a pending activation ends.
//!
//! Both are written to be re-run: every step compares before it writes, so
//! a rollback or commit interrupted by a crash is finished by whoever runs
//! it next (the next activation, or `host confirm`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::agent::{Op, Service, is_drop_in_of, unit_file_name};
use super::layout::Layout;
use super::snapshot::{self, Pending};
use crate::plan::diff::restart_reasons;
use crate::util::files::{self, OnDisk};

/// `$STATE/last-rollback.json`: why the last activation did not stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastRollback {
    /// The generation that was rolled back.
    pub generation: u64,
    /// The apply that activated it.
    pub apply_id: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why (`not confirmed within 30s`, or the activation's error).
    pub reason: String,
}

/// What the rollback changed back, to choose the service operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Restored {
    /// The previous binary was put back.
    pub binary: bool,
    /// The unit file was put back.
    pub unit: bool,
    /// Any file was put back or removed.
    pub files: bool,
    /// The director's configuration came back with a setting only a
    /// start of the agent applies (`DirectorConfig::restart_settings`):
    /// a reload would leave the rolled-back agent running with the
    /// activation's scheduling, capabilities or memory lock.
    pub start_settings: bool,
}

/// The service operation that returns the agent to its earlier state:
/// stopped if it was not running; otherwise restarted when the binary,
/// the unit or a start-only setting came back, reloaded when only
/// configuration did, started when it no longer runs.
pub(crate) fn service_op(
    was_running: bool,
    running_now: bool,
    restored: Restored,
) -> Option<Op> {
    match (was_running, running_now) {
        (false, true) => Some(Op::Stop),
        (false, false) => None,
        (true, false) => Some(Op::Start),
        (true, true)
            if restored.binary || restored.unit || restored.start_settings =>
        {
            Some(Op::Restart)
        }
        (true, true) if restored.files => Some(Op::Reload),
        (true, true) => None,
    }
}

/// Whether the configuration coming back (`back`) differs from the
/// activation's in a setting only a start applies — the same rule as
/// `plan`'s, run the other way.
fn start_settings_back(a: &Activation, back: Option<&OnDisk>) -> bool {
    let Some(back) = back.and_then(|f| std::str::from_utf8(&f.content).ok())
    else {
        return false;
    };
    let activated = a.files.iter().find(|f| f.path == a.config);
    let activated = activated.map(|f| f.content.as_bytes());
    !restart_reasons(a.agent, activated, back).is_empty()
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Roll the pending activation back, record why, and remove `pending/`.
///
/// # Errors
/// When a step fails; `pending/` is then kept so the rollback can be
/// finished later.
pub(crate) fn roll_back(
    layout: &Layout,
    pending: &Pending,
    reason: &str,
) -> anyhow::Result<()> {
    let a = &pending.activation;
    let mut restored = Restored::default();
    let unit = unit_file_name(&a.service);
    for before in &pending.files {
        let real = layout.host(&before.path)?;
        let back = before.on_disk()?;
        let changed = match &back {
            Some(f) => {
                if snapshot::is_same(&real, &f.content, f.mode)? {
                    false
                } else {
                    files::write_atomic(&real, &f.content, f.mode)?;
                    true
                }
            }
            None => files::remove_opt(&real)?,
        };
        if changed && before.path == a.config {
            restored.start_settings |= start_settings_back(a, back.as_ref());
        }
        if changed {
            restored.files = true;
            restored.unit |=
                before.path.file_name().is_some_and(|n| *n == *unit.as_str())
                    || is_drop_in_of(&before.path, &a.service);
        }
    }
    if pending.binary_saved {
        let saved = layout.pending_binary();
        let binary = layout.host(&a.binary)?;
        let old = std::fs::read(&saved)
            .with_context(|| format!("reading {}", saved.display()))?;
        if !snapshot::is_same(&binary, &old, 0o755)? {
            files::write_atomic(&binary, &old, 0o755)?;
            restored.binary = true;
        }
    } else if let Some(staged) = &a.staged_binary {
        // There was no binary before: a new one is removed again.
        if !layout.host(staged)?.exists() {
            restored.binary |= files::remove_opt(&layout.host(&a.binary)?)?;
        }
    }
    for (key, value) in &pending.sysctls {
        if let Some(value) = value {
            set_sysctl(layout, key, value)?;
        }
    }
    restore_text(
        &layout.generation(),
        pending.generation.map(|g| format!("{g}\n")),
    )?;
    restore_text(&layout.manifest(), pending.manifest.clone())?;
    let service =
        Service::new(layout, &a.service, &a.binary, a.agent, &a.config)?;
    if let Some(op) =
        service_op(pending.service_was_running, service.is_running(), restored)
    {
        service.run(op, restored.unit)?;
    }
    // A first install rolled back: the unit file is gone again, and so
    // must be the link that enabled it, or systemd lists a unit that does
    // not exist (and a later install would find it enabled by a stranger).
    let unit_gone = a
        .files
        .iter()
        .find(|f| f.path.file_name().is_some_and(|n| *n == *unit.as_str()))
        .map(|f| layout.host(&f.path))
        .transpose()?
        .is_some_and(|p| !p.exists());
    if restored.unit && unit_gone {
        service.run(Op::Disable, true)?;
    }
    let record = LastRollback {
        generation: a.generation,
        apply_id: a.apply_id.clone(),
        at: now(),
        reason: reason.to_string(),
    };
    // The host is back; what remains is bookkeeping. On a full state
    // directory it fails: removing `pending/` frees room, and the record
    // is tried once more. A record that still cannot be written does not
    // undo the rollback; it is reported on stderr (the watchdog's log).
    if record_rollback(layout, &record).is_ok() {
        return remove_pending(layout);
    }
    remove_pending(layout)?;
    if let Err(e) = record_rollback(layout, &record) {
        warn(&format!(
            "generation {} rolled back, but recording it failed: {e:#}",
            a.generation
        ));
    }
    Ok(())
}

/// `last-rollback.json` and the journal line of a rollback.
fn record_rollback(
    layout: &Layout,
    record: &LastRollback,
) -> anyhow::Result<()> {
    files::write_atomic(
        &layout.last_rollback(),
        &serde_json::to_vec_pretty(record)?,
        0o644,
    )?;
    journal(layout, record.generation, "rolled back", &record.apply_id)
}

/// A line on stderr that may fail (a full file system under the log).
fn warn(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Set sysctl `key` to `value` live, if it differs.
///
/// # Errors
/// When the key does not exist or the kernel refuses the value.
pub(crate) fn set_sysctl(
    layout: &Layout,
    key: &str,
    value: &str,
) -> anyhow::Result<bool> {
    let path = layout.sysctl(key)?;
    let now = std::fs::read_to_string(&path).ok();
    if now.as_deref().map(str::trim_end) == Some(value) {
        return Ok(false);
    }
    std::fs::write(&path, format!("{value}\n"))
        .with_context(|| format!("setting sysctl {key} = {value}"))?;
    Ok(true)
}

fn restore_text(path: &Path, text: Option<String>) -> anyhow::Result<()> {
    match text {
        Some(t) => {
            if files::read_text_opt(path)?.as_deref() != Some(t.as_str()) {
                files::write_atomic(path, t.as_bytes(), 0o644)?;
            }
        }
        None => {
            files::remove_opt(path)?;
        }
    }
    Ok(())
}

fn journal(
    layout: &Layout,
    generation: u64,
    what: &str,
    apply_id: &str,
) -> anyhow::Result<()> {
    files::append_line(
        &layout.journal(),
        &format!("{}\t{generation}\t{what}\t{apply_id}", now()),
    )
}

/// Remove `pending/` whole: `host confirm`, waiting for the commit, must
/// never see it half gone, nor the next activation trip over it.
fn remove_pending(layout: &Layout) -> anyhow::Result<()> {
    files::remove_dir_whole(&layout.pending())
}

/// The name a file of a generation is stored under in
/// `generations/N/`: its path without the leading `/`, with `%` and `/`
/// escaped so the directory stays flat.
pub(crate) fn stored_name(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.trim_start_matches('/').replace('%', "%25").replace('/', "%2F")
}

/// One entry of `generations/N/files.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredFile {
    /// Host path.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// The file name in `generations/N/` holding its content.
    pub stored: String,
}

/// What a commit that could not record its generation does instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitFailed {
    /// Nothing was recorded yet: the host goes back to the previous
    /// generation, whole (the activation is not half kept).
    RollBack,
    /// The generation file already says N: the commit happened, only
    /// the bookkeeping after it failed; it is finished later.
    FinishLater,
}

/// The rule for a failed commit: before the generation file (the commit
/// point) names the new generation, undo; after, keep.
pub(crate) fn on_commit_failure(
    recorded: Option<u64>,
    generation: u64,
) -> CommitFailed {
    match recorded == Some(generation) {
        true => CommitFailed::FinishLater,
        false => CommitFailed::RollBack,
    }
}

/// Commit the confirmed pending activation, all or nothing (issue #17,
/// finding 9): keep a copy of its files in `generations/N/`, write the
/// manifest, then the generation file — the commit point — then journal
/// it and remove `pending/`. When a step before the commit point fails
/// (a full disk), the copy is removed, the confirmation withdrawn and the
/// host rolled back to its previous generation, and the failure returned.
///
/// # Errors
/// When the commit failed (the host was then rolled back, or, when even
/// that failed, `pending/` is left for the next activation to roll back).
pub fn commit(layout: &Layout, pending: &Pending) -> anyhow::Result<()> {
    let a = &pending.activation;
    let Err(e) = record_generation(layout, pending) else {
        return finish_commit(layout, pending);
    };
    let recorded = files::read_text_opt(&layout.generation())
        .ok()
        .flatten()
        .and_then(|t| t.trim().parse().ok());
    if on_commit_failure(recorded, a.generation) == CommitFailed::FinishLater {
        return Err(e.context("finishing the commit"));
    }
    let reason =
        format!("committing generation {} failed: {e:#}", a.generation);
    // Withdrawn first: whoever finishes this pending activation after a
    // crash must roll it back, not commit it.
    let undo = files::remove_opt(&layout.pending_confirmed())
        .and_then(|_| remove_generation_dir(layout, a.generation))
        .and_then(|()| roll_back(layout, pending, &reason));
    let back_to = pending.generation.map_or("none".into(), |g| g.to_string());
    match undo {
        Ok(()) => Err(e.context(format!(
            "committing generation {} failed; the host is back at \
             generation {back_to}",
            a.generation
        ))),
        Err(re) => Err(e.context(format!(
            "committing generation {} failed and so did rolling back to \
             {back_to} ({re:#}); the next activation will retry it",
            a.generation
        ))),
    }
}

/// Remove `generations/N/`, a copy that was never committed.
fn remove_generation_dir(layout: &Layout, n: u64) -> anyhow::Result<()> {
    files::remove_dir_whole(&layout.generation_dir(n))
}

/// After the commit point: journal (bookkeeping, warned about when it
/// fails) and remove `pending/`.
fn finish_commit(layout: &Layout, pending: &Pending) -> anyhow::Result<()> {
    let a = &pending.activation;
    if let Err(e) = journal(layout, a.generation, "confirmed", &a.apply_id) {
        warn(&format!(
            "generation {} committed, but journaling it failed: {e:#}",
            a.generation
        ));
    }
    remove_pending(layout)
}

/// Everything up to the commit point: the copy in `generations/N/`, the
/// manifest, the generation file (written last).
fn record_generation(layout: &Layout, pending: &Pending) -> anyhow::Result<()> {
    let a = &pending.activation;
    let dir = layout.generation_dir(a.generation);
    files::create_dirs(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", dir.display()))?;
    let mut listing = Vec::new();
    for f in &a.files {
        let stored = stored_name(&f.path);
        files::write_atomic(&dir.join(&stored), f.content.as_bytes(), 0o600)?;
        listing.push(StoredFile { path: f.path.clone(), mode: f.mode, stored });
    }
    files::write_atomic(
        &dir.join("files.json"),
        &serde_json::to_vec_pretty(&listing)?,
        0o600,
    )?;
    let mut paths: Vec<_> = a.files.iter().map(|f| &f.path).collect();
    paths.sort();
    paths.dedup();
    let manifest: String =
        paths.iter().map(|p| format!("{}\n", p.display())).collect();
    files::write_atomic(&layout.manifest(), manifest.as_bytes(), 0o644)?;
    files::write_atomic(
        &layout.generation(),
        format!("{}\n", a.generation).as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: Restored = Restored {
        binary: false,
        unit: false,
        files: false,
        start_settings: false,
    };

    #[test]
    fn stopped_before_means_stopped_after() {
        assert_eq!(service_op(false, true, NOTHING), Some(Op::Stop));
        assert_eq!(service_op(false, false, NOTHING), None);
    }

    #[test]
    fn running_before_comes_back_with_what_changed() {
        let bin = Restored { binary: true, ..NOTHING };
        let unit = Restored { files: true, unit: true, ..NOTHING };
        let conf = Restored { files: true, ..NOTHING };
        let start = Restored { files: true, start_settings: true, ..NOTHING };
        assert_eq!(service_op(true, true, bin), Some(Op::Restart));
        assert_eq!(service_op(true, true, unit), Some(Op::Restart));
        assert_eq!(service_op(true, true, start), Some(Op::Restart));
        assert_eq!(service_op(true, true, conf), Some(Op::Reload));
        assert_eq!(service_op(true, true, NOTHING), None);
        assert_eq!(service_op(true, false, conf), Some(Op::Start));
    }

    #[test]
    fn r17_a_commit_fails_whole_until_its_generation_is_written() {
        assert_eq!(on_commit_failure(Some(5), 6), CommitFailed::RollBack);
        assert_eq!(on_commit_failure(None, 1), CommitFailed::RollBack);
        assert_eq!(on_commit_failure(Some(6), 6), CommitFailed::FinishLater);
    }

    #[test]
    fn stored_names_are_flat_and_unambiguous() {
        assert_eq!(
            stored_name(Path::new("/etc/lbdeploy/agent.yml")),
            "etc%2Flbdeploy%2Fagent.yml"
        );
        assert_eq!(stored_name(Path::new("/a%2Fb")), "a%252Fb");
    }
}
