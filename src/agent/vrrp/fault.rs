//! Why an instance cannot work, from what the kernel says about its
//! interface (keepalived's FAULT conditions). Pure: the loop
//! ([`super::instance`]) keeps the facts current from netlink events and
//! feeds the state machine [`Event::Fault`](super::fsm::Event::Fault) or
//! [`Event::FaultCleared`](super::fsm::Event::FaultCleared) when the
//! answer changes.
//!
//! A director whose link is down cannot hear its peers, so it would take
//! the VIPs as a second master, and when the link returns it would keep
//! them without announcing itself (it never changed state): neighbours
//! would still point at the other director. In fault it holds nothing
//! and says nothing; when the fault clears it starts over as a backup,
//! and the election decides.

use std::net::IpAddr;

/// What the loop knows about the instance's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// Administratively up.
    pub up: bool,
    /// It has a carrier.
    pub carrier: bool,
    /// The address adverts are sent from is on it.
    pub address: bool,
}

/// Why an instance on `interface`, speaking from `local`, cannot work;
/// `None` when it can. The first of: down, no carrier, no address.
pub(crate) fn fault(
    interface: &str,
    local: IpAddr,
    facts: Facts,
) -> Option<String> {
    if !facts.up {
        Some(format!("{interface} is down"))
    } else if !facts.carrier {
        Some(format!("{interface} has no carrier"))
    } else if !facts.address {
        Some(format!("{local} is not on {interface}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_missing_fact_is_the_reason() {
        let local: IpAddr = "10.0.0.11".parse().unwrap();
        let ok = Facts { up: true, carrier: true, address: true };
        assert_eq!(fault("eth0", local, ok), None);
        let why = |f: Facts| fault("eth0", local, f).unwrap();
        assert_eq!(
            why(Facts { up: false, carrier: false, ..ok }),
            "eth0 is down"
        );
        assert_eq!(why(Facts { carrier: false, ..ok }), "eth0 has no carrier");
        assert_eq!(
            why(Facts { address: false, ..ok }),
            "10.0.0.11 is not on eth0"
        );
    }
}
