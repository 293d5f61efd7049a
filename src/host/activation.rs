//! What the controller sends a host to activate, and what the host answers.
//!
//! This is the contract between two lbdeploy binaries (the controller's and
//! the one installed on the host), carried as JSON over SSH: the controller
//! pipes an [`Activation`] into `lbdeploy host activate` and reads a
//! [`Report`] back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inventory::Mode;
use crate::plan::diff::ServiceAction;

/// One generation of one host, complete: every file the generation owns
/// (not only the changed ones), so the host can keep it for rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// The apply that sends it (names the lock).
    pub apply_id: String,
    /// Who runs that apply, for lock messages: `user@host pid N: command`.
    pub holder: String,
    /// The generation this activation becomes once confirmed.
    pub generation: u64,
    /// The agent mode: `director` or `realserver`.
    pub agent: Mode,
    /// The agent's service name.
    pub service: String,
    /// The agent's configuration file.
    pub config: PathBuf,
    /// Where the agent binary lives.
    pub binary: PathBuf,
    /// A freshly uploaded binary, in the same directory as `binary`, to be
    /// renamed over it; `None` when the installed one is already right.
    pub staged_binary: Option<PathBuf>,
    /// Every file this generation owns on the host. Managed files of the
    /// previous generation that are not here are removed.
    pub files: Vec<FileSpec>,
    /// Kernel settings to set live (the sysctl.d file among `files`
    /// persists them).
    pub sysctls: BTreeMap<String, String>,
    /// What the agent service needs once files and binary are in place.
    pub service_action: Option<ServiceAction>,
    /// The agent's unit is masked: unmasked before anything is written.
    #[serde(default)]
    pub unmask: bool,
    /// The agent's unit is not enabled: enabled (starting it enables it
    /// too).
    #[serde(default)]
    pub enable: bool,
    /// Drop-ins that override the agent's unit, removed (a rollback puts
    /// them back); only files in the unit's own `.d` directories under
    /// `/etc/systemd/system` and `/run/systemd/system` are accepted.
    #[serde(default)]
    pub drop_ins: Vec<PathBuf>,
    /// A director's runtime drains are cleared (`apply --undrain`): its
    /// drained list is removed (a rollback puts it back) before the agent
    /// reloads.
    #[serde(default)]
    pub undrain: bool,
    /// systemd must re-read the unit files before the service action.
    #[serde(default)]
    pub daemon_reload: bool,
    /// The host has left the inventory: the agent is stopped and disabled
    /// before its files go (`files` is empty, so every managed file is
    /// removed), and each sysctl lbdeploy set gets back the value it had
    /// before lbdeploy ([`super::originals`]). The binary and the state
    /// directory, its generations with it, stay.
    #[serde(default)]
    pub retire: bool,
    /// How long the host waits for `host confirm` before rolling back.
    pub confirm_timeout_ms: u64,
}

/// A file of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path on the host.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// The content.
    pub content: String,
}

/// What `host activate` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The generation now pending confirmation.
    pub generation: u64,
    /// Files written (created or replaced).
    pub written: Vec<PathBuf>,
    /// Files removed.
    pub removed: Vec<PathBuf>,
    /// Sysctls set.
    pub sysctls: Vec<String>,
    /// Whether the binary was replaced.
    pub binary_replaced: bool,
    /// What was done to the service.
    pub service_action: Option<ServiceAction>,
    /// Milliseconds the host now waits for confirmation.
    pub confirm_within_ms: u64,
}
