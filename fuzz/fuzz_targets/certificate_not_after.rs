//! Fuzz the reading of a certificate's end from the DER a TLS server
//! sends (`util::tls::not_after`, for the HTTPS check's expiry): any
//! bytes must give a time or `None`, never a panic or a read past the
//! input. Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run certificate_not_after`
//! from `fuzz/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lbdeploy::util::tls::not_after(data);
});
