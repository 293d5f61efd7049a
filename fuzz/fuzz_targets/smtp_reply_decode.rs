//! Fuzz the `smtp` check's reading of the server's replies (lines, codes,
//! continuation lines and every bound) and their judging at each stage,
//! and the lab responder's reading of commands: any bytes must give a
//! reply, "read more" or an error, never a panic, a hang or memory beyond
//! the bounds. Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run
//! smtp_reply_decode` from `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbdeploy::fuzzing::smtp_replies(data);
});
