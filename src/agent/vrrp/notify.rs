//! An instance's notify hooks, as keepalived runs them: which scripts a
//! transition runs and with which arguments (pure), and running them in
//! the background. When to run them is `vrrp::instance`'s.

use tracing::Instrument;

use crate::agent::vrrp::fsm::{State, state_name};
use crate::inventory::NotifyHooks;

/// Whose transition a hook is told of: keepalived's first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One instance's (`INSTANCE`).
    Instance,
    /// A whole sync group's (`GROUP`), with priority 0.
    Group,
}

/// The arguments a notify hook gets, as keepalived's `notify` script
/// does: `INSTANCE|GROUP NAME STATE PRIORITY`.
pub(crate) fn notify_args(
    kind: Kind,
    name: &str,
    to: State,
    priority: u8,
) -> [String; 4] {
    let kind = match kind {
        Kind::Instance => "INSTANCE",
        Kind::Group => "GROUP",
    };
    [kind.into(), name.into(), state_name(to).into(), priority.to_string()]
}

/// The hooks to run on entering `to`: the state's own, then `any`.
pub(crate) fn hooks_for(hooks: &NotifyHooks, to: State) -> Vec<&str> {
    let own = match to {
        State::Master => hooks.master.as_deref(),
        State::Backup => hooks.backup.as_deref(),
        State::Fault => hooks.fault.as_deref(),
        State::Initialize => None,
    };
    own.into_iter().chain(hooks.any.as_deref()).collect()
}

/// Run a notify hook in the background, as keepalived does: through the
/// shell (so the configured string may carry its own arguments), with the
/// transition appended, reaped by a task that logs a failure.
pub(crate) fn run_hook(script: &str, args: &[String; 4]) {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("exec {script} \"$@\"")).arg("sh").args(args);
    let script = script.to_owned();
    match cmd.spawn() {
        Ok(mut child) => {
            let reap = async move {
                match child.wait().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => tracing::warn!("notify hook {script}: {s}"),
                    Err(e) => tracing::warn!("notify hook {script}: {e}"),
                }
            };
            // The reaper's lines name the instance, as the loop's do.
            tokio::spawn(reap.in_current_span());
        }
        Err(e) => tracing::warn!("notify hook {script}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_get_keepalived_arguments() {
        let hooks = NotifyHooks {
            master: Some("/m".into()),
            backup: None,
            fault: Some("/f".into()),
            any: Some("/any x".into()),
        };
        assert_eq!(hooks_for(&hooks, State::Master), ["/m", "/any x"]);
        assert_eq!(hooks_for(&hooks, State::Backup), ["/any x"]);
        assert_eq!(hooks_for(&hooks, State::Fault), ["/f", "/any x"]);
        assert_eq!(
            notify_args(Kind::Instance, "VI_1", State::Master, 120),
            ["INSTANCE", "VI_1", "MASTER", "120"]
        );
        assert_eq!(
            notify_args(Kind::Group, "VG_1", State::Fault, 0),
            ["GROUP", "VG_1", "FAULT", "0"]
        );
    }
}
