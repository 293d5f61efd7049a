//! Health-check options as an operator writes them: one list item per
//! check, keyed by its kind (`- tcp: {...}`, `- http_get: {...}`).
//!
//! [`check_kinds!`] declares [`Check`] and how it is read and written
//! from one list of kinds, so a new kind of check is one line there and
//! its options struct here (with its `timing`), its rules in `validate`
//! and its probe in `agent::check`. The agent dispatches on [`Check`]
//! itself; there is no second list of kinds to keep in step.
//!
//! Each kind's options repeat the timing keys (`connect_timeout`, `retry`,
//! `delay_before_retry`, `rise`) rather than flattening one shared struct:
//! serde cannot flatten into a struct that denies unknown keys, and
//! denying them is what turns a typo into "unknown key — did you mean".

use serde::{Deserialize, Serialize};

use super::is_false;
use crate::inventory::values::{Duration, Port, ScriptUser};

/// When a check gives up on one attempt and how it retries — the same
/// three keywords for every kind of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTiming {
    /// One attempt's limit (`connect_timeout`, `misc_timeout`).
    pub timeout: Duration,
    /// Retries before the server is declared down.
    pub retry: u32,
    /// Pause before each retry.
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back.
    pub rise: u32,
}

/// Declares [`Check`], its `kind` and `timing`, and how it is written,
/// from one list: each kind's doc, variant, options type and key.
///
/// serde_yaml reads enums only from YAML tags (`!tcp`), which operators
/// do not write; a map with one optional key per kind (`CheckRepr`) reads
/// naturally and gets unknown-key suggestions for free.
macro_rules! check_kinds {
    ($($(#[$doc:meta])* $variant:ident($options:ty) = $key:literal,)+) => {
        /// A health check, written as a one-key map: `- tcp: {...}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(try_from = "CheckRepr", into = "CheckRepr")]
        pub enum Check {
            $($(#[$doc])* $variant($options),)+
        }

        impl Check {
            /// The key the check is written under: `tcp`, `http_get`…
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Check::$variant(_) => $key,)+
                }
            }

            /// The check's timing, whatever its kind.
            pub fn timing(&self) -> CheckTiming {
                match self {
                    $(Check::$variant(c) => c.timing(),)+
                }
            }
        }

        /// Every kind's key, in the order they are listed.
        const KEYS: &[&str] = &[$($key),+];

        /// How a check is written: one optional key per kind.
        #[derive(Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(non_snake_case)]
        struct CheckRepr {
            $(
                #[serde(
                    rename = $key,
                    default,
                    skip_serializing_if = "Option::is_none"
                )]
                $variant: Option<$options>,
            )+
        }

        impl TryFrom<CheckRepr> for Check {
            type Error = String;

            fn try_from(r: CheckRepr) -> Result<Self, Self::Error> {
                let mut given =
                    [$(r.$variant.map(Check::$variant)),+].into_iter().flatten();
                match (given.next(), given.next()) {
                    (Some(check), None) => Ok(check),
                    _ => Err(not_one_kind()),
                }
            }
        }

        impl From<Check> for CheckRepr {
            fn from(c: Check) -> Self {
                let mut r = CheckRepr::default();
                match c {
                    $(Check::$variant(o) => r.$variant = Some(o),)+
                }
                r
            }
        }
    };
}

check_kinds! {
    /// A TCP connect (keepalived's `TCP_CHECK`).
    Tcp(TcpCheck) = "tcp",
    /// An HTTP GET (keepalived's `HTTP_GET`), over TLS with `tls`
    /// (`SSL_GET`).
    HttpGet(HttpCheck) = "http_get",
    /// A command run on the director (keepalived's `MISC_CHECK`).
    Exec(ExecCheck) = "exec",
    /// An ICMP echo of the server (keepalived's `PING_CHECK`).
    Ping(PingCheck) = "ping",
    /// A DNS query over UDP (keepalived's `DNS_CHECK`).
    Dns(DnsCheck) = "dns",
    /// A UDP datagram, and perhaps its reply (keepalived's `UDP_CHECK`).
    Udp(UdpCheck) = "udp",
    /// An SMTP greeting and `HELO` (keepalived's `SMTP_CHECK`).
    Smtp(SmtpCheck) = "smtp",
}

/// What is wrong with a list item holding no kind of check, or several.
fn not_one_kind() -> String {
    let keys: Vec<String> = KEYS.iter().map(|k| format!("`{k}:`")).collect();
    let list = match keys.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    format!(
        "a check is exactly one of {list} — start a new list item (`- `) \
         for each check"
    )
}

/// A TCP connect check. Timing has keepalived's meaning, as for every
/// checker: checks run every `delay_loop` (the service's); a server is
/// declared down after `retry + 1` consecutive failures, each retry
/// `delay_before_retry` after the previous failure, and back up after
/// `rise` consecutive successes, one per `delay_loop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// Time allowed to connect (keepalived's default: 5s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Retries before the server is declared down (`nb_get_retry`).
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry.
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    /// keepalived's checkers take it back on the first success, which is
    /// the default; more keeps a flapping server out longer.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
    /// Port to check when it differs from the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<Port>,
    /// Send only a SYN and count the SYN-ACK as up, an RST as refused;
    /// the director's kernel resets the half-open connection. The server's
    /// application never sees the check (no accept, no log line), and a
    /// check costs about half of a full connect (BENCHMARKS.md). A listener
    /// whose accept queue is full drops the SYN and fails it, as it fails a
    /// connect. IPv4 only. keepalived has no such check: its TCP_CHECK is a
    /// full connect, the default here.
    #[serde(default, skip_serializing_if = "is_false")]
    pub half_open: bool,
}

impl TcpCheck {
    /// Its timing: `connect_timeout` bounds the connect (or the SYN's answer).
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.connect_timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// An HTTP GET health check (keepalived's `HTTP_GET` with one `url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The path requested, e.g. `/lvstest.html`.
    pub path: String,
    /// The status the server must answer.
    #[serde(default = "default_status_code")]
    pub status_code: u16,
    /// MD5 of the expected body, as keepalived's `genhash` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A regular expression the body must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// Host header to send (keepalived's `virtualhost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// Time allowed to connect and, separately, to read the answer.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Retries before the server is declared down (`nb_get_retry`).
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry.
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    /// keepalived's checkers take it back on the first success, which is
    /// the default; more keeps a flapping server out longer.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
    /// Port to check when it differs from the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<Port>,
    /// GET over TLS (keepalived's `SSL_GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HttpTls>,
}

/// How an HTTP check speaks TLS (keepalived's `SSL_GET`).
///
/// keepalived never verifies the server's certificate, and neither does
/// this unless `verify` is set: a check is usually pointed at servers on a
/// trusted segment whose certificates carry public names, not their
/// addresses, and verifying by default would take every imported
/// `SSL_GET` down. The certificate's expiry is reported either way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// The name sent in SNI (keepalived's `sni_name`, with `enable_sni`),
    /// and with `verify` the name the certificate must carry; without
    /// it no SNI is sent and `verify` wants the server's address in the
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_name: Option<String>,
    /// Fail a server whose certificate does not verify: chained to the
    /// CAs of `ca_file` (else the director's CA bundle), valid now, for
    /// the name above.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify: bool,
    /// A PEM file on the controller with the CAs to verify against
    /// (keepalived's `SSL { ca }`), relative to the inventory's directory;
    /// the controller reads it into `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The PEM of those CAs, as the agent gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

impl HttpCheck {
    /// Its timing: `connect_timeout` bounds the connect and, apart, the answer.
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.connect_timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// A command as a health check (keepalived's `MISC_CHECK`): run on the
/// director through `sh -c`, exit 0 means up; killed at `timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    /// The command line (`misc_path`), e.g. `/usr/local/bin/check-db 10.0.0.21`.
    pub command: String,
    /// Killed and counted as a failure after this long (`misc_timeout`).
    #[serde(default = "default_connect_timeout")]
    pub timeout: Duration,
    /// Retries before the server is declared down.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry.
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    /// keepalived's checkers take it back on the first success, which is
    /// the default; more keeps a flapping server out longer.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
    /// Who runs the command, when not `script_user` (keepalived's
    /// `MISC_CHECK` `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ScriptUser>,
}

impl ExecCheck {
    /// Its timing: `timeout` bounds one run of the command.
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// An ICMP echo as a health check (keepalived's `PING_CHECK`): the
/// server's echo reply within `connect_timeout` is up. It sees the host,
/// not the service: a server whose application is down still answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingCheck {
    /// Time allowed for the echo reply.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Retries before the server is declared down.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry.
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
}

impl PingCheck {
    /// Its timing: `connect_timeout` bounds the wait for the reply.
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.connect_timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// A DNS query over UDP as a health check (keepalived's `DNS_CHECK`).
///
/// keepalived's `DNS_CHECK` sends one query (recursion desired) and counts
/// as up any reply that carries its ID, has QR set and RCODE 0 (NOERROR):
/// it reads neither the question nor the answers. This check is up for a
/// reply from the server's address and port (a connected socket) that has
/// our random ID, QR set, the same question (name compared without regard
/// to case, type, class IN), RCODE NOERROR, and at least one answer of the
/// asked type in its answer section (a CNAME chain's target counts:
/// owners are not compared). A NOERROR reply without such an answer
/// (NODATA, or a referral) passes keepalived's check and fails this one.
/// `expect` goes further still; keepalived has nothing like it.
///
/// Replies that do not carry our ID or lack QR are not ours and are read
/// past, as keepalived does, until `connect_timeout`. A truncated reply
/// (TC) is judged on what it holds; we never retry over TCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// The name queried; `.`, the root, by default (keepalived's). Written
    /// without escapes, in ASCII (an internationalised name in its
    /// `xn--` form), with or without the final dot.
    #[serde(default = "default_dns_name")]
    pub name: String,
    /// The type queried: keepalived's `A`, `NS`, `CNAME`, `SOA`, `MX`,
    /// `TXT`, `AAAA`, `RRSIG`, `DNSKEY`, and `PTR`. `SOA` by default, as
    /// keepalived: the root's SOA is what any resolver answers.
    #[serde(rename = "type", default)]
    pub query_type: DnsType,
    /// What the answers must hold, every item of it: for `A` and `AAAA`
    /// addresses, each among the answers' addresses; for `NS`, `CNAME`,
    /// `PTR` names, each the target of an answer (compared without regard
    /// to case or a final dot); for `MX` names, each an answer's exchange
    /// (its preference not compared); for `TXT` texts, each an answer's
    /// strings joined with nothing between them. `SOA`, `RRSIG` and
    /// `DNSKEY` answers have no such text: `expect` is refused there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<String>,
    /// Port queried when it differs from the real server's
    /// (keepalived's `connect_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<Port>,
    /// Time allowed for the reply. keepalived's default, 5s, too.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Retries before the server is declared down. keepalived's
    /// `DNS_CHECK` retries 3 times by default where its other checkers
    /// retry once; the inventory keeps one default for every kind, and
    /// `import-keepalived` writes keepalived's.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry (keepalived's `DNS_CHECK` default is the
    /// service's `delay_loop`; `import-keepalived` writes that).
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
}

impl DnsCheck {
    /// Its timing: `connect_timeout` bounds the wait for the reply.
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.connect_timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// One UDP datagram as a health check (keepalived's `UDP_CHECK`), with
/// keepalived's meaning, read in its `check_udp.c` and `layer4.c`:
///
/// * `payload` is sent to the server from a socket `connect`ed to it, so
///   the kernel reports the server's ICMP errors (port, host or network
///   unreachable; `IP_RECVERR` is set, as keepalived sets it, for the
///   latter two). Without `payload`, keepalived's 32 bytes are sent
///   (`keepalived check - keepalived ch`), so a server set up for
///   keepalived's check sees the same datagram.
/// * Without `require_reply`, the server is up unless an ICMP error comes
///   back within `connect_timeout`: a reply, or silence, is up. A UDP
///   service cannot be told from a black hole otherwise.
/// * With `require_reply`, a reply must come within `connect_timeout`, its
///   length within `min_reply_length`–`max_reply_length`, and with
///   `reply` its first bytes must match: keepalived compares as many bytes
///   as the shorter of the reply and the pattern holds, so a reply shorter
///   than the pattern passes when it matches as far as it goes (set
///   `min_reply_length` to the pattern's length to want all of it).
///
/// One difference: keepalived counts only ICMP Destination Unreachable
/// as a failure and any other ICMP error (Time Exceeded, Parameter
/// Problem) as a pass; here every ICMP error reported on the socket is a
/// failure. And keepalived's code reads the reply lengths only when
/// `require_reply` has a pattern, although its manual says they apply to
/// any required reply; here they apply to any required reply, and
/// `import-keepalived` writes them only where keepalived reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpCheck {
    /// The datagram sent, in keepalived's free hex: pairs of digits,
    /// blanks between groups, a group's odd last digit a byte of its own
    /// (`Ab12f 3` is `ab 12 0f 03`). At most [`UDP_MAX_PAYLOAD`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A reply must come within `connect_timeout`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_reply: bool,
    /// What the reply must start with, in the same hex as `payload`, where
    /// a digit written `x` matches any four bits (a counter, a sequence
    /// number). Needs `require_reply` (keepalived's `require_reply HEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The shortest reply that passes, in bytes; 0 when absent. Needs
    /// `require_reply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reply_length: Option<u32>,
    /// The longest reply that passes, in bytes; any up to
    /// [`UDP_MAX_PAYLOAD`] when absent (keepalived's default is 255,
    /// which `import-keepalived` writes). Needs `require_reply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reply_length: Option<u32>,
    /// Port the datagram goes to when it differs from the real server's
    /// (keepalived's `connect_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<Port>,
    /// Time allowed for an ICMP error or the reply. keepalived's manual
    /// advises at least 4s where a host unreachable matters: the kernel
    /// reports it only once its ARP requests time out (about 3s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Retries before the server is declared down.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry.
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
}

impl UdpCheck {
    /// Its timing: `connect_timeout` bounds the wait for an error or reply.
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.connect_timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// The most data one UDP datagram carries over IPv4: 65,535 bytes less
/// the 20-byte IPv4 header and the 8-byte UDP header. The bound of a
/// `udp` check's `payload`, `reply` and reply lengths.
pub const UDP_MAX_PAYLOAD: usize = 65_507;

/// One byte of a hex pattern: its value, and which of its bits count
/// (all of them but where a digit was written `x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexByte {
    /// The byte, 0 where a digit was `x`.
    pub value: u8,
    /// The bits compared: `0xff`, `0xf0`, `0x0f` or `0`.
    pub care: u8,
}

/// Why a `udp` check's `payload` or `reply` is not keepalived's hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// No digit at all.
    Empty,
    /// A character that is no hex digit (nor `x` where allowed), by its
    /// character position (from 1) and itself.
    NotHex(usize, char),
}

impl std::fmt::Display for HexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("no hex digits"),
            Self::NotHex(at, c) => write!(
                f,
                "character {at}, `{}`, is not a hex digit",
                c.escape_default()
            ),
        }
    }
}

/// The bytes hex `text` writes, read as keepalived reads `payload` and
/// `require_reply`: blanks (spaces, tabs) separate groups; each group is
/// read two digits a byte, an odd digit at its end a byte of its own;
/// with `wildcards`, a digit `x` or `X` matches anything. The one reading
/// of the hex, shared by validation and the agent.
///
/// # Errors
/// The first character that is no digit, or no digit at all.
pub fn hex_bytes(
    text: &str,
    wildcards: bool,
) -> Result<Vec<HexByte>, HexError> {
    let nibble = |(at, c): (usize, char)| match c.to_digit(16) {
        Some(d) => Ok((d as u8, 0xf)),
        None if wildcards && matches!(c, 'x' | 'X') => Ok((0, 0)),
        None => Err(HexError::NotHex(at + 1, c)),
    };
    let mut out = Vec::new();
    let mut chars = text.chars().enumerate().peekable();
    while let Some(c) = chars.next() {
        if matches!(c.1, ' ' | '\t') {
            continue;
        }
        let (high, high_care) = nibble(c)?;
        let byte = match chars.next_if(|(_, c)| !matches!(c, ' ' | '\t')) {
            Some(next) => {
                let (low, low_care) = nibble(next)?;
                HexByte {
                    value: high << 4 | low,
                    care: high_care << 4 | low_care,
                }
            }
            // A digit alone is the byte's low half; its high half is 0,
            // and compared (keepalived's mask covers only a wildcard).
            None => HexByte { value: high, care: 0xf0 | high_care },
        };
        out.push(byte);
    }
    if out.is_empty() {
        return Err(HexError::Empty);
    }
    Ok(out)
}

/// The SMTP check's `helo_name` when none is given: keepalived's
/// (`SMTP_DEFAULT_HELO`, check_smtp.h).
pub const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";

/// An SMTP dialogue as a health check (keepalived's `SMTP_CHECK`), as
/// keepalived's `check_smtp.c` has it: connect; read the greeting, which
/// must be 220; send `HELO helo_name`, whose reply must be 250; send
/// `QUIT`, which must get a reply (any code; a server that closes instead
/// fails, as in keepalived).
///
/// Two differences: a reply of several lines (`220-…` then `220 …`, RFC
/// 5321 §4.2.1) is read whole here, where keepalived reads only the first
/// line and so fails any multi-line greeting; and `connect_timeout`
/// bounds the connect and then, apart, the whole dialogue, where
/// keepalived bounds each read and write. keepalived's deprecated
/// `host { }` blocks are separate checks here (`import-keepalived` makes
/// them so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpCheck {
    /// The name sent with `HELO`: a domain name or an address literal
    /// (`[192.0.2.1]`, `[IPv6:2001:db8::1]`), RFC 5321 §4.1.1.1.
    /// keepalived's default, [`SMTP_DEFAULT_HELO`], when absent.
    #[serde(default = "default_helo_name")]
    pub helo_name: String,
    /// Port connected to when it differs from the real server's
    /// (keepalived's `connect_port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<Port>,
    /// Time allowed to connect and, apart, for the whole dialogue.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Retries before the server is declared down.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Pause before each retry.
    #[serde(default = "default_delay_before_retry")]
    pub delay_before_retry: Duration,
    /// Consecutive successes before a failed server is back in the pool.
    #[serde(default = "default_rise", skip_serializing_if = "is_one")]
    pub rise: u32,
}

impl SmtpCheck {
    /// Its timing: `connect_timeout` bounds the connect and, apart, the
    /// dialogue.
    pub fn timing(&self) -> CheckTiming {
        CheckTiming {
            timeout: self.connect_timeout,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            rise: self.rise,
        }
    }
}

/// Why `name` cannot follow `HELO` (neither a domain name nor an address
/// literal), or `None` when it can. The one reading, shared by validation
/// and the agent, which refuses to send a line validation would refuse.
pub fn helo_name_problem(name: &str) -> Option<String> {
    if let Some(literal) = name.strip_prefix('[') {
        let ok = match literal.strip_suffix(']') {
            Some(inner) => match inner.strip_prefix("IPv6:") {
                Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
                None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
            },
            None => false,
        };
        return (!ok).then(|| {
            format!(
                "`{}` is no address literal — write `[192.0.2.1]` or \
                 `[IPv6:2001:db8::1]`",
                name.escape_default()
            )
        });
    }
    // A domain name, and no character SMTP would read as a separator.
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || "-.".contains(*c)))
    {
        return Some(format!(
            "`{}` holds `{}` — a HELO name is a domain name of letters, \
             digits, `-` and `.`, or an address literal such as \
             `[192.0.2.1]`",
            name.escape_default(),
            c.escape_default()
        ));
    }
    match dns_labels(name) {
        Ok(labels) if labels.is_empty() => Some(
            "the root `.` is no HELO name — give the director's own name"
                .to_owned(),
        ),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// The types a `dns` check may ask for: keepalived's list (its
/// `check_dns.c`), and `PTR`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsType {
    /// An IPv4 address (RFC 1035 §3.4.1).
    A,
    /// An authoritative name server (RFC 1035 §3.3.11).
    Ns,
    /// The canonical name of an alias (RFC 1035 §3.3.1).
    Cname,
    /// The start of a zone of authority (RFC 1035 §3.3.13).
    #[default]
    Soa,
    /// A mail exchange (RFC 1035 §3.3.9).
    Mx,
    /// Text strings (RFC 1035 §3.3.14).
    Txt,
    /// An IPv6 address (RFC 3596 §2.1).
    Aaaa,
    /// A domain name pointer, for reverse look-ups (RFC 1035 §3.3.12).
    Ptr,
    /// A DNSSEC signature (RFC 4034 §3).
    Rrsig,
    /// A DNSSEC public key (RFC 4034 §2).
    Dnskey,
}

impl DnsType {
    /// Its TYPE value on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Ns => 2,
            Self::Cname => 5,
            Self::Soa => 6,
            Self::Ptr => 12,
            Self::Mx => 15,
            Self::Txt => 16,
            Self::Aaaa => 28,
            Self::Rrsig => 46,
            Self::Dnskey => 48,
        }
    }

    /// Its name, as written in the inventory and in zone files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Ns => "NS",
            Self::Cname => "CNAME",
            Self::Soa => "SOA",
            Self::Ptr => "PTR",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Aaaa => "AAAA",
            Self::Rrsig => "RRSIG",
            Self::Dnskey => "DNSKEY",
        }
    }

    /// Whether the root zone has records of this type (its SOA, its name
    /// servers, its keys and their signatures), so that a query of `.`
    /// can be answered at all.
    pub fn at_root(self) -> bool {
        matches!(self, Self::Soa | Self::Ns | Self::Dnskey | Self::Rrsig)
    }
}

/// The longest label of a domain name, in bytes (RFC 1035 §2.3.4).
pub const DNS_MAX_LABEL: usize = 63;

/// The longest domain name written as text without its final dot: 255
/// bytes on the wire (RFC 1035 §2.3.4) less the first length byte and the
/// root's zero byte.
pub const DNS_MAX_NAME: usize = 253;

/// Why a `dns` check's `name` (or a name it expects) is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsNameError {
    /// Nothing at all.
    Empty,
    /// A byte beyond ASCII.
    NotAscii,
    /// Two dots in a row, or a dot first (other than the root's lone dot).
    EmptyLabel,
    /// A label longer than [`DNS_MAX_LABEL`]: the label and its length.
    LabelTooLong(String, usize),
    /// A name longer than [`DNS_MAX_NAME`], by its length.
    TooLong(usize),
}

impl std::fmt::Display for DnsNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "the name is empty — write `.` for the root, or a name the \
                 server answers for",
            ),
            Self::NotAscii => f.write_str(
                "the name is not ASCII — write an internationalised name in \
                 its `xn--` form",
            ),
            Self::EmptyLabel => f.write_str(
                "the name has an empty label — labels are separated by one \
                 dot, and only the root is a lone dot",
            ),
            Self::LabelTooLong(label, len) => {
                let head: String = label.chars().take(16).collect();
                write!(
                    f,
                    "label `{head}…` is {len} bytes — a DNS label is at most \
                     {DNS_MAX_LABEL}"
                )
            }
            Self::TooLong(len) => write!(
                f,
                "the name is {len} bytes — a DNS name is at most \
                 {DNS_MAX_NAME} (without its final dot)"
            ),
        }
    }
}

/// The labels of domain name `name` as written in the inventory: `.` is
/// the root (no labels), a final dot is optional, no escapes. The one
/// reading of a name, shared by validation and the agent's query.
///
/// # Errors
/// Why `name` is no domain name.
pub fn dns_labels(name: &str) -> Result<Vec<&str>, DnsNameError> {
    if name.is_empty() {
        return Err(DnsNameError::Empty);
    }
    if !name.is_ascii() {
        return Err(DnsNameError::NotAscii);
    }
    if name == "." {
        return Ok(Vec::new());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut labels = Vec::new();
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DnsNameError::EmptyLabel);
        }
        if label.len() > DNS_MAX_LABEL {
            return Err(DnsNameError::LabelTooLong(
                label.to_owned(),
                label.len(),
            ));
        }
        labels.push(label);
    }
    if name.len() > DNS_MAX_NAME {
        return Err(DnsNameError::TooLong(name.len()));
    }
    Ok(labels)
}

fn default_dns_name() -> String {
    ".".to_owned()
}

fn default_helo_name() -> String {
    SMTP_DEFAULT_HELO.to_owned()
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_retry() -> u32 {
    1
}

fn default_delay_before_retry() -> Duration {
    Duration::from_secs(1)
}

/// keepalived's checkers have no `rise`: the first success brings a
/// server back.
fn default_rise() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn default_status_code() -> u16 {
    200
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str, wildcards: bool) -> Vec<(u8, u8)> {
        hex_bytes(text, wildcards)
            .unwrap()
            .iter()
            .map(|b| (b.value, b.care))
            .collect()
    }

    #[test]
    fn hex_reads_as_keepalived_reads_it() {
        // keepalived.conf(5)'s example: `AB 12 0F 03 45 06 54 64 43 12 03`.
        let values: Vec<u8> = bytes("Ab12f 3 456 546443123", false)
            .iter()
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(
            values,
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        assert_eq!(
            bytes("4x X\tx5", true),
            [(0x40, 0xf0), (0x00, 0xf0), (0x05, 0x0f)]
        );
        assert_eq!(hex_bytes("4x", false), Err(HexError::NotHex(2, 'x')));
        assert_eq!(hex_bytes(" \t", false), Err(HexError::Empty));
        assert_eq!(hex_bytes("ab é", false), Err(HexError::NotHex(4, 'é')));
    }

    #[test]
    fn helo_names_are_domains_or_address_literals() {
        for ok in
            [SMTP_DEFAULT_HELO, "lb1", "[192.0.2.1]", "[IPv6:2001:db8::1]"]
        {
            assert_eq!(helo_name_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "a b", "a\r\nQUIT", "[192.0.2.1", "[::1]", "a..b"]
        {
            assert!(helo_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
