//! The controller's record of applied generations, in `.lbdeploy/` next to
//! the inventory: `generations/N/inventory.yml` (the inventory as applied)
//! and `generations/N/meta.json` (when, who, what, per-host outcome).
//!
//! Inline secrets are never stored: before a generation is written, each
//! inline VRRP password becomes a reference `password_env:
//! LBDEPLOY_SECRET_<instance>` and only its SHA-256 is kept. Rolling back
//! answers those references from the current inventory, and refuses when
//! the current password is not the one that generation used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::recap::HostResult;
use crate::inventory::{Environment, Inventory};
use crate::util::files::write_atomic;
use crate::util::hex::hex;

/// What one generation records besides its inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// Its number; hosts record it too.
    pub number: u64,
    /// RFC 3339 time of the apply.
    pub time: String,
    /// `user@controller`.
    pub by: String,
    /// `apply` or `rollback --to N`.
    pub command: String,
    /// SHA-256 of the inventory file text applied (before redaction).
    pub inventory_sha256: String,
    /// SHA-256 of the agent binary installed.
    pub binary_sha256: String,
    /// Per VRRP instance with an inline password: its SHA-256.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Per host: `ok`, `changed`, `failed`, `unreachable`, `rolled back`.
    pub hosts: BTreeMap<String, HostResult>,
}

/// `.lbdeploy/generations`.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

/// A generation's environment variable for instance `name`'s password.
fn secret_var(instance: &str) -> String {
    let clean: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }
        })
        .collect();
    format!("LBDEPLOY_SECRET_{clean}")
}

/// `inv` with every inline password turned into a reference, and the
/// passwords' hashes by instance.
pub(crate) fn without_secrets(
    inv: &Inventory,
) -> (Inventory, BTreeMap<String, String>) {
    let mut inv = inv.clone();
    let mut hashes = BTreeMap::new();
    for vi in &mut inv.vrrp_instances {
        let Some(auth) = &mut vi.authentication else { continue };
        if let Some(p) = auth.password.take() {
            hashes.insert(vi.name.clone(), hex(&Sha256::digest(p.as_bytes())));
            auth.password_env = Some(secret_var(&vi.name));
        }
    }
    (inv, hashes)
}

/// The environment a stored generation is compiled in: its secret
/// references answered from the current inventory's inline passwords.
pub(crate) struct Secrets<'a> {
    inner: &'a dyn Environment,
    values: BTreeMap<String, String>,
}

impl<'a> Secrets<'a> {
    /// Answer generation `meta`'s secrets from `current`.
    ///
    /// # Errors
    /// When an instance the generation had a password for has none, or a
    /// different one, in the current inventory.
    pub fn new(
        inner: &'a dyn Environment,
        meta: &Meta,
        current: Option<&Inventory>,
    ) -> anyhow::Result<Self> {
        let mut values = BTreeMap::new();
        for (instance, hash) in &meta.secrets {
            let password = current
                .and_then(|inv| {
                    inv.vrrp_instances.iter().find(|v| &v.name == instance)
                })
                .and_then(|v| v.authentication.as_ref()?.password.clone());
            match password {
                Some(p) if &hex(&Sha256::digest(p.as_bytes())) == hash => {
                    values.insert(secret_var(instance), p);
                }
                _ => bail!(
                    "generation {} used an inline VRRP password for {instance} \
                     that is not stored (secrets never are) and the current \
                     inventory does not hold the same one — put that password \
                     back in the inventory, or keep passwords in \
                     `password_file`/`password_env`",
                    meta.number
                ),
            }
        }
        Ok(Self { inner, values })
    }
}

impl Environment for Secrets<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned().or_else(|| self.inner.var(name))
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        self.inner.read_file(path)
    }
}

impl Store {
    /// The store under `state_dir` (`.lbdeploy`).
    pub fn new(state_dir: &Path) -> Self {
        Self { dir: state_dir.join("generations") }
    }

    /// Every generation's meta, oldest first.
    ///
    /// # Errors
    /// When the directory exists but a generation cannot be read.
    pub fn list(&self) -> anyhow::Result<Vec<Meta>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut numbers: Vec<u64> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        numbers.sort_unstable();
        numbers.into_iter().map(|n| self.meta(n)).collect()
    }

    /// The newest generation's number.
    ///
    /// # Errors
    /// As [`Store::list`].
    pub fn last(&self) -> anyhow::Result<Option<u64>> {
        Ok(self.list()?.last().map(|m| m.number))
    }

    /// Generation `n`'s meta.
    ///
    /// # Errors
    /// When it does not exist or cannot be read.
    pub fn meta(&self, n: u64) -> anyhow::Result<Meta> {
        let path = self.dir.join(n.to_string()).join("meta.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow!(
                "there is no generation {n} ({}: {e}) — see `lbdeploy history`",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", path.display()))
    }

    /// Generation `n`'s inventory (secrets as references).
    ///
    /// # Errors
    /// When it cannot be read.
    pub fn inventory(&self, n: u64) -> anyhow::Result<String> {
        let path = self.dir.join(n.to_string()).join("inventory.yml");
        std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))
    }

    /// Record a generation: the inventory first, the meta last, so a
    /// generation whose meta exists is complete.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn record(
        &self,
        meta: &Meta,
        inventory: &Inventory,
    ) -> anyhow::Result<()> {
        let dir = self.dir.join(meta.number.to_string());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let text = format!(
            "# lbdeploy generation {}: the inventory as applied; inline \
             secrets are references, never stored.\n{}",
            meta.number,
            serde_yaml::to_string(inventory)?
        );
        write_atomic(&dir.join("inventory.yml"), text.as_bytes(), 0o600)?;
        let json = serde_json::to_string_pretty(meta)? + "\n";
        write_atomic(&dir.join("meta.json"), json.as_bytes(), 0o600)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        serde_yaml::from_str(
            "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
vrrp_instances:
  - name: VI-1
    virtual_router_id: 1
    authentication: { type: pass, password: '1111' }
    virtual_addresses: [{ address: 10.0.0.100/24 }]
",
        )
        .unwrap()
    }

    fn meta(n: u64, secrets: BTreeMap<String, String>) -> Meta {
        Meta {
            number: n,
            time: "2026-11-26T00:00:00Z".into(),
            by: "root@ctl".into(),
            command: "apply".into(),
            inventory_sha256: "i".into(),
            binary_sha256: "b".into(),
            secrets,
            hosts: BTreeMap::new(),
        }
    }

    #[test]
    fn inline_passwords_become_references_and_come_back() {
        let (stored, hashes) = without_secrets(&inventory());
        let auth = stored.vrrp_instances[0].authentication.as_ref().unwrap();
        assert_eq!(auth.password, None);
        assert_eq!(auth.password_env.as_deref(), Some("LBDEPLOY_SECRET_VI_1"));
        let env = Secrets::new(
            &crate::inventory::System,
            &meta(1, hashes),
            Some(&inventory()),
        )
        .unwrap();
        assert_eq!(env.var("LBDEPLOY_SECRET_VI_1").as_deref(), Some("1111"));
    }

    #[test]
    fn a_changed_password_cannot_be_rolled_back_to_silently() {
        let (_, hashes) = without_secrets(&inventory());
        let mut current = inventory();
        current.vrrp_instances[0].authentication.as_mut().unwrap().password =
            Some("2222".into());
        let e = Secrets::new(
            &crate::inventory::System,
            &meta(3, hashes),
            Some(&current),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("generation 3") && e.contains("VI-1"), "{e}");
    }

    #[test]
    fn store_records_lists_and_reads_back() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-gen-{}", std::process::id()));
        let store = Store::new(&dir);
        assert_eq!(store.last().unwrap(), None);
        let (stored, hashes) = without_secrets(&inventory());
        store.record(&meta(1, hashes.clone()), &stored).unwrap();
        store.record(&meta(2, hashes), &stored).unwrap();
        assert_eq!(store.last().unwrap(), Some(2));
        let text = store.inventory(1).unwrap();
        assert!(!text.contains("1111"), "{text}");
        let back: Inventory = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, stored);
        assert!(
            store.meta(9).unwrap_err().to_string().contains("no generation 9")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
