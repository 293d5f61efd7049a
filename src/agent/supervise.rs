//! lbdeploy's own supervisor, for hosts without systemd (the lab's hosts,
//! minimal containers), and the service commands built on it: `lbdeploy
//! agent start|stop|restart|reload`.
//!
//! It does for the agent what the rendered systemd unit does: keep it
//! running (`Restart=always`, with the backoff of `RestartSec=1s`,
//! `RestartSteps=`, `RestartMaxDelaySec=30s` and no giving up,
//! `StartLimitIntervalSec=0`), remove what a dead agent held before
//! restarting it (`ExecStopPost=… agent cleanup`), forward a reload
//! (`ExecReload=`) and stop it cleanly. The process tree:
//!
//! ```text
//! agent start ──spawns, returns──▶ agent supervise   (own session; PID file)
//!                                    └─ agent MODE --config FILE
//!                                       (restarted when it exits)
//! ```
//!
//! The supervisor starts a new session itself ([`rustix::process::setsid`]),
//! so it outlives the SSH session that ran `start` without any `unsafe`
//! `pre_exec`. Its PID, not the agent's, is in `RUN/agent.pid`: it is the
//! process that lives as long as the service does.
//!
//! These commands are one-shot and synchronous; only the supervisor's loop
//! runs on tokio, to wait for its child and for signals at once.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::Child;
use tokio::signal::unix::{SignalKind, signal};

use super::status;
use super::sys::privileges;
use super::sys::process::{self, Stopped};
use super::{logfile, paths, runtime};
use crate::inventory::Mode;
use crate::inventory::agent::{DirectorConfig, RealserverConfig};

/// Wait between an agent's exit and its restart when it had run healthily,
/// as the unit's `RestartSec=1s`; each quick exit after it doubles the
/// wait, up to `MAX_RESTART_DELAY`.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between two restarts, as the unit's
/// `RestartMaxDelaySec=30s`. The supervisor never gives up: a director
/// that stopped trying would need a person to come back after the fault
/// (a configuration fixed by the next `apply`, an interface back up), and
/// while it is down it holds nothing (see `agent::cleanup`), so retrying
/// costs one process start per 30 s and nothing else.
pub(crate) const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// An agent that ran this long before it exited ran healthily: the wait
/// before its restart starts again from [`RESTART_DELAY`]. Longer than an
/// agent that cannot work takes to fail — the configuration is read at
/// once, the start's apply waits at most 5 s for IPv6 duplicate address
/// detection, an election takes a Master_Down_Interval of about 4 s, and
/// loading a large nftables table tens of seconds — so a crash loop never
/// passes for healthy; short enough that a rare crash of a long-running
/// agent is answered with a restart after 1 s, not 30.
pub(crate) const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How long `start` waits for the agent's status socket to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `stop` waits for the supervisor to exit. Longer than
/// `CHILD_STOP_TIMEOUT`, which the supervisor may spend on the agent.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the supervisor lets the agent shut down after SIGTERM before
/// SIGKILL (the VRRP master's priority-0 advert and VIP removal fit well
/// within it).
pub(crate) const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `reload` waits for the agent to report the reload.
pub(crate) const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the commands look again while they wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many lines of the log `start` shows when the agent does not come up.
const LOG_TAIL_LINES: usize = 20;

// ===== restart policy =====

/// How long to wait before restarting the agent: exponential backoff,
/// as systemd's `RestartSteps=` does it. The first restart after a
/// healthy run waits `first`; each exit after a run shorter than
/// `healthy` doubles the wait, up to `max`. There is no giving up. Pure
/// (the run's length is an argument), so its arithmetic is tested
/// without processes.
#[derive(Debug, Clone)]
pub(crate) struct RestartPolicy {
    first: Duration,
    max: Duration,
    healthy: Duration,
    /// Exits since the last healthy run.
    quick_exits: u32,
}

impl RestartPolicy {
    /// A policy that waits `first`, doubling up to `max`, and starts again
    /// from `first` after a run of at least `healthy`.
    pub fn new(first: Duration, max: Duration, healthy: Duration) -> Self {
        RestartPolicy { first, max, healthy, quick_exits: 0 }
    }

    /// Record an exit of an agent that ran for `ran` (zero when it could
    /// not be started); the wait before its restart.
    pub(crate) fn delay(&mut self, ran: Duration) -> Duration {
        if ran >= self.healthy {
            self.quick_exits = 0;
        }
        let factor = 2u32.saturating_pow(self.quick_exits);
        self.quick_exits = self.quick_exits.saturating_add(1);
        self.first.saturating_mul(factor).min(self.max)
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy::new(RESTART_DELAY, MAX_RESTART_DELAY, HEALTHY_RUN)
    }
}

// ===== finding the supervisor =====

/// The PID of the supervisor running for `run_dir`, if any: the PID file
/// names a live process that is `lbdeploy agent supervise`. A PID file
/// left by a crash whose number was reused by an unrelated process, or a
/// zombie, does not count.
pub(crate) fn supervisor_pid(run_dir: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(paths::pid_file(run_dir)).ok()?;
    let pid = parse_pid(&text)?;
    is_supervisor(pid).then_some(pid)
}

/// The PID in a PID file's text.
fn parse_pid(text: &str) -> Option<Pid> {
    // Negative numbers mean process groups to kill(2); never accept one.
    Pid::from_raw(text.trim().parse().ok().filter(|&n: &i32| n > 0)?)
}

/// Whether `pid` is an `lbdeploy agent supervise` process. A zombie's
/// command line is empty, so an exited supervisor that nobody reaped yet
/// counts as gone.
fn is_supervisor(pid: Pid) -> bool {
    let Ok(cmdline) =
        std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero()))
    else {
        return false;
    };
    is_supervise_cmdline(&cmdline)
}

fn is_supervise_cmdline(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|&b| b == 0).skip(1);
    args.next() == Some(b"agent") && args.next() == Some(b"supervise")
}

// ===== the supervisor =====

/// Run as the supervisor (`lbdeploy agent supervise MODE --config FILE`)
/// until SIGTERM or SIGINT, which stop the agent and return `Ok`. Each
/// time the agent exits, what it held is removed (`agent cleanup`, in
/// this process) before it is restarted after `RestartPolicy`'s wait.
///
/// # Errors
/// Another supervisor already runs or the PID file cannot be written.
pub fn supervise(
    mode: Mode,
    config: &Path,
    run_dir: &Path,
) -> anyhow::Result<()> {
    // Leave the session of whoever started us (an SSH session, a
    // terminal) so its end does not end the service. Fails only when we
    // already lead a process group, in which case we were detached on
    // purpose by our parent.
    let _ = rustix::process::setsid();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut copier = None;
    let result =
        rt.block_on(supervise_async(mode, config, run_dir, &mut copier));
    drop(rt);
    if let Some(copier) = copier {
        copier.finish();
    }
    result
}

async fn supervise_async(
    mode: Mode,
    config: &Path,
    run_dir: &Path,
    copier: &mut Option<logfile::Copier>,
) -> anyhow::Result<()> {
    // Handlers before the PID file: whoever reads the PID file may signal
    // us, and must not hit the default action.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hand_over = signal(SignalKind::user_defined1())?;
    create_run_dir(run_dir)?;
    let me = rustix::process::getpid();
    if let Some(other) = supervisor_pid(run_dir).filter(|&p| p != me) {
        bail!(
            "another supervisor (pid {}) already runs for {}",
            other.as_raw_nonzero(),
            run_dir.display()
        );
    }
    let _pid_file = PidFileGuard::write(paths::pid_file(run_dir), me)?;
    *copier = Some(log_through_pipe(run_dir)?);
    let exe = exe()?;
    tracing::info!(
        "supervisor running for the {mode} agent ({})",
        exe.display()
    );
    let mut policy = RestartPolicy::default();
    loop {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(["agent", mode.as_str(), "--config"])
            .arg(config)
            .args(["--log-format", crate::util::log::current().as_str()])
            // The agent confines itself, tied to us (sys::privileges).
            .env(privileges::SUPERVISOR_ENV, me.as_raw_nonzero().to_string())
            .stdin(Stdio::null());
        let started = Instant::now();
        match command.spawn() {
            Ok(mut child) => {
                let pid = child.id();
                tracing::info!("started the agent, pid {}", pid.unwrap_or(0));
                loop {
                    tokio::select! {
                        exit = child.wait() => {
                            let how = match exit {
                                Ok(status) => status.to_string(),
                                Err(e) => format!("unknown status ({e})"),
                            };
                            tracing::warn!("the agent exited: {how}");
                            break;
                        }
                        _ = hangup.recv() => {
                            tracing::info!("SIGHUP: asking the agent to reload");
                            process::signal(&child, Signal::HUP);
                        }
                        _ = terminate.recv() => {
                            return stop_child(&mut child, run_dir, Signal::TERM).await;
                        }
                        _ = interrupt.recv() => {
                            return stop_child(&mut child, run_dir, Signal::TERM).await;
                        }
                        _ = hand_over.recv() => {
                            return stop_child(&mut child, run_dir, Signal::USR1).await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot start {}: {e}", exe.display()),
        }
        let ran = started.elapsed();
        remove_stale_socket(run_dir);
        clean_up(run_dir).await;
        let delay = policy.delay(ran);
        tracing::warn!(
            "restarting the agent in {} (it ran {})",
            humantime::format_duration(delay),
            humantime::format_duration(Duration::from_millis(
                ran.as_millis() as u64
            ))
        );
        let stop = tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = terminate.recv() => true,
            _ = interrupt.recv() => true,
            _ = hand_over.recv() => true,
        };
        if stop {
            tracing::info!("stopped");
            return Ok(());
        }
    }
}

/// From here on, this process's stdout and stderr, and so the agent's,
/// are a pipe whose lines a thread of ours copies into `agent.log`,
/// capped and rotated ([`logfile`]). Until now they were the file itself,
/// opened by `start`, for what goes wrong before; they are again once the
/// supervisor ends ([`logfile::Copier::finish`]).
///
/// # Errors
/// The file, the pipe or the thread cannot be made.
fn log_through_pipe(run_dir: &Path) -> anyhow::Result<logfile::Copier> {
    let path = paths::log_file(run_dir);
    let log = logfile::LogFile::open(&path, logfile::LOG_CAP)
        .with_context(|| format!("opening {}", path.display()))?;
    logfile::Copier::start(log).context("logging through a pipe")
}

/// Remove what the agent held, now that it is gone: the fail-safe rule
/// that a host whose agent is not running holds nothing of it. A failure
/// is logged; the restart goes ahead (the agent's start converges the
/// host anyway).
async fn clean_up(run_dir: &Path) {
    if let Err(e) = super::cleanup::run(run_dir).await {
        tracing::warn!("cleanup after the agent's exit: {e:#}");
    }
}

/// Remove the status socket of a killed agent, which could not remove it
/// itself, so that `status` fails with "no such file" rather than
/// "connection refused" while the agent is down. A socket someone answers
/// on is left alone.
fn remove_stale_socket(run_dir: &Path) {
    let socket = paths::socket(run_dir);
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        let _ = std::fs::remove_file(&socket);
    }
}

/// This executable, for spawning the supervisor and the agent. When the
/// binary was replaced under a running supervisor, `/proc/self/exe` names
/// the unlinked file with " (deleted)"; the installed path then holds the
/// new binary, which is what a restart should run, as under systemd.
fn exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(installed) if !exe.exists() => Ok(PathBuf::from(installed)),
        _ => Ok(exe),
    }
}

/// Signal the agent — SIGTERM to stop, SIGUSR1 to hand over for a
/// restart (the supervisor was sent the same) — give it
/// [`CHILD_STOP_TIMEOUT`], then SIGKILL; then remove whatever it still
/// holds, as systemd's `ExecStopPost` does after every stop (after a
/// clean stop that is only what the agent leaves on purpose, such as the
/// IPVS table; after a hand-over its VIPs and data plane, and the
/// masters' marks are stamped for their successors).
async fn stop_child(
    child: &mut Child,
    run_dir: &Path,
    how: Signal,
) -> anyhow::Result<()> {
    match how {
        Signal::USR1 => tracing::info!("stopping the agent for a restart"),
        _ => tracing::info!("stopping the agent"),
    }
    match process::stop(child, how, CHILD_STOP_TIMEOUT).await {
        Stopped::Exited(status) => tracing::info!("the agent exited: {status}"),
        Stopped::Unknown(e) => tracing::warn!("waiting for the agent: {e}"),
        Stopped::Killed => tracing::warn!(
            "the agent ignored {how:?} for {}; killed it",
            humantime::format_duration(CHILD_STOP_TIMEOUT)
        ),
    }
    remove_stale_socket(run_dir);
    clean_up(run_dir).await;
    tracing::info!("stopped");
    Ok(())
}

fn create_run_dir(run_dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(run_dir)
        .with_context(|| format!("creating {}", run_dir.display()))
}

/// The supervisor's PID file: written atomically (a reader sees the old
/// content or the whole new one), removed on drop if it still names us.
struct PidFileGuard {
    path: PathBuf,
    pid: Pid,
}

impl PidFileGuard {
    fn write(path: PathBuf, pid: Pid) -> anyhow::Result<Self> {
        let text = format!("{}\n", pid.as_raw_nonzero());
        crate::util::files::write_atomic(&path, text.as_bytes(), 0o644)?;
        Ok(PidFileGuard { path, pid })
    }
}

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| parse_pid(&t))
            == Some(self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

// ===== start, stop, restart, reload =====

/// Check a configuration for `mode` the way the agent will load it.
///
/// # Errors
/// The file cannot be read or is not valid for `mode`; the error names it.
pub fn validate(mode: Mode, config: &Path) -> anyhow::Result<()> {
    let loaded = match mode {
        Mode::Director => runtime::load::<DirectorConfig>(config).map(drop),
        Mode::Realserver => runtime::load::<RealserverConfig>(config).map(drop),
    };
    // `{e}` alone: the error already quotes its I/O cause.
    loaded.map_err(|e| anyhow::anyhow!("{e}"))
}

/// `lbdeploy agent start`: start the supervisor detached and wait until
/// the agent answers. Does nothing when the supervisor already runs.
///
/// # Errors
/// A bad configuration (nothing is started), an agent that runs without
/// this supervisor, or an agent that does not answer within
/// [`START_TIMEOUT`] (the supervisor is stopped again and the log's tail
/// is part of the error).
pub fn start(mode: Mode, config: &Path, run_dir: &Path) -> anyhow::Result<()> {
    if let Some(pid) = supervisor_pid(run_dir) {
        crate::util::log::say(format_args!(
            "the agent is already running (supervisor pid {}); nothing to do",
            pid.as_raw_nonzero()
        ));
        return Ok(());
    }
    validate(mode, config)?;
    if let Ok(s) = status::query(run_dir) {
        bail!(
            "a {} agent (pid {}) already runs without lbdeploy's supervisor \
             (under systemd?); stop it there first",
            s.mode,
            s.pid
        );
    }
    // The supervisor runs from `/`, so the configuration's path must not
    // depend on our working directory.
    let config = std::fs::canonicalize(config)
        .with_context(|| format!("resolving {}", config.display()))?;
    create_run_dir(run_dir)?;
    let log_path = paths::log_file(run_dir);
    let log_file = logfile::open_log(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_start = log_file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut supervisor = std::process::Command::new(exe()?)
        .args(["agent", "supervise", mode.as_str(), "--config"])
        .arg(&config)
        .args(["--log-format", crate::util::log::current().as_str()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .current_dir("/")
        .spawn()
        .context("starting the supervisor")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(s) = status::query(run_dir) {
            crate::util::log::say(format_args!(
                "started the {mode} agent (supervisor pid {}, agent pid {})",
                supervisor.id(),
                s.pid
            ));
            return Ok(());
        }
        if let Some(exit) = supervisor.try_wait()? {
            bail!(
                "the agent did not start: the supervisor exited ({exit}). \
                 Last lines of {}:\n{}",
                log_path.display(),
                log_tail(&log_path, log_start)
            );
        }
        if Instant::now() >= deadline {
            // Never leave half a service behind: a supervisor whose agent
            // does not answer would keep restarting it unseen.
            let _ = kill_process(Pid::from_child(&supervisor), Signal::TERM);
            let gone = Instant::now() + STOP_TIMEOUT;
            while supervisor.try_wait()?.is_none() && Instant::now() < gone {
                std::thread::sleep(POLL_INTERVAL);
            }
            let _ = supervisor.kill();
            let _ = supervisor.wait();
            bail!(
                "the agent did not answer on {} within {}; stopped it. Last \
                 lines of {}:\n{}",
                paths::socket(run_dir).display(),
                humantime::format_duration(START_TIMEOUT),
                log_path.display(),
                log_tail(&log_path, log_start)
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `lbdeploy agent stop`: SIGTERM the supervisor and wait until it is
/// gone. Without a supervisor it only removes a stale PID file.
///
/// # Errors
/// The supervisor cannot be signalled or is still there after
/// [`STOP_TIMEOUT`].
pub fn stop(run_dir: &Path) -> anyhow::Result<()> {
    end(run_dir, Signal::TERM)
}

/// Send the supervisor `how` (SIGTERM: stop; SIGUSR1: stop for a
/// restart, which it passes on to the agent) and wait until it is gone.
fn end(run_dir: &Path, how: Signal) -> anyhow::Result<()> {
    let pid_file = paths::pid_file(run_dir);
    let Some(pid) = supervisor_pid(run_dir) else {
        if std::fs::remove_file(&pid_file).is_ok() {
            crate::util::log::say(format_args!(
                "removed the stale {}",
                pid_file.display()
            ));
        }
        crate::util::log::say(format_args!(
            "the agent is not running under lbdeploy's supervisor"
        ));
        return Ok(());
    };
    let raw = pid.as_raw_nonzero();
    kill_process(pid, how)
        .with_context(|| format!("signalling the supervisor (pid {raw})"))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while is_supervisor(pid) {
        if Instant::now() >= deadline {
            bail!(
                "the supervisor (pid {raw}) is still running {} after \
                 {how:?}; see {}",
                humantime::format_duration(STOP_TIMEOUT),
                paths::log_file(run_dir).display()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    // The supervisor removes it; a SIGKILLed one could not have.
    if std::fs::read_to_string(&pid_file).ok().and_then(|t| parse_pid(&t))
        == Some(pid)
    {
        let _ = std::fs::remove_file(&pid_file);
    }
    crate::util::log::say(format_args!(
        "stopped the agent (supervisor pid {raw})"
    ));
    Ok(())
}

/// `lbdeploy agent restart`: stop then [`start`], so a newly installed
/// binary, and every setting only a start applies (capabilities,
/// scheduling, memory lock: `DirectorConfig::restart_settings`), take
/// effect — the supervisor too is a new process of the installed binary,
/// and the agent derives its confinement from the new configuration.
/// The stop is a hand-over (SIGUSR1): a master does not resign, the
/// cleanup stamps its mark, and the new agent, started at once, resumes
/// as master well within two advert intervals of 1 s (a fast restart is
/// no failover, as after a crash; measured in `tests/vrrp_realtime.rs`).
///
/// # Errors
/// Those of [`stop`] and [`start`]; a bad configuration is refused before
/// the running agent is stopped.
pub fn restart(
    mode: Mode,
    config: &Path,
    run_dir: &Path,
) -> anyhow::Result<()> {
    validate(mode, config)?;
    end(run_dir, Signal::USR1)?;
    start(mode, config, run_dir)
}

/// `lbdeploy agent reload`: SIGHUP the supervisor (which forwards it) or,
/// without one, the agent itself; wait until the agent reports the reload.
///
/// # Errors
/// The agent does not run, does not report within `RELOAD_TIMEOUT`, or
/// rejected the new configuration (it keeps running on the old one; the
/// error carries its reason).
pub fn reload(run_dir: &Path) -> anyhow::Result<()> {
    let before = status::query(run_dir)?;
    let target = match supervisor_pid(run_dir) {
        Some(pid) => pid,
        None => Pid::from_raw(before.pid as i32)
            .context("the agent reported pid 0")?,
    };
    kill_process(target, Signal::HUP).with_context(|| {
        format!("signalling pid {}", target.as_raw_nonzero())
    })?;
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    while Instant::now() < deadline {
        std::thread::sleep(POLL_INTERVAL);
        let Ok(now) = status::query(run_dir) else { continue };
        if now.pid != before.pid {
            // Restarted meanwhile: the new agent read the current file.
            crate::util::log::say(format_args!(
                "the agent restarted (pid {}) and loaded {} (sha256 {})",
                now.pid,
                now.config.display(),
                now.config_sha256
            ));
            return Ok(());
        }
        if now.reloads > before.reloads {
            if let Some(e) = now.last_reload_error {
                bail!(
                    "the agent rejected the new configuration and keeps \
                     running on the previous one: {e}"
                );
            }
            crate::util::log::say(format_args!(
                "reloaded {} (sha256 {})",
                now.config.display(),
                now.config_sha256
            ));
            return Ok(());
        }
    }
    bail!(
        "the agent did not report a reload within {}; see {}",
        humantime::format_duration(RELOAD_TIMEOUT),
        paths::log_file(run_dir).display()
    )
}

/// The last lines written to the log since `offset`, indented, for an
/// error message.
fn log_tail(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        f.read_to_string(&mut text)
    });
    match read {
        Ok(_) => last_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("  (cannot read it: {e})"),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let shown = &lines[lines.len().saturating_sub(n)..];
    if shown.is_empty() {
        return "  (nothing)".to_owned();
    }
    shown.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_exits_double_the_wait_up_to_the_cap() {
        let s = Duration::from_secs;
        let mut p = RestartPolicy::new(s(1), s(30), s(60));
        let waits: Vec<u64> =
            (0..8).map(|_| p.delay(Duration::ZERO).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        // Never gives up, and never overflows.
        for _ in 0..100 {
            assert_eq!(p.delay(s(59)), s(30));
        }
    }

    #[test]
    fn a_healthy_run_starts_the_backoff_again() {
        let s = Duration::from_secs;
        let mut p = RestartPolicy::default();
        assert_eq!(p.delay(s(3)), RESTART_DELAY);
        assert_eq!(p.delay(s(3)), 2 * RESTART_DELAY);
        assert_eq!(p.delay(s(3)), 4 * RESTART_DELAY);
        // Just short of healthy: still a crash loop.
        assert_eq!(p.delay(HEALTHY_RUN - Duration::from_millis(1)), s(8));
        assert_eq!(p.delay(HEALTHY_RUN), RESTART_DELAY);
        assert_eq!(p.delay(s(0)), 2 * RESTART_DELAY);
        // A long run after a long backoff: the next wait is the first.
        for _ in 0..10 {
            p.delay(s(0));
        }
        assert_eq!(p.delay(s(0)), MAX_RESTART_DELAY);
        assert_eq!(p.delay(s(3600)), RESTART_DELAY);
    }

    #[test]
    fn pid_files_and_command_lines() {
        assert_eq!(
            parse_pid("123\n").map(|p| p.as_raw_nonzero().get()),
            Some(123)
        );
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("-5"), None);
        assert!(is_supervise_cmdline(
            b"/usr/local/sbin/lbdeploy\0agent\0supervise\0director\0--config\0x\0"
        ));
        assert!(!is_supervise_cmdline(
            b"/usr/local/sbin/lbdeploy\0agent\0director\0"
        ));
        assert!(!is_supervise_cmdline(b""));
        // This test process is not a supervisor; nor is a free PID.
        assert!(!is_supervisor(rustix::process::getpid()));
    }

    #[test]
    fn log_tail_shows_the_last_lines_only() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = last_lines(&text, 3);
        assert_eq!(tail, "  line 28\n  line 29\n  line 30");
        assert_eq!(last_lines("", 3), "  (nothing)");
    }
}
