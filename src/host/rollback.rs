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

use super::agent::{Op, Service, unit_file_name};
use super::layout::Layout;
use super::snapshot::{self, Pending};
use crate::util::files;

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
}

/// The service operation that returns the agent to its earlier state:
/// stopped if it was not running; otherwise restarted when the binary or
/// unit came back, reloaded when only configuration did, started when it
/// no longer runs.
pub(crate) fn service_op(
    was_running: bool,
    running_now: bool,
    restored: Restored,
) -> Option<Op> {
    match (was_running, running_now) {
        (false, true) => Some(Op::Stop),
        (false, false) => None,
        (true, false) => Some(Op::Start),
        (true, true) if restored.binary || restored.unit => Some(Op::Restart),
        (true, true) if restored.files => Some(Op::Reload),
        (true, true) => None,
    }
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
        let changed = match before.on_disk()? {
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
        if changed {
            restored.files = true;
            restored.unit |=
                before.path.file_name().is_some_and(|n| *n == *unit.as_str());
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
    let record = LastRollback {
        generation: a.generation,
        apply_id: a.apply_id.clone(),
        at: now(),
        reason: reason.to_string(),
    };
    files::write_atomic(
        &layout.last_rollback(),
        &serde_json::to_vec_pretty(&record)?,
        0o644,
    )?;
    journal(layout, a.generation, "rolled back", &a.apply_id)?;
    remove_pending(layout)
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

fn remove_pending(layout: &Layout) -> anyhow::Result<()> {
    let dir = layout.pending();
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("removing {}", dir.display()));
        }
    }
    files::sync_dir(&layout.state()).context("syncing the state directory")
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

/// Commit the confirmed pending activation: keep a copy of its files in
/// `generations/N/`, record generation and manifest, journal it and
/// remove `pending/`.
///
/// # Errors
/// When a step fails; `pending/` is then kept (with `confirmed`) so the
/// commit can be finished later.
pub fn commit(layout: &Layout, pending: &Pending) -> anyhow::Result<()> {
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
    )?;
    journal(layout, a.generation, "confirmed", &a.apply_id)?;
    remove_pending(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: Restored =
        Restored { binary: false, unit: false, files: false };

    #[test]
    fn stopped_before_means_stopped_after() {
        assert_eq!(service_op(false, true, NOTHING), Some(Op::Stop));
        assert_eq!(service_op(false, false, NOTHING), None);
    }

    #[test]
    fn running_before_comes_back_with_what_changed() {
        let bin = Restored { binary: true, files: false, unit: false };
        let unit = Restored { binary: false, files: true, unit: true };
        let conf = Restored { binary: false, files: true, unit: false };
        assert_eq!(service_op(true, true, bin), Some(Op::Restart));
        assert_eq!(service_op(true, true, unit), Some(Op::Restart));
        assert_eq!(service_op(true, true, conf), Some(Op::Reload));
        assert_eq!(service_op(true, true, NOTHING), None);
        assert_eq!(service_op(true, false, conf), Some(Op::Start));
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
