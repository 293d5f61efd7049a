//! Fuzz the rtnetlink link and address events the agent reads (the
//! rtnetlink crate's parser, then the agent's own reading): any datagram
//! must be decoded or dropped, never panic.
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run rtnetlink_event_decode` from
//! `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbdeploy::fuzzing::rtnetlink_event(data);
});
