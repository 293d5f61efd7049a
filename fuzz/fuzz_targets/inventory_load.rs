//! Fuzz the inventory loader (YAML, the position index and its nesting
//! bound, per-key deserialisation, validation): any text must yield
//! diagnostics, never a panic, a stack overflow or a hang.
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run inventory_load` from `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        lbdeploy::fuzzing::inventory(text);
    }
});
