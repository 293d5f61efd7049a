//! Fuzz the `dns` check's reading of a datagram (decoding, names and
//! their compression pointers, the judging of each kind of expectation)
//! and the lab responder's reading of a query: any bytes must give a
//! verdict or an error, never a panic, a hang or memory beyond the bounds.
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run dns_message_decode` from
//! `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbdeploy::fuzzing::dns_message(data);
});
