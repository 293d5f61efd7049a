//! The unsolicited Neighbour Advertisement a new master sends for each
//! IPv6 VIP (RFC 5798 §6.4.1 and §6.4.2, RFC 4861 §7.2.6): IPv6's
//! gratuitous ARP, so that neighbours and switches move the VIP to its MAC
//! at once rather than when their neighbour entry goes stale.
//!
//! Only the bytes live here; the I/O layer sends the whole frame on the
//! same `AF_PACKET` socket as the gratuitous ARPs, as keepalived does, so
//! the source can be the VIP itself whatever the IP stack would choose.
//!
//! ```text
//!  Ethernet         IPv6 (RFC 8200)                 ICMPv6 NA (RFC 4861 §4.4)
//! +-----------+    +-------------------------+    +------+------+----------+
//! | 33:33:0:0:|    | 6 | tc 0 | flow 0       |    | 136  | 0    | checksum |
//! |   0:1     |    | len 32 | nh 58 | hop 255|    +------+------+----------+
//! | our MAC   |    | src: the VIP            |    |R|S|O| reserved (29)    |
//! | 86dd      |    | dst: ff02::1            |    | target: the VIP      |
//! +-----------+    +-------------------------+    | opt 2, len 1, our MAC|
//!                                                 +----------------------+
//! ```
//!
//! Flags as keepalived 2.2.7 sends them (see `tests/vrrp_vectors.rs`):
//! Override set, so receivers replace the MAC they had (§7.2.6);
//! Solicited clear, as nobody asked; Router clear, because a director
//! answers for a service address, not as the clients' router — a set
//! flag would make hosts that use the address as a router keep it in
//! their default router list, a clear one does not mislead anyone.

use std::net::Ipv6Addr;

use super::ethernet::{HEADER_LEN as ETH_HEADER_LEN, MacAddr, put_header};
use super::packet::TTL;
use crate::agent::sys::checksum::OnesComplementSum;

/// Length of the frame: Ethernet, IPv6 header, NA and one option.
pub(crate) const FRAME_LEN: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN + ICMP_LEN;

/// The all-nodes group (RFC 4291 §2.7.1), where unsolicited adverts go.
pub(crate) const ALL_NODES: Ipv6Addr =
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV6_HEADER_LEN: usize = 40;
/// The first word of the IPv6 header: version 6, traffic class and flow
/// label zero.
const IPV6_VERSION_WORD: u32 = 6 << 28;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// The NA message (type, code, checksum, flags, target) and the Target
/// Link-Layer Address option (type, length in 8-byte units, MAC).
const NA_LEN: usize = 24;
const OPTION_LEN: usize = 8;
const ICMP_LEN: usize = NA_LEN + OPTION_LEN;
const ICMP_TYPE_NA: u8 = 136;
/// Override, the only flag set (RFC 4861 §4.4: R is bit 31, S 30, O 29).
const NA_FLAGS: u32 = 1 << 29;
const OPTION_TARGET_LL_ADDR: u8 = 2;

const OFF_IP: usize = ETH_HEADER_LEN;
const OFF_IP_PAYLOAD_LEN: usize = OFF_IP + 4;
const OFF_IP_NEXT_HEADER: usize = OFF_IP + 6;
const OFF_IP_HOP_LIMIT: usize = OFF_IP + 7;
const OFF_IP_SRC: usize = OFF_IP + 8;
const OFF_IP_DST: usize = OFF_IP + 24;
const OFF_ICMP: usize = OFF_IP + IPV6_HEADER_LEN;
const OFF_ICMP_CHECKSUM: usize = OFF_ICMP + 2;
const OFF_NA_FLAGS: usize = OFF_ICMP + 4;
const OFF_NA_TARGET: usize = OFF_ICMP + 8;
const OFF_OPTION: usize = OFF_ICMP + NA_LEN;

/// The Ethernet address of an IPv6 multicast group: 33:33 and its last
/// four bytes (RFC 2464 §7).
fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Builds the unsolicited Neighbour Advertisement announcing `vip` at
/// `mac`, from the VIP to all nodes, hop limit 255 (which receivers
/// require, RFC 4861 §7.1.2).
pub fn unsolicited_advert(mac: MacAddr, vip: Ipv6Addr) -> [u8; FRAME_LEN] {
    let mut frame = [0; FRAME_LEN];
    put_header(&mut frame, multicast_mac(ALL_NODES), mac, ETHERTYPE_IPV6);
    let mut put = |off: usize, bytes: &[u8]| {
        frame[off..off + bytes.len()].copy_from_slice(bytes);
    };
    put(OFF_IP, &IPV6_VERSION_WORD.to_be_bytes());
    put(OFF_IP_PAYLOAD_LEN, &(ICMP_LEN as u16).to_be_bytes());
    put(OFF_IP_NEXT_HEADER, &[NEXT_HEADER_ICMPV6]);
    put(OFF_IP_HOP_LIMIT, &[TTL]);
    put(OFF_IP_SRC, &vip.octets());
    put(OFF_IP_DST, &ALL_NODES.octets());
    put(OFF_ICMP, &[ICMP_TYPE_NA, 0]);
    put(OFF_NA_FLAGS, &NA_FLAGS.to_be_bytes());
    put(OFF_NA_TARGET, &vip.octets());
    put(OFF_OPTION, &[OPTION_TARGET_LL_ADDR, (OPTION_LEN / 8) as u8]);
    put(OFF_OPTION + 2, &mac);
    // RFC 4443 §2.3: over the pseudo-header (RFC 8200 §8.1) and the
    // message, with the checksum field still zero.
    let mut sum = OnesComplementSum::default();
    sum.add(&vip.octets());
    sum.add(&ALL_NODES.octets());
    sum.add(&(ICMP_LEN as u32).to_be_bytes());
    sum.add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum.add(&frame[OFF_ICMP..]);
    frame[OFF_ICMP_CHECKSUM..OFF_ICMP_CHECKSUM + 2]
        .copy_from_slice(&sum.finish().to_be_bytes());
    frame
}
