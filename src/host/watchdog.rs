//! The watchdog: the detached process that ends a pending activation,
//! committing it once `host confirm` has marked it, rolling it back at the
//! deadline otherwise.
//!
//! Its choice is [`decide`], a pure function of what it observes, so the
//! same rule serves the watchdog, `host confirm` (finishing for a dead
//! watchdog) and the next activation (cleaning up after a crash).
//!
//! The deadline is kept on `CLOCK_BOOTTIME` (issue #17, finding 13): a
//! wall-clock step (NTP, an operator's `date -s`) must neither roll back a
//! good activation early nor keep a bad one for hours. Boot time only
//! moves forward, counts suspend, and is the same for every process, so a
//! deadline written by `host activate` means the same to the watchdog it
//! starts. It does not survive a reboot, and needs not: after a reboot no
//! watchdog runs, and the next activation or confirmation finishes the
//! pending one through `recover` without looking at the deadline.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rustix::time::{ClockId, clock_gettime};

use super::layout::Layout;
use super::lock::process_alive;
use super::rollback;
use super::snapshot::{self, Pending};
use crate::util::files;

/// How often the watchdog looks for the confirmation.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// What a pending activation's observer should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep the activation: it was confirmed.
    Commit,
    /// Undo it: the deadline passed without confirmation.
    RollBack,
    /// Look again later (no later than the deadline).
    Wait(Duration),
}

/// The step for a pending activation with deadline `deadline_boot_ms`, at
/// `now_boot_ms`, both milliseconds on `CLOCK_BOOTTIME` (no wall clock
/// goes in, so no wall-clock step can move the outcome). A confirmation
/// seen wins even after the deadline: it was given, and the host has not
/// yet started undoing.
pub fn decide(
    confirmed: bool,
    now_boot_ms: u64,
    deadline_boot_ms: u64,
) -> Step {
    if confirmed {
        Step::Commit
    } else if now_boot_ms >= deadline_boot_ms {
        Step::RollBack
    } else {
        Step::Wait(
            Duration::from_millis(deadline_boot_ms - now_boot_ms).min(POLL),
        )
    }
}

/// `pending/deadline`: when an unconfirmed activation rolls back.
///
/// # Format
/// `boottime-ms N` — N milliseconds on `CLOCK_BOOTTIME`. A bare number is
/// the older format (Unix milliseconds on the wall clock), still read so
/// that a pending activation written by an older binary is finished by a
/// newer watchdog; it is converted to boot time once, on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Milliseconds on `CLOCK_BOOTTIME`.
    Boot(u64),
    /// Unix milliseconds (the older format).
    Wall(u64),
}

/// The keyword of the boot-time format.
const BOOT_KEY: &str = "boottime-ms";

impl Deadline {
    /// The deadline `timeout_ms` after `now_boot_ms`.
    pub fn after(now_boot_ms: u64, timeout_ms: u64) -> Self {
        Self::Boot(now_boot_ms.saturating_add(timeout_ms))
    }

    /// Parse the file's text.
    ///
    /// # Errors
    /// When it is neither format.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let t = text.trim();
        let (boot, number) = match t.split_once(' ') {
            Some((BOOT_KEY, n)) => (true, n),
            Some(_) => anyhow::bail!("a corrupt pending deadline: {t:?}"),
            None => (false, t),
        };
        let n: u64 = number
            .parse()
            .with_context(|| format!("a corrupt pending deadline: {t:?}"))?;
        Ok(if boot { Self::Boot(n) } else { Self::Wall(n) })
    }

    /// The file's text.
    pub fn render(self) -> String {
        match self {
            Self::Boot(n) => format!("{BOOT_KEY} {n}\n"),
            Self::Wall(n) => format!("{n}\n"),
        }
    }

    /// The deadline on the boot-time clock. `wall_ms` (Unix milliseconds
    /// now, read together with `now_boot_ms`) is used only to convert the
    /// older wall-clock format; a boot-time deadline ignores it.
    pub fn boot_ms(self, now_boot_ms: u64, wall_ms: u64) -> u64 {
        match self {
            Self::Boot(n) => n,
            Self::Wall(n) => {
                now_boot_ms.saturating_add(n.saturating_sub(wall_ms))
            }
        }
    }
}

/// What to do on finding a pending activation when starting a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Its watchdog still runs: refuse the new activation.
    Refuse,
    /// Its watchdog died: finish its job now.
    Finish(Step),
}

/// The recovery for a pending activation whose watchdog is (not) alive.
/// A dead watchdog's job is done at once: commit when confirmed, roll back
/// otherwise, deadline or not, since nobody would watch the deadline.
pub(crate) fn recover(watchdog_alive: bool, confirmed: bool) -> Recovery {
    match (watchdog_alive, confirmed) {
        (true, _) => Recovery::Refuse,
        (false, true) => Recovery::Finish(Step::Commit),
        (false, false) => Recovery::Finish(Step::RollBack),
    }
}

/// Milliseconds on `CLOCK_BOOTTIME` now.
pub(crate) fn boot_ms() -> u64 {
    let t = clock_gettime(ClockId::Boottime);
    let ms = i128::from(t.tv_sec) * 1000 + i128::from(t.tv_nsec) / 1_000_000;
    u64::try_from(ms).unwrap_or(0)
}

/// Unix milliseconds now (only to read an older wall-clock deadline).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The reason recorded when nobody confirmed within `ms`.
pub(crate) fn timeout_reason(ms: u64) -> String {
    let secs = ms as f64 / 1000.0;
    format!("not confirmed within {secs}s")
}

/// Whether the pending activation's watchdog runs.
pub(crate) fn watchdog_alive(layout: &Layout) -> bool {
    files::read_text_opt(&layout.pending_watchdog())
        .ok()
        .flatten()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| process_alive(pid, "watchdog"))
}

/// Whether `host confirm` marked the pending activation.
pub fn confirmed(layout: &Layout) -> bool {
    layout.pending_confirmed().exists()
}

/// Carry out `step` for `pending` (nothing for `Wait`).
///
/// # Errors
/// When the commit or rollback fails.
pub(crate) fn carry_out(
    layout: &Layout,
    pending: &Pending,
    step: Step,
) -> anyhow::Result<()> {
    match step {
        Step::Commit => rollback::commit(layout, pending),
        Step::RollBack => rollback::roll_back(
            layout,
            pending,
            &timeout_reason(pending.activation.confirm_timeout_ms),
        ),
        Step::Wait(_) => Ok(()),
    }
}

/// Start the watchdog, detached from the SSH session, with stdin from
/// /dev/null and output appended to `$STATE/watchdog.log`; and record its
/// PID.
///
/// Under systemd it is a transient unit of its own (`systemd-run`): a unit
/// of the system manager rather than a process of the SSH session, so
/// neither the session's end, nor logind's `KillUserProcesses=`, nor a
/// restart of sshd takes it down. Elsewhere it is a process group of its
/// own.
///
/// # Errors
/// When it cannot be started.
pub fn spawn(layout: &Layout) -> anyhow::Result<u32> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let pid = if !layout.is_rooted() && layout.systemd_marker().is_dir() {
        spawn_unit(layout, &exe)?
    } else {
        spawn_detached(layout, &exe)?
    };
    files::write_atomic(
        &layout.pending_watchdog(),
        format!("{pid}\n").as_bytes(),
        0o644,
    )?;
    Ok(pid)
}

fn spawn_detached(layout: &Layout, exe: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = files::open_append(&layout.watchdog_log(), 0o600)
        .context("opening the watchdog log")?;
    let child = Command::new(exe)
        .args(["host", "watchdog"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the watchdog")?;
    Ok(child.id())
}

/// The watchdog as the transient unit `lbdeploy-watchdog-PID.service`
/// (this activation's PID makes the name unique); its main PID.
fn spawn_unit(layout: &Layout, exe: &Path) -> anyhow::Result<u32> {
    // Created 0600 here, so systemd appends to a file of the right mode.
    drop(
        files::open_append(&layout.watchdog_log(), 0o600)
            .context("opening the watchdog log")?,
    );
    let unit = format!("lbdeploy-watchdog-{}.service", std::process::id());
    let log = format!("append:{}", layout.watchdog_log().display());
    let out = Command::new("systemd-run")
        .args(["--unit", &unit, "--collect", "--quiet"])
        // `exec`: systemd-run returns once the program runs, so the unit
        // has its main PID when it is asked for it below.
        .args(["--service-type=exec", "--description"])
        .arg("lbdeploy magic-rollback watchdog")
        .args(["-p", &format!("StandardOutput={log}")])
        .args(["-p", &format!("StandardError={log}")])
        .arg("--")
        .arg(exe)
        .args(["host", "watchdog"])
        .stdin(Stdio::null())
        .output()
        .context("running systemd-run")?;
    if !out.status.success() {
        bail!(
            "starting the watchdog as {unit} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let pid = Command::new("systemctl")
        .args(["show", "-p", "MainPID", "--value", &unit])
        .output()
        .context("asking systemd for the watchdog's PID")?;
    String::from_utf8_lossy(&pid.stdout)
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p != 0)
        .with_context(|| format!("{unit} has no main PID"))
}

/// `host watchdog`: wait for the confirmation, then commit or roll back.
///
/// # Errors
/// When the pending state cannot be read, or the commit or rollback fails
/// (then `pending/` stays for the next activation to finish).
pub fn run(layout: &Layout) -> anyhow::Result<()> {
    let text = files::read_text_opt(&layout.pending_deadline())?
        .context("no pending deadline")?;
    let deadline = Deadline::parse(&text)?.boot_ms(boot_ms(), wall_ms());
    loop {
        let Some(pending) = snapshot::load(layout)? else {
            // Someone else (a confirm for a dead watchdog) finished it.
            return Ok(());
        };
        match decide(confirmed(layout), boot_ms(), deadline) {
            Step::Wait(d) => std::thread::sleep(d),
            step => {
                let g = pending.activation.generation;
                // The log may sit on a full file system: a failed write
                // must not stop the watchdog (`eprintln!` would panic).
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: generation {g}: {step:?}"
                );
                return carry_out(layout, &pending, step);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_commits_even_late() {
        assert_eq!(decide(true, 10, 100), Step::Commit);
        assert_eq!(decide(true, 200, 100), Step::Commit);
    }

    #[test]
    fn deadline_rolls_back() {
        assert_eq!(decide(false, 100, 100), Step::RollBack);
        assert_eq!(decide(false, 101, 100), Step::RollBack);
    }

    #[test]
    fn waits_no_longer_than_the_deadline_or_a_poll() {
        assert_eq!(decide(false, 0, 30), Step::Wait(Duration::from_millis(30)));
        assert_eq!(decide(false, 0, 10_000), Step::Wait(POLL));
    }

    /// Issue #17, finding 13: a boot-time deadline gives the same step
    /// whatever the wall clock says (stepped a day back or forward, or
    /// to zero), since `decide` only ever sees boot time.
    #[test]
    fn r17_wall_clock_steps_do_not_move_a_boottime_deadline() {
        let written_at_boot = 5_000;
        let d = Deadline::after(written_at_boot, 30_000);
        assert_eq!(d, Deadline::Boot(35_000));
        let d = Deadline::parse(&d.render()).unwrap();
        let day = 86_400_000;
        let wall = 1_700_000_000_000;
        for wall_now in [wall, wall - day, wall + day, 0, u64::MAX] {
            let deadline = d.boot_ms(20_000, wall_now);
            assert_eq!(deadline, 35_000);
            assert_eq!(decide(false, 20_000, deadline), Step::Wait(POLL));
            assert_eq!(decide(false, 35_000, deadline), Step::RollBack);
        }
    }

    /// An older binary's wall-clock deadline is still honoured: what was
    /// left of it when read becomes a boot-time deadline.
    #[test]
    fn older_wall_clock_deadline_is_converted_once() {
        let d = Deadline::parse("1700000030000\n").unwrap();
        assert_eq!(d, Deadline::Wall(1_700_000_030_000));
        assert_eq!(d.boot_ms(5_000, 1_700_000_000_000), 35_000);
        // Already past: due at once.
        assert_eq!(d.boot_ms(5_000, 1_700_000_040_000), 5_000);
        assert_eq!(d.render(), "1700000030000\n");
    }

    #[test]
    fn corrupt_deadlines_are_refused() {
        for bad in ["", "soon", "boottime-ms", "boottime-ms x", "wall 5"] {
            let err = Deadline::parse(bad).unwrap_err();
            assert!(format!("{err:#}").contains("corrupt"), "{bad:?}");
        }
        assert_eq!(
            Deadline::parse("boottime-ms 7\n").unwrap(),
            Deadline::Boot(7)
        );
    }

    #[test]
    fn the_boottime_clock_moves_forward() {
        let a = boot_ms();
        std::thread::sleep(Duration::from_millis(20));
        let b = boot_ms();
        assert!(b >= a + 20 && b < a + 10_000, "{a} then {b}");
    }

    #[test]
    fn live_watchdog_refuses_dead_one_is_finished() {
        assert_eq!(recover(true, false), Recovery::Refuse);
        assert_eq!(recover(true, true), Recovery::Refuse);
        assert_eq!(recover(false, true), Recovery::Finish(Step::Commit));
        assert_eq!(recover(false, false), Recovery::Finish(Step::RollBack));
    }

    #[test]
    fn reason_in_seconds() {
        assert_eq!(timeout_reason(300), "not confirmed within 0.3s");
        assert_eq!(timeout_reason(30_000), "not confirmed within 30s");
    }
}
