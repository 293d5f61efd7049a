//! The outer IPv4 header that an IPv4 raw socket delivers in front of each
//! VRRP message, and the receive path built on it: header, the RFC 5798
//! §7.1 TTL check, then [`Advert::decode`].
//!
//! IPv6 raw sockets deliver no header: the hop limit and destination come
//! as control messages, and [`super::ipv6`] checks them.

use std::net::Ipv4Addr;

use super::error::DecodeError;
use super::packet::{Advert, IPPROTO_VRRP, PseudoHeader, TTL, V3Checksum};

/// Offset of the VRID in a VRRP message, for errors raised before decoding.
const VRRP_OFF_VRID: usize = 1;

/// The fields of the IPv4 header that an IPv4 raw socket delivers in front
/// of the VRRP message, as far as VRRP needs them (RFC 791 §3.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version|  IHL  |Type of Service|          Total Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Identification        |Flags|      Fragment Offset    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Destination Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Options (IHL > 5)                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The kernel has already verified the header checksum; IPv6 raw sockets
/// deliver no header (hop limit and destination come as control messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Header length in bytes (IHL × 4), where the VRRP message starts.
    pub header_len: usize,
    /// Time to live; VRRP requires [`TTL`].
    pub ttl: u8,
    /// Protocol; VRRP is [`IPPROTO_VRRP`].
    pub protocol: u8,
    /// Source: the sender's primary address, the election tie-breaker.
    pub src: Ipv4Addr,
    /// Destination: the multicast group or our unicast address.
    pub dst: Ipv4Addr,
}

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV4_OFF_TOTAL_LEN: usize = 2;
const IPV4_OFF_TTL: usize = 8;
const IPV4_OFF_PROTOCOL: usize = 9;
const IPV4_OFF_SRC: usize = 12;
const IPV4_OFF_DST: usize = 16;

impl Ipv4Header {
    /// Decodes the header of a packet read from an IPv4 raw socket and
    /// returns it with its payload (bounded by Total Length).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] or [`DecodeError::BadIpv4Header`].
    pub fn decode(packet: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let len = packet.len();
        if len < IPV4_MIN_HEADER_LEN {
            let need = IPV4_MIN_HEADER_LEN;
            return Err(DecodeError::Truncated { vrid: None, len, need });
        }
        let version = packet[0] >> 4;
        let header_len = usize::from(packet[0] & 0x0f) * 4;
        if version != 4 || header_len < IPV4_MIN_HEADER_LEN {
            return Err(DecodeError::BadIpv4Header { version, header_len });
        }
        let total_len = usize::from(u16::from_be_bytes([
            packet[IPV4_OFF_TOTAL_LEN],
            packet[IPV4_OFF_TOTAL_LEN + 1],
        ]));
        if total_len < header_len {
            return Err(DecodeError::BadIpv4Header { version, header_len });
        }
        let Some(payload) = packet.get(header_len..total_len) else {
            let need = total_len;
            return Err(DecodeError::Truncated { vrid: None, len, need });
        };
        let addr = |off: usize| {
            Ipv4Addr::new(
                packet[off],
                packet[off + 1],
                packet[off + 2],
                packet[off + 3],
            )
        };
        let header = Self {
            header_len,
            ttl: packet[IPV4_OFF_TTL],
            protocol: packet[IPV4_OFF_PROTOCOL],
            src: addr(IPV4_OFF_SRC),
            dst: addr(IPV4_OFF_DST),
        };
        Ok((header, payload))
    }

    /// The pseudo-header this packet's VRRP checksum is computed over.
    pub fn pseudo_header(&self) -> PseudoHeader {
        PseudoHeader::V4 { src: self.src, dst: self.dst }
    }
}

/// Decodes a whole packet from an IPv4 raw socket: the outer header, the
/// RFC 5798 §7.1 TTL check, then the advert. This is what the receive loop
/// calls for IPv4.
///
/// # Errors
///
/// Any [`DecodeError`] but [`DecodeError::AuthMismatch`].
pub fn decode_ipv4_packet(
    packet: &[u8],
    v3: V3Checksum,
) -> Result<(Ipv4Header, Advert), DecodeError> {
    let (header, payload) = Ipv4Header::decode(packet)?;
    if header.protocol != IPPROTO_VRRP {
        return Err(DecodeError::NotVrrp { protocol: header.protocol });
    }
    if header.ttl != TTL {
        let vrid = payload.get(VRRP_OFF_VRID).copied();
        return Err(DecodeError::BadTtl { vrid, ttl: header.ttl });
    }
    let advert = Advert::decode(payload, &header.pseudo_header(), v3)?;
    Ok((header, advert))
}
