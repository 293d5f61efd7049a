//! An instance's notify hooks, as keepalived runs them: which scripts a
//! transition runs and with which arguments (pure), and running them in
//! the background. When to run them is `vrrp::instance`'s.

use std::time::Duration;

use tracing::Instrument;

use crate::agent::sys::{process, realtime};
use crate::agent::vrrp::fsm::{State, state_name};
use crate::inventory::{NotifyHooks, ScriptUser};

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

/// How long a notify hook may run before it is killed with its process
/// group. keepalived sets no limit on notify scripts, but a hook that
/// hangs (a `curl` to a dead host, a pipeline waiting on a full pipe)
/// would then hold its processes for ever, one set per transition; a
/// minute is far more than a hook that tells somebody of a transition
/// needs.
pub(crate) const NOTIFY_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// Run a notify hook in the background: its argv without a shell (an
/// operator who wants one writes `[/bin/sh, -c, "…"]`), with the
/// transition appended, in its own process group
/// ([`sys::process`](crate::agent::sys::process)) that is killed whole
/// at [`NOTIFY_HOOK_TIMEOUT`] or when the agent stops; a failure is
/// logged.
pub(crate) fn run_hook(
    argv: &[String],
    user: Option<&ScriptUser>,
    args: &[String; 4],
) {
    let user = user.cloned();
    let run = run_hook_within(hook_argv(argv, args), user, NOTIFY_HOOK_TIMEOUT);
    // The task's lines name the instance, as the loop's do; it runs off
    // the (possibly real-time) vrrp thread, whose children would inherit
    // its policy.
    realtime::spawn_ordinary(run.in_current_span());
}

/// Run one hook as `user` to its end or `limit`, logging how it failed.
async fn run_hook_within(
    argv: Vec<String>,
    user: Option<ScriptUser>,
    limit: Duration,
) {
    let Some(program) = argv.first().cloned() else { return };
    if let Err(e) = process::run(&argv, user.as_ref(), limit).await {
        tracing::warn!("notify hook {program}: {e}");
    }
}

/// The hook's own argv with the transition's arguments appended, as
/// separate arguments, never as shell text.
fn hook_argv(argv: &[String], args: &[String; 4]) -> Vec<String> {
    argv.iter().chain(args).cloned().collect()
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
            user: None,
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

    #[tokio::test]
    async fn a_hung_hook_is_killed_with_its_process_group() {
        use crate::agent::sys::process::testing::{
            pids_in, scratch, survivors,
        };
        let dir = scratch("notify-hung");
        let pids = dir.join("pids");
        // The hook backgrounds a sleeper and waits on it, as `x | y` does.
        let hook = dir.join("hook");
        let text = format!(
            "#!/bin/sh\nsleep 30 & echo $! >> {p}\necho $$ >> {p}\nwait\n",
            p = pids.display()
        );
        std::fs::write(&hook, text).unwrap();
        std::fs::set_permissions(
            &hook,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let args = notify_args(Kind::Instance, "VI_1", State::Master, 120);
        let started = std::time::Instant::now();
        let limit = Duration::from_millis(300);
        let argv = hook_argv(&[hook.display().to_string()], &args);
        run_hook_within(argv, None, limit).await;
        assert!(started.elapsed() < Duration::from_secs(3), "not killed");
        let started = pids_in(&pids);
        assert_eq!(started.len(), 2, "the hook did not run");
        assert_eq!(survivors(&started), Vec::<u32>::new());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hook_arguments_are_positional_not_shell_text() {
        let args = notify_args(Kind::Instance, "a;b", State::Backup, 1);
        let argv = hook_argv(&["/x".to_owned(), "y z".to_owned()], &args);
        assert_eq!(argv, ["/x", "y z", "INSTANCE", "a;b", "BACKUP", "1"]);
    }
}
