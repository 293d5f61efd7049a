//! HMAC-SHA-256 (RFC 2104), for fingerprints of secrets that must not be
//! brute-forced from what is stored: a plain hash of an 8-byte password
//! falls in milliseconds, a keyed one does not without the key. A dozen
//! lines over `sha2`, which the crate already uses, instead of a new crate.

use sha2::{Digest, Sha256};

/// SHA-256's block size, the HMAC key's padded length.
const BLOCK: usize = 64;

/// HMAC-SHA-256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| padded.map(|k| k ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message);
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner.finalize())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex::hex;

    /// RFC 4231 §4.3 (test case 2) and §4.7 (test case 6: a key longer
    /// than the block).
    #[test]
    fn rfc_4231_vectors() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
