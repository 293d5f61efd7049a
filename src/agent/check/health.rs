//! Whether a real server is up, from the results of one checker, with
//! keepalived's timing. Pure: results and instants in, state and the next
//! check's instant out.
//!
//! * Checks run every `delay_loop` while the verdict is settled.
//! * A failure while up starts retries: `retry` more attempts, each after
//!   `delay_before_retry`; the server goes **down** after `retry + 1`
//!   consecutive failures (keepalived's `nb_get_retry` counting).
//! * While down, checks run every `delay_loop`; the server comes back
//!   **up** after `rise` consecutive successes (keepalived's checkers
//!   have no `rise` and take a server back on its first success: the
//!   default, 1).
//!
//! The counting itself — up after `rise` consecutive successes, down
//! after `fall` consecutive failures — is [`RiseFall`], which tracking
//! scripts (keepalived's `vrrp_script`) share; a checker's `fall` is
//! `retry + 1`.
//!
//! So a server that stops answering is out of the pool within
//! `delay_loop + (retry + 1) × connect_timeout + retry × delay_before_retry`,
//! and one that answers again is back within `rise × delay_loop` — the
//! bounds the lab tests assert.

use std::time::Duration;

use crate::inventory::CheckTiming;

/// A checker's timing, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between checks while settled.
    pub delay_loop: Duration,
    /// Extra attempts after a first failure before going down.
    pub retry: u32,
    /// Between those attempts.
    pub delay_before_retry: Duration,
    /// Consecutive successes needed to come back up.
    pub rise: u32,
}

/// One checker's view of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    timing: Timing,
    verdict: RiseFall,
}

/// A verdict with keepalived's hysteresis on consecutive results: it
/// starts up, goes down after `fall` consecutive failures and comes back
/// after `rise` consecutive successes (a count of zero means one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    failures: u32,
    successes: u32,
}

/// What one result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict changed: `Some(true)` came up, `Some(false)` went down.
    pub changed: Option<bool>,
    /// When to check next, after the result's instant.
    pub next_in: Duration,
}

impl Timing {
    /// A checker's timing: its own retry settings and `rise`, run every
    /// `delay_loop` of its service.
    pub fn new(delay_loop: Duration, check: CheckTiming) -> Self {
        Self {
            delay_loop,
            retry: check.retry,
            delay_before_retry: check.delay_before_retry.get(),
            rise: check.rise,
        }
    }
}

impl Health {
    /// A server starts **up**, as keepalived's does: a director that
    /// restarts keeps forwarding while its first checks run.
    pub fn new(timing: Timing) -> Self {
        let fall = timing.retry.saturating_add(1);
        Self { timing, verdict: RiseFall::new(timing.rise, fall) }
    }

    /// The current verdict.
    pub(crate) fn is_up(&self) -> bool {
        self.verdict.is_up()
    }

    /// Take a check's result.
    pub fn record(&mut self, success: bool) -> Outcome {
        let t = self.timing;
        let changed = self.verdict.record(success);
        // Retries come quickly while a failing server is still up.
        let next_in = match success || !self.verdict.is_up() {
            true => t.delay_loop,
            false => t.delay_before_retry,
        };
        Outcome { changed, next_in }
    }
}

impl RiseFall {
    /// Up, until `fall` consecutive failures.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self { rise, fall, up: true, failures: 0, successes: 0 }
    }

    /// The current verdict.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Take a result; `Some(up)` when it changed the verdict.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        let (run, needed) = match success {
            true => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                (self.successes, self.rise)
            }
            false => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                (self.failures, self.fall)
            }
        };
        if self.up == success || run < needed.max(1) {
            return None;
        }
        self.up = success;
        Some(success)
    }
}

/// The worst case from a server's failure to its removal: one
/// `delay_loop` until the next check, then `retry + 1` attempts each
/// timing out, with `retry` pauses between them.
pub fn down_within(t: Timing, connect_timeout: Duration) -> Duration {
    t.delay_loop
        + connect_timeout * (t.retry + 1)
        + t.delay_before_retry * t.retry
}

/// The worst case from a server's recovery to its return: its first
/// success within one `delay_loop`, then `rise - 1` more, one
/// `delay_loop` apart.
pub fn up_within(t: Timing) -> Duration {
    t.delay_loop * t.rise.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(retry: u32, rise: u32) -> Timing {
        Timing {
            delay_loop: Duration::from_secs(6),
            retry,
            delay_before_retry: Duration::from_secs(3),
            rise,
        }
    }

    #[test]
    fn goes_down_after_retry_plus_one_failures_retrying_quickly() {
        let mut h = Health::new(timing(2, 1));
        let o = h.record(false);
        assert_eq!(
            o,
            Outcome { changed: None, next_in: Duration::from_secs(3) }
        );
        assert_eq!(h.record(false).changed, None);
        let o = h.record(false);
        assert_eq!(
            o,
            Outcome { changed: Some(false), next_in: Duration::from_secs(6) }
        );
        assert!(!h.is_up());
        assert_eq!(h.record(false).changed, None, "down stays down quietly");
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let mut h = Health::new(timing(1, 1));
        h.record(false);
        assert_eq!(h.record(true).changed, None);
        assert_eq!(h.record(false).changed, None);
        assert_eq!(h.record(false).changed, Some(false));
    }

    #[test]
    fn comes_back_after_rise_successes() {
        let mut h = Health::new(timing(0, 3));
        assert_eq!(h.record(false).changed, Some(false));
        assert_eq!(h.record(true).changed, None);
        assert_eq!(h.record(true).changed, None);
        let o = h.record(true);
        assert_eq!(
            o,
            Outcome { changed: Some(true), next_in: Duration::from_secs(6) }
        );
    }

    #[test]
    fn rise_zero_means_one() {
        let mut h = Health::new(timing(0, 0));
        h.record(false);
        assert_eq!(h.record(true).changed, Some(true));
    }

    #[test]
    fn rise_fall_counts_consecutive_results_from_up() {
        let mut v = RiseFall::new(2, 3);
        assert!(v.is_up(), "starts up");
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(true), None, "a success resets the failures");
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), Some(false), "the third in a row");
        assert_eq!(v.record(false), None, "down stays down quietly");
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(false), None, "a failure resets the successes");
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(true), Some(true));
        assert_eq!(v.record(true), None, "up stays up quietly");
        let mut v = RiseFall::new(0, 0);
        assert_eq!(v.record(false), Some(false), "fall 0 means 1");
        assert_eq!(v.record(true), Some(true), "rise 0 means 1");
    }

    #[test]
    fn the_removal_bound_is_keepalived_s() {
        let t = timing(3, 1);
        assert_eq!(
            down_within(t, Duration::from_secs(5)),
            Duration::from_secs(6 + 20 + 9)
        );
    }

    #[test]
    fn the_return_bound_counts_rise_delay_loops() {
        assert_eq!(up_within(timing(3, 1)), Duration::from_secs(6));
        assert_eq!(up_within(timing(3, 2)), Duration::from_secs(12));
        assert_eq!(up_within(timing(3, 0)), Duration::from_secs(6));
    }
}
