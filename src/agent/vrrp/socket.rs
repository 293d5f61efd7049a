//! The sockets VRRP needs, and nothing else: a raw IPv4 socket for IP
//! protocol 112 (adverts in and out) and an `AF_PACKET` socket for
//! gratuitous ARP. What to send and what a received packet means are the
//! codec's and the state machine's; this module only moves bytes.
//!
//! Both are built from safe wrappers (`unsafe` is forbidden crate-wide):
//! `socket2` for the raw IP socket; `nix` for the packet socket, whose
//! `sockaddr_ll` (interface index and MAC) comes from `getifaddrs`, the one
//! safe way to obtain one, so we never build the C struct ourselves.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self as nix_socket, LinkAddr};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::arp::{self, MacAddr};
use super::packet::{IPPROTO_VRRP, MULTICAST_V4, TTL};

/// Where adverts go: the VRRP group, or each unicast peer in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// 224.0.0.18 (RFC 5798 §5.1.1.2).
    Multicast,
    /// keepalived's `unicast_peer` list.
    Unicast(Vec<Ipv4Addr>),
}

impl Destinations {
    /// The addresses one advert is sent to.
    pub fn addrs(&self) -> Vec<Ipv4Addr> {
        match self {
            Self::Multicast => vec![MULTICAST_V4],
            Self::Unicast(peers) => peers.clone(),
        }
    }
}

/// A raw IPv4 socket for protocol 112, bound to one interface, sending with
/// TTL 255. Reads return whole IPv4 packets (outer header included), which
/// [`super::ipv4::decode_ipv4_packet`] takes apart.
///
/// It is driven through tokio's `UdpSocket`, which only issues
/// `recvfrom`/`sendto` and so works for any datagram-like socket: tokio's
/// `AsyncFd` would need `unsafe` to register a descriptor it does not own
/// by type.
#[derive(Debug)]
pub struct AdvertSocket {
    socket: UdpSocket,
}

impl AdvertSocket {
    /// Open the socket on `interface`, whose primary address is `local`:
    /// bound to the device (so a second interface on the same segment does
    /// not feed us), joined to 224.0.0.18 when multicast, multicast loop
    /// off (our own adverts are not news), TTL 255 both ways of sending.
    ///
    /// # Errors
    /// When the socket cannot be made (not root, no such interface).
    pub fn open(
        interface: &str,
        local: Ipv4Addr,
        dst: &Destinations,
    ) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_ttl_v4(u32::from(TTL))?;
        socket.set_multicast_ttl_v4(u32::from(TTL))?;
        socket.set_multicast_loop_v4(false)?;
        socket.set_multicast_if_v4(&local)?;
        if *dst == Destinations::Multicast {
            socket.join_multicast_v4(&MULTICAST_V4, &local)?;
        }
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        Ok(Self { socket })
    }

    /// Wait for the next packet and copy it into `buf`; its length.
    ///
    /// # Errors
    /// The socket's.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv(buf).await
    }

    /// Send one VRRP message (the kernel adds the IP header) to `to`.
    /// Non-blocking: a full send queue is an error the caller counts, not
    /// a stall of the protocol loop.
    ///
    /// # Errors
    /// The socket's.
    pub fn send(&self, msg: &[u8], to: Ipv4Addr) -> io::Result<()> {
        self.socket.try_send_to(msg, SocketAddrV4::new(to, 0).into()).map(drop)
    }
}

/// An `AF_PACKET` socket bound to one interface, for gratuitous ARP.
/// Protocol 0: it receives nothing, so it costs nothing while idle.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
    mac: MacAddr,
}

impl ArpSocket {
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

    /// Broadcast one gratuitous ARP request for `vip`.
    ///
    /// # Errors
    /// The socket's.
    pub fn announce(&self, vip: Ipv4Addr) -> io::Result<()> {
        let frame = arp::gratuitous_arp(self.mac, vip);
        nix_socket::send(
            self.fd.as_raw_fd(),
            &frame,
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
