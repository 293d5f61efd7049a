//! How often a refused packet is worth a log line: the first of each
//! reason at once, then at most one line per reason per
//! [`REJECT_LOG_INTERVAL`], which says how many were left unsaid. A flood
//! of bad packets thus costs a few lines a minute, not one per packet (a
//! line per packet once filled the log's file system and stopped the
//! agent, issue #17); the counters in the status still count every one.
//! Pure: the instance passes the time.

use std::collections::BTreeMap;
use std::time::Duration;

/// The least time between two log lines for one reason.
pub(crate) const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Whether to log a refused packet now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogVerdict {
    /// Log it, adding that `suppressed` more of its reason went unlogged
    /// since the last line.
    Log {
        /// Refusals of this reason not logged since the last line.
        suppressed: u64,
    },
    /// Count it, say nothing.
    Quiet,
}

/// Per reason: when the last line was written and how many went unsaid
/// since.
#[derive(Debug, Default)]
pub(crate) struct RejectLog {
    reasons: BTreeMap<&'static str, (Duration, u64)>,
}

impl RejectLog {
    /// A packet refused for `reason` at `now` (time since any fixed
    /// epoch, never going back): log it or not.
    pub(crate) fn admit(
        &mut self,
        reason: &'static str,
        now: Duration,
    ) -> LogVerdict {
        match self.reasons.get_mut(reason) {
            Some((last, quiet))
                if now.saturating_sub(*last) < REJECT_LOG_INTERVAL =>
            {
                *quiet += 1;
                LogVerdict::Quiet
            }
            Some((last, quiet)) => {
                *last = now;
                LogVerdict::Log { suppressed: std::mem::take(quiet) }
            }
            None => {
                self.reasons.insert(reason, (now, 0));
                LogVerdict::Log { suppressed: 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_first_is_logged_then_one_line_per_interval_with_the_count() {
        let mut log = RejectLog::default();
        assert_eq!(log.admit("auth", at(0)), LogVerdict::Log { suppressed: 0 });
        // A flood: 40 000 a second for 25 s, one every 25 µs.
        let mut lines = 1;
        let mut said = 0;
        for i in 1..1_000_000u64 {
            if let LogVerdict::Log { suppressed } =
                log.admit("auth", Duration::from_micros(25 * i))
            {
                lines += 1;
                said += suppressed;
            }
        }
        // 25 s: the first line, then one at 10 s and one at 20 s.
        assert_eq!(lines, 3);
        // Every packet is either logged or counted in a later line, but
        // those after the last line.
        let last_quiet = match log.admit("auth", at(40_000)) {
            LogVerdict::Log { suppressed } => suppressed,
            LogVerdict::Quiet => panic!("an interval passed"),
        };
        assert_eq!(lines + said + last_quiet, 1_000_000);
    }

    #[test]
    fn reasons_are_limited_apart() {
        let mut log = RejectLog::default();
        assert_eq!(log.admit("auth", at(0)), LogVerdict::Log { suppressed: 0 });
        assert_eq!(log.admit("auth", at(1)), LogVerdict::Quiet);
        assert_eq!(log.admit("ttl", at(2)), LogVerdict::Log { suppressed: 0 });
        assert_eq!(log.admit("ttl", at(9_999)), LogVerdict::Quiet);
        assert_eq!(
            log.admit("auth", at(10_000)),
            LogVerdict::Log { suppressed: 1 }
        );
        assert_eq!(
            log.admit("ttl", at(10_002)),
            LogVerdict::Log { suppressed: 1 }
        );
    }
}
