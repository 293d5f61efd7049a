//! VRRP for the director: RFC 5798 (v3, IPv4 and IPv6) and RFC 3768 (v2),
//! interoperable with keepalived.
//!
//! The protocol is split so that everything that decides is pure and can be
//! tested without sockets, root or real time:
//!
//! * [`packet`]: the advertisement codec as plain data (decode, verify,
//!   encode), plus the outer IPv4 header that raw sockets hand us.
//! * [`arp`]: the gratuitous ARP frame a new master broadcasts.
//! * [`error`]: the wire errors ([`DecodeError`](error::DecodeError)) and
//!   configuration errors these produce.
//!
//! The socket loop comes later and stays thin.

pub mod arp;
pub mod error;
pub mod packet;
