//! The Internet checksum (RFC 1071) that VRRP adverts, ICMPv6 Neighbour
//! Advertisements, the SYNs of half-open checks and the ICMPv4 echoes of
//! ping checks carry; each caller feeds its own pseudo-header and message.

/// Running one's-complement sum of 16-bit big-endian words. Every slice
/// passed to [`add`](Self::add) but the last must have an even length; the
/// last may be odd and is padded with a zero byte (RFC 1071).
#[derive(Debug, Default)]
pub(crate) struct OnesComplementSum(u64);

impl OnesComplementSum {
    /// Add `bytes` to the sum.
    pub fn add(&mut self, bytes: &[u8]) {
        for pair in bytes.chunks(2) {
            let word = match *pair {
                [hi, lo] => u16::from_be_bytes([hi, lo]),
                [hi] => u16::from_be_bytes([hi, 0]),
                _ => 0,
            };
            self.0 += u64::from(word);
        }
    }

    /// The checksum: the folded sum, complemented.
    pub fn finish(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // After folding the sum fits 16 bits.
        !(sum as u16)
    }
}
