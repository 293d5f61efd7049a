//! An instance's settings: the agent's configuration of one VRRP instance,
//! checked and resolved against the interface before any socket is
//! opened, so a bad configuration fails `apply` with nothing half started.
//! Pure.
//!
//! It owns the choices RFC 5798 leaves to the configuration: which family
//! an instance speaks, which address it speaks from, where adverts go,
//! what they carry. The state machine's own checks are [`super::fsm`]'s;
//! opening the sockets and running the loop is [`super::instance`]'s.

use std::net::{IpAddr, Ipv6Addr};

use crate::agent::sys::net::Address;
use crate::agent::vrrp::packet::{
    Addrs, Advert, AdvertV2, AdvertV3, Auth, V3Checksum, Version,
};
use crate::agent::vrrp::socket::Destinations;
use crate::agent::vrrp::{filter, fsm};
use crate::inventory::agent::VrrpConfig;
use crate::inventory::{Garp, IfAddr, NotifyHooks, Track};

/// Everything an instance needs, checked and resolved before any socket is
/// opened, so a bad configuration fails `apply` with nothing half started.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Instance name, for logs and notify hooks.
    pub name: String,
    /// The VRID adverts are matched by.
    pub vrid: u8,
    /// The interface VRRP and the VIPs live on.
    pub interface: String,
    /// Its index: the scope of link-local addresses.
    pub index: u32,
    /// Our primary address there, of the VIPs' family: advert source and
    /// election tie-breaker. For IPv6 the interface's link-local address
    /// (RFC 5798 §5.1.2.1).
    pub local: IpAddr,
    /// The state machine's settings.
    pub fsm: fsm::Config,
    /// What adverts must carry (v2 PASS), and what ours carry.
    pub auth: Auth,
    /// How a v3 checksum is computed.
    pub v3: V3Checksum,
    /// Where adverts go.
    pub dst: Destinations,
    /// The only sources adverts are taken from (never `local`); anyone
    /// when empty. Filtered in the kernel (`super::filter`) and checked
    /// again on receipt.
    pub accept: Vec<IpAddr>,
    /// The VIPs (interface index filled in by the caller).
    pub vips: Vec<Address>,
    /// Scripts run on transitions.
    pub notify: Option<NotifyHooks>,
    /// How the VIPs are announced.
    pub garp: Garp,
    /// What moves the priority or puts the instance in fault.
    pub track: Track,
}

impl Settings {
    /// Resolve an instance of the agent's configuration on `interface`
    /// (index `index`), whose addresses are `address` (the director's own,
    /// from the inventory) and `ipv6` (the interface's IPv6 addresses now).
    /// The VIPs choose the family the instance speaks.
    ///
    /// An IPv6 instance speaks from the interface's link-local address
    /// (RFC 5798 §5.1.2.1) when it multicasts. With unicast peers it
    /// speaks from the one peer address that is the interface's own — the
    /// inventory lists every director's IPv6 address there, as for IPv4,
    /// but knows no director's IPv6 address to leave out — and sends to
    /// the others, as keepalived's `unicast_src_ip` and `unicast_peer` do.
    ///
    /// # Errors
    /// A message naming the instance: VIPs of both families, an IPv6
    /// instance that is not version 3, has no link-local address to speak
    /// from or none of whose unicast peers is this interface's, an IPv4 one
    /// on a director without an IPv4 address, a password longer than 8
    /// bytes, a version other than 2 or 3, settings the state machine
    /// refuses.
    pub fn new(
        interface: &str,
        index: u32,
        address: IfAddr,
        ipv6: &[Ipv6Addr],
        c: &VrrpConfig,
    ) -> Result<Self, String> {
        let fail = |what: String| format!("vrrp instance {}: {what}", c.name);
        let version = match c.version {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(fail(format!("unknown vrrp version {v}"))),
        };
        let v6 = speaks_ipv6(c).map_err(fail)?;
        let (local, peers) =
            speaker(interface, address, ipv6, c, version, v6).map_err(fail)?;
        let auth = match (&c.password, version) {
            (Some(p), Version::V2) => {
                Auth::pass(p.as_bytes()).ok_or_else(|| {
                    fail("the password is longer than 8 bytes".into())
                })?
            }
            _ => Auth::None,
        };
        if let Some(p) = peers.iter().find(|p| p.is_ipv6() != v6) {
            return Err(fail(format!(
                "unicast peer {p} is not of the VIPs' address family"
            )));
        }
        let vips = vips(index, c);
        if vips.is_empty() {
            return Err(fail("no virtual address".into()));
        }
        let fsm = fsm::Config {
            version,
            priority: c.priority,
            adver_interval: c.advert_int.get(),
            preempt: c.preempt,
            preempt_delay: c.preempt_delay.map(|d| d.get()).unwrap_or_default(),
            primary_addr: local,
        };
        fsm::Instance::new(fsm.clone()).map_err(|e| fail(e.to_string()))?;
        let accept = accept(c, local, &peers).map_err(fail)?;
        Ok(Self {
            name: c.name.clone(),
            vrid: c.virtual_router_id,
            interface: interface.to_owned(),
            index,
            local,
            fsm,
            auth,
            v3: if c.v3_checksum_as_v2 {
                V3Checksum::AsV2
            } else {
                V3Checksum::Rfc5798
            },
            dst: if c.unicast_peers.is_empty() {
                Destinations::multicast_for(local)
            } else {
                Destinations::Unicast(peers)
            },
            accept,
            vips,
            notify: c.notify.clone(),
            garp: c.garp,
            track: c.track.clone(),
        })
    }

    /// Our advert with `priority` (ours, or 0 when leaving).
    pub fn advert(&self, priority: u8) -> Advert {
        // `new` checked that every VIP is of `local`'s family.
        let v4 = self.vips.iter().filter_map(|v| match v.ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        });
        let v6 = self.vips.iter().filter_map(|v| match v.ip {
            IpAddr::V4(_) => None,
            IpAddr::V6(a) => Some(a),
        });
        let interval = self.fsm.adver_interval;
        match self.fsm.version {
            Version::V2 => Advert::V2(AdvertV2 {
                vrid: self.vrid,
                priority,
                // `Instance::new` checked 1–255 whole seconds.
                adver_int: interval.as_secs() as u8,
                auth: self.auth.clone(),
                addrs: v4.collect(),
            }),
            Version::V3 => Advert::V3(AdvertV3 {
                vrid: self.vrid,
                priority,
                // `Instance::new` checked 10 ms steps up to 40.95 s.
                max_adver_int: (interval.as_millis() / 10) as u16,
                addrs: match self.local {
                    IpAddr::V4(_) => Addrs::V4(v4.collect()),
                    IpAddr::V6(_) => Addrs::V6(v6.collect()),
                },
            }),
        }
    }
}

/// Whether the instance's VIPs are IPv6; an error when they mix families
/// (RFC 5798 §5.2.5).
fn speaks_ipv6(c: &VrrpConfig) -> Result<bool, String> {
    let vips = &c.virtual_addresses;
    let v6 = vips.iter().any(|v| v.address.addr.is_ipv6());
    if v6 && vips.iter().any(|v| v.address.addr.is_ipv4()) {
        return Err("mixes IPv4 and IPv6 VIPs; an instance speaks one family \
                    (RFC 5798 §5.2.5)"
            .into());
    }
    Ok(v6)
}

/// The address the instance speaks from, and the unicast peers it speaks
/// to (without that address); see [`Settings::new`].
fn speaker(
    interface: &str,
    address: IfAddr,
    ipv6: &[Ipv6Addr],
    c: &VrrpConfig,
    version: Version,
    v6: bool,
) -> Result<(IpAddr, Vec<IpAddr>), String> {
    let mut peers = c.unicast_peers.clone();
    let local = match (v6, version, address.addr) {
        (true, Version::V2, _) => {
            return Err("VRRPv2 cannot carry IPv6 VIPs".into());
        }
        (true, Version::V3, _) if !peers.is_empty() => {
            let own = peers
                .iter()
                .position(|p| matches!(p, IpAddr::V6(p) if ipv6.contains(p)))
                .ok_or_else(|| {
                    format!(
                        "none of the unicast peers is an address of \
                         {interface}: list this director's own IPv6 \
                         address among them, as for the others"
                    )
                })?;
            peers.remove(own)
        }
        (true, Version::V3, _) => {
            IpAddr::V6(link_local(ipv6).ok_or_else(|| {
                format!(
                    "{interface} has no usable IPv6 link-local address to \
                 send adverts from (is IPv6 disabled on it, or did \
                 duplicate address detection fail?)"
                )
            })?)
        }
        (false, _, IpAddr::V4(a)) => IpAddr::V4(a),
        (false, _, IpAddr::V6(a)) => {
            return Err(format!(
                "IPv4 VIPs need an IPv4 address on {interface}, and \
                 this director's is {a}"
            ));
        }
    };
    Ok((local, peers))
}

/// The sources an instance speaking from `local` to unicast `peers` takes
/// adverts from: the configuration's list, or the unicast peers when it
/// has none (a file from before the list), `local` left out; checked to
/// fit the kernel's filter and the instance's family.
fn accept(
    c: &VrrpConfig,
    local: IpAddr,
    peers: &[IpAddr],
) -> Result<Vec<IpAddr>, String> {
    let listed = if c.accept_from.is_empty() { peers } else { &c.accept_from };
    let accept: Vec<IpAddr> =
        listed.iter().copied().filter(|a| *a != local).collect();
    if let Some(a) = accept.iter().find(|a| a.is_ipv6() != local.is_ipv6()) {
        return Err(format!(
            "accepts adverts from {a}, which is not of the instance's \
             address family ({local})"
        ));
    }
    filter::source_filter(&accept).map_err(|e| e.to_string())?;
    Ok(accept)
}

/// The instance's VIPs on interface `index`, with their labels.
fn vips(index: u32, c: &VrrpConfig) -> Vec<Address> {
    c.virtual_addresses
        .iter()
        .map(|v| Address {
            index,
            ip: v.address.addr,
            prefix: v.address.prefix,
            label: v.label.clone(),
        })
        .collect()
}

/// The lowest unicast link-local address among `ipv6`, so every start
/// picks the same one should there be several: what VRRP over IPv6
/// multicasts from (RFC 5798 §5.1.2.1).
pub(crate) fn link_local(ipv6: &[Ipv6Addr]) -> Option<Ipv6Addr> {
    ipv6.iter().copied().filter(Ipv6Addr::is_unicast_link_local).min()
}

/// Shared by this module's tests and [`super::receive`]'s.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A v2 instance with a password and a labelled VIP.
    pub(crate) fn config() -> VrrpConfig {
        serde_yaml::from_str(
            "name: VI_1\nvirtual_router_id: 51\nversion: 2\nadvert_int: 1s\n\
             priority: 120\npreempt: true\npassword: secret\n\
             virtual_addresses: [{address: 10.0.0.200/24, label: eth0:1}]\n",
        )
        .unwrap()
    }

    /// The director's own address.
    pub(crate) fn local() -> IfAddr {
        IfAddr { addr: "10.0.0.11".parse().unwrap(), prefix: 24 }
    }

    /// The interface's IPv6 addresses: a global one and the link-local
    /// one adverts multicast from.
    pub(crate) fn ipv6() -> Vec<Ipv6Addr> {
        ["fd00::11", "fe80::11"].map(|a| a.parse().unwrap()).into()
    }

    /// The link-local one of [`ipv6`].
    pub(crate) fn ll() -> Ipv6Addr {
        "fe80::11".parse().unwrap()
    }

    /// `config()` as a v3 instance with IPv6 VIPs.
    pub(crate) fn config_v6() -> VrrpConfig {
        let mut c = config();
        c.version = 3;
        c.password = None;
        c.virtual_addresses = serde_yaml::from_str(
            "[{address: 'fd00::200/64'}, {address: 'fd00::201/64'}]",
        )
        .unwrap();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::agent::vrrp::packet::MULTICAST_V6;

    #[test]
    fn settings_resolve_the_config() {
        let s = Settings::new("eth0", 7, local(), &ipv6(), &config()).unwrap();
        assert_eq!(s.vips[0].index, 7);
        assert_eq!(s.vips[0].label.as_deref(), Some("eth0:1"));
        assert_eq!(s.local, IpAddr::V4("10.0.0.11".parse().unwrap()));
        assert_eq!(
            s.dst,
            Destinations::Multicast("224.0.0.18".parse().unwrap())
        );
        assert_eq!(s.auth, Auth::pass(b"secret").unwrap());
        let mut c = config();
        c.password = Some("much too long".into());
        let e = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap_err();
        assert!(e.contains("VI_1") && e.contains("8 bytes"), "{e}");
        c.password = None;
        c.unicast_peers = vec!["10.0.0.12".parse().unwrap()];
        let s = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap();
        assert_eq!(s.auth, Auth::None);
        assert_eq!(
            s.dst,
            Destinations::Unicast(vec!["10.0.0.12".parse().unwrap()])
        );
        c.priority = 0;
        assert!(Settings::new("eth0", 7, local(), &ipv6(), &c).is_err());
    }

    #[test]
    fn ipv6_vips_make_an_ipv6_instance_from_the_link_local_address() {
        let s =
            Settings::new("eth0", 7, local(), &ipv6(), &config_v6()).unwrap();
        let ll = IpAddr::V6(ll());
        assert_eq!((s.local, s.fsm.primary_addr), (ll, ll));
        assert_eq!(s.dst, Destinations::Multicast(IpAddr::V6(MULTICAST_V6)));
        let Advert::V3(a) = s.advert(120) else { panic!("v3 expected") };
        assert_eq!(
            a.addrs,
            Addrs::V6(vec![
                "fd00::200".parse().unwrap(),
                "fd00::201".parse().unwrap()
            ])
        );
        let refused = |c: &VrrpConfig, ipv6: &[Ipv6Addr], what: &str| {
            let e = Settings::new("eth0", 7, local(), ipv6, c).unwrap_err();
            assert!(e.contains("VI_1") && e.contains(what), "{e}");
        };
        refused(
            &config_v6(),
            &ipv6()[..1],
            "no usable IPv6 link-local address",
        );
        let mut c = config_v6();
        c.version = 2;
        refused(&c, &ipv6(), "VRRPv2");
        let mut c = config_v6();
        c.unicast_peers = vec!["fd00::12".parse().unwrap()];
        refused(&c, &ipv6(), "none of the unicast peers is an address of eth0");
        let mut c = config_v6();
        c.virtual_addresses.extend(config().virtual_addresses);
        refused(&c, &ipv6(), "mixes IPv4 and IPv6");
        let mut c = config();
        c.unicast_peers = vec!["fd00::12".parse().unwrap()];
        refused(&c, &ipv6(), "fd00::12 is not of the VIPs' address family");
        let v6_director =
            IfAddr { addr: "fd00::11".parse().unwrap(), prefix: 64 };
        let e = Settings::new("eth0", 7, v6_director, &ipv6(), &config())
            .unwrap_err();
        assert!(e.contains("need an IPv4 address on eth0"), "{e}");
    }

    #[test]
    fn ipv6_unicast_speaks_from_the_peer_address_that_is_ours() {
        let mut c = config_v6();
        c.unicast_peers = ["fd00::12", "fd00::11", "fd00::13"]
            .map(|a| a.parse().unwrap())
            .into();
        let s = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap();
        let own: IpAddr = "fd00::11".parse().unwrap();
        assert_eq!((s.local, s.fsm.primary_addr), (own, own));
        assert_eq!(
            s.dst,
            Destinations::Unicast(
                ["fd00::12", "fd00::13"].map(|a| a.parse().unwrap()).into()
            )
        );
    }

    #[test]
    fn accepted_sources_are_the_peers_without_us_of_our_family() {
        let mut c = config();
        c.accept_from = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
            .map(|a| a.parse().unwrap())
            .into();
        let s = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap();
        assert_eq!(s.accept, c.accept_from[1..]);
        c.accept_from = vec!["fd00::12".parse().unwrap()];
        let e = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap_err();
        assert!(e.contains("VI_1") && e.contains("fd00::12"), "{e}");
        c.accept_from = (1..=filter::MAX_SOURCES + 1)
            .map(|i| IpAddr::from([10, 0, 1, i as u8]))
            .collect();
        let e = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        // Unicast without a list (an older file): the peers.
        c.accept_from = Vec::new();
        c.unicast_peers = vec!["10.0.0.12".parse().unwrap()];
        let s = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap();
        assert_eq!(s.accept, c.unicast_peers);
    }
}
