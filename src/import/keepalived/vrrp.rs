//! `vrrp_instance` blocks: the shared [`VrrpInstance`] and what belongs to
//! the one director whose file this is ([`Own`]: priority, state, interface,
//! unicast source).

use std::net::IpAddr;

use super::value::{Fields, Reader, Spanned};
use crate::import::parser::Node;
use crate::inventory::{
    AuthType, Authentication, Duration, Garp, IfAddr, NotifyHooks, Priority,
    VirtualAddress, VrrpInstance, VrrpState, split_words,
};

/// One `vrrp_instance` as read from one director's file.
#[derive(Debug, Clone)]
pub struct Instance {
    /// What both directors must agree on; `priorities` is left empty.
    pub vrrp: VrrpInstance,
    /// Where its fields were written.
    pub fields: Fields,
    /// What is this director's own.
    pub own: Own,
}

/// The settings of an instance that differ per director by design.
#[derive(Debug, Clone)]
pub struct Own {
    /// `priority` (keepalived's default is 100).
    pub priority: Spanned<Priority>,
    /// `state MASTER|BACKUP`.
    pub state: Option<Spanned<VrrpState>>,
    /// `interface`.
    pub interface: Option<Spanned<String>>,
    /// `unicast_src_ip`: this director's own address.
    pub unicast_src_ip: Option<Spanned<IpAddr>>,
}

/// keepalived's advert interval and priority when not written.
const DEFAULT_PRIORITY: u32 = 100;

/// What `global_defs` sets for every instance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults {
    /// `vrrp_version`.
    pub version: Option<u8>,
    /// `vrrp_garp_*`.
    pub garp: Option<Garp>,
    /// `v3_checksum_as_v2`.
    pub v3_checksum_as_v2: bool,
}

/// Whether `keyword` is a `garp_*` keyword the inventory's `garp` has
/// (`garp_master_refresh` is not).
fn is_garp_keyword(keyword: &str) -> bool {
    matches!(
        keyword,
        "garp_master_delay"
            | "garp_master_repeat"
            | "garp_lower_prio_delay"
            | "garp_lower_prio_repeat"
    )
}

/// Read one `garp_*` keyword (`vrrp_garp_*` in `global_defs`, without the
/// prefix) into `garp`; `false` when `keyword` is none of them.
pub fn garp_keyword(
    garp: &mut Garp,
    keyword: &str,
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) -> bool {
    if !is_garp_keyword(keyword) {
        return false;
    }
    let (delay, repeat) = match keyword {
        "garp_master_delay" => (Some(&mut garp.master_delay), None),
        "garp_master_repeat" => (None, Some(&mut garp.master_repeat)),
        "garp_lower_prio_delay" => (Some(&mut garp.lower_priority_delay), None),
        "garp_lower_prio_repeat" => {
            (None, Some(&mut garp.lower_priority_repeat))
        }
        _ => return false,
    };
    if let (Some(slot), Some(v)) = (delay, r.seconds(node, block)) {
        *slot = v;
    }
    if let (Some(slot), Some(v)) = (repeat, r.number(node, block)) {
        *slot = v;
    }
    true
}

/// Read a `vrrp_instance`; `None` when it has no name or no VRID.
///
/// Long on purpose: one match arm per keepalived keyword of the block, a
/// table to read beside keepalived.conf(5); split up, the table would be
/// scattered.
pub fn instance(
    block: &Node,
    defaults: Defaults,
    r: &mut Reader<'_>,
) -> Option<Instance> {
    let Some(name) = block.args.first().cloned() else {
        r.error(block, block, "`vrrp_instance` needs a name, e.g. `VI_1`");
        return None;
    };
    let mut fields = Fields::new(&block.pos);
    let mut vrid = None;
    let mut version = defaults.version;
    let mut vrrp = VrrpInstance {
        name,
        virtual_router_id: Priority::new(1)?,
        version: 2,
        advert_int: Duration::from_secs(1),
        authentication: None,
        preempt: true,
        preempt_delay: None,
        priorities: Default::default(),
        unicast_peers: Vec::new(),
        v3_checksum_as_v2: defaults.v3_checksum_as_v2,
        virtual_addresses: Vec::new(),
        notify: None,
        smtp_alert: false,
        garp: defaults.garp,
        track: Default::default(),
    };
    let mut own = Own {
        priority: Spanned {
            value: Priority::new(DEFAULT_PRIORITY)?,
            pos: block.pos.clone(),
        },
        state: None,
        interface: None,
        unicast_src_ip: None,
    };
    // The `state MASTER` line, when there is one.
    let mut master = None;
    for node in block.children() {
        let key = node.keyword.as_str();
        match key {
            "state" => {
                own.state = state(node, block, r).map(|s| Spanned::at(s, node));
                master = own
                    .state
                    .as_ref()
                    .filter(|s| s.value == VrrpState::Master)
                    .map(|_| node);
            }
            "interface" => {
                own.interface =
                    r.one(node, block).map(|i| Spanned::at(i.to_owned(), node));
            }
            "priority" => {
                if let Some(p) = r.bounded(node, block) {
                    own.priority = Spanned::at(p, node);
                }
            }
            "unicast_src_ip" => {
                own.unicast_src_ip = r
                    .one(node, block)
                    .and_then(|v| r.ip(node, block, v))
                    .map(|ip| Spanned::at(ip, node));
            }
            "virtual_router_id" => vrid = r.bounded(node, block),
            "version" => version = r.number(node, block),
            "advert_int" => {
                vrrp.advert_int =
                    r.seconds(node, block).unwrap_or(vrrp.advert_int)
            }
            "nopreempt" => vrrp.preempt = false,
            "preempt_delay" => vrrp.preempt_delay = r.seconds(node, block),
            "smtp_alert" => {
                if let Some(on) = flag(node, block, r) {
                    vrrp.smtp_alert = on;
                }
            }
            "v3_checksum_as_v2" => {
                if let Some(on) = flag(node, block, r) {
                    vrrp.v3_checksum_as_v2 = on;
                }
            }
            "authentication" => vrrp.authentication = authentication(node, r),
            "unicast_peer" => {
                for peer in node.children() {
                    if let Some(ip) = r.ip(peer, node, &peer.keyword) {
                        vrrp.unicast_peers.push(ip);
                    }
                }
            }
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                if key == "virtual_ipaddress_excluded" {
                    r.warn(
                        node,
                        block,
                        "virtual_ipaddress_excluded is imported as ordinary \
                         virtual addresses: lbdeploy announces every VIP in \
                         its adverts",
                    );
                }
                for line in node.children() {
                    let i = vrrp.virtual_addresses.len();
                    if let Some(va) = vip(line, node, own.interface.as_ref(), r)
                    {
                        fields
                            .set(format!("virtual_addresses[{i}]"), &line.pos);
                        vrrp.virtual_addresses.push(va);
                    }
                }
            }
            k if notify_keyword(&mut vrrp.notify, k, node, block, r) => {}
            "track_script" | "track_interface" | "track_file"
            | "track_process" => {
                super::track::track_list(&mut vrrp.track, node, block, r)
            }
            // Only a keyword the inventory has makes a `garp:` block.
            k if is_garp_keyword(k) => {
                let garp = vrrp.garp.get_or_insert_with(Garp::default);
                garp_keyword(garp, k, node, block, r);
            }
            _ => {
                r.not_carried(node, block);
                continue;
            }
        }
        fields.set(field_of(key), &node.pos);
    }
    // keepalived 2.x runs `state MASTER` without a priority as the
    // address owner (vrrp.c: "derive it from the initial state").
    if !fields.has("priority")
        && let Some(node) = master
    {
        r.warn(
            node,
            block,
            &format!(
                "`state MASTER` without a `priority`: keepalived 2.x runs \
                 this instance at 255, the address owner's priority, \
                 keepalived 1.x at {DEFAULT_PRIORITY}; {DEFAULT_PRIORITY} \
                 is written — write the priority you mean"
            ),
        );
    }
    vrrp.virtual_router_id = match vrid {
        Some(id) => id,
        None if fields.has("virtual_router_id") => return None,
        None => {
            r.error(block, block, "no `virtual_router_id` — add one (1–255)");
            return None;
        }
    };
    vrrp.version = version_for(&vrrp, version, block, r);
    if vrrp.version == 3 && vrrp.authentication.take().is_some() {
        r.warn(
            block,
            block,
            "authentication is dropped: VRRPv3 has none (RFC 5798 §9)",
        );
    }
    Some(Instance { vrrp, fields, own })
}

/// Read a `notify_master|backup|fault` or `notify` line into `hooks`;
/// `false` when `keyword` is none of them. As keepalived reads it, the
/// line is `KEYWORD SCRIPT [USER [GROUP]]`: the script is one word (quote
/// it to give it arguments), and what follows is who runs it. lbdeploy
/// has one user per block of hooks: a hook that names another than the
/// block's first is reported.
pub fn notify_keyword(
    hooks: &mut Option<NotifyHooks>,
    keyword: &str,
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) -> bool {
    let hooks = match keyword {
        "notify_master" | "notify_backup" | "notify_fault" | "notify" => {
            hooks.get_or_insert_with(NotifyHooks::default)
        }
        _ => return false,
    };
    let Some((script, who)) = node.args.split_first() else {
        r.error(node, block, &format!("`{keyword}` needs a script"));
        return true;
    };
    let user = match who {
        [] => None,
        who => r.script_user(who, node, block),
    };
    match (&hooks.user, user) {
        (_, None) => {}
        (None, Some(user)) => hooks.user = Some(user),
        (Some(first), Some(user)) if *first == user => {}
        (Some(first), Some(user)) => {
            let m = format!(
                "runs as {user}, but lbdeploy runs all of a block's notify \
                 hooks as one user: this one runs as {first}, the first \
                 named"
            );
            r.warn(node, block, &m);
        }
    }
    let slot = match keyword {
        "notify_master" => &mut hooks.master,
        "notify_backup" => &mut hooks.backup,
        "notify_fault" => &mut hooks.fault,
        _ => &mut hooks.any,
    };
    // keepalived splits the script's string into its argv on whitespace,
    // quotes grouping words; lbdeploy runs the same argv without a shell.
    *slot = Some(split_words(script));
    true
}

/// The inventory field a keyword sets, for conflict positions.
fn field_of(keyword: &str) -> &str {
    match keyword {
        "nopreempt" => "preempt",
        "unicast_peer" => "unicast_peers",
        "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
            "virtual_addresses"
        }
        k if k.starts_with("notify") => "notify",
        k if k.starts_with("garp_") => "garp",
        "track_script" | "track_interface" | "track_file" | "track_process" => {
            "track"
        }
        k => k,
    }
}

/// `state MASTER|BACKUP`; `SLAVE` is the old word for `BACKUP`.
fn state(node: &Node, block: &Node, r: &mut Reader<'_>) -> Option<VrrpState> {
    match r.one(node, block)?.to_ascii_uppercase().as_str() {
        "MASTER" => Some(VrrpState::Master),
        "BACKUP" | "SLAVE" => Some(VrrpState::Backup),
        other => {
            let m = format!("`state {other}`: expected MASTER or BACKUP");
            r.error(node, block, &m);
            None
        }
    }
}

/// The VRRP version: keepalived runs IPv6 instances as v3 whatever the
/// default says.
fn version_for(
    vrrp: &VrrpInstance,
    written: Option<u8>,
    block: &Node,
    r: &mut Reader<'_>,
) -> u8 {
    let v6 = vrrp.virtual_addresses.iter().any(|v| v.address.addr.is_ipv6());
    match written {
        Some(2) | None if v6 => {
            if written.is_some() {
                r.warn(
                    block,
                    block,
                    "IPv6 VIPs need VRRPv3: version 3 is used",
                );
            }
            3
        }
        Some(v) => v,
        None => 2,
    }
}

/// A keyword that is on alone or with a boolean, as keepalived reads it
/// (`true`/`yes`/`on`/`1`, `false`/`no`/`off`/`0`); `None` after an error.
pub(super) fn flag(
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<bool> {
    match node.args.first().map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => Some(true),
        Some("false" | "no" | "off" | "0") => Some(false),
        Some(_) => {
            let m = format!("`{}` takes true or false", node.keyword);
            r.error(node, block, &m);
            None
        }
    }
}

fn authentication(block: &Node, r: &mut Reader<'_>) -> Option<Authentication> {
    let (mut kind, mut password) = (None, None);
    for node in block.children() {
        match node.keyword.as_str() {
            "auth_type" => {
                kind = r.one(node, block).map(str::to_ascii_uppercase)
            }
            "auth_pass" => password = r.one(node, block).map(str::to_owned),
            _ => r.not_carried(node, block),
        }
    }
    match kind.as_deref() {
        Some("PASS") => {}
        Some("AH") => {
            r.warn(
                block,
                block,
                "auth_type AH is not carried over: AH was removed from VRRP \
                 (RFC 5798 §9) and lbdeploy sends no authentication instead",
            );
            return None;
        }
        other => {
            let m = format!(
                "auth_type {}: expected PASS",
                other.unwrap_or("(missing)")
            );
            r.error(block, block, &m);
            return None;
        }
    }
    let Some(mut password) = password else {
        r.error(
            block,
            block,
            "auth_type PASS needs an `auth_pass` (keepalived would send an \
             empty password)",
        );
        return None;
    };
    if password.len() > 8 {
        let m = format!(
            "auth_pass is {} bytes; VRRPv2 carries 8 and keepalived sends \
             only the first 8, so that is what is imported",
            password.len()
        );
        r.warn(block, block, &m);
        let mut end = 8;
        while !password.is_char_boundary(end) {
            end -= 1;
        }
        password.truncate(end);
    }
    Some(Authentication {
        kind: AuthType::Pass,
        password: Some(password),
        password_env: None,
        password_file: None,
    })
}

/// One `virtual_ipaddress` line: `ADDR[/PREFIX] [dev IF] [label L] ...`.
/// keepalived adds an address written without a prefix as /32 (/128).
fn vip(
    line: &Node,
    block: &Node,
    interface: Option<&Spanned<String>>,
    r: &mut Reader<'_>,
) -> Option<VirtualAddress> {
    let (addr, prefix) = match line.keyword.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (line.keyword.as_str(), None),
    };
    let addr = r.ip(line, block, addr)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix.map(str::parse::<u8>) {
        None => max,
        Some(Ok(p)) if p <= max => p,
        Some(_) => {
            let m = format!(
                "`{}`: the prefix length must be 0–{max}",
                line.keyword
            );
            r.error(line, block, &m);
            return None;
        }
    };
    let mut label = None;
    let mut options = line.args.chunks(2);
    for option in options.by_ref() {
        match option {
            [k, v] if k == "label" => label = Some(v.clone()),
            [k, v] if k == "dev" => {
                if interface.is_some_and(|i| i.value != *v) {
                    let m = format!(
                        "`dev {v}` is not carried over: lbdeploy puts every \
                         VIP on the director's interface"
                    );
                    r.warn(line, block, &m);
                }
            }
            other => {
                let m = format!(
                    "`{}` is not carried over: lbdeploy adds the VIP with its \
                     address, prefix and label only",
                    other.join(" ")
                );
                r.warn(line, block, &m);
            }
        }
    }
    Some(VirtualAddress { address: IfAddr { addr, prefix }, label })
}
