//! The plan as data: what `plan --json` prints and `plan --out` saves.
//!
//! A saved plan records what it was computed from (inventory and binary
//! hashes, each host's facts fingerprint); `apply FILE` recomputes the plan
//! and refuses it as stale when any of those moved, so what is applied is
//! exactly what was reviewed. Secrets are redacted ([`crate::plan::redact`]):
//! the file can be attached to a change ticket. It is written mode 0600.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::plan::diff::Change;
use crate::plan::gather::Gathered;
use crate::plan::redact;

/// The format marker of saved plans.
pub(crate) const FORMAT: &str = "lbdeploy-plan/1";

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDocument {
    /// `FORMAT`.
    pub format: String,
    /// The inventory it was computed from.
    pub inventory: PathBuf,
    /// That inventory's SHA-256.
    pub inventory_sha256: String,
    /// The binary it would install.
    pub binary_sha256: String,
    /// The `--limit` patterns.
    pub limit: Vec<String>,
    /// `--undrain`: the directors' runtime drains cleared.
    #[serde(default)]
    pub undrain: bool,
    /// The controller's last generation when planned.
    pub generation: Option<u64>,
    /// Per host, inventory order.
    pub hosts: Vec<HostPlan>,
    /// Counts.
    pub summary: Summary,
}

/// One host's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    /// Inventory name.
    pub name: String,
    /// What planning gave.
    pub status: HostStatus,
    /// SHA-256 of the host's facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Why it is unreachable or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The changes (contents redacted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// How planning a host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Changes pending.
    Changes,
    /// Converged.
    Unchanged,
    /// No connection.
    Unreachable,
    /// Cannot be planned.
    Failed,
}

/// The summary line's numbers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
pub struct Summary {
    /// Hosts with changes.
    pub changes: usize,
    /// Hosts without.
    pub unchanged: usize,
    /// Hosts not reached.
    pub unreachable: usize,
    /// Hosts that failed.
    pub failed: usize,
}

impl HostPlan {
    /// The document entry of a gathered host.
    pub fn of(name: &str, g: &Gathered) -> Self {
        let mut h = Self {
            name: name.to_owned(),
            status: HostStatus::Unchanged,
            fingerprint: None,
            error: None,
            changes: Vec::new(),
        };
        match g {
            Gathered::Planned(p) => {
                h.fingerprint = Some(p.fingerprint.clone());
                h.changes = p.changes.iter().map(redact::change).collect();
                if !h.changes.is_empty() {
                    h.status = HostStatus::Changes;
                }
            }
            Gathered::Unreachable(e) => {
                h.status = HostStatus::Unreachable;
                h.error = Some(redact::redact(&e.to_string()).into_owned());
            }
            Gathered::Failed(e) => {
                h.status = HostStatus::Failed;
                h.error = Some(redact::redact(e).into_owned());
            }
        }
        h
    }
}

impl Summary {
    /// Count the hosts.
    pub fn of(hosts: &[HostPlan]) -> Self {
        let mut s = Self::default();
        for h in hosts {
            *match h.status {
                HostStatus::Changes => &mut s.changes,
                HostStatus::Unchanged => &mut s.unchanged,
                HostStatus::Unreachable => &mut s.unreachable,
                HostStatus::Failed => &mut s.failed,
            } += 1;
        }
        s
    }
}

impl PlanDocument {
    /// Save to `path` (written whole, then renamed into place), readable
    /// by its owner only: secrets are redacted, but the plan still maps the
    /// cluster and each host's files.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::util::files::write_atomic(path, text.as_bytes(), 0o600)
            .with_context(|| {
                format!("cannot save the plan to {}", path.display())
            })
    }

    /// Read a saved plan.
    ///
    /// # Errors
    /// When the file cannot be read or is not a saved plan.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read the plan {}", path.display())
        })?;
        let doc: Self = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a plan saved by `lbdeploy plan --out`",
                path.display()
            )
        })?;
        if doc.format != FORMAT {
            bail!(
                "{} is a plan of format `{}`; this lbdeploy reads `{FORMAT}` — \
                 run `lbdeploy plan --out` again",
                path.display(),
                doc.format
            );
        }
        Ok(doc)
    }

    /// Why `fresh` (the plan recomputed now) differs from this saved one,
    /// or `None` when it is still exactly what was reviewed.
    pub(crate) fn staleness(&self, fresh: &Self) -> Option<String> {
        if self.inventory_sha256 != fresh.inventory_sha256 {
            return Some(format!(
                "the inventory {} changed since the plan was saved",
                self.inventory.display()
            ));
        }
        if self.binary_sha256 != fresh.binary_sha256 {
            return Some("the lbdeploy binary to install changed".to_owned());
        }
        for (old, new) in self.hosts.iter().zip(&fresh.hosts) {
            if old.name != new.name {
                return Some("the set of hosts changed".to_owned());
            }
            if old.fingerprint != new.fingerprint || old.changes != new.changes
            {
                return Some(format!(
                    "host {} changed since the plan was saved",
                    old.name
                ));
            }
        }
        if self.hosts.len() != fresh.hosts.len() {
            return Some("the set of hosts changed".to_owned());
        }
        None
    }
}
