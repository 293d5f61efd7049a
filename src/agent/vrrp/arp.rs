//! The gratuitous ARP a new master broadcasts for each IPv4 VIP, so that
//! switches and neighbours move the VIP to its MAC at once rather than when
//! their ARP cache expires (RFC 5798 §6.4.1 and §6.4.2, "broadcast a
//! gratuitous ARP request").
//!
//! Only the bytes live here; the I/O layer sends them on an `AF_PACKET`
//! socket bound to the interface. IPv6 VIPs get an unsolicited Neighbour
//! Advertisement instead ([`super::ndisc`]).
//!
//! ```text
//!  Ethernet (IEEE 802.3)                       ARP (RFC 826), 28 bytes
//! +-------------+-------------+-------+       +------+------+----+----+----+
//! | dst (6)     | src (6)     | type  |       | htype| ptype|hlen|plen| op |
//! | ff:ff:..:ff | our MAC     | 0806  |       | 1    | 0800 | 6  | 4  | 1  |
//! +-------------+-------------+-------+       +------+------+----+----+----+
//!                                             | sha: our MAC | spa: VIP    |
//!                                             | tha: ff..ff  | tpa: VIP    |
//!                                             +--------------+-------------+
//! ```
//!
//! The target hardware address is broadcast, not zero: that is what
//! keepalived 2.2.7 sends (see `tests/vrrp_vectors.rs`), and receivers
//! ignore the field in a request anyway (RFC 5227 §2.1.1 leaves it unused).

use std::net::Ipv4Addr;

pub(crate) use super::ethernet::MacAddr;
use super::ethernet::{HEADER_LEN as ETH_HEADER_LEN, put_header};

/// Length of the frame: 14 bytes of Ethernet header and 28 of ARP. The
/// NIC pads it to the 60-byte minimum; keepalived does not pad either.
pub(crate) const FRAME_LEN: usize = ETH_HEADER_LEN + ARP_LEN;

const BROADCAST: MacAddr = [0xff; 6];
const ETHERTYPE_ARP: u16 = 0x0806;
const ARP_LEN: usize = 28;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_PTYPE_IPV4: u16 = 0x0800;
const ARP_OP_REQUEST: u16 = 1;

const OFF_HTYPE: usize = ETH_HEADER_LEN;
const OFF_PTYPE: usize = OFF_HTYPE + 2;
const OFF_HLEN: usize = OFF_PTYPE + 2;
const OFF_PLEN: usize = OFF_HLEN + 1;
const OFF_OP: usize = OFF_PLEN + 1;
const OFF_SHA: usize = OFF_OP + 2;
const OFF_SPA: usize = OFF_SHA + 6;
const OFF_THA: usize = OFF_SPA + 4;
const OFF_TPA: usize = OFF_THA + 6;

/// Builds the broadcast gratuitous ARP request announcing `vip` at `mac`:
/// sender and target protocol address are both the VIP.
pub fn gratuitous_arp(mac: MacAddr, vip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut frame = [0; FRAME_LEN];
    put_header(&mut frame, BROADCAST, mac, ETHERTYPE_ARP);
    let mut put = |off: usize, bytes: &[u8]| {
        frame[off..off + bytes.len()].copy_from_slice(bytes);
    };
    put(OFF_HTYPE, &ARP_HTYPE_ETHERNET.to_be_bytes());
    put(OFF_PTYPE, &ARP_PTYPE_IPV4.to_be_bytes());
    put(OFF_HLEN, &[6]);
    put(OFF_PLEN, &[4]);
    put(OFF_OP, &ARP_OP_REQUEST.to_be_bytes());
    put(OFF_SHA, &mac);
    put(OFF_SPA, &vip.octets());
    put(OFF_THA, &BROADCAST);
    put(OFF_TPA, &vip.octets());
    frame
}
