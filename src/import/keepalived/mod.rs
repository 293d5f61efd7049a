//! keepalived.conf semantics: one director's file, read into pieces of
//! inventory ([`Conf`]) that the merge puts together.
//!
//! * `value` — numbers, seconds and addresses, and what happens to the
//!   keywords lbdeploy cannot represent;
//! * `vrrp` — `vrrp_instance`;
//! * `track` — `vrrp_script`, and an instance's `track_script` and
//!   `track_interface`;
//! * `sync_group` — `vrrp_sync_group`;
//! * `lvs` — `virtual_server`, `virtual_server_group`, `real_server` and
//!   the checkers.
//!
//! Deprecated spellings still found in the wild are read as their modern
//! forms: `lvs_id` (`router_id`), `nb_get_retry` (`retry`), `lb_algo`
//! (`lvs_sched`), `lb_kind` (`lvs_method`), `state SLAVE` (`BACKUP`).

mod lvs;
mod sync_group;
mod track;
mod udp_smtp;
mod value;
mod vrrp;

use std::path::Path;
use std::sync::Arc;

pub(crate) use value::{Fields, Spanned};
pub use vrrp::{Instance, Own};

use super::diag::{Pos, Report};
use super::fwmark::Marks;
use super::parser::{self, Grammar, Node};
use crate::inventory::{
    Duration, Email, RtPriority, ScriptUser, SyncGroup, TrackFile,
    TrackProcess, VirtualService, VrrpScript,
};
use value::Reader;

/// One director's configuration, as far as lbdeploy can represent it.
#[derive(Debug, Clone)]
pub(crate) struct Conf {
    /// The file as the user named it.
    pub file: Arc<Path>,
    /// `router_id` (or `lvs_id`), the host's name in keepalived.
    pub router_id: Option<Spanned<String>>,
    /// `notification_email` and friends, when an email would be sent.
    pub email: Option<(Email, Fields)>,
    /// `vrrp_instance` blocks, in file order.
    pub instances: Vec<Instance>,
    /// `vrrp_script` blocks, in file order.
    pub scripts: Vec<(VrrpScript, Fields)>,
    /// `vrrp_sync_group` blocks, in file order.
    pub sync_groups: Vec<(SyncGroup, Fields)>,
    /// `vrrp_track_file` blocks, in file order.
    pub track_files: Vec<(TrackFile, Fields)>,
    /// `vrrp_track_process` blocks, in file order.
    pub track_processes: Vec<(TrackProcess, Fields)>,
    /// `virtual_server` blocks, groups expanded, in file order.
    pub services: Vec<(VirtualService, Fields)>,
    /// `enable_script_security` in `global_defs`.
    pub script_security: bool,
    /// `script_user USER [GROUP]` in `global_defs`, with where it is.
    pub script_user: Option<Spanned<ScriptUser>>,
    /// `vrrp_rt_priority` in `global_defs`, with where it was.
    pub rt_priority: Option<(RtPriority, Pos)>,
    /// `vrrp_no_swap` or `checker_no_swap` in `global_defs`: lock the
    /// agent's memory. keepalived locks its VRRP and its checker process
    /// apart; lbdeploy's agent is one process doing both, so either
    /// keyword locks it whole.
    pub no_swap: bool,
    /// `lvs_sync_daemon INTERFACE INSTANCE [id N]` in `global_defs`.
    pub sync_daemon: Option<Spanned<SyncDaemon>>,
}

/// keepalived's `lvs_sync_daemon`, as one director's file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncDaemon {
    /// The multicast interface.
    pub interface: String,
    /// The VRRP instance that drives it.
    pub instance: String,
    /// `id N`; keepalived takes the instance's VRID without it.
    pub sync_id: Option<u8>,
}

/// Read `path` (and its includes), with the marks of `--fwmark-rules`
/// when given. Problems go to `report`.
pub fn read(path: &Path, marks: Option<&Marks>, report: &mut Report) -> Conf {
    let nodes = parser::parse_file(path, &Keepalived, report);
    interpret(path, &nodes, marks, report)
}

/// Read configuration text that has no file (`name` is for messages).
pub(crate) fn read_str(name: &Path, text: &str, report: &mut Report) -> Conf {
    let nodes = parser::parse_str(name, text, &Keepalived, report);
    interpret(name, &nodes, None, report)
}

fn interpret(
    path: &Path,
    nodes: &[Node],
    marks: Option<&Marks>,
    report: &mut Report,
) -> Conf {
    let mut r = Reader { report };
    let top = Node {
        keyword: String::new(),
        args: vec![],
        pos: Pos { file: path.into(), line: 1, col: 1 },
        children: None,
    };
    let mut conf = Conf {
        file: path.into(),
        router_id: None,
        email: None,
        instances: Vec::new(),
        scripts: Vec::new(),
        sync_groups: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        services: Vec::new(),
        script_security: false,
        script_user: None,
        rt_priority: None,
        no_swap: false,
        sync_daemon: None,
    };
    let groups = lvs::groups(nodes, &mut r);
    let mut defaults = vrrp::Defaults::default();
    for node in nodes.iter().filter(|n| n.keyword == "global_defs") {
        global_defs(node, &mut conf, &mut defaults, &mut r);
    }
    for node in nodes {
        match node.keyword.as_str() {
            "global_defs" | "virtual_server_group" => {}
            "vrrp_instance" => {
                conf.instances.extend(vrrp::instance(node, defaults, &mut r))
            }
            "vrrp_script" => conf.scripts.extend(track::script(node, &mut r)),
            "vrrp_track_file" => {
                conf.track_files.extend(track::file(node, &mut r))
            }
            "vrrp_track_process" => {
                conf.track_processes.extend(track::process(node, &mut r))
            }
            "virtual_server" => {
                let found = lvs::virtual_server(node, &groups, marks, &mut r);
                conf.services.extend(found)
            }
            "vrrp_sync_group" => {
                conf.sync_groups.extend(sync_group::sync_group(node, &mut r))
            }
            _ => r.not_carried(node, &top),
        }
    }
    conf
}

/// `lvs_sync_daemon INTERFACE INSTANCE [id N] [maxlen N] [port N]
/// [ttl N] [group ADDR]`, or the old `INTERFACE INSTANCE N`: the
/// interface, instance and id carried; the rest warned about (the
/// kernel's defaults apply).
fn sync_daemon(
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<SyncDaemon> {
    let [interface, instance, rest @ ..] = node.args.as_slice() else {
        let m = "`lvs_sync_daemon` is not carried over: it needs an \
                 interface and a VRRP instance";
        r.warn(node, block, m);
        return None;
    };
    let mut out = SyncDaemon {
        interface: interface.clone(),
        instance: instance.clone(),
        sync_id: None,
    };
    let mut id = |v: &str, r: &mut Reader<'_>| match v.parse::<u8>() {
        Ok(n) => out.sync_id = Some(n),
        Err(_) => {
            let m = format!(
                "lvs_sync_daemon id `{v}` is not carried over: a sync id is \
                 0–255; the instance's VRID is used, as keepalived does"
            );
            r.warn(node, block, &m);
        }
    };
    let mut i = 0;
    while i < rest.len() {
        match (rest[i].as_str(), rest.get(i + 1)) {
            ("id", Some(v)) => {
                id(v, r);
                i += 2;
            }
            (k @ ("maxlen" | "port" | "ttl" | "group"), Some(v)) => {
                let m = format!(
                    "lvs_sync_daemon `{k} {v}` is not carried over: \
                     lbdeploy leaves the kernel's default"
                );
                r.warn(node, block, &m);
                i += 2;
            }
            (v, _) if i == 0 && v.bytes().all(|b| b.is_ascii_digit()) => {
                id(v, r);
                i += 1;
            }
            (v, _) => {
                let m = format!(
                    "lvs_sync_daemon `{v}` is not carried over: unknown \
                     option"
                );
                r.warn(node, block, &m);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Reads `global_defs` into `conf`, and into `defaults` what it sets for
/// every instance (`vrrp_version`, `vrrp_garp_*`).
fn global_defs(
    block: &Node,
    conf: &mut Conf,
    defaults: &mut vrrp::Defaults,
    r: &mut Reader<'_>,
) {
    let mut to = Vec::new();
    let mut fields = Fields::new(&block.pos);
    let (mut from, mut server, mut timeout) = (None, None, None);
    let mut garp = defaults.garp.unwrap_or_default();
    let mut lower_set = false;
    for node in block.children() {
        match node.keyword.as_str() {
            "router_id" | "lvs_id" => {
                conf.router_id = r.one(node, block).map(|v| Spanned {
                    value: v.to_owned(),
                    pos: node.pos.clone(),
                });
            }
            "notification_email" => {
                fields.set("to", &node.pos);
                to.extend(node.children().iter().map(|c| c.label()));
            }
            "notification_email_from" => {
                fields.set("from", &node.pos);
                from = r.one(node, block).map(str::to_owned);
            }
            "smtp_server" => {
                fields.set("smtp_server", &node.pos);
                server = match node.args.as_slice() {
                    [host] => Some(host.clone()),
                    [host, port] if host.contains(':') => {
                        Some(format!("[{host}]:{port}"))
                    }
                    [host, port] => Some(format!("{host}:{port}")),
                    _ => r.one(node, block).map(str::to_owned),
                };
            }
            "smtp_connect_timeout" => {
                fields.set("timeout", &node.pos);
                timeout = r.seconds(node, block);
            }
            "vrrp_version" => {
                defaults.version = r.number(node, block).or(defaults.version)
            }
            "v3_checksum_as_v2" => {
                if let Some(on) = vrrp::flag(node, block, r) {
                    defaults.v3_checksum_as_v2 = on;
                }
            }
            "enable_script_security" => conf.script_security = true,
            "script_user" => {
                conf.script_user = r
                    .script_user(&node.args, node, block)
                    .map(|value| Spanned::at(value, node))
            }
            "vrrp_rt_priority" => {
                conf.rt_priority = r.number(node, block).and_then(|n: u32| {
                    let p = RtPriority::new(n);
                    if p.is_none() {
                        let m = format!(
                            "`vrrp_rt_priority {n}` is not carried over: \
                             a real-time priority is 1–99"
                        );
                        r.warn(node, block, &m);
                    }
                    Some((p?, node.pos.clone()))
                });
            }
            "vrrp_no_swap" | "checker_no_swap" => conf.no_swap = true,
            "lvs_sync_daemon" => {
                conf.sync_daemon = sync_daemon(node, block, r)
                    .map(|value| Spanned::at(value, node))
            }
            k if k.strip_prefix("vrrp_").is_some_and(|g| {
                lower_set |= g.starts_with("garp_lower_prio");
                vrrp::garp_keyword(&mut garp, g, node, block, r)
            }) =>
            {
                defaults.garp = Some(garp);
            }
            // Quoted only when it could be a keyword: an `include` of a
            // file that is no configuration must not be echoed.
            k if !value::looks_like_a_keyword(k) => r.not_carried(node, block),
            _ => {
                let m = format!(
                    "`{}` is not carried over: lbdeploy has no such global \
                     setting; its default behaviour applies",
                    node.keyword
                );
                r.warn(node, block, &m);
            }
        }
    }
    match (to.is_empty(), server) {
        (false, Some(smtp_server)) => {
            let from = from.unwrap_or_else(|| {
                r.warn(
                    block,
                    block,
                    "no notification_email_from: keepalived's default \
                     sender `keepalived@localhost` is written",
                );
                "keepalived@localhost".to_owned()
            });
            let timeout = timeout.unwrap_or(Duration::from_secs(30));
            conf.email =
                Some((Email::relay(to, from, smtp_server, timeout), fields));
        }
        (false, None) => r.warn(
            block,
            block,
            "notification_email without smtp_server sends nothing; no email \
             notification is written",
        ),
        (true, _) => {}
    }
    // keepalived: the lower-priority bursts default to the master's.
    if let Some(g) = defaults.garp.as_mut().filter(|_| !lower_set) {
        g.lower_priority_delay = g.master_delay;
        g.lower_priority_repeat = g.master_repeat;
    }
}

/// Which block may open where, from keepalived.conf(5). Blocks not listed
/// may open anywhere; the keyword layer reports them as unknown.
struct Keepalived;

impl Grammar for Keepalived {
    fn may_open(&self, parent: &str, child: &str) -> bool {
        let parents: &[&str] = match child {
            "global_defs"
            | "vrrp_instance"
            | "vrrp_sync_group"
            | "vrrp_script"
            | "virtual_server"
            | "virtual_server_group"
            | "static_ipaddress"
            | "static_routes"
            | "static_rules" => &[""],
            "notification_email" => &["global_defs"],
            "authentication"
            | "virtual_ipaddress"
            | "virtual_ipaddress_excluded"
            | "unicast_peer"
            | "virtual_routes"
            | "virtual_rules" => &["vrrp_instance"],
            "group" => &["vrrp_sync_group"],
            "track_script" | "track_interface" | "track_file" => {
                &["vrrp_instance", "vrrp_sync_group", "real_server"]
            }
            "real_server" => &["virtual_server"],
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK"
            | "SMTP_CHECK" | "DNS_CHECK" | "BFD_CHECK" | "UDP_CHECK"
            | "PING_CHECK" | "FILE_CHECK" => &["real_server"],
            "url" => &["HTTP_GET", "SSL_GET"],
            _ => return true,
        };
        parents.contains(&parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_server_cannot_open_in_real_server() {
        assert!(!Keepalived.may_open("real_server", "real_server"));
        assert!(Keepalived.may_open("virtual_server", "real_server"));
        assert!(Keepalived.may_open("", "something_new"));
    }

    /// A cheap stand-in for the fuzz target that runs with `cargo test`:
    /// every prefix of a real file (cut mid-block, mid-quote) is reported
    /// on, never a panic.
    #[test]
    fn every_truncation_of_a_config_is_diagnosed_without_panic() {
        let text = "global_defs {\n router_id a\n}\nvrrp_instance V {\n \
                    virtual_router_id 5\n notify_master \"/x y\"\n \
                    virtual_ipaddress {\n 10.0.0.1/24 label eth0:1\n }\n}\n\
                    virtual_server_group G {\n 10.0.0.1-3 80\n}\n\
                    virtual_server group G {\n lb_kind DR\n real_server \
                    10.0.0.9 80 {\n HTTP_GET {\n url {\n path /\n }\n }\n \
                    }\n}\n";
        for end in (0..=text.len()).filter(|&e| text.is_char_boundary(e)) {
            let mut report = Report::default();
            read_str(Path::new("t.conf"), &text[..end], &mut report);
        }
    }

    /// `lvs_sync_daemon` in its forms: `id N`, the old bare id, none;
    /// a bad id and unknown options warned about, the rest carried.
    #[test]
    fn lvs_sync_daemon_carries_interface_instance_and_id() {
        let read = |line: &str| {
            let mut report = Report::default();
            let text = format!("global_defs {{\n {line}\n}}\n");
            let c = read_str(Path::new("t.conf"), &text, &mut report);
            (c.sync_daemon.map(|s| s.value), report.items.len())
        };
        let d = |id| SyncDaemon {
            interface: "eth1".into(),
            instance: "VI_1".into(),
            sync_id: id,
        };
        assert_eq!(
            read("lvs_sync_daemon eth1 VI_1 id 7"),
            (Some(d(Some(7))), 0)
        );
        assert_eq!(read("lvs_sync_daemon eth1 VI_1 9"), (Some(d(Some(9))), 0));
        assert_eq!(read("lvs_sync_daemon eth1 VI_1"), (Some(d(None)), 0));
        assert_eq!(
            read("lvs_sync_daemon eth1 VI_1 id 300"),
            (Some(d(None)), 1)
        );
        assert_eq!(
            read("lvs_sync_daemon eth1 VI_1 ttl 2 group 224.0.0.81 x"),
            (Some(d(None)), 3)
        );
        assert_eq!(read("lvs_sync_daemon eth1"), (None, 1));
    }
}
