//! The `ping` check (keepalived's `PING_CHECK`): an ICMP echo request to
//! the real server; its echo reply within the timeout is up.
//!
//! Socket: an ICMP datagram socket (`SOCK_DGRAM`, `IPPROTO_ICMP` or
//! `IPPROTO_ICMPV6`) where `net.ipv4.ping_group_range` lets the agent's
//! group open one — the kernel then picks the identifier and hands the
//! socket only the replies that carry it, so a thousand pings never read
//! each other's answers. A fresh network namespace allows no group
//! (`1 0`), and `CAP_NET_RAW` does not lift that, so a refused datagram
//! socket falls back to a raw one, which the agent may open: every ICMP
//! packet from the server then reaches it, and the identifier, sequence
//! number and payload pick ours out. Either socket is `connect`ed to the
//! server, so the kernel drops what other hosts send. All through
//! socket2's safe API (the crate forbids `unsafe`).
//!
//! [`Echo`] (the message, both ways) and [`read`] (what a socket read,
//! fuzzed by `fuzz/fuzz_targets/ping_reply_decode.rs`) are pure; `ping`
//! is a thin tokio adapter.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use futures_util::future::BoxFuture;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket as AsyncSocket;
use tokio::time::{Instant, timeout_at};

use super::probe::Probe;
use crate::agent::sys::checksum::OnesComplementSum;
use crate::inventory::PingCheck;

/// A `ping` check of the server's address; ports mean nothing to it.
pub(crate) fn arm(_: &PingCheck, server: SocketAddr) -> Box<dyn Probe> {
    Box::new(Ping(server.ip()))
}

struct Ping(IpAddr);

impl Probe for Ping {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(ping(self.0, limit))
    }
}

// ===== the message =====

/// The echo header's length: type, code, checksum, identifier, sequence.
const HEADER: usize = 8;
/// The payload carried: a token the reply must echo back.
const DATA: usize = 8;
/// ICMPv4 echo reply and request (RFC 792, p. 14).
const V4_REPLY: u8 = 0;
const V4_REQUEST: u8 = 8;
/// ICMPv6 echo request and reply (RFC 4443 §4.1, §4.2).
const V6_REQUEST: u8 = 128;
const V6_REPLY: u8 = 129;
/// The IPv4 protocol number of ICMP.
const IPPROTO_ICMP: u8 = 1;

/// An ICMP echo request or reply (RFC 792 p. 14, RFC 4443 §4.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |     Code      |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Identifier          |        Sequence Number        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Data (DATA bytes) ...
/// +-+-+-+-+-
/// ```
///
/// The ICMPv6 checksum covers a pseudo-header only the kernel knows; it
/// fills it in on sending and checks it on receiving, so ours stays 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// A reply, or a request.
    pub reply: bool,
    /// Identifier (a datagram socket's kernel overwrites it).
    pub id: u16,
    /// Sequence number.
    pub seq: u16,
    /// Payload, echoed back.
    pub data: [u8; DATA],
}

/// Why bytes are not an echo message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than an echo with our payload.
    Short(usize),
    /// Another ICMP message (unreachable, a request…), by type.
    NotEcho(u8),
    /// An ICMPv4 checksum that does not add up.
    Checksum,
    /// An IPv4 packet that does not carry ICMP.
    NotIcmp,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(n) => write!(f, "{n} bytes, short of an echo"),
            Self::NotEcho(t) => write!(f, "ICMP type {t}, not an echo"),
            Self::Checksum => f.write_str("bad ICMP checksum"),
            Self::NotIcmp => f.write_str("not an ICMP packet"),
        }
    }
}

impl Echo {
    /// The message's bytes, for IPv6 when `v6`.
    pub(crate) fn encode(&self, v6: bool) -> [u8; HEADER + DATA] {
        let kind = match (v6, self.reply) {
            (false, false) => V4_REQUEST,
            (false, true) => V4_REPLY,
            (true, false) => V6_REQUEST,
            (true, true) => V6_REPLY,
        };
        let mut b = [0u8; HEADER + DATA];
        b[0] = kind;
        b[4..6].copy_from_slice(&self.id.to_be_bytes());
        b[6..8].copy_from_slice(&self.seq.to_be_bytes());
        b[HEADER..].copy_from_slice(&self.data);
        if !v6 {
            let sum = checksum(&b);
            b[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        b
    }

    /// The echo message in `b` (ICMP, no IP header), for IPv6 when `v6`.
    ///
    /// # Errors
    /// Too short, not an echo, or (IPv4) a bad checksum.
    pub(crate) fn decode(b: &[u8], v6: bool) -> Result<Self, DecodeError> {
        if b.len() < HEADER + DATA {
            return Err(DecodeError::Short(b.len()));
        }
        let reply = match (v6, b[0]) {
            (false, V4_REPLY) | (true, V6_REPLY) => true,
            (false, V4_REQUEST) | (true, V6_REQUEST) => false,
            (_, other) => return Err(DecodeError::NotEcho(other)),
        };
        // Summed with its checksum field, a sound message adds up to 0.
        if !v6 && checksum(b) != 0 {
            return Err(DecodeError::Checksum);
        }
        let mut data = [0u8; DATA];
        data.copy_from_slice(&b[HEADER..HEADER + DATA]);
        Ok(Self {
            reply,
            id: u16::from_be_bytes([b[4], b[5]]),
            seq: u16::from_be_bytes([b[6], b[7]]),
            data,
        })
    }

    /// Whether `self` answers `request`; the identifier counts only on a
    /// raw socket (a datagram socket's kernel sets it, and filters on it).
    fn answers(&self, request: &Echo, raw: bool) -> bool {
        self.reply
            && self.seq == request.seq
            && self.data == request.data
            && (!raw || self.id == request.id)
    }
}

/// The Internet checksum (RFC 1071) of an ICMPv4 message, which has no
/// pseudo-header.
fn checksum(b: &[u8]) -> u16 {
    let mut sum = OnesComplementSum::default();
    sum.add(b);
    sum.finish()
}

/// The echo a socket read: on a raw IPv4 socket `packet` is a whole IPv4
/// packet, on the others (datagram sockets, and raw IPv6 ones) the bare
/// ICMP message. Any bytes from the network come through here.
///
/// # Errors
/// Short, not IPv4 ICMP, not an echo, or a bad IPv4 checksum.
pub fn read(packet: &[u8], v6: bool, raw: bool) -> Result<Echo, DecodeError> {
    let icmp = if raw && !v6 { strip_ipv4(packet)? } else { packet };
    Echo::decode(icmp, v6)
}

/// The ICMP message of an IPv4 packet as a raw socket reads it.
///
/// # Errors
/// Short, not IPv4 or not ICMP.
fn strip_ipv4(packet: &[u8]) -> Result<&[u8], DecodeError> {
    let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
    if ihl < 20 || packet.len() < ihl {
        return Err(DecodeError::Short(packet.len()));
    }
    if packet[0] >> 4 != 4 || packet[9] != IPPROTO_ICMP {
        return Err(DecodeError::NotIcmp);
    }
    Ok(&packet[ihl..])
}

// ===== the socket =====

/// An ICMP socket connected to `to`, and whether it is raw.
fn open(to: IpAddr) -> io::Result<(AsyncSocket, bool)> {
    let (domain, protocol) = match to {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, raw) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => (s, false),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            (Socket::new(domain, Type::RAW, Some(protocol))?, true)
        }
        Err(e) => return Err(e),
    };
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::from(SocketAddr::new(to, 0)))?;
    // tokio's UdpSocket only issues send/recv, which suit an ICMP socket
    // as well, and registers the descriptor without `unsafe`.
    Ok((AsyncSocket::from_std(UdpSocket::from(socket))?, raw))
}

/// Whether `to` answers an echo request within `limit`.
///
/// # Errors
/// Why not: no reply, or the socket's error (no route, unreachable).
async fn ping(to: IpAddr, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let failed = |e: io::Error| format!("echo request to {to}: {e}");
    let (socket, raw) = open(to).map_err(failed)?;
    let request = request();
    let v6 = to.is_ipv6();
    socket.send(&request.encode(v6)).await.map_err(failed)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = match timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(read) => read.map_err(failed)?,
            Err(_) => {
                return Err(format!(
                    "no echo reply from {to} within {limit:?}"
                ));
            }
        };
        // Anything else (our own request on loopback, another ping's
        // reply on a raw socket) is not ours: read on.
        if read(&buf[..n], v6, raw).is_ok_and(|e| e.answers(&request, raw)) {
            return Ok(());
        }
    }
}

/// A request with an identifier, sequence number and payload hard to
/// guess off-path, so a forged reply cannot pass a dead server as up.
fn request() -> Echo {
    let bits = RandomState::new().hash_one(Instant::now());
    let token = RandomState::new().hash_one(bits);
    Echo {
        reply: false,
        id: bits as u16,
        seq: (bits >> 16) as u16,
        data: token.to_be_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8; 8] = b"lbdeploy";

    fn echo(reply: bool) -> Echo {
        Echo { reply, id: 0x1234, seq: 1, data: *TOKEN }
    }

    /// Request and reply as ping(8) would put them on the wire, checksums
    /// summed by hand (RFC 1071).
    const V4_REQUEST_BYTES: &[u8] = b"\x08\x00\x35\x1d\x12\x34\x00\x01lbdeploy";
    const V4_REPLY_BYTES: &[u8] = b"\x00\x00\x3d\x1d\x12\x34\x00\x01lbdeploy";
    const V6_REPLY_BYTES: &[u8] = b"\x81\x00\x00\x00\x12\x34\x00\x01lbdeploy";

    #[test]
    fn echoes_encode_to_the_wire_bytes() {
        assert_eq!(echo(false).encode(false), V4_REQUEST_BYTES);
        assert_eq!(echo(true).encode(false), V4_REPLY_BYTES);
        assert_eq!(echo(true).encode(true), V6_REPLY_BYTES);
        assert_eq!(echo(false).encode(true)[0], 128);
    }

    #[test]
    fn wire_bytes_decode_to_echoes() {
        assert_eq!(Echo::decode(V4_REQUEST_BYTES, false), Ok(echo(false)));
        assert_eq!(Echo::decode(V4_REPLY_BYTES, false), Ok(echo(true)));
        assert_eq!(Echo::decode(V6_REPLY_BYTES, true), Ok(echo(true)));
    }

    #[test]
    fn short_foreign_and_damaged_messages_are_refused() {
        assert_eq!(Echo::decode(b"", false), Err(DecodeError::Short(0)));
        assert_eq!(
            Echo::decode(&V4_REPLY_BYTES[..15], false),
            Err(DecodeError::Short(15))
        );
        // Destination unreachable, and an IPv4 reply read as IPv6.
        let mut unreachable = V4_REPLY_BYTES.to_vec();
        unreachable[0] = 3;
        assert_eq!(
            Echo::decode(&unreachable, false),
            Err(DecodeError::NotEcho(3))
        );
        assert_eq!(
            Echo::decode(V4_REPLY_BYTES, true),
            Err(DecodeError::NotEcho(0))
        );
        let mut flipped = V4_REPLY_BYTES.to_vec();
        flipped[9] ^= 1;
        assert_eq!(Echo::decode(&flipped, false), Err(DecodeError::Checksum));
    }

    #[test]
    fn random_bytes_never_panic_in_any_socket_mode() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..5000usize {
            let mut bytes: Vec<u8> = (0..len % 80)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            // Half of them look like IPv4 ICMP, to get past the header.
            if len % 2 == 0 && bytes.len() > 9 {
                bytes[0] = 0x40 | (bytes[0] & 0x0f);
                bytes[9] = IPPROTO_ICMP;
            }
            for (v6, raw) in [(false, false), (false, true), (true, false)] {
                let _ = read(&bytes, v6, raw);
            }
        }
    }

    #[test]
    fn only_the_reply_to_our_request_answers_it() {
        let (request, reply) = (echo(false), echo(true));
        assert!(reply.answers(&request, true));
        assert!(!request.answers(&request, true), "our own request");
        let other_id = Echo { id: 7, ..reply };
        assert!(!other_id.answers(&request, true));
        assert!(other_id.answers(&request, false), "the kernel's identifier");
        assert!(!Echo { seq: 2, ..reply }.answers(&request, false));
        assert!(!Echo { data: [0; 8], ..reply }.answers(&request, false));
    }

    #[test]
    fn a_raw_ipv4_packet_gives_up_its_icmp_message() {
        let mut packet = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0];
        packet.extend([127, 0, 0, 1, 127, 0, 0, 1]);
        packet.extend(V4_REPLY_BYTES);
        assert_eq!(strip_ipv4(&packet), Ok(V4_REPLY_BYTES));
        packet[9] = 6;
        assert_eq!(strip_ipv4(&packet), Err(DecodeError::NotIcmp));
        assert_eq!(strip_ipv4(&[0x46; 10]), Err(DecodeError::Short(10)));
        assert_eq!(strip_ipv4(&[]), Err(DecodeError::Short(0)));
    }

    /// Silence (the timeout) is proven in the lab (`tests/check_ping.rs`),
    /// where an address surely does not answer.
    #[tokio::test]
    async fn loopback_answers_over_ipv4_and_ipv6() {
        if open("127.0.0.1".parse().unwrap()).is_err() {
            eprintln!("skipped: no ICMP socket (ping_group_range, no root)");
            return;
        }
        let limit = Duration::from_millis(500);
        assert_eq!(ping("127.0.0.1".parse().unwrap(), limit).await, Ok(()));
        if open("::1".parse().unwrap()).is_ok() {
            assert_eq!(ping("::1".parse().unwrap(), limit).await, Ok(()));
        }
    }
}
