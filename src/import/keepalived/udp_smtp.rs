//! `UDP_CHECK` and `SMTP_CHECK`: the keywords only they take, read into
//! `udp` and `smtp` checks; `lvs::checker` reads the keywords every
//! checker takes (timing, `connect_port`) and hands them over.
//!
//! What keepalived does with each keyword was read in its `check_udp.c`,
//! `check_smtp.c` and keepalived.conf(5); the inventory's side is said on
//! `UdpCheck` and `SmtpCheck`.

use std::net::IpAddr;

use super::value::{KEEPALIVED_RISE, Reader, Timing, set};
use crate::import::parser::Node;
use crate::inventory::{Check, SMTP_DEFAULT_HELO, SmtpCheck, UdpCheck};

/// keepalived's `max_reply_length` when a `require_reply` pattern is
/// given and no length (`UINT8_MAX`, check_udp.c).
const KEEPALIVED_MAX_REPLY: u32 = 255;

/// What a `UDP_CHECK` states beyond the common keywords.
#[derive(Default)]
pub(super) struct Udp<'n> {
    payload: Option<String>,
    require_reply: bool,
    /// `require_reply`'s pattern, when it has one.
    reply: Option<String>,
    /// `min_reply_length`, `max_reply_length`: the value and its line.
    min: Option<(u32, &'n Node)>,
    max: Option<(u32, &'n Node)>,
}

impl<'n> Udp<'n> {
    /// Read `node`, one of the keywords only `UDP_CHECK` takes; `false`
    /// when it is none of them.
    pub(super) fn read(
        &mut self,
        node: &'n Node,
        block: &Node,
        r: &mut Reader<'_>,
    ) -> bool {
        // keepalived joins a hex string's words with blanks, which its
        // hex reading then skips; the inventory's reading is the same.
        let hex = node.args.join(" ");
        match node.keyword.as_str() {
            "payload" if hex.is_empty() => {
                r.error(node, block, "`payload` needs hex digits")
            }
            "payload" => self.payload = Some(hex),
            "require_reply" => {
                self.require_reply = true;
                self.reply = Some(hex).filter(|h| !h.is_empty());
            }
            "min_reply_length" => {
                self.min = r.number(node, block).map(|n| (n, node))
            }
            "max_reply_length" => {
                self.max = r.number(node, block).map(|n| (n, node))
            }
            _ => return false,
        }
        true
    }

    /// The check, timed as `t`. keepalived's code reads the reply lengths
    /// only with a `require_reply` pattern (its `max_reply_length`
    /// default, 255, then written out); stated without one they never
    /// applied, and are left out, saying so.
    pub(super) fn check(
        self,
        t: &Timing,
        block: &Node,
        r: &mut Reader<'_>,
    ) -> Check {
        let patterned = self.reply.is_some();
        if !patterned {
            for (_, node) in self.min.iter().chain(&self.max) {
                let m = format!(
                    "`{}` is not carried over: keepalived reads the reply \
                     lengths only with a `require_reply` pattern, so it \
                     never applied",
                    node.keyword
                );
                r.warn(node, block, &m);
            }
        }
        let length = |l: Option<(u32, &Node)>| l.map(|(n, _)| n);
        Check::Udp(UdpCheck {
            payload: self.payload,
            require_reply: self.require_reply,
            reply: self.reply,
            min_reply_length: length(self.min).filter(|_| patterned),
            max_reply_length: patterned
                .then(|| length(self.max).unwrap_or(KEEPALIVED_MAX_REPLY)),
            connect_port: t.connect_port,
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            rise: KEEPALIVED_RISE,
        })
    }
}

/// The keywords that make keepalived keep an `SMTP_CHECK`'s own
/// connection beside its `host` blocks (`smtp_check_end_handler`): any
/// connection option, `connect_timeout` among them.
const CONNECTION_KEYWORDS: &[&str] = &[
    "connect_ip",
    "connect_port",
    "bindto",
    "bind_port",
    "bind_if",
    "fwmark",
    "connect_timeout",
];

/// An `SMTP_CHECK` of the real server `server`, timed as `t`, with
/// `helo_name`, as keepalived runs it: its own connection, and one check
/// per deprecated `host { }` block — where it has no connection keyword
/// but `host` blocks, the first block's connection instead of its own.
/// A `host` that checks another address than the real server's cannot be
/// an `smtp` check of it, and is left out with a warning naming its line.
pub(super) fn smtp_checks(
    block: &Node,
    server: &Node,
    t: &Timing,
    helo_name: Option<String>,
    r: &mut Reader<'_>,
) -> Vec<Check> {
    let helo_name = helo_name.unwrap_or_else(|| SMTP_DEFAULT_HELO.to_owned());
    let check = |t: &Timing| {
        Check::Smtp(SmtpCheck {
            helo_name: helo_name.clone(),
            connect_port: t.connect_port,
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            rise: KEEPALIVED_RISE,
        })
    };
    let hosts: Vec<&Node> =
        block.children().iter().filter(|n| n.keyword == "host").collect();
    let own = hosts.is_empty()
        || block
            .children()
            .iter()
            .any(|n| CONNECTION_KEYWORDS.contains(&n.keyword.as_str()));
    let address = server.args.first().and_then(|a| a.parse::<IpAddr>().ok());
    let mut checks: Vec<Check> = own.then(|| check(t)).into_iter().collect();
    for host in hosts {
        if let Some(t) = host_timing(host, block, address, t, r) {
            checks.push(check(&t));
        }
    }
    checks
}

/// A `host { connect_ip, connect_port, connect_timeout }` block's
/// connection, its checker's timing otherwise; `None` when it checks
/// another address than `server`'s.
fn host_timing(
    host: &Node,
    block: &Node,
    server: Option<IpAddr>,
    t: &Timing,
    r: &mut Reader<'_>,
) -> Option<Timing> {
    let mut own = Timing { connect_port: None, ..*t };
    let mut elsewhere = None;
    for node in host.children() {
        match node.keyword.as_str() {
            "connect_ip" => {
                let ip = r.one(node, host).and_then(|v| r.ip(node, host, v));
                elsewhere = ip.filter(|ip| Some(*ip) != server);
            }
            "connect_port" => own.connect_port = r.bounded(node, host),
            "connect_timeout" => {
                set(&mut own.connect_timeout, r.seconds(node, host))
            }
            _ => r.not_carried(node, host),
        }
    }
    match elsewhere {
        None => Some(own),
        Some(ip) => {
            let m = format!(
                "this `host` checks {ip}, and an smtp check reaches only its \
                 real server's own address: it is left out (write a check \
                 of {ip} as a real server of its own, or an exec check)"
            );
            r.warn(host, block, &m);
            None
        }
    }
}
