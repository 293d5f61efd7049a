//! The order `apply` converges hosts in, because Direct Routing is
//! unforgiving: real servers first (ARP suppression must be in force before
//! any VIP appears on their `lo`), then the backup directors, then the
//! master, so the VIP moves at most once. Hosts that have left the
//! inventory come after all of them: by then the directors no longer
//! send a removed real server traffic, and a removed director's peers no
//! longer expect it. Pure.

use crate::inventory::{Inventory, effective_priority};

/// One step of an apply: hosts that may change in parallel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phase {
    /// For progress and recap: `real servers`, `backup directors`,
    /// `master`, `removed hosts`.
    pub name: &'static str,
    /// Host names, inventory order.
    pub hosts: Vec<String>,
}

/// The phases for `selected` hosts (others are left out); empty phases are
/// dropped.
pub(crate) fn phases(inv: &Inventory, selected: &[String]) -> Vec<Phase> {
    let chosen = |name: &str| selected.iter().any(|s| s == name);
    let masters: Vec<&str> = inv
        .vrrp_instances
        .iter()
        .filter_map(|vi| {
            inv.directors
                .iter()
                .max_by_key(|d| effective_priority(vi, d))
                .map(|d| d.name.as_str())
        })
        .collect();
    let real_servers = inv
        .real_servers
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| chosen(n))
        .collect();
    let (master, backups): (Vec<String>, Vec<String>) = inv
        .directors
        .iter()
        .map(|d| d.name.clone())
        .filter(|n| chosen(n))
        .partition(|n| masters.contains(&n.as_str()));
    let in_inventory = |name: &str| {
        inv.directors.iter().any(|d| d.name == name)
            || inv.real_servers.iter().any(|r| r.name == name)
    };
    let removed =
        selected.iter().filter(|n| !in_inventory(n)).cloned().collect();
    [
        Phase { name: "real servers", hosts: real_servers },
        Phase { name: "backup directors", hosts: backups },
        Phase { name: "master", hosts: master },
        Phase { name: "removed hosts", hosts: removed },
    ]
    .into_iter()
    .filter(|p| !p.hosts.is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        serde_yaml::from_str(
            "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 70 }
  - { name: d2, address: 10.0.0.2/24, interface: eth0, priority: 120 }
real_servers:
  - { name: r1, address: 10.0.0.21/24, interface: eth0 }
  - { name: r2, address: 10.0.0.22/24, interface: eth0 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 1, virtual_addresses: [{ address: 10.0.0.100/24 }] }
",
        )
        .unwrap()
    }

    fn all() -> Vec<String> {
        ["d1", "d2", "r1", "r2"].map(String::from).to_vec()
    }

    #[test]
    fn real_servers_then_backups_then_the_highest_priority() {
        let p = phases(&inventory(), &all());
        let names: Vec<_> =
            p.iter().map(|p| (p.name, p.hosts.clone())).collect();
        assert_eq!(
            names,
            [
                ("real servers", vec!["r1".to_owned(), "r2".to_owned()]),
                ("backup directors", vec!["d1".to_owned()]),
                ("master", vec!["d2".to_owned()]),
            ]
        );
    }

    /// Issue #19: a selected host the inventory does not name has left
    /// it; it is retired after every host that stays.
    #[test]
    fn r19_removed_hosts_come_last() {
        let mut selected = all();
        selected.insert(0, "r9".to_owned());
        let p = phases(&inventory(), &selected);
        let last = p.last().unwrap();
        assert_eq!(
            (last.name, last.hosts.clone()),
            ("removed hosts", vec!["r9".to_owned()])
        );
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn per_instance_priorities_decide_the_master() {
        let mut inv = inventory();
        inv.vrrp_instances[0]
            .priorities
            .insert("d1".into(), crate::inventory::Priority::new(200).unwrap());
        let p = phases(&inv, &all());
        assert_eq!(p[2].hosts, ["d1"]);
    }

    #[test]
    fn unselected_hosts_and_empty_phases_are_left_out() {
        let p = phases(&inventory(), &["d1".to_owned()]);
        assert_eq!(
            p,
            [Phase { name: "backup directors", hosts: vec!["d1".into()] }]
        );
    }
}
