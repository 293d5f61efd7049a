//! `bird.conf` from the director's BGP configuration (pure).
//!
//! One static protocol per VIP, so each VIP is announced or withdrawn on
//! its own: a VIP not announced now has its protocol `disabled`, and
//! BIRD's reconfiguration restarts only the protocols whose text changed
//! — the BGP sessions stay up. Only those static routes are exported; no
//! kernel protocol, so BIRD never touches the director's routing table
//! (the agent adds the local blackhole route itself).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

use crate::inventory::agent::{BgpConfig, PeerConfig};

/// The static protocol announcing `vip`.
pub(crate) fn vip_protocol(vip: IpAddr) -> String {
    format!("vip_{}", symbol(vip))
}

/// The BGP protocol of `peer`.
pub(crate) fn peer_protocol(peer: IpAddr) -> String {
    format!("peer_{}", symbol(peer))
}

/// An address as a BIRD symbol's tail: digits, letters and `_`.
fn symbol(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "_")
}

/// The whole file: `vips` are every VIP announced over BGP, `announced`
/// those announced now; `address` is this director's own, the sessions'
/// source.
pub(crate) fn render(
    host: &str,
    bgp: &BgpConfig,
    address: IpAddr,
    vips: &BTreeSet<IpAddr>,
    announced: &BTreeSet<IpAddr>,
) -> String {
    let mut f = String::new();
    let _ = writeln!(
        f,
        "# Written by lbdeploy's agent on {host}; rewritten at each change."
    );
    let _ = writeln!(f, "log stderr all;");
    let _ = writeln!(f, "router id {};", bgp.router_id);
    let _ = writeln!(f, "protocol device {{}}");
    if let Some(bfd) = bgp.bfd {
        let ms = bfd.interval.get().as_millis();
        let _ = writeln!(
            f,
            "protocol bfd {{ interface \"*\" {{ min rx interval {ms} ms; \
             min tx interval {ms} ms; multiplier {}; }}; }}",
            bfd.multiplier
        );
    }
    for vip in vips {
        let (channel, len) = family(*vip);
        let _ = writeln!(
            f,
            "protocol static {} {{ {channel}; {}route {vip}/{len} blackhole; }}",
            vip_protocol(*vip),
            if announced.contains(vip) { "" } else { "disabled; " },
        );
    }
    for peer in &bgp.peers {
        session(&mut f, bgp, peer, address);
    }
    f
}

/// One peer's BGP protocol: eBGP or iBGP by its AS, the static routes
/// of its family exported with this director as next hop.
fn session(f: &mut String, bgp: &BgpConfig, peer: &PeerConfig, own: IpAddr) {
    let (channel, _) = family(peer.address);
    let _ = writeln!(f, "protocol bgp {} {{", peer_protocol(peer.address));
    if own.is_ipv6() == peer.address.is_ipv6() {
        let _ = writeln!(f, "  local {own} as {};", bgp.local_as);
    } else {
        let _ = writeln!(f, "  local as {};", bgp.local_as);
    }
    let _ = writeln!(f, "  neighbor {} as {};", peer.address, peer.remote_as);
    if let Some(p) = &peer.password {
        // Validation allows printable ASCII without `"` or `\` only.
        let _ = writeln!(f, "  password \"{p}\";");
    }
    if let Some(h) = bgp.hold_time {
        let _ = writeln!(f, "  hold time {};", h.get().as_secs());
    }
    if let Some(k) = bgp.keepalive_time {
        let _ = writeln!(f, "  keepalive time {};", k.get().as_secs());
    }
    if bgp.bfd.is_some() {
        let _ = writeln!(f, "  bfd on;");
    }
    let _ = writeln!(
        f,
        "  {channel} {{ import none; export where source = RTS_STATIC; next hop self; }};"
    );
    let _ = writeln!(f, "}}");
}

/// The channel and host-route length of an address's family.
fn family(ip: IpAddr) -> (&'static str, u8) {
    if ip.is_ipv6() { ("ipv6", 128) } else { ("ipv4", 32) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Bfd, BfdMultiplier, Duration};

    fn config() -> BgpConfig {
        BgpConfig {
            local_as: 65001,
            router_id: "192.168.1.11".parse().unwrap(),
            peers: vec![PeerConfig {
                address: "192.168.1.1".parse().unwrap(),
                remote_as: 65000,
                password: Some("s3cret".into()),
            }],
            bfd: Some(Bfd {
                interval: Duration::from_millis(100),
                multiplier: BfdMultiplier::new(3).unwrap(),
            }),
            hold_time: Some(Duration::from_secs(3)),
            keepalive_time: None,
            drain_grace: Duration::from_secs(2),
        }
    }

    #[test]
    fn each_vip_has_its_protocol_disabled_unless_announced() {
        let vips: BTreeSet<IpAddr> = ["10.20.0.100", "10.20.0.101"]
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        let announced = ["10.20.0.101".parse().unwrap()].into();
        let own = "192.168.1.11".parse().unwrap();
        let text = render("d1", &config(), own, &vips, &announced);
        let expected = "\
# Written by lbdeploy's agent on d1; rewritten at each change.
log stderr all;
router id 192.168.1.11;
protocol device {}
protocol bfd { interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol static vip_10_20_0_100 { ipv4; disabled; route 10.20.0.100/32 blackhole; }
protocol static vip_10_20_0_101 { ipv4; route 10.20.0.101/32 blackhole; }
protocol bgp peer_192_168_1_1 {
  local 192.168.1.11 as 65001;
  neighbor 192.168.1.1 as 65000;
  password \"s3cret\";
  hold time 3;
  bfd on;
  ipv4 { import none; export where source = RTS_STATIC; next hop self; };
}
";
        assert_eq!(text, expected);
    }

    #[test]
    fn ipv6_vips_and_peers_use_the_ipv6_channel() {
        let mut c = config();
        c.peers[0].address = "fd00::1".parse().unwrap();
        c.peers[0].password = None;
        c.bfd = None;
        c.hold_time = None;
        let vip: IpAddr = "fd00:20::100".parse().unwrap();
        let own = "192.168.1.11".parse().unwrap();
        let text = render("d1", &c, own, &[vip].into(), &[vip].into());
        assert!(text.contains(
            "protocol static vip_fd00_20__100 { ipv6; route fd00:20::100/128 blackhole; }"
        ));
        assert!(
            text.contains("  local as 65001;\n  neighbor fd00::1 as 65000;")
        );
        assert!(text.contains("  ipv6 { import none;"));
        assert!(!text.contains("bfd"));
    }
}
