//! The one transaction that turns the installed table into the desired
//! one. Pure.
//!
//! With rendezvous hashing a real server going down moves only its own
//! buckets (a tenth of one service's, with ten real servers), so the
//! transaction for a health change is a few hundred map elements instead
//! of the four million of 1,000 services' whole table. The kernel refuses
//! to add an element whose key exists with another value, so a bucket that
//! changes real server is deleted and added again; both happen in the same
//! transaction, so no packet sees the bucket missing.
//!
//! Becoming master of an instance, or ceasing to be, is a change of the
//! ingress chain's jumps: the chain is flushed and given the jumps wanted,
//! again in one transaction.

use std::fmt::Write as _;

use super::compile::{
    self, Compiled, Forwarded, incarnation_map_name, mac_map_name, map_name,
};
use super::{Mac, TABLE};

/// What it takes to make the kernel's table the desired one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// The installed table is already the desired one.
    Nothing,
    /// The same services: `nft -f` text that changes only the elements of
    /// the maps concerned and, when `gate`, the ingress chain's jumps
    /// (which instances are forwarded).
    Changes {
        /// The transaction.
        text: String,
        /// Whether it changes which instances are forwarded.
        gate: bool,
    },
    /// No table yet, or other services (or their instances), interface or
    /// MAC: the whole table — over the installed one, keeping its flow
    /// pins ([`compile::render_over`]), when there is one.
    Whole(String),
}

/// The transaction from `installed` (`None`: nothing known to be
/// installed) to `desired`.
pub fn delta(installed: Option<&Compiled>, desired: &Compiled) -> Delta {
    let Some(installed) = installed else {
        return Delta::Whole(compile::render(desired));
    };
    let same_structure = installed.interface == desired.interface
        && installed.mac == desired.mac
        && installed.services.len() == desired.services.len()
        && installed
            .services
            .iter()
            .zip(&desired.services)
            .all(|(a, b)| a.same_rule(b));
    if !same_structure {
        return Delta::Whole(compile::render_over(installed, desired));
    }
    let mut text = String::new();
    for (i, (old, new)) in
        installed.services.iter().zip(&desired.services).enumerate()
    {
        if old != new {
            write_changes(&mut text, i, old, new);
        }
    }
    let jumps = desired.jumps();
    let gate = installed.jumps() != jumps;
    if gate {
        let _ = writeln!(text, "flush chain netdev {TABLE} ingress");
        for chain in jumps {
            let _ =
                writeln!(text, "add rule netdev {TABLE} ingress jump {chain}");
        }
    }
    match text.is_empty() {
        true => Delta::Nothing,
        false => Delta::Changes { text, gate },
    }
}

/// The elements of map `i` that differ between `old` and `new`: deleted
/// where `old` had one, added where `new` has one.
fn write_changes(out: &mut String, i: usize, old: &Forwarded, new: &Forwarded) {
    let changed: Vec<usize> = (0..new.service.buckets)
        .filter(|&b| old.mac(b) != new.mac(b))
        .collect();
    let gone: Vec<String> = changed
        .iter()
        .filter(|&&b| old.mac(b).is_some())
        .map(usize::to_string)
        .collect();
    if !gone.is_empty() {
        let _ = writeln!(
            out,
            "delete element netdev {TABLE} {} {{ {} }}",
            map_name(i),
            gone.join(", ")
        );
    }
    let added: Vec<usize> =
        changed.into_iter().filter(|&b| new.mac(b).is_some()).collect();
    if !added.is_empty() {
        let _ = write!(out, "add element netdev {TABLE} {} {{ ", map_name(i));
        compile::write_elements(out, new, added);
        out.push_str(" }\n");
    }
    write_incarnation_changes(out, i, old, new);
}

/// The incarnations that ended (their MAC left the live set, or came back
/// as a new one) and began between `old` and `new`, in maps `m{i}` and
/// `k{i}`.
fn write_incarnation_changes(
    out: &mut String,
    i: usize,
    old: &Forwarded,
    new: &Forwarded,
) {
    let (was, is) = (old.incarnations(), new.incarnations());
    let ended: Vec<(&Mac, &u32)> =
        was.iter().filter(|(m, n)| is.get(m) != Some(n)).collect();
    let began: Vec<(&Mac, &u32)> =
        is.iter().filter(|(m, n)| was.get(m) != Some(n)).collect();
    let (m, k) = (incarnation_map_name(i), mac_map_name(i));
    let mut line = |verb: &str, map: &str, items: Vec<String>| {
        if !items.is_empty() {
            let _ = writeln!(
                out,
                "{verb} element netdev {TABLE} {map} {{ {} }}",
                items.join(", ")
            );
        }
    };
    line("delete", &m, ended.iter().map(|(_, n)| n.to_string()).collect());
    line("delete", &k, ended.iter().map(|(mac, _)| mac.to_string()).collect());
    line(
        "add",
        &m,
        began.iter().map(|(mac, n)| format!("{n} : {mac}")).collect(),
    );
    line(
        "add",
        &k,
        began.iter().map(|(mac, n)| format!("{mac} : {n}")).collect(),
    );
}

/// The transaction that puts the incarnation maps of service `i` of
/// `desired` (`m{i}`, `k{i}`) back whole: for maps found edited by hand.
pub(crate) fn refill_incarnations(desired: &Compiled, i: usize) -> String {
    let live = desired.services[i].incarnations();
    let (m, k) = (incarnation_map_name(i), mac_map_name(i));
    let mut out =
        format!("flush map netdev {TABLE} {m}\nflush map netdev {TABLE} {k}\n");
    if !live.is_empty() {
        let items = |f: &dyn Fn(&Mac, &u32) -> String| -> String {
            live.iter().map(|(mac, n)| f(mac, n)).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            out,
            "add element netdev {TABLE} {m} {{ {} }}",
            items(&|mac, n| format!("{n} : {mac}"))
        );
        let _ = writeln!(
            out,
            "add element netdev {TABLE} {k} {{ {} }}",
            items(&|mac, n| format!("{mac} : {n}"))
        );
    }
    out
}

/// The transaction that puts map `i` of `desired` back whole, whatever
/// its elements are now: for a map found edited by hand.
pub(crate) fn refill(desired: &Compiled, i: usize) -> String {
    let mut out = format!("flush map netdev {TABLE} {}\n", map_name(i));
    let f = &desired.services[i];
    if f.mac(0).is_some() {
        let _ = write!(out, "add element netdev {TABLE} {} {{ ", map_name(i));
        compile::write_elements(&mut out, f, 0..f.service.buckets);
        out.push_str(" }\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dataplane::buckets::{self, Backend};
    use crate::agent::dataplane::nft::PortSpan;
    use crate::agent::dataplane::nft::{Mac, Proto, Ruleset, Service};

    fn mac(last: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, last])
    }

    fn service(port: u16, weights: &[u32]) -> Service {
        Service {
            name: format!("s{port}"),
            vip: "10.0.0.200".parse().unwrap(),
            ports: vec![PortSpan::one(port)],
            proto: Proto::Tcp,
            persistent: false,
            buckets: buckets::count(weights.len()),
            live: Vec::new(),
            pin_for: 900,
            instance: "VI_1".into(),
            backends: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| {
                    let key = format!("10.0.0.{}:{port}", 21 + i);
                    (Backend { key, weight }, mac(21 + i as u8))
                })
                .collect(),
        }
    }

    fn table(services: Vec<Service>) -> Compiled {
        let rules = Ruleset {
            interface: "eth0".into(),
            mac: mac(0xaa),
            services,
            forwarding: ["VI_1".to_owned()].into(),
        };
        compile::compile(rules, None)
    }

    /// What a transaction does: the (map, bucket) keys it deletes and
    /// the (map, bucket, MAC) elements it adds.
    struct Parsed {
        deleted: Vec<(String, usize)>,
        added: Vec<(String, usize, Mac)>,
    }

    fn parse(text: &str) -> Parsed {
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        for line in text.lines() {
            let words: Vec<&str> = line.splitn(6, ' ').collect();
            let map = words[4].to_owned();
            if !map.starts_with('s') {
                continue;
            }
            let inner = line
                .split_once("{ ")
                .and_then(|(_, r)| r.strip_suffix(" }"))
                .unwrap();
            for item in inner.split(", ") {
                match (words[0], item.split_once(" : ")) {
                    ("delete", None) => {
                        deleted.push((map.clone(), item.parse().unwrap()))
                    }
                    ("add", Some((b, m))) => added.push((
                        map.clone(),
                        b.parse().unwrap(),
                        m.parse().unwrap(),
                    )),
                    _ => panic!("unexpected line {line}"),
                }
            }
        }
        Parsed { deleted, added }
    }

    /// Issue #20: a real server that goes down ends its incarnation in
    /// both maps; back, it begins a new one, and the others stay.
    #[test]
    fn r20_incarnations_end_and_begin_with_the_live_set() {
        let rules = |weights: &[u32]| Ruleset {
            interface: "eth0".into(),
            mac: mac(0xaa),
            services: vec![service(80, weights)],
            forwarding: ["VI_1".to_owned()].into(),
        };
        let up = table(vec![service(80, &[1, 1, 1])]);
        let mut one_down = rules(&[1, 1, 1]);
        one_down.services[0].backends.remove(0);
        let down = compile::compile(one_down, Some(&up));
        let Delta::Changes { text, .. } = delta(Some(&up), &down) else {
            panic!("a change of elements")
        };
        assert!(text.contains("delete element netdev lbdeploy m0 { 1 }\n"));
        assert!(text.contains(
            "delete element netdev lbdeploy k0 { 02:00:00:00:00:15 }\n"
        ));
        assert!(!text.contains("add element netdev lbdeploy m0"), "{text}");
        let back = compile::compile(rules(&[1, 1, 1]), Some(&down));
        let Delta::Changes { text, .. } = delta(Some(&down), &back) else {
            panic!("a change of elements")
        };
        assert!(text.contains(
            "add element netdev lbdeploy m0 { 4 : 02:00:00:00:00:15 }\n"
        ));
        assert!(text.contains(
            "add element netdev lbdeploy k0 { 02:00:00:00:00:15 : 4 }\n"
        ));
        assert!(!text.contains("delete element netdev lbdeploy m0"), "{text}");
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let t = table(vec![service(80, &[1, 1, 1])]);
        assert_eq!(delta(Some(&t), &t.clone()), Delta::Nothing);
    }

    #[test]
    fn nothing_installed_is_a_whole_table() {
        let t = table(vec![service(80, &[1, 1])]);
        assert_eq!(delta(None, &t), Delta::Whole(compile::render(&t)));
    }

    /// Its own buckets, and the few that move between the others as
    /// their bounds grow (`buckets`).
    #[test]
    fn a_real_server_down_moves_its_buckets_and_few_others() {
        let before = table(vec![service(80, &[1; 10]), service(81, &[1; 10])]);
        let after = table(vec![
            service(80, &[1; 10]),
            service(81, &[1, 1, 1, 0, 1, 1, 1, 1, 1, 1]),
        ]);
        let Delta::Changes { text, gate: false } = delta(Some(&before), &after)
        else {
            panic!("not an element change");
        };
        let Parsed { deleted, added } = parse(&text);
        let n = buckets::count(10);
        let owned: Vec<usize> = (0..n)
            .filter(|&b| before.services[1].mac(b) == Some(mac(24)))
            .collect();
        assert!((50..=51).contains(&owned.len()), "{}", owned.len());
        let deleted_buckets: Vec<usize> =
            deleted.iter().map(|(_, b)| *b).collect();
        assert!(owned.iter().all(|b| deleted_buckets.contains(b)));
        assert!(deleted.len() - owned.len() <= n / 25, "{}", deleted.len());
        assert!(deleted.iter().all(|(m, _)| m == "s1"));
        for (m, b, to) in &added {
            assert_eq!(m, "s1");
            assert_eq!(Some(*to), after.services[1].mac(*b));
            assert_ne!(*to, mac(24));
        }
        assert_eq!(added.len(), deleted.len());
    }

    #[test]
    fn a_real_server_back_takes_back_its_buckets() {
        let down = table(vec![service(80, &[1, 1, 0])]);
        let up = table(vec![service(80, &[1, 1, 1])]);
        let Delta::Changes { text, gate: false } = delta(Some(&down), &up)
        else {
            panic!("not an element change");
        };
        let Parsed { deleted, added } = parse(&text);
        assert_eq!(deleted.len(), added.len());
        let n = buckets::count(3);
        let owned =
            (0..n).filter(|&b| up.services[0].mac(b) == Some(mac(23))).count();
        let back = added.iter().filter(|(_, _, m)| *m == mac(23)).count();
        assert_eq!(back, owned);
        assert!(added.len() - owned <= n / 25, "{} changed", added.len());
    }

    #[test]
    fn the_last_real_server_down_empties_the_map_and_back_fills_it() {
        let up = table(vec![service(80, &[1])]);
        let down = table(vec![service(80, &[0])]);
        let Delta::Changes { text, gate: false } = delta(Some(&up), &down)
        else {
            panic!("not an element change");
        };
        let Parsed { deleted, added } = parse(&text);
        let n = buckets::count(1);
        assert_eq!((deleted.len(), added.len()), (n, 0));
        let Delta::Changes { text, gate: false } = delta(Some(&down), &up)
        else {
            panic!("not an element change");
        };
        let Parsed { deleted, added } = parse(&text);
        assert_eq!((deleted.len(), added.len()), (0, n));
    }

    #[test]
    fn a_weight_change_changes_elements_only() {
        let before = table(vec![service(80, &[1, 1])]);
        let after = table(vec![service(80, &[3, 1])]);
        let Delta::Changes { text, gate: false } = delta(Some(&before), &after)
        else {
            panic!("not an element change");
        };
        let Parsed { added, .. } = parse(&text);
        assert!(
            added.iter().all(|(_, _, m)| *m == mac(21)),
            "only toward the heavier one"
        );
    }

    #[test]
    fn becoming_master_or_backup_changes_the_jumps_only() {
        let master = table(vec![service(80, &[1, 1])]);
        let backup =
            Compiled { forwarding: Default::default(), ..master.clone() };
        assert_eq!(
            delta(Some(&backup), &master),
            Delta::Changes {
                text: "flush chain netdev lbdeploy ingress\n\
                       add rule netdev lbdeploy ingress jump vi0\n"
                    .into(),
                gate: true
            }
        );
        assert_eq!(
            delta(Some(&master), &backup),
            Delta::Changes {
                text: "flush chain netdev lbdeploy ingress\n".into(),
                gate: true
            }
        );
    }

    /// Another bucket count (a real server added to or removed from the
    /// configuration) hashes flows anew: another rule.
    #[test]
    fn another_service_list_instance_buckets_interface_or_mac_is_a_whole_table()
    {
        let one = table(vec![service(80, &[1, 1])]);
        for other in [
            table(vec![service(80, &[1, 1]), service(81, &[1])]),
            table(vec![service(81, &[1, 1])]),
            table(vec![Service {
                name: "web".into(),
                instance: "VI_2".into(),
                ..service(80, &[1, 1])
            }]),
            table(vec![Service { buckets: 251, ..service(80, &[1, 1]) }]),
            Compiled { interface: "eth1".into(), ..one.clone() },
            Compiled { mac: mac(0xbb), ..one.clone() },
        ] {
            assert_eq!(
                delta(Some(&one), &other),
                Delta::Whole(compile::render_over(&one, &other))
            );
        }
        assert_eq!(delta(None, &one), Delta::Whole(compile::render(&one)));
    }

    /// Issue #20: a change of the services replaces everything of the
    /// installed table but its pin maps, and a service that moved keeps
    /// the incarnations of its live real servers; numbers are never given
    /// twice in one table.
    #[test]
    fn r20_a_new_service_list_keeps_the_pins_and_the_incarnations() {
        let one = table(vec![service(80, &[1, 1])]);
        let rules = Ruleset {
            interface: "eth0".into(),
            mac: mac(0xaa),
            services: vec![service(81, &[1]), service(80, &[1, 1])],
            forwarding: ["VI_1".to_owned()].into(),
        };
        let two = compile::compile(rules, Some(&one));
        assert_eq!(
            two.services[1].incarnations(),
            one.services[0].incarnations(),
            "service s80 kept its numbers at its new place"
        );
        let numbers: Vec<u32> = two
            .services
            .iter()
            .flat_map(|f| f.incarnations().values().copied())
            .collect();
        assert_eq!(numbers, [3, 1, 2], "the new service's are new");
        let Delta::Whole(text) = delta(Some(&one), &two) else {
            panic!("a whole table")
        };
        let deleted: Vec<&str> =
            text.lines().filter(|l| l.starts_with("delete ")).collect();
        assert_eq!(
            deleted,
            [
                "delete chain netdev lbdeploy ingress",
                "delete chain netdev lbdeploy vi0",
                "delete map netdev lbdeploy s0",
                "delete map netdev lbdeploy m0",
                "delete map netdev lbdeploy k0",
                "delete set netdev lbdeploy c0",
            ]
        );
        assert!(text.starts_with("table netdev lbdeploy\ndelete chain"));
        assert!(text.contains("\tmap tcp4 {") && text.contains("\tmap s1 {"));
    }

    #[test]
    fn a_refill_flushes_and_adds_every_bucket() {
        let t = table(vec![service(80, &[1, 1]), service(81, &[0])]);
        let text = refill(&t, 0);
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, "flush map netdev lbdeploy s0");
        let Parsed { added, .. } = parse(rest);
        assert_eq!(added.len(), buckets::count(2));
        assert_eq!(refill(&t, 1), "flush map netdev lbdeploy s1\n");
    }
}
