//! The sockets VRRP needs, and nothing else: a raw IP socket for IP
//! protocol 112 (adverts in and out, IPv4 or IPv6) and an `AF_PACKET`
//! socket for the announcements a new master makes (gratuitous ARP,
//! unsolicited Neighbour Advertisements). What to send and what a received
//! packet means are the codec's and the state machine's; this module only
//! moves bytes.
//!
//! Both are built from safe wrappers (`unsafe` is forbidden crate-wide):
//! `socket2` for the raw IP socket; `nix` for what `socket2` lacks — the
//! ancillary data an IPv6 raw socket reports the hop limit and destination
//! in (`recvmsg`), and the packet socket, whose `sockaddr_ll` (interface
//! index and MAC) comes from `getifaddrs`, the one safe way to obtain one,
//! so we never build the C struct ourselves.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self as nix_socket, ControlMessageOwned, LinkAddr, SockaddrIn6, sockopt,
};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::arp::{self, MacAddr};
use super::filter;
use super::ipv6::Ipv6Meta;
use super::ndisc;
use super::packet::{IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6, TTL};

/// Where adverts go: the VRRP group, or each unicast peer in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// The group of the instance's family: 224.0.0.18 or ff02::12 (RFC
    /// 5798 §5.1.1.2, §5.1.2.2).
    Multicast(IpAddr),
    /// keepalived's `unicast_peer` list, all of the instance's family.
    Unicast(Vec<IpAddr>),
}

impl Destinations {
    /// The VRRP group of `local`'s family.
    pub(crate) fn multicast_for(local: IpAddr) -> Self {
        Self::Multicast(match local {
            IpAddr::V4(_) => IpAddr::V4(MULTICAST_V4),
            IpAddr::V6(_) => IpAddr::V6(MULTICAST_V6),
        })
    }

    /// The addresses one advert is sent to.
    pub fn addrs(&self) -> Vec<IpAddr> {
        match self {
            Self::Multicast(group) => vec![*group],
            Self::Unicast(peers) => peers.clone(),
        }
    }
}

/// One packet from the advert socket, as its family's raw socket delivers
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Datagram<'a> {
    /// IPv4: the whole packet, outer header included
    /// ([`super::ipv4::decode_ipv4_packet`] takes it apart).
    V4(&'a [u8]),
    /// IPv6: the VRRP message alone, and what the kernel reported about
    /// its header ([`super::ipv6::decode_ipv6_message`]).
    V6(Ipv6Meta, &'a [u8]),
}

/// A raw IP socket for protocol 112, bound to one interface, sending with
/// TTL / hop limit 255.
///
/// It is driven through tokio's `UdpSocket`, which only issues
/// `recvfrom`/`sendto` and so works for any datagram-like socket (tokio's
/// `AsyncFd` would need `unsafe` to register a descriptor it does not own
/// by type); IPv6 reads go through `recvmsg` inside the socket's readiness
/// (`async_io`) for the ancillary data.
#[derive(Debug)]
pub(crate) struct AdvertSocket {
    socket: UdpSocket,
    /// The interface's index: the scope of link-local destinations.
    index: u32,
    /// Which family the socket speaks.
    v6: bool,
}

impl AdvertSocket {
    /// Open the socket on `interface` (index `index`), whose primary
    /// address — the IPv4 address, or the IPv6 link-local one — is `local`:
    /// bound to the device (so a second interface on the same segment does
    /// not feed us), joined to the group when multicast, multicast loop off
    /// (our own adverts are not news), TTL / hop limit 255 both ways of
    /// sending. IPv6 also binds `local`, which the checksum's
    /// pseudo-header names as the source, and asks for the hop limit and
    /// destination of each packet as ancillary data. With `accept` listing
    /// anyone, a socket filter drops every packet from other sources in
    /// the kernel ([`super::filter`]), before it costs the agent a wakeup.
    ///
    /// # Errors
    /// When the socket cannot be made (not root, no such interface, the
    /// link-local address not usable yet).
    pub fn open(
        interface: &str,
        index: u32,
        local: IpAddr,
        dst: &Destinations,
        accept: &[IpAddr],
    ) -> io::Result<Self> {
        let domain = match local {
            IpAddr::V4(_) => Domain::IPV4,
            IpAddr::V6(_) => Domain::IPV6,
        };
        let socket = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        // At once: the few packets queued before it meet the check in
        // user space (`receive::classify`).
        if let Some(program) =
            filter::source_filter(accept).map_err(io::Error::other)?
        {
            let program: Vec<SockFilter> = program
                .iter()
                .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
                .collect();
            socket.attach_filter(&program)?;
        }
        socket.bind_device(Some(interface.as_bytes()))?;
        match local {
            IpAddr::V4(local) => {
                socket.set_ttl_v4(u32::from(TTL))?;
                socket.set_multicast_ttl_v4(u32::from(TTL))?;
                socket.set_multicast_loop_v4(false)?;
                socket.set_multicast_if_v4(&local)?;
                if let Destinations::Multicast(IpAddr::V4(group)) = dst {
                    socket.join_multicast_v4(group, &local)?;
                }
            }
            IpAddr::V6(local) => {
                socket.set_unicast_hops_v6(u32::from(TTL))?;
                socket.set_multicast_hops_v6(u32::from(TTL))?;
                socket.set_multicast_loop_v6(false)?;
                socket.set_multicast_if_v6(index)?;
                socket.bind(&SocketAddrV6::new(local, 0, 0, index).into())?;
                if let Destinations::Multicast(IpAddr::V6(group)) = dst {
                    socket.join_multicast_v6(group, index)?;
                }
                nix_socket::setsockopt(
                    &socket,
                    sockopt::Ipv6RecvHopLimit,
                    &true,
                )?;
                nix_socket::setsockopt(
                    &socket,
                    sockopt::Ipv6RecvPacketInfo,
                    &true,
                )?;
            }
        }
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        Ok(Self { socket, index, v6: local.is_ipv6() })
    }

    /// Wait for the next packet, copy it into `buf` and return it as its
    /// family delivers it.
    ///
    /// # Errors
    /// The socket's; for IPv6 also a packet without the hop limit or
    /// destination the socket asked the kernel to report.
    pub async fn recv<'b>(
        &self,
        buf: &'b mut [u8],
    ) -> io::Result<Datagram<'b>> {
        if !self.v6 {
            let n = self.socket.recv(buf).await?;
            return Ok(Datagram::V4(&buf[..n]));
        }
        let fd = self.socket.as_raw_fd();
        let (n, meta) = self
            .socket
            .async_io(Interest::READABLE, || recv_v6(fd, buf))
            .await?;
        Ok(Datagram::V6(meta, &buf[..n]))
    }

    /// Send one VRRP message (the kernel adds the IP header) to `to`.
    /// Non-blocking: a full send queue is an error the caller counts, not
    /// a stall of the protocol loop.
    ///
    /// # Errors
    /// The socket's.
    pub fn send(&self, msg: &[u8], to: IpAddr) -> io::Result<()> {
        let to = match to {
            IpAddr::V4(a) => SocketAddrV4::new(a, 0).into(),
            // The scope only counts for link-local and multicast
            // destinations, which need it; others ignore it.
            IpAddr::V6(a) => SocketAddrV6::new(a, 0, 0, self.index).into(),
        };
        self.socket.try_send_to(msg, to).map(drop)
    }
}

/// One `recvmsg` on an IPv6 raw socket: the message's length, and its
/// source, destination and hop limit. `EWOULDBLOCK` passes through, for
/// tokio to wait again.
fn recv_v6(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Ipv6Meta)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsgs = nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::c_int);
    let msg = nix_socket::recvmsg::<SockaddrIn6>(
        fd,
        &mut iov,
        Some(&mut cmsgs),
        nix_socket::MsgFlags::empty(),
    )?;
    let mut dst = None;
    let mut hop_limit = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            ControlMessageOwned::Ipv6HopLimit(h) => {
                hop_limit = u8::try_from(h).ok();
            }
            _ => {}
        }
    }
    let missing = |what: &str| {
        io::Error::other(format!("an ipv6 packet without its {what}"))
    };
    let meta = Ipv6Meta {
        src: msg.address.ok_or_else(|| missing("source"))?.ip(),
        dst: dst.ok_or_else(|| missing("destination"))?,
        hop_limit: hop_limit.ok_or_else(|| missing("hop limit"))?,
    };
    Ok((msg.bytes, meta))
}

/// An `AF_PACKET` socket bound to one interface, for the frames a new
/// master sends so that neighbours and switches move its VIPs to its MAC:
/// gratuitous ARP for IPv4, unsolicited Neighbour Advertisements for IPv6.
/// Protocol 0: it receives nothing, so it costs nothing while idle.
#[derive(Debug)]
pub(crate) struct AnnounceSocket {
    fd: OwnedFd,
    mac: MacAddr,
}

impl AnnounceSocket {
    /// Open the socket on `interface` and learn its MAC.
    ///
    /// # Errors
    /// When the interface has no link-layer address or the socket cannot
    /// be made or bound.
    pub fn open(interface: &str) -> io::Result<Self> {
        let link = link_addr(interface)?;
        let mac = link.addr().ok_or_else(|| {
            io::Error::other(format!("{interface} has no MAC address"))
        })?;
        let fd = nix_socket::socket(
            nix_socket::AddressFamily::Packet,
            nix_socket::SockType::Raw,
            nix_socket::SockFlag::SOCK_CLOEXEC
                | nix_socket::SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        nix_socket::bind(fd.as_raw_fd(), &link)?;
        Ok(Self { fd, mac })
    }

    /// Announce `vip` at our MAC: a broadcast gratuitous ARP request for
    /// IPv4, an unsolicited Neighbour Advertisement to all nodes for IPv6.
    ///
    /// # Errors
    /// The socket's.
    pub(crate) fn announce(&self, vip: IpAddr) -> io::Result<()> {
        match vip {
            IpAddr::V4(v) => self.send(&arp::gratuitous_arp(self.mac, v)),
            IpAddr::V6(v) => self.send(&ndisc::unsolicited_advert(self.mac, v)),
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        nix_socket::send(
            self.fd.as_raw_fd(),
            frame,
            nix_socket::MsgFlags::empty(),
        )?;
        Ok(())
    }
}

/// The `AF_PACKET` address (`sockaddr_ll`: index, MAC) `getifaddrs` lists
/// for `interface`.
fn link_addr(interface: &str) -> io::Result<LinkAddr> {
    nix::ifaddrs::getifaddrs()?
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
        .ok_or_else(|| {
            io::Error::other(format!("no link-layer address for {interface}"))
        })
}
