//! The kernel's half of "adverts only from our directors": a classic BPF
//! program for the raw VRRP socket that passes a packet only when its IP
//! source is one of the instance's peers, and drops the rest before the
//! agent is woken. VRRPv2's PASS is plain text on the wire, so anyone on
//! the segment can learn it; the source is what keeps strangers out (a
//! spoofed source on the segment still gets through, which no filter of
//! ours can tell apart). Pure: the socket attaches what this returns.
//!
//! The program reads the source through `SKF_NET_OFF`, the network header
//! whatever the socket's family delivers (an IPv6 raw socket's data starts
//! past the IPv6 header: the filter sees the VRRP message, and an
//! ordinary load could not reach the source), so one shape serves both
//! families: one 32-bit load and compare for an IPv4 source, four for an
//! IPv6 one. The lab shows the kernel doing it for IPv6
//! (`hostile_vrrp::r17_ipv6_strangers_are_dropped_in_the_kernel`).
//!
//! What it lists is the configuration's `accept_from`: the other
//! directors' addresses, or the unicast peers. An IPv6 instance over
//! multicast lists nobody and gets no filter: its peers speak from their
//! link-local addresses, which the inventory does not hold, and the ones
//! gathered from a host at `plan` time are a snapshot — a director whose
//! link-local address changes later (a new MAC, stable-privacy or random
//! address generation, a re-created interface) would be silenced by a
//! filter built from it, and a silenced peer is a second master. Such an
//! instance relies on the checks in user space; unicast peers give it
//! the filter.

use std::net::IpAddr;

use crate::agent::check::syn::Insn;

/// The most sources one filter lists. An instance's peers are its other
/// directors, a handful; the bound keeps every jump within classic BPF's
/// 8-bit offsets (an IPv6 source costs 8 instructions) and the program far
/// below the kernel's `BPF_MAXINSNS` (4096) instructions.
pub(crate) const MAX_SOURCES: usize = 30;

/// `BPF_MAXINSNS` (linux/bpf_common.h): the longest classic program the
/// kernel attaches.
const BPF_MAXINSNS: usize = 4096;

/// The length of the program for `n` sources of `words` 32-bit words
/// each (1 for IPv4, 4 for IPv6): a load and a jump per word, then drop
/// and pass.
const fn program_len(words: usize, n: usize) -> usize {
    2 * words * n + 2
}

// The bound, checked where it is set: every jump (at most the program's
// length less three: from the first block's last word to "pass") fits
// classic BPF's u8 offsets, and the longest program the kernel's limit.
const _: () = assert!(program_len(4, MAX_SOURCES) - 3 <= u8::MAX as usize);
const _: () = assert!(program_len(4, MAX_SOURCES) <= BPF_MAXINSNS);

/// `SKF_NET_OFF` (linux/filter.h): absolute loads from this offset on
/// read the network header.
const NET_OFF: u32 = 0xfff0_0000;
/// `BPF_LD | BPF_W | BPF_ABS`: A = the 32-bit word at k.
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`: keep k bytes (0 drops).
const RET_K: u16 = 0x06;
/// Where the source address starts in an IPv4 and an IPv6 header.
const SRC_V4: u32 = 12;
const SRC_V6: u32 = 8;

/// Why no program can be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    /// More sources than [`MAX_SOURCES`].
    #[error("{0} peers to accept adverts from; at most {MAX_SOURCES}")]
    TooMany(usize),
    /// Sources of both families; an instance speaks one.
    #[error("peers of both address families: {0} and {1}")]
    MixedFamilies(IpAddr, IpAddr),
}

/// The program that passes packets from `sources` only, or `None` when
/// `sources` is empty (anyone is accepted; nothing to attach).
///
/// # Errors
/// Too many sources, or sources of two families.
pub(crate) fn source_filter(
    sources: &[IpAddr],
) -> Result<Option<Vec<Insn>>, FilterError> {
    let Some(&first) = sources.first() else { return Ok(None) };
    if sources.len() > MAX_SOURCES {
        return Err(FilterError::TooMany(sources.len()));
    }
    if let Some(&other) =
        sources.iter().find(|s| s.is_ipv4() != first.is_ipv4())
    {
        return Err(FilterError::MixedFamilies(first, other));
    }
    let op = |code, jt, jf, k| Insn { code, jt, jf, k };
    // One block per source, each comparing the source a word at a time;
    // a word that differs jumps to the next block, the last word of a
    // match jumps to "pass". After the blocks: drop, then pass.
    let (words, base) = match first {
        IpAddr::V4(_) => (1, SRC_V4),
        IpAddr::V6(_) => (4, SRC_V6),
    };
    let block = 2 * words;
    let pass = program_len(words, sources.len()) - 1;
    let mut program = Vec::with_capacity(pass + 1);
    for (b, source) in sources.iter().enumerate() {
        let octets: Vec<u8> = match source {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        for (w, word) in octets.chunks_exact(4).enumerate() {
            let k = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let at = b * block + 2 * w + 1; // this jump's index
            let last = w + 1 == words;
            // `MAX_SOURCES` keeps both offsets within a u8.
            let jt = if last { (pass - at - 1) as u8 } else { 0 };
            let jf = if last { 0 } else { (block - 2 * w - 2) as u8 };
            program.push(op(LD_W_ABS, 0, 0, NET_OFF + base + 4 * w as u32));
            program.push(op(JEQ_K, jt, jf, k));
        }
    }
    program.push(op(RET_K, 0, 0, 0));
    program.push(op(RET_K, 0, 0, u32::MAX));
    Ok(Some(program))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// Run `program` over the IP packet `packet` as the kernel's classic
    /// BPF would for the opcodes [`source_filter`] uses, loads relative to
    /// `SKF_NET_OFF` reading the packet's own header: whether it passes.
    fn passes(program: &[Insn], packet: &[u8]) -> bool {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let Insn { code, jt, jf, k } = program[pc];
            pc += 1;
            match code {
                LD_W_ABS => {
                    let at = (k - NET_OFF) as usize;
                    match packet.get(at..at + 4) {
                        Some(w) => {
                            a = u32::from_be_bytes([w[0], w[1], w[2], w[3]])
                        }
                        None => return false,
                    }
                }
                JEQ_K => pc += usize::from(if a == k { jt } else { jf }),
                RET_K => return k != 0,
                other => panic!("opcode {other:#x} not modelled"),
            }
        }
    }

    fn v4(src: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 255, 112, 0, 0];
        p.extend(src.octets());
        p.extend([224, 0, 0, 18]);
        p.extend([0x21, 51, 100, 1, 1, 1, 0, 0]);
        p
    }

    fn v6(src: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 112, 255];
        p.extend(src.octets());
        p.extend("ff02::12".parse::<Ipv6Addr>().unwrap().octets());
        p.extend([0x31, 51, 100, 1, 0, 100, 0, 0]);
        p
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn the_v4_filter_passes_the_peers_and_drops_everyone_else() {
        let peers = ips(&["10.0.0.12", "10.0.0.13", "10.0.0.14"]);
        let program = source_filter(&peers).unwrap().unwrap();
        for p in ["10.0.0.12", "10.0.0.13", "10.0.0.14"] {
            assert!(passes(&program, &v4(p.parse().unwrap())), "{p}");
        }
        for p in ["10.0.0.100", "10.0.0.11", "0.0.0.0", "12.0.0.10"] {
            assert!(!passes(&program, &v4(p.parse().unwrap())), "{p}");
        }
        assert!(!passes(&program, &v4("10.0.0.12".parse().unwrap())[..14]));
    }

    #[test]
    fn the_v6_filter_compares_all_four_words() {
        let peers = ips(&["fd00::12", "fd00::13"]);
        let program = source_filter(&peers).unwrap().unwrap();
        assert!(passes(&program, &v6("fd00::12".parse().unwrap())));
        assert!(passes(&program, &v6("fd00::13".parse().unwrap())));
        // Each word differing alone is enough to drop.
        for p in ["fd01::12", "fd00:0:1::12", "fd00::1:0:0:12", "fd00::14"] {
            assert!(!passes(&program, &v6(p.parse().unwrap())), "{p}");
        }
    }

    #[test]
    fn the_program_is_a_load_and_a_jump_per_word_then_drop_and_pass() {
        for (peers, words) in [
            (ips(&["10.0.0.12"]), 1),
            (ips(&["10.0.0.12", "10.0.0.13", "10.0.0.14"]), 1),
            (ips(&["fe80::12", "fd00::13"]), 4),
        ] {
            let program = source_filter(&peers).unwrap().unwrap();
            assert_eq!(program.len(), 2 * words * peers.len() + 2);
            let (last, body) = program.split_last().unwrap();
            assert_eq!((last.code, last.k), (RET_K, u32::MAX));
            assert_eq!(
                (body[body.len() - 1].code, body[body.len() - 1].k),
                (RET_K, 0)
            );
            // Every load reads the source in the network header, never
            // the packet's data (the VRRP message, for IPv6).
            let base = if words == 1 { SRC_V4 } else { SRC_V6 };
            for load in body.iter().filter(|i| i.code == LD_W_ABS) {
                assert!(
                    (NET_OFF + base..NET_OFF + base + 16).contains(&load.k)
                );
            }
        }
    }

    #[test]
    fn the_bound_holds_and_reaches_every_jump() {
        assert_eq!(source_filter(&[]), Ok(None));
        let many: Vec<IpAddr> = (1..=MAX_SOURCES as u16)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        let program = source_filter(&many).unwrap().unwrap();
        assert!(passes(&program, &v6("fd00::1".parse().unwrap())));
        let last = format!("fd00::{:x}", MAX_SOURCES);
        assert!(passes(&program, &v6(last.parse().unwrap())));
        assert!(!passes(&program, &v6("fd00::ffff".parse().unwrap())));
        let mut more = many.clone();
        more.push("fd00::ffff".parse().unwrap());
        assert_eq!(
            source_filter(&more),
            Err(FilterError::TooMany(MAX_SOURCES + 1))
        );
        assert!(matches!(
            source_filter(&ips(&["10.0.0.1", "fd00::1"])),
            Err(FilterError::MixedFamilies(..))
        ));
    }
}
