//! Errors of the VRRP core: what the wire can get wrong ([`DecodeError`]),
//! what we could be asked to send that does not fit the format
//! ([`EncodeError`]) and what an instance's settings can get wrong
//! ([`ConfigError`]).
//!
//! Variants carry the VRID whenever the packet was long enough to hold one,
//! so the I/O loop can log "vrid 51: bad checksum" and count it against the
//! right instance. Display strings are short and lowercase; the loop adds the
//! interface and source address. Each error is logged once, where the loop
//! handles it.

use std::time::Duration;

/// Why a received packet was rejected. Decoding never panics: any byte
/// string yields either an advert or one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the fixed part needs (RFC 5798 §7.1: "the received
    /// packet contains the complete VRRP packet").
    #[error("truncated packet: {len} bytes, need {need}")]
    Truncated {
        /// The VRID, when at least two bytes arrived.
        vrid: Option<u8>,
        /// Bytes received.
        len: usize,
        /// Bytes the fixed part (or the outer header) needs.
        need: usize,
    },
    /// The version nibble is not one this address family carries (2 or 3
    /// over IPv4, 3 over IPv6); RFC 5798 §7.1 says to discard.
    #[error("vrid {vrid}: unsupported vrrp version {version}")]
    BadVersion {
        /// VRID of the packet.
        vrid: u8,
        /// Version nibble received.
        version: u8,
    },
    /// The type nibble is not 1 (ADVERTISEMENT), the only type defined.
    #[error("vrid {vrid}: unknown vrrp packet type {kind}")]
    BadType {
        /// VRID of the packet.
        vrid: u8,
        /// Type nibble received.
        kind: u8,
    },
    /// "Count IPvX Addr" does not match the bytes that follow the header.
    #[error(
        "vrid {vrid}: {count} addresses announced but {len} bytes received"
    )]
    AddressCountMismatch {
        /// VRID of the packet.
        vrid: u8,
        /// Address count announced in the header.
        count: u8,
        /// Length of the whole VRRP message received.
        len: usize,
    },
    /// Count is zero; RFC 5798 §5.2.5 makes one address the minimum.
    #[error("vrid {vrid}: advertisement lists no address")]
    NoAddresses {
        /// VRID of the packet.
        vrid: u8,
    },
    /// The advertisement interval is zero, which would make every timer
    /// fire at once.
    #[error("vrid {vrid}: zero advertisement interval")]
    ZeroInterval {
        /// VRID of the packet.
        vrid: u8,
    },
    /// The checksum does not verify (RFC 5798 §5.2.8, RFC 3768 §5.3.8).
    #[error(
        "vrid {vrid}: bad checksum {received:#06x}, expected {computed:#06x}"
    )]
    BadChecksum {
        /// VRID of the packet.
        vrid: u8,
        /// Checksum field received.
        received: u16,
        /// Checksum we computed with the field zeroed.
        computed: u16,
    },
    /// VRRPv2 authentication type we do not implement (2, IP AH, or
    /// anything undefined). keepalived's `auth_type AH` lands here.
    #[error("vrid {vrid}: unsupported authentication type {auth_type}")]
    UnsupportedAuthType {
        /// VRID of the packet.
        vrid: u8,
        /// Auth type byte received.
        auth_type: u8,
    },
    /// The authentication type or password differs from the instance's
    /// (RFC 2338 §7.1, as keepalived applies it to v2).
    #[error("vrid {vrid}: authentication mismatch")]
    AuthMismatch {
        /// VRID of the packet.
        vrid: u8,
    },
    /// The packet did not arrive with TTL / hop limit 255, so it may have
    /// crossed a router; RFC 5798 §7.1 says to discard it.
    #[error("bad ttl {ttl}, vrrp requires 255")]
    BadTtl {
        /// The VRID, when the VRRP message was long enough to hold one.
        vrid: Option<u8>,
        /// TTL or hop limit received.
        ttl: u8,
    },
    /// The outer IPv4 header carries another protocol than VRRP (112).
    #[error("ip protocol {protocol} is not vrrp")]
    NotVrrp {
        /// Protocol number received.
        protocol: u8,
    },
    /// The outer header of a raw IPv4 packet is not IPv4 or its length
    /// fields are impossible.
    #[error("bad ipv4 header: version {version}, header length {header_len}")]
    BadIpv4Header {
        /// Version nibble received.
        version: u8,
        /// Header length in bytes (IHL × 4).
        header_len: usize,
    },
}

impl DecodeError {
    /// The VRID of the rejected packet, when it got that far, so the loop
    /// can count the error against an instance (RFC 6527 keeps such
    /// counters per virtual router).
    pub fn vrid(&self) -> Option<u8> {
        match *self {
            Self::Truncated { vrid, .. } | Self::BadTtl { vrid, .. } => vrid,
            Self::NotVrrp { .. } | Self::BadIpv4Header { .. } => None,
            Self::BadVersion { vrid, .. }
            | Self::BadType { vrid, .. }
            | Self::AddressCountMismatch { vrid, .. }
            | Self::NoAddresses { vrid }
            | Self::ZeroInterval { vrid }
            | Self::BadChecksum { vrid, .. }
            | Self::UnsupportedAuthType { vrid, .. }
            | Self::AuthMismatch { vrid } => Some(vrid),
        }
    }
}

/// Why an advert could not be encoded. These are configuration mistakes
/// that validation should have caught; the encoder reports them instead of
/// panicking or sending a malformed packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The addresses listed and the pseudo-header's family differ, or v2
    /// was asked to carry IPv6 (RFC 3768 is IPv4 only).
    #[error("vrid {vrid}: address family does not match the ip header")]
    FamilyMismatch {
        /// VRID of the advert.
        vrid: u8,
    },
    /// No address, or more than the count byte can say (255).
    #[error("vrid {vrid}: {count} addresses; between 1 and 255 fit")]
    AddressCount {
        /// VRID of the advert.
        vrid: u8,
        /// Addresses we were asked to list.
        count: usize,
    },
    /// The interval is zero or does not fit its field (12 bits of
    /// centiseconds for v3).
    #[error("vrid {vrid}: interval {interval} does not fit the field")]
    Interval {
        /// VRID of the advert.
        vrid: u8,
        /// Interval in the field's unit (seconds for v2, cs for v3).
        interval: u16,
    },
}

/// Why an instance's settings cannot run. Returned by
/// [`Instance::new`](super::fsm::Instance::new) so the inventory validation
/// and the agent reject the same things.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Priority 0 is reserved for "the master is leaving" (RFC 5798 §5.2.4).
    #[error("priority 0 is reserved; use 1 to 255")]
    ZeroPriority,
    /// The advertisement interval cannot be carried by this version: v2
    /// sends whole seconds in one byte, v3 1 to 4095 centiseconds.
    #[error("advertisement interval {0:?} does not fit this vrrp version")]
    Interval(Duration),
}
