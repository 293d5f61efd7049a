//! keepalived's priority arithmetic for tracked objects (interfaces,
//! scripts): what an instance's effective priority is, or why it is in
//! fault, given how each tracked object fares. Pure; keeping the objects'
//! states current is the loop's ([`super::instance`]).
//!
//! The rules, as keepalived.conf(5) gives them:
//!
//! * weight 0: a failing object puts the instance in FAULT;
//! * a positive weight is added while the object is OK;
//! * a negative weight is added (so subtracted) while it fails;
//! * the result is clamped to 1–254, so tracking alone never makes an
//!   instance the address owner nor resign it; an address owner (255) is
//!   never adjusted;
//! * `reverse` (scripts, files, processes) negates the weight: what is added while
//!   the object is OK is subtracted instead, and a weight-0 object is a
//!   fault while it is OK;
//! * a file adds its number times its weight
//!   ([`crate::agent::track::file::contribution`]).

use crate::agent::track::file::{Contribution, contribution};
use crate::agent::vrrp::fsm::PRIORITY_OWNER;

/// One tracked object's weight and state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tracked {
    /// What it is, for the fault reason: `interface eth1`, `script chk`.
    pub what: String,
    /// keepalived's weight, −253–253.
    pub weight: i32,
    /// Whether it is OK now.
    pub ok: bool,
    /// A tracked file's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// The weight is negated (keepalived's `reverse`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
}

impl Tracked {
    /// What it does to the priority: a change, or a fault.
    fn contribution(&self) -> Contribution {
        if let Some(v) = self.value {
            return contribution(v, self.weight, self.reverse);
        }
        let sign = if self.reverse { -1 } else { 1 };
        if self.weight == 0 {
            if self.ok == self.reverse {
                return Contribution::Fault("failed".into());
            }
            return Contribution::Priority(0);
        }
        let counts = (self.weight > 0) == self.ok;
        Contribution::Priority(if counts { self.weight * sign } else { 0 })
    }
}

/// What the tracked objects make of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Working, at this effective priority.
    Priority(u8),
    /// In fault, for this reason (the first weight-0 object failing).
    Fault(String),
}

/// The verdict for an instance of configured priority `base`.
pub(crate) fn verdict(base: u8, tracked: &[Tracked]) -> Verdict {
    let mut moved = 0;
    for t in tracked {
        match t.contribution() {
            Contribution::Fault(why) => {
                return Verdict::Fault(format!("{} {why}", t.what));
            }
            Contribution::Priority(p) => moved += p,
        }
    }
    if base == PRIORITY_OWNER {
        return Verdict::Priority(base);
    }
    let p = (i32::from(base) + moved).clamp(1, i32::from(PRIORITY_OWNER) - 1);
    Verdict::Priority(p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(what: &str, weight: i32, ok: bool) -> Tracked {
        Tracked { what: what.into(), weight, ok, value: None, reverse: false }
    }

    #[test]
    fn reverse_negates_and_files_add_their_number() {
        let rev = |weight, ok| Tracked { reverse: true, ..t("p", weight, ok) };
        assert_eq!(verdict(100, &[rev(10, true)]), Verdict::Priority(90));
        assert_eq!(verdict(100, &[rev(10, false)]), Verdict::Priority(100));
        assert_eq!(
            verdict(100, &[rev(0, true)]),
            Verdict::Fault("p failed".into()),
            "reversed weight 0: running is the fault"
        );
        assert_eq!(verdict(100, &[rev(0, false)]), Verdict::Priority(100));
        let file = |value, weight| Tracked {
            value: Some(value),
            ..t("file f", weight, true)
        };
        assert_eq!(verdict(100, &[file(-3, 10)]), Verdict::Priority(70));
        assert!(matches!(verdict(100, &[file(2, 0)]), Verdict::Fault(_)));
    }

    #[test]
    fn weights_follow_keepalived() {
        let p = |base, tracked: &[Tracked]| verdict(base, tracked);
        assert_eq!(p(100, &[]), Verdict::Priority(100));
        // Positive: added while OK, nothing while failing.
        assert_eq!(p(100, &[t("a", 20, true)]), Verdict::Priority(120));
        assert_eq!(p(100, &[t("a", 20, false)]), Verdict::Priority(100));
        // Negative: nothing while OK, subtracted while failing.
        assert_eq!(p(100, &[t("a", -30, true)]), Verdict::Priority(100));
        assert_eq!(p(100, &[t("a", -30, false)]), Verdict::Priority(70));
        // Summed, then clamped to 1–254.
        let all = [t("a", 20, true), t("b", -30, false), t("c", 5, true)];
        assert_eq!(p(100, &all), Verdict::Priority(95));
        assert_eq!(p(250, &[t("a", 20, true)]), Verdict::Priority(254));
        assert_eq!(p(10, &[t("a", -253, false)]), Verdict::Priority(1));
        // The owner is never adjusted.
        assert_eq!(p(255, &[t("a", -50, false)]), Verdict::Priority(255));
    }

    #[test]
    fn a_failing_weight_zero_object_is_a_fault() {
        let tracked = [t("script ok", 0, true), t("interface eth1", 0, false)];
        assert_eq!(
            verdict(100, &tracked),
            Verdict::Fault("interface eth1 failed".into())
        );
        assert_eq!(
            verdict(255, &tracked[1..]),
            Verdict::Fault("interface eth1 failed".into()),
            "even the owner"
        );
    }
}
