//! Running one external command for the agent — an `exec` check, a
//! tracking script — without letting it outlive its welcome.
//!
//! The command runs directly from its argv (a caller that wants a shell
//! passes `["/bin/sh", "-c", text]`), its stdin, stdout and stderr on
//! `/dev/null`, in a **process group of its own** and, under systemd, in
//! a **cgroup of its own** ([`cgroup`]). They are the point: a script's
//! work is often done by its children (`curl`, `ping`, a pipeline,
//! something backgrounded), and killing only the process we started
//! leaves them running, reparented to init, one more after every
//! timeout. So when the command runs past its limit — or when whoever
//! awaits it gives up (its future dropped: the task aborted, a reload) —
//! the whole cgroup and the whole group get SIGKILL, and the child is
//! reaped. The process group catches what stays in it; the cgroup also
//! what left it (`setsid`).
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
//! agent must have `CAP_SETUID` and `CAP_SETGID` for this, and
//! `CAP_KILL` to kill that user's processes at a timeout; it keeps them
//! only when its configuration names a script user
//! ([`super::privileges::SWITCH_USER`]).
//!
//! Long-lived children — the supervisor's agent, the agent's BIRD — are
//! ended by `stop`: a signal they handle (they have peers to tell),
//! a grace, then SIGKILL.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::accounts::{self, Ids};
use super::cgroup::{self, Scope};
use crate::inventory::ScriptUser;

/// The most of a [`cgroup::TRAMPOLINE`]'s report read: one line.
const REPORT_MAX: u64 = 4096;

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
    let ids = match user {
        Some(user) => Some(
            accounts::resolve(user)
                .map_err(|e| format!("cannot run it as {user}: {e}"))?,
        )
        .filter(|&ids| ids != accounts::own()),
        None => None,
    };
    let scope = cgroup::delegated()
        .map(cgroup::Tree::scope)
        .transpose()
        .map_err(|e| format!("cannot create its cgroup: {e}"))?;
    let mut command = match &scope {
        Some(scope) => through_trampoline(scope.dir(), ids, argv),
        None => {
            let mut command = Command::new(program);
            command.args(args).stderr(Stdio::null());
            if let Some(ids) = ids {
                command.uid(ids.uid).gid(ids.gid);
            }
            command
        }
    };
    command.stdin(Stdio::null()).stdout(Stdio::null()).process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            if let Some(scope) = scope {
                scope.remove();
            }
            return Err(format!("cannot start {program}: {e}"));
        }
    };
    let report = child.stderr.take();
    let running = Running {
        // The child leads its own group, so the group's ID is its PID.
        group: child.id().and_then(|id| Pid::from_raw(i32::try_from(id).ok()?)),
        scope,
        armed: true,
    };
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            running.kill();
            // Reap it; SIGKILL cannot be ignored, so this is quick.
            let _ = child.wait().await;
            let whole = if running.scope.is_some() {
                "cgroup"
            } else {
                "process group"
            };
            running.finish();
            return Err(format!(
                "ran past {limit:?} and was killed, with its {whole}"
            ));
        }
    };
    running.finish();
    // The trampoline's report: why the command could not start. Empty
    // once the command runs (the pipe closed at its `exec`).
    if let Some(report) = report {
        let mut text = String::new();
        let _ = report.take(REPORT_MAX).read_to_string(&mut text).await;
        if !text.trim().is_empty() {
            return Err(text.trim().to_owned());
        }
    }
    judge(status)
}

/// `argv` run through [`cgroup::TRAMPOLINE`]: this executable enters
/// `cgroup`, becomes `ids`, then executes the command; it reports on
/// stderr (piped) why it could not.
fn through_trampoline(
    cgroup: &Path,
    ids: Option<Ids>,
    argv: &[String],
) -> Command {
    // This process's own executable, even one replaced on disk since.
    let mut command = Command::new("/proc/self/exe");
    command.args(["agent", cgroup::TRAMPOLINE, "--cgroup"]).arg(cgroup);
    if let Some(ids) = ids {
        command.arg(format!("--uid={}", ids.uid));
        command.arg(format!("--gid={}", ids.gid));
    }
    command.arg("--").args(argv).stderr(Stdio::piped());
    command
}

/// What [`cgroup::TRAMPOLINE`] does, in the process the agent started:
/// enter the cgroup at `cgroup`, take `ids`, and replace itself with
/// `argv` (stdin, stdout and stderr on `/dev/null`). Returns only when
/// that failed, having written why to stderr.
pub fn exec_in(cgroup: &Path, ids: Option<Ids>, argv: &[String]) {
    // Where to say why, on a descriptor the `exec` closes: stderr itself
    // is `/dev/null` by then.
    let report = rustix::io::fcntl_dupfd_cloexec(std::io::stderr().as_fd(), 3)
        .map(std::fs::File::from);
    let failure = match (cgroup::enter(cgroup), argv.split_first()) {
        (Err(e), _) => format!("cannot enter its cgroup: {e}"),
        (Ok(()), None) => "an empty command".to_owned(),
        (Ok(()), Some((program, args))) => {
            let mut command = std::process::Command::new(program);
            command
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(ids) = ids {
                command.uid(ids.uid).gid(ids.gid);
            }
            format!("cannot start {program}: {}", command.exec())
        }
    };
    if let Ok(mut report) = report {
        let _ = writeln!(report, "{failure}");
    }
}

/// What `agent tied` does: have the kernel send SIGTERM to this process
/// when its parent's thread ends, make sure `parent` is still that parent
/// (it may have died before the request), and replace itself with `argv`,
/// stdin on `/dev/null`, stdout and stderr kept. Returns only when that
/// failed, having written why to stderr.
pub fn exec_tied(parent: i32, argv: &[String]) {
    let tied =
        rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
    let parent_now = rustix::process::getppid().map(Pid::as_raw_nonzero);
    let failure = match (tied, argv.split_first()) {
        (Err(e), _) => format!("PR_SET_PDEATHSIG: {e}"),
        _ if parent_now.map(i32::from) != Some(parent) => {
            format!("its parent (pid {parent}) is gone; not starting")
        }
        (Ok(()), None) => "an empty command".to_owned(),
        (Ok(()), Some((program, args))) => {
            let mut command = std::process::Command::new(program);
            command.args(args).stdin(Stdio::null());
            format!("cannot start {program}: {}", command.exec())
        }
    };
    eprintln!("lbdeploy agent tied: {failure}");
}

/// How a child that was asked to stop ended.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// It exited within the grace.
    Exited(ExitStatus),
    /// Waiting for it failed.
    Unknown(std::io::Error),
    /// It outlived the grace and was killed.
    Killed,
}

/// Send `child` `how`, give it `grace` to exit, then SIGKILL it; it is
/// reaped either way.
pub(crate) async fn stop(
    child: &mut Child,
    how: Signal,
    grace: Duration,
) -> Stopped {
    signal(child, how);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Stopped::Exited(status),
        Ok(Err(e)) => Stopped::Unknown(e),
        Err(_) => {
            let _ = child.kill().await;
            Stopped::Killed
        }
    }
}

/// Send `child` `sig`, unless it was reaped already: its pid may then be
/// another process's.
pub(crate) fn signal(child: &Child, sig: Signal) {
    if let Some(pid) = child.id().and_then(|id| Pid::from_raw(id as i32)) {
        let _ = kill_process(pid, sig);
    }
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

/// A started command: its process group and its cgroup, killed when
/// this is dropped unfinished — how a cancelled future (a task aborted,
/// a reload) ends the command.
struct Running {
    group: Option<Pid>,
    scope: Option<Scope>,
    armed: bool,
}

impl Running {
    /// SIGKILL everything in the command's cgroup and process group.
    fn kill(&self) {
        if let Some(scope) = &self.scope {
            scope.kill();
        }
        if let Some(group) = self.group {
            // ESRCH only: the group is already gone.
            let _ = kill_process_group(group, Signal::KILL);
        }
    }

    /// The command has been reaped: kill nothing more (after the leader
    /// is reaped its group ID is no longer ours to signal), and remove
    /// its cgroup.
    fn finish(mut self) {
        self.armed = false;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
        if let Some(scope) = self.scope.take() {
            scope.remove();
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
