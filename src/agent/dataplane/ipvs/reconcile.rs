//! From the table lbdeploy wants and the table the kernel has, the
//! operations that turn one into the other — and never a flush. Pure.
//!
//! # What lbdeploy owns
//!
//! The kernel does not record who created a service, so lbdeploy decides:
//!
//! * every service in the **desired** table is lbdeploy's: it is created
//!   or updated to match (an existing one, e.g. left by keepalived, is
//!   adopted);
//! * a service **not** desired is deleted only if it is in [`Owned`] —
//!   what lbdeploy installed before, kept in a state file under
//!   `/run/lbdeploy` (see `super::owned_path`) and in the worker's
//!   memory. Anything else (added with `ipvsadm`, by another daemon) is left
//!   alone and reported as [`Foreign`];
//! * likewise a destination is deleted only when lbdeploy installed it;
//!   one added by hand, even inside an lbdeploy service, is left alone and
//!   reported. An owned service that still holds such a destination is not
//!   deleted (that would take the foreign destination with it): its own
//!   destinations are removed and the service stays, reported.
//!
//! After a successful apply the record becomes [`Owned::of`] the desired
//! table.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Dest, DestKey, ServiceKey, Settings, Table};

/// One change to the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `IPVS_CMD_NEW_SERVICE`.
    AddService(ServiceKey, Settings),
    /// `IPVS_CMD_SET_SERVICE`: scheduler, persistence changed.
    UpdateService(ServiceKey, Settings),
    /// `IPVS_CMD_DEL_SERVICE` (the kernel drops its destinations with it).
    DelService(ServiceKey),
    /// `IPVS_CMD_NEW_DEST`.
    AddDest(ServiceKey, DestKey, Dest),
    /// `IPVS_CMD_SET_DEST`: weight, method or thresholds changed.
    UpdateDest(ServiceKey, DestKey, Dest),
    /// `IPVS_CMD_DEL_DEST`.
    DelDest(ServiceKey, DestKey),
}

/// For logs: `add service TCP 10.0.0.1:80 rr`.
impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::AddService(k, s) => {
                write!(f, "add service {k} {}", s.scheduler)
            }
            Op::UpdateService(k, s) => {
                write!(f, "update service {k} {}", s.scheduler)
            }
            Op::DelService(k) => write!(f, "delete service {k}"),
            Op::AddDest(k, d, v) => {
                write!(f, "add {k} -> {d} {} {}", v.forward, v.weight)
            }
            Op::UpdateDest(k, d, v) => {
                write!(f, "update {k} -> {d} {} {}", v.forward, v.weight)
            }
            Op::DelDest(k, d) => write!(f, "delete {k} -> {d}"),
        }
    }
}

/// Something in the kernel's table lbdeploy did not create and leaves
/// alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// A whole service (with whatever destinations it has).
    Service(ServiceKey),
    /// A destination in a service lbdeploy manages.
    Dest(ServiceKey, DestKey),
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Foreign::Service(k) => write!(f, "service {k}"),
            Foreign::Dest(k, d) => write!(f, "destination {k} -> {d}"),
        }
    }
}

/// The outcome of [`reconcile`]: what to do and what to leave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, in an order the kernel accepts: services before their
    /// destinations, deletions of services last.
    pub ops: Vec<Op>,
    /// What is not lbdeploy's, for the log.
    pub foreign: Vec<Foreign>,
}

/// The services and destinations lbdeploy installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// Services.
    pub services: BTreeSet<ServiceKey>,
    /// Destinations, by service.
    pub dests: BTreeSet<(ServiceKey, DestKey)>,
}

impl Owned {
    /// What lbdeploy owns once `table` is installed.
    pub fn of(table: &Table) -> Self {
        Owned {
            services: table.keys().copied().collect(),
            dests: table
                .iter()
                .flat_map(|(k, e)| e.dests.keys().map(move |d| (*k, *d)))
                .collect(),
        }
    }

    /// Read the record; none yet (first run since boot) is empty.
    ///
    /// # Errors
    /// An unreadable or corrupt file, with its path: refusing is safer
    /// than guessing and deleting someone else's service.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        match crate::util::files::read_text_opt(path)
            .with_context(|| format!("reading {}", path.display()))?
        {
            None => Ok(Owned::default()),
            Some(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not lbdeploy's IPVS record; remove it to start \
                     afresh (services not in the configuration are then \
                     left alone)",
                    path.display()
                )
            }),
        }
    }

    /// Write the record atomically.
    ///
    /// # Errors
    /// Any I/O error, with the path.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::util::files::write_atomic(path, text.as_bytes(), 0o644)
    }
}

/// The operations that make `current` (the kernel's dump) hold `desired`,
/// touching only what is desired or `owned` (see the module's text).
pub fn reconcile(desired: &Table, current: &Table, owned: &Owned) -> Plan {
    let mut services = Vec::new();
    let mut dels = Vec::new();
    let mut adds = Vec::new();
    let mut last = Vec::new();
    let mut foreign = Vec::new();
    for (key, want) in desired {
        let Some(have) = current.get(key) else {
            services.push(Op::AddService(*key, want.settings.clone()));
            for (dk, d) in &want.dests {
                adds.push(Op::AddDest(*key, *dk, *d));
            }
            continue;
        };
        if have.settings != want.settings {
            services.push(Op::UpdateService(*key, want.settings.clone()));
        }
        for (dk, d) in &want.dests {
            match have.dests.get(dk) {
                None => adds.push(Op::AddDest(*key, *dk, *d)),
                Some(h) if h != d => adds.push(Op::UpdateDest(*key, *dk, *d)),
                Some(_) => {}
            }
        }
        for dk in have.dests.keys().filter(|d| !want.dests.contains_key(d)) {
            if owned.dests.contains(&(*key, *dk)) {
                dels.push(Op::DelDest(*key, *dk));
            } else {
                foreign.push(Foreign::Dest(*key, *dk));
            }
        }
    }
    for (key, have) in current.iter().filter(|(k, _)| !desired.contains_key(k))
    {
        if !owned.services.contains(key) {
            foreign.push(Foreign::Service(*key));
            continue;
        }
        let (ours, theirs): (Vec<&DestKey>, Vec<&DestKey>) = have
            .dests
            .keys()
            .partition(|dk| owned.dests.contains(&(*key, **dk)));
        if theirs.is_empty() {
            last.push(Op::DelService(*key));
        } else {
            dels.extend(ours.into_iter().map(|dk| Op::DelDest(*key, *dk)));
            foreign.push(Foreign::Service(*key));
            foreign
                .extend(theirs.into_iter().map(|dk| Foreign::Dest(*key, *dk)));
        }
    }
    let mut ops = services;
    ops.extend(dels);
    ops.extend(adds);
    ops.extend(last);
    Plan { ops, foreign }
}

/// What a cleanup removes when the agent is gone and cannot withdraw
/// (`lbdeploy agent cleanup`): the services of `current` that are
/// `listed` (those the agent's configuration had) or `owned`, as
/// [`reconcile`] would remove them were nothing desired — so a
/// destination lbdeploy did not install keeps its service alive, as it
/// does on every sync. Returns the plan and what `owned` still holds once
/// it is carried out. Pure.
pub fn withdraw(
    current: &Table,
    listed: &BTreeSet<ServiceKey>,
    owned: &Owned,
) -> (Plan, Owned) {
    let claimed =
        |k: &ServiceKey| listed.contains(k) || owned.services.contains(k);
    let ours: Table = current
        .iter()
        .filter(|(k, _)| claimed(k))
        .map(|(k, e)| (*k, e.clone()))
        .collect();
    let claim = Owned {
        services: ours.keys().copied().collect(),
        dests: owned.dests.clone(),
    };
    let plan = reconcile(&Table::new(), &ours, &claim);
    let mut left = owned.clone();
    for op in &plan.ops {
        match op {
            Op::DelService(k) => {
                left.services.remove(k);
                left.dests.retain(|(s, _)| s != k);
            }
            Op::DelDest(k, d) => {
                left.dests.remove(&(*k, *d));
            }
            _ => {}
        }
    }
    (plan, left)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Entry, Forward, Proto};
    use super::*;

    fn svc(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: "10.0.0.100".parse().unwrap(),
            port,
        }
    }

    fn rs(last: u8) -> DestKey {
        DestKey { addr: format!("10.0.1.{last}").parse().unwrap(), port: 80 }
    }

    fn dr(weight: u32) -> Dest {
        Dest { forward: Forward::Route, weight, upper: 0, lower: 0 }
    }

    fn settings(scheduler: &str) -> Settings {
        Settings {
            scheduler: scheduler.into(),
            flags: 0,
            timeout: 0,
            netmask: u32::MAX,
        }
    }

    /// A service as `(port, scheduler, [(real server's last octet, weight)])`.
    type Spec<'a> = (u16, &'a str, &'a [(u8, u32)]);

    /// A table of [`Spec`]s.
    fn table(services: &[Spec<'_>]) -> Table {
        services
            .iter()
            .map(|(port, sched, dests)| {
                (
                    svc(*port),
                    Entry {
                        settings: settings(sched),
                        dests: dests
                            .iter()
                            .map(|(r, w)| (rs(*r), dr(*w)))
                            .collect::<BTreeMap<_, _>>(),
                    },
                )
            })
            .collect()
    }

    fn text(plan: &Plan) -> Vec<String> {
        plan.ops
            .iter()
            .map(ToString::to_string)
            .chain(plan.foreign.iter().map(|f| format!("foreign {f}")))
            .collect()
    }

    #[test]
    fn empty_kernel_gets_everything_services_first() {
        let want = table(&[(80, "wrr", &[(1, 1), (2, 3)])]);
        let plan = reconcile(&want, &Table::new(), &Owned::default());
        assert_eq!(
            text(&plan),
            [
                "add service TCP 10.0.0.100:80 wrr",
                "add TCP 10.0.0.100:80 -> 10.0.1.1:80 Route 1",
                "add TCP 10.0.0.100:80 -> 10.0.1.2:80 Route 3",
            ]
        );
    }

    #[test]
    fn in_sync_is_no_op() {
        let want = table(&[(80, "wrr", &[(1, 1), (2, 3)])]);
        let plan = reconcile(&want, &want.clone(), &Owned::of(&want));
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn weight_removed_dest_removed_service_and_scheduler() {
        let before = table(&[
            (80, "wrr", &[(1, 1), (2, 3), (3, 1)]),
            (443, "rr", &[(1, 1)]),
        ]);
        let after = table(&[(80, "rr", &[(1, 1), (2, 5)])]);
        let plan = reconcile(&after, &before, &Owned::of(&before));
        assert_eq!(
            text(&plan),
            [
                "update service TCP 10.0.0.100:80 rr",
                "delete TCP 10.0.0.100:80 -> 10.0.1.3:80",
                "update TCP 10.0.0.100:80 -> 10.0.1.2:80 Route 5",
                "delete service TCP 10.0.0.100:443",
            ]
        );
    }

    #[test]
    fn foreign_services_and_dests_are_left_and_reported() {
        let ours = table(&[(80, "wrr", &[(1, 1)])]);
        let mut kernel =
            table(&[(80, "wrr", &[(1, 1), (9, 1)]), (8080, "wlc", &[(9, 1)])]);
        let plan = reconcile(&ours, &kernel, &Owned::of(&ours));
        assert_eq!(
            text(&plan),
            [
                "foreign destination TCP 10.0.0.100:80 -> 10.0.1.9:80",
                "foreign service TCP 10.0.0.100:8080",
            ]
        );
        // Without any record (first run after boot), a service not in the
        // configuration is never deleted.
        kernel.insert(svc(443), table(&[(443, "rr", &[])])[&svc(443)].clone());
        let plan = reconcile(&ours, &kernel, &Owned::default());
        assert!(plan.ops.is_empty());
        assert_eq!(plan.foreign.len(), 3);
    }

    #[test]
    fn owned_service_with_a_foreign_dest_loses_only_our_dests() {
        let before = table(&[(80, "wrr", &[(1, 1)]), (443, "rr", &[(1, 1)])]);
        let mut kernel = before.clone();
        kernel.get_mut(&svc(443)).unwrap().dests.insert(rs(9), dr(1));
        let after = table(&[(80, "wrr", &[(1, 1)])]);
        let plan = reconcile(&after, &kernel, &Owned::of(&before));
        assert_eq!(
            text(&plan),
            [
                "delete TCP 10.0.0.100:443 -> 10.0.1.1:80",
                "foreign service TCP 10.0.0.100:443",
                "foreign destination TCP 10.0.0.100:443 -> 10.0.1.9:80",
            ]
        );
    }

    #[test]
    fn an_existing_desired_service_is_adopted() {
        let kernel = table(&[(80, "wlc", &[(1, 1)])]);
        let want = table(&[(80, "wrr", &[(1, 2)])]);
        let plan = reconcile(&want, &kernel, &Owned::default());
        assert_eq!(
            text(&plan),
            [
                "update service TCP 10.0.0.100:80 wrr",
                "update TCP 10.0.0.100:80 -> 10.0.1.1:80 Route 2",
            ]
        );
    }

    #[test]
    fn owned_record_round_trips_through_its_file() {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-ipvs-owned-{}", std::process::id()));
        let path = dir.join("ipvs-owned.json");
        assert_eq!(Owned::load(&path).unwrap(), Owned::default());
        let owned = Owned::of(&table(&[(80, "rr", &[(1, 1), (2, 1)])]));
        owned.save(&path).unwrap();
        assert_eq!(Owned::load(&path).unwrap(), owned);
        std::fs::write(&path, "garbage").unwrap();
        assert!(Owned::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn withdrawing_deletes_listed_and_owned_services_only() {
        let kernel = table(&[
            (80, "wrr", &[(1, 1)]),
            (443, "rr", &[(1, 1), (9, 1)]),
            (8080, "rr", &[(9, 1)]),
            (53, "rr", &[]),
        ]);
        // 80 and 443 were installed by lbdeploy; 53 is only listed (its
        // service was adopted, its destinations are nobody's); 8080 is
        // someone else's.
        let owned = Owned::of(&table(&[
            (80, "wrr", &[(1, 1)]),
            (443, "rr", &[(1, 1)]),
            (25, "rr", &[(1, 1)]),
        ]));
        let listed = [svc(53)].into_iter().collect();
        let (plan, left) = withdraw(&kernel, &listed, &owned);
        assert_eq!(
            text(&plan),
            [
                "delete TCP 10.0.0.100:443 -> 10.0.1.1:80",
                "delete service TCP 10.0.0.100:53",
                "delete service TCP 10.0.0.100:80",
                "foreign service TCP 10.0.0.100:443",
                "foreign destination TCP 10.0.0.100:443 -> 10.0.1.9:80",
            ]
        );
        // The record keeps 443 (still there, without our destination)
        // and 25 (not in the kernel: nothing to do).
        assert_eq!(
            left.services,
            [svc(25), svc(443)].into_iter().collect::<BTreeSet<_>>()
        );
        assert_eq!(
            left.dests,
            [(svc(25), rs(1))].into_iter().collect::<BTreeSet<_>>()
        );
        let (again, _) = withdraw(&Table::new(), &listed, &left);
        assert_eq!(again, Plan::default(), "nothing left: nothing to do");
    }
}
