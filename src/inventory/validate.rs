//! Semantic validation: the rules that span fields, hosts and protocols.
//!
//! Pure: it sees the typed inventory and an [`Environment`] that answers
//! whether a secret's variable or file exists, and returns findings with
//! field paths. The loader attaches lines and columns. Every rule runs; the
//! operator gets every problem at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::diag::Finding;
use super::schema::{
    Check, Dataplane, Director, ExecCheck, Forwarding, HttpCheck, Inventory,
    TcpCheck, VirtualService, VrrpInstance,
};

/// What lbdeploy may ask of the controller's environment: secrets named by
/// an environment variable or a file must exist before anything runs, and
/// are read when the hosts' files are rendered.
pub trait Environment {
    /// The environment variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The file's content, if it exists and is readable.
    fn read_file(&self, path: &Path) -> Option<String>;
}

/// The real environment of this process.
pub struct System;

impl Environment for System {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// The longest interface name Linux accepts (IFNAMSIZ − 1).
const IFNAME_MAX: usize = 15;

/// Check every cross-field rule; `base` is the inventory's directory, against
/// which relative secret files are resolved.
pub fn validate(
    inv: &Inventory,
    base: &Path,
    env: &dyn Environment,
) -> Vec<Finding> {
    let mut out = Vec::new();
    hosts(inv, &mut out);
    for (i, vi) in inv.vrrp_instances.iter().enumerate() {
        vrrp_instance(
            inv,
            vi,
            &format!("vrrp_instances[{i}]"),
            base,
            env,
            &mut out,
        );
    }
    vrids(inv, &mut out);
    let vips = vrrp_vips(inv);
    let mut seen = HashMap::new();
    for (i, vs) in inv.virtual_services.iter().enumerate() {
        let path = format!("virtual_services[{i}]");
        if let Some(first) = seen.insert((vs.vip, vs.port, vs.protocol), i) {
            out.push(Finding::error(
                &path,
                format!(
                    "{} is defined twice (first at virtual_services[{first}]) \
                     — merge the two entries",
                    service_label(vs)
                ),
            ));
        }
        virtual_service(inv, vs, &path, &vips, &mut out);
    }
    if let Some(n) = &inv.notification {
        notification(n, &mut out);
    }
    out
}

/// `VIP:PORT/proto`, how services are named in messages.
pub fn service_label(vs: &VirtualService) -> String {
    let proto = format!("{:?}", vs.protocol).to_lowercase();
    // A Port is 1–65535: the narrowing cannot lose anything.
    format!("{}/{proto}", SocketAddr::new(vs.vip, vs.port.get() as u16))
}

// ===== hosts =====

fn hosts(inv: &Inventory, out: &mut Vec<Finding>) {
    if inv.directors.is_empty() {
        out.push(Finding::error(
            "directors",
            "no directors — list at least one load-balancer host",
        ));
    }
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut addrs: HashMap<IpAddr, String> = HashMap::new();
    let all = inv
        .directors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (format!("directors[{i}]"), &d.name, d.address, &d.interface)
        })
        .chain(inv.real_servers.iter().enumerate().map(|(i, r)| {
            (format!("real_servers[{i}]"), &r.name, r.address, &r.interface)
        }));
    for (path, name, address, interface) in all {
        if let Some(first) = names.insert(name.as_str(), path.clone()) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "host name `{name}` is already used by {first} — \
                     host names must be unique"
                ),
            ));
        }
        if let Some(first) = addrs.insert(address.addr, path.clone()) {
            out.push(Finding::error(
                format!("{path}.address"),
                format!(
                    "address {} is already used by {first} — every host \
                     needs its own address",
                    address.addr
                ),
            ));
        }
        interface_name(interface, &format!("{path}.interface"), out);
    }
    if let Some(lab) = &inv.lab {
        for (field, a) in
            [("controller", lab.controller), ("client", lab.client)]
        {
            if let Some(first) = addrs.insert(a.addr, format!("lab.{field}")) {
                out.push(Finding::error(
                    format!("lab.{field}"),
                    format!(
                        "address {} is already used by {first} — the lab \
                         hosts need addresses of their own",
                        a.addr
                    ),
                ));
            }
        }
    }
    let vips: Vec<(String, IpAddr)> = inv
        .vrrp_instances
        .iter()
        .enumerate()
        .flat_map(|(i, vi)| {
            vi.virtual_addresses.iter().enumerate().map(move |(j, va)| {
                (
                    format!(
                        "vrrp_instances[{i}].virtual_addresses[{j}].address"
                    ),
                    va.address.addr,
                )
            })
        })
        .collect();
    for (path, vip) in vips {
        if let Some(owner) = addrs.get(&vip) {
            out.push(Finding::error(
                path,
                format!(
                    "VIP {vip} is the address of {owner} — a VIP must be an \
                     address no host owns"
                ),
            ));
        }
    }
}

fn interface_name(name: &str, path: &str, out: &mut Vec<Finding>) {
    let valid = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && !name.contains(['/', ' ', ':'])
        && name != "."
        && name != "..";
    if !valid {
        out.push(Finding::error(
            path,
            format!(
                "`{name}` is not a Linux interface name — use 1–{IFNAME_MAX} \
                 characters without `/`, `:` or spaces"
            ),
        ));
    }
}

// ===== VRRP =====

fn vrrp_instance(
    inv: &Inventory,
    vi: &VrrpInstance,
    path: &str,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    let v2 = vi.version == 2;
    if vi.version != 2 && vi.version != 3 {
        out.push(Finding::error(
            format!("{path}.version"),
            format!(
                "VRRP version {} does not exist — use 2 (RFC 3768, \
                 keepalived's default) or 3 (RFC 5798)",
                vi.version
            ),
        ));
    }
    advert_int(vi, path, out);
    if vi.virtual_addresses.is_empty() {
        out.push(Finding::error(
            format!("{path}.virtual_addresses"),
            "no virtual addresses — list the VIP(s) this instance carries",
        ));
    }
    for (j, va) in vi.virtual_addresses.iter().enumerate() {
        let vpath = format!("{path}.virtual_addresses[{j}]");
        if v2 && va.address.addr.is_ipv6() {
            out.push(Finding::error(
                format!("{vpath}.address"),
                "VRRPv2 carries only IPv4 addresses — use `version: 3` for \
                 an IPv6 VIP",
            ));
        }
        if let Some(label) = &va.label {
            label_matches(inv, label, &format!("{vpath}.label"), out);
        }
    }
    one_family(vi, path, out);
    if let Some(auth) = &vi.authentication {
        let apath = format!("{path}.authentication");
        if vi.version == 3 {
            out.push(Finding::error(
                &apath,
                "VRRPv3 has no authentication (RFC 5798 §9 removed it) — \
                 remove `authentication` or use `version: 2`",
            ));
        }
        let sources = [
            auth.password.is_some(),
            auth.password_env.is_some(),
            auth.password_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            out.push(Finding::error(
                &apath,
                "give the password exactly one way: `password`, \
                 `password_env` or `password_file`",
            ));
        }
        if let Some(p) = &auth.password
            && p.len() > 8
        {
            out.push(Finding::error(
                format!("{apath}.password"),
                format!(
                    "the password is {} bytes but VRRPv2 PASS carries at \
                     most 8 — shorten it (keepalived would silently cut it)",
                    p.len()
                ),
            ));
        }
        if let Some(var) = &auth.password_env
            && env.var(var).is_none()
        {
            out.push(Finding::error(
                format!("{apath}.password_env"),
                format!(
                    "environment variable `{var}` is not set — export it \
                     before running lbdeploy"
                ),
            ));
        }
        if let Some(file) = &auth.password_file
            && env.read_file(&base.join(file)).is_none()
        {
            out.push(Finding::error(
                format!("{apath}.password_file"),
                format!(
                    "cannot read `{}` — create it, or fix the path \
                     (relative paths start at the inventory's directory)",
                    file.display()
                ),
            ));
        }
    }
    priorities(inv, vi, path, out);
}

/// An instance speaks one address family (RFC 5798 §5.2.5: an advert
/// lists addresses of one family, and IPv4 and IPv6 adverts are separate
/// exchanges), set by its first VIP; its VIPs and unicast peers follow it.
fn one_family(vi: &VrrpInstance, path: &str, out: &mut Vec<Finding>) {
    let Some(first) = vi.virtual_addresses.first() else { return };
    let v6 = first.address.addr.is_ipv6();
    let family = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
    for (j, va) in vi.virtual_addresses.iter().enumerate().skip(1) {
        if va.address.addr.is_ipv6() != v6 {
            out.push(Finding::error(
                format!("{path}.virtual_addresses[{j}].address"),
                format!(
                    "{} is {} but the instance's first VIP is {} — an \
                     instance carries one address family; put the {} VIPs \
                     in an instance of their own (another VRID)",
                    va.address.addr,
                    family(!v6),
                    family(v6),
                    family(!v6),
                ),
            ));
        }
    }
    for (k, peer) in vi.unicast_peers.iter().enumerate() {
        if peer.is_ipv6() != v6 {
            out.push(Finding::error(
                format!("{path}.unicast_peers[{k}]"),
                format!(
                    "peer {peer} is {} but the instance's VIPs are {} — \
                     list the peers' {} addresses",
                    family(!v6),
                    family(v6),
                    family(v6),
                ),
            ));
        }
    }
}

fn advert_int(vi: &VrrpInstance, path: &str, out: &mut Vec<Finding>) {
    let d = vi.advert_int.get();
    let centis = d.as_millis() / 10;
    let problem = if vi.version == 2 {
        (d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 255).then(
            || {
                format!(
                    "VRRPv2 advertises in whole seconds, 1s–255s, not {} — \
                     round it, or use `version: 3` for sub-second adverts",
                    vi.advert_int
                )
            },
        )
    } else {
        (d.as_nanos() % 10_000_000 != 0 || centis == 0 || centis > 4095).then(
            || {
                format!(
                    "VRRPv3 advertises in centiseconds, 10ms–40.95s, not {} — \
                     use a multiple of 10ms in that range",
                    vi.advert_int
                )
            },
        )
    };
    out.extend(
        problem.map(|m| Finding::error(format!("{path}.advert_int"), m)),
    );
}

/// A label must start with the interface name (`eth0:1` on `eth0`): the
/// kernel refuses any other label for an IPv4 address.
fn label_matches(
    inv: &Inventory,
    label: &str,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let interfaces: HashSet<&str> =
        inv.directors.iter().map(|d| d.interface.as_str()).collect();
    if !interfaces.iter().any(|i| label.starts_with(i))
        || label.len() > IFNAME_MAX
    {
        let mut names: Vec<_> = interfaces.into_iter().collect();
        names.sort();
        out.push(Finding::error(
            path,
            format!(
                "label `{label}` does not start with the directors' \
                 interface ({}) — the kernel requires e.g. `{}:1`, at most \
                 {IFNAME_MAX} characters",
                names.join(", "),
                names.first().unwrap_or(&"eth0")
            ),
        ));
    }
}

fn priorities(
    inv: &Inventory,
    vi: &VrrpInstance,
    path: &str,
    out: &mut Vec<Finding>,
) {
    for name in vi.priorities.keys() {
        if !inv.directors.iter().any(|d| &d.name == name) {
            out.push(Finding::error(
                format!("{path}.priorities.{name}"),
                format!(
                    "`{name}` is not a director — {}",
                    known_directors(inv)
                ),
            ));
        }
    }
    let mut by_priority: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (i, d) in inv.directors.iter().enumerate() {
        let p = effective_priority(vi, d);
        if p == 255 {
            let field = match vi.priorities.contains_key(&d.name) {
                true => format!("{path}.priorities.{}", d.name),
                false => format!("directors[{i}].priority"),
            };
            out.push(Finding::error(
                field,
                "priority 255 is reserved for the owner of the VIP address, \
                 which an LVS-DR director never is — use 1–254",
            ));
        }
        by_priority.entry(p).or_default().push(&d.name);
    }
    for (p, names) in by_priority.into_iter().filter(|(_, n)| n.len() > 1) {
        out.push(Finding::warning(
            path,
            format!(
                "directors {} share priority {p} in {} — the election falls \
                 to the higher address; give each its own priority",
                names.join(", "),
                vi.name
            ),
        ));
    }
}

/// The priority a director runs an instance with.
pub fn effective_priority(vi: &VrrpInstance, d: &Director) -> u32 {
    vi.priorities.get(&d.name).unwrap_or(&d.priority).get()
}

fn known_directors(inv: &Inventory) -> String {
    let names: Vec<_> = inv.directors.iter().map(|d| d.name.as_str()).collect();
    format!("directors are: {}", names.join(", "))
}

/// VRIDs share one number space per segment and VRRP version; two instances
/// with the same VRID would fight over the same virtual MAC.
fn vrids(inv: &Inventory, out: &mut Vec<Finding>) {
    let mut names = HashSet::new();
    let mut seen = HashMap::new();
    for (i, vi) in inv.vrrp_instances.iter().enumerate() {
        let path = format!("vrrp_instances[{i}]");
        if !names.insert(vi.name.as_str()) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "instance name `{}` is used twice — rename one",
                    vi.name
                ),
            ));
        }
        let family =
            vi.virtual_addresses.first().map(|v| v.address.addr.is_ipv4());
        let key = (vi.virtual_router_id, vi.version, family);
        if let Some(first) = seen.insert(key, i) {
            out.push(Finding::error(
                format!("{path}.virtual_router_id"),
                format!(
                    "virtual_router_id {} is already used by \
                     vrrp_instances[{first}] — each instance on a segment \
                     needs its own VRID",
                    vi.virtual_router_id
                ),
            ));
        }
    }
}

/// Every VIP some VRRP instance carries.
fn vrrp_vips(inv: &Inventory) -> HashSet<IpAddr> {
    inv.vrrp_instances
        .iter()
        .flat_map(|vi| vi.virtual_addresses.iter().map(|va| va.address.addr))
        .collect()
}

// ===== virtual services =====

fn virtual_service(
    inv: &Inventory,
    vs: &VirtualService,
    path: &str,
    vips: &HashSet<IpAddr>,
    out: &mut Vec<Finding>,
) {
    if !vips.contains(&vs.vip) {
        out.push(Finding::error(
            format!("{path}.vip"),
            format!(
                "{} is not a virtual address of any VRRP instance — add it \
                 to a `virtual_addresses` list, or no director will hold it",
                vs.vip
            ),
        ));
    }
    if vs.vip.is_ipv6() {
        out.push(Finding::error(
            format!("{path}.vip"),
            format!(
                "IPv6 virtual services are not supported yet: VRRP carries \
                 an IPv6 VIP, but the data plane (nftables or IPVS) has not \
                 been built and tested for IPv6 — keep {} in \
                 `virtual_addresses` only",
                vs.vip
            ),
        ));
    }
    if vs.forwarding != Forwarding::Dr {
        out.push(Finding::error(
            format!("{path}.forwarding"),
            format!(
                "`{}` forwarding is not supported yet — use `dr`",
                format!("{:?}", vs.forwarding).to_lowercase()
            ),
        ));
    }
    if inv.dataplane == Dataplane::Nftables && !vs.scheduler.is_stateless() {
        out.push(Finding::error(
            format!("{path}.scheduler"),
            format!(
                "the `{}` scheduler needs connection state, which the \
                 nftables data plane does not keep — use `dataplane: ipvs`, \
                 or one of rr, wrr, sh, mh",
                format!("{:?}", vs.scheduler).to_lowercase()
            ),
        ));
    }
    if vs.persistence_timeout.is_some() && vs.scheduler.is_hashing() {
        out.push(Finding::warning(
            format!("{path}.persistence_timeout"),
            format!(
                "the `{}` scheduler already sends a client to the same real \
                 server; persistence adds nothing — remove one of them",
                format!("{:?}", vs.scheduler).to_lowercase()
            ),
        ));
    }
    if vs.real_servers.is_empty() {
        out.push(Finding::warning(
            format!("{path}.real_servers"),
            "no real servers — the service will accept no traffic",
        ));
    }
    let mut targets = HashSet::new();
    for (j, rs) in vs.real_servers.iter().enumerate() {
        let rpath = format!("{path}.real_servers[{j}]");
        let target = match (&rs.host, rs.address) {
            (Some(host), None) => {
                match inv.real_servers.iter().find(|h| &h.name == host) {
                    Some(h) => Some(h.address.addr),
                    None => {
                        out.push(Finding::error(
                            format!("{rpath}.host"),
                            format!(
                                "`{host}` is not a host in `real_servers` — \
                                 add it there, or write `address:` for a \
                                 server lbdeploy does not manage"
                            ),
                        ));
                        None
                    }
                }
            }
            (None, Some(addr)) => Some(addr),
            _ => {
                out.push(Finding::error(
                    &rpath,
                    "give exactly one of `host` (a managed real server) or \
                     `address` (an unmanaged one)",
                ));
                None
            }
        };
        if let Some(t) = target
            && !targets.insert((t, rs.port))
        {
            out.push(Finding::error(
                &rpath,
                format!(
                    "{t}:{} is listed twice in this service — remove one",
                    rs.port
                ),
            ));
        }
        for (k, check) in rs.checks.iter().enumerate() {
            let cpath = format!("{rpath}.checks[{k}]");
            check_rules(check, target, &cpath, out);
        }
    }
    quorum(vs, path, out);
    let weights: u64 =
        vs.real_servers.iter().map(|r| u64::from(r.weight.get())).sum();
    if u64::from(vs.quorum) > weights && !vs.real_servers.is_empty() {
        out.push(Finding::warning(
            format!("{path}.quorum"),
            format!(
                "quorum {} exceeds the total weight {weights} of the real \
                 servers — the service can never be up",
                vs.quorum
            ),
        ));
    }
}

/// keepalived's quorum rules: a service needs some live weight, and the
/// hysteresis band around the quorum must leave it above zero — keepalived
/// would quietly lower it to `quorum - 1`; here the operator decides.
fn quorum(vs: &VirtualService, path: &str, out: &mut Vec<Finding>) {
    if vs.quorum == 0 {
        out.push(Finding::error(
            format!("{path}.quorum"),
            "quorum 0 is met with no real server at all — use 1 (the \
             default) or more: the live weight the service needs",
        ));
    } else if vs.hysteresis >= vs.quorum {
        out.push(Finding::error(
            format!("{path}.hysteresis"),
            format!(
                "hysteresis {} is not below quorum {} — the service would \
                 only lose quorum with no live weight at all; use at most {}",
                vs.hysteresis,
                vs.quorum,
                vs.quorum - 1
            ),
        ));
    }
}

/// The most consecutive successes a check may ask for before a server is
/// back: at `rise × delay_loop`, more than this keeps a repaired server out
/// for longer than anyone means to.
pub(crate) const MAX_RISE: u32 = 100;

/// A check's rules: those of every kind (`rise`), then its own kind's,
/// under `{path}.{kind}`. `target` is the real server's address, when
/// known.
fn check_rules(
    check: &Check,
    target: Option<IpAddr>,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let path = format!("{path}.{}", check.kind());
    let rise = check.timing().rise;
    if !(1..=MAX_RISE).contains(&rise) {
        out.push(Finding::error(
            format!("{path}.rise"),
            format!(
                "rise {rise} is out of range — give 1–{MAX_RISE} consecutive \
                 successes before a failed server is back (1, the default, \
                 is keepalived's behaviour)"
            ),
        ));
    }
    match check {
        Check::Tcp(tcp) => tcp_rules(tcp, target, &path, out),
        Check::HttpGet(http) => http_rules(http, &path, out),
        Check::Exec(exec) => exec_rules(exec, &path, out),
        // Nothing beyond every kind's rules: it has only timing.
        Check::Ping(_) => {}
    }
}

fn tcp_rules(
    tcp: &TcpCheck,
    target: Option<IpAddr>,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if let Some(t) = target
        && tcp.half_open
        && t.is_ipv6()
    {
        out.push(Finding::error(
            format!("{path}.half_open"),
            format!(
                "half-open checks send IPv4 SYNs, and {t} is IPv6 — \
                 remove `half_open` for a full TCP connect"
            ),
        ));
    }
}

fn exec_rules(exec: &ExecCheck, path: &str, out: &mut Vec<Finding>) {
    if exec.command.trim().is_empty() {
        out.push(Finding::error(
            format!("{path}.command"),
            "the command is empty — give the program (and its arguments) \
             that exits 0 when the real server is fine",
        ));
    }
}

fn http_rules(http: &HttpCheck, path: &str, out: &mut Vec<Finding>) {
    if !http.path.starts_with('/') {
        out.push(Finding::error(
            format!("{path}.path"),
            format!(
                "`{}` must start with `/`, e.g. `/lvstest.html`",
                http.path
            ),
        ));
    }
    if !(100..=599).contains(&http.status_code) {
        out.push(Finding::error(
            format!("{path}.status_code"),
            format!("{} is not an HTTP status — use 100–599", http.status_code),
        ));
    }
    if let Some(d) = &http.digest
        && (d.len() != 32 || !d.chars().all(|c| c.is_ascii_hexdigit()))
    {
        out.push(Finding::error(
            format!("{path}.digest"),
            "a digest is the body's MD5 as 32 hex digits — compute it with \
             `curl -s URL | md5sum` (keepalived's genhash prints the same)",
        ));
    }
    if let Some(re) = &http.body_regex
        && let Err(e) = regex::Regex::new(re)
    {
        let first = e.to_string().lines().last().unwrap_or_default().to_owned();
        out.push(Finding::error(
            format!("{path}.body_regex"),
            format!("not a valid regular expression ({})", first.trim()),
        ));
    }
}

fn notification(n: &super::schema::Notification, out: &mut Vec<Finding>) {
    if let Some(email) = &n.email {
        let addrs =
            email.to.iter().enumerate().map(|(i, a)| (format!("to[{i}]"), a));
        for (field, addr) in addrs.chain([("from".to_owned(), &email.from)]) {
            if !addr.contains('@') {
                out.push(Finding::error(
                    format!("notification.email.{field}"),
                    format!(
                        "`{addr}` is not an email address — use name@domain"
                    ),
                ));
            }
        }
    }
    if let Some(url) = &n.webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        out.push(Finding::error(
            "notification.webhook",
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
}
