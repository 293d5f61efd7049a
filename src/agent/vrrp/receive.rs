//! The receive side of RFC 5798 §7.1: what one packet read from the raw
//! socket is to an instance — a valid advert for the state machine, a
//! packet for us that is refused (and counted), or someone else's. Pure:
//! the checks of the outer header and of the message are the codec's
//! ([`super::ipv4`], [`super::ipv6`], [`super::packet`]); reading the
//! socket and counting are [`super::instance`]'s.

use std::net::IpAddr;

use crate::agent::vrrp::error::DecodeError;
use crate::agent::vrrp::fsm::Event;
use crate::agent::vrrp::ipv4::decode_ipv4_packet;
use crate::agent::vrrp::ipv6::decode_ipv6_message;
use crate::agent::vrrp::packet::{Auth, V3Checksum};
use crate::agent::vrrp::socket::Datagram;

/// What a received packet is to the instance whose VRID is `vrid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    /// A valid advert: feed it to the state machine.
    Advert(Event),
    /// A packet for us that was refused: count it; the state machine is
    /// told too ([`Event::AdvertRejected`]) and changes nothing.
    Rejected(DecodeError),
    /// A packet from a source that is not one of the instance's peers:
    /// count it and drop it. The kernel's filter ([`super::filter`])
    /// drops these before they are read; this is the check behind it.
    Stranger(IpAddr),
    /// Another VRID, our own advert, or not VRRP: ignore it.
    NotOurs,
}

/// Classify one packet read from the raw socket: outer header, TTL, codec,
/// VRID, authentication, in RFC 5798 §7.1's order, after the source: when
/// `accept` lists anyone, a packet from anybody else is a stranger's,
/// whatever it holds. With unicast `peers`, only their adverts count, and
/// an IPv6 advert's hop limit is not checked (see
/// [`decode_ipv6_message`]). Pure.
pub(crate) fn classify(
    packet: Datagram<'_>,
    vrid: u8,
    local: IpAddr,
    auth: &Auth,
    v3: V3Checksum,
    peers: Option<&[IpAddr]>,
    accept: &[IpAddr],
) -> Received {
    let src = match packet {
        Datagram::V4(p) => {
            p.get(12..16).map(|a| IpAddr::from([a[0], a[1], a[2], a[3]]))
        }
        Datagram::V6(meta, _) => Some(IpAddr::V6(meta.src)),
    };
    match src {
        Some(src) if src == local => return Received::NotOurs,
        Some(src) if !accept.is_empty() && !accept.contains(&src) => {
            return Received::Stranger(src);
        }
        _ => {}
    }
    let decoded = match packet {
        Datagram::V4(p) => decode_ipv4_packet(p, v3)
            .map(|(header, advert)| (IpAddr::V4(header.src), advert)),
        Datagram::V6(meta, msg) => {
            decode_ipv6_message(&meta, msg, peers.is_none())
                .map(|advert| (IpAddr::V6(meta.src), advert))
        }
    };
    match decoded {
        Ok((src, _)) if src == local => Received::NotOurs,
        Ok((src, _)) if peers.is_some_and(|p| !p.contains(&src)) => {
            Received::NotOurs
        }
        Ok((_, advert)) if advert.vrid() != vrid => Received::NotOurs,
        Ok((src, advert)) => match advert.verify_auth(auth) {
            Ok(()) => Received::Advert(Event::advert(src, &advert)),
            Err(e) => Received::Rejected(e),
        },
        // Errors before the VRID is known (not VRRP, a broken header) are
        // nobody's; those with another VRID are another instance's.
        Err(e) if e.vrid() == Some(vrid) => Received::Rejected(e),
        Err(_) => Received::NotOurs,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use super::*;
    use crate::agent::vrrp::ipv6::Ipv6Meta;
    use crate::agent::vrrp::packet::{MULTICAST_V6, PseudoHeader, TTL};
    use crate::agent::vrrp::settings::Settings;
    use crate::agent::vrrp::settings::fixtures::*;

    /// Classify the IPv6 message `msg` for VRID 51 with `s`'s settings,
    /// nobody listed to accept from.
    fn v6(
        s: &Settings,
        meta: Ipv6Meta,
        msg: &[u8],
        peers: Option<&[IpAddr]>,
    ) -> Received {
        let d = Datagram::V6(meta, msg);
        classify(d, 51, s.local, &s.auth, s.v3, peers, &[])
    }

    /// An IPv4 packet around `msg` as a raw socket delivers it.
    fn ip_packet(src: Ipv4Addr, ttl: u8, msg: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, 112, 0, 0];
        p[2..4].copy_from_slice(&((20 + msg.len()) as u16).to_be_bytes());
        p.extend(src.octets());
        p.extend([224, 0, 0, 18]);
        p.extend(msg);
        p
    }

    #[test]
    fn classify_checks_ttl_vrid_auth_and_skips_our_own() {
        let s = Settings::new("eth0", 7, local(), &ipv6(), &config()).unwrap();
        let peer: Ipv4Addr = "10.0.0.12".parse().unwrap();
        let ip =
            PseudoHeader::V4 { src: peer, dst: "224.0.0.18".parse().unwrap() };
        let msg = s.advert(70).encode(&ip, s.v3).unwrap();
        let ok = |p: &[u8]| {
            classify(Datagram::V4(p), 51, s.local, &s.auth, s.v3, None, &[])
        };
        let got = ok(&ip_packet(peer, TTL, &msg));
        assert_eq!(
            got,
            Received::Advert(Event::AdvertReceived {
                from: IpAddr::V4(peer),
                priority: 70,
                max_adver_int: Duration::from_secs(1),
            })
        );
        assert!(matches!(
            ok(&ip_packet(peer, 254, &msg)),
            Received::Rejected(DecodeError::BadTtl { ttl: 254, .. })
        ));
        let ours: Ipv4Addr = "10.0.0.11".parse().unwrap();
        assert_eq!(ok(&ip_packet(ours, TTL, &msg)), Received::NotOurs);
        let packet = ip_packet(peer, TTL, &msg);
        assert_eq!(
            classify(
                Datagram::V4(&packet),
                52,
                s.local,
                &s.auth,
                s.v3,
                None,
                &[]
            ),
            Received::NotOurs
        );
        let other = Auth::pass(b"other").unwrap();
        assert!(matches!(
            classify(
                Datagram::V4(&packet),
                51,
                s.local,
                &other,
                s.v3,
                None,
                &[]
            ),
            Received::Rejected(DecodeError::AuthMismatch { vrid: 51 })
        ));
        let mut bad = msg.clone();
        bad[6] ^= 0xff;
        assert!(matches!(
            ok(&ip_packet(peer, TTL, &bad)),
            Received::Rejected(DecodeError::BadChecksum { .. })
        ));
    }

    #[test]
    fn classify_ipv6_unicast_takes_the_peers_at_any_hop_limit_and_nobody_else()
    {
        let s =
            Settings::new("eth0", 7, local(), &ipv6(), &config_v6()).unwrap();
        let peer: Ipv6Addr = "fd00::12".parse().unwrap();
        let peers = [IpAddr::V6(peer)];
        let meta = Ipv6Meta {
            src: peer,
            dst: "fd00::11".parse().unwrap(),
            hop_limit: 64,
        };
        let msg = s.advert(70).encode(&meta.pseudo_header(), s.v3).unwrap();
        let got = |meta: Ipv6Meta, peers| v6(&s, meta, &msg, peers);
        assert!(matches!(got(meta, Some(&peers[..])), Received::Advert(_)));
        assert!(matches!(
            got(meta, None),
            Received::Rejected(DecodeError::BadTtl { ttl: 64, .. })
        ));
        let stranger = "fd00::66".parse().unwrap();
        let msg = s
            .advert(70)
            .encode(&Ipv6Meta { src: stranger, ..meta }.pseudo_header(), s.v3)
            .unwrap();
        assert_eq!(
            v6(&s, Ipv6Meta { src: stranger, ..meta }, &msg, Some(&peers[..])),
            Received::NotOurs
        );
    }

    #[test]
    fn classify_ipv6_checks_the_hop_limit_and_skips_our_own() {
        let s =
            Settings::new("eth0", 7, local(), &ipv6(), &config_v6()).unwrap();
        let peer: Ipv6Addr = "fe80::12".parse().unwrap();
        let meta = Ipv6Meta { src: peer, dst: MULTICAST_V6, hop_limit: TTL };
        let msg = s.advert(70).encode(&meta.pseudo_header(), s.v3).unwrap();
        let got = |meta: Ipv6Meta| v6(&s, meta, &msg, None);
        assert_eq!(
            got(meta),
            Received::Advert(Event::AdvertReceived {
                from: IpAddr::V6(peer),
                priority: 70,
                max_adver_int: Duration::from_secs(1),
            })
        );
        assert!(matches!(
            got(Ipv6Meta { hop_limit: 1, ..meta }),
            Received::Rejected(DecodeError::BadTtl { ttl: 1, .. })
        ));
        let ours = Ipv6Meta { src: ll(), ..meta };
        let msg = s.advert(70).encode(&ours.pseudo_header(), s.v3).unwrap();
        assert_eq!(v6(&s, ours, &msg, None), Received::NotOurs);
    }

    #[test]
    fn strangers_are_refused_before_anything_else() {
        let s = Settings::new("eth0", 7, local(), &ipv6(), &config()).unwrap();
        let peer: Ipv4Addr = "10.0.0.12".parse().unwrap();
        let stranger: Ipv4Addr = "10.0.0.100".parse().unwrap();
        let accept = [IpAddr::V4(peer)];
        let ip =
            PseudoHeader::V4 { src: peer, dst: "224.0.0.18".parse().unwrap() };
        let msg = s.advert(254).encode(&ip, s.v3).unwrap();
        let got = |p: &[u8], accept: &[IpAddr]| {
            classify(Datagram::V4(p), 51, s.local, &s.auth, s.v3, None, accept)
        };
        // The right password and priority 254 from a stranger: refused.
        assert_eq!(
            got(&ip_packet(stranger, TTL, &msg), &accept),
            Received::Stranger(IpAddr::V4(stranger))
        );
        // So is a stranger's wrong TTL: the source is checked first.
        assert_eq!(
            got(&ip_packet(stranger, 1, &msg), &accept),
            Received::Stranger(IpAddr::V4(stranger))
        );
        assert!(matches!(
            got(&ip_packet(peer, TTL, &msg), &accept),
            Received::Advert(_)
        ));
        // Nobody listed: anyone.
        assert!(matches!(
            got(&ip_packet(stranger, TTL, &msg), &[]),
            Received::Advert(_)
        ));
        let ours: Ipv4Addr = "10.0.0.11".parse().unwrap();
        assert_eq!(
            got(&ip_packet(ours, TTL, &msg), &accept),
            Received::NotOurs
        );
        assert_eq!(got(&[0x45, 0], &accept), Received::NotOurs);
    }
}
