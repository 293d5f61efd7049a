//! Running one external command for the agent — an `exec` check, a
//! tracking script — without letting it outlive its welcome.
//!
//! The command runs directly from its argv (a caller that wants a shell
//! passes `["/bin/sh", "-c", text]`), its stdin, stdout and stderr on
//! `/dev/null`, in a **process group of its own**. The group is the point:
//! a script's work is often done by its children (`curl`, `ping`, a
//! pipeline, something backgrounded), and killing only the process we
//! started leaves them running, reparented to init, one more after every
//! timeout. So when the command runs past its limit — or when whoever
//! awaits it gives up (its future dropped: the task aborted, a reload) —
//! the whole group gets SIGKILL, and the child is reaped.
//!
//! A command that exits on its own is left to its fate, children and
//! all: nothing has been abandoned, and after the leader is reaped its
//! group ID is no longer ours to signal.
//!
//! A command with a script user runs as that user: its uid and gid
//! looked up when it starts ([`accounts`]), set in the child between
//! `fork` and `exec` by the standard library, which also empties the
//! supplementary groups. A uid 0 that becomes another uid loses every
//! capability (ambient included), so the program runs with none. The
//! agent must have `CAP_SETUID` and `CAP_SETGID` for this; it keeps them
//! only when its configuration names a script user.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::Command;

use super::accounts;
use crate::inventory::ScriptUser;

/// Run `argv` (program, then arguments) as `user` (the agent's own
/// when `None`) and wait up to `limit` for it.
///
/// # Errors
/// An empty argv, a user who is not on the host, a program that cannot
/// start, or how the command ended when that was not exit 0: its exit
/// status, the signal that killed it, or that it ran past `limit` and
/// was killed with its process group. The text does not name the
/// command; callers do.
pub async fn run(
    argv: &[String],
    user: Option<&ScriptUser>,
    limit: Duration,
) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("an empty command")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(user) = user {
        let ids = accounts::resolve(user)
            .map_err(|e| format!("cannot run it as {user}: {e}"))?;
        if ids != accounts::own() {
            command.uid(ids.uid).gid(ids.gid);
        }
    }
    let mut child =
        command.spawn().map_err(|e| format!("cannot start {program}: {e}"))?;
    // The child leads its own group, so the group's ID is its PID.
    let group = GroupGuard(
        child.id().and_then(|id| Pid::from_raw(i32::try_from(id).ok()?)),
    );
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            drop(group);
            // Reap it; SIGKILL cannot be ignored, so this is quick.
            let _ = child.wait().await;
            return Err(format!(
                "ran past {limit:?} and was killed, with its process group"
            ));
        }
    };
    group.disarm();
    judge(status)
}

/// Exit 0 is success; anything else says how the command ended.
fn judge(status: ExitStatus) -> Result<(), String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exit status {code}")),
        (None, Some(signal)) => Err(format!("killed by signal {signal}")),
        (None, None) => Err(format!("ended with {status}")),
    }
}

/// Kills a running command's process group when dropped, unless
/// disarmed once the command has been reaped: dropping it is how a
/// timeout, an error or a cancelled future ends the command.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    /// The command ended on its own: leave its group alone.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // ESRCH only: the group is already gone.
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
}

/// For tests that look for processes a command left behind.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Whether `pid` is a live process: present and not a zombie (an
    /// orphan's zombie waits for init, which may be slow to reap it in a
    /// container).
    pub(crate) fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            // The state follows the command name, which ends at the last ')'.
            let state = s.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with(['Z', 'X']))
        })
    }

    /// The PIDs written to `file`, one a line.
    pub(crate) fn pids_in(file: &Path) -> Vec<u32> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Those of `pids` still alive after up to a second: a killed
    /// process takes a moment to die.
    pub(crate) fn survivors(pids: &[u32]) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let left: Vec<u32> =
                pids.iter().copied().filter(|&p| alive(p)).collect();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fresh scratch directory for one test.
    pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::testing::{pids_in, scratch, survivors};
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|&w| w.to_owned()).collect()
    }

    fn sh(text: &str) -> Vec<String> {
        argv(&["/bin/sh", "-c", text])
    }

    const LIMIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn exit_statuses_signals_and_bad_programs_are_told_apart() {
        assert_eq!(run(&argv(&["true"]), None, LIMIT).await, Ok(()));
        assert_eq!(
            run(&sh("exit 3"), None, LIMIT).await.unwrap_err(),
            "exit status 3"
        );
        assert_eq!(
            run(&sh("kill -TERM $$"), None, LIMIT).await.unwrap_err(),
            "killed by signal 15"
        );
        let e =
            run(&argv(&["/nonexistent/prog"]), None, LIMIT).await.unwrap_err();
        assert!(e.starts_with("cannot start /nonexistent/prog"), "{e}");
        assert_eq!(
            run(&[], None, LIMIT).await.unwrap_err(),
            "an empty command"
        );
    }

    #[tokio::test]
    async fn argv_is_not_shell_text() {
        // One argument with a space and a `;`: printf sees it whole.
        let dir = scratch("process-argv");
        let out = dir.join("out");
        let text = format!("printf %s \"$1\" > {}", out.display());
        let cmd = argv(&["/bin/sh", "-c", &text, "sh", "a b; exit 7"]);
        assert_eq!(run(&cmd, None, LIMIT).await, Ok(()));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a b; exit 7");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_at_once() {
        let dir = scratch("process-timeout");
        let pids = dir.join("pids");
        // A child and a grandchild of the shell, both asleep.
        let text = format!(
            "(sleep 30 & echo $! >> {p}; wait) & echo $! >> {p}; wait",
            p = pids.display()
        );
        let started = std::time::Instant::now();
        let e = run(&sh(&text), None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "not at once");
        assert_eq!(e, "ran past 200ms and was killed, with its process group");
        let descendants = pids_in(&pids);
        assert_eq!(descendants.len(), 2, "the script did not run");
        assert_eq!(survivors(&descendants), Vec::<u32>::new());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_cancelled_run_kills_the_whole_group() {
        let dir = scratch("process-cancel");
        let pids = dir.join("pids");
        let text = format!(
            "sleep 30 & echo $! >> {p}; echo $$ >> {p}; wait",
            p = pids.display()
        );
        let cmd = sh(&text);
        let run = run(&cmd, None, Duration::from_secs(30));
        // Give it time to start and write, then drop it unfinished.
        let waited =
            tokio::time::timeout(Duration::from_millis(300), run).await;
        assert!(waited.is_err(), "it ended on its own: {waited:?}");
        let started = pids_in(&pids);
        assert_eq!(started.len(), 2, "the script did not run");
        assert_eq!(survivors(&started), Vec::<u32>::new());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_script_user_runs_with_its_ids_and_no_capability() {
        let dir = scratch("process-user");
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = dir.join("status");
        std::fs::write(&out, "").unwrap();
        std::fs::set_permissions(&out, PermissionsExt::from_mode(0o666))
            .unwrap();
        let nobody: ScriptUser = "nobody".parse().unwrap();
        let ids = accounts::resolve(&nobody).unwrap();
        let text = format!("cat /proc/self/status > {}", out.display());
        assert_eq!(run(&sh(&text), Some(&nobody), LIMIT).await, Ok(()));
        let status = std::fs::read_to_string(&out).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {name} in {status}"))
                .to_owned()
        };
        let (uid, gid) = (ids.uid, ids.gid);
        assert_eq!(field("Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
        assert_eq!(field("Gid"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
        assert_eq!(field("Groups"), "", "supplementary groups dropped");
        for caps in ["CapEff", "CapPrm", "CapAmb"] {
            assert_eq!(field(caps), "0000000000000000", "{caps}");
        }
        let ghost: ScriptUser = "no-such-user-here".parse().unwrap();
        assert_eq!(
            run(&argv(&["true"]), Some(&ghost), LIMIT).await.unwrap_err(),
            "cannot run it as no-such-user-here: no user \
             `no-such-user-here` in /etc/passwd nor through NSS (getent)"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
