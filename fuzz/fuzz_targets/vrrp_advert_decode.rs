//! Fuzzes `Advert::decode` over both families and both v3 checksum modes;
//! whatever decodes must encode again.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use lbdeploy::agent::vrrp::packet::{
    Advert, MULTICAST_V4, MULTICAST_V6, PseudoHeader, V3Checksum,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let v4 =
        PseudoHeader::V4 { src: Ipv4Addr::new(10, 0, 0, 1), dst: MULTICAST_V4 };
    let v6 = PseudoHeader::V6 { src: Ipv6Addr::LOCALHOST, dst: MULTICAST_V6 };
    for ip in [v4, v6] {
        for mode in [V3Checksum::Rfc5798, V3Checksum::AsV2] {
            if let Ok(advert) = Advert::decode(data, &ip, mode) {
                let bytes =
                    advert.encode(&ip, mode).expect("decoded adverts encode");
                assert_eq!(Advert::decode(&bytes, &ip, mode), Ok(advert));
            }
        }
    }
});
