//! VRRP test vectors captured from a real keepalived, checked both ways:
//! our decoder reads every field, our encoder reproduces every byte.
//! Vectors produced by our own encoder would only prove that it agrees with
//! itself.
//!
//! # How they were captured
//!
//! `tests/vectors/capture-keepalived.sh` (run once by hand, as root) on
//! Debian bookworm with keepalived 2.2.7 (`1:2.2.7-1+b2`): two network
//! namespaces joined by a veth pair with fixed MACs, `vv-a`
//! (02:00:0a:fa:fa:01, 10.250.250.1/24, fe80::aff:fefa:fa01) and `vv-b`
//! (02:00:0a:fa:fa:02, 10.250.250.2/24). keepalived ran in the first as
//! `keepalived -n -l -D --vrrp -f CONF -p PID -r VRRP_PID` with `state
//! MASTER` on `interface vv-a`; `tcpdump -w` listened on `vv-b`; after
//! ~4 s keepalived got SIGTERM, so each capture also holds the priority-0
//! advert it sends when leaving. `tests/vectors/extract-vectors.py` printed
//! the bytes below. The per-case configs (all in the script) were:
//!
//! * v2-pass: `vrrp_version 2`, `virtual_router_id 51`, `priority 150`,
//!   `advert_int 1`, `auth_type PASS`, `auth_pass secret12`, VIPs
//!   10.250.250.100/24 and 10.250.250.101/24.
//! * v3-ipv4: `vrrp_version 3`, vrid 52, priority 200, `advert_int 1`,
//!   VIP 10.250.250.102/24.
//! * v3-ipv4-50cs: vrid 53, priority 100, `advert_int 0.5`, VIP
//!   10.250.250.103/24, and `v3_checksum_as_v2`, which 2.2.7 rejects
//!   ("Unknown keyword"): it still used the pseudo-header.
//! * v3-unicast-old: vrid 54, priority 120, `unicast_src_ip 10.250.250.1`,
//!   `unicast_peer { 10.250.250.2 }`, `old_unicast_checksum`.
//! * v3-ipv6: vrid 55, priority 150, `advert_int 1`, VIPs
//!   fd00:250:250::100/64 and fd00:250:250::101/64. This capture also
//!   holds the unsolicited Neighbour Advertisements for both VIPs
//!   (recaptured with the same script once it recorded them too; the
//!   adverts came out identical).
//!
//! IPv4 vectors are whole IPv4 packets (what an IPv4 raw socket returns);
//! the IPv6 vector is the VRRP payload with its source and destination (an
//! IPv6 raw socket returns no header).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use lbdeploy::agent::vrrp::arp::gratuitous_arp;
use lbdeploy::agent::vrrp::error::DecodeError;
use lbdeploy::agent::vrrp::fsm::{self, Action, Instance, State};
use lbdeploy::agent::vrrp::ipv4::decode_ipv4_packet;
use lbdeploy::agent::vrrp::ndisc::unsolicited_advert;
use lbdeploy::agent::vrrp::packet::{
    Addrs, Advert, AdvertV2, AdvertV3, Auth, IPPROTO_VRRP, MULTICAST_V4,
    MULTICAST_V6, PseudoHeader, TTL, V3Checksum, Version,
};

use crate::hex::{assert_bytes_eq, format, parse};

const KEEPALIVED: Ipv4Addr = Ipv4Addr::new(10, 250, 250, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 250, 250, 2);
const KEEPALIVED_LL: Ipv6Addr =
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0aff, 0xfefa, 0xfa01, 0);
const KEEPALIVED_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0xfa, 0xfa, 0x01];

/// v2-pass, first advert (priority 150).
const V2_PASS: &str = "45c0002c00010000ff70d5920afafa01e0000012
    213396020101cf8b 0afafa64 0afafa65 7365637265743132";
/// v2-pass, the advert sent on SIGTERM (priority 0).
const V2_PASS_RESIGN: &str = "45c0002c00030000ff70d5900afafa01e0000012
    213300020101658c 0afafa64 0afafa65 7365637265743132";
/// v3-ipv4, first advert (priority 200, 100 cs).
const V3_IPV4: &str = "45c0002000010000ff70d59e0afafa01e0000012
    3134c80100641b7a 0afafa66";
/// v3-ipv4, the advert sent on SIGTERM.
const V3_IPV4_RESIGN: &str = "45c0002000030000ff70d59c0afafa01e0000012
    313400010064e37a 0afafa66";
/// v3-ipv4-50cs (priority 100, 50 cs).
const V3_IPV4_50CS: &str = "45c0002000010000ff70d59e0afafa01e0000012
    3135640100327faa 0afafa67";
/// v3-unicast-old: unicast to 10.250.250.2, pseudo-header with 224.0.0.18.
const V3_UNICAST_OLD: &str = "45c0002000010000ff70b0b40afafa010afafa02
    3136780100646b76 0afafa68";
/// v3-ipv6, VRRP payload (priority 150, 100 cs), hop limit 255.
const V3_IPV6: &str = "31379602006430f5
    fd000250025000000000000000000100 fd000250025000000000000000000101";
/// v3-ipv6, the advert sent on SIGTERM.
const V3_IPV6_RESIGN: &str = "313700020064c6f5
    fd000250025000000000000000000100 fd000250025000000000000000000101";
/// The gratuitous ARP keepalived broadcast for 10.250.250.100 (v2-pass).
const GARP_100: &str = "ffffffffffff 02000afafa01 0806
    0001 0800 06 04 0001 02000afafa01 0afafa64 ffffffffffff 0afafa64";
/// The unsolicited Neighbour Advertisements keepalived sent for the two
/// VIPs of v3-ipv6 on becoming master (five of each, all alike): Ethernet
/// to 33:33:00:00:00:01; IPv6 from the VIP to ff02::1, next header 58, hop
/// limit 255; ICMPv6 type 136, flags Override only, target the VIP, Target
/// Link-Layer Address option with the MAC.
const NA_100: &str = "333300000001 02000afafa01 86dd
    60000000 0020 3a ff fd000250025000000000000000000100
    ff020000000000000000000000000001
    88 00 4a62 20000000 fd000250025000000000000000000100 02 01 02000afafa01";
const NA_101: &str = "333300000001 02000afafa01 86dd
    60000000 0020 3a ff fd000250025000000000000000000101
    ff020000000000000000000000000001
    88 00 4a60 20000000 fd000250025000000000000000000101 02 01 02000afafa01";

fn v2_pass(priority: u8) -> Advert {
    Advert::V2(AdvertV2 {
        vrid: 51,
        priority,
        adver_int: 1,
        auth: Auth::pass(b"secret12").expect("8 bytes fit"),
        addrs: vec![
            Ipv4Addr::new(10, 250, 250, 100),
            Ipv4Addr::new(10, 250, 250, 101),
        ],
    })
}

fn v3_ipv4(vrid: u8, priority: u8, cs: u16, vip: u8) -> Advert {
    Advert::V3(AdvertV3 {
        vrid,
        priority,
        max_adver_int: cs,
        addrs: Addrs::V4(vec![Ipv4Addr::new(10, 250, 250, vip)]),
    })
}

fn v3_ipv6(priority: u8) -> Advert {
    let vip = |last| Ipv6Addr::new(0xfd00, 0x250, 0x250, 0, 0, 0, 0, last);
    Advert::V3(AdvertV3 {
        vrid: 55,
        priority,
        max_adver_int: 100,
        addrs: Addrs::V6(vec![vip(0x100), vip(0x101)]),
    })
}

/// Decodes a captured IPv4 packet, checks the outer header keepalived
/// sent, and returns the advert and the VRRP payload bytes.
#[track_caller]
fn decode_captured(
    packet_hex: &str,
    dst: Ipv4Addr,
    v3: V3Checksum,
) -> (Advert, Vec<u8>) {
    let packet = parse(packet_hex);
    let (header, advert) =
        decode_ipv4_packet(&packet, v3).unwrap_or_else(|e| {
            panic!("decode failed: {e}\n  packet: {}", format(&packet))
        });
    assert_eq!(header.ttl, TTL);
    assert_eq!(header.protocol, IPPROTO_VRRP);
    assert_eq!(header.src, KEEPALIVED);
    assert_eq!(header.dst, dst);
    assert_eq!(header.header_len, 20);
    (advert, packet[header.header_len..].to_vec())
}

#[track_caller]
fn assert_encodes(
    advert: &Advert,
    ip: &PseudoHeader,
    v3: V3Checksum,
    want: &[u8],
) {
    let got = advert.encode(ip, v3).expect("encodable");
    assert_bytes_eq(&got, want, "encoded advert vs keepalived's");
}

fn multicast_v4() -> PseudoHeader {
    PseudoHeader::V4 { src: KEEPALIVED, dst: MULTICAST_V4 }
}

#[test]
fn v2_pass_decodes_field_for_field() {
    for (hex, priority) in [(V2_PASS, 150), (V2_PASS_RESIGN, 0)] {
        let (advert, _) =
            decode_captured(hex, MULTICAST_V4, V3Checksum::default());
        assert_eq!(advert, v2_pass(priority));
        assert_eq!(advert.version(), Version::V2);
        assert_eq!(advert.interval(), Duration::from_secs(1));
    }
}

#[test]
fn v2_pass_encodes_byte_for_byte() {
    for (hex, priority) in [(V2_PASS, 150), (V2_PASS_RESIGN, 0)] {
        let (_, payload) =
            decode_captured(hex, MULTICAST_V4, V3Checksum::default());
        let advert = v2_pass(priority);
        assert_encodes(
            &advert,
            &multicast_v4(),
            V3Checksum::default(),
            &payload,
        );
    }
}

#[test]
fn v2_pass_authentication_is_checked() {
    let (advert, _) =
        decode_captured(V2_PASS, MULTICAST_V4, V3Checksum::default());
    let ok = Auth::pass(b"secret12").expect("fits");
    assert_eq!(advert.verify_auth(&ok), Ok(()));
    for wrong in [Auth::pass(b"secret13").expect("fits"), Auth::None] {
        let err = advert.verify_auth(&wrong);
        assert_eq!(err, Err(DecodeError::AuthMismatch { vrid: 51 }));
    }
}

#[test]
fn v3_ipv4_decodes_field_for_field() {
    let cases = [
        (V3_IPV4, v3_ipv4(52, 200, 100, 102), 1000),
        (V3_IPV4_RESIGN, v3_ipv4(52, 0, 100, 102), 1000),
        (V3_IPV4_50CS, v3_ipv4(53, 100, 50, 103), 500),
    ];
    for (hex, want, interval_ms) in cases {
        let (advert, _) =
            decode_captured(hex, MULTICAST_V4, V3Checksum::Rfc5798);
        assert_eq!(advert, want);
        assert_eq!(advert.interval(), Duration::from_millis(interval_ms));
        assert_eq!(advert.verify_auth(&Auth::None), Ok(()));
    }
}

#[test]
fn v3_ipv4_encodes_byte_for_byte() {
    let cases = [
        (V3_IPV4, v3_ipv4(52, 200, 100, 102)),
        (V3_IPV4_RESIGN, v3_ipv4(52, 0, 100, 102)),
        (V3_IPV4_50CS, v3_ipv4(53, 100, 50, 103)),
    ];
    for (hex, advert) in cases {
        let (_, payload) =
            decode_captured(hex, MULTICAST_V4, V3Checksum::Rfc5798);
        assert_encodes(&advert, &multicast_v4(), V3Checksum::Rfc5798, &payload);
    }
}

/// keepalived 2.2.7 has no `v3_checksum_as_v2`, so this vector is the
/// captured v3-ipv4 advert with the checksum `extract-vectors.py` computed
/// without the pseudo-header (0x0105), independently of our code.
#[test]
fn v3_ipv4_checksum_as_v2() {
    let (_, mut payload) =
        decode_captured(V3_IPV4, MULTICAST_V4, V3Checksum::Rfc5798);
    payload[6..8].copy_from_slice(&[0x01, 0x05]);
    let ip = multicast_v4();
    let advert = v3_ipv4(52, 200, 100, 102);
    assert_eq!(
        Advert::decode(&payload, &ip, V3Checksum::AsV2),
        Ok(advert.clone())
    );
    assert_encodes(&advert, &ip, V3Checksum::AsV2, &payload);
    // Each mode refuses the other's checksum.
    let err = Advert::decode(&payload, &ip, V3Checksum::Rfc5798);
    assert!(matches!(err, Err(DecodeError::BadChecksum { vrid: 52, .. })));
}

/// With `old_unicast_checksum` keepalived sums 224.0.0.18 into the
/// pseudo-header of a unicast advert: the true destination fails, the
/// multicast group verifies, and we can produce the same bytes.
#[test]
fn v3_unicast_old_checksum_uses_the_multicast_group() {
    let (header_ok, payload) = {
        let packet = parse(V3_UNICAST_OLD);
        let result = decode_ipv4_packet(&packet, V3Checksum::Rfc5798);
        (result, packet[20..].to_vec())
    };
    assert!(matches!(
        header_ok,
        Err(DecodeError::BadChecksum { vrid: 54, received: 0x6b76, .. })
    ));
    let ip = PseudoHeader::V4 { src: KEEPALIVED, dst: MULTICAST_V4 };
    let advert = v3_ipv4(54, 120, 100, 104);
    assert_eq!(
        Advert::decode(&payload, &ip, V3Checksum::Rfc5798),
        Ok(advert.clone())
    );
    assert_encodes(&advert, &ip, V3Checksum::Rfc5798, &payload);
    // The real destination is the unicast peer.
    let packet = parse(V3_UNICAST_OLD);
    assert_eq!(&packet[16..20], &PEER.octets());
}

#[test]
fn v3_ipv6_both_ways() {
    let ip = PseudoHeader::V6 { src: KEEPALIVED_LL, dst: MULTICAST_V6 };
    for (hex, priority) in [(V3_IPV6, 150), (V3_IPV6_RESIGN, 0)] {
        let payload = parse(hex);
        let want = v3_ipv6(priority);
        let got = Advert::decode(&payload, &ip, V3Checksum::Rfc5798)
            .unwrap_or_else(|e| {
                panic!("decode failed: {e}\n  payload: {}", format(&payload))
            });
        assert_eq!(got, want);
        // The option only concerns IPv4: IPv6 always uses the pseudo-header.
        assert_eq!(
            Advert::decode(&payload, &ip, V3Checksum::AsV2),
            Ok(want.clone())
        );
        assert_encodes(&want, &ip, V3Checksum::Rfc5798, &payload);
    }
}

#[test]
fn gratuitous_arp_matches_keepalived() {
    let vip = Ipv4Addr::new(10, 250, 250, 100);
    assert_bytes_eq(
        &gratuitous_arp(KEEPALIVED_MAC, vip),
        &parse(GARP_100),
        "garp",
    );
}

#[test]
fn neighbour_advert_matches_keepalived() {
    for (hex, last) in [(NA_100, 0x100), (NA_101, 0x101)] {
        let vip = Ipv6Addr::new(0xfd00, 0x250, 0x250, 0, 0, 0, 0, last);
        let ours = unsolicited_advert(KEEPALIVED_MAC, vip);
        let theirs = parse(hex);
        // Byte for byte: addresses, hop limit, flags, option and checksum.
        assert_bytes_eq(&ours, &theirs, &format!("NA for {vip}"));
    }
}

/// A keepalived master at priority 200 keeps our priority-100 v3 backup in
/// Backup, and its resign advert makes us take over after Skew_Time.
#[test]
fn keepalived_adverts_drive_our_backup() {
    let mut ours = Instance::new(fsm::Config {
        version: Version::V3,
        priority: 100,
        adver_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: IpAddr::V4(PEER),
    })
    .expect("valid config");
    let t0 = Duration::from_secs(100);
    ours.handle(t0, fsm::Event::Startup);
    let from = IpAddr::V4(KEEPALIVED);

    let (advert, _) =
        decode_captured(V3_IPV4, MULTICAST_V4, V3Checksum::Rfc5798);
    let t1 = t0 + Duration::from_millis(500);
    let down =
        fsm::master_down_interval(Version::V3, 100, Duration::from_secs(1));
    assert_eq!(
        ours.handle(t1, fsm::Event::advert(from, &advert)),
        vec![Action::ArmMasterDownTimer { at: t1 + down }]
    );
    assert_eq!(ours.state(), State::Backup);

    let (resign, _) =
        decode_captured(V3_IPV4_RESIGN, MULTICAST_V4, V3Checksum::Rfc5798);
    let t2 = t1 + Duration::from_secs(1);
    let skew = fsm::skew_time(Version::V3, 100, Duration::from_secs(1));
    assert_eq!(
        ours.handle(t2, fsm::Event::advert(from, &resign)),
        vec![Action::ArmMasterDownTimer { at: t2 + skew }]
    );
}
