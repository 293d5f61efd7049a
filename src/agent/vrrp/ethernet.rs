//! The Ethernet header both announcements start with: the gratuitous ARP
//! ([`super::arp`]) and the unsolicited Neighbour Advertisement
//! ([`super::ndisc`]).
//!
//! ```text
//! +-------------+-------------+-------+
//! | dst (6)     | src (6)     | type  |
//! +-------------+-------------+-------+
//! ```

/// An Ethernet MAC address.
pub(crate) type MacAddr = [u8; 6];

/// Length of the Ethernet header: what the payload's offsets start from.
pub(crate) const HEADER_LEN: usize = 14;

const OFF_DST: usize = 0;
const OFF_SRC: usize = 6;
const OFF_ETHERTYPE: usize = 12;

/// Write the header at the start of `frame`.
pub(crate) fn put_header(
    frame: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    ethertype: u16,
) {
    frame[OFF_DST..OFF_SRC].copy_from_slice(&dst);
    frame[OFF_SRC..OFF_ETHERTYPE].copy_from_slice(&src);
    frame[OFF_ETHERTYPE..HEADER_LEN].copy_from_slice(&ethertype.to_be_bytes());
}
