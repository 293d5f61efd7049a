//! Two (or more) directors' configurations → one inventory.
//!
//! What is each director's own — `priority`, `state`, `interface`,
//! `unicast_src_ip`, `router_id` — becomes the `directors` entries (and
//! per-instance `priorities` where an instance departs from a director's
//! usual priority). Everything else must agree: each VRRP instance and each
//! virtual service is compared field by field, real servers by `ADDR:PORT`,
//! and every difference is an error naming both files and lines. Only the
//! email settings may differ (each host tends to name itself as sender);
//! the first director's are kept, with a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::compare::{conflicts, differences};
use super::diag::{Pos, Report};
use super::keepalived::{Conf, Fields, Instance, Own, Spanned, SyncDaemon};
use super::request::{HostSpec, Request};
use super::rsscript::Script;
use crate::inventory::{
    ArpSuppression, Bounded, Director, IfAddr, Inventory, IpvsSync,
    Notification, RealServerHost, RtPriority, ScriptUser, SshDefaults,
    SyncGroup, TrackFile, TrackProcess, VirtualService, VrrpInstance,
    VrrpScript,
};

/// The merged inventory and, for each section, where it came from.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The inventory.
    pub inventory: Inventory,
    /// One origin note per entry of each list, in the inventory's order.
    pub origins: Origins,
}

/// Where each entry came from, as `file:line` notes for the YAML comments.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    /// Per director.
    pub directors: Vec<String>,
    /// Per managed real server.
    pub real_servers: Vec<String>,
    /// Per VRRP instance.
    pub vrrp_instances: Vec<String>,
    /// Per tracked script.
    pub vrrp_scripts: Vec<String>,
    /// Per sync group.
    pub vrrp_sync_groups: Vec<String>,
    /// Per tracked file.
    pub vrrp_track_files: Vec<String>,
    /// Per tracked process.
    pub vrrp_track_processes: Vec<String>,
    /// Per virtual service.
    pub virtual_services: Vec<String>,
    /// The notification settings.
    pub notification: Option<String>,
    /// The fields of each entry read from one block (the first
    /// director's), by section and index in the inventory: where a
    /// problem that only the inventory's validation finds is reported.
    pub fields: BTreeMap<(String, usize), Fields>,
}

impl Origins {
    /// The keepalived.conf line that the inventory field at `path`
    /// (`virtual_services[0].vip`) came from: the field's own line when
    /// it was read from one, else its block's.
    pub(crate) fn locate(&self, path: &str) -> Option<&Pos> {
        // A list's entry (`vrrp_instances[1].priority`), or a section of
        // its own (`notification.email.to`).
        let (section, index, rest) = match path.split_once('[') {
            Some((section, rest)) if !section.contains('.') => {
                let (index, rest) = rest.split_once(']')?;
                (section, index.parse().ok()?, rest)
            }
            _ => match path.split_once('.') {
                Some((section, rest)) => (section, 0, rest),
                None => (path, 0, ""),
            },
        };
        let fields = self.fields.get(&(section.to_owned(), index))?;
        Some(fields.at(rest.trim_start_matches('.')))
    }

    /// Record the fields of entry `index` of `section`.
    fn read(&mut self, section: &str, index: usize, fields: &Fields) {
        self.fields.insert((section.to_owned(), index), fields.clone());
    }

    /// Record the fields of every entry of `section`, and return the
    /// blocks they came from, for its comments.
    fn read_all(&mut self, section: &str, all: Vec<Fields>) -> Vec<String> {
        all.into_iter()
            .enumerate()
            .map(|(i, fields)| {
                let from = fields.block.file_line();
                self.fields.insert((section.to_owned(), i), fields);
                from
            })
            .collect()
    }
}

/// Merge the directors' configurations and the real-server scripts.
/// Problems go to `report`; `None` when nothing usable is left.
pub(crate) fn merge(
    confs: &[(String, Conf)],
    scripts: &[(String, Script)],
    req: &Request,
    report: &mut Report,
) -> Option<Merged> {
    confs.first()?;
    let mut origins = Origins::default();
    let instances = instances(confs, report);
    let vips: Vec<IfAddr> = instances
        .iter()
        .flat_map(|is| is[0].vrrp.virtual_addresses.iter().map(|v| v.address))
        .collect();
    let directors: Vec<Director> = confs
        .iter()
        .enumerate()
        .filter_map(|(i, (name, conf))| {
            let d =
                director(name, conf, &instances, i, &vips, &req.hosts, report)?;
            origins.directors.push(format!(
                "{name}: {}{}",
                conf.file.display(),
                conf.router_id
                    .as_ref()
                    .map(|r| format!(
                        " (router_id {} at line {})",
                        r.value, r.pos.line
                    ))
                    .unwrap_or_default()
            ));
            Some(d)
        })
        .collect();
    if directors.len() != confs.len() {
        return None;
    }
    let vrrp_instances = instances
        .iter()
        .enumerate()
        .map(|(n, is)| {
            origins
                .vrrp_instances
                .push(where_(is.iter().map(|i| &i.fields.block)));
            if let Some(first) = is.first() {
                origins.read("vrrp_instances", n, &first.fields);
            }
            vrrp_instance(is, &directors, report)
        })
        .collect();
    let mut virtual_services = services(confs, report, &mut origins);
    name_services(&mut virtual_services, &req.services, report);
    let names: Vec<&str> = directors.iter().map(|d| d.name.as_str()).collect();
    let real_servers = real_servers(
        &mut virtual_services,
        scripts,
        req,
        (&names, &vips),
        report,
        &mut origins,
    );
    let notification = notification(confs, report, &mut origins);
    let (vrrp_scripts, from) = by_name(
        confs.iter().flat_map(|(_, c)| &c.scripts),
        |s: &VrrpScript| &s.name,
        "vrrp_script",
        report,
    );
    origins.vrrp_scripts = origins.read_all("vrrp_scripts", from);
    let (vrrp_sync_groups, from) = by_name(
        confs.iter().flat_map(|(_, c)| &c.sync_groups),
        |g: &SyncGroup| &g.name,
        "vrrp_sync_group",
        report,
    );
    origins.vrrp_sync_groups = origins.read_all("vrrp_sync_groups", from);
    let (vrrp_track_files, from) = by_name(
        confs.iter().flat_map(|(_, c)| &c.track_files),
        |f: &TrackFile| &f.name,
        "vrrp_track_file",
        report,
    );
    origins.vrrp_track_files = origins.read_all("vrrp_track_files", from);
    let (vrrp_track_processes, from) = by_name(
        confs.iter().flat_map(|(_, c)| &c.track_processes),
        |p: &TrackProcess| &p.name,
        "vrrp_track_process",
        report,
    );
    origins.vrrp_track_processes =
        origins.read_all("vrrp_track_processes", from);
    let cluster = req.cluster.clone().unwrap_or_else(|| {
        stem(&directors.iter().map(|d| d.name.as_str()).collect::<Vec<_>>())
    });
    Some(Merged {
        inventory: Inventory {
            cluster,
            ssh: SshDefaults::default(),
            dataplane: req.dataplane.unwrap_or_default(),
            ipvs_sync: ipvs_sync(confs, &directors, report),
            directors,
            real_servers,
            vrrp_instances,
            vrrp_scripts,
            vrrp_sync_groups,
            vrrp_track_files,
            vrrp_track_processes,
            virtual_services,
            notification,
            bgp: None,
            script_security: confs.iter().any(|(_, c)| c.script_security),
            script_user: script_user(confs, report),
            vrrp_rt_priority: rt_priority(confs, report),
            vrrp_no_swap: confs.iter().any(|(_, c)| c.no_swap),
            metrics: None,
            lab: req.lab.clone(),
        },
        origins,
    })
}

/// The directors' `script_user`, when they agree; when they do not,
/// an error located in both (a script's user is no host's own choice:
/// the same inventory runs on every director).
fn script_user(
    confs: &[(String, Conf)],
    report: &mut Report,
) -> Option<ScriptUser> {
    let set: Vec<_> =
        confs.iter().filter_map(|(_, c)| c.script_user.as_ref()).collect();
    let first = set.first()?;
    for other in &set[1..] {
        if other.value != first.value {
            report.error(
                Some(&other.pos),
                format!(
                    "script_user {} differs from {} at {} — the directors \
                     must run their scripts as the same user",
                    other.value, first.value, first.pos
                ),
            );
        }
    }
    if set.len() < confs.len() {
        report.warn(
            Some(&first.pos),
            "script_user is set here but not in every director's \
             configuration: the inventory runs every director's scripts \
             as this user",
        );
    }
    Some(first.value.clone())
}

/// The directors' `lvs_sync_daemon`, as `ipvs_sync`: one instance and
/// sync id for all of them (those of the first that has one, with an
/// error where another differs); the interface left out when each
/// director's is its own VRRP interface, else the first's, with a
/// warning where another's differs.
fn ipvs_sync(
    confs: &[(String, Conf)],
    directors: &[Director],
    report: &mut Report,
) -> Option<IpvsSync> {
    let set: Vec<(&String, &Spanned<SyncDaemon>)> = confs
        .iter()
        .filter_map(|(name, c)| Some((name, c.sync_daemon.as_ref()?)))
        .collect();
    let (_, first) = set.first()?;
    let f = &first.value;
    for (_, other) in &set[1..] {
        let o = &other.value;
        if (&o.instance, o.sync_id) != (&f.instance, f.sync_id) {
            report.error(
                Some(&other.pos),
                format!(
                    "lvs_sync_daemon differs from the one at {} (instance \
                     {}, id {}) — the directors must sync with the same \
                     instance and id",
                    first.pos,
                    f.instance,
                    f.sync_id.map_or("the VRID".into(), |i| i.to_string())
                ),
            );
        }
    }
    if set.len() < confs.len() {
        report.warn(
            Some(&first.pos),
            "lvs_sync_daemon is set here but not in every director's \
             configuration: the inventory runs the sync daemon on every \
             director",
        );
    }
    let own = set.iter().all(|(name, d)| {
        directors
            .iter()
            .any(|x| &x.name == *name && x.interface == d.value.interface)
    });
    if !own {
        for (_, other) in &set[1..] {
            if other.value.interface != f.interface {
                report.warn(
                    Some(&other.pos),
                    format!(
                        "lvs_sync_daemon's interface {} differs from {} at \
                         {}: the inventory has one for all the directors; \
                         {} is written",
                        other.value.interface,
                        f.interface,
                        first.pos,
                        f.interface
                    ),
                );
            }
        }
    }
    Some(IpvsSync {
        instance: f.instance.clone(),
        interface: (!own).then(|| f.interface.clone()),
        sync_id: f.sync_id.and_then(|i| Bounded::new(u32::from(i))),
    })
}

/// The directors' `vrrp_rt_priority`: the inventory has one for all of
/// them, so where they differ (or one has none) the highest is written,
/// with a warning naming each.
fn rt_priority(
    confs: &[(String, Conf)],
    report: &mut Report,
) -> Option<RtPriority> {
    let highest =
        confs.iter().filter_map(|(_, c)| c.rt_priority.as_ref()).max();
    let (chosen, pos) = highest?;
    if confs
        .iter()
        .any(|(_, c)| c.rt_priority.as_ref().map(|p| p.0) != Some(*chosen))
    {
        let each: Vec<String> = confs
            .iter()
            .map(|(name, c)| match &c.rt_priority {
                Some((p, at)) => format!("{p} in {name} ({at})"),
                None => format!("none in {name}"),
            })
            .collect();
        report.warn(
            Some(pos),
            format!(
                "vrrp_rt_priority differs between the directors ({}): the \
                 inventory has one for all of them; {chosen} is written",
                each.join(", ")
            ),
        );
    }
    Some(*chosen)
}

/// `file:line, file:line`.
fn where_<'a>(positions: impl Iterator<Item = &'a Pos>) -> String {
    positions.map(Pos::file_line).collect::<Vec<_>>().join(", ")
}

/// The common name of the directors (`keepalived01`, `keepalived02` →
/// `keepalived`), for the cluster name when none is given.
fn stem(names: &[&str]) -> String {
    let first = names.first().copied().unwrap_or("keepalived");
    let common = names.iter().fold(first.len(), |n, other| {
        first
            .chars()
            .zip(other.chars())
            .take(n)
            .take_while(|(a, b)| a == b)
            .count()
    });
    let stem =
        first[..common].trim_end_matches(|c: char| !c.is_ascii_alphabetic());
    match stem {
        "" => first.to_owned(),
        s => s.to_owned(),
    }
}

// ===== VRRP =====

/// Each instance of the first director with its namesakes in the others,
/// in the first director's order; an instance missing anywhere is an error.
fn instances<'a>(
    confs: &'a [(String, Conf)],
    report: &mut Report,
) -> Vec<Vec<&'a Instance>> {
    let mut groups = Vec::new();
    for (i, (_, conf)) in confs.iter().enumerate() {
        for inst in &conf.instances {
            let known = groups
                .iter()
                .any(|g: &Vec<&Instance>| g[0].vrrp.name == inst.vrrp.name);
            if i > 0 && !known {
                report.error(
                    Some(&inst.fields.block),
                    format!(
                        "vrrp_instance {} is not in {} — every director must \
                         run the same instances",
                        inst.vrrp.name,
                        confs[0].1.file.display()
                    ),
                );
            }
            if known || i > 0 {
                continue;
            }
            let mut group = vec![inst];
            for (_, other) in &confs[1..] {
                match other
                    .instances
                    .iter()
                    .find(|o| o.vrrp.name == inst.vrrp.name)
                {
                    Some(o) => group.push(o),
                    None => report.error(
                        Some(&inst.fields.block),
                        format!(
                            "vrrp_instance {} is not in {} — every director \
                             must run the same instances",
                            inst.vrrp.name,
                            other.file.display()
                        ),
                    ),
                }
            }
            if group.len() == confs.len() {
                groups.push(group);
            }
        }
    }
    groups
}

/// A director from its own file: address, interface, priority and state.
fn director(
    name: &str,
    conf: &Conf,
    instances: &[Vec<&Instance>],
    index: usize,
    vips: &[IfAddr],
    hosts: &[HostSpec],
    report: &mut Report,
) -> Option<Director> {
    let own: Vec<_> = instances.iter().map(|g| &g[index].own).collect();
    let Some(first) = own.first() else {
        report.error(
            None,
            format!(
                "{} has no vrrp_instance lbdeploy can use — a director needs \
                 at least one",
                conf.file.display()
            ),
        );
        return None;
    };
    let interface = one_interface(name, &own, report);
    let spec = hosts.iter().find(|h| h.name == name);
    let src = own.iter().find_map(|o| o.unicast_src_ip.as_ref());
    let address = match (spec, src) {
        (Some(spec), _) => Some(spec.address),
        (None, Some(src)) => infer_prefix(src.value, vips),
        (None, None) => None,
    };
    let Some(address) = address else {
        report.error(
            src.map(|s| &s.pos),
            format!(
                "{name}'s own address {} — pass it with `--host \
                 {name}=ADDRESS/PREFIX`",
                match src {
                    Some(s) =>
                        format!("{} has no known prefix length", s.value),
                    None => format!("is not in {}", conf.file.display()),
                }
            ),
        );
        return None;
    };
    let interface = spec
        .and_then(|s| s.interface.clone())
        .or_else(|| interface.map(|i| i.value.clone()));
    let Some(interface) = interface else {
        report.error(
            None,
            format!(
                "{name}'s interface is not in {} — add `interface` to its \
                 vrrp_instance or pass `--host {name}=ADDRESS/PREFIX@IFACE`",
                conf.file.display()
            ),
        );
        return None;
    };
    Some(Director {
        name: name.to_owned(),
        address,
        interface,
        priority: first.priority.value,
        state: one_state(name, &own, report),
        metrics: None,
        bgp: None,
        ssh: None,
    })
}

/// The `state` every instance of a director that states one agrees on.
/// The inventory has one per director, a hint (the priorities decide the
/// election); where a director's instances differ (each director master
/// of its own), none is written, and each instance that differs from the
/// first is named.
fn one_state(
    name: &str,
    own: &[&Own],
    report: &mut Report,
) -> Option<crate::inventory::VrrpState> {
    let mut stated = own.iter().filter_map(|o| o.state.as_ref());
    let first = stated.next()?;
    let differ: Vec<_> = stated.filter(|s| s.value != first.value).collect();
    for other in &differ {
        report.warn(
            Some(&other.pos),
            format!(
                "state {} here, {} at {}: the inventory has one `state` per \
                 director, so none is written for {name} (it is a hint; \
                 each instance's priorities decide which director is \
                 master)",
                format!("{:?}", other.value).to_uppercase(),
                format!("{:?}", first.value).to_uppercase(),
                first.pos.relative_to(&other.pos)
            ),
        );
    }
    differ.is_empty().then_some(first.value)
}

/// The interface of a director's first instance that names one; every
/// other interface named is reported as not carried over.
fn one_interface<'a>(
    name: &str,
    own: &[&'a Own],
    report: &mut Report,
) -> Option<&'a Spanned<String>> {
    let interface = own.iter().find_map(|o| o.interface.as_ref());
    for o in own {
        if let (Some(a), Some(b)) = (interface, &o.interface)
            && a.value != b.value
        {
            report.warn(
                Some(&b.pos),
                format!(
                    "interface {} is not carried over: lbdeploy runs all of \
                     {name}'s instances on one interface, {} ({})",
                    b.value,
                    a.value,
                    a.pos.relative_to(&b.pos)
                ),
            );
        }
    }
    interface
}

/// An address without a prefix takes the prefix of a VIP whose subnet holds
/// it: in direct routing the directors, the real servers and the VIP share
/// one segment.
fn infer_prefix(addr: IpAddr, vips: &[IfAddr]) -> Option<IfAddr> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    vips.iter()
        .find(|v| v.prefix < max && v.contains(addr))
        .map(|v| IfAddr { addr, prefix: v.prefix })
}

/// One instance from every director's copy: shared fields must agree,
/// priorities that depart from a director's own go to `priorities`.
fn vrrp_instance(
    copies: &[&Instance],
    directors: &[Director],
    report: &mut Report,
) -> VrrpInstance {
    let shared = |i: &Instance| VrrpInstance {
        unicast_peers: Vec::new(),
        ..i.vrrp.clone()
    };
    let what = format!("vrrp_instance {}", copies[0].vrrp.name);
    for other in &copies[1..] {
        conflicts(
            &what,
            (&shared(copies[0]), &copies[0].fields),
            (&shared(other), &other.fields),
            report,
        );
    }
    let mut merged = shared(copies[0]);
    for (d, copy) in directors.iter().zip(copies) {
        if copy.own.priority.value != d.priority {
            merged.priorities.insert(d.name.clone(), copy.own.priority.value);
        }
    }
    let peers: Vec<BTreeSet<IpAddr>> = directors
        .iter()
        .zip(copies)
        .map(|(d, c)| {
            c.vrrp
                .unicast_peers
                .iter()
                .copied()
                .chain([d.address.addr])
                .collect()
        })
        .collect();
    if copies.iter().any(|c| !c.vrrp.unicast_peers.is_empty()) {
        for (copy, set) in copies.iter().zip(&peers).skip(1) {
            if *set != peers[0] {
                report.error(
                    Some(copy.fields.at("unicast_peers")),
                    format!(
                        "{what}: the unicast peers and this director's own \
                         address ({}) differ from {} ({}) — every director \
                         must list all the others",
                        list(set),
                        copies[0].fields.at("unicast_peers"),
                        list(&peers[0])
                    ),
                );
            }
        }
        let ordered = directors.iter().map(|d| d.address.addr);
        let rest = peers[0].iter().copied();
        for ip in ordered.chain(rest) {
            if !merged.unicast_peers.contains(&ip) {
                merged.unicast_peers.push(ip);
            }
        }
    }
    merged
}

fn list(set: &BTreeSet<IpAddr>) -> String {
    set.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

// ===== virtual services =====

fn key(vs: &VirtualService) -> (IpAddr, u16, crate::inventory::Protocol) {
    (vs.vip, vs.first_port(), vs.protocol)
}

fn services(
    confs: &[(String, Conf)],
    report: &mut Report,
    origins: &mut Origins,
) -> Vec<VirtualService> {
    let mut out = Vec::new();
    for (vs, fields) in &confs[0].1.services {
        let what = format!("virtual_server {} {}", vs.vip, vs.first_port());
        let mut places = vec![&fields.block];
        for (_, other) in &confs[1..] {
            match other.services.iter().find(|(o, _)| key(o) == key(vs)) {
                Some((o, of)) => {
                    conflicts(&what, (vs, fields), (o, of), report);
                    places.push(&of.block);
                }
                None => report.error(
                    Some(&fields.block),
                    format!(
                        "{what} is not in {} — every director must carry the \
                         same services",
                        other.file.display()
                    ),
                ),
            }
        }
        origins.virtual_services.push(where_(places.into_iter()));
        origins.read("virtual_services", out.len(), fields);
        out.push(vs.clone());
    }
    for (_, other) in &confs[1..] {
        for (o, of) in &other.services {
            if !out.iter().any(|vs| key(vs) == key(o)) {
                report.error(
                    Some(&of.block),
                    format!(
                        "virtual_server {} {} is not in {} — every director \
                         must carry the same services",
                        o.vip,
                        o.first_port(),
                        confs[0].1.file.display()
                    ),
                );
            }
        }
    }
    out
}

/// `--service NAME=VIP:PORT`.
fn name_services(
    services: &mut [VirtualService],
    names: &[(String, SocketAddr)],
    report: &mut Report,
) {
    for (name, at) in names {
        let found = services
            .iter_mut()
            .filter(|vs| vs.vip == at.ip() && vs.first_port() == at.port());
        let mut any = false;
        for vs in found {
            vs.name = Some(name.clone());
            any = true;
        }
        if !any {
            report.error(
                None,
                format!("--service {name}={at}: no virtual_server at {at}"),
            );
        }
    }
}

// ===== real servers =====

/// The hosts lbdeploy will manage: from `--realserver-script` and from
/// `--host` entries that are not directors. Services then refer to them by
/// name; the others stay unmanaged `address:` entries.
fn real_servers(
    services: &mut [VirtualService],
    scripts: &[(String, Script)],
    req: &Request,
    (directors, vips): (&[&str], &[IfAddr]),
    report: &mut Report,
    origins: &mut Origins,
) -> Vec<RealServerHost> {
    let mut hosts = Vec::new();
    for (name, script) in scripts {
        if let Some(h) = from_script(name, script, req, vips, report) {
            hosts.push(h);
        }
    }
    for spec in &req.hosts {
        let taken = hosts.iter().any(|(h, _)| h.name == spec.name)
            || directors.contains(&spec.name.as_str());
        if taken {
            continue;
        }
        let Some(interface) = spec.interface.clone() else {
            report.error(
                None,
                format!(
                    "--host {}: a real server needs its interface — write \
                     `{}={}@IFACE`",
                    spec.name, spec.name, spec.address
                ),
            );
            continue;
        };
        hosts.push((
            host(&spec.name, spec.address, interface),
            format!("{}: --host", spec.name),
        ));
    }
    refer_by_name(services, &hosts, report);
    let (hosts, notes): (Vec<_>, Vec<_>) = hosts.into_iter().unzip();
    origins.real_servers = notes;
    hosts
}

/// The managed real server a script describes, with where it came from;
/// `None` (reported) when its address or interface cannot be told.
fn from_script(
    name: &str,
    script: &Script,
    req: &Request,
    vips: &[IfAddr],
    report: &mut Report,
) -> Option<(RealServerHost, String)> {
    let vip_addrs: Vec<IpAddr> = vips.iter().map(|v| v.addr).collect();
    for v in script.vips.iter().filter(|v| !vip_addrs.contains(&v.value)) {
        report.warn(
            Some(&v.pos),
            format!(
                "{} is not a VIP of any vrrp_instance; lbdeploy puts only \
                 the instances' VIPs on the real servers",
                v.value
            ),
        );
    }
    let spec = req.hosts.iter().find(|h| h.name == *name);
    let address = spec.map(|s| s.address).or_else(|| {
        script.rip.as_ref().and_then(|rip| infer_prefix(rip.value, vips))
    });
    let interface = spec
        .and_then(|s| s.interface.clone())
        .or_else(|| script.interface.as_ref().map(|i| i.value.clone()));
    let (Some(address), Some(interface)) = (address, interface) else {
        report.error(
            None,
            format!(
                "{}: cannot tell {name}'s {} — pass `--host \
                 {name}=ADDRESS/PREFIX@IFACE`",
                script.file.display(),
                match (address, &script.rip) {
                    (None, None) => "address (the script names no RIP)",
                    (None, Some(_)) => "address's prefix length",
                    _ => "interface (the script puts the VIP on lo)",
                }
            ),
        );
        return None;
    };
    if let Some(pos) = &script.arptables {
        report.warn(
            Some(pos),
            format!(
                "{name}'s arptables rules are replaced by `arp_suppression: \
                 sysctl` (arp_ignore=1, arp_announce=2, kept by the agent); \
                 `arp_suppression: nftables` does what these rules do \
                 instead (ARP requests for the VIP dropped, ARP from the VIP \
                 sent as the real server's address)"
            ),
        );
    }
    let from = script
        .rip
        .as_ref()
        .map_or(script.file.display().to_string(), |r| r.pos.file_line());
    Some((host(name, address, interface), format!("{name}: {from}")))
}

/// Make services name the managed hosts instead of their addresses, and
/// warn once for each address left unmanaged.
fn refer_by_name(
    services: &mut [VirtualService],
    hosts: &[(RealServerHost, String)],
    report: &mut Report,
) {
    let mut unmanaged = BTreeSet::new();
    for rs in services.iter_mut().flat_map(|vs| vs.real_servers.iter_mut()) {
        let Some(addr) = rs.address else { continue };
        match hosts.iter().find(|(h, _)| h.address.addr == addr) {
            Some((h, _)) => {
                rs.host = Some(h.name.clone());
                rs.address = None;
            }
            None => {
                unmanaged.insert(addr);
            }
        }
    }
    for addr in unmanaged {
        report.warn(
            None,
            format!(
                "real server {addr} is written as unmanaged (`address:`): \
                 lbdeploy will not put the VIP on its lo nor suppress ARP \
                 there — pass --realserver-script or --host \
                 NAME={addr}/PREFIX@IFACE to manage it"
            ),
        );
    }
}

fn host(name: &str, address: IfAddr, interface: String) -> RealServerHost {
    RealServerHost {
        name: name.to_owned(),
        address,
        interface,
        arp_suppression: ArpSuppression::Sysctl,
        keep_vip_on_stop: false,
        metrics: None,
        ssh: None,
    }
}

// ===== scripts and sync groups =====

/// Every director's definitions of one kind (`vrrp_script`,
/// `vrrp_sync_group`), by name: the first director's is kept, and where
/// another director's differs, each difference is reported at its line.
/// Returns them with the fields of each.
fn by_name<'a, T: serde::Serialize + Clone + 'a>(
    entries: impl Iterator<Item = &'a (T, Fields)>,
    name: fn(&T) -> &str,
    kind: &str,
    report: &mut Report,
) -> (Vec<T>, Vec<Fields>) {
    let mut kept: Vec<&(T, Fields)> = Vec::new();
    for entry in entries {
        let (s, fields) = entry;
        match kept.iter().find(|(k, _)| name(k) == name(s)) {
            Some((first, ff)) => {
                for (pos, difference) in differences((first, ff), (s, fields)) {
                    report.warn(
                        Some(&pos),
                        format!(
                            "{kind} {}: {difference} — the inventory has one \
                             definition; the first director's is kept",
                            name(s)
                        ),
                    );
                }
            }
            None => kept.push(entry),
        }
    }
    kept.into_iter().map(|(s, f)| (s.clone(), f.clone())).unzip()
}

// ===== notification =====

fn notification(
    confs: &[(String, Conf)],
    report: &mut Report,
    origins: &mut Origins,
) -> Option<Notification> {
    let mut with_email = confs.iter().filter_map(|(_, c)| c.email.as_ref());
    let (email, fields) = with_email.next()?;
    for (other, of) in with_email {
        for (pos, difference) in differences((email, fields), (other, of)) {
            report.warn(
                Some(&pos),
                format!(
                    "notification email: {difference} — the inventory has \
                     one setting for the cluster; the first director's is \
                     kept"
                ),
            );
        }
    }
    origins.notification = Some(fields.block.file_line());
    origins.read("notification", 0, fields);
    Some(Notification {
        email: Some(email.clone()),
        exec: None,
        exec_user: None,
        webhook: None,
    })
}
