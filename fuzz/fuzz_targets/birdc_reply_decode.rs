//! Fuzz the agent's reading of BIRD's control socket (the reply framing,
//! then the greeting and what each request makes of a reply): any bytes
//! must give replies or an error, never a panic, a hang or memory beyond
//! the bounds.
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run birdc_reply_decode` from
//! `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbdeploy::fuzzing::birdc_replies(data);
});
