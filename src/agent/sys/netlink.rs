//! Netlink framing shared by the agent's own netlink clients (IPVS over
//! generic netlink, nftables' generation counter over nfnetlink): message
//! and attribute headers, encode and decode. Pure, no socket.
//!
//! Every number is from the kernel's uapi headers (`linux/netlink.h`,
//! `linux/genetlink.h`), so a reader can check them line by line. Decoding
//! checks every length before it reads and returns a [`DecodeError`];
//! nothing here panics on what the kernel sends.

/// `sizeof(struct nlmsghdr)` (`linux/netlink.h`).
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `GENL_HDRLEN` (`linux/genetlink.h`).
pub(crate) const GENL_HDRLEN: usize = 4;
/// `NLA_HDRLEN` (`linux/netlink.h`).
pub(crate) const NLA_HDRLEN: usize = 4;

/// `NLM_F_REQUEST`: every message to the kernel carries it.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`: ask for an `NLMSG_ERROR` (0 = success) after a change.
pub(crate) const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`): list everything.
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// `NLMSG_ERROR`: an error code (0 is an acknowledgement).
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLA_F_NESTED` (`linux/netlink.h`): marks a nested attribute.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
/// The attribute type without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// What the kernel sent that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header or a field needs.
    #[error("truncated {what}: {have} bytes, need {need}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A required attribute is absent.
    #[error("missing attribute {0}")]
    Missing(&'static str),
    /// An attribute holds a value this codec does not accept.
    #[error("bad attribute {what}: {detail}")]
    Bad {
        /// The attribute.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// One netlink message as received: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`: a family id, `NLMSG_ERROR` or `NLMSG_DONE`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`: matches the request's.
    pub seq: u32,
    /// Everything after the netlink header.
    pub payload: &'a [u8],
}

/// Split a datagram into its netlink messages.
///
/// # Errors
/// A header or length that runs past the datagram.
pub fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        need("netlink header", buf, NLMSG_HDRLEN)?;
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(DecodeError::Truncated {
                what: "netlink message",
                have: buf.len(),
                need: len.max(NLMSG_HDRLEN),
            });
        }
        out.push(Message {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align(len).min(buf.len())..];
    }
    Ok(out)
}

/// The error code of an `NLMSG_ERROR` (or a `NLMSG_DONE` that carries
/// one): 0 for an acknowledgement, else a negative errno.
///
/// # Errors
/// A payload shorter than the code.
pub(crate) fn error_code(payload: &[u8]) -> Result<i32, DecodeError> {
    need("netlink error", payload, 4)?;
    Ok(i32::from_ne_bytes(payload[0..4].try_into().unwrap()))
}

/// A whole request: netlink header, genl header (`cmd`, `version`) and the
/// already encoded attributes.
pub fn request(
    family: u16,
    flags: u16,
    seq: u32,
    cmd: u8,
    version: u8,
    attrs: &[u8],
) -> Vec<u8> {
    let len = NLMSG_HDRLEN + GENL_HDRLEN + attrs.len();
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&family.to_ne_bytes());
    buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // pid 0: to the kernel
    buf.extend_from_slice(&[cmd, version, 0, 0]);
    buf.extend_from_slice(attrs);
    buf
}

/// Append one attribute (header, payload, padding).
pub fn put(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = NLA_HDRLEN + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len() + (align(len) - len), 0);
}

/// `(type without flags, payload)` of every attribute in `buf`.
///
/// # Errors
/// An attribute whose length runs past `buf`.
pub(crate) fn attributes(
    mut buf: &[u8],
) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    let mut out = Vec::new();
    while buf.len() >= NLA_HDRLEN {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > buf.len() {
            return Err(DecodeError::Truncated {
                what: "netlink attribute",
                have: buf.len(),
                need: len.max(NLA_HDRLEN),
            });
        }
        out.push((ty, &buf[NLA_HDRLEN..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    Ok(out)
}

/// The payload of the first attribute of type `ty`.
pub fn find<'a>(attrs: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(t, _)| *t == ty).map(|(_, p)| *p)
}

/// Netlink's 4-byte alignment of messages and attributes.
pub(crate) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// `Truncated` unless `buf` holds at least `n` bytes.
pub fn need(
    what: &'static str,
    buf: &[u8],
    n: usize,
) -> Result<(), DecodeError> {
    if buf.len() < n {
        return Err(DecodeError::Truncated { what, have: buf.len(), need: n });
    }
    Ok(())
}
