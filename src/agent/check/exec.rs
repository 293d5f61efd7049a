//! The `exec` check (keepalived's `MISC_CHECK`): a command run on the
//! director through `sh -c`; exit 0 within the timeout is a pass. It runs
//! through [`sys::process`](crate::agent::sys::process), so a command that
//! hangs is killed with everything it started.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::probe::Probe;
use crate::agent::sys::process;
use crate::inventory::{ExecCheck, ScriptUser};

/// An `exec` check; the command names the server itself, if it needs to.
pub(crate) fn arm(c: &ExecCheck) -> Box<dyn Probe> {
    Box::new(Exec(c.command.clone(), c.user.clone()))
}

/// The command, and who runs it.
struct Exec(String, Option<ScriptUser>);

impl Probe for Exec {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(exec(&self.0, self.1.as_ref(), limit))
    }
}

/// Run `command` through `sh -c` as `user`; exit 0 within `limit` is a
/// pass.
///
/// # Errors
/// The command, with its exit status or that it was killed at the
/// timeout.
async fn exec(
    command: &str,
    user: Option<&ScriptUser>,
    limit: Duration,
) -> Result<(), String> {
    let argv = ["/bin/sh", "-c", command].map(str::to_owned);
    process::run(&argv, user, limit)
        .await
        .map_err(|e| format!("`{command}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::sys::process::testing::{pids_in, scratch, survivors};

    #[tokio::test]
    async fn exec_checks_pass_fail_and_time_out() {
        let limit = Duration::from_millis(300);
        assert_eq!(exec("true", None, limit).await, Ok(()));
        assert_eq!(
            exec("exit 3", None, limit).await,
            Err("`exit 3`: exit status 3".into())
        );
        assert!(
            exec("sleep 5", None, limit)
                .await
                .unwrap_err()
                .contains("was killed")
        );
    }

    #[tokio::test]
    async fn a_timed_out_command_leaves_no_child_behind() {
        let dir = scratch("exec-orphan");
        let pids = dir.join("pids");
        let command = format!("sleep 30 & echo $! > {}; wait", pids.display());
        let e =
            exec(&command, None, Duration::from_millis(200)).await.unwrap_err();
        assert!(e.contains("with its process group"), "{e}");
        let forked = pids_in(&pids);
        assert_eq!(forked.len(), 1, "the command did not run");
        assert_eq!(survivors(&forked), Vec::<u32>::new(), "orphans");
        let _ = std::fs::remove_dir_all(dir);
    }
}
