//! Whether a restarted director agent may take back at once the
//! mastership it had when it died, instead of waiting as a backup: the
//! rule that makes a fast restart of a healthy master cost no failover.
//!
//! A VRRP instance marks itself here while it is master (a file per VRID
//! in the runtime directory). When the agent dies, `agent cleanup` removes
//! its VIPs (the fail-safe rule) and stamps each mark with the time of the
//! release, on the boot-time clock (the wall clock may jump; this one
//! only moves forward and counts suspend). On its next start an instance
//! whose mark says it was released less than two advert intervals ago
//! resumes as master at once: its last advert was at most one interval
//! before the release, so every backup's Master_Down_Interval (at least
//! three intervals) is still running, and nobody has taken over. Later
//! than that, it starts as a backup, as RFC 5798 says.
//!
//! With the supervisor's first restart after 1 s, a master with 1 s
//! adverts is back within the window: the clients lose the VIP for about
//! a second and no backup ever takes over (lab-tested). With faster
//! adverts the window is shorter than the restart, and a restart is a
//! failover as before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

use crate::util::files::write_atomic;

/// The mark of the instance with `vrid`.
fn mark(run_dir: &Path, vrid: u8) -> PathBuf {
    run_dir.join(format!("master-{vrid}"))
}

/// Nanoseconds on the boot-time clock.
fn boot_time() -> u128 {
    let t = clock_gettime(ClockId::Boottime);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

/// The instance with `vrid` became master; failures are logged, not
/// fatal (a missing mark only costs a failover on the next restart).
pub(crate) fn became_master(run_dir: &Path, vrid: u8) {
    if let Err(e) = write_atomic(&mark(run_dir, vrid), b"", 0o644) {
        tracing::warn!("marking mastership in {}: {e:#}", run_dir.display());
    }
}

/// The instance with `vrid` is master no more.
pub(crate) fn left_master(run_dir: &Path, vrid: u8) {
    let _ = std::fs::remove_file(mark(run_dir, vrid));
}

/// The agent is gone and its VIPs were removed: stamp every mark not
/// stamped yet with now (a cleanup run again later must not make an old
/// release look recent). Returns how many were stamped.
pub(crate) fn released(run_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return 0 };
    let now = boot_time().to_string();
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("master-"))
        .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() == 0))
        .filter(|e| write_atomic(&e.path(), now.as_bytes(), 0o644).is_ok())
        .count()
}

/// Whether the instance with `vrid` may resume as master: it was master
/// when its agent died, and the release was less than two `interval`s
/// ago. The mark is consumed either way.
pub(crate) fn resumable(run_dir: &Path, vrid: u8, interval: Duration) -> bool {
    let path = mark(run_dir, vrid);
    let stamp = std::fs::read_to_string(&path).ok();
    let _ = std::fs::remove_file(&path);
    let Some(at) = stamp.and_then(|s| s.trim().parse::<u128>().ok()) else {
        return false;
    };
    within(at, boot_time(), interval)
}

/// Whether `now` is less than two `interval`s after `released` (both
/// boot-time nanoseconds). Pure.
fn within(released: u128, now: u128, interval: Duration) -> bool {
    now >= released && now - released < 2 * interval.as_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recent_release_resumes() {
        let s = Duration::from_secs(1).as_nanos();
        let second = Duration::from_secs(1);
        assert!(within(10 * s, 10 * s, second));
        assert!(within(10 * s, 12 * s - 1, second));
        assert!(!within(10 * s, 12 * s, second), "two intervals: too late");
        assert!(!within(10 * s, 9 * s, second), "a stamp from the future");
    }

    #[test]
    fn a_mark_resumes_once_after_its_release() {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-mastership-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let second = Duration::from_secs(1);
        became_master(&dir, 51);
        assert!(
            !resumable(&dir, 51, second),
            "never released: a crash \
                without cleanup does not resume"
        );
        became_master(&dir, 51);
        became_master(&dir, 52);
        left_master(&dir, 52);
        assert_eq!(released(&dir), 1);
        assert_eq!(released(&dir), 0, "stamped once");
        assert!(resumable(&dir, 51, second));
        assert!(!resumable(&dir, 51, second), "consumed");
        assert!(!resumable(&dir, 52, second), "had left master");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
