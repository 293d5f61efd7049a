//! Fuzzes the IPv4 receive path: outer header, TTL check, then the advert.
#![no_main]

use lbdeploy::agent::vrrp::ipv4::decode_ipv4_packet;
use lbdeploy::agent::vrrp::packet::V3Checksum;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_ipv4_packet(data, V3Checksum::Rfc5798);
});
