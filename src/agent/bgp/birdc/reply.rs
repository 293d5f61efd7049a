//! The reply side of BIRD 2's control socket: how the bytes BIRD writes
//! are framed into replies ([`decode`], and the [`Decoder`] the client
//! reads the socket with) and what the agent's requests make of their
//! replies (the `parse_*` functions). All of it is pure and bounded, apart
//! from the socket, so the unit tests below feed it bytes captured from a
//! real bird and the fuzz target `birdc_reply_decode` feeds it anything;
//! sending requests, timeouts and the socket's errors belong to the
//! client in the parent module.
//!
//! # The protocol
//!
//! As BIRD's `nest/cli.c` and `doc/reply_codes` describe it, checked byte
//! for byte against bird 2.0.12 (the transcripts in the tests):
//!
//! ```text
//! <- 0001 BIRD 2.0.12 ready.            the greeting: a one-line reply
//! -> show protocols                     a request: one line
//! <- 2002-Name       Proto      Table   DDDD-text: more lines follow
//! <- 1002-device1    Device     ---
//! <-  vip        Static     master4     " text": the code of the line before
//! <- 0000                               DDDD text: the reply's last line
//! ```
//!
//! Codes: 0xxx done, 1xxx table entries, 2xxx table headings, 8xxx
//! run-time errors, 9xxx parse errors (of the request, or a command's
//! refusal: BIRD runs a request through its configuration parser). A line
//! starting with `+` is a log message BIRD pushes to a client that asked
//! for `echo`: it belongs to no reply, and this client, which never asks,
//! skips any.
//!
//! # Bounds
//!
//! Whatever holds the socket, reading it cannot make the agent allocate
//! without end: a line is at most [`LINE_MAX`] bytes and a reply costs at
//! most [`REPLY_MAX`] bytes to hold. A reply's text is cleaned of control
//! characters before anyone sees it.

use std::net::IpAddr;
use std::time::Duration;
use std::{fmt, iter, mem};

/// The longest reply line read, in bytes, newline excluded. BIRD formats
/// every reply line in a 512-byte buffer (`CLI_LINE_SIZE`, nest/cli.h)
/// and every `+` log line in a 1024-byte one (`LOG_BUFFER_SIZE`), in 2.0.12
/// as in 2.17; `birdc`'s own read buffer is 4096 bytes. A longer line is
/// not BIRD speaking.
pub const LINE_MAX: usize = 4096;

/// The most a reply may cost to hold, in bytes: every line's text plus
/// what holding a line costs besides (some 32 bytes), so a flood of short
/// lines is bounded as surely as a few long ones. The largest reply the
/// agent asks for is the routes exported to one BGP session, its VIPs at
/// one or two lines of about 60 bytes each: 4 MiB is tens of thousands.
pub const REPLY_MAX: usize = 4 << 20;

/// What holding one line costs besides its text.
const LINE_COST: usize = mem::size_of::<Line>();

/// The reply codes the agent reads (BIRD's `doc/reply_codes`).
mod code {
    /// The greeting.
    pub(super) const WELCOME: u16 = 1;
    /// `configure`: the new configuration is in force.
    pub(super) const RECONFIGURED: u16 = 3;
    /// `configure`: protocols the change touches are restarting.
    pub(super) const IN_PROGRESS: u16 = 4;
    /// `configure`: queued behind a reconfiguration still in progress.
    pub(super) const QUEUED: u16 = 5;
    /// `show protocols`: one protocol.
    pub(super) const PROTOCOL_LIST: u16 = 1002;
    /// `show route`: routes, next hops and table headings alike.
    pub(super) const ROUTE_LIST: u16 = 1007;
    /// `show bfd sessions`: sessions, headings and protocol names alike.
    pub(super) const BFD_SESSIONS: u16 = 1020;
    /// The first error code: 8xxx run-time, 9xxx parse errors.
    pub(super) const FIRST_ERROR: u16 = 8000;
    /// A request BIRD's parser refused, or a command's own refusal.
    pub(super) const PARSE_ERROR: u16 = 9001;
}

/// BIRD's answer to `show route export P` when P has no channel exporting
/// now (a BGP session not established, a protocol that exports nothing):
/// it exports nothing (`cf_error` in nest/rt-show.c).
const NO_VALID_TABLES: &str = "No valid tables";

/// BIRD's answer to `show bfd sessions` when no BFD protocol is up (none
/// configured, or disabled; nest/proto.c): there are no sessions.
const NO_BFD: &str = "There is no BFD protocol running";

// ===== errors =====

/// What is wrong with a reply, or what BIRD refused, before the socket and
/// the request are known (the client wraps it with both).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// BIRD's own error: an 8xxx or 9xxx reply, with its text (for
    /// `configure`, `FILE:LINE:COLUMN message`).
    #[error("{code:04} {text}")]
    Bird {
        /// The code, 8000–9999.
        code: u16,
        /// BIRD's message.
        text: String,
    },
    /// A line longer than [`LINE_MAX`].
    #[error("a reply line longer than {LINE_MAX} bytes")]
    LineTooLong,
    /// A reply costing more than [`REPLY_MAX`] to hold.
    #[error("a reply larger than {REPLY_MAX} bytes")]
    ReplyTooLong,
    /// A line that is none of BIRD's shapes (or a continuation with
    /// nothing to continue).
    #[error("not a reply line: {0:?}")]
    Malformed(String),
    /// Bytes that end before the reply does.
    #[error("the reply ends before its last line")]
    Truncated,
    /// A well-formed line the request's reply should not hold.
    #[error("unexpected reply {code:04} {text:?}")]
    Unexpected {
        /// Its code.
        code: u16,
        /// Its text.
        text: String,
    },
}

// ===== replies =====

/// One line of a reply: its code (a continuation line's is that of the
/// line it continues) and its text after the code, cleaned (see [`clean`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// The reply code, 0–9999.
    code: u16,
    /// The text, free of control characters.
    text: String,
}

impl Line {
    /// This line, as something its request's reply should not hold.
    fn unexpected(&self) -> ReplyError {
        ReplyError::Unexpected { code: self.code, text: self.text.clone() }
    }
}

/// One complete reply: one line or more, the last one final. Only a
/// [`Decoder`] makes one ([`decode`]'s, or the client's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    lines: Vec<Line>,
}

impl Reply {
    /// The final line's code: 0xxx for success, 8xxx/9xxx for an error.
    fn code(&self) -> u16 {
        self.last().code
    }

    /// BIRD's refusal, when the final code is an error (8xxx, 9xxx).
    ///
    /// # Errors
    /// [`ReplyError::Bird`] with the final line's code and text.
    fn refusal(&self) -> Result<(), ReplyError> {
        let last = self.last();
        if last.code < code::FIRST_ERROR {
            return Ok(());
        }
        Err(ReplyError::Bird { code: last.code, text: last.text.clone() })
    }

    fn last(&self) -> &Line {
        self.lines.last().expect("a reply ends with its final line")
    }

    /// Whether this is the one-line reply `code text`.
    fn is(&self, code: u16, text: &str) -> bool {
        self.code() == code && self.last().text == text
    }

    /// The lines with `code`.
    fn entries(&self, code: u16) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(move |line| line.code == code)
    }
}

/// Gathers one reply from its lines: the framing, apart from what any
/// request makes of the reply. After an error it is of no further use
/// (nor is the stream it read).
#[derive(Debug, Default)]
pub(super) struct Decoder {
    lines: Vec<Line>,
    /// What the lines read so far cost, against [`REPLY_MAX`].
    cost: usize,
    /// The code a continuation line stands for: that of the line before,
    /// while that line said more follows.
    open: Option<u16>,
}

impl Decoder {
    /// Take one line, without its newline; the reply once it is complete.
    pub(super) fn push(
        &mut self,
        raw: &[u8],
    ) -> Result<Option<Reply>, ReplyError> {
        if raw.len() > LINE_MAX {
            return Err(ReplyError::LineTooLong);
        }
        self.cost += raw.len() + LINE_COST;
        if self.cost > REPLY_MAX {
            return Err(ReplyError::ReplyTooLong);
        }
        let (code, more, text) = match (raw.first(), self.open) {
            (Some(b'+'), _) => return Ok(None),
            (Some(b' '), Some(code)) => (code, true, &raw[1..]),
            _ => coded(raw).ok_or_else(|| ReplyError::Malformed(clean(raw)))?,
        };
        self.lines.push(Line { code, text: clean(text) });
        self.open = more.then_some(code);
        if more {
            return Ok(None);
        }
        self.cost = 0;
        Ok(Some(Reply { lines: mem::take(&mut self.lines) }))
    }
}

/// Split `DDDD-text` or `DDDD text` into its code, whether more lines
/// follow, and its text.
fn coded(raw: &[u8]) -> Option<(u16, bool, &[u8])> {
    let (digits, rest) = raw.split_at_checked(4)?;
    let (&separator, text) = rest.split_first()?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0'));
    match separator {
        b'-' => Some((code, true, text)),
        b' ' => Some((code, false, text)),
        _ => None,
    }
}

/// BIRD's bytes as text fit for logs and the agent's status: invalid
/// UTF-8 replaced, a tab (BIRD indents a route's next hops with one) made
/// a space, any other control character U+FFFD, so nothing that holds the
/// socket can move a terminal's cursor or forge a log line.
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

/// The first reply in `bytes` and the bytes after it, framed as
/// the client frames what it reads from the socket (for bytes
/// already in memory: tests, fuzzing).
///
/// # Errors
/// [`ReplyError::Truncated`] when the bytes end before the reply does,
/// else any framing error of [`ReplyError`].
pub fn decode(bytes: &[u8]) -> Result<(Reply, &[u8]), ReplyError> {
    let mut decoder = Decoder::default();
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(reply) = decoder.push(line)? {
            return Ok((reply, rest));
        }
    }
    Err(if rest.len() > LINE_MAX {
        ReplyError::LineTooLong
    } else {
        ReplyError::Truncated
    })
}

// ===== what the requests make of their replies =====

/// What `configure` did with a file BIRD could read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configured {
    /// `0003 Reconfigured`: the new configuration is in force.
    Done,
    /// `0004 Reconfiguration in progress` (protocols the change touches are
    /// restarting) or `0005` (queued behind such a reconfiguration): in
    /// force once they are up.
    InProgress,
}

/// One protocol, as a line of `show protocols` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Its name in the configuration (`vip`, `device1`).
    pub name: String,
    /// Its kind: `BGP`, `Static`, `BFD`, `Device`, `Kernel`…
    pub proto: String,
    /// Its main table, `---` when it has none (BGP and BFD show none).
    pub table: String,
    /// `up`, `down`, `start`, `stop` or `flush` (nest/proto.c).
    pub state: String,
    /// When it entered that state, in BIRD's `timeformat protocol`.
    pub since: String,
    /// The protocol's own status, often empty; for BGP the session's state
    /// (`Established`, `Active`, `Connect`, `Idle`…) then, after spaces,
    /// its last error (`Socket: No route to host`).
    pub info: String,
}

/// Whether a BGP protocol's `info` says its session is up: BIRD puts the
/// session's BGP state first (`Established`, `Active`, `Connect`…), its
/// last error after. The one place BIRD's word is read: the agent's
/// status carries the answer ([`Session::established`]).
///
/// [`Session::established`]: crate::agent::bgp::speaker::Session::established
pub fn bgp_established(info: &str) -> bool {
    info.split_whitespace().next() == Some("Established")
}

/// A network prefix BIRD shows, such as `10.20.0.100/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl Prefix {
    /// `ADDR/LEN`, the length within the family's bits.
    fn parse(text: &str) -> Option<Prefix> {
        let (addr, len) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let len = u8::try_from(digits(len)?).ok()?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        (len <= bits).then_some(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One BFD session, as a line of `show bfd sessions` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdSession {
    /// The neighbour's address.
    pub peer: IpAddr,
    /// The interface, `---` when BIRD does not know it.
    pub interface: String,
    /// `Up`, `Down`, `Init` or `AdminDown` (RFC 5880 §6.2).
    pub state: String,
    /// When it entered that state, in BIRD's `timeformat protocol`.
    pub since: String,
    /// The transmit interval in use (zero before the first packet).
    pub interval: Duration,
    /// The detection time: silence this long brings the session down.
    pub timeout: Duration,
}

/// Whether BIRD greeted a new connection (`0001 BIRD 2.0.12 ready.`).
///
/// # Errors
/// [`ReplyError::Unexpected`] for any other first reply: what answers on
/// the socket is not a bird ready for requests.
pub fn parse_greeting(reply: &Reply) -> Result<(), ReplyError> {
    if reply.code() != code::WELCOME {
        return Err(reply.last().unexpected());
    }
    Ok(())
}

/// What `configure` did.
///
/// # Errors
/// [`ReplyError::Bird`] `8002` with `FILE:LINE:COLUMN message` when BIRD
/// could not read the file (it keeps the configuration it has);
/// [`ReplyError::Unexpected`] for any other outcome (such as `0006`,
/// shutting down).
pub fn parse_configure(reply: &Reply) -> Result<Configured, ReplyError> {
    reply.refusal()?;
    match reply.code() {
        code::RECONFIGURED => Ok(Configured::Done),
        code::IN_PROGRESS | code::QUEUED => Ok(Configured::InProgress),
        _ => Err(reply.last().unexpected()),
    }
}

/// Every protocol `show protocols` lists.
///
/// # Errors
/// BIRD's refusal, or a protocol line of another shape.
pub fn parse_protocols(reply: &Reply) -> Result<Vec<Protocol>, ReplyError> {
    reply.refusal()?;
    reply
        .entries(code::PROTOCOL_LIST)
        .map(|line| protocol(&line.text).ok_or_else(|| line.unexpected()))
        .collect()
}

/// One `show protocols` line: `%-10s %-10s %-10s %-6s %-12s  %s` (name,
/// protocol, table, state, since, info; nest/proto.c). The first four
/// never hold a space; `since` may (`timeformat protocol iso long`), so
/// the two spaces after it are what ends it.
fn protocol(text: &str) -> Option<Protocol> {
    let ([name, proto, table, state], rest) = fields(text)?;
    let (since, info) = rest.split_once("  ").unwrap_or((rest, ""));
    Some(Protocol {
        name: name.to_owned(),
        proto: proto.to_owned(),
        table: table.to_owned(),
        state: state.to_owned(),
        since: nonempty(since.trim_end())?,
        info: info.trim().to_owned(),
    })
}

/// The prefixes `show route export P` lists: what P's export filter lets
/// through now, each network once. A protocol with no channel exporting
/// (a BGP session not established) exports nothing: BIRD says `9001 No
/// valid tables`, read as no prefix.
///
/// # Errors
/// BIRD's refusal (an unknown protocol is a `9001 syntax error`), or a
/// route whose network is not an IP prefix.
pub fn parse_exported(reply: &Reply) -> Result<Vec<Prefix>, ReplyError> {
    if reply.is(code::PARSE_ERROR, NO_VALID_TABLES) {
        return Ok(Vec::new());
    }
    reply.refusal()?;
    let mut prefixes = Vec::new();
    for line in reply.entries(code::ROUTE_LIST) {
        if let Some(network) = route_network(&line.text) {
            let prefix = Prefix::parse(network);
            prefixes.push(prefix.ok_or_else(|| line.unexpected())?);
        }
    }
    Ok(prefixes)
}

/// The network a `show route` line starts a route for: none for a table's
/// heading (`Table master4:`), the empty line between tables, and the
/// indented lines (a route's next hops, `via …`; the other routes of the
/// same network, their network column blank).
fn route_network(text: &str) -> Option<&str> {
    let heading = text.starts_with("Table ") && text.ends_with(':');
    if heading || text.starts_with(' ') {
        return None;
    }
    text.split_whitespace().next()
}

/// The sessions `show bfd sessions` lists. No BFD protocol running means
/// no sessions: BIRD says `9001 There is no BFD protocol running`, read as
/// an empty list.
///
/// # Errors
/// BIRD's refusal, or a session line of another shape.
pub fn parse_bfd_sessions(
    reply: &Reply,
) -> Result<Vec<BfdSession>, ReplyError> {
    if reply.is(code::PARSE_ERROR, NO_BFD) {
        return Ok(Vec::new());
    }
    reply.refusal()?;
    reply
        .entries(code::BFD_SESSIONS)
        .filter(|line| !bfd_heading(&line.text))
        .map(|line| bfd_session(&line.text).ok_or_else(|| line.unexpected()))
        .collect()
}

/// Whether a 1020 line heads sessions rather than being one: the BFD
/// protocol's name (`bfd1:`, `bfd1: is not up`) and the column heading
/// (proto/bfd/bfd.c prints all three under the sessions' code).
fn bfd_heading(text: &str) -> bool {
    text.ends_with(':')
        || text.ends_with(": is not up")
        || text.starts_with("IP address ")
}

/// One session line: `%-25I %-10s %-10s %-12s  %7t  %7t` (address,
/// interface, state, since, interval, timeout). `since` may hold a space,
/// so the two durations are taken from the end.
fn bfd_session(text: &str) -> Option<BfdSession> {
    let ([peer, interface, state], rest) = fields(text)?;
    let (rest, timeout) = rest.trim_end().rsplit_once(char::is_whitespace)?;
    let (since, interval) = rest.trim_end().rsplit_once(char::is_whitespace)?;
    Some(BfdSession {
        peer: peer.parse().ok()?,
        interface: interface.to_owned(),
        state: state.to_owned(),
        since: nonempty(since.trim())?,
        interval: seconds(interval)?,
        timeout: seconds(timeout)?,
    })
}

/// The first `N` whitespace-separated words of `text` and the rest after
/// them, its leading whitespace removed; `None` when there are fewer.
fn fields<const N: usize>(text: &str) -> Option<([&str; N], &str)> {
    let mut rest = text.trim_start();
    let mut words = [""; N];
    for word in &mut words {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        (*word, rest) = (&rest[..end], rest[end..].trim_start());
    }
    Some((words, rest))
}

fn nonempty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// A decimal number of ASCII digits only (`str::parse` also takes `+`).
fn digits(text: &str) -> Option<u64> {
    let all = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    all.then(|| text.parse().ok()).flatten()
}

/// A duration as BIRD prints one (`%t`: seconds, a point, the fraction).
fn seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = fraction
        .bytes()
        .chain(iter::repeat(b'0'))
        .take(9)
        .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    Some(Duration::new(digits(whole)?, nanos))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Transcripts: the bytes bird 2.0.12 (Debian's, /usr/sbin/bird) wrote
    // on its control socket, read raw with a few lines of Python (connect,
    // send the request and its newline, print every byte received) and
    // checked against `birdc -s SOCK REQUEST`. Two birds in scratch network
    // namespaces joined by a veth pair: A (AS 65001, 10.77.0.1) with
    // `protocol static vip` (10.20.0.100–101/32 blackhole, 10.20.0.102/32
    // via 10.77.0.2), BFD (100 ms × 3) and `bgp r1` (exporting vip, BFD on)
    // to B (AS 65000, 10.77.0.2), and `bgp r2` to 10.77.0.9, nobody; B with
    // BFD and `bgp a1` back to A. PROTOCOLS_ISO_LONG, NO_BFD,
    // CONFIGURE_CHECK and PIPELINED come from a third bird, in the root
    // namespace, with `protocol device`, `static vip` and `timeformat
    // protocol iso long` only.

    /// Connecting to bird A (the client's tests greet with it too).
    pub(crate) const GREETING: &str = "0001 BIRD 2.0.12 ready.\n";

    /// A's `show protocols`: r1 established, r2 trying a neighbour that
    /// is not there.
    const PROTOCOLS: &str = concat!(
        "2002-Name       Proto      Table      State  Since         Info\n",
        "1002-device1    Device     ---        up     21:49:23.417  \n",
        " vip        Static     master4    up     21:51:17.352  \n",
        " bfd1       BFD        ---        up     21:50:54.662  \n",
        " r1         BGP        ---        up     21:55:56.669  Established   \n",
        " r2         BGP        ---        start  21:50:11.879  Active        \
         Socket: No route to host\n",
        "0000 \n",
    );

    /// A's `show protocols` after `disable r1`.
    const PROTOCOLS_R1_DISABLED: &str = concat!(
        "2002-Name       Proto      Table      State  Since         Info\n",
        "1002-device1    Device     ---        up     21:49:23.417  \n",
        " vip        Static     master4    up     21:56:32.186  \n",
        " bfd1       BFD        ---        up     21:50:54.662  \n",
        " r1         BGP        ---        down   21:56:34.370  \n",
        " r2         BGP        ---        start  21:50:11.879  Connect       \
         Socket: No route to host\n",
        "0000 \n",
    );

    /// B's `show protocols` once A disabled r1.
    const PROTOCOLS_PEER_SHUT: &str = concat!(
        "2002-Name       Proto      Table      State  Since         Info\n",
        "1002-device1    Device     ---        up     21:55:55.283  \n",
        " bfd1       BFD        ---        up     21:55:55.283  \n",
        " a1         BGP        ---        start  21:56:34.369  Active        \
         Socket: Connection reset by peer\n",
        "0000 \n",
    );

    /// `show protocols` under `timeformat protocol iso long;`.
    const PROTOCOLS_ISO_LONG: &str = concat!(
        "2002-Name       Proto      Table      State  Since         Info\n",
        "1002-device1    Device     ---        up     2026-12-06 21:57:55  \n",
        " vip        Static     master4    up     2026-12-06 21:57:55  \n",
        "0000 \n",
    );

    /// A's `show route export r1`.
    const EXPORT_R1: &str = concat!(
        "1007-Table master4:\n",
        " 10.20.0.100/32       blackhole [vip 21:51:17.352] * (200)\n",
        " 10.20.0.102/32       unicast [vip 21:51:17.352] * (200)\n",
        " \tvia 10.77.0.2 on va\n",
        " 10.20.0.101/32       blackhole [vip 21:51:17.352] * (200)\n",
        "0000 \n",
    );

    /// A's `show route export r2`, whose session is not established (the
    /// same for `vip`, a protocol exported nothing).
    const EXPORT_DOWN: &str = "9001 No valid tables\n";

    /// A's `show route export nosuch`.
    const EXPORT_UNKNOWN: &str = "9001 syntax error, unexpected \
        CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TABLE\n";

    /// A's `show bfd sessions`, the session to B up.
    const BFD_UP: &str = concat!(
        "1020-bfd1:\n",
        " IP address                Interface  State      Since         \
         Interval  Timeout\n",
        " 10.77.0.2                 va         Up         21:55:55.838    \
         0.100    0.300\n",
        "0000 \n",
    );

    /// B's `show bfd sessions` once A disabled r1 (and with it its
    /// session).
    const BFD_DOWN: &str = concat!(
        "1020-bfd1:\n",
        " IP address                Interface  State      Since         \
         Interval  Timeout\n",
        " 10.77.0.1                 vb         Down       21:56:34.327    \
         1.000    0.000\n",
        "0000 \n",
    );

    /// A's `show bfd sessions` with r1 disabled: no session asked for.
    const BFD_NONE: &str = concat!(
        "1020-bfd1:\n",
        " IP address                Interface  State      Since         \
         Interval  Timeout\n",
        "0000 \n",
    );

    /// `show bfd sessions` with no BFD protocol configured (the same with
    /// bfd1 disabled).
    const NO_BFD: &str = "9001 There is no BFD protocol running\n";

    /// A's `configure`, the file unchanged or with a route added.
    const CONFIGURE_DONE: &str = concat!(
        "0002-Reading configuration from /tmp/birdc-scratch/a.conf\n",
        "0003 Reconfigured\n",
    );

    /// A's `configure` with r2 removed from the file.
    const CONFIGURE_IN_PROGRESS: &str = concat!(
        "0002-Reading configuration from /tmp/birdc-scratch/a.conf\n",
        "0004 Reconfiguration in progress\n",
    );

    /// A's `configure` with a `;` missing.
    const CONFIGURE_SYNTAX_ERROR: &str = concat!(
        "0002-Reading configuration from /tmp/birdc-scratch/a.conf\n",
        "8002 /tmp/birdc-scratch/a.conf:16:50 syntax error, unexpected '}'\n",
    );

    /// A's `configure "/nonexistent/bird.conf"`.
    const CONFIGURE_NO_FILE: &str = concat!(
        "0002-Reading configuration from /nonexistent/bird.conf\n",
        "8002 /nonexistent/bird.conf: No such file or directory\n",
    );

    /// `configure check`, which is not `configure`.
    const CONFIGURE_CHECK: &str = concat!(
        "0002-Reading configuration from bird.conf\n",
        "0020 Configuration OK\n",
    );

    /// `show protocols 'vip'` on a connection that asked for `echo all`,
    /// after another one disabled and enabled vip: log lines first.
    const ECHOED: &str = concat!(
        "+Disabling protocol vip\n",
        "+Enabling protocol vip\n",
        "+r1: Invalid NEXT_HOP attribute - neighbor address 10.77.0.2\n",
        "+r1: Invalid route 10.20.0.102/32 withdrawn\n",
        "2002-Name       Proto      Table      State  Since         Info\n",
        "1002-vip        Static     master4    up     21:57:08.073  \n",
        "0000 \n",
    );

    /// `show status\nshow protocols vip\n` sent in one write: two replies
    /// back to back.
    const PIPELINED: &str = concat!(
        "1000-BIRD 2.0.12\n",
        "1011-Router ID is 10.0.0.1\n",
        " Hostname is vm\n",
        " Current server time is 2026-12-06 21:58:04.366\n",
        " Last reboot on 2026-12-06 21:57:55.481\n",
        " Last reconfiguration on 2026-12-06 21:57:55.481\n",
        "0013 Daemon is up and running\n",
        "2002-Name       Proto      Table      State  Since         Info\n",
        "1002-vip        Static     master4    up     2026-12-06 21:57:55  \n",
        "0000 \n",
    );

    /// The one reply `bytes` hold.
    fn reply(bytes: impl AsRef<[u8]>) -> Reply {
        let (reply, rest) = decode(bytes.as_ref()).unwrap();
        assert!(rest.is_empty(), "more than one reply");
        reply
    }

    fn codes(reply: &Reply) -> Vec<u16> {
        reply.lines.iter().map(|line| line.code).collect()
    }

    fn bird(code: u16, text: &str) -> ReplyError {
        ReplyError::Bird { code, text: text.to_owned() }
    }

    // ===== framing =====

    #[test]
    fn a_reply_ends_at_its_first_final_line() {
        let greeting = reply(GREETING);
        assert_eq!(greeting.code(), 1);
        assert_eq!(greeting.lines[0].text, "BIRD 2.0.12 ready.");

        let protocols = reply(PROTOCOLS);
        assert_eq!(codes(&protocols), [2002, 1002, 1002, 1002, 1002, 1002, 0]);
        assert_eq!(protocols.lines[2].text.split(' ').next(), Some("vip"));
        assert_eq!(protocols.lines[6].text, "");

        let (status, rest) = decode(PIPELINED.as_bytes()).unwrap();
        assert_eq!(codes(&status), [1000, 1011, 1011, 1011, 1011, 1011, 13]);
        assert_eq!(status.lines[2].text, "Hostname is vm");
        let (vip, rest) = decode(rest).unwrap();
        assert_eq!(codes(&vip), [2002, 1002, 0]);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_continuation_carries_the_code_of_the_line_before() {
        // Not the reply's first code: the heading's 2002, then the rows'.
        let protocols = reply(PROTOCOLS);
        assert_eq!(codes(&protocols)[..3], [2002, 1002, 1002]);
        assert!(protocols.lines[2].text.starts_with("vip "));
    }

    #[test]
    fn only_birds_greeting_is_a_greeting() {
        assert_eq!(parse_greeting(&reply(GREETING)), Ok(()));
        // Not captured: any other first reply, here one of BIRD's codes.
        let restricted = reply("0016 Access restricted\n");
        assert_eq!(
            parse_greeting(&restricted),
            Err(ReplyError::Unexpected {
                code: 16,
                text: "Access restricted".to_owned()
            })
        );
        assert!(parse_greeting(&reply(PROTOCOLS)).is_err());
    }

    #[test]
    fn log_lines_belong_to_no_reply() {
        let echoed = reply(ECHOED);
        assert_eq!(codes(&echoed), [2002, 1002, 0]);
        assert!(echoed.lines.iter().all(|line| !line.text.contains("r1")));
    }

    #[test]
    fn what_is_not_a_reply_line_is_refused() {
        let malformed = |text: &str| match decode(text.as_bytes()) {
            Err(ReplyError::Malformed(line)) => line,
            other => panic!("{text:?}: {other:?}"),
        };
        // A continuation with nothing before it: a reply's first line.
        assert_eq!(malformed(" vip\n0000 \n"), " vip");
        assert_eq!(malformed("\n"), "");
        assert_eq!(malformed("0000\n"), "0000");
        assert_eq!(malformed("12a4 x\n"), "12a4 x");
        assert_eq!(malformed("0001:x\n"), "0001:x");
        assert_eq!(malformed("\x1b[2J0000 \n"), "\u{fffd}[2J0000 ");
        assert_eq!(decode(b""), Err(ReplyError::Truncated));
        assert_eq!(decode(b"1002-x\n"), Err(ReplyError::Truncated));
        assert_eq!(decode(b"0000 no newline"), Err(ReplyError::Truncated));
    }

    #[test]
    fn text_is_cleaned_of_control_characters_and_bad_utf8() {
        let route = reply(EXPORT_R1);
        assert_eq!(route.lines[3].text, " via 10.77.0.2 on va");
        let hostile = reply(b"0000 a\x1b]0;x\x07b\xffc\x7f\r\n");
        assert_eq!(
            hostile.lines[0].text,
            "a\u{fffd}]0;x\u{fffd}b\u{fffd}c\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn a_line_over_the_bound_is_refused_before_it_is_kept() {
        let mut line = vec![b'x'; LINE_MAX - 5];
        line.splice(0..0, *b"0000 ");
        line.push(b'\n');
        assert_eq!(reply(&line).lines[0].text.len(), LINE_MAX - 5);

        let mut long = vec![b'x'; LINE_MAX + 1];
        long.splice(0..0, *b"0000 ");
        assert_eq!(decode(&long), Err(ReplyError::LineTooLong));
        long.push(b'\n');
        assert_eq!(decode(&long), Err(ReplyError::LineTooLong));
    }

    #[test]
    fn a_flood_of_lines_is_refused_at_the_reply_bound() {
        // Short lines: what they cost to hold, not their bytes, is counted.
        let flood = format!("1002-x\n{}", " x\n".repeat(REPLY_MAX / LINE_COST));
        assert!(flood.len() < REPLY_MAX / 4);
        assert_eq!(decode(flood.as_bytes()), Err(ReplyError::ReplyTooLong));
        // Log lines count too, though they are not kept.
        let log = "+x\n".repeat(REPLY_MAX / LINE_COST + 1);
        assert_eq!(decode(log.as_bytes()), Err(ReplyError::ReplyTooLong));
    }

    // ===== the requests' replies =====

    #[test]
    fn configure_is_done_in_progress_or_bird_says_why_not() {
        assert_eq!(
            parse_configure(&reply(CONFIGURE_DONE)),
            Ok(Configured::Done)
        );
        assert_eq!(
            parse_configure(&reply(CONFIGURE_IN_PROGRESS)),
            Ok(Configured::InProgress)
        );
        assert_eq!(
            parse_configure(&reply(CONFIGURE_SYNTAX_ERROR)),
            Err(bird(
                8002,
                "/tmp/birdc-scratch/a.conf:16:50 syntax error, unexpected '}'"
            ))
        );
        assert_eq!(
            parse_configure(&reply(CONFIGURE_NO_FILE)),
            Err(bird(
                8002,
                "/nonexistent/bird.conf: No such file or directory"
            ))
        );
        assert_eq!(
            parse_configure(&reply(CONFIGURE_CHECK)),
            Err(ReplyError::Unexpected {
                code: 20,
                text: "Configuration OK".to_owned()
            })
        );
    }

    /// A protocol from its columns, `|` between them.
    fn protocol(row: &str) -> Protocol {
        let columns: Vec<String> = row.split('|').map(str::to_owned).collect();
        let [name, proto, table, state, since, info] =
            <[String; 6]>::try_from(columns).unwrap();
        Protocol { name, proto, table, state, since, info }
    }

    #[test]
    fn a_bgp_session_is_established_by_its_first_word() {
        assert!(bgp_established("Established"));
        assert!(bgp_established("Established   "));
        for down in
            ["", "Active        Socket: No route to host", "Connect", "Est"]
        {
            assert!(!bgp_established(down), "{down:?}");
        }
    }

    #[test]
    fn protocols_are_read_column_by_column() {
        assert_eq!(
            parse_protocols(&reply(PROTOCOLS)).unwrap(),
            [
                protocol("device1|Device|---|up|21:49:23.417|"),
                protocol("vip|Static|master4|up|21:51:17.352|"),
                protocol("bfd1|BFD|---|up|21:50:54.662|"),
                protocol("r1|BGP|---|up|21:55:56.669|Established"),
                protocol(
                    "r2|BGP|---|start|21:50:11.879|\
                     Active        Socket: No route to host"
                ),
            ]
        );
        let disabled = parse_protocols(&reply(PROTOCOLS_R1_DISABLED)).unwrap();
        assert_eq!(disabled[3], protocol("r1|BGP|---|down|21:56:34.370|"));
        assert!(disabled[4].info.starts_with("Connect "));
        let shut = parse_protocols(&reply(PROTOCOLS_PEER_SHUT)).unwrap();
        assert_eq!(
            shut[2],
            protocol(
                "a1|BGP|---|start|21:56:34.369|\
                 Active        Socket: Connection reset by peer"
            )
        );
    }

    #[test]
    fn a_protocols_since_may_hold_a_space() {
        let long = parse_protocols(&reply(PROTOCOLS_ISO_LONG)).unwrap();
        assert_eq!(long[1].since, "2026-12-06 21:57:55");
        assert_eq!(long[1].info, "");
    }

    #[test]
    fn a_protocol_line_of_another_shape_is_unexpected() {
        let short = reply("1002-vip Static master4 up\n0000 \n");
        assert_eq!(
            parse_protocols(&short),
            Err(ReplyError::Unexpected {
                code: 1002,
                text: "vip Static master4 up".to_owned()
            })
        );
        assert_eq!(
            parse_protocols(&reply(CONFIGURE_SYNTAX_ERROR)),
            Err(bird(
                8002,
                "/tmp/birdc-scratch/a.conf:16:50 syntax error, unexpected '}'"
            ))
        );
    }

    #[test]
    fn exported_lists_each_networks_prefix_once() {
        let prefixes = parse_exported(&reply(EXPORT_R1)).unwrap();
        let shown: Vec<String> =
            prefixes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.20.0.100/32", "10.20.0.102/32", "10.20.0.101/32"]
        );
        assert_eq!(
            prefixes[0],
            Prefix { addr: IpAddr::from([10, 20, 0, 100]), len: 32 }
        );
    }

    #[test]
    fn a_protocol_not_exporting_exports_nothing_an_unknown_one_is_refused() {
        assert_eq!(parse_exported(&reply(EXPORT_DOWN)), Ok(Vec::new()));
        assert_eq!(
            parse_exported(&reply(EXPORT_UNKNOWN)),
            Err(bird(
                9001,
                "syntax error, unexpected CF_SYM_UNDEFINED, expecting \
                 CF_SYM_KNOWN or TABLE"
            ))
        );
    }

    #[test]
    fn exported_needs_ip_prefixes() {
        // Not captured: the shapes nest/rt-show.c prints for a second
        // table (an empty line, its heading) and for IPv6.
        let two_tables = concat!(
            "1007-Table master4:\n",
            " 10.20.0.100/32       blackhole [vip 21:51:17.352] * (200)\n",
            " \n",
            " Table master6:\n",
            " 2001:db8::1/128      blackhole [vip6 21:51:17.352] * (200)\n",
            "0000 \n",
        );
        let shown: Vec<String> = parse_exported(&reply(two_tables))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.20.0.100/32", "2001:db8::1/128"]);
        for network in ["10.0.0.0/33", "10.0.0.0/+8", "10.0.0.0", "fe80::/129"]
        {
            let line =
                format!("1007-{network}  blackhole [vip] * (200)\n0000 \n");
            assert!(
                matches!(
                    parse_exported(&reply(&line)),
                    Err(ReplyError::Unexpected { code: 1007, .. })
                ),
                "{network}"
            );
        }
    }

    #[test]
    fn bfd_sessions_are_read_column_by_column() {
        assert_eq!(
            parse_bfd_sessions(&reply(BFD_UP)).unwrap(),
            [BfdSession {
                peer: IpAddr::from([10, 77, 0, 2]),
                interface: "va".to_owned(),
                state: "Up".to_owned(),
                since: "21:55:55.838".to_owned(),
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(300),
            }]
        );
        let down = parse_bfd_sessions(&reply(BFD_DOWN)).unwrap();
        assert_eq!((&*down[0].state, &*down[0].interface), ("Down", "vb"));
        assert_eq!(
            (down[0].interval, down[0].timeout),
            (Duration::from_secs(1), Duration::ZERO)
        );
    }

    #[test]
    fn no_bfd_protocol_or_no_session_is_no_session() {
        assert_eq!(parse_bfd_sessions(&reply(BFD_NONE)), Ok(Vec::new()));
        assert_eq!(parse_bfd_sessions(&reply(NO_BFD)), Ok(Vec::new()));
        let starting = "1020-bfd1: is not up\n0000 \n";
        assert_eq!(parse_bfd_sessions(&reply(starting)), Ok(Vec::new()));
        let bad = "1020-10.77.0.2 va Up 21:55:55.838 0.1x 0.300\n0000 \n";
        assert!(matches!(
            parse_bfd_sessions(&reply(bad)),
            Err(ReplyError::Unexpected { code: 1020, .. })
        ));
    }

    #[test]
    fn seconds_are_read_as_bird_prints_them() {
        assert_eq!(seconds("0.100"), Some(Duration::from_millis(100)));
        assert_eq!(seconds("12.000001"), Some(Duration::new(12, 1_000)));
        assert_eq!(seconds("3"), Some(Duration::from_secs(3)));
        for bad in ["", ".5", "-1.0", "+1.0", "1.0000000001", "1.x"] {
            assert_eq!(seconds(bad), None, "{bad:?}");
        }
    }
}
