//! `virtual_server`, `virtual_server_group`, `real_server` and the
//! checkers, read into [`VirtualService`]s.
//!
//! Real servers keep their address here (`address:`); the merge turns the
//! ones lbdeploy will manage into `host:` references. Field positions use
//! the real server's `ADDR:PORT` as its key, so the two directors' files
//! are compared server by server whatever their order.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::de::DeserializeOwned;

use super::udp_smtp::{Udp, smtp_checks};
use super::value::{Fields, KEEPALIVED_RISE, Reader, Timing, set, shown_value};
use crate::import::diag::Pos;
use crate::import::fwmark::{Lookup, Marks};
use crate::import::parser::Node;
use crate::inventory::{
    Announce, Check, DnsCheck, DnsType, Duration, ExecCheck, Forwarding,
    HttpCheck, HttpTls, PingCheck, Port, PortSpan, Protocol, RealServer,
    Scheduler, TcpCheck, VirtualService, Weight,
};

/// keepalived's `DNS_CHECK` retries 3 times unless told otherwise
/// (`DNS_DEFAULT_RETRY`, check_dns.h), where its other checkers retry once.
const KEEPALIVED_DNS_RETRY: u32 = 3;

/// The types keepalived's `DNS_CHECK` knows (`DNS_TYPE`, check_dns.c);
/// lbdeploy's `dns` check knows them and `PTR`.
const KEEPALIVED_DNS_TYPES: &str = "A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG \
    or DNSKEY";

/// `virtual_server_group` members by group name: VIP, port, line.
pub(crate) type Groups = HashMap<String, Vec<(IpAddr, Port, Pos)>>;

/// Read every `virtual_server_group` of the top level.
pub(crate) fn groups(nodes: &[Node], r: &mut Reader<'_>) -> Groups {
    let mut groups = Groups::new();
    for block in nodes.iter().filter(|n| n.keyword == "virtual_server_group") {
        let Some(name) = block.args.first() else {
            r.error(block, block, "`virtual_server_group` needs a name");
            continue;
        };
        let members = groups.entry(name.clone()).or_default();
        for line in block.children() {
            if line.keyword == "fwmark" {
                r.warn(
                    line,
                    block,
                    "fwmark members are not carried over: the marks come \
                     from iptables rules keepalived.conf does not hold — \
                     write the VIP's ports as a service's `ports:` \
                     (e.g. `ports: [80, 443]`)",
                );
                continue;
            }
            let Some(port) = line.args.first().and_then(|p| port(p)) else {
                r.error(line, block, "expected `VIP PORT`, e.g. `10.0.0.1 80`");
                continue;
            };
            for vip in range(line, block, r) {
                members.push((vip, port, line.pos.clone()));
            }
        }
    }
    groups
}

/// `10.0.0.1` or the range `10.0.0.1-10` (the last octet runs to 10).
fn range(line: &Node, block: &Node, r: &mut Reader<'_>) -> Vec<IpAddr> {
    let Some((first, last)) = line.keyword.split_once('-') else {
        return r.ip(line, block, &line.keyword).into_iter().collect();
    };
    let (Ok(first), Ok(last)) = (first.parse::<Ipv4Addr>(), last.parse::<u8>())
    else {
        let m = format!(
            "{} is not an IPv4 range such as `10.0.0.1-10`",
            shown_value(&line.keyword)
        );
        r.error(line, block, &m);
        return Vec::new();
    };
    let [a, b, c, start] = first.octets();
    if last < start {
        let m = format!(
            "`{}` runs backwards: the last octet is below the first — write \
             `{a}.{b}.{c}.{last}-{start}`",
            line.keyword
        );
        r.error(line, block, &m);
        return Vec::new();
    }
    (start..=last).map(|d| IpAddr::V4(Ipv4Addr::new(a, b, c, d))).collect()
}

fn port(s: &str) -> Option<Port> {
    s.parse().ok().and_then(Port::new)
}

/// What a `virtual_server` header names, one per service it becomes: a
/// VIP and port, or a VIP, protocol and port group (`fwmark`).
struct Target {
    vip: IpAddr,
    port: Option<Port>,
    ports: Vec<PortSpan>,
    protocol: Option<Protocol>,
    name: Option<String>,
}

/// Read a `virtual_server` block: one service, or one per group member
/// (per protocol for a `fwmark`); none when lbdeploy cannot represent it
/// (said as a warning).
pub(crate) fn virtual_server(
    block: &Node,
    groups: &Groups,
    marks: Option<&Marks>,
    r: &mut Reader<'_>,
) -> Vec<(VirtualService, Fields)> {
    let one = |vip, port| Target {
        vip,
        port: Some(port),
        ports: Vec::new(),
        protocol: None,
        name: None,
    };
    let targets: Vec<Target> = match block.args.as_slice() {
        [kw, mark] if kw == "fwmark" => fwmark(block, mark, marks, r),
        [kw, name] if kw == "group" => match groups.get(name) {
            Some(members) => members
                .iter()
                .enumerate()
                .map(|(i, (vip, port, _))| Target {
                    name: Some(match members.len() {
                        1 => name.clone(),
                        _ => format!("{name}-{}", i + 1),
                    }),
                    ..one(*vip, *port)
                })
                .collect(),
            None => {
                let m = format!("no virtual_server_group named `{name}`");
                r.error(block, block, &m);
                return Vec::new();
            }
        },
        [vip, p] => {
            let vip = r.ip(block, block, vip);
            let p = port(p);
            if p.is_none() {
                r.error(block, block, "the port must be 1–65535");
            }
            match (vip, p) {
                (Some(vip), Some(p)) => vec![one(vip, p)],
                _ => return Vec::new(),
            }
        }
        _ => {
            r.error(
                block,
                block,
                "expected `virtual_server VIP PORT`, `virtual_server fwmark \
                 N` or `virtual_server group NAME`",
            );
            return Vec::new();
        }
    };
    // A port group's real servers may leave their port out (or write 0):
    // it then stands for the group's first port.
    let group_port = targets
        .first()
        .and_then(|t| t.ports.first())
        .and_then(|s| Port::new(u32::from(s.first)));
    if targets.is_empty() {
        return Vec::new();
    }
    let Some((template, fields)) = service(block, group_port, r) else {
        return Vec::new();
    };
    targets
        .into_iter()
        .map(|t| {
            (
                VirtualService {
                    vip: t.vip,
                    port: t.port,
                    ports: t.ports,
                    protocol: t.protocol.unwrap_or(template.protocol),
                    name: t.name,
                    ..template.clone()
                },
                fields.clone(),
            )
        })
        .collect()
}

/// `virtual_server fwmark N`: a port group per protocol its mark's rules
/// name, from `--fwmark-rules`; none (said) without the rules, when no
/// rule sets the mark, or when its rules were refused.
fn fwmark(
    block: &Node,
    mark: &str,
    marks: Option<&Marks>,
    r: &mut Reader<'_>,
) -> Vec<Target> {
    let Some(n) = mark.parse::<u32>().ok().filter(|n| *n > 0) else {
        r.error(block, block, "the mark must be a whole number 1–4294967295");
        return Vec::new();
    };
    let Some(marks) = marks else {
        let m = format!(
            "the packets of mark {n} are chosen by mangle rules \
             keepalived.conf does not hold, so this service is left out \
             of the inventory (and `apply` would not program it) — pass \
             the director's rules with `--fwmark-rules FILE` (`iptables-save \
             -t mangle`, with a line such as `-A PREROUTING -d VIP/32 -p tcp \
             -m multiport --dports 80,443 -j MARK --set-mark {n}`), or write \
             the service with its VIP and those ports as `ports: [80, 443]`"
        );
        r.warn(block, block, &m);
        return Vec::new();
    };
    let group = match marks.lookup(n) {
        Lookup::Group(group) => group,
        Lookup::Unset => {
            let m = format!(
                "no rule of {} sets mark {n}: keepalived's service gets no \
                 packets, and it is left out of the inventory",
                marks.files()
            );
            r.warn(block, block, &m);
            return Vec::new();
        }
        Lookup::Refused(at, why) => {
            let m = format!(
                "{why} — so virtual_server fwmark {n} ({}) is not imported",
                block.pos
            );
            r.report.error(Some(at), m);
            return Vec::new();
        }
    };
    let stated = block
        .children()
        .iter()
        .find(|c| c.keyword == "protocol")
        .and_then(|c| c.args.first())
        .and_then(|p| serde_json::from_value(p.to_lowercase().into()).ok());
    if let Some(stated) = stated
        && group.protocols.iter().all(|(p, _)| *p != stated)
    {
        let m = format!(
            "the rules ({}) mark {} packets, not {}: the service is written \
             for what they mark",
            group.at,
            group
                .protocols
                .iter()
                .map(|(p, _)| format!("{p:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(" and "),
            format!("{stated:?}").to_lowercase()
        );
        r.warn(block, block, &m);
    }
    group
        .protocols
        .iter()
        .map(|(protocol, spans)| Target {
            vip: group.vip,
            port: None,
            ports: spans.clone(),
            protocol: Some(*protocol),
            name: None,
        })
        .collect()
}

/// The body of a `virtual_server`, with the VIP and port still unset.
///
/// Long on purpose: one match arm per keepalived keyword of the block, a
/// table to read beside keepalived.conf(5); split up, the table would be
/// scattered.
fn service(
    block: &Node,
    group_port: Option<Port>,
    r: &mut Reader<'_>,
) -> Option<(VirtualService, Fields)> {
    let mut fields = Fields::new(&block.pos);
    let mut vs = VirtualService {
        name: None,
        vip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        announce: Announce::Vrrp,
        port: Port::new(1),
        ports: Vec::new(),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wlc,
        forwarding: Forwarding::Nat,
        persistence_timeout: None,
        delay_loop: Duration::from_secs(60),
        quorum: 1,
        hysteresis: 0,
        sorry_server: None,
        inhibit_on_failure: false,
        real_servers: Vec::new(),
    };
    // keepalived's checkers take the service's `virtualhost` wherever the
    // block states it, before or after the real servers.
    let virtualhost = block
        .children()
        .iter()
        .rfind(|n| n.keyword == "virtualhost")
        .and_then(|n| n.args.first().cloned());
    let mut inhibit = Vec::new();
    let mut protocol_ok = true;
    let delay_loop = stated_delay_loop(block);
    for node in block.children() {
        let field = match node.keyword.as_str() {
            "delay_loop" => {
                set(&mut vs.delay_loop, r.seconds(node, block));
                "delay_loop"
            }
            "lb_algo" | "lvs_sched" => {
                let s = named(node, block, r, "rr, wrr, lc, wlc, sh, dh, ...");
                set(&mut vs.scheduler, s);
                "scheduler"
            }
            "lb_kind" | "lvs_method" => {
                set(
                    &mut vs.forwarding,
                    named(node, block, r, "DR, NAT or TUN"),
                );
                "forwarding"
            }
            "protocol" => {
                let p = named(node, block, r, "TCP or UDP");
                protocol_ok = p.is_some();
                set(&mut vs.protocol, p);
                "protocol"
            }
            "persistence_timeout" => {
                vs.persistence_timeout = r.seconds(node, block);
                "persistence_timeout"
            }
            "quorum" => {
                set(&mut vs.quorum, r.number(node, block));
                "quorum"
            }
            "hysteresis" => {
                set(&mut vs.hysteresis, r.number(node, block));
                "hysteresis"
            }
            "inhibit_on_failure" => {
                vs.inhibit_on_failure = true;
                "inhibit_on_failure"
            }
            // Read before the loop: it counts for every real server.
            "virtualhost" => {
                r.one(node, block);
                continue;
            }
            "sorry_server" => {
                vs.sorry_server = match node.args.as_slice() {
                    [ip, p] => {
                        let ip = r.ip(node, block, ip);
                        let port = port(p);
                        if port.is_none() {
                            r.error(
                                node,
                                block,
                                "`sorry_server`'s port is not a whole number \
                                 1–65535",
                            );
                        }
                        ip.zip(port)
                            .map(|(ip, p)| SocketAddr::new(ip, p.get() as u16))
                    }
                    _ => {
                        r.error(node, block, "expected `sorry_server IP PORT`");
                        None
                    }
                };
                "sorry_server"
            }
            "real_server" => {
                if let Some((rs, inhibits)) = real_server(
                    node,
                    block,
                    Around {
                        virtualhost: virtualhost.as_deref(),
                        delay_loop,
                        group_port,
                    },
                    &mut fields,
                    r,
                ) {
                    inhibit.push((inhibits, node));
                    vs.real_servers.push(rs);
                }
                continue;
            }
            _ => {
                r.not_carried(node, block);
                continue;
            }
        };
        fields.set(field, &node.pos);
    }
    if !inhibit.is_empty() && inhibit.iter().all(|(i, _)| *i) {
        vs.inhibit_on_failure = true;
    } else if inhibit.iter().any(|(i, _)| *i) && !vs.inhibit_on_failure {
        for (_, node) in inhibit.iter().filter(|(i, _)| *i) {
            r.warn(
                node,
                block,
                "inhibit_on_failure on some real servers only is not carried \
                 over: lbdeploy sets it per service",
            );
        }
    }
    if !protocol_ok {
        return None;
    }
    if vs.forwarding != Forwarding::Dr {
        let m = format!(
            "{} forwarding (lb_kind) is not carried over: lbdeploy does \
             direct routing only, so this service is left out of the \
             inventory (and `apply` would not program it)",
            format!("{:?}", vs.forwarding).to_uppercase()
        );
        r.warn(block, block, &m);
        return None;
    }
    Some((vs, fields))
}

/// The service's `delay_loop` wherever its block states it (its real
/// servers may come first), read quietly: `service` reports a bad one
/// where it reads it. keepalived's `DNS_CHECK` waits that long before a
/// retry unless told otherwise.
fn stated_delay_loop(block: &Node) -> Duration {
    block
        .children()
        .iter()
        .filter(|n| n.keyword == "delay_loop")
        .filter_map(|n| n.args.first()?.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(|s| Duration::from_millis((s * 1000.0).round() as u64))
        .next_back()
        .unwrap_or(Duration::from_secs(60))
}

/// What a real server's checkers take from their service.
#[derive(Clone, Copy)]
struct Around<'a> {
    /// The service's `virtualhost`, wherever stated.
    virtualhost: Option<&'a str>,
    /// The service's `delay_loop`, wherever stated.
    delay_loop: Duration,
    /// A port group's first port, which a real server without a port
    /// (or with port 0) takes.
    group_port: Option<Port>,
}

/// An enumerated keyword value (`rr`, `DR`, `TCP`), by the inventory's own
/// lowercase names.
fn named<T: DeserializeOwned>(
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
    expected: &str,
) -> Option<T> {
    let value = r.one(node, block)?;
    let parsed = serde_json::from_value(value.to_lowercase().into()).ok();
    if parsed.is_none() {
        let m =
            format!("`{} {value}`: lbdeploy knows {expected}", node.keyword);
        r.error(node, block, &m);
    }
    parsed
}

/// Read a `real_server IP PORT` block; also says whether it has
/// `inhibit_on_failure`.
fn real_server(
    block: &Node,
    parent: &Node,
    around: Around<'_>,
    fields: &mut Fields,
    r: &mut Reader<'_>,
) -> Option<(RealServer, bool)> {
    let (ip, p) = match (block.args.as_slice(), around.group_port) {
        ([ip, p], _) => (ip, Some(p.as_str())),
        ([ip], Some(_)) => (ip, None),
        _ => {
            r.error(block, parent, "expected `real_server IP PORT`");
            return None;
        }
    };
    let ip = r.ip(block, parent, ip);
    let p = match (p, around.group_port) {
        (Some(p), _) if port(p).is_some() => port(p)?,
        // keepalived reads a port of zeros as none.
        (None, Some(first)) => group_port(block, parent, first, r),
        (Some(p), Some(first)) if p.bytes().all(|b| b == b'0') => {
            group_port(block, parent, first, r)
        }
        (p, _) => {
            let m = format!("`{}` is not a port (1–65535)", p.unwrap_or(""));
            r.error(block, parent, &m);
            return None;
        }
    };
    let ip = ip?;
    let key = format!("real_servers.{}", SocketAddr::new(ip, p.get() as u16));
    fields.set(&key, &block.pos);
    let mut rs = RealServer {
        host: None,
        address: Some(ip),
        port: p,
        weight: Weight::new(1)?,
        checks: Vec::new(),
    };
    let mut inhibit = false;
    for node in block.children() {
        match node.keyword.as_str() {
            "weight" => {
                set(&mut rs.weight, r.bounded(node, block));
                fields.set(format!("{key}.weight"), &node.pos);
            }
            "inhibit_on_failure" => inhibit = true,
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK"
            | "DNS_CHECK" | "PING_CHECK" | "UDP_CHECK" | "SMTP_CHECK" => {
                for check in checker(node, block, around, r) {
                    let path = format!("{key}.checks[{}]", rs.checks.len());
                    fields.set(&path, &node.pos);
                    rs.checks.push(check);
                }
            }
            _ => r.not_carried(node, block),
        }
    }
    Some((rs, inhibit))
}

/// The port of a port group's real server written without one: the
/// group's first. Direct routing keeps each client's port, so it only
/// says where the server's checks connect; a check that names no
/// `connect_port` is said to check that port (keepalived's would have
/// none to connect to).
fn group_port(
    block: &Node,
    parent: &Node,
    first: Port,
    r: &mut Reader<'_>,
) -> Port {
    let portless = block.children().iter().filter(|c| {
        !matches!(c.keyword.as_str(), "MISC_CHECK" | "PING_CHECK")
            && c.children.is_some()
            && !c.children().iter().any(|k| k.keyword == "connect_port")
    });
    for check in portless.filter(|c| {
        c.keyword.ends_with("_CHECK") || c.keyword.ends_with("_GET")
    }) {
        let m = format!(
            "{} names no `connect_port` and its real server no port: it \
             checks port {first}, the group's first (traffic keeps each \
             client's port, as with keepalived)",
            check.keyword
        );
        r.warn(check, parent, &m);
    }
    first
}

/// What a `DNS_CHECK` asks, as keepalived reads it.
#[derive(Default)]
struct DnsQuery {
    /// `type`, when stated (keepalived's default: SOA).
    query_type: Option<DnsType>,
    /// `name`, when stated (keepalived's default: the root).
    name: Option<String>,
}

/// One checker block: one check, or one per `url` of an HTTP_GET.
///
/// Long on purpose, like [`service`]: one match arm per keyword a checker
/// block may hold, read beside keepalived.conf(5).
fn checker(
    block: &Node,
    server: &Node,
    around: Around<'_>,
    r: &mut Reader<'_>,
) -> Vec<Check> {
    let dns = block.keyword == "DNS_CHECK";
    let mut t = Timing {
        connect_timeout: Duration::from_secs(5),
        retry: if dns { KEEPALIVED_DNS_RETRY } else { 1 },
        delay_before_retry: if dns {
            around.delay_loop
        } else {
            Duration::from_secs(1)
        },
        connect_port: None,
    };
    let mut urls = Vec::new();
    let mut misc_path = None;
    let mut user = None;
    let mut query = DnsQuery::default();
    let mut udp = Udp::default();
    let mut helo_name = None;
    let mut virtualhost = around.virtualhost.map(str::to_owned);
    let smtp = block.keyword == "SMTP_CHECK";
    let ssl = block.keyword == "SSL_GET";
    let (mut enable_sni, mut sni_name) = (false, None);
    for node in block.children() {
        if block.keyword == "UDP_CHECK" && udp.read(node, block, r) {
            continue;
        }
        match node.keyword.as_str() {
            "enable_sni" if ssl => enable_sni = true,
            "sni_name" if ssl => {
                sni_name = Some((node, r.one(node, block).map(str::to_owned)))
            }
            // The agent ends its TLS sessions as rustls does, with
            // close_notify: keepalived's option to do so has nothing to
            // change.
            "tls_compliant" if ssl => {}
            "helo_name" if smtp => {
                helo_name = r.one(node, block).map(str::to_owned)
            }
            // Read by `smtp_checks`, each as the check it is.
            "host" if smtp => {}
            "type" if dns => query.query_type = dns_type(node, block, r),
            "name" if dns => query.name = r.one(node, block).map(str::to_owned),
            "connect_timeout" | "misc_timeout" => {
                set(&mut t.connect_timeout, r.seconds(node, block))
            }
            "misc_path" if block.keyword == "MISC_CHECK" => {
                misc_path = r.one(node, block).map(str::to_owned)
            }
            "user" if block.keyword == "MISC_CHECK" => {
                user = r.script_user(&node.args, node, block)
            }
            "retry" | "nb_get_retry" => {
                set(&mut t.retry, r.number(node, block))
            }
            "delay_before_retry" => {
                set(&mut t.delay_before_retry, r.seconds(node, block))
            }
            "connect_port" if block.keyword == "MISC_CHECK" => r.warn(
                node,
                block,
                "`connect_port` is not carried over: an exec check runs its \
                 program and connects nowhere itself, as keepalived's \
                 MISC_CHECK does",
            ),
            "connect_port" if block.keyword != "PING_CHECK" => {
                t.connect_port = r.bounded(node, block)
            }
            "virtualhost" if block.keyword.ends_with("_GET") => {
                virtualhost = r.one(node, block).map(str::to_owned)
            }
            "virtualhost" => {
                let m = format!(
                    "`virtualhost` is not carried over: only HTTP_GET and \
                     SSL_GET send a Host, and a {} check has none",
                    block.keyword
                );
                r.warn(node, block, &m);
            }
            "url"
                if !matches!(
                    block.keyword.as_str(),
                    "TCP_CHECK" | "DNS_CHECK"
                ) =>
            {
                urls.push(node)
            }
            _ => r.not_carried(node, block),
        }
    }
    let tcp = |t: &Timing| {
        Check::Tcp(TcpCheck {
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            rise: KEEPALIVED_RISE,
            connect_port: t.connect_port,
            // TCP_CHECK is a full connect.
            half_open: false,
        })
    };
    match block.keyword.as_str() {
        "TCP_CHECK" => vec![tcp(&t)],
        "UDP_CHECK" => vec![udp.check(&t, block, r)],
        "SMTP_CHECK" => smtp_checks(block, server, &t, helo_name, r),
        "PING_CHECK" => vec![Check::Ping(PingCheck {
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            rise: KEEPALIVED_RISE,
        })],
        "DNS_CHECK" => vec![Check::Dns(DnsCheck {
            name: query.name.unwrap_or_else(|| ".".to_owned()),
            query_type: query.query_type.unwrap_or_default(),
            expect: Vec::new(),
            connect_port: t.connect_port,
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            rise: KEEPALIVED_RISE,
        })],
        "MISC_CHECK" => match misc_path {
            Some(command) => vec![Check::Exec(ExecCheck {
                command,
                timeout: t.connect_timeout,
                retry: t.retry,
                delay_before_retry: t.delay_before_retry,
                rise: KEEPALIVED_RISE,
                user,
            })],
            None => {
                r.error(block, block, "MISC_CHECK needs a `misc_path`");
                Vec::new()
            }
        },
        _ if urls.is_empty() => {
            let m =
                format!("{} needs a `url {{ path ... }}` block", block.keyword);
            r.error(block, block, &m);
            Vec::new()
        }
        _ => {
            let sni = match (enable_sni, sni_name) {
                (true, Some((_, name))) => Sni::Named(name),
                (true, None) => Sni::VirtualHost,
                (false, None) => Sni::None,
                (false, Some((node, _))) => {
                    r.warn(
                        node,
                        block,
                        "`sni_name` without `enable_sni`: keepalived sends \
                         no SNI, and neither does the imported check",
                    );
                    Sni::None
                }
            };
            urls.into_iter()
                .filter_map(|u| url(u, block, &t, virtualhost.clone(), r))
                .map(|mut check| {
                    if ssl {
                        check.tls = Some(sni.tls(&check));
                    }
                    Check::HttpGet(check)
                })
                .collect()
        }
    }
}

/// The SNI an `SSL_GET` sends, as keepalived chooses it: none without
/// `enable_sni`; with it, `sni_name`, else the url's, the checker's or the
/// virtual server's `virtualhost`.
enum Sni {
    None,
    Named(Option<String>),
    VirtualHost,
}

impl Sni {
    /// The TLS of one url's check (its `virtualhost` already the one
    /// keepalived would use): not verified, as keepalived never verifies.
    fn tls(&self, check: &HttpCheck) -> HttpTls {
        let sni_name = match self {
            Sni::None => None,
            Sni::Named(name) => name.clone(),
            Sni::VirtualHost => check.virtualhost.clone(),
        };
        HttpTls { sni_name, ..HttpTls::default() }
    }
}

/// A `DNS_CHECK`'s `type`: one of keepalived's, in any case (keepalived
/// compares without regard to it).
fn dns_type(node: &Node, block: &Node, r: &mut Reader<'_>) -> Option<DnsType> {
    let value = r.one(node, block)?;
    let parsed = serde_json::from_value::<DnsType>(value.to_uppercase().into())
        .ok()
        .filter(|t| *t != DnsType::Ptr);
    if parsed.is_none() {
        let m = format!(
            "`type {value}`: keepalived's DNS_CHECK knows {KEEPALIVED_DNS_TYPES}"
        );
        r.error(node, block, &m);
    }
    parsed
}

/// One `url { path, digest, status_code, regex, virtualhost }`.
fn url(
    block: &Node,
    checker: &Node,
    t: &Timing,
    virtualhost: Option<String>,
    r: &mut Reader<'_>,
) -> Option<HttpCheck> {
    let mut check = HttpCheck {
        path: String::new(),
        status_code: 200,
        digest: None,
        body_regex: None,
        virtualhost,
        connect_timeout: t.connect_timeout,
        retry: t.retry,
        delay_before_retry: t.delay_before_retry,
        rise: KEEPALIVED_RISE,
        connect_port: t.connect_port,
        tls: None,
    };
    let mut no_match = None;
    for node in block.children() {
        match node.keyword.as_str() {
            "path" => {
                set(&mut check.path, r.one(node, block).map(str::to_owned))
            }
            "digest" => {
                check.digest = r.one(node, block).map(str::to_lowercase)
            }
            "regex" => check.body_regex = r.one(node, block).map(str::to_owned),
            "regex_no_match" => no_match = Some(node),
            // As the checker's own: nothing to change.
            "tls_compliant" if checker.keyword == "SSL_GET" => {}
            "virtualhost" => {
                check.virtualhost = r.one(node, block).map(str::to_owned)
            }
            "status_code" => {
                let first =
                    node.args.first().map(|s| s.split(['-', ',']).next());
                match first.flatten().and_then(|s| s.parse().ok()) {
                    Some(code) => check.status_code = code,
                    None => r.error(
                        node,
                        block,
                        "expected an HTTP status such as 200",
                    ),
                }
                if node.args.len() > 1
                    || node.args.iter().any(|a| a.contains(['-', ',']))
                {
                    let m = format!(
                        "only status {} is carried over: lbdeploy checks for \
                         one status code",
                        check.status_code
                    );
                    r.warn(node, block, &m);
                }
            }
            _ => r.not_carried(node, block),
        }
    }
    if check.path.is_empty() {
        r.error(block, checker, "`url` needs a `path`, e.g. `path /health`");
        return None;
    }
    // Carried without it, the check would pass exactly where keepalived's
    // fails.
    if let Some(node) = no_match.filter(|_| check.body_regex.is_some()) {
        r.error(
            node,
            block,
            "`regex_no_match` inverts `regex`, which an http_get check \
             cannot: remove the `regex`, or check the page with an exec \
             check (MISC_CHECK) instead",
        );
        return None;
    }
    Some(check)
}
