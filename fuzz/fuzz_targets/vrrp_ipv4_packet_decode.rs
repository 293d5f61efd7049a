//! Fuzzes the IPv4 receive path: outer header, TTL check, then the advert.
#![no_main]

use lbdeploy::agent::vrrp::packet::{V3Checksum, decode_ipv4_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_ipv4_packet(data, V3Checksum::Rfc5798);
});
