//! What the VRRP codec refuses, and proof that no input makes it panic.
//!
//! Negative cases start from a valid advert and break one thing. When the
//! break must get past the checksum (to reach a later check), the checksum
//! is recomputed by [`fix_checksum`], an RFC 1071 implementation written
//! here apart from the codec's. The random test is a bounded, seeded loop;
//! `fuzz/` runs the same decoders under libFuzzer for as long as one likes.

use std::net::{Ipv4Addr, Ipv6Addr};

use lbdeploy::agent::vrrp::error::{DecodeError, EncodeError};
use lbdeploy::agent::vrrp::ipv4::{Ipv4Header, decode_ipv4_packet};
use lbdeploy::agent::vrrp::packet::{
    Addrs, Advert, AdvertV2, AdvertV3, Auth, MULTICAST_V4, MULTICAST_V6,
    PseudoHeader, V3Checksum,
};

use crate::hex::format;

const SRC: Ipv4Addr = Ipv4Addr::new(10, 250, 250, 1);
const V4: PseudoHeader = PseudoHeader::V4 { src: SRC, dst: MULTICAST_V4 };
const V6: PseudoHeader = PseudoHeader::V6 {
    src: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
    dst: MULTICAST_V6,
};

fn v3() -> Advert {
    Advert::V3(AdvertV3 {
        vrid: 7,
        priority: 100,
        max_adver_int: 100,
        addrs: Addrs::V4(vec![Ipv4Addr::new(10, 250, 250, 100)]),
    })
}

fn v2() -> Advert {
    Advert::V2(AdvertV2 {
        vrid: 9,
        priority: 100,
        adver_int: 1,
        auth: Auth::pass(b"pw").expect("fits"),
        addrs: vec![Ipv4Addr::new(10, 250, 250, 100)],
    })
}

fn bytes(advert: &Advert, ip: &PseudoHeader) -> Vec<u8> {
    advert.encode(ip, V3Checksum::Rfc5798).expect("encodable")
}

/// Recomputes the checksum of a v2 message or a v3-over-IPv4 message
/// (with the IPv4 pseudo-header), from scratch.
fn fix_checksum(msg: &mut [u8]) {
    msg[6] = 0;
    msg[7] = 0;
    let mut data = Vec::new();
    if msg[0] >> 4 == 3 {
        data.extend(SRC.octets());
        data.extend(MULTICAST_V4.octets());
        data.extend([0, 112]);
        data.extend(u16::try_from(msg.len()).expect("short").to_be_bytes());
    }
    data.extend_from_slice(msg);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let sum = !(sum as u16);
    msg[6..8].copy_from_slice(&sum.to_be_bytes());
}

#[track_caller]
fn assert_rejects(msg: &[u8], ip: &PseudoHeader, want: DecodeError) {
    let got = Advert::decode(msg, ip, V3Checksum::Rfc5798);
    assert_eq!(got, Err(want), "input: {}", format(msg));
}

#[test]
fn empty_and_short_inputs_are_truncated() {
    assert_rejects(
        &[],
        &V4,
        DecodeError::Truncated { vrid: None, len: 0, need: 8 },
    );
    assert_rejects(
        &[0x31],
        &V4,
        DecodeError::Truncated { vrid: None, len: 1, need: 8 },
    );
    let msg = bytes(&v3(), &V4);
    let err = DecodeError::Truncated { vrid: Some(7), len: 5, need: 8 };
    assert_eq!(err.vrid(), Some(7));
    assert_rejects(&msg[..5], &V4, err);
}

#[test]
fn address_count_must_match_length() {
    let msg = bytes(&v3(), &V4);
    // One address byte missing.
    let short = &msg[..msg.len() - 1];
    assert_rejects(
        short,
        &V4,
        DecodeError::AddressCountMismatch { vrid: 7, count: 1, len: 11 },
    );
    // Oversize count: 200 addresses announced, one present.
    let mut big = msg.clone();
    big[3] = 200;
    assert_rejects(
        &big,
        &V4,
        DecodeError::AddressCountMismatch { vrid: 7, count: 200, len: 12 },
    );
    // Trailing garbage.
    let mut long = msg.clone();
    long.extend([0; 4]);
    assert_rejects(
        &long,
        &V4,
        DecodeError::AddressCountMismatch { vrid: 7, count: 1, len: 16 },
    );
    // v2 must also carry its 8 bytes of authentication data.
    let v2 = bytes(&v2(), &V4);
    assert_rejects(
        &v2[..12],
        &V4,
        DecodeError::AddressCountMismatch { vrid: 9, count: 1, len: 12 },
    );
    // No address at all.
    let mut none = msg[..8].to_vec();
    none[3] = 0;
    assert_rejects(&none, &V4, DecodeError::NoAddresses { vrid: 7 });
}

#[test]
fn bad_version_and_type() {
    let mut msg = bytes(&v3(), &V4);
    msg[0] = 0x41;
    assert_rejects(&msg, &V4, DecodeError::BadVersion { vrid: 7, version: 4 });
    msg[0] = 0x11;
    assert_rejects(&msg, &V4, DecodeError::BadVersion { vrid: 7, version: 1 });
    // VRRPv2 exists only over IPv4.
    let v2 = bytes(&v2(), &V4);
    assert_rejects(&v2, &V6, DecodeError::BadVersion { vrid: 9, version: 2 });
    let mut msg = bytes(&v3(), &V4);
    msg[0] = 0x32;
    assert_rejects(&msg, &V4, DecodeError::BadType { vrid: 7, kind: 2 });
}

#[test]
fn bad_checksum() {
    let mut msg = bytes(&v3(), &V4);
    let good = u16::from_be_bytes([msg[6], msg[7]]);
    msg[11] ^= 0x01;
    let got = Advert::decode(&msg, &V4, V3Checksum::Rfc5798);
    let Err(DecodeError::BadChecksum { vrid: 7, received, computed }) = got
    else {
        panic!("expected a bad checksum, got {got:?}");
    };
    assert_eq!(received, good);
    assert_ne!(computed, good);
    // The pseudo-header counts: another source address fails too.
    let msg = bytes(&v3(), &V4);
    let other = PseudoHeader::V4 {
        src: Ipv4Addr::new(10, 250, 250, 9),
        dst: MULTICAST_V4,
    };
    let got = Advert::decode(&msg, &other, V3Checksum::Rfc5798);
    assert!(matches!(got, Err(DecodeError::BadChecksum { vrid: 7, .. })));
}

#[test]
fn wrong_and_unsupported_authentication() {
    let msg = bytes(&v2(), &V4);
    let advert = Advert::decode(&msg, &V4, V3Checksum::Rfc5798).expect("valid");
    let wrong = Auth::pass(b"px").expect("fits");
    assert_eq!(
        advert.verify_auth(&wrong),
        Err(DecodeError::AuthMismatch { vrid: 9 })
    );
    assert_eq!(
        advert.verify_auth(&Auth::None),
        Err(DecodeError::AuthMismatch { vrid: 9 })
    );
    // Auth type 2 (IP AH) is not implemented.
    let mut ah = msg.clone();
    ah[4] = 2;
    fix_checksum(&mut ah);
    assert_rejects(
        &ah,
        &V4,
        DecodeError::UnsupportedAuthType { vrid: 9, auth_type: 2 },
    );
    // A v3 instance configured with a password refuses v3 adverts.
    let v3 = Advert::decode(&bytes(&v3(), &V4), &V4, V3Checksum::Rfc5798)
        .expect("valid");
    assert_eq!(
        v3.verify_auth(&wrong),
        Err(DecodeError::AuthMismatch { vrid: 7 })
    );
}

#[test]
fn passwords_longer_than_eight_bytes_do_not_fit_and_never_print() {
    assert_eq!(Auth::pass(b"123456789"), None);
    let auth = Auth::pass(b"12345678").expect("fits");
    assert_eq!(format!("{auth:?}"), "Pass(<redacted>)");
}

#[test]
fn zero_interval_is_refused() {
    let mut msg = bytes(&v3(), &V4);
    msg[4] = 0xf0; // reserved bits set, interval zero
    msg[5] = 0;
    fix_checksum(&mut msg);
    assert_rejects(&msg, &V4, DecodeError::ZeroInterval { vrid: 7 });
    let mut msg = bytes(&v2(), &V4);
    msg[5] = 0;
    fix_checksum(&mut msg);
    assert_rejects(&msg, &V4, DecodeError::ZeroInterval { vrid: 9 });
}

#[test]
fn reserved_bits_are_ignored_on_reception() {
    let mut msg = bytes(&v3(), &V4);
    msg[4] |= 0xf0;
    fix_checksum(&mut msg);
    assert_eq!(Advert::decode(&msg, &V4, V3Checksum::Rfc5798), Ok(v3()));
}

/// An IPv4 packet around `msg` with the given TTL and protocol.
fn ipv4_packet(msg: &[u8], ttl: u8, protocol: u8) -> Vec<u8> {
    let total = u16::try_from(20 + msg.len()).expect("short");
    let mut p = vec![0x45, 0xc0];
    p.extend(total.to_be_bytes());
    p.extend([0, 1, 0, 0, ttl, protocol, 0, 0]);
    p.extend(SRC.octets());
    p.extend(MULTICAST_V4.octets());
    p.extend_from_slice(msg);
    p
}

#[test]
fn outer_ipv4_header_checks() {
    let msg = bytes(&v3(), &V4);
    let ok = ipv4_packet(&msg, 255, 112);
    let (header, advert) =
        decode_ipv4_packet(&ok, V3Checksum::Rfc5798).expect("valid");
    assert_eq!(header.pseudo_header(), V4);
    assert_eq!(advert, v3());

    let err =
        decode_ipv4_packet(&ipv4_packet(&msg, 64, 112), V3Checksum::Rfc5798);
    assert_eq!(err, Err(DecodeError::BadTtl { vrid: Some(7), ttl: 64 }));
    let err =
        decode_ipv4_packet(&ipv4_packet(&msg, 255, 6), V3Checksum::Rfc5798);
    assert_eq!(err, Err(DecodeError::NotVrrp { protocol: 6 }));

    assert_eq!(
        Ipv4Header::decode(&ok[..19]),
        Err(DecodeError::Truncated { vrid: None, len: 19, need: 20 })
    );
    // Total Length beyond what arrived.
    assert_eq!(
        Ipv4Header::decode(&ok[..25]),
        Err(DecodeError::Truncated { vrid: None, len: 25, need: 32 })
    );
    let mut v6 = ok.clone();
    v6[0] = 0x65;
    assert_eq!(
        Ipv4Header::decode(&v6),
        Err(DecodeError::BadIpv4Header { version: 6, header_len: 20 })
    );
    let mut ihl = ok.clone();
    ihl[0] = 0x44;
    assert_eq!(
        Ipv4Header::decode(&ihl),
        Err(DecodeError::BadIpv4Header { version: 4, header_len: 16 })
    );
    // Options: the payload starts after them.
    let mut opts = ok[..20].to_vec();
    opts[0] = 0x46;
    opts[3] += 4;
    opts.extend([1, 1, 1, 0]);
    opts.extend_from_slice(&msg);
    let (header, payload) = Ipv4Header::decode(&opts).expect("valid");
    assert_eq!((header.header_len, payload), (24, &msg[..]));
}

#[test]
fn encode_refuses_what_the_format_cannot_carry() {
    let mut too_many =
        AdvertV3 { addrs: Addrs::V4(vec![SRC; 256]), ..v3_fields() };
    let err = Advert::V3(too_many.clone()).encode(&V4, V3Checksum::Rfc5798);
    assert_eq!(err, Err(EncodeError::AddressCount { vrid: 7, count: 256 }));
    too_many.addrs = Addrs::V4(Vec::new());
    assert!(too_many.addrs.is_empty());
    let err = Advert::V3(too_many).encode(&V4, V3Checksum::Rfc5798);
    assert_eq!(err, Err(EncodeError::AddressCount { vrid: 7, count: 0 }));

    assert_eq!(
        v3().encode(&V6, V3Checksum::Rfc5798),
        Err(EncodeError::FamilyMismatch { vrid: 7 })
    );
    assert_eq!(
        v2().encode(&V6, V3Checksum::Rfc5798),
        Err(EncodeError::FamilyMismatch { vrid: 9 })
    );

    for interval in [0, 4096] {
        let advert =
            Advert::V3(AdvertV3 { max_adver_int: interval, ..v3_fields() });
        let err = advert.encode(&V4, V3Checksum::Rfc5798);
        assert_eq!(err, Err(EncodeError::Interval { vrid: 7, interval }));
    }
    let Advert::V2(mut zero) = v2() else { unreachable!() };
    zero.adver_int = 0;
    let err = Advert::V2(zero).encode(&V4, V3Checksum::Rfc5798);
    assert_eq!(err, Err(EncodeError::Interval { vrid: 9, interval: 0 }));
}

fn v3_fields() -> AdvertV3 {
    match v3() {
        Advert::V3(a) => a,
        Advert::V2(_) => unreachable!("v3() builds a v3 advert"),
    }
}

/// xorshift64*: a fixed-seed generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every decoder on every buffer: none may panic, and whatever decodes must
/// encode to something that decodes to the same advert.
fn decode_everything(buf: &[u8]) {
    for ip in [V4, V6] {
        for mode in [V3Checksum::Rfc5798, V3Checksum::AsV2] {
            if let Ok(advert) = Advert::decode(buf, &ip, mode) {
                let again = advert.encode(&ip, mode).unwrap_or_else(|e| {
                    panic!(
                        "decoded but cannot encode: {e}\n  input: {}",
                        format(buf)
                    )
                });
                assert_eq!(Advert::decode(&again, &ip, mode), Ok(advert));
            }
        }
    }
    let _ = decode_ipv4_packet(buf, V3Checksum::Rfc5798);
}

#[test]
fn random_and_mutated_buffers_never_panic() {
    let mut rng = Rng(0x5eed_0f1b_de91_07aa);
    let seeds = [bytes(&v3(), &V4), bytes(&v2(), &V4), {
        let six = Advert::V3(AdvertV3 {
            addrs: Addrs::V6(vec![Ipv6Addr::LOCALHOST; 2]),
            ..v3_fields()
        });
        bytes(&six, &V6)
    }];
    for _ in 0..20_000 {
        // Pure noise, of any length up to 80.
        let len = rng.below(81);
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        decode_everything(&noise);

        // A valid message with a few bytes changed, truncated or extended,
        // half the time with a fixed checksum so later checks are reached.
        let mut msg = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(3) {
            let i = rng.below(msg.len());
            msg[i] = rng.next() as u8;
        }
        match rng.below(4) {
            0 => msg.truncate(rng.below(msg.len() + 1)),
            1 => msg.extend((0..rng.below(20)).map(|_| rng.next() as u8)),
            _ => {}
        }
        if rng.below(2) == 0 && msg.len() >= 8 {
            fix_checksum(&mut msg);
        }
        decode_everything(&msg);
        decode_everything(&ipv4_packet(&msg, 255, 112));
    }
}
