//! The receive path of VRRPv3 over IPv6 (RFC 5798 §5.1.2, §7.1).
//!
//! An IPv6 raw socket hands over the VRRP message without its IPv6 header;
//! the fields VRRP needs from that header come as ancillary data
//! (`IPV6_HOPLIMIT`, `IPV6_PKTINFO`) and the sender's address from
//! `recvmsg`. The socket adapter collects them into `Ipv6Meta`; this
//! module checks the hop limit and decodes, without any socket.

use std::net::Ipv6Addr;

use super::error::DecodeError;
use super::packet::{Advert, PseudoHeader, TTL, V3Checksum};

/// Offset of the VRID in a VRRP message, for errors raised before decoding.
const VRRP_OFF_VRID: usize = 1;

/// What the kernel tells about a received IPv6 packet besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv6Meta {
    /// Source (the sender's link-local address): the election tie-breaker.
    pub src: Ipv6Addr,
    /// Destination (`IPV6_PKTINFO`): ff02::12 or our own address; the
    /// checksum's pseudo-header needs it (RFC 8200 §8.1).
    pub dst: Ipv6Addr,
    /// Hop limit (`IPV6_HOPLIMIT`); VRRP requires [`TTL`].
    pub hop_limit: u8,
}

impl Ipv6Meta {
    /// The pseudo-header this packet's VRRP checksum is computed over.
    pub fn pseudo_header(&self) -> PseudoHeader {
        PseudoHeader::V6 { src: self.src, dst: self.dst }
    }
}

/// Decodes a VRRP message read from an IPv6 raw socket: the RFC 5798 §7.1
/// hop-limit check when `check_hop_limit`, then the advert. This is what
/// the receive loop calls for IPv6.
///
/// The check is skipped for unicast peers, as keepalived skips it: its
/// unicast IPv6 adverts leave with the kernel's default hop limit (64)
/// unless `unicast_ttl` is set, and the caller accepts only the listed
/// peers' addresses instead.
///
/// # Errors
///
/// Any [`DecodeError`] but [`DecodeError::AuthMismatch`].
pub(crate) fn decode_ipv6_message(
    meta: &Ipv6Meta,
    msg: &[u8],
    check_hop_limit: bool,
) -> Result<Advert, DecodeError> {
    if check_hop_limit && meta.hop_limit != TTL {
        let vrid = msg.get(VRRP_OFF_VRID).copied();
        return Err(DecodeError::BadTtl { vrid, ttl: meta.hop_limit });
    }
    // The checksum option only concerns IPv4; IPv6 always includes the
    // pseudo-header.
    Advert::decode(msg, &meta.pseudo_header(), V3Checksum::Rfc5798)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::vrrp::packet::{Addrs, AdvertV3, MULTICAST_V6};

    #[test]
    fn hop_limit_is_checked_before_the_message() {
        let meta = Ipv6Meta {
            src: "fe80::1".parse().unwrap(),
            dst: MULTICAST_V6,
            hop_limit: TTL,
        };
        let advert = Advert::V3(AdvertV3 {
            vrid: 9,
            priority: 100,
            max_adver_int: 100,
            addrs: Addrs::V6(vec!["fd00::9".parse().unwrap()]),
        });
        let msg =
            advert.encode(&meta.pseudo_header(), V3Checksum::Rfc5798).unwrap();
        assert_eq!(decode_ipv6_message(&meta, &msg, true), Ok(advert));
        let far = Ipv6Meta { hop_limit: 64, ..meta };
        assert_eq!(
            decode_ipv6_message(&far, &msg, true),
            Err(DecodeError::BadTtl { vrid: Some(9), ttl: 64 })
        );
        // Another destination changes the pseudo-header, so the checksum.
        let elsewhere = Ipv6Meta { dst: "fe80::2".parse().unwrap(), ..meta };
        assert!(matches!(
            decode_ipv6_message(&elsewhere, &msg, true),
            Err(DecodeError::BadChecksum { vrid: 9, .. })
        ));
    }
}
