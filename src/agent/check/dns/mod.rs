//! The `dns` check (keepalived's `DNS_CHECK`): one query over UDP to the
//! real server, its reply judged. What counts as up, and where it differs
//! from keepalived, is said on [`DnsCheck`].
//!
//! [`wire`] reads and writes the messages, and [`judge`] decides what a
//! datagram means for the check; both are pure. `dns` is the thin tokio
//! adapter: one query with a random ID over the exchange `datagram`
//! shares with the `udp` check (a socket `connect`ed to the server),
//! datagrams read until one is the reply or the time is up.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::datagram::{Exchange, MAX_DATAGRAM};
use super::probe::{Misconfigured, Probe};
use crate::inventory::{DnsCheck, DnsType, dns_labels};
use wire::{Data, Message, Name, Question};

pub(crate) mod wire;

/// A `dns` check of `server` (its port unless `connect_port` says
/// otherwise).
pub(crate) fn arm(c: &DnsCheck, server: SocketAddr) -> Box<dyn Probe> {
    let port = c.connect_port.map_or(server.port(), |p| p.get() as u16);
    match want(c) {
        Ok(want) => {
            Box::new(Dns { to: SocketAddr::new(server.ip(), port), want })
        }
        // Validation refuses these before the agent loads them; a check
        // built from them anyway fails, saying why, rather than passing.
        Err(why) => Box::new(Misconfigured(why)),
    }
}

/// What the check asks, and what it wants of the answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Want {
    /// The question sent, which the reply must repeat.
    pub(crate) question: Question,
    /// The type asked for, for messages.
    pub(crate) kind: DnsType,
    /// What every answer of that type, together, must hold.
    pub(crate) expect: Expect,
}

/// What `expect` asks of the answers, read once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expect {
    /// Nothing beyond an answer of the asked type.
    Nothing,
    /// A and AAAA: each address among the answers'.
    Addresses(Vec<IpAddr>),
    /// NS, CNAME, PTR: each an answer's name; MX: an answer's exchange.
    Names(Vec<Name>),
    /// TXT: each an answer's strings, joined.
    Texts(Vec<Vec<u8>>),
}

/// What check `c` sends and wants.
///
/// # Errors
/// A name or an expected value validation would have refused.
pub(crate) fn want(c: &DnsCheck) -> Result<Want, String> {
    let name = |text: &str| -> Result<Name, String> {
        let labels = dns_labels(text).map_err(|e| format!("`{text}`: {e}"))?;
        Name::from_labels(labels.into_iter().map(str::as_bytes))
            .ok_or_else(|| format!("`{text}` is not a domain name"))
    };
    let bad = |what: &str| format!("dns: expect `{what}` does not fit type");
    let expect = match c.query_type {
        _ if c.expect.is_empty() => Expect::Nothing,
        DnsType::A => Expect::Addresses(
            c.expect
                .iter()
                .map(|e| {
                    e.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad(e))
                })
                .collect::<Result<_, _>>()?,
        ),
        DnsType::Aaaa => Expect::Addresses(
            c.expect
                .iter()
                .map(|e| {
                    e.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad(e))
                })
                .collect::<Result<_, _>>()?,
        ),
        DnsType::Ns | DnsType::Cname | DnsType::Ptr | DnsType::Mx => {
            Expect::Names(
                c.expect.iter().map(|e| name(e)).collect::<Result<_, _>>()?,
            )
        }
        DnsType::Txt => Expect::Texts(
            c.expect.iter().map(|e| e.as_bytes().to_vec()).collect(),
        ),
        DnsType::Soa | DnsType::Rrsig | DnsType::Dnskey => {
            return Err(format!(
                "dns: {} answers have no text to expect",
                c.query_type.as_str()
            ));
        }
    };
    Ok(Want {
        question: Question {
            name: name(&c.name).map_err(|e| format!("dns: name {e}"))?,
            qtype: c.query_type.code(),
            qclass: wire::CLASS_IN,
        },
        kind: c.query_type,
        expect,
    })
}

struct Dns {
    to: SocketAddr,
    want: Want,
}

impl Probe for Dns {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(dns(self.to, &self.want, limit))
    }
}

// ===== judging =====

/// What one datagram read on the check's socket means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not the reply to our query (too short for a header, another ID, or
    /// a query): read on, as keepalived does.
    NotOurs,
    /// The reply, and the server passes.
    Up,
    /// The reply, and why the server fails.
    Down(String),
}

/// What `datagram`, read after sending the query with `id`, means for the
/// check that wants `want`.
pub(crate) fn judge(datagram: &[u8], id: u16, want: &Want) -> Verdict {
    match wire::Header::decode(datagram) {
        Ok(h) if h.id == id && h.response => {}
        _ => return Verdict::NotOurs,
    }
    let reply = match wire::decode(datagram) {
        Ok(m) => m,
        Err(e) => return Verdict::Down(format!("dns: malformed reply: {e}")),
    };
    match judge_reply(&reply, want) {
        Ok(()) => Verdict::Up,
        Err(why) => Verdict::Down(why),
    }
}

/// Whether `reply` (ours, read whole) passes.
fn judge_reply(reply: &Message, want: &Want) -> Result<(), String> {
    let kind = want.kind.as_str();
    if let Some(q) = &reply.question
        && !q.same(&want.question)
    {
        return Err(format!(
            "dns: the reply answers another question ({} type {} class {})",
            q.name, q.qtype, q.qclass
        ));
    }
    if reply.header.rcode != 0 {
        return Err(format!(
            "dns: rcode {}",
            wire::rcode_name(reply.header.rcode)
        ));
    }
    if reply.question.is_none() {
        return Err("dns: the reply does not repeat the question".to_owned());
    }
    // Answers judged on a truncated reply may lack what did not fit.
    let cut = if reply.header.truncated { " (reply truncated)" } else { "" };
    let answers: Vec<&Data> = reply
        .answers
        .iter()
        .filter(|r| r.rtype == want.question.qtype)
        .map(|r| &r.data)
        .collect();
    if answers.is_empty() {
        return Err(format!("dns: no {kind} answer{cut}"));
    }
    let missing = |wanted: Vec<String>, got: Vec<String>| {
        Err(format!(
            "dns: {} not among the answers {}{cut}",
            list(&wanted),
            list(&got)
        ))
    };
    match &want.expect {
        Expect::Nothing => Ok(()),
        Expect::Addresses(wanted) => {
            let got: Vec<IpAddr> = answers
                .iter()
                .filter_map(|d| match d {
                    Data::A(a) => Some(IpAddr::V4(*a)),
                    Data::Aaaa(a) => Some(IpAddr::V6(*a)),
                    _ => None,
                })
                .collect();
            let absent = wanted.iter().filter(|w| !got.contains(w));
            match texts(absent) {
                none if none.is_empty() => Ok(()),
                absent => missing(absent, texts(&got)),
            }
        }
        Expect::Names(wanted) => {
            let got: Vec<&Name> = answers
                .iter()
                .filter_map(|d| match d {
                    Data::Name(n) => Some(n),
                    Data::Mx { exchange, .. } => Some(exchange),
                    _ => None,
                })
                .collect();
            let absent =
                wanted.iter().filter(|w| !got.iter().any(|g| g.same(w)));
            match texts(absent) {
                none if none.is_empty() => Ok(()),
                absent => missing(absent, texts(got)),
            }
        }
        Expect::Texts(wanted) => {
            let got: Vec<Vec<u8>> = answers
                .iter()
                .filter_map(|d| match d {
                    Data::Txt(strings) => Some(strings.concat()),
                    _ => None,
                })
                .collect();
            let absent: Vec<String> = wanted
                .iter()
                .filter(|w| !got.contains(w))
                .map(|w| quoted(w))
                .collect();
            match absent {
                none if none.is_empty() => Ok(()),
                absent => {
                    missing(absent, got.iter().map(|g| quoted(g)).collect())
                }
            }
        }
    }
}

/// Each item as text.
fn texts<T: Display>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

/// The most items a message lists; a reply may hold thousands.
const LISTED: usize = 8;

/// `a, b, c`, or the first [`LISTED`] and how many in all.
fn list(items: &[String]) -> String {
    let shown =
        items.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
    match items.len() {
        n if n > LISTED => format!("{shown}… ({n} in all)"),
        _ => shown,
    }
}

/// A TXT text in double quotes, as a zone file writes it: a quote or a
/// backslash escaped with a backslash, a byte that is not printable ASCII
/// as `\DDD`; at most 64 bytes of it, then `…`.
fn quoted(text: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in text.iter().take(64) {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    if text.len() > 64 {
        out.push('…');
    }
    out.push('"');
    out
}

// ===== the socket =====

/// Query `to` once as `want` says and judge the reply, within `limit`.
///
/// # Errors
/// Why the server fails: no reply in time, refused, or the reply's fault.
async fn dns(
    to: SocketAddr,
    want: &Want,
    limit: Duration,
) -> Result<(), String> {
    let x = Exchange::open("dns", "query", to, limit).await?;
    let id = random_id();
    x.send(&wire::query(id, &want.question.name, want.question.qtype)).await?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Some(n) = x.recv(&mut buf).await? else {
            return Err(x.timed_out());
        };
        match judge(&buf[..n], id, want) {
            Verdict::NotOurs => continue,
            Verdict::Up => return Ok(()),
            Verdict::Down(why) => return Err(why),
        }
    }
}

/// A query ID no one off the path can guess (RFC 5452 §4.3), so that a
/// forged reply cannot pass a dead server; the source port the kernel
/// picks adds its own randomness.
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    match rustix::rand::getrandom(
        &mut b,
        rustix::rand::GetRandomFlags::INSECURE,
    ) {
        Ok(2) => u16::from_be_bytes(b),
        // The kernel's generator never refuses on Linux ≥ 5.6; the
        // process's hash keys are random too.
        _ => {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new()
                .hash_one(Instant::now()) as u16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Duration as Dur;
    use tokio::net::UdpSocket;
    use wire::{CLASS_IN, Header, Record, TYPE_A, TYPE_CNAME, TYPE_TXT};

    fn check(yaml: &str) -> DnsCheck {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn name(text: &str) -> Name {
        Name::from_labels(text.split('.').map(str::as_bytes)).unwrap()
    }

    fn record(owner: &str, rtype: u16, data: Data) -> Record {
        Record { name: name(owner), rtype, class: CLASS_IN, ttl: 60, data }
    }

    /// The reply a server gives to `want`'s question with `answers`.
    fn reply(id: u16, want: &Want, rcode: u8, answers: &[Record]) -> Vec<u8> {
        let header = Header { id, response: true, rcode, ..Header::default() };
        wire::encode(&header, Some(&want.question), answers)
    }

    fn a(addr: &str) -> Data {
        Data::A(addr.parse().unwrap())
    }

    #[test]
    fn options_default_as_keepalived_and_read_once() {
        let c = check("{}");
        assert_eq!((c.name.as_str(), c.query_type), (".", DnsType::Soa));
        assert_eq!(c.connect_timeout, Dur::from_secs(5));
        let w = want(&c).unwrap();
        assert_eq!(w.question.name.wire(), [0]);
        assert_eq!((w.question.qtype, w.expect.clone()), (6, Expect::Nothing));
        let w = want(&check(
            "{ name: www.example.org., type: A, expect: [192.0.2.1] }",
        ))
        .unwrap();
        assert!(w.question.name.same(&name("www.example.org")));
        assert_eq!(
            w.expect,
            Expect::Addresses(vec!["192.0.2.1".parse().unwrap()])
        );
        // Validation refuses these; the probe says so if it ever sees them.
        assert!(want(&check("{ type: A, expect: ['2001:db8::1'] }")).is_err());
        assert!(want(&check("{ name: 'a..b' }")).is_err());
        assert!(want(&check("{ type: SOA, expect: [x] }")).is_err());
    }

    #[test]
    fn keepalived_checks_id_qr_and_rcode_and_we_want_an_answer_too() {
        let w = want(&check("{ name: lab.test, type: A }")).unwrap();
        let up = reply(7, &w, 0, &[record("lab.test", TYPE_A, a("192.0.2.5"))]);
        assert_eq!(judge(&up, 7, &w), Verdict::Up);
        // Another ID, a query, a runt: not ours, read on.
        assert_eq!(judge(&up, 8, &w), Verdict::NotOurs);
        let mut query = up.clone();
        query[2] &= 0x7f;
        assert_eq!(judge(&query, 7, &w), Verdict::NotOurs);
        assert_eq!(judge(&up[..11], 7, &w), Verdict::NotOurs);
        // NXDOMAIN, NODATA, and another name's question.
        let nx = reply(7, &w, 3, &[]);
        assert_eq!(
            judge(&nx, 7, &w),
            Verdict::Down("dns: rcode NXDOMAIN".into())
        );
        let nodata = reply(7, &w, 0, &[]);
        assert_eq!(
            judge(&nodata, 7, &w),
            Verdict::Down("dns: no A answer".into())
        );
        let other = want(&check("{ name: other.test, type: A }")).unwrap();
        let Verdict::Down(why) = judge(&reply(7, &other, 0, &[]), 7, &w) else {
            panic!("another question passed");
        };
        assert!(why.contains("another question (other.test type 1"), "{why}");
        // The same question in other letters is the same question.
        let upper = want(&check("{ name: LAB.Test, type: A }")).unwrap();
        let up_upper =
            reply(7, &upper, 0, &[record("lab.test", TYPE_A, a("192.0.2.5"))]);
        assert_eq!(judge(&up_upper, 7, &w), Verdict::Up);
        // Garbage after a good header, with our ID.
        let mut bad = up.clone();
        bad.truncate(20);
        let Verdict::Down(why) = judge(&bad, 7, &w) else { panic!() };
        assert!(why.starts_with("dns: malformed reply: "), "{why}");
    }

    #[test]
    fn a_cname_chain_counts_its_target_and_only_answers_of_the_type() {
        let w =
            want(&check("{ name: www.test, type: A, expect: [192.0.2.7] }"))
                .unwrap();
        let chain = [
            record("www.test", TYPE_CNAME, Data::Name(name("web.test"))),
            record("web.test", TYPE_A, a("192.0.2.7")),
        ];
        assert_eq!(judge(&reply(1, &w, 0, &chain), 1, &w), Verdict::Up);
        let only_cname = reply(1, &w, 0, &chain[..1]);
        assert_eq!(
            judge(&only_cname, 1, &w),
            Verdict::Down("dns: no A answer".into())
        );
    }

    #[test]
    fn expect_names_what_is_missing_and_what_was_answered() {
        let w = want(&check(
            "{ name: lab.test, type: A, expect: [10.0.0.9, 10.0.0.5] }",
        ))
        .unwrap();
        let got = reply(3, &w, 0, &[record("lab.test", TYPE_A, a("10.0.0.5"))]);
        assert_eq!(
            judge(&got, 3, &w),
            Verdict::Down(
                "dns: 10.0.0.9 not among the answers 10.0.0.5".into()
            )
        );
        let both = reply(
            3,
            &w,
            0,
            &[
                record("lab.test", TYPE_A, a("10.0.0.9")),
                record("lab.test", TYPE_A, a("10.0.0.5")),
            ],
        );
        assert_eq!(judge(&both, 3, &w), Verdict::Up);

        let w = want(&check("{ name: lab.test, type: TXT, expect: [rs01] }"))
            .unwrap();
        let txt = |t: &[&[u8]]| {
            record(
                "lab.test",
                TYPE_TXT,
                Data::Txt(t.iter().map(|s| s.to_vec()).collect()),
            )
        };
        assert_eq!(
            judge(&reply(4, &w, 0, &[txt(&[b"rs", b"01"])]), 4, &w),
            Verdict::Up
        );
        assert_eq!(
            judge(&reply(4, &w, 0, &[txt(&[b"rs02\n\""])]), 4, &w),
            Verdict::Down(
                r#"dns: "rs01" not among the answers "rs02\010\"""#.into()
            )
        );

        let w =
            want(&check("{ name: mail.test, type: MX, expect: [MX1.test.] }"))
                .unwrap();
        let mx = record(
            "mail.test",
            wire::TYPE_MX,
            Data::Mx { preference: 10, exchange: name("mx1.test") },
        );
        assert_eq!(judge(&reply(5, &w, 0, &[mx]), 5, &w), Verdict::Up);
    }

    #[test]
    fn long_answer_lists_are_cut_and_truncation_is_said() {
        let w =
            want(&check("{ name: many.test, type: A, expect: [10.9.9.9] }"))
                .unwrap();
        let many: Vec<Record> = (1..=20)
            .map(|i| record("many.test", TYPE_A, a(&format!("10.0.0.{i}"))))
            .collect();
        let mut bytes = reply(6, &w, 0, &many);
        bytes[2] |= 0x02; // TC
        let Verdict::Down(why) = judge(&bytes, 6, &w) else { panic!() };
        assert_eq!(
            why,
            "dns: 10.9.9.9 not among the answers 10.0.0.1, 10.0.0.2, \
             10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8… \
             (20 in all) (reply truncated)"
        );
    }

    /// A UDP server on loopback that answers as `serve` says, once per
    /// query.
    async fn server(
        serve: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                for d in serve(&buf[..n]) {
                    let _ = s.send_to(&d, from).await;
                }
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn over_udp_a_reply_passes_silence_times_out_and_a_closed_port_refuses()
     {
        let w =
            want(&check("{ name: lab.test, type: A, expect: [192.0.2.5] }"))
                .unwrap();
        let answer = w.clone();
        // A stray datagram with another ID first, then the reply.
        let (addr, task) = server(move |q| {
            let id = u16::from_be_bytes([q[0], q[1]]);
            let good = record("lab.test", TYPE_A, a("192.0.2.5"));
            vec![
                reply(id.wrapping_add(1), &answer, 0, &[]),
                reply(id, &answer, 0, &[good]),
            ]
        })
        .await;
        let limit = Duration::from_millis(500);
        assert_eq!(dns(addr, &w, limit).await, Ok(()));
        task.abort();
        let _ = task.await;
        let why = dns(addr, &w, limit).await.unwrap_err();
        assert!(why.contains("refused the query"), "{why}");

        let (silent, task) = server(|_| Vec::new()).await;
        assert_eq!(
            dns(silent, &w, limit).await,
            Err("dns: timeout after 500ms".into())
        );
        task.abort();
    }
}
