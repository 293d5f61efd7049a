//! Hex helpers for wire-format tests: vectors are stored as hex, and a
//! failed comparison prints both sides as hex so the differing byte can be
//! read off.

/// Parses a hex string; whitespace is ignored so vectors can be wrapped.
pub fn parse(s: &str) -> Vec<u8> {
    let digits: Vec<u8> =
        s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(pair, 16).expect("hex digit")
        })
        .collect()
}

/// Formats bytes as lowercase hex, the way the vectors are written.
pub fn format(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts two byte strings are equal, printing both as hex and the offset
/// of the first difference.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let at = actual
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(expected.len()));
        panic!(
            "{what}: bytes differ at offset {at}\n  actual:   {}\n  expected: {}",
            format(actual),
            format(expected)
        );
    }
}
