//! The `exec` check (keepalived's `MISC_CHECK`): a command run on the
//! director through `sh -c`; exit 0 within the timeout is a pass.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::timeout;

use super::probe::Probe;
use crate::inventory::ExecCheck;

/// An `exec` check; the command names the server itself, if it needs to.
pub(crate) fn arm(c: &ExecCheck) -> Box<dyn Probe> {
    Box::new(Exec(c.command.clone()))
}

struct Exec(String);

impl Probe for Exec {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(exec(&self.0, limit))
    }
}

/// Run `command` through `sh -c`; exit 0 within `limit` is a pass.
///
/// # Errors
/// Its exit status, or that it was killed at the timeout.
async fn exec(command: &str, limit: Duration) -> Result<(), String> {
    let child = tokio::process::Command::new("/bin/sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    match timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!("`{command}` exited with {}", out.status)),
        Ok(Err(e)) => Err(format!("`{command}`: {e}")),
        Err(_) => Err(format!("`{command}` ran past {limit:?} and was killed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exec_checks_pass_fail_and_time_out() {
        let limit = Duration::from_millis(300);
        assert_eq!(exec("true", limit).await, Ok(()));
        assert!(
            exec("exit 3", limit).await.unwrap_err().contains("exit status: 3")
        );
        assert!(
            exec("sleep 5", limit).await.unwrap_err().contains("was killed")
        );
    }
}
