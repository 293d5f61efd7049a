//! Fuzz the IPVS generic netlink reply decoders (netlink framing, family
//! id, service, destination and sync daemon attributes): a malformed
//! reply must be an error, never a panic.
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run ipvs_reply_decode` from
//! `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbdeploy::fuzzing::ipvs_reply(data);
});
