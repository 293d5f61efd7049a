//! Starting, stopping, restarting and reloading the agent.
//!
//! With systemd (as the facts script decides: `/run/systemd/system` is a
//! directory) through `systemctl`; without, through the binary's own
//! supervisor (`lbdeploy agent start|restart|reload|stop`, written under
//! issue #4's agent half). Under a test root nothing is run: the operation
//! is only reported, since a scratch directory has no service manager.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::layout::Layout;
use crate::inventory::Mode;
use crate::plan::diff::ServiceAction;
pub(crate) use crate::plan::roles::unit_file_name;
use crate::plan::roles::{Init, drop_in_dirs};

/// What to do to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Start (and enable) it.
    Start,
    /// Stop and start it: a new binary or unit takes effect.
    Restart,
    /// Re-read the configuration.
    Reload,
    /// Stop it.
    Stop,
    /// Enable it at boot (systemd only).
    Enable,
    /// Disable it at boot (systemd only).
    Disable,
    /// Remove a mask (systemd only).
    Unmask,
    /// Re-read the unit files, once the unit's file is gone (systemd
    /// only).
    DaemonReload,
}

impl From<ServiceAction> for Op {
    fn from(a: ServiceAction) -> Self {
        match a {
            ServiceAction::Start => Op::Start,
            ServiceAction::Restart => Op::Restart,
            ServiceAction::Reload => Op::Reload,
        }
    }
}

/// The agent service of one host.
#[derive(Debug, Clone)]
pub struct Service {
    /// Whether anything is really run (not under a test root).
    live: bool,
    init: Init,
    name: String,
    binary: PathBuf,
    mode: Mode,
    config: PathBuf,
    pid_file: PathBuf,
}

impl Service {
    /// The agent as an activation describes it.
    ///
    /// # Errors
    /// When the binary path is not a valid host path.
    pub fn new(
        layout: &Layout,
        name: &str,
        binary: &Path,
        mode: Mode,
        config: &Path,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            live: !layout.is_rooted(),
            init: if layout.systemd_marker().is_dir() {
                Init::Systemd
            } else {
                Init::None
            },
            name: name.to_string(),
            binary: layout.host(binary)?,
            mode,
            config: config.to_path_buf(),
            pid_file: layout.agent_pid_file(),
        })
    }

    /// Whether the agent runs now.
    pub fn is_running(&self) -> bool {
        match self.init {
            Init::Systemd if self.live => Command::new("systemctl")
                .args(["is-active", "--quiet", &self.name])
                .status()
                .is_ok_and(|s| s.success()),
            _ => std::fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|pid| super::lock::process_alive(pid, "")),
        }
    }

    /// Do `op`, after `systemctl daemon-reload` when `unit_changed`.
    ///
    /// # Errors
    /// When the command cannot run or fails; the message has its output.
    pub fn run(&self, op: Op, unit_changed: bool) -> anyhow::Result<()> {
        if !self.live {
            return Ok(());
        }
        match self.init {
            Init::Systemd => {
                if unit_changed || op == Op::DaemonReload {
                    run(Command::new("systemctl").arg("daemon-reload"))?;
                }
                let verb: &[&str] = match op {
                    Op::Start => &["enable", "--now"],
                    Op::Restart => &["restart"],
                    Op::Reload => &["reload"],
                    Op::Stop => &["stop"],
                    Op::Enable => &["enable"],
                    Op::Disable => &["disable"],
                    Op::Unmask => &["unmask"],
                    Op::DaemonReload => return Ok(()),
                };
                run(Command::new("systemctl").args(verb).arg(&self.name))
            }
            Init::None => {
                let mut cmd = Command::new(&self.binary);
                cmd.arg("agent");
                match op {
                    Op::Start | Op::Restart => {
                        cmd.arg(if op == Op::Start {
                            "start"
                        } else {
                            "restart"
                        })
                        .arg(self.mode.as_str())
                        .arg("--config")
                        .arg(&self.config);
                    }
                    Op::Reload => {
                        cmd.arg("reload");
                    }
                    Op::Stop => {
                        cmd.arg("stop");
                    }
                    // Boot-time enabling and masks are systemd's; without
                    // it there is nothing of the kind to change.
                    Op::Enable
                    | Op::Disable
                    | Op::Unmask
                    | Op::DaemonReload => return Ok(()),
                }
                run(&mut cmd)
            }
        }
    }
}

/// Whether `path` is a drop-in in `service`'s own `.d` directory under
/// `/etc/systemd/system` or `/run/systemd/system`: the only files an
/// activation removes that it did not write.
pub(crate) fn is_drop_in_of(path: &Path, service: &str) -> bool {
    drop_in_dirs(service).iter().any(|d| path.parent() == Some(d.as_path()))
        && path.extension().is_some_and(|e| e == "conf")
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An activation removes only drop-ins of the agent's own unit: never
    /// a global `service.d` one, a vendor one, or anything not `.conf`.
    #[test]
    fn only_the_units_own_drop_ins_are_drop_ins() {
        let yes = |p: &str| is_drop_in_of(Path::new(p), "lbdeploy-agent");
        assert!(yes("/etc/systemd/system/lbdeploy-agent.service.d/o.conf"));
        assert!(yes("/run/systemd/system/lbdeploy-agent.service.d/x.conf"));
        assert!(!yes("/etc/systemd/system/service.d/o.conf"));
        assert!(!yes(
            "/usr/lib/systemd/system/lbdeploy-agent.service.d/o.conf"
        ));
        assert!(!yes("/etc/systemd/system/lbdeploy-agent.service.d/o.txt"));
        assert!(!yes(
            "/etc/systemd/system/lbdeploy-agent.service.d/../../passwd.conf"
        ));
        assert!(!yes("/etc/shadow"));
    }
}
