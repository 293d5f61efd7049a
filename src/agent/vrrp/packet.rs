//! The VRRP advertisement as plain data: decode, verify, encode.
//!
//! This module owns the wire format of RFC 3768 (VRRPv2, IPv4 only) and
//! RFC 5798 (VRRPv3, IPv4 and IPv6) and the checksums of both (with and
//! without the IP pseudo-header). The outer IPv4 header that an IPv4 raw
//! socket hands to the reader is [`super::ipv4`]'s. It knows nothing about
//! instances, timers or sockets: the caller passes in the IP source and
//! destination the checksum covers and gets back an [`Advert`] or a
//! [`DecodeError`].
//!
//! Decoding never panics; every read is preceded by a length check. The
//! order of checks follows RFC 5798 §7.1: length, version, type, address
//! count against length, checksum, then field values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::error::{DecodeError, EncodeError};
use crate::agent::sys::checksum::OnesComplementSum;

/// IP protocol number of VRRP (RFC 5798 §5.1.1.3, §5.1.2.3).
pub const IPPROTO_VRRP: u8 = 112;
/// Destination of IPv4 adverts (RFC 5798 §5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Destination of IPv6 adverts (RFC 5798 §5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr =
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit every advert is sent with and must arrive with, so a
/// packet that crossed a router is refused (RFC 5798 §5.1.1.3, §7.1).
pub const TTL: u8 = 255;

/// Fixed part shared by v2 and v3: version/type up to the checksum.
const HEADER_LEN: usize = 8;
/// VRRPv2 trailing authentication data (RFC 3768 §5.3.10).
const AUTH_DATA_LEN: usize = 8;
const IPV4_ADDR_LEN: usize = 4;
const IPV6_ADDR_LEN: usize = 16;

const OFF_VERSION_TYPE: usize = 0;
const OFF_VRID: usize = 1;
const OFF_PRIORITY: usize = 2;
const OFF_COUNT: usize = 3;
/// v2: one byte of auth type, then one byte of interval in seconds.
const OFF_AUTH_TYPE: usize = 4;
const OFF_ADVER_INT_V2: usize = 5;
/// v3: four reserved bits, then twelve bits of interval in centiseconds.
const OFF_MAX_ADVER_INT: usize = 4;
const OFF_CHECKSUM: usize = 6;
const OFF_ADDRS: usize = HEADER_LEN;

const TYPE_ADVERTISEMENT: u8 = 1;
const MAX_ADVER_INT_MASK: u16 = 0x0fff;
const AUTH_TYPE_NONE: u8 = 0;
/// "Simple text password" of RFC 2338 §5.3.6.1, kept by keepalived as
/// `auth_type PASS` although RFC 3768 reserved the value.
const AUTH_TYPE_PASS: u8 = 1;
/// Centiseconds per second, the v3 interval unit.
const CS_PER_SEC: u64 = 100;

/// Protocol version: selects the format, the interval unit and the skew
/// formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, seconds, optional PASS authentication.
    V2,
    /// RFC 5798: IPv4 or IPv6, centiseconds, pseudo-header checksum.
    V3,
}

/// VRRPv2 authentication. v3 has none (RFC 5798 §9 explains why).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Auth type 0: no authentication.
    None,
    /// Auth type 1: an 8-byte password, zero padded, sent in clear text.
    /// It only stops misconfigured neighbours, not attackers, but
    /// keepalived v2 clusters use it and must keep working.
    Pass([u8; AUTH_DATA_LEN]),
}

impl Auth {
    /// Builds PASS authentication from a password of at most eight bytes
    /// (zero padded, as keepalived sends it); `None` if it is longer.
    pub fn pass(password: &[u8]) -> Option<Self> {
        let mut data = [0; AUTH_DATA_LEN];
        data.get_mut(..password.len())?.copy_from_slice(password);
        Some(Self::Pass(data))
    }

    /// Whether two settings agree. The password comparison takes the same
    /// time wherever the first difference is, so the reply timing of the
    /// agent tells nothing about how much of a guess was right.
    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::None, Self::None) => true,
            (Self::Pass(a), Self::Pass(b)) => constant_time_eq(a, b),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Auth {
    /// Never prints the password: adverts end up in logs and event
    /// recordings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Pass(_) => f.write_str("Pass(<redacted>)"),
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early
    // exit on the first difference.
    std::hint::black_box(diff) == 0
}

/// The virtual addresses an advert lists, one family per advert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addrs {
    /// IPv4 addresses (v2, or v3 over IPv4).
    V4(Vec<Ipv4Addr>),
    /// IPv6 addresses (v3 over IPv6).
    V6(Vec<Ipv6Addr>),
}

impl Addrs {
    /// Number of addresses, the value of the count field.
    pub fn len(&self) -> usize {
        match self {
            Self::V4(a) => a.len(),
            Self::V6(a) => a.len(),
        }
    }

    /// Whether the list is empty, which no valid advert is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The IP addresses around a VRRP message: they select the address family
/// and feed the checksum pseudo-header. For v2 only the family matters.
///
/// keepalived before 1.3.6 (and later ones with `old_unicast_checksum`)
/// put 224.0.0.18 in the pseudo-header even for unicast adverts; to talk to
/// them, pass that as `dst` instead of the unicast destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    /// IPv4 source and destination.
    V4 {
        /// Source address (the sender's primary address).
        src: Ipv4Addr,
        /// Destination (224.0.0.18, or a unicast peer).
        dst: Ipv4Addr,
    },
    /// IPv6 source and destination.
    V6 {
        /// Source address (the sender's link-local address).
        src: Ipv6Addr,
        /// Destination (ff02::12, or a unicast peer).
        dst: Ipv6Addr,
    },
}

impl PseudoHeader {
    /// The pseudo-header from `src` to `dst`; `None` when their families
    /// differ, which no packet can.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(Self::V4 { src, dst }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(Self::V6 { src, dst }),
            _ => None,
        }
    }
}

/// How a VRRPv3-over-IPv4 checksum is computed. v2 never uses the
/// pseudo-header and v3 over IPv6 always does (RFC 8200 §8.1), so this only
/// matters for v3 over IPv4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum V3Checksum {
    /// RFC 5798 §5.2.8: include the IPv4 pseudo-header. keepalived's
    /// default.
    #[default]
    Rfc5798,
    /// Leave the pseudo-header out, as some vendors read §5.2.8 and as
    /// keepalived's `v3_checksum_as_v2` does (RFC 9568 §5.2.8 discusses
    /// the ambiguity).
    AsV2,
}

/// A VRRPv2 advertisement (RFC 3768 §5.1).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Auth Type   |   Adver Int   |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         IP Address (1)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                            .                                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         IP Address (n)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Authentication Data (1)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Authentication Data (2)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The checksum covers the whole message, authentication data included,
/// and no pseudo-header (RFC 3768 §5.3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertV2 {
    /// Virtual Router Identifier, 1–255.
    pub vrid: u8,
    /// Sender's priority; 0 means the master is leaving.
    pub priority: u8,
    /// Advertisement interval in whole seconds.
    pub adver_int: u8,
    /// Authentication type and data.
    pub auth: Auth,
    /// The virtual addresses.
    pub addrs: Vec<Ipv4Addr>,
}

/// A VRRPv3 advertisement (RFC 5798 §5.1). IPvX addresses are 4 or 16
/// bytes; there is no authentication data.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                       IPvX Address(es)                        |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The checksum covers the message and, by default, the IP pseudo-header
/// (RFC 5798 §5.2.8; see [`V3Checksum`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertV3 {
    /// Virtual Router Identifier, 1–255.
    pub vrid: u8,
    /// Sender's priority; 0 means the master is leaving.
    pub priority: u8,
    /// Maximum advertisement interval in centiseconds (12 bits).
    pub max_adver_int: u16,
    /// The virtual addresses.
    pub addrs: Addrs,
}

/// A decoded advertisement of either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advert {
    /// RFC 3768.
    V2(AdvertV2),
    /// RFC 5798.
    V3(AdvertV3),
}

// ===== impl Advert =====

impl Advert {
    /// Decodes and verifies one VRRP message (the IP payload).
    ///
    /// `ip` gives the family and the checksum pseudo-header; `v3` says how
    /// a v3-over-IPv4 checksum is computed.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`] but the outer-header ones; authentication is
    /// checked apart, by [`Advert::verify_auth`], once the caller knows the
    /// instance from the VRID.
    //
    // Longer than most functions here on purpose: it reads the message in
    // RFC 5798 §5.2's field order, one length check before each read, and
    // splitting it would scatter the offsets the checks depend on.
    pub fn decode(
        buf: &[u8],
        ip: &PseudoHeader,
        v3: V3Checksum,
    ) -> Result<Self, DecodeError> {
        let len = buf.len();
        if len < HEADER_LEN {
            let vrid = buf.get(OFF_VRID).copied();
            return Err(DecodeError::Truncated { vrid, len, need: HEADER_LEN });
        }
        let version = buf[OFF_VERSION_TYPE] >> 4;
        let kind = buf[OFF_VERSION_TYPE] & 0x0f;
        let vrid = buf[OFF_VRID];
        let count = buf[OFF_COUNT];

        let (version, addr_len) = match (version, ip) {
            (2, PseudoHeader::V4 { .. }) => (Version::V2, IPV4_ADDR_LEN),
            (3, PseudoHeader::V4 { .. }) => (Version::V3, IPV4_ADDR_LEN),
            (3, PseudoHeader::V6 { .. }) => (Version::V3, IPV6_ADDR_LEN),
            _ => return Err(DecodeError::BadVersion { vrid, version }),
        };
        if kind != TYPE_ADVERTISEMENT {
            return Err(DecodeError::BadType { vrid, kind });
        }
        if count == 0 {
            return Err(DecodeError::NoAddresses { vrid });
        }
        if len != message_len(version, addr_len, count.into()) {
            return Err(DecodeError::AddressCountMismatch { vrid, count, len });
        }

        let received =
            u16::from_be_bytes([buf[OFF_CHECKSUM], buf[OFF_CHECKSUM + 1]]);
        let computed = checksum(buf, pseudo_header(version, ip, v3));
        if received != computed {
            return Err(DecodeError::BadChecksum { vrid, received, computed });
        }

        let priority = buf[OFF_PRIORITY];
        let addr_bytes =
            &buf[OFF_ADDRS..OFF_ADDRS + addr_len * usize::from(count)];
        match version {
            Version::V2 => {
                let adver_int = buf[OFF_ADVER_INT_V2];
                if adver_int == 0 {
                    return Err(DecodeError::ZeroInterval { vrid });
                }
                let auth = match buf[OFF_AUTH_TYPE] {
                    AUTH_TYPE_NONE => Auth::None,
                    AUTH_TYPE_PASS => {
                        let mut data = [0; AUTH_DATA_LEN];
                        data.copy_from_slice(&buf[len - AUTH_DATA_LEN..]);
                        Auth::Pass(data)
                    }
                    auth_type => {
                        return Err(DecodeError::UnsupportedAuthType {
                            vrid,
                            auth_type,
                        });
                    }
                };
                let addrs = ipv4_addrs(addr_bytes);
                Ok(Self::V2(AdvertV2 {
                    vrid,
                    priority,
                    adver_int,
                    auth,
                    addrs,
                }))
            }
            Version::V3 => {
                let field = u16::from_be_bytes([
                    buf[OFF_MAX_ADVER_INT],
                    buf[OFF_MAX_ADVER_INT + 1],
                ]);
                // The reserved bits are ignored on reception (§5.2.6).
                let max_adver_int = field & MAX_ADVER_INT_MASK;
                if max_adver_int == 0 {
                    return Err(DecodeError::ZeroInterval { vrid });
                }
                let addrs = match ip {
                    PseudoHeader::V4 { .. } => {
                        Addrs::V4(ipv4_addrs(addr_bytes))
                    }
                    PseudoHeader::V6 { .. } => {
                        Addrs::V6(ipv6_addrs(addr_bytes))
                    }
                };
                Ok(Self::V3(AdvertV3 { vrid, priority, max_adver_int, addrs }))
            }
        }
    }

    /// Encodes the advert with its checksum, ready for a raw socket whose
    /// kernel adds the IP header (TTL [`TTL`], protocol [`IPPROTO_VRRP`]).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when the advert cannot be represented: a family that
    /// differs from `ip`, no address or more than 255, an interval of zero
    /// or wider than its field.
    pub fn encode(
        &self,
        ip: &PseudoHeader,
        v3: V3Checksum,
    ) -> Result<Vec<u8>, EncodeError> {
        let vrid = self.vrid();
        let (version, addr_len, count) = match (self, ip) {
            (Self::V2(a), PseudoHeader::V4 { .. }) => {
                (Version::V2, IPV4_ADDR_LEN, a.addrs.len())
            }
            (Self::V3(a), PseudoHeader::V4 { .. })
                if matches!(a.addrs, Addrs::V4(_)) =>
            {
                (Version::V3, IPV4_ADDR_LEN, a.addrs.len())
            }
            (Self::V3(a), PseudoHeader::V6 { .. })
                if matches!(a.addrs, Addrs::V6(_)) =>
            {
                (Version::V3, IPV6_ADDR_LEN, a.addrs.len())
            }
            _ => return Err(EncodeError::FamilyMismatch { vrid }),
        };
        let count_byte = u8::try_from(count)
            .ok()
            .filter(|&c| c > 0)
            .ok_or(EncodeError::AddressCount { vrid, count })?;

        let mut buf = Vec::with_capacity(message_len(version, addr_len, count));
        match self {
            Self::V2(a) => {
                if a.adver_int == 0 {
                    return Err(EncodeError::Interval { vrid, interval: 0 });
                }
                let auth_type = match a.auth {
                    Auth::None => AUTH_TYPE_NONE,
                    Auth::Pass(_) => AUTH_TYPE_PASS,
                };
                buf.extend([0x20 | TYPE_ADVERTISEMENT, vrid, a.priority]);
                buf.extend([count_byte, auth_type, a.adver_int, 0, 0]);
                for addr in &a.addrs {
                    buf.extend(addr.octets());
                }
                match &a.auth {
                    Auth::None => buf.extend([0; AUTH_DATA_LEN]),
                    Auth::Pass(data) => buf.extend(data),
                }
            }
            Self::V3(a) => {
                let interval = a.max_adver_int;
                if interval == 0 || interval > MAX_ADVER_INT_MASK {
                    return Err(EncodeError::Interval { vrid, interval });
                }
                buf.extend([0x30 | TYPE_ADVERTISEMENT, vrid, a.priority]);
                buf.push(count_byte);
                buf.extend(interval.to_be_bytes());
                buf.extend([0, 0]);
                match &a.addrs {
                    Addrs::V4(addrs) => {
                        addrs.iter().for_each(|a| buf.extend(a.octets()))
                    }
                    Addrs::V6(addrs) => {
                        addrs.iter().for_each(|a| buf.extend(a.octets()))
                    }
                }
            }
        }
        let sum = checksum(&buf, pseudo_header(version, ip, v3));
        buf[OFF_CHECKSUM..OFF_CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
        Ok(buf)
    }

    /// Checks the advert's authentication against the instance's setting
    /// (RFC 2338 §7.1 as keepalived applies it to v2). A v3 advert carries
    /// none and matches only [`Auth::None`].
    ///
    /// # Errors
    ///
    /// [`DecodeError::AuthMismatch`] when type or password differ.
    pub fn verify_auth(&self, expected: &Auth) -> Result<(), DecodeError> {
        let received = match self {
            Self::V2(a) => &a.auth,
            Self::V3(_) => &Auth::None,
        };
        if received.matches(expected) {
            Ok(())
        } else {
            Err(DecodeError::AuthMismatch { vrid: self.vrid() })
        }
    }

    /// Protocol version of this advert.
    pub fn version(&self) -> Version {
        match self {
            Self::V2(_) => Version::V2,
            Self::V3(_) => Version::V3,
        }
    }

    /// Virtual Router Identifier: how the loop finds the instance.
    pub fn vrid(&self) -> u8 {
        match self {
            Self::V2(a) => a.vrid,
            Self::V3(a) => a.vrid,
        }
    }

    /// Sender's priority, the input of the election.
    pub fn priority(&self) -> u8 {
        match self {
            Self::V2(a) => a.priority,
            Self::V3(a) => a.priority,
        }
    }

    /// The advertised interval as a duration, whatever the wire unit, so
    /// the state machine never sees seconds or centiseconds.
    pub fn interval(&self) -> Duration {
        match self {
            Self::V2(a) => Duration::from_secs(a.adver_int.into()),
            Self::V3(a) => Duration::from_millis(
                u64::from(a.max_adver_int) * 1000 / CS_PER_SEC,
            ),
        }
    }
}

/// Length of a whole message with `count` addresses of `addr_len` bytes.
fn message_len(version: Version, addr_len: usize, count: usize) -> usize {
    let auth = match version {
        Version::V2 => AUTH_DATA_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + addr_len * count + auth
}

fn ipv4_addrs(bytes: &[u8]) -> Vec<Ipv4Addr> {
    bytes
        .chunks_exact(IPV4_ADDR_LEN)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

fn ipv6_addrs(bytes: &[u8]) -> Vec<Ipv6Addr> {
    bytes
        .chunks_exact(IPV6_ADDR_LEN)
        .map(|c| {
            let mut octets = [0; IPV6_ADDR_LEN];
            octets.copy_from_slice(c);
            Ipv6Addr::from(octets)
        })
        .collect()
}

// ===== checksum =====

/// The pseudo-header to include, if any, for this version and family.
fn pseudo_header(
    version: Version,
    ip: &PseudoHeader,
    v3: V3Checksum,
) -> Option<&PseudoHeader> {
    match (version, ip, v3) {
        (Version::V2, _, _) => None,
        (Version::V3, PseudoHeader::V4 { .. }, V3Checksum::AsV2) => None,
        (Version::V3, _, _) => Some(ip),
    }
}

/// The Internet checksum (RFC 1071) of `msg` with its checksum field read
/// as zero, preceded by the pseudo-header when given:
///
/// * IPv4 (RFC 5798 §5.2.8 with RFC 768's layout): source, destination,
///   zero, protocol 112, VRRP length (16 bits).
/// * IPv6 (RFC 8200 §8.1): source, destination, upper-layer length (32
///   bits), three zero bytes, next header 112.
///
/// `msg` must be at least [`HEADER_LEN`] long (callers check first).
fn checksum(msg: &[u8], pseudo: Option<&PseudoHeader>) -> u16 {
    let mut sum = OnesComplementSum::default();
    match pseudo {
        None => {}
        Some(PseudoHeader::V4 { src, dst }) => {
            sum.add(&src.octets());
            sum.add(&dst.octets());
            // Messages longer than 64 KiB cannot arrive; saturate anyway.
            let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
            sum.add(&[0, IPPROTO_VRRP]);
            sum.add(&len.to_be_bytes());
        }
        Some(PseudoHeader::V6 { src, dst }) => {
            sum.add(&src.octets());
            sum.add(&dst.octets());
            let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
            sum.add(&len.to_be_bytes());
            sum.add(&[0, 0, 0, IPPROTO_VRRP]);
        }
    }
    sum.add(&msg[..OFF_CHECKSUM]);
    sum.add(&msg[OFF_CHECKSUM + 2..]);
    sum.finish()
}
