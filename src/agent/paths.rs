//! Where the agent and its supervisor meet: one runtime directory holding
//! the status socket, the supervisor's PID file, the agent's log and the
//! director's holdings file.
//!
//! The paths are a contract with code outside this module: the facts script
//! that `plan` runs on each host checks `kill -0 $(cat
//! /run/lbdeploy/agent.pid)`, and `lbdeploy agent status` connects to the
//! socket. Tests point everything at a temporary directory with
//! [`RUN_DIR_ENV`], so they need neither root nor a shared `/run`.

use std::path::{Path, PathBuf};

/// The runtime directory on a host (systemd's `RuntimeDirectory=lbdeploy`).
pub(crate) const DEFAULT_RUN_DIR: &str = "/run/lbdeploy";

/// Overrides `DEFAULT_RUN_DIR`; meant for tests and for running two
/// agents side by side on one machine.
pub const RUN_DIR_ENV: &str = "LBDEPLOY_RUN_DIR";

/// The runtime directory this process uses: `$LBDEPLOY_RUN_DIR` when set
/// and not empty, else `/run/lbdeploy`. Read once per command, so every
/// path a command touches agrees.
pub fn run_dir() -> PathBuf {
    match std::env::var_os(RUN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_RUN_DIR),
    }
}

/// The agent's status socket, `RUN/agent.sock`: one JSON line per
/// connection (see `agent::status`).
pub fn socket(run_dir: &Path) -> PathBuf {
    run_dir.join("agent.sock")
}

/// The supervisor's PID file, `RUN/agent.pid`. It holds the supervisor's
/// PID (not the agent's), because the supervisor outlives agent restarts
/// and is what `stop` and the facts script must find.
pub fn pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("agent.pid")
}

/// The log the supervisor appends the agent's stdout and stderr to,
/// `RUN/agent.log`; `start` prints its tail when the agent fails to come up.
pub(crate) fn log_file(run_dir: &Path) -> PathBuf {
    run_dir.join("agent.log")
}

/// What a director agent may hold on the host (its VIPs, its data plane),
/// `RUN/holdings.json`: written by the agent before it takes any of it,
/// read by `agent cleanup` once the agent is gone (see `agent::holdings`).
pub(crate) fn holdings_file(run_dir: &Path) -> PathBuf {
    run_dir.join("holdings.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_live_in_the_run_dir() {
        let dir = Path::new("/tmp/x");
        assert_eq!(socket(dir), Path::new("/tmp/x/agent.sock"));
        assert_eq!(pid_file(dir), Path::new("/tmp/x/agent.pid"));
        assert_eq!(log_file(dir), Path::new("/tmp/x/agent.log"));
        assert_eq!(holdings_file(dir), Path::new("/tmp/x/holdings.json"));
    }
}
