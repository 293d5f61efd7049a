//! Everything `plan`, `apply` and `rollback` need before the first SSH
//! connection: the inventory loaded and valid, the roles, the binary
//! checked, every selected host's desired state and SSH target. Any error
//! here stops the command before a host is contacted.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use sha2::{Digest, Sha256};

use super::generations::Store;
use super::removed::{Removed, removed};
use crate::inventory::{self, Environment, Inventory};
use crate::plan::binary::Binary;
use crate::plan::desired::{self, HostDesired};
use crate::plan::roles::Roles;
use crate::plan::select::{Candidate, select};
use crate::transport::Target;
use crate::util::hex::hex;

/// Where the inputs come from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The inventory file (its directory holds `.lbdeploy/`).
    pub inventory: PathBuf,
    /// Roles and templates instead of the embedded ones.
    pub roles_dir: Option<PathBuf>,
    /// The binary to install instead of this executable.
    pub binary: Option<PathBuf>,
    /// `--limit` patterns.
    pub limit: Vec<String>,
    /// What becomes of hosts that have left the inventory.
    pub removed: Removals,
    /// Clear the directors' runtime drains (`--undrain`).
    pub undrain: bool,
}

/// What a command does with hosts that have left the inventory
/// (`apply::removed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Removals {
    /// Nothing: they are not its business (`status`, `unlock`).
    #[default]
    Ignore,
    /// Retired, as a selected host is converged (`plan`, `apply`,
    /// `rollback`).
    Retire,
    /// Left as they are, but still listed to retire later
    /// (`--keep-removed`).
    Keep,
}

/// The compiled inputs of one run.
#[derive(Debug)]
pub struct Prepared {
    /// The inventory as loaded.
    pub inventory: Inventory,
    /// Its text, for generations.
    pub text: String,
    /// SHA-256 of the text.
    pub inventory_sha256: String,
    /// The agent binary.
    pub binary: Binary,
    /// The selected hosts, inventory order (directors first).
    pub hosts: Vec<(HostDesired, Target)>,
    /// Every inventory host's name (for unlocking everywhere).
    pub all_hosts: Vec<String>,
    /// The hosts that have left the inventory, selected or not (those
    /// selected and retired are among `hosts` too).
    pub(crate) removed: Vec<Removed>,
}

impl Inputs {
    /// The directory next to the inventory where lbdeploy keeps its
    /// generations and lock.
    pub fn state_dir(&self) -> PathBuf {
        let dir = self.inventory.parent().unwrap_or(Path::new(""));
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        dir.join(".lbdeploy")
    }
}

/// Load the inventory file and prepare.
///
/// # Errors
/// An unreadable or invalid inventory (every problem listed), broken
/// roles, a bad binary, a `--limit` that matches nothing.
pub(crate) fn prepare(
    inputs: &Inputs,
    env: &dyn Environment,
) -> anyhow::Result<Prepared> {
    let text = std::fs::read_to_string(&inputs.inventory).map_err(|e| {
        match inventory::load(&inputs.inventory, env) {
            Err(load) => anyhow!("{load}"),
            Ok(_) => anyhow!(e),
        }
    })?;
    prepare_text(inputs, &text, env)
}

/// Prepare from inventory text (a generation's, for rollback); messages
/// name `inputs.inventory`.
///
/// # Errors
/// As [`prepare`].
pub(crate) fn prepare_text(
    inputs: &Inputs,
    text: &str,
    env: &dyn Environment,
) -> anyhow::Result<Prepared> {
    let base = inputs.inventory.parent().unwrap_or(Path::new("."));
    let loaded = inventory::load_str(&inputs.inventory, text, base, env)
        .map_err(|e| anyhow!("{e}"))?;
    let inv = loaded.inventory;
    // A webhook URL shows as a marker fingerprinted under the controller's
    // key in everything this run prints or saves (`util::redact`).
    if inv.notification.as_ref().is_some_and(|n| n.webhook.is_some()) {
        let key = super::generations::key_path(&inputs.state_dir());
        crate::util::redact::set_key(&super::key::load_or_create(&key)?);
    }
    let roles = match &inputs.roles_dir {
        Some(dir) => Roles::from_dir(dir)?,
        None => Roles::embedded()?,
    };
    let binary = match &inputs.binary {
        Some(p) => Binary::inspect(p)?,
        None => Binary::current()?,
    };
    let mut desired =
        desired::compile(&inv, &roles, env, base, &binary.sha256)?;
    for d in &mut desired {
        d.undrain = inputs.undrain && d.agent == inventory::Mode::Director;
    }
    let removed = match inputs.removed {
        Removals::Ignore => Vec::new(),
        Removals::Retire | Removals::Keep => {
            removed(&Store::new(&inputs.state_dir()), &inv)?
        }
    };
    let all_hosts = desired.iter().map(|d| d.name.clone()).collect();
    if inputs.removed == Removals::Retire {
        for r in &removed {
            desired.push(desired::retired(
                &r.name,
                r.agent,
                &roles,
                &binary.sha256,
            )?);
        }
    }
    let candidates: Vec<Candidate<'_>> = desired
        .iter()
        .map(|d| Candidate { name: &d.name, role: d.agent })
        .collect();
    let chosen: Vec<String> = select(&candidates, &inputs.limit)?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut hosts = Vec::new();
    for d in desired {
        if !chosen.contains(&d.name) {
            continue;
        }
        let retiring = removed.iter().find(|r| d.retire && r.name == d.name);
        if let Some(r) = retiring {
            hosts.push((d, r.target.clone()));
            continue;
        }
        let Some(target) = Target::of(&inv, &d.name) else {
            bail!("host {} has a desired state but no inventory entry", d.name);
        };
        hosts.push((d, target));
    }
    Ok(Prepared {
        inventory_sha256: hex(&Sha256::digest(text.as_bytes())),
        text: text.to_owned(),
        inventory: inv,
        binary,
        hosts,
        all_hosts,
        removed,
    })
}
