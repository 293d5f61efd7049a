//! Addresses on interfaces, over rtnetlink: the only place the agent talks
//! to the kernel's routing netlink. Both modes use it — the real server for
//! the VIPs on `lo`, the director for the VIPs it holds as VRRP master — and
//! both need the same three things: list, add and remove an address, and be
//! told when anything (an operator's `ip addr del`, another daemon) changes
//! one. The director also watches its interface's link state: a VRRP
//! instance on a link that is down or lost its carrier is in fault.
//!
//! Everything here is a thin adapter; what to add or remove is decided by
//! the modes' pure code ([`missing`], `unwanted` are the set arithmetic
//! they share).

use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;

use futures_util::{Stream, StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
    CacheInfo,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The interface's index.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The IPv4 label (`eth0:1`, keepalived's and ifconfig's alias name);
    /// `None` for IPv6 or when it is the interface's own name.
    pub label: Option<String>,
}

/// A change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An address appeared.
    Added(Address),
    /// An address went away.
    Removed(Address),
}

/// An interface's link state, as `ip link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface's index.
    pub index: u32,
    /// Its name; empty when the kernel did not say.
    pub name: String,
    /// Administratively up (`IFF_UP`: `ip link set … up`).
    pub up: bool,
    /// It has a carrier (`IFF_RUNNING`: not `NO-CARRIER`).
    pub carrier: bool,
}

/// A netlink failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    /// What the agent tried.
    pub what: String,
    /// What netlink said.
    #[source]
    pub source: rtnetlink::Error,
}

/// A handle on the routing netlink socket of this network namespace.
#[derive(Debug, Clone)]
pub struct Net {
    handle: Handle,
}

impl Net {
    /// Open the socket; its connection runs as a task on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// When the netlink socket cannot be opened.
    pub fn connect() -> std::io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The index of interface `name`.
    ///
    /// # Errors
    /// When there is no such interface.
    pub async fn index(&self, name: &str) -> Result<u32, Error> {
        let fail = |source| Error {
            what: format!("looking up interface {name}"),
            source,
        };
        let mut links =
            self.handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await.map_err(fail)? {
            Some(link) => Ok(link.header.index),
            None => Err(fail(rtnetlink::Error::RequestFailed)),
        }
    }

    /// The link state of interface `index`.
    ///
    /// # Errors
    /// When there is no such interface.
    pub async fn link(&self, index: u32) -> Result<Link, Error> {
        let fail = |source| Error {
            what: format!("looking up interface #{index}"),
            source,
        };
        let mut links = self.handle.link().get().match_index(index).execute();
        let link = links
            .try_next()
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(rtnetlink::Error::RequestFailed))?;
        Ok(link_state(&link))
    }

    /// The link state of interface `name`; `None` when there is none.
    ///
    /// # Errors
    /// When the kernel cannot be asked.
    pub async fn link_named(&self, name: &str) -> Result<Option<Link>, Error> {
        let mut links =
            self.handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.as_ref().map(link_state)),
            // ENODEV: no such interface.
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code().abs() == 19 =>
            {
                Ok(None)
            }
            Err(source) => Err(Error {
                what: format!("looking up interface {name}"),
                source,
            }),
        }
    }

    /// The name of interface `index`, for messages.
    ///
    /// # Errors
    /// When there is no such interface.
    pub async fn name(&self, index: u32) -> Result<String, Error> {
        let link = self.link(index).await?;
        Ok(if link.name.is_empty() { format!("#{index}") } else { link.name })
    }

    /// Every address of every interface.
    ///
    /// # Errors
    /// When the dump fails.
    pub async fn addresses(&self) -> Result<Vec<Address>, Error> {
        self.handle
            .address()
            .get()
            .execute()
            .map_err(|source| Error {
                what: "listing addresses".into(),
                source,
            })
            .try_filter_map(|m| async move { Ok(decode(&m)) })
            .try_collect()
            .await
    }

    /// The IPv6 addresses of interface `index`, each with whether it is
    /// still in duplicate address detection (tentative): the kernel will
    /// neither bind nor send from one until that ends, a second or two
    /// after the link comes up.
    ///
    /// # Errors
    /// When the dump fails.
    pub async fn ipv6(&self, index: u32) -> Result<Vec<Ipv6State>, Error> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .map_err(|source| Error {
                what: "listing addresses".into(),
                source,
            })
            .try_filter_map(|m| async move { Ok(ipv6_state(&m)) })
            .try_collect()
            .await
    }

    /// Add `a`; an address already there is not an error.
    ///
    /// An IPv6 address is added without duplicate address detection
    /// (`IFA_F_NODAD`, as keepalived adds its VIPs): DAD would keep a VIP
    /// that moves to a new master tentative, unusable, for a second or
    /// more, and the old master has just given it up. And deprecated
    /// (preferred lifetime 0, valid forever), as kube-vip adds its VIPs:
    /// Linux then never picks it as the source of the host's own
    /// connections. Otherwise a VIP in the prefix of the host's address
    /// became the source of the director's health checks, whose answers
    /// the real servers (holding the VIP on `lo`) kept to themselves.
    ///
    /// # Errors
    /// When the kernel refuses it.
    pub async fn add(&self, a: &Address) -> Result<(), Error> {
        let mut req = self.handle.address().add(a.index, a.ip, a.prefix);
        let msg = req.message_mut();
        if let Some(label) = &a.label {
            msg.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if a.ip.is_ipv6() {
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = 0;
            lifetimes.ifa_valid = u32::MAX;
            msg.attributes.push(AddressAttribute::CacheInfo(lifetimes));
        }
        match req.replace().execute().await {
            Ok(()) => Ok(()),
            Err(source) => Err(Error {
                what: format!("adding {}/{}", a.ip, a.prefix),
                source,
            }),
        }
    }

    /// Remove `a`; an address already gone is not an error.
    ///
    /// # Errors
    /// When the kernel refuses it.
    pub async fn remove(&self, a: &Address) -> Result<(), Error> {
        let mut msg = AddressMessage::default();
        msg.header.index = a.index;
        msg.header.prefix_len = a.prefix;
        msg.header.family = match a.ip {
            IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
        };
        msg.attributes.push(AddressAttribute::Local(a.ip));
        msg.attributes.push(AddressAttribute::Address(a.ip));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            // EADDRNOTAVAIL: someone removed it first; that is what we want.
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code().abs() == 99 =>
            {
                Ok(())
            }
            Err(source) => Err(Error {
                what: format!("removing {}/{}", a.ip, a.prefix),
                source,
            }),
        }
    }
}

impl Net {
    /// Add (`on`) or remove the `blackhole IP/32` (`/128`) route in the
    /// main table: a director announcing a VIP over BGP holds no address
    /// for it, and with forwarding on, its packets that the data plane
    /// does not take (after a withdrawal, before the router has moved)
    /// would go back to the router and loop until their TTL ran out.
    /// Adding an existing one succeeds; removing a missing one too, and
    /// says `false`.
    ///
    /// # Errors
    /// When the kernel refuses it.
    pub async fn blackhole(&self, ip: IpAddr, on: bool) -> Result<bool, Error> {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        let what = || {
            format!(
                "{} blackhole {ip}/{len}",
                if on { "adding" } else { "removing" }
            )
        };
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, len)
            .expect("a host prefix of the address's own family")
            .kind(RouteType::BlackHole)
            .build();
        let result = match on {
            true => self.handle.route().add(route).replace().execute().await,
            false => self.handle.route().del(route).execute().await,
        };
        match result {
            Ok(()) => Ok(true),
            // ESRCH: no such route, which is what removing wants.
            Err(rtnetlink::Error::NetlinkError(e))
                if !on && e.raw_code().abs() == 3 =>
            {
                Ok(false)
            }
            Err(source) => Err(Error { what: what(), source }),
        }
    }
}

/// What the kernel announces to the `groups`, as `decode` reads them.
fn watch<T: Send + 'static>(
    groups: &[MulticastGroup],
    decode: fn(RouteNetlinkMessage) -> Option<T>,
) -> std::io::Result<impl Stream<Item = T> + Send + use<T>> {
    let (connection, _, messages) =
        rtnetlink::new_multicast_connection(groups)?;
    tokio::spawn(connection);
    Ok(messages.filter_map(move |(msg, _)| async move {
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => decode(m),
            _ => None,
        }
    }))
}

/// Address changes (`ip monitor address`).
pub(crate) fn address_event(m: RouteNetlinkMessage) -> Option<Event> {
    match m {
        RouteNetlinkMessage::NewAddress(m) => decode(&m).map(Event::Added),
        RouteNetlinkMessage::DelAddress(m) => decode(&m).map(Event::Removed),
        _ => None,
    }
}

/// Link changes (`ip monitor link`); an interface deleted is a link down.
pub(crate) fn link_event(m: RouteNetlinkMessage) -> Option<Link> {
    match m {
        RouteNetlinkMessage::NewLink(m) => Some(link_state(&m)),
        RouteNetlinkMessage::DelLink(m) => {
            Some(Link { up: false, carrier: false, ..link_state(&m) })
        }
        _ => None,
    }
}

/// A subscription to kernel announcements, or `None` when it could not be
/// opened and the caller polls instead.
pub(crate) type Events<T = Event> =
    Option<Pin<Box<dyn Stream<Item = T> + Send>>>;

/// Subscribe to address events; `who` names the caller in the warning
/// logged when that fails.
pub(crate) fn subscribe(who: &str) -> Events {
    let groups = [MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv6Ifaddr];
    opened(who, "address", watch(&groups, address_event))
}

/// Subscribe to link events, as [`subscribe`] does to addresses.
pub(crate) fn subscribe_links(who: &str) -> Events<Link> {
    opened(who, "link", watch(&[MulticastGroup::Link], link_event))
}

fn opened<T>(
    who: &str,
    what: &str,
    watch: std::io::Result<impl Stream<Item = T> + Send + 'static>,
) -> Events<T> {
    match watch {
        Ok(s) => Some(Box::pin(s)),
        Err(e) => {
            tracing::warn!(
                "{who}: cannot watch {what} events ({e}); polling only"
            );
            None
        }
    }
}

/// The next event; never, without a subscription. `None` when the
/// subscription ended (subscribe again).
pub(crate) async fn next_event<T>(events: &mut Events<T>) -> Option<T> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The link state a netlink message describes.
fn link_state(m: &LinkMessage) -> Link {
    let flags = m.header.flags;
    Link {
        index: m.header.index,
        name: m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_default(),
        up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::Running),
    }
}

/// The address a netlink message describes (`IFA_LOCAL` where present: on
/// point-to-point links `IFA_ADDRESS` is the peer).
fn decode(m: &AddressMessage) -> Option<Address> {
    let mut ip = None;
    let mut label = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(l) => ip = Some(*l),
            AddressAttribute::Address(l) if ip.is_none() => ip = Some(*l),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            _ => {}
        }
    }
    Some(Address {
        index: m.header.index,
        ip: ip?,
        prefix: m.header.prefix_len,
        label,
    })
}

/// An IPv6 address, and whether it is tentative ([`Net::ipv6`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6State {
    /// The address.
    pub ip: Ipv6Addr,
    /// Still in duplicate address detection.
    pub tentative: bool,
}

/// The IPv6 address `m` describes, and whether it is tentative: the flag
/// is in the header or, past the header's eight bits, in `IFA_FLAGS`.
fn ipv6_state(m: &AddressMessage) -> Option<Ipv6State> {
    let IpAddr::V6(ip) = decode(m)?.ip else { return None };
    let tentative = m.header.flags.contains(AddressHeaderFlags::Tentative)
        || m.attributes.iter().any(|a| {
            matches!(a, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative))
        });
    Some(Ipv6State { ip, tentative })
}

/// The addresses of `wanted` that `present` lacks (same interface, address
/// and prefix; the label is not compared — the kernel may report the
/// interface name as the label).
pub fn missing<'a>(
    wanted: &'a [Address],
    present: &[Address],
) -> Vec<&'a Address> {
    wanted.iter().filter(|w| !present.iter().any(|p| same(w, p))).collect()
}

/// The addresses of `ours` (what this agent added) no longer in `wanted`.
pub(crate) fn unwanted<'a>(
    ours: &'a [Address],
    wanted: &[Address],
) -> Vec<&'a Address> {
    ours.iter().filter(|o| !wanted.iter().any(|w| same(o, w))).collect()
}

/// Whether two records name the same address on the same interface.
pub fn same(a: &Address, b: &Address) -> bool {
    a.index == b.index && a.ip == b.ip && a.prefix == b.prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(index: u32, ip: &str, prefix: u8) -> Address {
        Address { index, ip: ip.parse().unwrap(), prefix, label: None }
    }

    #[test]
    fn missing_and_unwanted_ignore_labels() {
        let wanted = [a(1, "192.0.2.1", 32), a(1, "192.0.2.2", 32)];
        let mut present = vec![a(1, "192.0.2.1", 32), a(2, "192.0.2.2", 32)];
        present[0].label = Some("lo".into());
        assert_eq!(missing(&wanted, &present), [&wanted[1]]);
        let ours = [a(1, "192.0.2.1", 32), a(1, "192.0.2.9", 32)];
        assert_eq!(unwanted(&ours, &wanted), [&ours[1]]);
    }

    #[test]
    fn ipv6_states_say_tentative_from_the_header_or_ifa_flags() {
        let message = |ip: &str| {
            let mut m = AddressMessage::default();
            m.attributes.push(AddressAttribute::Address(ip.parse().unwrap()));
            m
        };
        assert_eq!(ipv6_state(&message("10.0.0.3")), None, "IPv4");
        let ll: Ipv6Addr = "fe80::3".parse().unwrap();
        let settled = Ipv6State { ip: ll, tentative: false };
        assert_eq!(ipv6_state(&message("fe80::3")), Some(settled));
        let mut header = message("fe80::3");
        header.header.flags = AddressHeaderFlags::Tentative;
        let tentative = Ipv6State { ip: ll, tentative: true };
        assert_eq!(ipv6_state(&header), Some(tentative));
        let mut attribute = message("fe80::3");
        attribute
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Tentative));
        assert_eq!(ipv6_state(&attribute), Some(tentative));
    }

    #[test]
    fn decode_prefers_the_local_address() {
        let mut m = AddressMessage::default();
        m.header.index = 3;
        m.header.prefix_len = 32;
        m.attributes
            .push(AddressAttribute::Address("10.0.0.2".parse().unwrap()));
        m.attributes.push(AddressAttribute::Local("10.0.0.1".parse().unwrap()));
        m.attributes.push(AddressAttribute::Label("eth0:1".into()));
        let got = decode(&m).unwrap();
        assert_eq!(got.ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(got.label.as_deref(), Some("eth0:1"));
        assert_eq!(decode(&AddressMessage::default()), None);
    }
}
