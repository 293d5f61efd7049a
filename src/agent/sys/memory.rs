//! Locking the director agent's memory (keepalived's `vrrp_no_swap`): with
//! the setting, every page the agent has and every page it maps later stay
//! in RAM (`mlockall(MCL_CURRENT | MCL_FUTURE)`), so a host under memory
//! pressure never pages out the VRRP loop and a backup never takes over
//! because the master's agent waited on the disk.
//!
//! Locking everything the agent will ever map is only safe when nothing
//! limits it: past `RLIMIT_MEMLOCK`, a process without `CAP_IPC_LOCK`
//! gets `ENOMEM` from the allocation that needed a new mapping, and a
//! Rust program aborts on that. So the agent locks only when the limit is
//! unlimited (the unit's `LimitMEMLOCK=infinity`) or when it holds
//! `CAP_IPC_LOCK` (the supervised agent keeps it for itself with the
//! setting: [`super::privileges::MEMORY_LOCK_CAPABILITY`]; a foreground
//! agent run by root has it). Otherwise, or when the kernel refuses, it
//! runs unlocked with a warning in the log and in `agent status`, as a
//! refused `vrrp_rt_priority` does: the cluster works as without the
//! setting.
//!
//! The lock is taken once, at start, before the runtime starts its
//! threads; a reload cannot take or release it (a plan that changes the
//! setting restarts the agent).

use std::sync::OnceLock;

use rustix::mm::{MlockAllFlags, mlockall};
use rustix::process::{Resource, getrlimit};
use rustix::thread::CapabilitySet;
use serde::Serialize;

/// Whether the agent's memory is locked, as `agent status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryLock {
    /// Every page locked, now and later.
    pub locked: bool,
    /// Why it is not, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What [`lock_all`] did, for the status; unset when it was not asked to.
static STATE: OnceLock<MemoryLock> = OnceLock::new();

/// Whether the lock may be taken, from `RLIMIT_MEMLOCK`'s soft limit
/// (`None`: unlimited) and whether the process holds `CAP_IPC_LOCK`;
/// otherwise why not. Pure.
pub(crate) fn may_lock(
    limit: Option<u64>,
    ipc_lock: bool,
) -> Result<(), String> {
    match limit {
        _ if ipc_lock => Ok(()),
        None => Ok(()),
        Some(bytes) => Err(format!(
            "RLIMIT_MEMLOCK is {bytes} bytes, not unlimited, and the agent \
             has no CAP_IPC_LOCK: locked, it would fail its first \
             allocation past the limit (the rendered unit has \
             LimitMEMLOCK=infinity; under lbdeploy's supervisor the agent \
             keeps CAP_IPC_LOCK)"
        )),
    }
}

/// Lock every page of the agent, now and later, and remember what came
/// of it for [`state`]. A refusal is logged and returned, never fatal.
/// Call it once, at start, before the runtime starts threads.
pub fn lock_all() -> &'static MemoryLock {
    let limit = getrlimit(Resource::Memlock).current;
    let ipc_lock = rustix::thread::capabilities(None)
        .is_ok_and(|s| s.effective.contains(CapabilitySet::IPC_LOCK));
    let outcome = may_lock(limit, ipc_lock).and_then(|()| {
        mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE)
            .map_err(|e| format!("mlockall: {e}"))
    });
    let state = match outcome {
        Ok(()) => {
            tracing::info!("vrrp_no_swap: the agent's memory is locked");
            MemoryLock { locked: true, warning: None }
        }
        Err(why) => {
            let warning = format!(
                "vrrp_no_swap: cannot lock the agent's memory: {why}; it \
                 runs unlocked"
            );
            tracing::warn!("{warning}");
            MemoryLock { locked: false, warning: Some(warning) }
        }
    };
    STATE.get_or_init(|| state)
}

/// What [`lock_all`] did, if the agent asked for it at start.
pub fn state() -> Option<&'static MemoryLock> {
    STATE.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unlimited_limit_or_cap_ipc_lock_may_lock() {
        assert_eq!(may_lock(None, false), Ok(()));
        assert_eq!(may_lock(Some(8 << 20), true), Ok(()));
        assert_eq!(may_lock(None, true), Ok(()));
        let why = may_lock(Some(8 << 20), false).unwrap_err();
        assert!(why.starts_with("RLIMIT_MEMLOCK is 8388608 bytes"), "{why}");
        assert!(may_lock(Some(0), false).is_err());
        assert!(may_lock(Some(u64::MAX - 1), false).is_err());
    }
}
