//! The desired services with every bucket's real server decided, and the
//! whole table as `nft -f` text. Pure.
//!
//! Every service gets its map and its rule even when no real server is
//! left: a lookup that misses in a map ends the rule, so an empty map
//! leaves the VIP's packets to the director's own stack (which refuses
//! them), exactly as no rule would — and the table's structure then
//! depends only on the list of services, never on health, so a health
//! change is always a change of map elements ([`super::delta`]).
//!
//! Each service also has a set `c{i}` that counts what its rule forwards
//! to each real server: the rule adds (`update`) the frame's new
//! destination MAC to it, and the set's `counter` counts per element. Its
//! elements are only MACs the service's map holds, created by the packet
//! path and expiring after [`COUNTED_FOR`] unused, so they stay few; the
//! size is a bound that no cluster reaches, and must not be reached: an
//! `update` on a full set ends the rule before its `fwd`.
//!
//! Established flows keep their real server when the buckets change:
//! each flow is pinned, from the packet path, to the incarnation of the
//! real server it started on, in a map shared by every service of its
//! kind (`tcp4`, `udp4`, `clients4`); each service maps its live
//! incarnations to MACs (`m{i}`) and back (`k{i}`). Each service has
//! four rules: a pinned flow whose incarnation is live goes to it; a pin
//! of a dead one is deleted; any other flow is hashed, sent and pinned;
//! one that cannot be pinned (the map is full) is hashed and sent. ARCHITECTURE.md ("Flow pinning") says why,
//! what a pin costs, and what happens when the maps are full.
//!
//! The rules of one VRRP instance's services sit in a chain of their own
//! (`vi0`, `vi1`, … in order of first appearance); the ingress chain holds
//! only a `jump` to the chains of the instances forwarded now, so becoming
//! or ceasing to be master changes one rule, not the table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{Mac, Proto, Ruleset, Service, TABLE};
use crate::agent::dataplane::buckets::{self, Backend};

/// A ruleset with every service's bucket table computed: what is, or is
/// to be, in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The interface facing clients and real servers.
    pub interface: String,
    /// This director's MAC on it (the frames' new source).
    pub mac: Mac,
    /// The services, in configuration order; service `i` owns map `s{i}`.
    pub services: Vec<Forwarded>,
    /// The instances whose services are forwarded now.
    pub forwarding: BTreeSet<String>,
    /// The next incarnation number: numbers are unique in the whole
    /// table, so that a pin taken over by a reload that moved services
    /// around can name no other service's real server.
    pub(crate) next: u32,
}

impl Compiled {
    /// The instances that have services, each once, in order of first
    /// appearance: instance `k` owns chain `vi{k}`.
    fn instances(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for f in &self.services {
            if !seen.contains(&f.service.instance.as_str()) {
                seen.push(f.service.instance.as_str());
            }
        }
        seen
    }

    /// The chains the ingress chain jumps to: those of the instances
    /// forwarded now.
    pub(crate) fn jumps(&self) -> Vec<String> {
        self.instances()
            .iter()
            .enumerate()
            .filter(|(_, name)| self.forwarding.contains(**name))
            .map(|(k, _)| chain_name(k))
            .collect()
    }
}

/// One service, the real server's MAC of each of its buckets, and the
/// incarnation of each live real server its flows are pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The service as configured and health-checked; kept so that the next
    /// compile can reuse the buckets of a service that did not change.
    pub service: Service,
    /// The distinct MACs the buckets point at.
    macs: Vec<Mac>,
    /// Each bucket's index into `macs`: `service.buckets` entries, or none when
    /// no real server has a weight. A palette keeps 1,000 services' tables
    /// at 8 MB rather than 24.
    buckets: Vec<u16>,
    /// Each live MAC's incarnation (maps `m{i}` and `k{i}`): numbered when
    /// it joins the live set, kept while it stays there. A real server
    /// that leaves and comes back gets a new number, so the pins of the
    /// flows it had before — reset since by the server that took them —
    /// are not revived.
    incarnations: BTreeMap<Mac, u32>,
}

impl Forwarded {
    /// Decide every bucket of `service`, and number its live MACs:
    /// `previous`, the same service as installed, keeps the numbers of
    /// those still live; the others take new ones from `next`.
    fn new(
        service: Service,
        previous: Option<&Forwarded>,
        next: &mut u32,
    ) -> Forwarded {
        let mut incarnations = BTreeMap::new();
        let live = service.backends.iter().map(|(_, m)| m).chain(&service.live);
        for &mac in live {
            let known = previous.and_then(|p| p.incarnations.get(&mac));
            incarnations.entry(mac).or_insert_with(|| match known {
                Some(&n) => n,
                None => {
                    let n = *next;
                    *next = next.checked_add(1).unwrap_or(1);
                    n
                }
            });
        }
        let keys: Vec<Backend> =
            service.backends.iter().map(|(b, _)| b.clone()).collect();
        let mut macs = Vec::new();
        let mut slot: Vec<Option<u16>> = vec![None; keys.len()];
        let buckets = buckets::table(&keys, service.buckets)
            .into_iter()
            .map(|backend| {
                *slot[backend].get_or_insert_with(|| {
                    macs.push(service.backends[backend].1);
                    // At most one new MAC per bucket: fewer than MAX_BUCKETS.
                    (macs.len() - 1) as u16
                })
            })
            .collect();
        Forwarded { service, macs, buckets, incarnations }
    }

    /// The MAC of `bucket`, or `None` when the service has no real server.
    pub fn mac(&self, bucket: usize) -> Option<Mac> {
        self.buckets.get(bucket).map(|&i| self.macs[usize::from(i)])
    }

    /// The live MACs and their incarnations.
    pub(crate) fn incarnations(&self) -> &BTreeMap<Mac, u32> {
        &self.incarnations
    }

    /// Whether the nft rule of `self` and `other` is the same: everything
    /// but the real servers.
    pub(crate) fn same_rule(&self, other: &Forwarded) -> bool {
        let (a, b) = (&self.service, &other.service);
        (
            a.vip,
            &a.ports,
            a.proto,
            a.persistent,
            a.buckets,
            a.pin_for,
            &a.instance,
        ) == (
            b.vip,
            &b.ports,
            b.proto,
            b.persistent,
            b.buckets,
            b.pin_for,
            &b.instance,
        )
    }
}

/// Decide every service's buckets. A service identical to one in
/// `previous` (same real servers, weights and MACs) keeps its buckets
/// without computing them again, so a health change costs one service's
/// table, not all of them; a service of the same name keeps the
/// incarnations of its real servers still live, wherever it now is.
pub fn compile(rules: Ruleset, previous: Option<&Compiled>) -> Compiled {
    let known: HashMap<&Service, &Forwarded> = previous
        .map(|p| p.services.iter().map(|f| (&f.service, f)).collect())
        .unwrap_or_default();
    let named: HashMap<&str, &Forwarded> = previous
        .map(|p| {
            p.services.iter().map(|f| (f.service.name.as_str(), f)).collect()
        })
        .unwrap_or_default();
    let mut next = previous.map_or(1, |p| p.next);
    let services = rules
        .services
        .into_iter()
        .map(|svc| match known.get(&svc) {
            Some(f) => (*f).clone(),
            None => {
                let same = named.get(svc.name.as_str()).copied();
                Forwarded::new(svc, same, &mut next)
            }
        })
        .collect();
    Compiled {
        interface: rules.interface,
        mac: rules.mac,
        services,
        forwarding: rules.forwarding,
        next,
    }
}

/// The name of service `i`'s map.
pub(crate) fn map_name(i: usize) -> String {
    format!("s{i}")
}

/// The name of service `i`'s map from incarnation to MAC.
pub(crate) fn incarnation_map_name(i: usize) -> String {
    format!("m{i}")
}

/// The name of service `i`'s map from MAC to incarnation.
pub(crate) fn mac_map_name(i: usize) -> String {
    format!("k{i}")
}

/// One of the table's maps of pinned flows, shared by every service of
/// its kind: the key starts with the VIP and port (and the protocol,
/// where the map is not one protocol's), so each service's flows are its
/// own. IPv4 only: Debian bookworm's nft (1.0.6) aborts on an IPv6 key in
/// a map the packet path writes, so IPv6 services are forwarded unpinned.
pub(crate) struct Pins {
    /// The map's name.
    pub name: &'static str,
    /// Its key's type.
    key_type: &'static str,
}

/// The pin maps: TCP and UDP flows (client address and port: four parts,
/// the most nft 1.0.6 can write from the packet path, hence one map per
/// protocol), the clients of persistent services (address only), and
/// those of persistent port groups — keyed without the port, since nft
/// 1.0.6 cannot put a constant in a key, so that one pin holds across
/// the group's ports (validation allows one such group per VIP and
/// protocol, which this map's key tells apart).
pub(crate) const PINS: [Pins; 4] = [
    Pins {
        name: "tcp4",
        key_type: "ipv4_addr . inet_service . ipv4_addr . inet_service",
    },
    Pins {
        name: "udp4",
        key_type: "ipv4_addr . inet_service . ipv4_addr . inet_service",
    },
    Pins {
        name: "clients4",
        key_type: "inet_proto . ipv4_addr . inet_service . ipv4_addr",
    },
    Pins { name: "groups4", key_type: "inet_proto . ipv4_addr . ipv4_addr" },
];

/// The pin map of `svc`'s flows, and its key; none for IPv6.
fn pins_of(svc: &Service) -> Option<(&'static Pins, String)> {
    let proto = match svc.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let flows = format!("ip daddr . {proto} dport . ip saddr . {proto} sport");
    match (svc.vip.is_ipv6(), svc.persistent, svc.proto) {
        (true, ..) => None,
        (false, true, _) if svc.is_group() => {
            Some((&PINS[3], "meta l4proto . ip daddr . ip saddr".to_owned()))
        }
        (false, true, _) => Some((
            &PINS[2],
            format!("meta l4proto . ip daddr . {proto} dport . ip saddr"),
        )),
        (false, false, Proto::Tcp) => Some((&PINS[0], flows)),
        (false, false, Proto::Udp) => Some((&PINS[1], flows)),
    }
}

/// The most flows one pin map holds. Beyond it new flows are forwarded
/// unpinned (the third rule of each service), as every flow was before
/// pins.
pub const PINS_MAX: usize = 262_144;

/// The name of service `i`'s counting set.
pub(crate) fn counter_set_name(i: usize) -> String {
    format!("c{i}")
}

/// The most MACs one service's counting set holds: many times more real
/// servers than a service has, even replaced every hour.
const COUNTED_MACS: usize = 65_536;

/// How long a real server's count stays after its last frame: one that
/// comes back later counts from zero again.
pub const COUNTED_FOR: std::time::Duration =
    std::time::Duration::from_secs(3600);

/// The name of instance `k`'s chain.
fn chain_name(k: usize) -> String {
    format!("vi{k}")
}

/// The `nft -f` text that replaces the table with `table` in one
/// transaction (the `table` line makes the `delete` valid when there is no
/// table yet).
pub fn render(table: &Compiled) -> String {
    let mut s = format!("table netdev {TABLE}\ndelete table netdev {TABLE}\n");
    write_table(&mut s, table);
    s
}

/// The `nft -f` text that replaces `installed` by `desired` in one
/// transaction, as [`render`] does, but keeps the pin maps and so every
/// established flow's pin: what a change of the services (an apply that
/// adds one) loads. It deletes exactly what `installed` declared; should
/// the kernel's table differ (edited by hand), the transaction fails and
/// the caller loads [`render`]'s.
pub fn render_over(installed: &Compiled, desired: &Compiled) -> String {
    let mut s = format!("table netdev {TABLE}\n");
    let chains = (0..installed.instances().len()).map(chain_name);
    for chain in std::iter::once("ingress".to_owned()).chain(chains) {
        let _ = writeln!(s, "delete chain netdev {TABLE} {chain}");
    }
    for i in 0..installed.services.len() {
        for map in [map_name(i), incarnation_map_name(i), mac_map_name(i)] {
            let _ = writeln!(s, "delete map netdev {TABLE} {map}");
        }
        let _ =
            writeln!(s, "delete set netdev {TABLE} {}", counter_set_name(i));
    }
    write_table(&mut s, desired);
    s
}

/// The `table netdev lbdeploy { … }` block of `table`, pin maps included
/// (declaring one that exists, as it is, keeps it and its elements).
fn write_table(out: &mut String, table: &Compiled) {
    let mut s = format!("table netdev {TABLE} {{\n");
    for (i, f) in table.services.iter().enumerate() {
        // `size` lets the kernel pick a fixed-size hash for the map instead
        // of one that grows (and rehashes) while four thousand elements
        // arrive.
        let _ = write!(
            s,
            "\tmap {} {{\n\t\ttype mark : ether_addr\n\t\tsize {}\n",
            map_name(i),
            f.service.buckets
        );
        if !f.buckets.is_empty() {
            s += "\t\telements = { ";
            write_elements(&mut s, f, 0..f.service.buckets);
            s += " }\n";
        }
        s += "\t}\n";
        let _ = writeln!(
            s,
            "\tset {} {{\n\t\ttype ether_addr\n\t\tsize {COUNTED_MACS}\n\t\t\
             flags dynamic,timeout\n\t\ttimeout {}s\n\t\tcounter\n\t}}",
            counter_set_name(i),
            COUNTED_FOR.as_secs()
        );
        write_incarnation_maps(&mut s, i, f);
    }
    for pins in PINS {
        let _ = writeln!(
            s,
            "\tmap {} {{\n\t\ttype {} : mark\n\t\tsize {PINS_MAX}\n\t\t\
             flags dynamic,timeout\n\t}}",
            pins.name, pins.key_type
        );
    }
    for (k, instance) in table.instances().into_iter().enumerate() {
        let _ = writeln!(s, "\tchain {} {{", chain_name(k));
        for (i, f) in table.services.iter().enumerate() {
            if f.service.instance == instance {
                s += &rule(table, i);
            }
        }
        s += "\t}\n";
    }
    let _ = writeln!(
        s,
        "\tchain ingress {{\n\t\ttype filter hook ingress device \"{}\" \
         priority 0; policy accept;",
        table.interface
    );
    for chain in table.jumps() {
        let _ = writeln!(s, "\t\tjump {chain}");
    }
    s += "\t}\n}\n";
    out.push_str(&s);
}

/// The rules of service `i`, each matching its frames addressed to this
/// director:
///
/// 1. a flow pinned to a live incarnation goes to that real server (and
///    its pin lives on);
/// 2. a pin left from a dead incarnation is deleted: nftables cannot
///    change a pin's value (`add` and `update` keep the one there), so a
///    new connection reusing an old one's addresses and ports — a client
///    behind NAT, a port reused within the pin's timeout — would
///    otherwise never be pinned, and a later change of the buckets would
///    reset it. Only pins whose server is gone reach this rule (rule 1
///    took the live ones), so a forged packet deletes nothing that
///    protects a flow;
/// 3. any other flow is hashed into a bucket and sent to the bucket's
///    real server, and pinned to it — a TCP flow from its first packet
///    without SYN or RST, so that spoofed SYNs pin nothing;
/// 4. a flow rule 3 could not pin (the pins are full) is hashed and sent
///    as well, unpinned.
fn rule(table: &Compiled, i: usize) -> String {
    let svc = &table.services[i].service;
    let (family, proto) = match (svc.vip, svc.proto) {
        (IpAddr::V4(_), Proto::Tcp) => ("ip", "tcp"),
        (IpAddr::V4(_), Proto::Udp) => ("ip", "udp"),
        (IpAddr::V6(_), Proto::Tcp) => ("ip6", "tcp"),
        (IpAddr::V6(_), Proto::Udp) => ("ip6", "udp"),
    };
    let flow = match svc.persistent {
        true => format!("{family} saddr"),
        false => format!("{family} saddr . {proto} sport"),
    };
    let ports = match svc.ports.as_slice() {
        [one] => one.to_string(),
        many => {
            let spans: Vec<String> =
                many.iter().map(ToString::to_string).collect();
            format!("{{ {} }}", spans.join(", "))
        }
    };
    let head = format!(
        "\t\tmeta pkttype host {family} daddr {vip} {proto} dport {ports} ",
        vip = svc.vip,
    );
    let hash = format!(
        "meta mark set jhash {flow} mod {buckets} seed 0x0 \
         ether daddr set meta mark map @{}",
        map_name(i),
        buckets = svc.buckets,
    );
    let send = format!(
        "ether saddr set {mac} update @{counted} {{ ether daddr }} \
         fwd to \"{dev}\"\n",
        mac = table.mac,
        counted = counter_set_name(i),
        dev = table.interface,
    );
    let unpinned = format!("{head}{hash} {send}");
    let Some((pins, key)) = pins_of(svc) else { return unpinned };
    let pin = format!("{key} timeout {}s : meta mark", svc.pin_for);
    let fresh = match svc.proto {
        Proto::Tcp => "tcp flags & (syn | rst) == 0 ",
        Proto::Udp => "",
    };
    let (m, k) = (incarnation_map_name(i), mac_map_name(i));
    format!(
        "{head}meta mark set {key} map @{pins} \
         ether daddr set meta mark map @{m} update @{pins} {{ {pin} }} {send}\
         {head}{key} @{pins} delete @{pins} {{ {key} : 0x0 }}\n\
         {head}{fresh}{hash} meta mark set ether daddr map @{k} \
         add @{pins} {{ {pin} }} {send}{unpinned}",
        pins = pins.name,
    )
}

/// The maps of service `i`'s live incarnations, both ways: `m{i}` from
/// incarnation to MAC (where a pinned flow goes) and `k{i}` from MAC to
/// incarnation (what a new flow is pinned to).
fn write_incarnation_maps(s: &mut String, i: usize, f: &Forwarded) {
    for (name, types) in [
        (incarnation_map_name(i), "mark : ether_addr"),
        (mac_map_name(i), "ether_addr : mark"),
    ] {
        let _ = write!(s, "\tmap {name} {{\n\t\ttype {types}\n");
        if !f.incarnations.is_empty() {
            s.push_str("\t\telements = { ");
            let items: Vec<String> = f
                .incarnations
                .iter()
                .map(|(mac, n)| match types.starts_with("mark") {
                    true => format!("{n} : {mac}"),
                    false => format!("{mac} : {n}"),
                })
                .collect();
            s.push_str(&items.join(", "));
            s.push_str(" }\n");
        }
        s.push_str("\t}\n");
    }
}

/// `b : mac, …` for the given buckets of `f`, which must have a table.
/// Each MAC is formatted once, not once per bucket: this loop writes four
/// million elements for 1,000 services.
pub(crate) fn write_elements(
    out: &mut String,
    f: &Forwarded,
    buckets: impl IntoIterator<Item = usize>,
) {
    let macs: Vec<String> = f.macs.iter().map(Mac::to_string).collect();
    for (n, b) in buckets.into_iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{b} : ");
        out.push_str(&macs[usize::from(f.buckets[b])]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dataplane::nft::PortSpan;

    /// The buckets of a service of two real servers.
    const BUCKETS: usize = 127;

    fn mac(last: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, last])
    }

    fn rules(persistent: bool) -> Ruleset {
        Ruleset {
            interface: "eth0".into(),
            mac: mac(0xaa),
            services: vec![Service {
                name: "web".into(),
                vip: "10.0.0.200".parse().unwrap(),
                ports: vec![PortSpan::one(80)],
                proto: Proto::Tcp,
                persistent,
                buckets: BUCKETS,
                backends: vec![
                    (Backend { key: "10.0.0.21:80".into(), weight: 1 }, mac(1)),
                    (Backend { key: "10.0.0.22:80".into(), weight: 1 }, mac(2)),
                ],
                live: Vec::new(),
                pin_for: 900,
                instance: "VI_1".into(),
            }],
            forwarding: ["VI_1".to_owned()].into(),
        }
    }

    #[test]
    fn every_bucket_gets_the_mac_of_its_backend() {
        let r = rules(false);
        let table = buckets::table(
            &r.services[0]
                .backends
                .iter()
                .map(|(b, _)| b.clone())
                .collect::<Vec<_>>(),
            BUCKETS,
        );
        let c = compile(r.clone(), None);
        for (b, &backend) in table.iter().enumerate() {
            assert_eq!(
                c.services[0].mac(b),
                Some(r.services[0].backends[backend].1)
            );
        }
        assert_eq!(c.services[0].mac(BUCKETS), None);
    }

    #[test]
    fn renders_one_map_and_rule_per_service() {
        let text = render(&compile(rules(false), None));
        assert!(text.starts_with(
            "table netdev lbdeploy\ndelete table netdev lbdeploy\n"
        ));
        assert!(text.contains(
            "\tmap s0 {\n\t\ttype mark : ether_addr\n\t\tsize 127\n"
        ));
        assert!(text.contains("elements = { 0 : 02:00:00:00:00:0"));
        // Every bucket, and the two incarnations of map m0.
        assert_eq!(text.matches(" : 02:00:00:00:00:0").count(), BUCKETS + 2);
        assert!(text.contains(
            "\t\tmeta pkttype host ip daddr 10.0.0.200 tcp dport 80 meta mark \
             set jhash ip saddr . tcp sport mod 127 seed 0x0 ether daddr set \
             meta mark map @s0 ether saddr set 02:00:00:00:00:aa update @c0 { \
             ether daddr } fwd to \"eth0\"\n\t}\n"
        ));
        assert!(text.contains(
            "\tset c0 {\n\t\ttype ether_addr\n\t\tsize 65536\n\t\t\
             flags dynamic,timeout\n\t\ttimeout 3600s\n\t\tcounter\n\t}\n"
        ));
        assert!(text.ends_with(
            "\tchain ingress {\n\t\ttype filter hook ingress device \"eth0\" \
             priority 0; policy accept;\n\t\tjump vi0\n\t}\n}\n"
        ));
    }

    #[test]
    fn only_the_chains_of_instances_forwarded_are_jumped_to() {
        let mut r = rules(false);
        let mut other = r.services[0].clone();
        other.ports = vec![PortSpan::one(443)];
        other.instance = "VI_2".into();
        r.services.push(other);
        r.forwarding = ["VI_2".to_owned(), "VI_9".to_owned()].into();
        let t = compile(r.clone(), None);
        assert_eq!(t.jumps(), ["vi1"]);
        let text = render(&t);
        assert!(text.contains("\tchain vi1 {\n\t\tmeta pkttype host ip daddr 10.0.0.200 tcp dport 443"));
        r.forwarding.clear();
        let backup = render(&compile(r, None));
        assert!(
            backup.contains("\tchain vi0 {")
                && backup.contains("\tchain vi1 {")
        );
        assert!(!backup.contains("jump"), "a backup keeps its table inert");
    }

    #[test]
    fn persistence_hashes_the_client_address_only() {
        let text = render(&compile(rules(true), None));
        assert!(text.contains("jhash ip saddr mod 127"));
    }

    #[test]
    fn a_service_without_weight_keeps_its_rule_and_an_empty_map() {
        let mut r = rules(false);
        for (b, _) in &mut r.services[0].backends {
            b.weight = 0;
        }
        let text = render(&compile(r, None));
        assert!(text.contains(
            "\tmap s0 {\n\t\ttype mark : ether_addr\n\t\tsize 127\n\t}\n"
        ));
        assert!(text.contains("daddr 10.0.0.200"));
        // Weight 0 takes no new flow, but keeps the flows pinned to it.
        assert!(text.contains(
            "\tmap m0 {\n\t\ttype mark : ether_addr\n\t\telements = { \
             1 : 02:00:00:00:00:01, 2 : 02:00:00:00:00:02 }\n\t}\n"
        ));
    }

    /// Issue #20: a real server keeps its incarnation while it stays
    /// live, and gets a new one when it comes back, in both maps; a
    /// service whose live set did not change keeps its numbers.
    #[test]
    fn r20_a_real_server_that_comes_back_is_a_new_incarnation() {
        let first = compile(rules(false), None);
        let numbers = |c: &Compiled| c.services[0].incarnations().clone();
        assert_eq!(numbers(&first), [(mac(1), 1), (mac(2), 2)].into());
        let mut down = rules(false);
        down.services[0].backends.remove(0);
        let second = compile(down, Some(&first));
        assert_eq!(numbers(&second), [(mac(2), 2)].into());
        let third = compile(rules(false), Some(&second));
        assert_eq!(numbers(&third), [(mac(1), 3), (mac(2), 2)].into());
        // Live but out of the buckets (weight 0, drained): still pinned to.
        let mut drained = rules(false);
        drained.services[0].backends.remove(0);
        drained.services[0].live = vec![mac(1), mac(2)];
        let fourth = compile(drained, Some(&third));
        assert_eq!(numbers(&fourth), numbers(&third));
        assert!(
            (0..BUCKETS).all(|b| fourth.services[0].mac(b) == Some(mac(2)))
        );
        let text = render(&third);
        assert!(text.contains(
            "\tmap k0 {\n\t\ttype ether_addr : mark\n\t\telements = { \
             02:00:00:00:00:01 : 3, 02:00:00:00:00:02 : 2 }\n\t}\n"
        ));
    }

    /// Issue #20: four rules per IPv4 service — pinned, a dead pin
    /// deleted, pinning, and unpinned when the pins are full — a TCP flow
    /// pinned from its first packet without SYN or RST, a persistent
    /// service's clients by address; an IPv6 service has the unpinned
    /// rule only.
    #[test]
    fn r20_ipv4_flows_are_pinned_and_ipv6_ones_hashed() {
        let text = render(&compile(rules(false), None));
        let chain = text.split("\tchain vi0 {\n").nth(1).unwrap();
        let rules_: Vec<&str> =
            chain.lines().take_while(|l| *l != "\t}").collect();
        assert_eq!(rules_.len(), 4, "{chain}");
        let key = "ip daddr . tcp dport . ip saddr . tcp sport";
        assert!(rules_[0].contains(&format!(
            "meta mark set {key} map @tcp4 ether daddr set meta mark map @m0 \
             update @tcp4 {{ {key} timeout 900s : meta mark }}"
        )));
        assert!(rules_[1].ends_with(&format!(
            "tcp dport 80 {key} @tcp4 delete @tcp4 {{ {key} : 0x0 }}"
        )));
        assert!(rules_[2].contains(
            "tcp dport 80 tcp flags & (syn | rst) == 0 meta mark set jhash"
        ));
        assert!(rules_[2].contains(&format!(
            "meta mark set ether daddr map @k0 add @tcp4 {{ {key} timeout \
             900s : meta mark }}"
        )));
        assert!(!rules_[3].contains("tcp4") && rules_[3].contains("@s0"));
        let sends = [0, 2, 3];
        assert!(sends.iter().all(|&i| rules_[i].ends_with("fwd to \"eth0\"")));
        assert!(text.contains(
            "\tmap tcp4 {\n\t\ttype ipv4_addr . inet_service . ipv4_addr . \
             inet_service : mark\n\t\tsize 262144\n\t\tflags dynamic,timeout\n"
        ));
        let sticky = render(&compile(rules(true), None));
        assert!(sticky.contains(
            "add @clients4 { meta l4proto . ip daddr . tcp dport . ip saddr \
             timeout 900s : meta mark }"
        ));
        let mut v6 = rules(false);
        v6.services[0].vip = "2001:db8::200".parse().unwrap();
        let text = render(&compile(v6, None));
        let chain = text.split("\tchain vi0 {\n").nth(1).unwrap();
        assert_eq!(chain.lines().take_while(|l| *l != "\t}").count(), 1);
        assert!(!chain.contains("@tcp4"));
    }

    /// Issue #21: a port group's rule matches all its ports and ranges
    /// at once; persistent, its clients are pinned without the port, so
    /// one pin holds across the group.
    #[test]
    fn r21_a_port_group_is_one_rule_and_one_pin_per_client() {
        let mut r = rules(true);
        r.services[0].ports = vec![
            PortSpan::one(80),
            PortSpan::one(443),
            PortSpan { first: 8000, last: 8100 },
        ];
        let text = render(&compile(r.clone(), None));
        let chain = text.split("\tchain vi0 {\n").nth(1).unwrap();
        assert!(chain.contains("tcp dport { 80, 443, 8000-8100 } "), "{chain}");
        assert!(chain.contains(
            "update @groups4 { meta l4proto . ip daddr . ip saddr timeout \
             900s : meta mark }"
        ));
        assert!(!chain.contains("@clients4"), "{chain}");
        assert!(text.contains(
            "\tmap groups4 {\n\t\ttype inet_proto . ipv4_addr . ipv4_addr \
             : mark\n"
        ));
        // Not persistent: each connection pinned by its own ports.
        r.services[0].persistent = false;
        let text = render(&compile(r, None));
        assert!(text.contains("add @tcp4 { ip daddr . tcp dport . ip saddr"));
    }

    #[test]
    fn an_unchanged_service_keeps_its_buckets_and_a_changed_one_is_redone() {
        let first = compile(rules(false), None);
        let mut r = rules(false);
        assert_eq!(compile(r.clone(), Some(&first)), first);
        r.services[0].backends[1].1 = mac(3);
        let second = compile(r, Some(&first));
        let moved = (0..BUCKETS)
            .filter(|&b| first.services[0].mac(b) != second.services[0].mac(b))
            .count();
        let owned = (0..BUCKETS)
            .filter(|&b| first.services[0].mac(b) == Some(mac(2)))
            .count();
        assert_eq!(
            moved, owned,
            "a new MAC changes that backend's buckets only"
        );
    }
}
