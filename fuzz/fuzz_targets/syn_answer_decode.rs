//! Fuzzes the half-open check's receive path: an IPv4 packet read as the
//! answer to a SYN.
#![no_main]

use lbdeploy::agent::check::syn::answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = answer(data);
});
