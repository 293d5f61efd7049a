//! IPVS's connection sync daemon (keepalived's `lvs_sync_daemon`): the
//! kernel copies each connection entry of a master director to the
//! backups by multicast, so that a new master forwards the connections
//! the old one had to where they were, whatever the scheduler.
//!
//! Which daemon runs follows one VRRP instance (`ipvs_sync.instance`), as
//! keepalived's `ipvs_syncd_master` / `ipvs_syncd_backup`: while this
//! director is its master, the master daemon (which sends); otherwise —
//! backup, fault, not started yet — the backup daemon (which receives).
//! The agent stopping stops both. Pure: [`wanted`] and [`steps`] decide,
//! the IPVS client carries the steps out.

use std::fmt;

use serde::Serialize;

use crate::inventory::agent::IpvsSyncConfig;

/// Which of the kernel's two sync daemons (`IP_VS_STATE_MASTER`,
/// `IP_VS_STATE_BACKUP`): a network namespace may run one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sends this director's connection entries.
    Master,
    /// Receives a master's.
    Backup,
}

/// A sync daemon as the kernel runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Daemon {
    /// Master or backup.
    pub role: Role,
    /// The interface its multicast goes over.
    pub interface: String,
    /// The sync id: a backup takes only its master's.
    pub sync_id: u8,
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Master => "master",
            Role::Backup => "backup",
        };
        write!(
            f,
            "{role} sync daemon on {} (id {})",
            self.interface, self.sync_id
        )
    }
}

/// One step towards the wanted daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `IPVS_CMD_DEL_DAEMON`.
    Stop(Daemon),
    /// `IPVS_CMD_NEW_DAEMON`.
    Start(Daemon),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Stop(d) => write!(f, "stop the {d}"),
            Step::Start(d) => write!(f, "start the {d}"),
        }
    }
}

/// The daemon `sync` calls for when this director is (`master`) or is
/// not the master of the driving instance.
pub fn wanted(sync: &IpvsSyncConfig, master: bool) -> Daemon {
    Daemon {
        role: if master { Role::Master } else { Role::Backup },
        interface: sync.interface.clone(),
        sync_id: sync.sync_id,
    }
}

/// What turns the `running` daemons into `wanted` (none: stop them all):
/// stop every running one that is not the wanted one (the other role, or
/// the same with another interface or id), before starting the wanted one
/// if it is not running. An empty list when all is as wanted.
pub fn steps(wanted: Option<&Daemon>, running: &[Daemon]) -> Vec<Step> {
    let mut out: Vec<Step> = running
        .iter()
        .filter(|d| Some(*d) != wanted)
        .map(|d| Step::Stop(d.clone()))
        .collect();
    if let Some(w) = wanted
        && !running.contains(w)
    {
        out.push(Step::Start(w.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IpvsSyncConfig {
        IpvsSyncConfig {
            instance: "VI_1".into(),
            interface: "eth0".into(),
            sync_id: 51,
        }
    }

    #[test]
    fn the_master_runs_the_master_daemon_and_every_other_state_the_backup() {
        let m = wanted(&config(), true);
        assert_eq!(
            m,
            Daemon {
                role: Role::Master,
                interface: "eth0".into(),
                sync_id: 51
            }
        );
        assert_eq!(wanted(&config(), false).role, Role::Backup);
    }

    #[test]
    fn becoming_master_stops_the_backup_daemon_then_starts_the_master() {
        let (m, b) = (wanted(&config(), true), wanted(&config(), false));
        assert_eq!(
            steps(Some(&m), std::slice::from_ref(&b)),
            [Step::Stop(b.clone()), Step::Start(m.clone())]
        );
        // And back: leaving master (backup, fault).
        assert_eq!(
            steps(Some(&b), std::slice::from_ref(&m)),
            [Step::Stop(m.clone()), Step::Start(b.clone())]
        );
        // At start, nothing running.
        assert_eq!(steps(Some(&b), &[]), [Step::Start(b.clone())]);
        // As wanted: nothing to do, at every sync.
        assert!(steps(Some(&b), std::slice::from_ref(&b)).is_empty());
    }

    #[test]
    fn a_daemon_with_other_settings_is_restarted_and_none_wanted_stops_all() {
        let b = wanted(&config(), false);
        let old = Daemon { sync_id: 7, ..b.clone() };
        assert_eq!(
            steps(Some(&b), std::slice::from_ref(&old)),
            [Step::Stop(old.clone()), Step::Start(b.clone())]
        );
        let m = wanted(&config(), true);
        assert_eq!(
            steps(None, &[m.clone(), b.clone()]),
            [Step::Stop(m), Step::Stop(b)]
        );
        assert!(steps(None, &[]).is_empty());
    }
}
