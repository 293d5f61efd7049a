//! The before-image: everything an activation may change, as it was.
//!
//! Written to `$STATE/pending/state.json` before the first change, so that
//! whoever rolls back (the watchdog at its deadline, the activation itself
//! on a failure, or the next activation after a crash) needs nothing but
//! this file and `pending/binary`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::layout::Layout;
use crate::inventory::drained::DRAINED_FILE;
use crate::util::files::{self, OnDisk};

/// A file as it was before the activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBefore {
    /// Host path (unrooted).
    pub path: PathBuf,
    /// Permission bits, `None` when the file did not exist.
    pub mode: Option<u32>,
    /// Content in base64, `None` when the file did not exist.
    pub content: Option<String>,
}

impl FileBefore {
    /// The file as it was, `None` when it did not exist.
    ///
    /// # Errors
    /// When the stored content is not base64 (a corrupt state file).
    pub(crate) fn on_disk(&self) -> anyhow::Result<Option<OnDisk>> {
        match (self.mode, &self.content) {
            (Some(mode), Some(content)) => Ok(Some(OnDisk {
                mode,
                content: B64
                    .decode(content)
                    .context("corrupt before-image content")?,
            })),
            _ => Ok(None),
        }
    }
}

/// `pending/state.json`: the activation and the host before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The activation being tried (its files are committed on confirm).
    pub activation: Activation,
    /// Every path of the activation and of the previous manifest.
    pub files: Vec<FileBefore>,
    /// Sysctl values before, `None` when unreadable.
    pub sysctls: BTreeMap<String, Option<String>>,
    /// Whether `pending/binary` holds the previous binary.
    pub binary_saved: bool,
    /// The previous confirmed generation.
    pub generation: Option<u64>,
    /// The previous manifest's text.
    pub manifest: Option<String>,
    /// Whether the agent ran before.
    pub service_was_running: bool,
}

/// The managed paths a manifest lists.
pub(crate) fn manifest_paths(text: &str) -> Vec<PathBuf> {
    text.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect()
}

/// Take the before-image of the host for `activation`, saving the binary
/// to `pending/binary` when it will be replaced.
///
/// # Errors
/// When something cannot be read, or a path is not a valid host path.
pub fn take(
    layout: &Layout,
    activation: &Activation,
    service_was_running: bool,
) -> anyhow::Result<Pending> {
    let manifest = files::read_text_opt(&layout.manifest())
        .context("reading the manifest")?;
    let generation = match files::read_text_opt(&layout.generation())? {
        None => None,
        Some(t) => Some(t.trim().parse::<u64>().with_context(|| {
            format!(
                "{}: not a generation number",
                layout.generation().display()
            )
        })?),
    };
    let mut paths: BTreeSet<PathBuf> =
        activation.files.iter().map(|f| f.path.clone()).collect();
    paths.extend(manifest.as_deref().map(manifest_paths).unwrap_or_default());
    paths.extend(activation.drop_ins.iter().cloned());
    if activation.undrain {
        paths.insert(DRAINED_FILE.into());
    }
    let mut files = Vec::new();
    for path in paths {
        let real = layout.host(&path)?;
        let now = files::read_opt(&real)
            .with_context(|| format!("reading {}", real.display()))?;
        files.push(FileBefore {
            path,
            mode: now.as_ref().map(|f| f.mode),
            content: now.map(|f| B64.encode(f.content)),
        });
    }
    let mut sysctls = BTreeMap::new();
    // A retirement sets the recorded originals; anything else its own.
    let keys: Vec<String> = match activation.retire {
        true => super::originals::load(layout)?.into_keys().collect(),
        false => activation.sysctls.keys().cloned().collect(),
    };
    for key in keys {
        let value = std::fs::read_to_string(layout.sysctl(&key)?)
            .ok()
            .map(|v| v.trim_end().to_string());
        sysctls.insert(key, value);
    }
    let mut binary_saved = false;
    if let Some(_staged) = &activation.staged_binary {
        let binary = layout.host(&activation.binary)?;
        if binary.exists() {
            files::copy_atomic(&binary, &layout.pending_binary(), 0o755)?;
            binary_saved = true;
        }
    }
    Ok(Pending {
        activation: activation.clone(),
        files,
        sysctls,
        binary_saved,
        generation,
        manifest,
        service_was_running,
    })
}

/// Write `pending/state.json` atomically.
///
/// # Errors
/// Any I/O error.
pub(crate) fn save(layout: &Layout, pending: &Pending) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(pending)?;
    files::write_atomic(&layout.pending_state(), &json, 0o600)
}

/// Read `pending/state.json`, `None` when there is none.
///
/// # Errors
/// When it cannot be read or parsed.
pub fn load(layout: &Layout) -> anyhow::Result<Option<Pending>> {
    let path = layout.pending_state();
    let Some(text) = files::read_text_opt(&path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is corrupt", path.display()))
}

/// Whether the file at host path `path` already has `content` and `mode`.
///
/// # Errors
/// When it cannot be read.
pub(crate) fn is_same(
    real: &Path,
    content: &[u8],
    mode: u32,
) -> anyhow::Result<bool> {
    Ok(files::read_opt(real)
        .with_context(|| format!("reading {}", real.display()))?
        .is_some_and(|f| f.content == content && f.mode == mode))
}
