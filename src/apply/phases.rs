//! The order `apply` converges hosts in, because Direct Routing is
//! unforgiving: real servers first (ARP suppression must be in force before
//! any VIP appears on their `lo`), then the backup directors, then the
//! master, so the VIP moves at most once.
//!
//! Directors that announce VIPs over BGP all carry traffic: they change
//! one at a time, each confirmed (its sessions up again) before the next
//! begins, so the others carry its flows while it changes.
//!
//! Hosts that have left the inventory are retired at either end. A
//! removed director goes first: stopped, a master resigns (a priority-0
//! advert) while the directors that stay still accept its adverts, so one
//! of them takes over within its skew time. Reconfigured first, they would
//! ignore it as a stranger, and both would hold the VIP from their
//! Master_Down_Interval until it stopped — for good, if its retirement
//! failed. A removed real server goes last: by then no director sends it
//! traffic. Pure.

use crate::inventory::{Inventory, effective_priority};

/// One step of an apply: hosts that may change in parallel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phase {
    /// For progress and recap: `removed directors`, `real servers`,
    /// `backup directors`, `master`, `removed real servers`.
    pub name: &'static str,
    /// Host names, inventory order.
    pub hosts: Vec<String>,
}

/// The phases for `selected` hosts (others are left out); empty phases are
/// dropped. `was_director` says which selected hosts the inventory does
/// not name were directors.
pub(crate) fn phases(
    inv: &Inventory,
    selected: &[String],
    was_director: impl Fn(&str) -> bool,
) -> Vec<Phase> {
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
    let (removed_directors, removed_real_servers): (Vec<String>, Vec<String>) =
        selected
            .iter()
            .filter(|n| !in_inventory(n))
            .cloned()
            .partition(|n| was_director(n));
    let directors = match inv.bgp.is_some() {
        false => vec![
            Phase { name: "backup directors", hosts: backups },
            Phase { name: "master", hosts: master },
        ],
        true => backups
            .into_iter()
            .chain(master)
            .map(|h| Phase {
                name: "director (BGP: one at a time)",
                hosts: vec![h],
            })
            .collect(),
    };
    [
        Phase { name: "removed directors", hosts: removed_directors },
        Phase { name: "real servers", hosts: real_servers },
    ]
    .into_iter()
    .chain(directors)
    .chain([Phase {
        name: "removed real servers",
        hosts: removed_real_servers,
    }])
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

    fn never(_: &str) -> bool {
        false
    }

    #[test]
    fn real_servers_then_backups_then_the_highest_priority() {
        let p = phases(&inventory(), &all(), never);
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
    /// it; a real server is retired after every host that stays, a
    /// director before them.
    #[test]
    fn r19_removed_real_servers_come_last_and_removed_directors_first() {
        let mut selected = all();
        selected.insert(0, "r9".to_owned());
        selected.push("d9".to_owned());
        let p = phases(&inventory(), &selected, |h| h == "d9");
        let names: Vec<_> =
            p.iter().map(|p| (p.name, p.hosts.clone())).collect();
        assert_eq!(names.len(), 5);
        assert_eq!(names[0], ("removed directors", vec!["d9".to_owned()]));
        assert_eq!(names[4], ("removed real servers", vec!["r9".to_owned()]));
    }

    #[test]
    fn r20_bgp_directors_change_one_at_a_time_the_master_last() {
        let mut inv = inventory();
        inv.directors.push(
            serde_yaml::from_str(
                "{ name: d3, address: 10.0.0.3/24, interface: eth0, priority: 50 }",
            )
            .unwrap(),
        );
        inv.bgp = Some(
            serde_yaml::from_str(
                "{ local_as: 65001, peers: [{ address: 10.0.0.254, as: 65000 }] }",
            )
            .unwrap(),
        );
        let mut selected = all();
        selected.push("d3".into());
        let p = phases(&inv, &selected, never);
        let hosts: Vec<_> = p.iter().map(|p| p.hosts.clone()).collect();
        assert_eq!(
            hosts,
            [vec!["r1", "r2"], vec!["d1"], vec!["d3"], vec!["d2"]]
        );
    }

    #[test]
    fn per_instance_priorities_decide_the_master() {
        let mut inv = inventory();
        inv.vrrp_instances[0]
            .priorities
            .insert("d1".into(), crate::inventory::Priority::new(200).unwrap());
        let p = phases(&inv, &all(), never);
        assert_eq!(p[2].hosts, ["d1"]);
    }

    #[test]
    fn unselected_hosts_and_empty_phases_are_left_out() {
        let p = phases(&inventory(), &["d1".to_owned()], never);
        assert_eq!(
            p,
            [Phase { name: "backup directors", hosts: vec!["d1".into()] }]
        );
    }
}
