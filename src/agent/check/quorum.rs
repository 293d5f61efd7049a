//! Whether a virtual service has quorum, with keepalived's rule. Pure:
//! live weights in, verdict changes out.
//!
//! The live weight is the sum of the weights of the real servers that pass
//! their checks. A service starts with quorum when that sum reaches
//! `quorum + hysteresis`; it then **loses** quorum only when the sum drops
//! below `quorum - hysteresis` (or to nothing), and **regains** it only at
//! `quorum + hysteresis` again. The band between the two thresholds is the
//! flap dampener: a server flapping around the quorum does not flip the
//! service back and forth. Without quorum the sorry server (if any) takes
//! the traffic; either way the change is notified (keepalived's
//! `quorum_up` / `quorum_down`).

use std::net::IpAddr;

use crate::inventory::agent::ServiceConfig;

/// One service's quorum verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quorum {
    quorum: u64,
    hysteresis: u64,
    up: bool,
}

/// A verdict change, for logs and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Quorum now held (gained) or not (lost).
    pub up: bool,
    /// The live weight that decided it.
    pub weight: u64,
    /// The threshold it crossed: `quorum + hysteresis` when gained,
    /// `quorum - hysteresis` when lost.
    pub threshold: u64,
}

impl Quorum {
    /// The verdict for a service starting with live weight `live`.
    ///
    /// A quorum of 0 counts as 1 and the hysteresis is kept below the
    /// quorum, as keepalived does; validation refuses both in an inventory.
    pub fn new(quorum: u32, hysteresis: u32, live: u64) -> Self {
        let quorum = u64::from(quorum.max(1));
        let hysteresis = u64::from(hysteresis).min(quorum - 1);
        Self { quorum, hysteresis, up: live >= quorum + hysteresis }
    }

    /// Whether the service has quorum.
    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    /// Whether `other` was made from the same quorum and hysteresis: then
    /// a reload keeps this verdict rather than starting over.
    pub(crate) fn same_settings(&self, other: &Quorum) -> bool {
        (self.quorum, self.hysteresis) == (other.quorum, other.hysteresis)
    }

    /// What a service that starts with live weight `live` notifies:
    /// nothing with quorum, a loss without it (keepalived sends
    /// `quorum_down` then too), the threshold being what it needs to gain.
    pub(crate) fn at_start(&self, live: u64) -> Option<Change> {
        let gain = self.quorum + self.hysteresis;
        (!self.up).then_some(Change {
            up: false,
            weight: live,
            threshold: gain,
        })
    }

    /// Take the live weight now; the change, if it crossed a threshold.
    pub fn update(&mut self, live: u64) -> Option<Change> {
        let gain = self.quorum + self.hysteresis;
        let lose = self.quorum - self.hysteresis;
        let change = match self.up {
            false if live >= gain => {
                Change { up: true, weight: live, threshold: gain }
            }
            true if live == 0 || live < lose => {
                Change { up: false, weight: live, threshold: lose }
            }
            _ => return None,
        };
        self.up = change.up;
        Some(change)
    }
}

/// The sum of the weights of `svc`'s real servers that `up` says pass
/// their checks (keepalived's `weigh_live_realservers`).
pub(crate) fn live_weight(
    svc: &ServiceConfig,
    up: impl Fn(IpAddr) -> bool,
) -> u64 {
    svc.real_servers
        .iter()
        .filter(|rs| up(rs.address))
        .map(|rs| u64::from(rs.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_up_only_at_quorum_plus_hysteresis() {
        assert!(Quorum::new(3, 1, 4).is_up());
        assert!(!Quorum::new(3, 1, 3).is_up());
        assert!(Quorum::new(1, 0, 1).is_up());
        assert!(!Quorum::new(1, 0, 0).is_up());
    }

    #[test]
    fn a_service_starting_without_quorum_says_so() {
        assert_eq!(Quorum::new(3, 1, 4).at_start(4), None);
        assert_eq!(
            Quorum::new(3, 1, 3).at_start(3),
            Some(Change { up: false, weight: 3, threshold: 4 })
        );
    }

    #[test]
    fn lost_below_quorum_minus_hysteresis_regained_at_plus() {
        let mut q = Quorum::new(3, 1, 5);
        assert_eq!(q.update(2), None, "2 is not below 3 - 1");
        assert_eq!(
            q.update(1),
            Some(Change { up: false, weight: 1, threshold: 2 })
        );
        assert_eq!(q.update(3), None, "3 does not reach 3 + 1");
        assert_eq!(
            q.update(4),
            Some(Change { up: true, weight: 4, threshold: 4 })
        );
        assert!(q.is_up());
    }

    #[test]
    fn a_server_flapping_around_the_quorum_does_not_flip_the_service() {
        // Quorum 4, hysteresis 1, three servers of weight 2, 1 and 1: the
        // weight-1 server flapping moves the sum between 3 and 4.
        let mut q = Quorum::new(4, 1, 4);
        assert!(!q.is_up(), "4 does not reach 4 + 1 at start");
        assert_eq!(
            q.update(5),
            Some(Change { up: true, weight: 5, threshold: 5 })
        );
        for _ in 0..10 {
            assert_eq!(q.update(3), None);
            assert_eq!(q.update(4), None);
        }
        assert!(q.is_up());
        // Without hysteresis the same flapping flips it every time.
        let mut bare = Quorum::new(4, 0, 4);
        assert!(bare.update(3).is_some_and(|c| !c.up));
        assert!(bare.update(4).is_some_and(|c| c.up));
    }

    #[test]
    fn no_live_weight_is_never_quorum() {
        // Hysteresis as large as the quorum is clamped to quorum - 1.
        let mut q = Quorum::new(2, 5, 3);
        assert!(q.is_up());
        assert_eq!(q.update(1), None, "1 is not below 2 - 1");
        assert_eq!(
            q.update(0),
            Some(Change { up: false, weight: 0, threshold: 1 })
        );
        // A quorum of 0 counts as 1.
        let mut zero = Quorum::new(0, 0, 1);
        assert!(zero.update(0).is_some_and(|c| !c.up));
    }

    #[test]
    fn live_weight_sums_the_servers_that_are_up() {
        let svc: ServiceConfig = serde_yaml::from_str(
            "name: web
vip: 10.0.0.200
port: 80
protocol: tcp
scheduler: wrr
delay_loop: 6s
quorum: 2
real_servers:
- { address: 10.0.0.21, port: 80, weight: 2 }
- { address: 10.0.0.22, port: 80, weight: 1 }
",
        )
        .unwrap();
        let down: IpAddr = "10.0.0.21".parse().unwrap();
        assert_eq!(live_weight(&svc, |_| true), 3);
        assert_eq!(live_weight(&svc, |ip| ip != down), 1);
        let live = live_weight(&svc, |ip| ip != down);
        assert!(!Quorum::new(svc.quorum, svc.hysteresis, live).is_up());
    }
}
