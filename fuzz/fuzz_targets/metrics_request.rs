//! Fuzz the agent's metrics endpoint's request reading (the end of the
//! head, then its judgement): any bytes must get a verdict, never a panic
//! or a hang.
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run metrics_request` from `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbdeploy::fuzzing::metrics_request(data);
});
