//! The nftables Direct-Routing data plane: one `table netdev lbdeploy`
//! whose ingress chain, on the director's interface, rewrites the
//! destination MAC of each frame for a virtual service to a real server's
//! and sends it back out of the same port (`fwd`). No conntrack exists at
//! netdev ingress, so the real server is chosen from a hash of the flow
//! into a bucket table ([`super::buckets`]), which keeps every packet of a
//! TCP connection on one real server.
//!
//! [`render`] is pure: desired services in, the whole table as `nft -f`
//! text out. [`load`] replaces the table in one transaction (a table
//! tampered with by hand is simply replaced whole), [`remove`] deletes it.
//!
//! Only frames addressed to this director's own MAC are taken
//! (`meta pkttype host`): a switch floods frames for a MAC it has
//! forgotten to every port, and the backup must not forward those too.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::buckets::{self, Backend};
use crate::agent::nftables;

/// The table's name; lbdeploy owns it and nothing else.
pub const TABLE: &str = "lbdeploy";

/// A MAC address, `02:00:00:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let bytes: Result<Vec<u8>, _> =
            parts.iter().map(|p| u8::from_str_radix(p, 16)).collect();
        match bytes {
            Ok(b) if b.len() == 6 && parts.iter().all(|p| p.len() == 2) => {
                Ok(Mac(b.try_into().expect("six bytes")))
            }
            _ => Err(format!("`{s}` is not a MAC address")),
        }
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
}

/// One virtual service as the data plane forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The VIP.
    pub vip: IpAddr,
    /// The port.
    pub port: u16,
    /// The protocol.
    pub proto: Proto,
    /// Whether all flows of one client go to one real server (the hash
    /// covers the client address only).
    pub persistent: bool,
    /// The real servers: their MAC and weight, keyed by `address:port`.
    pub backends: Vec<(Backend, Mac)>,
}

/// The whole table of one director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The interface facing clients and real servers.
    pub interface: String,
    /// This director's MAC on it (the frames' new source).
    pub mac: Mac,
    /// The services, in configuration order.
    pub services: Vec<Service>,
}

/// The `nft -f` text that replaces the table with `rules` in one
/// transaction (the `table` line makes the `delete` valid when there is no
/// table yet).
pub fn render(rules: &Ruleset) -> String {
    let mut s = format!("table netdev {TABLE}\ndelete table netdev {TABLE}\n");
    s += &format!("table netdev {TABLE} {{\n");
    let mut chain = String::new();
    for (n, svc) in rules.services.iter().enumerate() {
        let keys: Vec<Backend> =
            svc.backends.iter().map(|(b, _)| b.clone()).collect();
        let table = buckets::table(&keys);
        if table.is_empty() {
            // No real server with weight: leave the VIP's packets to the
            // director's own stack, which refuses them.
            continue;
        }
        let elements: Vec<String> = table
            .iter()
            .enumerate()
            .map(|(bucket, &b)| format!("{bucket} : {}", svc.backends[b].1))
            .collect();
        let _ = write!(
            s,
            "\tmap s{n} {{\n\t\ttype mark : ether_addr\n\t\telements = {{ {} }}\n\t}}\n",
            elements.join(", ")
        );
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
        let _ = writeln!(
            chain,
            "\t\tmeta pkttype host {family} daddr {vip} {proto} dport {port} \
             meta mark set jhash {flow} mod {m} seed 0x0 \
             ether saddr set {mac} ether daddr set meta mark map @s{n} \
             fwd to \"{dev}\"",
            vip = svc.vip,
            port = svc.port,
            m = table.len(),
            mac = rules.mac,
            dev = rules.interface,
        );
    }
    let _ = write!(
        s,
        "\tchain ingress {{\n\t\ttype filter hook ingress device \"{}\" \
         priority 0; policy accept;\n{chain}\t}}\n}}\n",
        rules.interface
    );
    s
}

/// Replace the table with `text` (from [`render`]), atomically.
///
/// # Errors
/// When `nft` is missing or refuses the ruleset (its message included).
pub async fn load(text: &str) -> anyhow::Result<()> {
    nftables::load(text, "the data plane's table").await
}

/// The kernel's listing of the table.
///
/// # Errors
/// When there is no such table or `nft` fails.
pub async fn list() -> anyhow::Result<String> {
    nftables::list("netdev", TABLE).await
}

/// Delete the table (nothing is forwarded any more); absent is fine.
///
/// # Errors
/// When `nft` is missing or fails.
pub async fn remove() -> anyhow::Result<()> {
    let script = format!("table netdev {TABLE}\ndelete table netdev {TABLE}\n");
    nftables::load(&script, "the data plane's table").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, last])
    }

    fn rules(persistent: bool) -> Ruleset {
        Ruleset {
            interface: "eth0".into(),
            mac: mac(0xaa),
            services: vec![Service {
                vip: "10.0.0.200".parse().unwrap(),
                port: 80,
                proto: Proto::Tcp,
                persistent,
                backends: vec![
                    (Backend { key: "10.0.0.21:80".into(), weight: 1 }, mac(1)),
                    (Backend { key: "10.0.0.22:80".into(), weight: 1 }, mac(2)),
                ],
            }],
        }
    }

    #[test]
    fn macs_parse_and_print() {
        let m: Mac = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!("02:00:00:00:00".parse::<Mac>().is_err());
        assert!("02:00:00:00:00:0g".parse::<Mac>().is_err());
    }

    #[test]
    fn renders_one_map_and_rule_per_service() {
        let text = render(&rules(false));
        assert!(text.starts_with(
            "table netdev lbdeploy\ndelete table netdev lbdeploy\n"
        ));
        assert!(text.contains("\tmap s0 {\n\t\ttype mark : ether_addr\n"));
        assert!(text.contains("0 : 02:00:00:00:00:0"));
        assert_eq!(
            text.matches(" : 02:00:00:00:00:0").count(),
            buckets::BUCKETS
        );
        assert!(text.contains(
            "meta pkttype host ip daddr 10.0.0.200 tcp dport 80 meta mark set \
             jhash ip saddr . tcp sport mod 4093 seed 0x0 ether saddr set \
             02:00:00:00:00:aa ether daddr set meta mark map @s0 fwd to \"eth0\""
        ));
    }

    #[test]
    fn persistence_hashes_the_client_address_only() {
        assert!(render(&rules(true)).contains("jhash ip saddr mod 4093"));
    }

    #[test]
    fn a_service_without_weight_gets_no_rule() {
        let mut r = rules(false);
        for (b, _) in &mut r.services[0].backends {
            b.weight = 0;
        }
        let text = render(&r);
        assert!(!text.contains("map s0") && !text.contains("daddr 10.0.0.200"));
    }
}
