//! Fuzzes the ping check's receive path: what an ICMP socket reads, as
//! each kind of socket hands it over (raw or datagram, IPv4 or IPv6).
#![no_main]

use lbdeploy::agent::check::ping::read;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (v6, raw) in [(false, false), (false, true), (true, false), (true, true)] {
        let _ = read(data, v6, raw);
    }
});
