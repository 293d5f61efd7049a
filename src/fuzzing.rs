//! Entry points for the fuzz targets in `fuzz/`: each takes untrusted bytes
//! the way the agent or the controller receives them and runs every decoder
//! that would see them. Only the fuzz crate calls these; they exist so the
//! decoders can stay crate-private, and they return nothing because a
//! target only looks for panics, hangs and runaway memory.

use std::path::Path;

use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::agent::dataplane::ipvs::codec;
use crate::agent::sys::{net, netlink};
use crate::inventory;

/// An inventory's text, loaded and validated as `lbdeploy validate` does
/// (secrets resolved against nothing: the environment is empty).
pub fn inventory(text: &str) {
    let _ = inventory::load_str(
        Path::new("fuzz.yml"),
        text,
        Path::new("/nonexistent"),
        &NoSecrets,
    );
}

/// An environment with no variables and no files: fuzzing must not read
/// the machine's.
struct NoSecrets;

impl inventory::Environment for NoSecrets {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn read_file(&self, _: &Path) -> Option<String> {
        None
    }
}

/// A datagram from the IPVS generic netlink socket: split into messages,
/// each decoded as every reply the client reads (family id, service, and
/// destination of either family, sync daemon).
pub fn ipvs_reply(datagram: &[u8]) {
    let Ok(messages) = netlink::messages(datagram) else { return };
    for m in messages {
        let _ = netlink::error_code(m.payload);
        let _ = codec::family_id(m.payload);
        let _ = codec::decode_service(m.payload);
        let _ = codec::decode_dest(m.payload, false);
        let _ = codec::decode_dest(m.payload, true);
        let _ = codec::decode_daemon(m.payload);
    }
}

/// A datagram from an rtnetlink socket: parsed as the rtnetlink crate does
/// for the agent's subscriptions, then through the agent's own reading of
/// link and address events.
pub fn rtnetlink_event(datagram: &[u8]) {
    let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram)
    else {
        return;
    };
    if let NetlinkPayload::InnerMessage(m) = m.payload {
        let _ = net::link_event(m.clone());
        let _ = net::address_event(m);
    }
}

/// Bytes from a client of the agent's metrics port: the head found and
/// judged as the endpoint does, whatever comes before or after it.
pub fn metrics_request(bytes: &[u8]) {
    use crate::agent::metrics::http;
    let end = http::head_end(bytes).unwrap_or(bytes.len());
    let _ = http::judge(&bytes[..end]);
}

/// Bytes from BIRD's control socket: split into replies as the agent's
/// client frames them, each read as a greeting and by every parser of the
/// agent's requests.
pub fn birdc_replies(mut bytes: &[u8]) {
    use crate::agent::bgp::birdc::reply;
    // Each reply decoded consumes one line at least: the loop ends.
    while let Ok((r, rest)) = reply::decode(bytes) {
        let _ = reply::parse_greeting(&r);
        let _ = reply::parse_configure(&r);
        let _ = reply::parse_protocols(&r);
        let _ = reply::parse_exported(&r);
        let _ = reply::parse_bfd_sessions(&r);
        bytes = rest;
    }
}

/// A datagram on the `dns` check's socket: decoded, then judged as the
/// reply to a query of each kind of expectation (its own ID taken as
/// ours, so judging goes past it); then read as a query by the lab's
/// responder, whose reply must decode in turn.
pub fn dns_message(datagram: &[u8]) {
    use std::sync::OnceLock;

    use crate::agent::check::dns::{self, wire};
    use crate::inventory::{DnsCheck, DnsType};
    use crate::lab::responder::{DnsAnswers, dns_reply};

    static WANTS: OnceLock<Vec<dns::Want>> = OnceLock::new();
    let wants = WANTS.get_or_init(|| {
        let check = |name: &str, query_type, expect: &[&str]| DnsCheck {
            name: name.to_owned(),
            query_type,
            expect: expect.iter().map(|e| (*e).to_owned()).collect(),
            connect_port: None,
            connect_timeout: inventory::Duration::from_secs(1),
            retry: 0,
            delay_before_retry: inventory::Duration::from_secs(1),
            rise: 1,
        };
        [
            check(".", DnsType::Soa, &[]),
            check("a.test", DnsType::A, &["192.0.2.1"]),
            check("a.test", DnsType::Aaaa, &["2001:db8::1"]),
            check("a.test", DnsType::Mx, &["mx.a.test"]),
            check("a.test", DnsType::Txt, &["text"]),
        ]
        .iter()
        .filter_map(|c| dns::want(c).ok())
        .collect()
    });
    let _ = wire::decode(datagram);
    if let Ok(header) = wire::Header::decode(datagram) {
        for want in wants {
            let _ = dns::judge(datagram, header.id, want);
        }
    }
    let answers = DnsAnswers {
        address: Some(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
        name: "rs01".to_owned(),
    };
    if let Some(reply) = dns_reply(datagram, &answers) {
        assert!(wire::decode(&reply).is_ok(), "the responder's own reply");
    }
}

/// A stream of bytes on the `smtp` check's connection: read reply after
/// reply as the check reads them, each judged at every stage of the
/// dialogue, until the bytes end or stop making a reply; and read as
/// command lines by the lab responder's SMTP mode.
pub fn smtp_replies(mut bytes: &[u8]) {
    use crate::agent::check::smtp::{Stage, judge, reply};

    let smtp = crate::lab::protocols::Smtp {
        name: "rs01".to_owned(),
        greeting: 220,
        helo: 250,
    };
    for line in bytes.split(|b| *b == b'\n') {
        let _ = smtp.answer(line);
    }
    while let Ok(Some((r, used))) = reply::decode(bytes) {
        assert!(used > 0 && used <= bytes.len(), "a reply takes its bytes");
        assert!(used <= reply::MAX_REPLY, "a reply within its bound");
        for stage in [Stage::Greeting, Stage::Helo, Stage::Quit] {
            let _ = judge(stage, &r);
        }
        bytes = &bytes[used..];
    }
}
