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
pub(crate) fn hooks_for(hooks: &NotifyHooks, to: State) -> Vec<&[String]> {
    let own = match to {
        State::Master => hooks.master.as_deref(),
        State::Backup => hooks.backup.as_deref(),
        State::Fault => hooks.fault.as_deref(),
        State::Initialize => None,
    };
    own.into_iter().chain(hooks.any.as_deref()).collect()
}

/// Run a notify hook in the background: its argv without a shell (an
/// operator who wants one writes `[/bin/sh, -c, "…"]`), with the
/// transition appended, reaped by a task that logs a failure.
pub(crate) fn run_hook(argv: &[String], args: &[String; 4]) {
    let Some((program, own)) = argv.split_first() else { return };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(own).args(args);
    let script = program.clone();
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
        let argv = |a: &[&str]| Some(a.iter().map(|s| s.to_string()).collect());
        let hooks = NotifyHooks {
            master: argv(&["/m"]),
            backup: None,
            fault: argv(&["/f"]),
            any: argv(&["/any", "x y"]),
        };
        let any = ["/any".to_owned(), "x y".to_owned()];
        let m = ["/m".to_owned()];
        let f = ["/f".to_owned()];
        assert_eq!(hooks_for(&hooks, State::Master), [&m[..], &any[..]]);
        assert_eq!(hooks_for(&hooks, State::Backup), [&any[..]]);
        assert_eq!(hooks_for(&hooks, State::Fault), [&f[..], &any[..]]);
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
