//! Half-open TCP checks, the pure part: the SYN a probe sends, what an
//! answer to it says, and the socket filter that lets only answers through.
//!
//! A half-open check sends a bare SYN from a raw socket and waits for the
//! server's SYN-ACK (listening) or RST (refused). The director's kernel
//! has no connection for the SYN-ACK, so it answers with an RST itself and
//! the server drops its half-open entry: the server's application never
//! accepts a connection, and neither side builds or tears down a socket.
//! That is why it costs about half of a full connect (BENCHMARKS.md).
//!
//! [`answer`] reads bytes off the network, so it is fuzzed
//! (`fuzz/fuzz_targets/syn_answer_decode.rs`) and must never panic.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::agent::sys::checksum::OnesComplementSum;

/// IP protocol number of TCP.
const TCP: u8 = 6;
/// TCP flags this module reads or writes.
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
/// The window a probe advertises; the server never sends data to it.
const WINDOW: u16 = 1024;

/// The SYN from `from` to `to` numbered `seq`: a 20-byte TCP header with
/// no options (servers answer it like any other SYN) and its checksum
/// over the IPv4 pseudo-header. The kernel adds the IP header.
pub fn segment(from: SocketAddrV4, to: SocketAddrV4, seq: u32) -> [u8; 20] {
    let mut s = [0u8; 20];
    s[0..2].copy_from_slice(&from.port().to_be_bytes());
    s[2..4].copy_from_slice(&to.port().to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    // Acknowledgement number 0; data offset 5 words; flags SYN.
    s[12] = 5 << 4;
    s[13] = SYN;
    s[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    let mut sum = OnesComplementSum::default();
    sum.add(&from.ip().octets());
    sum.add(&to.ip().octets());
    sum.add(&[0, TCP]);
    sum.add(&(s.len() as u16).to_be_bytes());
    sum.add(&s);
    s[16..18].copy_from_slice(&sum.finish().to_be_bytes());
    s
}

/// What a server's answer to a SYN says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// SYN-ACK: something listens.
    Listening,
    /// RST: nothing listens (a full connect's "connection refused").
    Refused,
}

/// An answer to one of our SYNs, as far as the packet tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The server that answered.
    pub from: SocketAddrV4,
    /// Our port it answered to.
    pub to_port: u16,
    /// The SYN it acknowledges: its acknowledgement number less one.
    pub seq: u32,
    /// What it says.
    pub verdict: Verdict,
}

/// Read `packet` (an IPv4 packet as an IPv4 raw socket hands it over, IP
/// header included) as an answer to a SYN; anything else is `None`.
///
/// The TCP checksum is not verified: the kernel delivers to raw sockets
/// before TCP checks it, and on the loopback it is never filled in. A
/// corrupted packet would also have to carry a pending probe's random
/// sequence number to count.
pub fn answer(packet: &[u8]) -> Option<Answer> {
    let (&version_ihl, _) = packet.split_first()?;
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 || packet.len() < header_len {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    // Fragment offset or more-fragments set: not a whole segment.
    let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff;
    if packet[9] != TCP || fragment != 0 || total > packet.len() {
        return None;
    }
    let from_ip = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let tcp = packet.get(header_len..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let word = |i: usize| u16::from_be_bytes([tcp[i], tcp[i + 1]]);
    let flags = tcp[13];
    // An answer acknowledges our SYN; an RST without ACK does not say
    // which SYN it answers.
    if flags & ACK == 0 {
        return None;
    }
    let verdict = if flags & RST != 0 {
        Verdict::Refused
    } else if flags & SYN != 0 {
        Verdict::Listening
    } else {
        return None;
    };
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    Some(Answer {
        from: SocketAddrV4::new(from_ip, word(0)),
        to_port: word(2),
        seq: ack.wrapping_sub(1),
        verdict,
    })
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Instructions skipped when a jump's test holds.
    pub jt: u8,
    /// Instructions skipped when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// A classic BPF program for the raw socket: pass TCP segments to `port`
/// that carry RST or SYN+ACK, drop the rest in the kernel. Without it a
/// raw TCP socket gets a copy of every TCP packet the director receives.
pub fn filter(port: u16) -> [Insn; 9] {
    // Opcodes of linux/filter.h.
    const LDX_B_MSH: u16 = 0xb1; // X = 4 * (pkt[k] & 0x0f): the IP header
    const LD_H_IND: u16 = 0x48; // A = u16 at pkt[X + k]
    const LD_B_IND: u16 = 0x50; // A = u8 at pkt[X + k]
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const AND_K: u16 = 0x54;
    const RET_K: u16 = 0x06;
    let op = |code, jt, jf, k| Insn { code, jt, jf, k };
    [
        op(LDX_B_MSH, 0, 0, 0),
        op(LD_H_IND, 0, 0, 2), // destination port
        op(JEQ_K, 0, 4, u32::from(port)), // else drop
        op(LD_B_IND, 0, 0, 13), // flags
        op(JSET_K, 3, 0, u32::from(RST)), // RST: pass
        op(AND_K, 0, 0, u32::from(SYN | ACK)),
        op(JEQ_K, 1, 0, u32::from(SYN | ACK)), // SYN+ACK: pass
        op(RET_K, 0, 0, 0),                    // drop
        op(RET_K, 0, 0, u32::MAX),             // pass, whole
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    /// An IPv4 packet around `tcp`, from `from` to `to`.
    fn packet(from: Ipv4Addr, to: Ipv4Addr, tcp: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, TCP, 0, 0];
        let total = (20 + tcp.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend(from.octets());
        p.extend(to.octets());
        p.extend(tcp);
        p
    }

    /// The server's reply to `syn` with `flags`, as it would build it.
    fn reply(syn: &[u8; 20], flags: u8) -> [u8; 20] {
        let mut r = [0u8; 20];
        r[0..2].copy_from_slice(&syn[2..4]);
        r[2..4].copy_from_slice(&syn[0..2]);
        r[4..8].copy_from_slice(&77u32.to_be_bytes());
        let seq = u32::from_be_bytes([syn[4], syn[5], syn[6], syn[7]]);
        r[8..12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
        r[12] = 5 << 4;
        r[13] = flags;
        r
    }

    #[test]
    fn the_syn_checksums_to_zero_with_its_pseudo_header() {
        let (from, to) = (addr("192.168.1.11:40000"), addr("192.168.1.21:80"));
        let s = segment(from, to, 0xdead_beef);
        let mut sum = OnesComplementSum::default();
        sum.add(&from.ip().octets());
        sum.add(&to.ip().octets());
        sum.add(&[0, TCP, 0, 20]);
        sum.add(&s);
        assert_eq!(sum.finish(), 0, "a correct checksum sums to all ones");
        assert_eq!(&s[0..4], &[0x9c, 0x40, 0, 80]);
        assert_eq!(s[13], SYN);
    }

    #[test]
    fn syn_ack_is_listening_and_rst_is_refused() {
        let (from, to) = (addr("192.168.1.11:40000"), addr("192.168.1.21:80"));
        let syn = segment(from, to, u32::MAX);
        let back = |flags| packet(*to.ip(), *from.ip(), &reply(&syn, flags));
        let open = answer(&back(SYN | ACK)).unwrap();
        assert_eq!(open.verdict, Verdict::Listening);
        assert_eq!((open.from, open.to_port), (to, 40000));
        assert_eq!(open.seq, u32::MAX, "the acknowledgement wraps");
        let refused = answer(&back(RST | ACK)).unwrap();
        assert_eq!(refused.verdict, Verdict::Refused);
        assert_eq!(answer(&back(ACK)), None, "a bare ACK says nothing");
        assert_eq!(answer(&back(RST)), None, "an RST without ACK either");
    }

    #[test]
    fn fragments_short_and_foreign_packets_are_not_answers() {
        let syn = segment(addr("10.0.0.1:1"), addr("10.0.0.2:2"), 9);
        let good = packet(
            [10, 0, 0, 2].into(),
            [10, 0, 0, 1].into(),
            &reply(&syn, SYN | ACK),
        );
        assert!(answer(&good).is_some());
        let mut fragment = good.clone();
        fragment[6] = 0x20; // more fragments
        assert_eq!(answer(&fragment), None);
        let mut udp = good.clone();
        udp[9] = 17;
        assert_eq!(answer(&udp), None);
        assert_eq!(answer(&good[..30]), None, "shorter than its total length");
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(answer(&v6), None);
        assert_eq!(answer(&[]), None);
    }

    #[test]
    fn random_bytes_never_panic() {
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
            // Half of them look like IPv4 TCP, to get past the first checks.
            if len % 2 == 0 && bytes.len() > 9 {
                bytes[0] = 0x40 | (bytes[0] & 0x0f);
                bytes[9] = TCP;
                bytes[6] &= 0x80;
                bytes[7] = 0;
            }
            let _ = answer(&bytes);
        }
    }

    /// Run `program` over `packet` as the kernel's classic BPF would, for
    /// the opcodes [`filter`] uses: whether the packet passes.
    fn passes(program: &[Insn], packet: &[u8]) -> bool {
        let (mut a, mut x, mut pc) = (0u32, 0usize, 0usize);
        let byte = |i: usize| packet.get(i).map(|&b| u32::from(b));
        loop {
            let Insn { code, jt, jf, k } = program[pc];
            pc += 1;
            match code {
                0xb1 => match byte(k as usize) {
                    Some(b) => x = 4 * (b as usize & 0x0f),
                    None => return false,
                },
                0x48 => {
                    match (byte(x + k as usize), byte(x + k as usize + 1)) {
                        (Some(h), Some(l)) => a = h << 8 | l,
                        _ => return false,
                    }
                }
                0x50 => match byte(x + k as usize) {
                    Some(b) => a = b,
                    None => return false,
                },
                0x15 => pc += usize::from(if a == k { jt } else { jf }),
                0x45 => pc += usize::from(if a & k != 0 { jt } else { jf }),
                0x54 => a &= k,
                0x06 => return k != 0,
                other => panic!("opcode {other:#x} not modelled"),
            }
        }
    }

    #[test]
    fn the_filter_passes_answers_to_our_port_only() {
        let (from, to) = (addr("10.0.0.1:40000"), addr("10.0.0.2:80"));
        let syn = segment(from, to, 5);
        let back = |flags, port: u16| {
            let mut r = reply(&syn, flags);
            r[2..4].copy_from_slice(&port.to_be_bytes());
            packet(*to.ip(), *from.ip(), &r)
        };
        let program = filter(40000);
        assert!(passes(&program, &back(SYN | ACK, 40000)));
        assert!(passes(&program, &back(RST | ACK, 40000)));
        assert!(!passes(&program, &back(ACK, 40000)), "data, not an answer");
        assert!(!passes(&program, &back(SYN, 40000)), "a SYN to us");
        assert!(!passes(&program, &back(SYN | ACK, 22)), "another port");
        assert!(!passes(&program, &back(RST | ACK, 40001)));
        // Options in the IP header move the TCP header; the filter follows.
        let mut long = back(SYN | ACK, 40000);
        long[0] = 0x46;
        long.splice(20..20, [1, 1, 1, 1]);
        assert!(passes(&program, &long));
    }
}
