//! Fuzz the keepalived.conf reader (lexer, parser with brace recovery,
//! keyword semantics): any text must yield diagnostics, never a panic.
//! Run with `cargo +nightly fuzz run keepalived_conf` from `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lbdeploy::import::check_conf(text);
    }
});
