//! Reading keyword values: numbers, seconds, addresses, with errors that
//! name the keyword, the enclosing block and what to write instead; and the
//! one place that says what happens to a keyword lbdeploy cannot represent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use crate::import::diag::{Pos, Report};
use crate::import::parser::Node;
use crate::inventory::{Bounded, Duration, Port, ScriptUser};

/// Where each field of an imported section came from, by the field's path
/// in the inventory (`advert_int`, `real_servers.10.0.0.1:80.weight`); the
/// merge uses it to point at both files when the directors disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    /// The block the section comes from.
    pub block: Pos,
    map: BTreeMap<String, Pos>,
}

impl Fields {
    /// Positions of a section read from the block at `block`.
    pub fn new(block: &Pos) -> Self {
        Self { block: block.clone(), map: BTreeMap::new() }
    }

    /// Record that `path` was set at `pos`.
    pub fn set(&mut self, path: impl Into<String>, pos: &Pos) {
        self.map.insert(path.into(), pos.clone());
    }

    /// Whether the block set `path`, whatever its value was worth: a
    /// required field given a bad value was reported where it stands,
    /// and is not missing too.
    pub fn has(&self, path: &str) -> bool {
        self.map.contains_key(path)
    }

    /// Where `path` was set, or where its nearest recorded parent was (a
    /// field left at its default points at its block).
    pub fn at(&self, path: &str) -> &Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.map.get(path) {
                return pos;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return &self.block,
            }
        }
    }
}

/// A value with the line it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub pos: Pos,
}

impl<T> Spanned<T> {
    /// `value`, read from `node`'s line.
    pub fn at(value: T, node: &Node) -> Self {
        Self { value, pos: node.pos.clone() }
    }
}

/// keepalived's checkers put a server back on its first success; an
/// imported check keeps that.
pub(super) const KEEPALIVED_RISE: u32 = 1;

/// The timing every checker shares, with keepalived's defaults.
#[derive(Clone, Copy)]
pub(super) struct Timing {
    pub(super) connect_timeout: Duration,
    pub(super) retry: u32,
    pub(super) delay_before_retry: Duration,
    pub(super) connect_port: Option<Port>,
}

/// Store a value that was read; a bad one was reported and the default
/// stays.
pub(super) fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Reads values and reports problems, naming the enclosing block.
pub(crate) struct Reader<'r> {
    /// Where problems go.
    pub report: &'r mut Report,
}

impl Reader<'_> {
    /// An error about `node` inside `block`.
    pub fn error(&mut self, node: &Node, block: &Node, message: &str) {
        let scope = scope(node, block);
        self.report.error(Some(&node.pos), format!("{scope}{message}"));
    }

    /// A warning about `node` inside `block`.
    pub(crate) fn warn(&mut self, node: &Node, block: &Node, message: &str) {
        let scope = scope(node, block);
        self.report.warn(Some(&node.pos), format!("{scope}{message}"));
    }

    /// The single value of a `keyword value` statement.
    pub fn one<'n>(&mut self, node: &'n Node, block: &Node) -> Option<&'n str> {
        match node.args.as_slice() {
            [value] => Some(value),
            [] => {
                let m = format!("`{}` needs a value", node.keyword);
                self.error(node, block, &m);
                None
            }
            [value, extra @ ..] => {
                let m = format!(
                    "`{}` takes one value; `{}` is ignored",
                    node.keyword,
                    extra.join(" ")
                );
                self.warn(node, block, &m);
                Some(value)
            }
        }
    }

    /// keepalived's `USER [GROUP]` (`script_user`, a script's `user`, the
    /// words after a notify script), from `words`, as the inventory's
    /// `USER[:GROUP]`; `None`, with an error, when more words follow or
    /// a name is not one the inventory takes.
    pub fn script_user(
        &mut self,
        words: &[String],
        node: &Node,
        block: &Node,
    ) -> Option<ScriptUser> {
        let text = match words {
            [user] => user.clone(),
            [user, group] => format!("{user}:{group}"),
            _ => {
                let m = format!(
                    "`{}`: expected a user and an optional group, not `{}`",
                    node.keyword,
                    words.join(" ")
                );
                self.error(node, block, &m);
                return None;
            }
        };
        text.parse()
            .map_err(|e| {
                self.error(node, block, &format!("`{}`: {e}", node.keyword))
            })
            .ok()
    }

    /// A whole number in `MIN..=MAX`.
    pub fn bounded<const MIN: u32, const MAX: u32>(
        &mut self,
        node: &Node,
        block: &Node,
    ) -> Option<Bounded<MIN, MAX>> {
        let value = self.one(node, block)?;
        let parsed = value.parse().ok().and_then(Bounded::new);
        if parsed.is_none() {
            let m = format!(
                "`{} {value}`: expected a whole number {MIN}–{MAX}",
                node.keyword
            );
            self.error(node, block, &m);
        }
        parsed
    }

    /// A plain number (`retry 3`, `quorum 2`).
    pub fn number<T: FromStr>(
        &mut self,
        node: &Node,
        block: &Node,
    ) -> Option<T> {
        let value = self.one(node, block)?;
        let parsed = value.parse().ok();
        if parsed.is_none() {
            let m =
                format!("`{} {value}`: expected a whole number", node.keyword);
            self.error(node, block, &m);
        }
        parsed
    }

    /// Seconds, as keepalived writes them (`3`, `0.5`).
    pub fn seconds(&mut self, node: &Node, block: &Node) -> Option<Duration> {
        let value = self.one(node, block)?;
        let parsed = value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .map(|s| Duration::from_millis((s * 1000.0).round() as u64));
        if parsed.is_none() {
            let m = format!(
                "`{} {value}`: expected seconds, such as `3` or `0.5`",
                node.keyword
            );
            self.error(node, block, &m);
        }
        parsed
    }

    /// An IP address written as `value`.
    pub fn ip(
        &mut self,
        node: &Node,
        block: &Node,
        value: &str,
    ) -> Option<IpAddr> {
        let parsed = value.parse().ok();
        if parsed.is_none() {
            let m = format!(
                "{} is not an IP address — write one such as \
                 `192.168.1.21` or `2001:db8::21`",
                shown_value(value)
            );
            self.error(node, block, &m);
        }
        parsed
    }

    /// A keyword lbdeploy has no place for: say so, and what follows.
    pub(crate) fn not_carried(&mut self, node: &Node, block: &Node) {
        let m = match consequence(&node.keyword) {
            Some(what) => {
                format!("`{}` is not carried over: {what}", node.keyword)
            }
            None if looks_like_a_keyword(&node.keyword) => format!(
                "unknown keyword `{}` is not carried over — check its \
                 spelling against keepalived.conf(5)",
                node.keyword
            ),
            // Not quoted: an `include` of a file that is no configuration
            // (`/etc/shadow`) must not copy its lines into the output.
            None => "a line that is no keepalived statement is not carried \
                     over"
                .to_owned(),
        };
        self.warn(node, block, &m);
    }
}

/// Whether `word` could be a keepalived keyword, and so is safe to quote
/// back: letters, digits and `_`, at most 64, with at least one `_`
/// (`lb_algo`, `virtual_router_id`). keepalived's one-word keywords are
/// all known to the import, so an unknown one-word "keyword" is more
/// likely a word of some other file than a typo; its line is named, not
/// quoted.
pub(super) fn looks_like_a_keyword(word: &str) -> bool {
    (1..=64).contains(&word.len())
        && word.contains('_')
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A value that should have been an address or a number, as a message
/// may show it: quoted when it is made of what addresses, ranges and
/// numbers are made of (`80`, `10.0.0.300`, `10.0.0.1/24`), else not
/// at all. An address's place is often a block's line of its own
/// (`virtual_ipaddress`, `unicast_peer`, a group's members), which an
/// `include` of a file that is no configuration fills with its lines.
pub(super) fn shown_value(value: &str) -> String {
    let addressy = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b".:/-%".contains(&b))
        && value.bytes().any(|b| b.is_ascii_digit());
    match addressy {
        true => format!("`{value}`"),
        false => "this value (not shown)".to_owned(),
    }
}

/// `in vrrp_instance VI_1 (line 12): `; `virtual_server fwmark 1: ` about
/// a block's own header; nothing at the top level.
fn scope(node: &Node, block: &Node) -> String {
    if std::ptr::eq(node, block) {
        return format!("{}: ", node.label());
    }
    match block.keyword.as_str() {
        "" => String::new(),
        _ => format!(
            "in {} ({}): ",
            block.label(),
            block.pos.relative_to(&node.pos)
        ),
    }
}

/// What happens to a keyword lbdeploy cannot represent yet, by keyword.
fn consequence(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "SSL" => {
            "keepalived loads its `ca` but never verifies a server with it, \
             and lbdeploy has no client certificates — to verify, write \
             `tls: { verify: true, ca_file: … }` on the http_get checks"
        }
        "track_bfd" | "vrrp_track_bfd" => {
            "lbdeploy does not track BFD sessions; the instance's priority \
             will not follow them"
        }
        "virtual_routes" | "virtual_rules" | "static_routes"
        | "static_rules" | "static_ipaddress" => {
            "lbdeploy manages no routes, rules or static addresses; keep \
             them in the hosts' network configuration"
        }
        "notify_stop" | "notify_deleted" | "notify_up" | "notify_down" => {
            "lbdeploy runs notify scripts only on master, backup and fault \
             transitions"
        }
        "garp_master_refresh" | "garp_master_refresh_repeat" => {
            "lbdeploy sends gratuitous ARP on becoming master and when it \
             hears a lower priority, never again while it stays master"
        }
        "use_vmac"
        | "vmac_xmit_base"
        | "native_ipv6"
        | "dont_track_primary"
        | "mcast_src_ip"
        | "accept"
        | "no_accept"
        | "strict_mode"
        | "lvs_sync_daemon_interface"
        | "debug" => {
            "lbdeploy has no such setting; its default behaviour applies"
        }
        "persistence_granularity"
        | "ha_suspend"
        | "alpha"
        | "omega"
        | "quorum_up"
        | "quorum_down"
        | "ops"
        | "sorry_server_inhibit"
        | "uthreshold"
        | "lthreshold"
        | "one_packet_scheduling" => {
            "lbdeploy's virtual services have no such setting yet; the \
             default applies"
        }
        "nat_mask" => {
            "it only matters to NAT services; lbdeploy does direct \
                       routing"
        }
        // Every other checker takes it: only PING_CHECK leaves it here.
        "connect_port" => "an ICMP echo has no port; the ping check needs none",
        "bindto" | "bind_port" | "connect_ip" | "warmup" | "delay_loop"
        | "fwmark" => {
            "lbdeploy's checks have no such setting yet; the check runs \
             without it"
        }
        "BFD_CHECK" | "FILE_CHECK" => {
            "lbdeploy has no such check yet (its kinds: tcp, http_get, exec, \
             ping, dns, udp, smtp); this check is left out, so the real server is \
             judged by its other checks (or always up without any)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What may stand where an address goes is shown; a line of some
    /// other file (a password, a shadow entry, prose) is not.
    #[test]
    fn only_address_like_values_are_shown() {
        for shown in ["80", "10.0.0.300", "10.0.0.1-300", "2001:db8::1/64"] {
            assert_eq!(shown_value(shown), format!("`{shown}`"));
        }
        for hidden in
            ["hunter2", "root:$y$j9T$s3cr3t:19000", "deadbeef", "::x1", ""]
        {
            assert_eq!(shown_value(hidden), "this value (not shown)");
        }
    }
}
