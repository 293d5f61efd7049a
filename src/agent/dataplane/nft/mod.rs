//! The nftables Direct-Routing data plane: one `table netdev lbdeploy`
//! whose ingress chain, on the director's interface, rewrites the
//! destination MAC of each frame for a virtual service to a real server's
//! and sends it back out of the same port (`fwd`). No conntrack exists at
//! netdev ingress, so the real server is chosen from a hash of the flow
//! into a bucket table ([`super::buckets`]), which keeps every packet of a
//! TCP connection on one real server; and each flow is pinned to the real
//! server it started on, so that a change of the buckets (a server back,
//! a weight, a drain) moves only new flows ([`mod@compile`]).
//!
//! Only frames addressed to this director's own MAC are taken
//! (`meta pkttype host`): a switch floods frames for a MAC it has
//! forgotten to every port, and the backup must not forward those too.
//!
//! With 1,000 services the table holds four million map elements, and
//! loading it whole costs `nft` tens of seconds, so a health change must
//! not reload it, and neither must becoming master: the table is kept on
//! every director, backups included, with each VRRP instance's services in
//! a chain of their own that the ingress chain jumps to only while this
//! director is master of the instance. Taking over is then one rule. The
//! parts:
//!
//! * [`mod@compile`] — services in, every bucket's real server decided, and
//!   the whole table as `nft -f` text (pure);
//! * [`delta`] — installed and desired table in, the one transaction that
//!   turns one into the other: only the changed map elements, or the whole
//!   table when its structure changed (pure);
//! * [`verify`] — what tells a table tampered with by hand from ours
//!   without listing millions of elements (pure);
//! * [`generation`] — the kernel's nftables generation over netlink;
//! * [`counters`] — what the table's counting sets counted, read back
//!   into each service's real servers (pure);
//! * [`mod@ruleset`] — a director's configuration and what is known of its
//!   real servers, as the services to install (pure);
//! * [`installer`] — the adapter that keeps the installed table in
//!   memory, carries out each transaction with one `nft -f`, and checks the
//!   kernel's table periodically;
//! * [`plane`] — the [`Dataplane`](super::Dataplane) the director's
//!   forwarding loop drives: the MACs looked up, the ruleset compiled and
//!   installed on every change.

pub mod compile;
pub mod counters;
pub mod delta;
pub mod generation;
pub mod installer;
pub mod plane;
pub mod ruleset;
pub mod verify;

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::buckets::Backend;
pub(crate) use crate::inventory::PortSpan;
pub use compile::{Compiled, compile, render};
pub use installer::Installer;
pub(crate) use plane::Plane;
pub use ruleset::{Unsupported, ruleset};

/// The table's name; lbdeploy owns it and nothing else.
pub(crate) const TABLE: &str = "lbdeploy";

/// A MAC address, `02:00:00:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let bytes: Result<Vec<u8>, _> =
            parts.iter().map(|p| u8::from_str_radix(p, 16)).collect();
        match bytes {
            Ok(b) if b.len() == 6 && parts.iter().all(|p| p.len() == 2) => {
                Ok(Mac(b.try_into().expect("six bytes")))
            }
            _ => Err(format!("`{s}` is not a MAC address")),
        }
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
}

/// One virtual service as the data plane forwards it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// Its name in the configuration, for what is reported of it.
    pub name: String,
    /// The VIP.
    pub vip: IpAddr,
    /// The ports: one, or a port group's ports and ranges.
    pub ports: Vec<PortSpan>,
    /// The protocol.
    pub proto: Proto,
    /// Whether all flows of one client go to one real server (the hash
    /// covers the client address only).
    pub persistent: bool,
    /// How many buckets its flows hash into: [`buckets::count`] of its
    /// configured real servers, up or not, so that health never changes
    /// the hash.
    ///
    /// [`buckets::count`]: crate::agent::dataplane::buckets::count
    pub buckets: usize,
    /// The real servers: their MAC and weight, keyed by `address:port`.
    pub backends: Vec<(Backend, Mac)>,
    /// The MACs an established flow may stay with: every real server
    /// that is up, whatever its weight (weight 0 and drained ones take
    /// no new flow but keep theirs), and the sorry server while it takes
    /// over. The `backends` are live whether listed here or not.
    pub live: Vec<Mac>,
    /// How long a flow's pin outlives its last packet, in seconds
    /// ([`mod@compile`]).
    pub pin_for: u32,
    /// The VRRP instance that holds the VIP: the service is forwarded
    /// while [`Ruleset::forwarding`] names it.
    pub instance: String,
}

impl Service {
    /// Whether it serves more than one port (a port group).
    pub fn is_group(&self) -> bool {
        !matches!(self.ports.as_slice(), [one] if one.first == one.last)
    }
}

/// The whole table of one director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The interface facing clients and real servers.
    pub interface: String,
    /// This director's MAC on it (the frames' new source).
    pub mac: Mac,
    /// The services, in configuration order.
    pub services: Vec<Service>,
    /// The instances whose services are forwarded now: those this
    /// director is master of (or was, during the grace after leaving).
    pub forwarding: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print() {
        let m: Mac = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!("02:00:00:00:00".parse::<Mac>().is_err());
        assert!("02:00:00:00:00:0g".parse::<Mac>().is_err());
    }
}
