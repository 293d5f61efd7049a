//! The controller's record of applied generations, in `.lbdeploy/` next to
//! the inventory: `generations/N/inventory.yml` (the inventory as applied)
//! and `generations/N/meta.json` (when, who, what, per-host outcome).
//!
//! Inline secrets are never stored: before a generation is written, each
//! inline VRRP password becomes a reference `password_env:
//! LBDEPLOY_SECRET_<instance>` and only a keyed fingerprint of it is kept
//! (HMAC-SHA-256 under `.lbdeploy/controller.key`, `KEY_FILE`). Rolling
//! back answers those references from the current inventory, and refuses
//! when the current password is not the one that generation used.
//!
//! Why keyed: a VRRPv2 password is at most 8 bytes, so a plain hash of it
//! in `meta.json` is brute-forced in milliseconds. The key is 32 random
//! bytes made on first use, mode 0600, created exclusively and never
//! replaced — a new key would make every earlier fingerprint unverifiable.
//! Generations recorded before the key existed hold a plain SHA-256; they
//! are still checked, never written again.
//!
//! An inline webhook URL with something to hide (a path, a query, a
//! userinfo) is stored redacted — the marker `util::redact` shows in plans
//! — with its fingerprint beside the passwords' under `WEBHOOK`; rolling
//! back puts the current inventory's URL back when it is the same one. A
//! URL from `url_env` or `url_file` is stored as that reference, and read
//! again when rolling back, as a password's is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::recap::HostResult;
use crate::inventory::{Environment, Inventory};
use crate::util::files::write_atomic;
use crate::util::hex::hex;
use crate::util::hmac::hmac_sha256;
use crate::util::redact;

/// The controller's fingerprint key, in the state directory.
pub(crate) const KEY_FILE: &str = "controller.key";

/// The controller's key in state directory `state_dir`.
pub(crate) fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEY_FILE)
}

/// The `secrets` entry of the webhook URL: a space, which no instance
/// name has, keeps it apart from them.
/// It is also what `util::redact` fingerprints a URL under, so a plan's
/// marker is the start of the print recorded here.
pub(crate) const WEBHOOK: &str = redact::PRINT_LABEL;

/// How a keyed fingerprint is marked in `meta.json`; an unmarked value is
/// the plain SHA-256 of generations recorded before the key existed.
const HMAC_PREFIX: &str = "hmac-sha256:";

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
    /// SHA-256 of the inventory as this generation stores it, with its
    /// secrets' fingerprints ([`canonical_sha256`]): the same inventory
    /// has the same hash whether it was applied from its file or restored
    /// by a rollback, and whatever its comments and layout. Generations
    /// recorded before this rule hold the hash of the file's text.
    pub inventory_sha256: String,
    /// SHA-256 of the agent binary installed.
    pub binary_sha256: String,
    /// Per VRRP instance with an inline password: its keyed fingerprint
    /// (`hmac-sha256:HEX`), never the password nor a plain hash of it.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Per host: `ok`, `changed`, `failed`, `unreachable`, `rolled back`.
    pub hosts: BTreeMap<String, HostResult>,
    /// The generation a rollback restored; absent for an apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<u64>,
    /// Hosts that have left the inventory but are not retired yet
    /// (unreachable, failed, not reached, or kept by `--keep-removed`),
    /// each with the generation whose inventory describes it: the next
    /// apply tries again (`apply::removed`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retiring: BTreeMap<String, u64>,
}

/// What a rollback restores, for the generation it records: the number,
/// and that generation's secret fingerprints (its inventory refers to
/// them; without them the new generation could not be rolled back to, and
/// its hash would not be the restored one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restored {
    /// The generation restored.
    pub number: u64,
    /// Its secrets' fingerprints, as recorded.
    pub secrets: BTreeMap<String, String>,
}

/// The hash a generation records for inventory `stored` (as
/// [`Store::without_secrets`] makes it) and its secrets' fingerprints:
/// the YAML serde writes for it, which holds no comment and no layout of
/// the file, then the fingerprints. Two inventories with the same
/// settings and the same secrets hash alike; a changed password changes
/// the hash through its fingerprint.
///
/// # Errors
/// When the inventory cannot be serialised.
pub(crate) fn canonical_sha256(
    stored: &Inventory,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    h.update(serde_yaml::to_string(stored)?.as_bytes());
    for (name, print) in secrets {
        h.update(format!("\0{name}\0{print}").as_bytes());
    }
    Ok(hex(&h.finalize()))
}

/// `.lbdeploy/generations`.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
    key: PathBuf,
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

/// The fingerprint of instance `instance`'s password under `key`: the
/// instance is part of the message, so two instances sharing a password
/// do not show it.
fn fingerprint(key: &[u8], instance: &str, password: &str) -> String {
    let message = [instance.as_bytes(), b"\0", password.as_bytes()].concat();
    format!("{HMAC_PREFIX}{}", hex(&hmac_sha256(key, &message)))
}

/// Whether `stored` (keyed, or a legacy plain SHA-256) is `password`'s.
fn matches(
    stored: &str,
    key: Option<&[u8]>,
    instance: &str,
    password: &str,
) -> bool {
    match (stored.strip_prefix(HMAC_PREFIX), key) {
        (Some(_), Some(key)) => stored == fingerprint(key, instance, password),
        (Some(_), None) => false,
        (None, _) => stored == hex(&Sha256::digest(password.as_bytes())),
    }
}

/// The webhook URL of `inv` when it is inline and its redaction hides
/// something (a path, a query, a password). A URL from `url_env` or
/// `url_file` is stored as that reference, like a password's.
fn secret_webhook(inv: &Inventory) -> Option<&str> {
    let url = inv.notification.as_ref()?.webhook.as_ref()?.inline()?;
    (redact::text(url) != url).then_some(url)
}

/// Whether `inv` holds any inline secret (and so needs the key).
fn has_inline_secrets(inv: &Inventory) -> bool {
    secret_webhook(inv).is_some()
        || inv.vrrp_instances.iter().any(|v| {
            v.authentication.as_ref().is_some_and(|a| a.password.is_some())
        })
}

/// `inv` with every inline password turned into a reference and a
/// webhook URL's credentials redacted, and the secrets' fingerprints under
/// `key` by instance (and [`WEBHOOK`]).
fn without_secrets(
    inv: &Inventory,
    key: &[u8],
) -> (Inventory, BTreeMap<String, String>) {
    let mut prints = BTreeMap::new();
    let mut inv = inv.clone();
    if let Some(url) = secret_webhook(&inv).map(str::to_owned) {
        prints.insert(WEBHOOK.to_owned(), fingerprint(key, WEBHOOK, &url));
        let n = inv.notification.as_mut().expect("it has a webhook");
        let w = n.webhook.as_mut().expect("it has a webhook");
        w.set_inline(redact::keyed(&url, Some(key)).into_owned());
    }
    for vi in &mut inv.vrrp_instances {
        let Some(auth) = &mut vi.authentication else { continue };
        if let Some(p) = auth.password.take() {
            prints.insert(vi.name.clone(), fingerprint(key, &vi.name, &p));
            auth.password_env = Some(secret_var(&vi.name));
        }
    }
    (inv, prints)
}

/// The environment a stored generation is compiled in: its secret
/// references answered from the current inventory's inline passwords.
pub(crate) struct Secrets<'a> {
    inner: &'a dyn Environment,
    values: BTreeMap<String, String>,
    /// The webhook URL to put back, checked against its fingerprint.
    webhook: Option<String>,
}

impl<'a> Secrets<'a> {
    /// Answer generation `meta`'s secrets from `current`, checked against
    /// its fingerprints under `key` (`None`: the controller has no key).
    ///
    /// # Errors
    /// When an instance the generation had a password for has none, or a
    /// different one, in the current inventory.
    fn new(
        inner: &'a dyn Environment,
        meta: &Meta,
        current: Option<&Inventory>,
        key: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let mut values = BTreeMap::new();
        let mut webhook = None;
        for (instance, stored) in &meta.secrets {
            if instance == WEBHOOK {
                let url = current.and_then(|inv| {
                    let w = inv.notification.as_ref()?.webhook.as_ref()?;
                    w.inline().map(str::to_owned)
                });
                match url {
                    Some(u) if matches(stored, key, WEBHOOK, &u) => {
                        webhook = Some(u);
                    }
                    _ => bail!(
                        "generation {} notified an inline webhook URL with a token, \
                         which is not stored (secrets never are), and the \
                         current inventory does not hold the same URL — put it \
                         back in the inventory",
                        meta.number
                    ),
                }
                continue;
            }
            let password = current
                .and_then(|inv| {
                    inv.vrrp_instances.iter().find(|v| &v.name == instance)
                })
                .and_then(|v| v.authentication.as_ref()?.password.clone());
            match password {
                Some(p) if matches(stored, key, instance, &p) => {
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
        Ok(Self { inner, values, webhook })
    }

    /// A stored generation's inventory `text` with the secrets that are
    /// not references (the webhook URL) put back.
    ///
    /// # Errors
    /// When `text` is not an inventory.
    pub fn restore(&self, text: &str) -> anyhow::Result<String> {
        let Some(url) = &self.webhook else { return Ok(text.to_owned()) };
        let mut inv: Inventory = serde_yaml::from_str(text)
            .context("the stored generation is not an inventory")?;
        if let Some(w) =
            inv.notification.as_mut().and_then(|n| n.webhook.as_mut())
        {
            w.set_inline(url.clone());
        }
        Ok(serde_yaml::to_string(&inv)?)
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
        Self { dir: state_dir.join("generations"), key: key_path(state_dir) }
    }

    /// `inv` as a generation stores it (inline passwords as references)
    /// and its passwords' fingerprints, made with this controller's key
    /// (created on first use).
    ///
    /// # Errors
    /// When the key cannot be read or created.
    pub fn without_secrets(
        &self,
        inv: &Inventory,
    ) -> anyhow::Result<(Inventory, BTreeMap<String, String>)> {
        let key = match has_inline_secrets(inv) {
            true => super::key::load_or_create(&self.key)?,
            // Nothing to fingerprint: no key is made for nothing.
            false => Vec::new(),
        };
        Ok(without_secrets(inv, &key))
    }

    /// The environment generation `meta` is compiled in: its secret
    /// references answered from `current`'s inline passwords, each checked
    /// against the generation's fingerprint.
    ///
    /// # Errors
    /// When a password is missing or differs, or the key is unreadable.
    pub fn secrets<'a>(
        &self,
        inner: &'a dyn Environment,
        meta: &Meta,
        current: Option<&Inventory>,
    ) -> anyhow::Result<Secrets<'a>> {
        let keyed = meta.secrets.values().any(|s| s.starts_with(HMAC_PREFIX));
        let key = match keyed {
            true => super::key::load(&self.key)?,
            false => None,
        };
        Secrets::new(inner, meta, current, key.as_deref())
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
    use crate::inventory::Webhook;

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
            restored: None,
            retiring: BTreeMap::new(),
        }
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn inline_passwords_become_references_and_come_back() {
        let (stored, prints) = without_secrets(&inventory(), KEY);
        let auth = stored.vrrp_instances[0].authentication.as_ref().unwrap();
        assert_eq!(auth.password, None);
        assert_eq!(auth.password_env.as_deref(), Some("LBDEPLOY_SECRET_VI_1"));
        let env = Secrets::new(
            &crate::inventory::System,
            &meta(1, prints),
            Some(&inventory()),
            Some(KEY),
        )
        .unwrap();
        assert_eq!(env.var("LBDEPLOY_SECRET_VI_1").as_deref(), Some("1111"));
    }

    /// Issue #19: a rollback's inventory is the stored text, loaded
    /// again, with the restored generation's fingerprints; it must hash
    /// as the inventory it restores, and a comment or a new layout must
    /// not move the hash while a changed password must.
    #[test]
    fn r19_the_same_inventory_hashes_alike_however_it_came() {
        let (stored, prints) = without_secrets(&inventory(), KEY);
        let applied = canonical_sha256(&stored, &prints).unwrap();
        let text = serde_yaml::to_string(&stored).unwrap();
        let reloaded: Inventory =
            serde_yaml::from_str(&format!("# lbdeploy generation 1\n{text}"))
                .unwrap();
        // A rollback's inventory holds references: nothing to fingerprint.
        let (again, none) = without_secrets(&reloaded, KEY);
        assert!(none.is_empty());
        assert_eq!(canonical_sha256(&again, &prints).unwrap(), applied);
        let relaid: Inventory = serde_yaml::from_str(
            "# a comment\ncluster: t\ndirectors: [{ name: d1, address: \
             10.0.0.1/24, interface: eth0, priority: 100 }]\n\
             vrrp_instances:\n  - { name: VI-1, virtual_router_id: 1,\n    \
             authentication: { type: pass, password: '1111' },\n    \
             virtual_addresses: [{ address: 10.0.0.100/24 }] }\n",
        )
        .unwrap();
        let (s, p) = without_secrets(&relaid, KEY);
        assert_eq!(canonical_sha256(&s, &p).unwrap(), applied);
        let mut other = inventory();
        other.vrrp_instances[0].authentication.as_mut().unwrap().password =
            Some("2222".into());
        let (s, p) = without_secrets(&other, KEY);
        assert_ne!(canonical_sha256(&s, &p).unwrap(), applied);
    }

    #[test]
    fn the_fingerprint_is_keyed_not_a_plain_hash() {
        let (_, prints) = without_secrets(&inventory(), KEY);
        let print = &prints["VI-1"];
        let plain = hex(&Sha256::digest(b"1111"));
        assert!(print.starts_with(HMAC_PREFIX), "{print}");
        assert!(!print.contains(&plain), "{print}");
        let (_, other) = without_secrets(&inventory(), &[7; 32]);
        assert_ne!(&other["VI-1"], print, "another key, another print");
        // Without the key, a keyed print matches no password.
        assert!(!matches(print, None, "VI-1", "1111"));
        assert!(matches(print, Some(KEY), "VI-1", "1111"));
        assert!(!matches(print, Some(KEY), "VI-2", "1111"));
    }

    #[test]
    fn a_webhook_with_credentials_is_stored_redacted_and_put_back() {
        let url = "http://bot:pw@h/hook?token=tok";
        let mut inv = inventory();
        inv.notification = Some(crate::inventory::Notification {
            webhook: Some(Webhook::Url(url.into())),
            ..Default::default()
        });
        let (stored, prints) = without_secrets(&inv, KEY);
        let text = serde_yaml::to_string(&stored).unwrap();
        assert!(!text.contains("pw@") && !text.contains("tok"), "{text}");
        // The stored marker is the start of the print in meta.json.
        let print = &prints[WEBHOOK]["hmac-sha256:".len()..];
        let marker = format!("(sensitive:{})", &print[..redact::PRINT_HEX]);
        let shown = redact::keyed(url, Some(KEY)).into_owned();
        assert_eq!(shown, format!("http://(sensitive)@h/{marker}"));
        assert!(text.contains(&shown), "{text}");
        let meta = meta(1, prints);
        let env = Secrets::new(
            &crate::inventory::System,
            &meta,
            Some(&inv),
            Some(KEY),
        )
        .unwrap();
        let back: Inventory =
            serde_yaml::from_str(&env.restore(&text).unwrap()).unwrap();
        assert_eq!(back.notification, inv.notification);
        let mut moved = inv.clone();
        moved.notification.as_mut().unwrap().webhook =
            Some(Webhook::Url("http://bot:other@h/hook?token=tok".into()));
        let e = Secrets::new(
            &crate::inventory::System,
            &meta,
            Some(&moved),
            Some(KEY),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("webhook URL"), "{e}");
    }

    #[test]
    fn generations_recorded_before_the_key_still_roll_back() {
        let legacy = BTreeMap::from([(
            "VI-1".to_owned(),
            hex(&Sha256::digest(b"1111")),
        )]);
        let env = Secrets::new(
            &crate::inventory::System,
            &meta(1, legacy),
            Some(&inventory()),
            None,
        )
        .unwrap();
        assert_eq!(env.var("LBDEPLOY_SECRET_VI_1").as_deref(), Some("1111"));
    }

    #[test]
    fn a_changed_password_cannot_be_rolled_back_to_silently() {
        let (_, prints) = without_secrets(&inventory(), KEY);
        let mut current = inventory();
        current.vrrp_instances[0].authentication.as_mut().unwrap().password =
            Some("2222".into());
        let e = Secrets::new(
            &crate::inventory::System,
            &meta(3, prints),
            Some(&current),
            Some(KEY),
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
        let (stored, prints) = store.without_secrets(&inventory()).unwrap();
        store.record(&meta(1, prints.clone()), &stored).unwrap();
        store.record(&meta(2, prints), &stored).unwrap();
        assert_eq!(store.last().unwrap(), Some(2));
        let text = store.inventory(1).unwrap();
        assert!(!text.contains("1111"), "{text}");
        let back: Inventory = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, stored);
        let meta1 = store.meta(1).unwrap();
        let env = store
            .secrets(&crate::inventory::System, &meta1, Some(&inventory()))
            .unwrap();
        assert_eq!(env.var("LBDEPLOY_SECRET_VI_1").as_deref(), Some("1111"));
        assert!(
            store.meta(9).unwrap_err().to_string().contains("no generation 9")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
