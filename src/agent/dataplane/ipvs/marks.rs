//! Port groups on IPVS: each group (`ports: [80, 443]`) is one IPVS
//! **fwmark service** (`ipvsadm -f`), and the packets of its ports are
//! given the service's mark by an nftables table lbdeploy owns,
//! `table inet lbdeploy_marks` — keepalived's fwmark service with the
//! mangle rules written for the operator. One service is what makes a
//! persistent group work: IPVS keeps one persistence template per client
//! and fwmark service, so a client stays on one real server across all
//! of the group's ports (FTP's control and data ports, HTTP and HTTPS).
//!
//! # Marks
//!
//! A group's mark is [`MARK_BASE`] plus a slot below [`MARK_SLOTS`]: the
//! slot is the FNV-1a hash of the group's identity — protocol, VIP and
//! first port, as `(protocol, VIP, port)` is a one-port service's — and a
//! slot already taken goes to the next free one, in the configuration's
//! order. So a group keeps its mark (and its IPVS service, its
//! connections and persistence templates) while other services come and
//! go or its later ports change; only a collision with a group listed
//! earlier can move it, at odds of about one in 4,096 per group.
//!
//! The range, `0x6c620000`–`0x6c620fff` (`0x6c62` is "lb" in ASCII), is
//! chosen away from the marks operators and common software use: small
//! numbers (hand-made fwmark services, `ip rule fwmark`), kube-proxy's
//! bits `0x4000` and `0x8000`, Tailscale's `0x40000` and `0x80000`,
//! WireGuard's `0xca6c`. The rule sets the whole mark (`meta mark set`)
//! of the packets it takes — those for the group's VIP, protocol and
//! ports only — so a mark someone set on them earlier is replaced, and a
//! rule that changes it later (a chain of higher priority on
//! `prerouting`) takes them out of the group's service.
//!
//! # The table
//!
//! One rule per group in a `prerouting` chain at priority `mangle`:
//! `ip daddr VIP meta l4proto tcp th dport { 80, 443 } meta mark set
//! MARK` (`ip6 daddr` for an IPv6 VIP; one `inet` table serves both
//! families). It is loaded whole with one `nft -f` transaction, after the
//! IPVS services (a mark never names a service not yet there), and
//! checked at every sync — listed only when the kernel's nftables
//! generation has moved since (someone committed something): a table
//! changed or removed by hand is loaded again. Without groups it is removed, and `agent cleanup` removes it
//! with the IPVS services once the agent is gone. Tables of other names
//! are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::agent::dataplane::nft::generation;
use crate::agent::sys::nftables;
use crate::inventory::agent::{DirectorConfig, ServiceConfig};
use crate::inventory::{PortSpan, Protocol};
use crate::util::fnv::fnv1a;

/// The table lbdeploy owns for the marks; nothing else in the ruleset is
/// touched.
pub const TABLE: &str = "lbdeploy_marks";

/// The first mark of lbdeploy's range (see the module's text for why
/// there).
pub const MARK_BASE: u32 = 0x6c62_0000;

/// How many marks the range has, so how many port groups one director
/// can have on IPVS: far more than any director needs, and the slot
/// stays in the low 12 bits, clear of the flag bits others test.
pub const MARK_SLOTS: u32 = 0x1000;

/// More port groups than [`MARK_SLOTS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "service {service}: more than {MARK_SLOTS} port groups — IPVS gives \
     each one a firewall mark of lbdeploy's range \
     ({MARK_BASE:#x}–{last:#x}), which has no more; merge groups",
    last = MARK_BASE + MARK_SLOTS - 1
)]
pub struct Full {
    /// The first group that got no mark.
    pub service: String,
}

/// Each port group's mark, by its index in `config.virtual_services`
/// (services with one `port` have none). Pure and deterministic: the
/// same configuration gives the same marks in every process.
///
/// # Errors
/// [`Full`] past [`MARK_SLOTS`] groups.
pub fn assign(config: &DirectorConfig) -> Result<BTreeMap<usize, u32>, Full> {
    let mut taken = BTreeSet::new();
    let mut marks = BTreeMap::new();
    for (i, svc) in config.virtual_services.iter().enumerate() {
        if !svc.is_group() {
            continue;
        }
        if taken.len() == MARK_SLOTS as usize {
            return Err(Full { service: svc.name.clone() });
        }
        let mut slot = (fnv1a(&identity(svc)) % u64::from(MARK_SLOTS)) as u32;
        while !taken.insert(slot) {
            slot = (slot + 1) % MARK_SLOTS;
        }
        marks.insert(i, MARK_BASE + slot);
    }
    Ok(marks)
}

/// What names a group whatever else changes: its protocol, VIP and first
/// port (two groups of one VIP and protocol share no port: validation).
fn identity(svc: &ServiceConfig) -> Vec<u8> {
    let mut key = vec![match svc.protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }];
    match svc.vip {
        IpAddr::V4(v4) => key.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => key.extend_from_slice(&v6.octets()),
    }
    key.extend_from_slice(&svc.port.get().to_be_bytes());
    key
}

/// One group's marking rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The VIP.
    pub vip: IpAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The group's ports.
    pub spans: Vec<PortSpan>,
    /// The mark its packets get: its IPVS service's.
    pub mark: u32,
}

/// The rules for `config`'s groups, marked as `marks` says.
pub fn rules(
    config: &DirectorConfig,
    marks: &BTreeMap<usize, u32>,
) -> Vec<Rule> {
    marks
        .iter()
        .filter_map(|(&i, &mark)| {
            let svc = config.virtual_services.get(i)?;
            Some(Rule {
                vip: svc.vip,
                protocol: svc.protocol,
                spans: svc.spans(),
                mark,
            })
        })
        .collect()
}

/// The `nft -f` script that makes the table hold exactly `rules`, in one
/// transaction: the `table` line before `delete table` makes the delete
/// succeed when there is no table yet. Pure.
pub fn script(rules: &[Rule]) -> String {
    let mut out = format!(
        "# Managed by the lbdeploy director agent: the marks of the IPVS \
         fwmark services of port groups.\n\
         table inet {TABLE}\ndelete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority mangle; policy accept;\n"
    );
    for r in rules {
        let family = match r.vip {
            IpAddr::V4(_) => "ip",
            IpAddr::V6(_) => "ip6",
        };
        let proto = match r.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let ports: Vec<String> =
            r.spans.iter().map(ToString::to_string).collect();
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "\t\t{family} daddr {} meta l4proto {proto} th dport {{ {} }} \
             meta mark set {:#x}",
            r.vip,
            ports.join(", "),
            r.mark
        );
    }
    out.push_str("\t}\n}\n");
    out
}

/// The script that removes the table, and succeeds when there is none.
fn delete_script() -> String {
    format!("table inet {TABLE}\ndelete table inet {TABLE}\n")
}

/// Whether `nft list tables inet` printed our table.
fn lists_our_table(listing: &str) -> bool {
    listing.lines().any(|l| {
        l.split_whitespace().eq(["table", "inet", TABLE].iter().copied())
    })
}

// ===== the table in the kernel =====

/// What the IPVS back end did to the mark table at a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// It was as loaded.
    Nothing,
    /// It was loaded: new rules, or a table changed by hand.
    Loaded,
    /// It was removed (no group left).
    Removed,
}

/// The mark table as this agent keeps it.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// The script last loaded and `nft list table`'s listing right after;
    /// `None` while no table is known to be ours.
    loaded: Option<(String, String)>,
    /// The kernel's nftables generation when the table last listed as
    /// loaded: while it has not moved, nobody has committed anything, so
    /// the table needs no listing ([`generation`]).
    generation: Option<u32>,
    /// Whether a table an earlier agent may have left was looked for.
    swept: bool,
}

impl Marks {
    /// Make the kernel's table hold `rules`: nothing when it still lists
    /// as it did after the last load of the same rules (not even listed
    /// while the nftables generation stands still), the whole table
    /// otherwise; removed when `rules` is empty and a table may be there
    /// (one this agent loaded, or at the first sync one an earlier agent
    /// left — looked for only where `nft` is installed: a director without
    /// groups needs no `nft`).
    ///
    /// # Errors
    /// When `nft` is missing or refuses the script.
    pub(crate) async fn sync(
        &mut self,
        rules: &[Rule],
    ) -> anyhow::Result<Change> {
        if rules.is_empty() {
            let ours = self.loaded.take().is_some();
            let look =
                !self.swept && crate::util::programs::which("nft").is_some();
            self.swept = true;
            if (ours || look) && delete_table().await? {
                return Ok(Change::Removed);
            }
            return Ok(Change::Nothing);
        }
        let text = script(rules);
        if let Some((loaded, listed)) = &self.loaded
            && *loaded == text
        {
            // Read before the listing: a commit after it moves the
            // generation again, and the next sync lists.
            let now = generation::current().ok();
            if now.is_some() && now == self.generation {
                return Ok(Change::Nothing);
            }
            if *listed == listing().await {
                self.generation = now;
                return Ok(Change::Nothing);
            }
            tracing::warn!(
                "ipvs: table inet {TABLE} was changed by hand; loading it \
                 again"
            );
        }
        self.loaded = None;
        nftables::load(&text, "the IPVS port groups' mark table").await?;
        self.swept = true;
        self.generation = generation::current().ok();
        self.loaded = Some((text, listing().await));
        Ok(Change::Loaded)
    }
}

/// `nft list table inet lbdeploy_marks`; empty when there is none (or
/// `nft` fails: the load that follows then says why).
async fn listing() -> String {
    nftables::query(&["list", "table", "inet", TABLE]).await.unwrap_or_default()
}

/// Delete our table if the kernel has it: at a sync without groups, and
/// in `agent cleanup` once the agent is gone. Only the table names are
/// listed first, so nothing is committed when there is nothing to do.
/// Whether there was a table to delete; `false` without `nft` installed
/// (nothing could have loaded one).
///
/// # Errors
/// When `nft` fails.
pub(crate) async fn delete_table() -> anyhow::Result<bool> {
    if crate::util::programs::which("nft").is_none() {
        return Ok(false);
    }
    let names = nftables::query(&["list", "tables", "inet"]).await?;
    if !lists_our_table(&names) {
        return Ok(false);
    }
    nftables::load(&delete_script(), "the IPVS port groups' mark table")
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "cluster: c
host: d1
interface: eth0
address: 10.0.0.11/24
dataplane: ipvs
vrrp_instances: []
virtual_services:
- name: single
  vip: 10.0.0.200
  port: 25
  protocol: tcp
  scheduler: rr
  delay_loop: 6s
  quorum: 1
  real_servers: []
- name: web
  vip: 10.0.0.200
  port: 80
  ports: [80, 443]
  protocol: tcp
  scheduler: mh
  delay_loop: 6s
  quorum: 1
  real_servers: []
- name: ftp6
  vip: 2001:db8::200
  port: 21
  ports: [21, 30000-30100]
  protocol: tcp
  scheduler: rr
  persistence_timeout: 5m
  delay_loop: 6s
  quorum: 1
  real_servers: []
";

    fn config(text: &str) -> DirectorConfig {
        serde_yaml::from_str(text).unwrap()
    }

    /// Groups only, each in lbdeploy's range, distinct, and the same in
    /// every run (the values are FNV-1a's, fixed).
    #[test]
    fn groups_get_marks_in_the_range() {
        let marks = assign(&config(CONFIG)).unwrap();
        assert_eq!(marks.keys().copied().collect::<Vec<_>>(), [1, 2]);
        for m in marks.values() {
            assert!((MARK_BASE..MARK_BASE + MARK_SLOTS).contains(m), "{m:#x}");
        }
        assert_ne!(marks[&1], marks[&2]);
        assert_eq!(marks, assign(&config(CONFIG)).unwrap(), "deterministic");
    }

    /// A group's mark depends on its protocol, VIP and first port only:
    /// not on its place in the list, the other services or its other
    /// ports.
    #[test]
    fn a_mark_survives_changes_around_its_group() {
        let before = assign(&config(CONFIG)).unwrap()[&1];
        let fewer = CONFIG.replace("  port: 25\n", "  port: 26\n");
        assert_eq!(assign(&config(&fewer)).unwrap()[&1], before);
        let more_ports = CONFIG.replace("[80, 443]", "[80, 443, 8443]");
        assert_eq!(assign(&config(&more_ports)).unwrap()[&1], before);
        let mut moved = config(CONFIG);
        moved.virtual_services.rotate_left(1);
        let marks = assign(&moved).unwrap();
        assert_eq!(marks[&0], before, "first in the list now");
        let other_port =
            CONFIG.replace("port: 80\n  ports: [80", "port: 81\n  ports: [81");
        assert_ne!(assign(&config(&other_port)).unwrap()[&1], before);
    }

    /// Colliding slots go to the next free one, in the configuration's
    /// order, and a full range is refused naming the group.
    #[test]
    fn collisions_take_the_next_slot_and_the_range_has_a_bound() {
        let group = |n: u32| {
            format!(
                "- name: g{n}\n  vip: 10.0.{}.{}\n  port: 80\n  ports: [80]\n  \
                 protocol: tcp\n  scheduler: rr\n  delay_loop: 6s\n  \
                 quorum: 1\n  real_servers: []\n",
                n / 256,
                n % 256
            )
        };
        let head = &CONFIG[..CONFIG.find("- name: single").unwrap()];
        let all: String = (0..MARK_SLOTS).map(group).collect();
        let marks = assign(&config(&format!("{head}{all}"))).unwrap();
        let distinct: BTreeSet<u32> = marks.values().copied().collect();
        assert_eq!(distinct.len(), MARK_SLOTS as usize, "every slot used once");
        // Some of them collided (4,096 hashes into 4,096 slots), and each
        // that did took the next free slot, so none is lost.
        let hashed: BTreeSet<u32> = config(&format!("{head}{all}"))
            .virtual_services
            .iter()
            .map(|s| (fnv1a(&identity(s)) % u64::from(MARK_SLOTS)) as u32)
            .collect();
        assert!(hashed.len() < MARK_SLOTS as usize, "the test collides");
        let one_more = format!("{head}{all}{}", group(MARK_SLOTS));
        assert_eq!(
            assign(&config(&one_more)).unwrap_err(),
            Full { service: format!("g{MARK_SLOTS}") }
        );
        assert!(
            Full { service: "x".into() }
                .to_string()
                .contains("0x6c620000–0x6c620fff")
        );
    }

    #[test]
    fn the_script_marks_each_group_by_family_protocol_and_ports() {
        let c = config(CONFIG);
        let marks = assign(&c).unwrap();
        let text = script(&rules(&c, &marks));
        let expected = format!(
            "# Managed by the lbdeploy director agent: the marks of the IPVS \
             fwmark services of port groups.\n\
             table inet lbdeploy_marks\n\
             delete table inet lbdeploy_marks\n\
             table inet lbdeploy_marks {{\n\
             \tchain prerouting {{\n\
             \t\ttype filter hook prerouting priority mangle; policy accept;\n\
             \t\tip daddr 10.0.0.200 meta l4proto tcp th dport {{ 80, 443 }} \
             meta mark set {:#x}\n\
             \t\tip6 daddr 2001:db8::200 meta l4proto tcp th dport \
             {{ 21, 30000-30100 }} meta mark set {:#x}\n\
             \t}}\n\
             }}\n",
            marks[&1], marks[&2]
        );
        assert_eq!(text, expected);
        let udp = CONFIG.replace(
            "port: 80\n  ports: [80, 443]\n  protocol: tcp",
            "port: 80\n  ports: [80, 443]\n  protocol: udp",
        );
        let c = config(&udp);
        assert!(
            script(&rules(&c, &assign(&c).unwrap()))
                .contains("meta l4proto udp th dport { 80, 443 }")
        );
    }

    #[test]
    fn our_table_is_found_among_the_table_names() {
        assert!(lists_our_table(
            "table inet filter\ntable inet lbdeploy_marks\n"
        ));
        assert!(!lists_our_table("table ip lbdeploy_marks\n"));
        assert!(!lists_our_table("table inet lbdeploy_marks_x\n"));
        assert!(!lists_our_table(""));
        assert!(
            delete_script().ends_with("delete table inet lbdeploy_marks\n")
        );
    }
}
