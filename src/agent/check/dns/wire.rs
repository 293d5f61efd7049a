//! DNS messages as the `dns` check and the lab's responder exchange them
//! (RFC 1035 §4.1), pure: a message's bytes written, and any message's
//! header, question and answers read back — the authority and additional
//! sections are not read (neither side needs them).
//!
//! Bytes from the network are read within hard bounds: a message of at
//! most [`MAX_MESSAGE`] bytes, every length checked against what is left
//! (nothing is allocated from a count the message claims), names of at
//! most [`MAX_NAME`] bytes with labels of at most [`MAX_LABEL`], and
//! compression pointers (RFC 1035 §4.1.4) that must point backwards, never
//! into the header, at most [`MAX_POINTERS`] of them per name — so a loop
//! of pointers is an error found in a few steps, never a hang. Fuzzed by
//! `fuzz/fuzz_targets/dns_message_decode.rs`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The largest message read: what one UDP datagram can carry (its length
/// field is 16 bits).
pub const MAX_MESSAGE: usize = 65_535;

/// The header's length: ID, flags and the four section counts.
pub const HEADER: usize = 12;

/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;

/// The longest name on the wire, length bytes and the root's zero byte
/// included (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;

/// The most compression pointers followed in one name. Each must point
/// before itself, so they cannot loop; the bound keeps a chain of them
/// short all the same (a real message needs one or two).
pub const MAX_POINTERS: usize = 32;

/// Class IN, the Internet (RFC 1035 §3.2.4).
pub const CLASS_IN: u16 = 1;

/// The TYPE values whose data is read (RFC 1035 §3.2.2, RFC 3596 §2.1).
pub const TYPE_A: u16 = 1;
/// An authoritative name server.
pub const TYPE_NS: u16 = 2;
/// An alias's canonical name.
pub const TYPE_CNAME: u16 = 5;
/// The start of a zone of authority.
pub const TYPE_SOA: u16 = 6;
/// A domain name pointer.
pub const TYPE_PTR: u16 = 12;
/// A mail exchange.
pub const TYPE_MX: u16 = 15;
/// Text strings.
pub const TYPE_TXT: u16 = 16;
/// An IPv6 address.
pub const TYPE_AAAA: u16 = 28;

/// The longest character-string of a TXT record (a length byte's worth).
const MAX_STRING: usize = 255;

/// Why bytes are not a DNS message; each names the byte where reading
/// stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes than a UDP datagram can carry.
    TooLong(usize),
    /// The message ends inside something that starts at this byte.
    Short(usize),
    /// A question count other than 0 or 1 (no server answers several).
    Questions(u16),
    /// A label whose first two bits are 01 or 10 (RFC 6891 §5 retired the
    /// extended labels), at this byte.
    LabelType(usize),
    /// A name longer than [`MAX_NAME`], starting at this byte.
    NameTooLong(usize),
    /// A compression pointer, at this byte, to itself, to a later byte or
    /// into the header.
    BadPointer(usize),
    /// More than [`MAX_POINTERS`] pointers in the name at this byte.
    TooManyPointers(usize),
    /// A record's data, at this byte, whose length does not fit its type.
    DataLength(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "{n} bytes, more than UDP carries"),
            Self::Short(at) => {
                write!(f, "it ends inside what byte {at} starts")
            }
            Self::Questions(n) => write!(f, "{n} questions"),
            Self::LabelType(at) => write!(f, "unknown label type at byte {at}"),
            Self::NameTooLong(at) => {
                write!(f, "the name at byte {at} is over {MAX_NAME} bytes")
            }
            Self::BadPointer(at) => {
                write!(f, "a compression pointer at byte {at} points forward")
            }
            Self::TooManyPointers(at) => write!(
                f,
                "the name at byte {at} follows over {MAX_POINTERS} pointers"
            ),
            Self::DataLength(at) => {
                write!(f, "the record data at byte {at} has a wrong length")
            }
        }
    }
}

// ===== names =====

/// A domain name in its uncompressed wire form: length-prefixed labels and
/// the root's zero byte, at most [`MAX_NAME`] bytes, each label 1–63
/// bytes. Compared without regard to ASCII case (RFC 4343).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(Vec<u8>);

impl Name {
    /// The name of `labels`, or `None` when a label is empty or longer
    /// than [`MAX_LABEL`], or the name longer than [`MAX_NAME`].
    pub fn from_labels<'a>(
        labels: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Self> {
        let mut wire = Vec::new();
        for label in labels {
            if label.is_empty() || label.len() > MAX_LABEL {
                return None;
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        (wire.len() <= MAX_NAME).then_some(Self(wire))
    }

    /// Its labels, leftmost first, without the root's empty one.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let label =
                tail.get(..usize::from(len)).filter(|l| !l.is_empty())?;
            rest = &tail[label.len()..];
            Some(label)
        })
    }

    /// The same name, whatever the case of its ASCII letters.
    pub fn same(&self, other: &Name) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    /// Its wire form.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }
}

/// As a zone file writes it, without the final dot (`.` alone for the
/// root); a dot or a backslash inside a label is escaped with a
/// backslash, and a byte that is not printable ASCII as `\DDD` (RFC 1035
/// §5.1), so any name prints as one line of plain text.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for label in self.labels() {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            for &b in label {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", char::from(b))?,
                    0x21..=0x7e => write!(f, "{}", char::from(b))?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
        }
        if first { f.write_str(".") } else { Ok(()) }
    }
}

/// The name at byte `at` of `msg`, and the byte just after it where it was
/// written (after its first pointer, or after its zero byte).
///
/// # Errors
/// Short, a label of an unknown type, too long, or a bad pointer.
fn read_name(msg: &[u8], at: usize) -> Result<(Name, usize), DecodeError> {
    let mut wire = Vec::with_capacity(32);
    let mut pos = at;
    let mut resume = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos).ok_or(DecodeError::Short(pos))?;
        match len >> 6 {
            0b00 if len == 0 => {
                wire.push(0);
                return Ok((Name(wire), resume.unwrap_or(pos + 1)));
            }
            0b00 => {
                let len = usize::from(len);
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(DecodeError::Short(pos))?;
                // Room for this label and the root's zero byte after it.
                if wire.len() + 1 + len + 1 > MAX_NAME {
                    return Err(DecodeError::NameTooLong(at));
                }
                wire.push(len as u8);
                wire.extend_from_slice(label);
                pos += 1 + len;
            }
            0b11 => {
                let low = *msg.get(pos + 1).ok_or(DecodeError::Short(pos))?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if target >= pos || target < HEADER {
                    return Err(DecodeError::BadPointer(pos));
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DecodeError::TooManyPointers(at));
                }
                resume.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DecodeError::LabelType(pos)),
        }
    }
}

// ===== the message =====

/// The header (RFC 1035 §4.1.1), its counts as the message states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Chosen by the asker, copied into the reply.
    pub id: u16,
    /// A response (QR), not a query.
    pub response: bool,
    /// The kind of query: 0 a standard one.
    pub opcode: u8,
    /// An authoritative answer (AA).
    pub authoritative: bool,
    /// Truncated to fit the datagram (TC).
    pub truncated: bool,
    /// Recursion desired (RD), copied into the reply.
    pub recursion_desired: bool,
    /// Recursion available (RA).
    pub recursion_available: bool,
    /// The response code: 0 NOERROR, 3 NXDOMAIN… ([`rcode_name`]).
    pub rcode: u8,
    /// Entries in the question section.
    pub questions: u16,
    /// Records in the answer section.
    pub answers: u16,
    /// Records in the authority section.
    pub authorities: u16,
    /// Records in the additional section.
    pub additionals: u16,
}

impl Header {
    /// The header at the start of `b`.
    ///
    /// # Errors
    /// Fewer than [`HEADER`] bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let h = b.get(..HEADER).ok_or(DecodeError::Short(0))?;
        let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let flags = word(2);
        Ok(Self {
            id: word(0),
            response: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0x0f) as u8,
            authoritative: flags & 0x0400 != 0,
            truncated: flags & 0x0200 != 0,
            recursion_desired: flags & 0x0100 != 0,
            recursion_available: flags & 0x0080 != 0,
            rcode: (flags & 0x000f) as u8,
            questions: word(4),
            answers: word(6),
            authorities: word(8),
            additionals: word(10),
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let flags = u16::from(self.response) << 15
            | u16::from(self.opcode & 0x0f) << 11
            | u16::from(self.authoritative) << 10
            | u16::from(self.truncated) << 9
            | u16::from(self.recursion_desired) << 8
            | u16::from(self.recursion_available) << 7
            | u16::from(self.rcode & 0x0f);
        for word in [
            self.id,
            flags,
            self.questions,
            self.answers,
            self.authorities,
            self.additionals,
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
}

/// The name of a response code (RFC 1035 §4.1.1, RFC 2136 §2.2), for
/// messages; others by number.
pub fn rcode_name(rcode: u8) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        n => return format!("{n}"),
    };
    name.to_owned()
}

/// A question (RFC 1035 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// The type asked for.
    pub qtype: u16,
    /// The class, [`CLASS_IN`].
    pub qclass: u16,
}

impl Question {
    /// The same question: the name whatever its case, type and class.
    pub fn same(&self, other: &Question) -> bool {
        self.name.same(&other.name)
            && self.qtype == other.qtype
            && self.qclass == other.qclass
    }
}

/// What a record holds, for the types the check reads; others by length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `A`: an IPv4 address.
    A(Ipv4Addr),
    /// `AAAA`: an IPv6 address.
    Aaaa(Ipv6Addr),
    /// `NS`, `CNAME`, `PTR`: a name.
    Name(Name),
    /// `MX`: a preference and an exchange.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The mail exchange's name.
        exchange: Name,
    },
    /// `TXT`: character-strings, each at most 255 bytes.
    Txt(Vec<Vec<u8>>),
    /// `SOA`: the zone's primary server and mailbox, then its serial,
    /// refresh, retry, expire and minimum.
    Soa {
        /// The primary name server.
        mname: Name,
        /// The mailbox of the person responsible.
        rname: Name,
        /// Serial, refresh, retry, expire, minimum.
        numbers: [u32; 5],
    },
    /// Any other type: its data's length, unread.
    Other(u16),
}

/// A resource record (RFC 1035 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner's name.
    pub name: Name,
    /// Its type.
    pub rtype: u16,
    /// Its class.
    pub class: u16,
    /// Seconds it may be cached.
    pub ttl: u32,
    /// Its data.
    pub data: Data,
}

/// A message as read: its header, its question (when it has one) and its
/// answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The one question, when the message has one.
    pub question: Option<Question>,
    /// The answer section, as many records as the header says.
    pub answers: Vec<Record>,
}

/// A big-endian `u16` at byte `at`.
fn u16_at(b: &[u8], at: usize) -> Result<u16, DecodeError> {
    let s = b.get(at..at + 2).ok_or(DecodeError::Short(at))?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

/// A big-endian `u32` at byte `at`.
fn u32_at(b: &[u8], at: usize) -> Result<u32, DecodeError> {
    let s = b.get(at..at + 4).ok_or(DecodeError::Short(at))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The question at byte `at`, and the byte after it.
fn read_question(
    b: &[u8],
    at: usize,
) -> Result<(Question, usize), DecodeError> {
    let (name, pos) = read_name(b, at)?;
    let qtype = u16_at(b, pos)?;
    let qclass = u16_at(b, pos + 2)?;
    Ok((Question { name, qtype, qclass }, pos + 4))
}

/// The record at byte `at`, and the byte after it.
fn read_record(b: &[u8], at: usize) -> Result<(Record, usize), DecodeError> {
    let (name, pos) = read_name(b, at)?;
    let rtype = u16_at(b, pos)?;
    let class = u16_at(b, pos + 2)?;
    let ttl = u32_at(b, pos + 4)?;
    let len = u16_at(b, pos + 8)?;
    let start = pos + 10;
    let end = start + usize::from(len);
    let rdata = b.get(start..end).ok_or(DecodeError::Short(pos))?;
    let data = read_data(b, rtype, start, rdata)?;
    Ok((Record { name, rtype, class, ttl, data }, end))
}

/// The data of a record of type `rtype`: `rdata`, which starts at byte
/// `start` of message `b` (its names may point anywhere before).
fn read_data(
    b: &[u8],
    rtype: u16,
    start: usize,
    rdata: &[u8],
) -> Result<Data, DecodeError> {
    let end = start + rdata.len();
    let wrong = DecodeError::DataLength(start);
    // A name in the data must end exactly where the data does, or where
    // what follows it in the data begins.
    let name_to = |at: usize, until: usize| -> Result<Name, DecodeError> {
        match read_name(b, at)? {
            (name, next) if next == until => Ok(name),
            _ => Err(wrong),
        }
    };
    Ok(match rtype {
        TYPE_A => {
            Data::A(<[u8; 4]>::try_from(rdata).map_err(|_| wrong)?.into())
        }
        TYPE_AAAA => {
            Data::Aaaa(<[u8; 16]>::try_from(rdata).map_err(|_| wrong)?.into())
        }
        TYPE_NS | TYPE_CNAME | TYPE_PTR => Data::Name(name_to(start, end)?),
        TYPE_MX => {
            let preference = u16_at(rdata, 0).map_err(|_| wrong)?;
            Data::Mx { preference, exchange: name_to(start + 2, end)? }
        }
        TYPE_SOA => {
            let (mname, after) = read_name(b, start)?;
            let (rname, after) = read_name(b, after)?;
            if after + 20 != end {
                return Err(wrong);
            }
            let mut numbers = [0u32; 5];
            for (i, n) in numbers.iter_mut().enumerate() {
                *n = u32_at(b, after + 4 * i)?;
            }
            Data::Soa { mname, rname, numbers }
        }
        TYPE_TXT => {
            let mut strings = Vec::new();
            let mut rest = rdata;
            while let Some((&len, tail)) = rest.split_first() {
                let s = tail.get(..usize::from(len)).ok_or(wrong)?;
                strings.push(s.to_vec());
                rest = &tail[s.len()..];
            }
            Data::Txt(strings)
        }
        _ => Data::Other(rdata.len() as u16),
    })
}

/// Read a message: its header, its question and its answers; the other
/// sections and anything after them are left unread.
///
/// # Errors
/// Too long, short, more than one question, or a malformed name or record.
pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
    if b.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLong(b.len()));
    }
    let header = Header::decode(b)?;
    let mut pos = HEADER;
    let question = match header.questions {
        0 => None,
        1 => {
            let (q, next) = read_question(b, pos)?;
            pos = next;
            Some(q)
        }
        n => return Err(DecodeError::Questions(n)),
    };
    // Each record read consumes 11 bytes at least, or fails: the count
    // bounds nothing by itself.
    let mut answers = Vec::new();
    for _ in 0..header.answers {
        let (record, next) = read_record(b, pos)?;
        answers.push(record);
        pos = next;
    }
    Ok(Message { header, question, answers })
}

// ===== writing =====

/// The bytes of a message with `header` (its counts replaced by what is
/// given), `question` and `answers`; names uncompressed. A TXT record
/// writes at most 255 strings of at most 255 bytes each (longer ones cut),
/// and an `Other` record no data.
pub fn encode(
    header: &Header,
    question: Option<&Question>,
    answers: &[Record],
) -> Vec<u8> {
    let header = Header {
        questions: u16::from(question.is_some()),
        answers: answers.len().min(usize::from(u16::MAX)) as u16,
        authorities: 0,
        additionals: 0,
        ..*header
    };
    let mut out = Vec::with_capacity(512);
    header.encode(&mut out);
    if let Some(q) = question {
        out.extend_from_slice(q.name.wire());
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
    }
    for r in answers.iter().take(usize::from(u16::MAX)) {
        out.extend_from_slice(r.name.wire());
        out.extend_from_slice(&r.rtype.to_be_bytes());
        out.extend_from_slice(&r.class.to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        let data = encode_data(&r.data);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// A record's data; at most 255 × 256 bytes, so its length fits 16 bits.
fn encode_data(data: &Data) -> Vec<u8> {
    match data {
        Data::A(a) => a.octets().to_vec(),
        Data::Aaaa(a) => a.octets().to_vec(),
        Data::Name(n) => n.wire().to_vec(),
        Data::Mx { preference, exchange } => {
            let mut d = preference.to_be_bytes().to_vec();
            d.extend_from_slice(exchange.wire());
            d
        }
        Data::Txt(strings) => {
            let mut d = Vec::new();
            for s in strings.iter().take(MAX_STRING) {
                let s = &s[..s.len().min(MAX_STRING)];
                d.push(s.len() as u8);
                d.extend_from_slice(s);
            }
            d
        }
        Data::Soa { mname, rname, numbers } => {
            let mut d = mname.wire().to_vec();
            d.extend_from_slice(rname.wire());
            for n in numbers {
                d.extend_from_slice(&n.to_be_bytes());
            }
            d
        }
        Data::Other(_) => Vec::new(),
    }
}

/// A standard query for `name`, type `qtype`, class IN, with `id` and
/// recursion desired (as keepalived's `DNS_CHECK` sends it).
pub fn query(id: u16, name: &Name, qtype: u16) -> Vec<u8> {
    let header = Header { id, recursion_desired: true, ..Header::default() };
    let question = Question { name: name.clone(), qtype, qclass: CLASS_IN };
    encode(&header, Some(&question), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn name(text: &str) -> Name {
        Name::from_labels(text.split('.').map(str::as_bytes)).unwrap()
    }

    fn root() -> Name {
        Name::from_labels([]).unwrap()
    }

    /// Replies of a real recursive resolver (the build machine's,
    /// 10.255.255.53, 2026-12-06), captured with a Python socket: an A
    /// answer whose owner is a compression pointer to the question
    /// (`c00c`), a NODATA answer (NOERROR, no answers) and NXDOMAIN.
    const RESOLVER_A: &str = "beef818000010001000000000470797069036f72670000\
        010001c00c000100010000003c0004cb007150";
    const RESOLVER_NODATA: &str =
        "beef818000010000000000000470797069036f726700001c0001";
    const RESOLVER_NXDOMAIN: &str =
        "1234818300010000000000000667697468756203636f6d0000010001";
    /// The query that got `RESOLVER_A`.
    const QUERY_A: &str =
        "beef010000010000000000000470797069036f72670000010001";

    #[test]
    fn a_query_encodes_as_a_resolver_reads_it() {
        assert_eq!(query(0xbeef, &name("pypi.org"), TYPE_A), hex(QUERY_A));
        // The root is its zero byte alone.
        let root = query(1, &root(), TYPE_SOA);
        assert_eq!(&root[HEADER..], [0, 0, 6, 0, 1]);
    }

    #[test]
    fn a_real_resolver_reply_decodes_pointer_and_all() {
        let m = decode(&hex(RESOLVER_A)).unwrap();
        assert_eq!(m.header.id, 0xbeef);
        assert!(m.header.response && m.header.recursion_available);
        assert_eq!(m.header.rcode, 0);
        let q = m.question.unwrap();
        assert!(q.name.same(&name("PyPI.org")));
        assert_eq!((q.qtype, q.qclass), (TYPE_A, CLASS_IN));
        assert_eq!(m.answers.len(), 1);
        let a = &m.answers[0];
        assert_eq!(a.name.to_string(), "pypi.org");
        assert_eq!((a.rtype, a.class, a.ttl), (TYPE_A, CLASS_IN, 60));
        assert_eq!(a.data, Data::A(Ipv4Addr::new(203, 0, 113, 80)));

        let m = decode(&hex(RESOLVER_NODATA)).unwrap();
        assert_eq!((m.header.rcode, m.answers.len()), (0, 0));
        assert_eq!(m.question.unwrap().qtype, TYPE_AAAA);
        let m = decode(&hex(RESOLVER_NXDOMAIN)).unwrap();
        assert_eq!(rcode_name(m.header.rcode), "NXDOMAIN");
    }

    /// RFC 1035 §4.1.4's own example of compression: F.ISI.ARPA at byte
    /// 20, FOO.F.ISI.ARPA pointing into it, and the root.
    #[test]
    fn names_follow_pointers_as_rfc_1035_draws_them() {
        let mut m = vec![0u8; 20];
        m.extend(b"\x01F\x03ISI\x04ARPA\x00"); // 20: F.ISI.ARPA
        m.extend(b"\x03FOO\xc0\x14"); // 32: FOO, then → 20
        m.extend(b"\xc0\x1a"); // 38: → 26, ARPA
        m.extend(b"\x00"); // 40: the root
        let (n, next) = read_name(&m, 20).unwrap();
        assert_eq!((n.to_string().as_str(), next), ("F.ISI.ARPA", 32));
        let (n, next) = read_name(&m, 32).unwrap();
        assert_eq!((n.to_string().as_str(), next), ("FOO.F.ISI.ARPA", 38));
        let (n, next) = read_name(&m, 38).unwrap();
        assert_eq!((n.to_string().as_str(), next), ("ARPA", 40));
        let (n, next) = read_name(&m, 40).unwrap();
        assert_eq!((n, next), (root(), 41));
    }

    #[test]
    fn pointer_loops_forward_pointers_and_long_names_are_refused() {
        let mut m = vec![0u8; 12];
        m.extend(b"\xc0\x0c"); // 12 → 12: itself
        assert_eq!(read_name(&m, 12), Err(DecodeError::BadPointer(12)));
        let mut m = vec![0u8; 12];
        // a, then back to a: a loop, cut short by the pointer bound.
        m.extend(b"\x01a\xc0\x0c");
        assert_eq!(read_name(&m, 12), Err(DecodeError::TooManyPointers(12)));
        let mut m = vec![0u8; 12];
        m.extend(b"\xc0\x0e\x00"); // forward
        assert_eq!(read_name(&m, 12), Err(DecodeError::BadPointer(12)));
        let m = b"\xc0\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x02";
        assert_eq!(read_name(m, 12), Err(DecodeError::BadPointer(12)));
        // A chain of pointers, each to the one before: over the bound.
        let mut m = vec![0u8; 12];
        m.push(0);
        for i in 0..=MAX_POINTERS {
            let to = if i == 0 { 12 } else { 13 + 2 * (i - 1) } as u16;
            m.extend((0xc000 | to).to_be_bytes());
        }
        let last = m.len() - 2;
        assert_eq!(
            read_name(&m, last),
            Err(DecodeError::TooManyPointers(last))
        );
        assert!(read_name(&m, last - 2).is_ok(), "within the bound");
        // Five labels of 63: 320 bytes, over 255.
        let mut m = vec![0u8; 12];
        for _ in 0..5 {
            m.push(63);
            m.extend([b'x'; 63]);
        }
        m.push(0);
        assert_eq!(read_name(&m, 12), Err(DecodeError::NameTooLong(12)));
        // Extended (01) and reserved (10) label types.
        for t in [0x40, 0x80] {
            let mut m = vec![0u8; 12];
            m.extend([t, 0]);
            assert_eq!(read_name(&m, 12), Err(DecodeError::LabelType(12)));
        }
    }

    #[test]
    fn every_truncation_of_a_reply_is_an_error_not_a_panic() {
        let full = hex(RESOLVER_A);
        for n in 0..full.len() {
            assert!(decode(&full[..n]).is_err(), "{n} bytes");
        }
        assert!(decode(&vec![0; MAX_MESSAGE + 1]).is_err());
        let mut two = hex(RESOLVER_NODATA);
        two[5] = 2;
        assert_eq!(decode(&two), Err(DecodeError::Questions(2)));
    }

    #[test]
    fn records_of_each_type_read_back_as_written() {
        let owner = name("example.org");
        let record = |rtype, data| Record {
            name: owner.clone(),
            rtype,
            class: CLASS_IN,
            ttl: 300,
            data,
        };
        let answers = vec![
            record(TYPE_A, Data::A(Ipv4Addr::new(192, 0, 2, 1))),
            record(TYPE_AAAA, Data::Aaaa("2001:db8::1".parse().unwrap())),
            record(TYPE_NS, Data::Name(name("ns1.example.org"))),
            record(TYPE_CNAME, Data::Name(name("www.example.net"))),
            record(TYPE_PTR, Data::Name(name("host.example.org"))),
            record(
                TYPE_MX,
                Data::Mx { preference: 10, exchange: name("mx.example.org") },
            ),
            record(TYPE_TXT, Data::Txt(vec![b"v=spf1".to_vec(), Vec::new()])),
            record(
                TYPE_SOA,
                Data::Soa {
                    mname: name("ns1.example.org"),
                    rname: name("hostmaster.example.org"),
                    numbers: [2026120601, 7200, 3600, 1209600, 300],
                },
            ),
        ];
        let header =
            Header { id: 7, response: true, rcode: 0, ..Header::default() };
        let q = Question { name: owner.clone(), qtype: 255, qclass: CLASS_IN };
        let bytes = encode(&header, Some(&q), &answers);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.header.answers, 8);
        assert_eq!(m.question, Some(q));
        assert_eq!(m.answers, answers);
        // An unknown type keeps its length only.
        let other = encode(&header, None, &[record(99, Data::Other(0))]);
        assert_eq!(decode(&other).unwrap().answers[0].data, Data::Other(0));
    }

    /// A compressed reply as a name server writes it: MX and SOA whose
    /// names point into the question and into each other.
    #[test]
    fn compressed_names_inside_record_data() {
        let mut m = Vec::new();
        m.extend(b"\x00\x07\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00");
        m.extend(b"\x07example\x03org\x00\x00\x0f\x00\x01");
        // 29: MX 10 mx.<the question's name>
        m.extend(b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x07");
        m.extend(b"\x00\x0a\x02mx\xc0\x0c");
        // SOA ns1.<name> hostmaster.<name>, then five numbers
        m.extend(b"\xc0\x0c\x00\x06\x00\x01\x00\x00\x01\x2c\x00\x27");
        m.extend(b"\x03ns1\xc0\x0c\x0ahostmaster\xc0\x0c");
        m.extend([0u8; 20]);
        let msg = decode(&m).unwrap();
        assert_eq!(
            msg.answers[0].data,
            Data::Mx { preference: 10, exchange: name("mx.example.org") }
        );
        let Data::Soa { mname, rname, .. } = &msg.answers[1].data else {
            panic!("{:?}", msg.answers[1]);
        };
        assert_eq!(mname.to_string(), "ns1.example.org");
        assert_eq!(rname.to_string(), "hostmaster.example.org");
    }

    #[test]
    fn data_of_the_wrong_length_is_refused() {
        let header = Header { response: true, ..Header::default() };
        let mut bytes = encode(
            &header,
            None,
            &[Record {
                name: root(),
                rtype: TYPE_A,
                class: CLASS_IN,
                ttl: 0,
                data: Data::Aaaa(Ipv6Addr::LOCALHOST),
            }],
        );
        assert_eq!(decode(&bytes), Err(DecodeError::DataLength(23)));
        // A TXT string longer than its record.
        bytes[13..15].copy_from_slice(&TYPE_TXT.to_be_bytes());
        bytes[23] = 16;
        assert_eq!(decode(&bytes), Err(DecodeError::DataLength(23)));
    }

    /// The fuzz target's property in a few thousand seeded inputs: the
    /// resolver's replies with bytes flipped, and random bytes behind a
    /// plausible header, decode or fail, never panic.
    #[test]
    fn flipped_and_random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in [RESOLVER_A, RESOLVER_NODATA, RESOLVER_NXDOMAIN] {
            let seed = hex(seed);
            for _ in 0..2000 {
                let mut b = seed.clone();
                for _ in 0..1 + next() % 4 {
                    let i = next() as usize % b.len();
                    b[i] ^= next() as u8;
                }
                if let Ok(m) = decode(&b) {
                    for r in &m.answers {
                        let _ = r.name.to_string();
                    }
                }
            }
        }
        for len in 0..3000usize {
            let mut b: Vec<u8> =
                (0..HEADER + len % 200).map(|_| next() as u8).collect();
            b[4..6].copy_from_slice(&[0, (len % 2) as u8]);
            b[6..8].copy_from_slice(&[0, (len % 5) as u8]);
            let _ = decode(&b);
        }
    }

    #[test]
    fn names_print_escaped_on_one_line() {
        let odd = Name::from_labels([&b"a.b"[..], b"c\\d", b"\n\xff"]).unwrap();
        assert_eq!(odd.to_string(), "a\\.b.c\\\\d.\\010\\255");
        assert_eq!(root().to_string(), ".");
        assert!(Name::from_labels([&b""[..]]).is_none());
        assert!(Name::from_labels([&[b'x'; 64][..]]).is_none());
        let long = [&[b'x'; 63][..]; 4];
        assert!(Name::from_labels(long).is_none(), "4 × 64 + 1 bytes");
        let ok = [&[b'x'; 63][..], &[b'x'; 63], &[b'x'; 63], &[b'x'; 61]];
        assert_eq!(Name::from_labels(ok).unwrap().wire().len(), MAX_NAME);
    }
}
