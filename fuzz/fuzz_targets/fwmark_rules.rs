//! Fuzz the `--fwmark-rules` reader (iptables-save lines, iptables
//! commands, nftables rules): any text must yield diagnostics, never a
//! panic. Run with `cargo +nightly fuzz run fwmark_rules` from `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lbdeploy::import::check_fwmark_rules(text);
    }
});
