//! Active-active directors: VIPs announced by every director over BGP
//! (through BIRD, which the agent runs) instead of held by one VRRP
//! master. The upstream router spreads flows over the directors by ECMP;
//! every director computes the same bucket table, so a flow that moves
//! between directors still reaches its real server.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Director;
use crate::inventory::values::{Asn, Bounded, Duration};

/// BFD's detection multiplier (RFC 5880 §6.8.1: a non-zero octet).
pub type BfdMultiplier = Bounded<1, 255>;

/// The `bgp:` block: how every director speaks to the routers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    /// The directors' autonomous system.
    pub local_as: Asn,
    /// BGP router id; each director's own IPv4 address when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<Ipv4Addr>,
    /// The routers every director peers with.
    pub peers: Vec<BgpPeer>,
    /// Bidirectional Forwarding Detection on every session: a silent
    /// director is withdrawn after `interval × multiplier` instead of the
    /// hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
    /// BGP hold time offered to the peers (BIRD's default, 240 s, when
    /// left out): 0 or 3 s–65535 s (RFC 4271 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,
    /// Interval between keepalives; a third of the hold time when left
    /// out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,
    /// How long a director keeps forwarding after it withdrew its VIPs
    /// (on stop, on losing its last healthy real server, on a table found
    /// broken), so the flows the router still sends it while the
    /// withdrawal spreads are not dropped.
    #[serde(default = "default_drain_grace")]
    pub drain_grace: Duration,
}

fn default_drain_grace() -> Duration {
    Duration::from_secs(2)
}

impl Bgp {
    /// What director `d` speaks: this block under `d`'s own overrides.
    /// The one place they are resolved, so that the agent's
    /// configuration, validation and the lab's router agree on them.
    pub fn for_director<'a>(&'a self, d: &'a Director) -> EffectiveBgp<'a> {
        let own = d.bgp.as_ref();
        let address = match d.address.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        };
        EffectiveBgp {
            local_as: own.and_then(|o| o.local_as).unwrap_or(self.local_as),
            router_id: own
                .and_then(|o| o.router_id)
                .or(self.router_id)
                .or(address),
            peers: own.and_then(|o| o.peers.as_deref()).unwrap_or(&self.peers),
        }
    }
}

/// One director's BGP settings once its overrides are applied
/// ([`Bgp::for_director`]); the timers, BFD and grace are the block's
/// alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveBgp<'a> {
    /// Its autonomous system: its own, else the block's.
    pub local_as: Asn,
    /// Its router id: its own, else the block's, else its address.
    /// `None` for a director with an IPv6 address and no id set, which
    /// validation refuses.
    pub router_id: Option<Ipv4Addr>,
    /// The routers it peers with: its own list, else the block's.
    pub peers: &'a [BgpPeer],
}

/// One BGP neighbour (a router).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    /// The router's address on the directors' segment.
    pub address: IpAddr,
    /// The router's autonomous system.
    #[serde(rename = "as")]
    pub remote_as: Asn,
    /// The name of an environment variable on the controller holding the
    /// session's TCP MD5 signature password (RFC 2385). There is no inline
    /// form: a routing secret stays out of the inventory and its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file on the controller holding it (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// BFD timers (RFC 5880): both directions use `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bfd {
    /// Desired transmit and required receive interval.
    #[serde(default = "default_bfd_interval")]
    pub interval: Duration,
    /// Missed packets before the session is down.
    #[serde(default = "default_bfd_multiplier")]
    pub multiplier: BfdMultiplier,
}

fn default_bfd_interval() -> Duration {
    Duration::from_millis(100)
}

fn default_bfd_multiplier() -> BfdMultiplier {
    BfdMultiplier::new(3).expect("3 is within 1–255")
}

/// A director's own BGP settings, over the inventory's `bgp:` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorBgp {
    /// This director's autonomous system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_as: Option<Asn>,
    /// This director's router id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<Ipv4Addr>,
    /// This director's routers, instead of the shared list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<BgpPeer>>,
}

/// What the director's data plane files the services announced over BGP
/// under, in place of a VRRP instance's name (no instance may take it).
pub const BGP_INSTANCE: &str = "(bgp)";

/// How a virtual service's VIP reaches the clients.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Announce {
    /// Held by the VRRP master of the instance that lists it.
    #[default]
    Vrrp,
    /// Announced by every director over BGP while it can forward it.
    Bgp,
}

impl Announce {
    /// Whether this is the default, so it is left out when written.
    pub fn is_vrrp(&self) -> bool {
        *self == Announce::Vrrp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bgp(yaml: &str) -> Bgp {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn director(address: &str, own: &str) -> Director {
        let yaml = format!(
            "{{name: d1, address: {address}, interface: eth0, priority: \
             100{own}}}"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn a_director_speaks_the_block_under_its_own_overrides() {
        let block =
            bgp("{local_as: 65001, peers: [{address: 10.0.0.1, as: 65000}]}");
        let plain = director("10.0.0.11/24", "");
        let d = block.for_director(&plain);
        assert_eq!(d.local_as.get(), 65001);
        assert_eq!(d.router_id, Some(Ipv4Addr::new(10, 0, 0, 11)));
        assert_eq!(d.peers, block.peers);

        let own = director(
            "10.0.0.12/24",
            ", bgp: {local_as: 65002, router_id: 1.1.1.1, peers: \
             [{address: 10.0.0.2, as: 65000}]}",
        );
        let d = block.for_director(&own);
        assert_eq!(d.local_as.get(), 65002);
        assert_eq!(d.router_id, Some(Ipv4Addr::new(1, 1, 1, 1)));
        assert_eq!(
            d.peers,
            own.bgp.as_ref().unwrap().peers.as_deref().unwrap()
        );
    }

    #[test]
    fn the_router_id_is_the_blocks_before_the_address_and_none_for_ipv6() {
        let block = bgp("{local_as: 65001, peers: [], router_id: 2.2.2.2}");
        let v4 = director("10.0.0.11/24", "");
        assert_eq!(
            block.for_director(&v4).router_id,
            Some(Ipv4Addr::new(2, 2, 2, 2))
        );
        let block = bgp("{local_as: 65001, peers: []}");
        let v6 = director("fd00::11/64", "");
        assert_eq!(block.for_director(&v6).router_id, None);
    }
}
