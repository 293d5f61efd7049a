//! The kernel's nftables generation: a counter the kernel bumps on every
//! committed nftables transaction in the network namespace, whoever sends
//! it (`NFT_MSG_GETGEN`, `linux/netfilter/nf_tables.h`). While it has not
//! moved since lbdeploy's own last transaction, nothing — no `nft`
//! command, no firewall manager — has touched any table, so the data
//! plane's table is exactly what lbdeploy installed, and checking that
//! costs one netlink request instead of listing four million elements.
//!
//! The request has the framing of every netlink message
//! ([`netlink::request`]); its 4-byte `nfgenmsg` (family, version, resource
//! id) has the layout of a generic-netlink header, all zero here
//! (`AF_UNSPEC`, `NFNETLINK_V0`).

use std::io;

use rtnetlink::sys::{Socket, protocols::NETLINK_NETFILTER};

use crate::agent::sys::netlink::{self, DecodeError};

/// `NFNL_SUBSYS_NFTABLES` (`linux/netfilter/nfnetlink.h`), the high byte
/// of the message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_GETGEN`: ask for the generation.
const NFT_MSG_GETGEN: u16 = 16;
/// `NFT_MSG_NEWGEN`: the answer.
const NFT_MSG_NEWGEN: u16 = 15;
/// `NFTA_GEN_ID` (big-endian u32).
const NFTA_GEN_ID: u16 = 1;

/// The request for the generation, with sequence number `seq`.
pub fn request(seq: u32) -> Vec<u8> {
    let kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN;
    netlink::request(kind, 0, seq, 0, 0, &[])
}

/// The generation in the kernel's answer to [`request`].
///
/// # Errors
/// An error answer (its errno), or an answer without a generation.
pub fn decode(datagram: &[u8]) -> Result<u32, io::Error> {
    let bad = |e: DecodeError| io::Error::new(io::ErrorKind::InvalidData, e);
    for m in netlink::messages(datagram).map_err(bad)? {
        if m.kind == netlink::NLMSG_ERROR {
            let code = netlink::error_code(m.payload).map_err(bad)?;
            return Err(io::Error::from_raw_os_error(-code));
        }
        if m.kind != NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN {
            continue;
        }
        let attrs = m.payload.get(netlink::GENL_HDRLEN..).unwrap_or_default();
        for (ty, value) in netlink::attributes(attrs).map_err(bad)? {
            if let (NFTA_GEN_ID, Ok(id)) = (ty, <[u8; 4]>::try_from(value)) {
                return Ok(u32::from_be_bytes(id));
            }
        }
    }
    Err(bad(DecodeError::Missing("NFTA_GEN_ID")))
}

/// Ask the kernel for the current generation of this network namespace.
///
/// # Errors
/// When the netfilter netlink socket cannot be opened or the kernel's
/// answer cannot be read.
pub fn current() -> io::Result<u32> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.send(&request(1), 0)?;
    let mut buf = Vec::with_capacity(4096);
    socket.recv(&mut buf, 0)?;
    decode(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_bare_getgen() {
        let r = request(7);
        assert_eq!(r.len(), 20);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0a10);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), netlink::NLM_F_REQUEST);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[16..], [0, 0, 0, 0]);
    }

    fn newgen(attrs: &[u8]) -> Vec<u8> {
        let len = 16 + 4 + attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&0x0a0fu16.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn the_answer_gives_the_generation() {
        // NFTA_GEN_ID = 0x01020304, then NFTA_GEN_PROC_PID.
        let attrs = [8, 0, 1, 0, 1, 2, 3, 4, 8, 0, 2, 0, 0, 0, 0, 9];
        assert_eq!(decode(&newgen(&attrs)).unwrap(), 0x0102_0304);
    }

    #[test]
    fn an_answer_without_generation_or_with_an_error_is_refused() {
        assert!(decode(&newgen(&[8, 0, 2, 0, 0, 0, 0, 9])).is_err());
        assert!(decode(&[1, 2, 3]).is_err());
        let mut err = Vec::new();
        err.extend_from_slice(&20u32.to_ne_bytes());
        err.extend_from_slice(&netlink::NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&[0; 10]);
        err.extend_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(decode(&err).unwrap_err().raw_os_error(), Some(1));
    }
}
