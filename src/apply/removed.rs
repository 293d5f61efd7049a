//! Hosts that have left the inventory (issue #19): a host the last
//! recorded generation had, or one an earlier apply could not retire yet,
//! that the inventory being applied no longer names. `apply` retires each
//! one last (`phases`), after the directors have stopped sending it
//! traffic: its agent stopped and disabled, its files removed, the
//! sysctls lbdeploy set put back (`host::originals`).
//!
//! A generation stores its whole inventory, so the host's SSH target and
//! role come from there — from the generation that last had the host.
//! Only what reaching and naming it needs is read, never rendered: no
//! password of that generation has to be answered.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use anyhow::Context as _;

use super::generations::Store;
use crate::inventory::{Inventory, Mode};
use crate::transport::Target;

/// One host to retire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Its name in the generation that had it.
    pub name: String,
    /// Its agent's mode there.
    pub agent: Mode,
    /// How to reach it, as that generation says.
    pub target: Target,
    /// That generation's number.
    pub from: u64,
}

/// The hosts to retire when `inv` is applied: those of the last
/// generation's inventory and of its retirements still to do
/// (`Meta::retiring`) that `inv` does not name, by name.
///
/// # Errors
/// When a generation's meta or inventory cannot be read or parsed.
pub(crate) fn removed(
    store: &Store,
    inv: &Inventory,
) -> anyhow::Result<Vec<Removed>> {
    let Some(last) = store.last()? else { return Ok(Vec::new()) };
    let meta = store.meta(last)?;
    let mut from: BTreeMap<String, u64> = meta.retiring.clone();
    let mut inventories = BTreeMap::new();
    let newest = load(store, last)?;
    for name in hosts(&newest) {
        from.insert(name.to_owned(), last);
    }
    inventories.insert(last, newest);
    let mut out = Vec::new();
    for (name, n) in from {
        if hosts(inv).any(|h| h == name) {
            continue;
        }
        let old = match inventories.entry(n) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(load(store, n)?),
        };
        let (Some(target), Some(agent)) =
            (Target::of(old, &name), mode(old, &name))
        else {
            anyhow::bail!(
                "generation {last} lists {name} to retire, but generation \
                 {n}'s inventory has no such host"
            );
        };
        out.push(Removed { name, agent, target, from: n });
    }
    Ok(out)
}

/// The retirements still to do after an apply of `removed` whose hosts
/// ended as `done` says: every host not retired this time, with the
/// generation that describes it. Pure.
pub(crate) fn still_retiring(
    removed: &[Removed],
    done: impl Fn(&str) -> bool,
) -> BTreeMap<String, u64> {
    removed
        .iter()
        .filter(|r| !done(&r.name))
        .map(|r| (r.name.clone(), r.from))
        .collect()
}

/// Generation `n`'s inventory, as stored (secrets as references).
fn load(store: &Store, n: u64) -> anyhow::Result<Inventory> {
    let text = store.inventory(n)?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("generation {n}'s inventory is damaged"))
}

/// Every host `inv` names, directors first.
fn hosts(inv: &Inventory) -> impl Iterator<Item = &str> {
    let directors = inv.directors.iter().map(|d| d.name.as_str());
    directors.chain(inv.real_servers.iter().map(|r| r.name.as_str()))
}

/// The agent mode of host `name` in `inv`.
fn mode(inv: &Inventory, name: &str) -> Option<Mode> {
    if inv.directors.iter().any(|d| d.name == name) {
        Some(Mode::Director)
    } else if inv.real_servers.iter().any(|r| r.name == name) {
        Some(Mode::Realserver)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::generations::Meta;

    fn inventory(real_servers: &[&str]) -> Inventory {
        let mut text = "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 1, virtual_addresses: [{ address: 10.0.0.100/24 }] }
"
        .to_owned();
        if !real_servers.is_empty() {
            text.push_str("real_servers:\n");
        }
        for (i, name) in real_servers.iter().enumerate() {
            text.push_str(&format!(
                "  - {{ name: {name}, address: 10.0.0.{}/24, interface: eth0, \
                 ssh: {{ port: 2222 }} }}\n",
                21 + i
            ));
        }
        serde_yaml::from_str(&text).unwrap()
    }

    fn meta(n: u64, retiring: &[(&str, u64)]) -> Meta {
        Meta {
            number: n,
            time: "2026-12-06T00:00:00Z".into(),
            by: "root@ctl".into(),
            command: "apply".into(),
            inventory_sha256: "i".into(),
            binary_sha256: "b".into(),
            secrets: BTreeMap::new(),
            hosts: BTreeMap::new(),
            restored: None,
            retiring: retiring
                .iter()
                .map(|(h, n)| (h.to_string(), *n))
                .collect(),
        }
    }

    /// Issue #19: a host of the last generation that the inventory no
    /// longer names is retired, and so is one an earlier apply could not
    /// retire, each reached as the generation that had it says; a host
    /// back in the inventory is not.
    #[test]
    fn r19_removed_hosts_come_from_the_last_generation_and_its_backlog() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-removed-{}", std::process::id()));
        let store = Store::new(&dir);
        assert_eq!(removed(&store, &inventory(&[])).unwrap(), []);
        store.record(&meta(1, &[]), &inventory(&["r1", "r2"])).unwrap();
        store.record(&meta(2, &[("r2", 1)]), &inventory(&["r1"])).unwrap();
        let gone = removed(&store, &inventory(&[])).unwrap();
        let names: Vec<_> =
            gone.iter().map(|r| (r.name.as_str(), r.agent, r.from)).collect();
        assert_eq!(
            names,
            [("r1", Mode::Realserver, 2), ("r2", Mode::Realserver, 1)]
        );
        assert_eq!(gone[1].target.destination, "10.0.0.22");
        assert_eq!(gone[1].target.port, 2222);
        let back = removed(&store, &inventory(&["r2"])).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].name, "r1");
        let left = still_retiring(&gone, |h| h == "r1");
        assert_eq!(left, BTreeMap::from([("r2".to_owned(), 1)]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
