//! Telling a table edited by hand from ours, cheaply. Pure.
//!
//! Listing 1,000 services' table costs `nft` seconds, so the periodic
//! check works in three steps, each only when the one before could not
//! settle it:
//!
//! 1. The kernel's nftables [generation](super::generation) has not moved
//!    since lbdeploy's own last transaction: nothing has touched any
//!    table, ours is intact. One netlink request.
//! 2. It moved: the table's structure (its chain, rules and map
//!    declarations, from the terse `nft -t list ruleset`, which leaves
//!    elements out) is compared with what it was after lbdeploy loaded
//!    it. Any difference — table deleted, rule or map removed or edited —
//!    and the whole table is loaded again, within the same check.
//! 3. The structure is intact: the elements are compared service by
//!    service — its bucket map and its two incarnation maps, whose
//!    elements the packet path's pins rely on — `SWEEP_MAPS` services per
//!    check, by a sweep that [`Watch`] keeps track of; a map found edited
//!    is refilled. The pin maps are the packet path's own and never
//!    compared. The table is trusted again once
//!    a whole sweep has passed without anyone else committing anything.
//!
//! So a table changed by hand is repaired within one check when its
//! structure changed, and within `services / SWEEP_MAPS` checks when only
//! elements were edited.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::compile::Forwarded;
use super::{Mac, TABLE};

/// Services whose maps one check compares (three `nft` processes each,
/// some 40 ms for the 4,093 buckets and a few for the incarnations).
pub(crate) const SWEEP_MAPS: usize = 8;

/// What is known of the kernel's table between checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// The generation at which the table was last known to be ours.
    trusted: Option<u32>,
    /// The element sweep under way.
    sweep: Option<Sweep>,
}

/// How far an element sweep has come.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sweep {
    /// The next map to compare.
    next: usize,
    /// The generation the sweep's findings hold for: the generation when
    /// it started, moved on by lbdeploy's own transactions since.
    since: u32,
}

impl Watch {
    /// Record a transaction of lbdeploy's own, which moved the generation
    /// from `before` to `after` (`None`: could not be read). Only when it
    /// moved by exactly one was nobody else's transaction in between; a
    /// whole table then is ours whatever was there, a change of elements
    /// only if the table was ours before.
    pub(crate) fn committed(
        &mut self,
        before: Option<u32>,
        after: Option<u32>,
        whole: bool,
    ) {
        let ours_alone = matches!(
            (before, after),
            (Some(b), Some(a)) if a == b.wrapping_add(1)
        );
        if !ours_alone {
            self.trusted = None;
            return;
        }
        if whole {
            *self = Watch { trusted: after, sweep: None };
            return;
        }
        if self.trusted == before {
            self.trusted = after;
        }
        if let Some(s) = &mut self.sweep
            && Some(s.since) == before
        {
            s.since = after.expect("ours_alone");
        }
    }

    /// Whether the table is known to be ours at generation `now`.
    pub(crate) fn trusted(&self, now: u32) -> bool {
        self.trusted == Some(now)
    }

    /// The maps (of `maps`) to compare in this check, at generation `now`;
    /// starts a sweep when none is under way.
    pub(crate) fn next_maps(&mut self, now: u32, maps: usize) -> Range<usize> {
        let s = self.sweep.get_or_insert(Sweep { next: 0, since: now });
        let start = s.next.min(maps);
        start..(start + SWEEP_MAPS).min(maps)
    }

    /// The maps of [`Self::next_maps`] were compared (and refilled where
    /// they differed); the generation is now `now`. The sweep ends at the
    /// last map: the table is trusted if nobody else committed anything
    /// since the sweep began, or another sweep begins.
    pub(crate) fn swept(&mut self, done: Range<usize>, maps: usize, now: u32) {
        let Some(s) = &mut self.sweep else { return };
        s.next = done.end;
        if s.next < maps {
            return;
        }
        if s.since == now {
            *self = Watch { trusted: Some(now), sweep: None };
        } else {
            self.sweep = Some(Sweep { next: 0, since: now });
        }
    }
}

/// Our table's block in a terse listing of the ruleset (`nft -t list
/// ruleset`); `None` when there is no such table.
pub(crate) fn our_table(ruleset: &str) -> Option<String> {
    let header = format!("table netdev {TABLE} {{");
    let mut lines = ruleset.lines().skip_while(|l| *l != header);
    let first = lines.next()?;
    let mut block = format!("{first}\n");
    for line in lines {
        block += line;
        block.push('\n');
        if line == "}" {
            return Some(block);
        }
    }
    None
}

/// Elements of a map, bucket → MAC, as the kernel has them.
pub type Elements = BTreeMap<usize, Mac>;

/// The elements of every bucket map (`s{i}`) in a JSON listing (`nft -j
/// list map` or `nft -j list table`), by map name; other maps are left
/// out.
///
/// # Errors
/// Text that is not such a listing.
pub fn map_elements(json: &str) -> Result<BTreeMap<String, Elements>, String> {
    let bad = |what: &str| format!("unexpected `nft -j` listing: {what}");
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let items = v["nftables"].as_array().ok_or_else(|| bad("no `nftables`"))?;
    let mut maps = BTreeMap::new();
    for map in items.iter().filter_map(|i| i.get("map")) {
        let name = map["name"].as_str().ok_or_else(|| bad("a map's name"))?;
        let bucket_map = name.strip_prefix('s').is_some_and(|n| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        if !bucket_map {
            continue;
        }
        let mut elements = Elements::new();
        for e in
            map.get("elem").and_then(|e| e.as_array()).into_iter().flatten()
        {
            let bucket = e[0].as_u64().ok_or_else(|| bad("a key"))?;
            let mac = e[1].as_str().ok_or_else(|| bad("a value"))?;
            elements.insert(bucket as usize, mac.parse()?);
        }
        maps.insert(name.to_owned(), elements);
    }
    Ok(maps)
}

/// The elements of a map of any key and value types in a JSON listing of
/// that one map, each key and value as its JSON text (`1`,
/// `"02:00:00:00:00:01"`), in the listing's order.
///
/// # Errors
/// Text that is not such a listing.
pub fn pairs(json: &str) -> Result<Vec<(String, String)>, String> {
    let bad = |what: &str| format!("unexpected `nft -j` listing: {what}");
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let items = v["nftables"].as_array().ok_or_else(|| bad("no `nftables`"))?;
    let map =
        items.iter().find_map(|i| i.get("map")).ok_or_else(|| bad("no map"))?;
    let elements = map.get("elem").and_then(|e| e.as_array());
    elements
        .into_iter()
        .flatten()
        .map(|e| match e.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((k.to_string(), v.to_string())),
            _ => Err(bad("an element")),
        })
        .collect()
}

/// Whether the kernel's elements of `f`'s incarnation maps, `m` (number
/// → MAC) and `k` (MAC → number) as [`pairs`] reads them, are exactly
/// its live incarnations.
pub fn incarnations_match(
    f: &Forwarded,
    m: &[(String, String)],
    k: &[(String, String)],
) -> bool {
    let quoted = |mac: &Mac| format!("\"{mac}\"");
    let want_m: BTreeSet<(String, String)> = f
        .incarnations()
        .iter()
        .map(|(mac, n)| (n.to_string(), quoted(mac)))
        .collect();
    let want_k: BTreeSet<(String, String)> = f
        .incarnations()
        .iter()
        .map(|(mac, n)| (quoted(mac), n.to_string()))
        .collect();
    let set = |p: &[(String, String)]| -> BTreeSet<(String, String)> {
        p.iter().cloned().collect()
    };
    m.len() == want_m.len()
        && k.len() == want_k.len()
        && set(m) == want_m
        && set(k) == want_k
}

/// Whether the kernel's `elements` of a map are exactly the buckets of
/// `f`.
pub fn elements_match(f: &Forwarded, elements: &Elements) -> bool {
    let expected = if f.mac(0).is_some() { f.service.buckets } else { 0 };
    elements.len() == expected
        && elements.iter().all(|(&b, &mac)| f.mac(b) == Some(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dataplane::buckets::{self, Backend};
    use crate::agent::dataplane::nft::PortSpan;
    use crate::agent::dataplane::nft::{
        Compiled, Proto, Ruleset, Service, compile,
    };

    /// The table of one service with one real server, 02:00:00:00:00:01.
    fn one_server() -> Compiled {
        let rules = Ruleset {
            interface: "eth0".into(),
            mac: Mac([2, 0, 0, 0, 0, 0xaa]),
            services: vec![Service {
                name: "web".into(),
                vip: "10.0.0.200".parse().unwrap(),
                ports: vec![PortSpan::one(80)],
                proto: Proto::Tcp,
                persistent: false,
                buckets: buckets::count(1),
                backends: vec![(
                    Backend { key: "10.0.0.21:80".into(), weight: 1 },
                    Mac([2, 0, 0, 0, 0, 1]),
                )],
                live: Vec::new(),
                pin_for: 900,
                instance: "VI_1".into(),
            }],
            forwarding: Default::default(),
        };
        compile(rules, None)
    }

    /// Issue #20: the incarnation maps as `nft -j` lists them match the
    /// service's live incarnations, and nothing else does.
    #[test]
    fn incarnation_maps_are_compared_both_ways() {
        let table = one_server();
        let listing = |name: &str, elem: &str| {
            format!(
                r#"{{"nftables": [{{"metainfo": {{}}}}, {{"map": {{"name": "{name}", "elem": {elem}}}}}]}}"#
            )
        };
        let m = pairs(&listing("m0", r#"[[1, "02:00:00:00:00:01"]]"#)).unwrap();
        let k = pairs(&listing("k0", r#"[["02:00:00:00:00:01", 1]]"#)).unwrap();
        assert!(incarnations_match(&table.services[0], &m, &k));
        let other =
            pairs(&listing("m0", r#"[[1, "02:00:00:00:00:09"]]"#)).unwrap();
        assert!(!incarnations_match(&table.services[0], &other, &k));
        let none = pairs(&listing("k0", "[]")).unwrap();
        assert!(!incarnations_match(&table.services[0], &m, &none));
        assert!(pairs(&listing("m0", "[[1]]")).is_err());
        assert!(pairs("{}").is_err());
    }

    #[test]
    fn a_quiet_generation_after_our_own_transactions_is_trusted() {
        let mut w = Watch::default();
        assert!(!w.trusted(5));
        w.committed(Some(5), Some(6), true);
        assert!(w.trusted(6));
        w.committed(Some(6), Some(7), false);
        assert!(w.trusted(7) && !w.trusted(6));
    }

    #[test]
    fn anyone_else_committing_ends_the_trust() {
        let mut w = Watch::default();
        w.committed(Some(5), Some(7), true);
        assert!(!w.trusted(7), "someone committed between");
        let mut w = Watch::default();
        w.committed(Some(5), Some(6), true);
        w.committed(Some(7), Some(8), false);
        assert!(!w.trusted(8), "an element change on a table not trusted");
        w.committed(None, Some(9), true);
        assert!(!w.trusted(9));
    }

    #[test]
    fn a_quiet_sweep_restores_the_trust() {
        let mut w = Watch::default();
        let r = w.next_maps(10, 20);
        assert_eq!(r, 0..SWEEP_MAPS);
        w.swept(r, 20, 10);
        // Our own change in the middle of the sweep does not spoil it.
        w.committed(Some(10), Some(11), false);
        let r = w.next_maps(11, 20);
        assert_eq!(r, SWEEP_MAPS..2 * SWEEP_MAPS);
        w.swept(r, 20, 11);
        let r = w.next_maps(11, 20);
        assert_eq!(r, 2 * SWEEP_MAPS..20);
        w.swept(r, 20, 11);
        assert!(w.trusted(11));
    }

    #[test]
    fn a_sweep_disturbed_by_someone_else_starts_over() {
        let mut w = Watch::default();
        let r = w.next_maps(10, 3);
        w.swept(r, 3, 12);
        assert!(!w.trusted(12));
        assert_eq!(w.next_maps(12, 3), 0..3);
        w.swept(0..3, 3, 12);
        assert!(w.trusted(12));
    }

    #[test]
    fn no_map_is_a_sweep_at_once() {
        let mut w = Watch::default();
        let r = w.next_maps(4, 0);
        assert!(r.is_empty());
        w.swept(r, 0, 4);
        assert!(w.trusted(4));
    }

    #[test]
    fn our_table_is_cut_from_the_ruleset() {
        let ruleset = "table inet filter {\n\tchain input {\n\t}\n}\n\
                       table netdev lbdeploy {\n\tmap s0 {\n\t\ttype mark : ether_addr\n\t}\n}\n\
                       table ip nat {\n}\n";
        assert_eq!(
            our_table(ruleset).unwrap(),
            "table netdev lbdeploy {\n\tmap s0 {\n\t\ttype mark : ether_addr\n\t}\n}\n"
        );
        assert_eq!(our_table("table inet filter {\n}\n"), None);
    }

    #[test]
    fn map_listings_are_read_and_compared() {
        let t = one_server();
        let elem: Vec<String> = (0..t.services[0].service.buckets)
            .map(|b| format!("[{b}, \"02:00:00:00:00:01\"]"))
            .collect();
        let json = format!(
            "{{\"nftables\": [{{\"metainfo\": {{}}}}, {{\"map\": {{\"name\": \"s0\", \"elem\": [{}]}}}}]}}",
            elem.join(", ")
        );
        let e = map_elements(&json).unwrap().remove("s0").unwrap();
        assert!(elements_match(&t.services[0], &e));
        let mut edited = e.clone();
        edited.insert(7, Mac([2, 0, 0, 0, 0, 9]));
        assert!(!elements_match(&t.services[0], &edited));
        edited.remove(&7);
        assert!(!elements_match(&t.services[0], &edited), "one missing");
        let json = "{\"nftables\": [{\"map\": {\"name\": \"s0\"}}]}";
        let empty = map_elements(json).unwrap().remove("s0").unwrap();
        assert!(empty.is_empty() && !elements_match(&t.services[0], &empty));
        assert!(map_elements("{}").is_err());
    }
}
