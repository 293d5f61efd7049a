//! Bytes a host controls, made safe for the operator's terminal.
//!
//! `plan` shows a host's current files, `status` what an agent says about
//! itself, and both show error text from hosts. A compromised host could
//! put escape sequences there to retitle the window, move the cursor up and
//! erase lines, or conceal text — forging or hiding plan lines — and bidi
//! overrides to make text read other than it is. [`escape`] shows every
//! such character as a visible escape (`\x1b`, `\u{202e}`) and passes
//! ordinary UTF-8, tabs included, untouched. It is applied at the output
//! edge, to host-supplied text only: lbdeploy's own colours stay colours.

use std::borrow::Cow;
use std::fmt::Write;

/// Bidirectional formatting characters (Unicode's "Bidi_Control"), and the
/// line and paragraph separators, which some terminals treat as newlines.
const INVISIBLE: &[char] = &[
    '\u{061c}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{202a}',
    '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
    '\u{2068}', '\u{2069}',
];

/// Whether `c` must not reach a terminal raw: C0 controls but tab (ESC, BEL,
/// backspace, CR, LF …), DEL, C1 controls (8-bit CSI, OSC …) and the
/// [`INVISIBLE`] characters. `lines` lets line feeds through.
fn unsafe_char(c: char, lines: bool) -> bool {
    (c.is_control() && c != '\t' && !(lines && c == '\n'))
        || INVISIBLE.contains(&c)
}

/// `text` with every unsafe character shown as an escape: `\xNN` below
/// U+0100, `\u{NNNN}` above. Text without one comes back borrowed. A line
/// feed is escaped too, so one host-supplied field stays one line.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, false)
}

/// As [`escape`], but line feeds pass: for multi-line messages (a list of
/// problems) whose every line is then safe on its own.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, true)
}

fn escape_with(text: &str, lines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_char(c, lines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c, lines) => out.push(c),
            c if u32::from(c) < 0x100 => {
                write!(out, "\\x{:02x}", u32::from(c)).expect("infallible");
            }
            c => {
                write!(out, "\\u{{{:04x}}}", u32::from(c)).expect("infallible");
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible() {
        let hostile = "a\x1b]0;pwned\x07b\x1b[1A\x1b[2K\x1b[8mc\x08\rd\x7f";
        assert_eq!(
            escape(hostile),
            "a\\x1b]0;pwned\\x07b\\x1b[1A\\x1b[2K\\x1b[8mc\\x08\\x0dd\\x7f"
        );
    }

    #[test]
    fn c1_controls_bidi_and_line_breaks_are_escaped() {
        assert_eq!(escape("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escape("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(escape("one\ntwo"), "one\\x0atwo");
        assert_eq!(escape_lines("one\r\ntwo\x1b"), "one\\x0d\ntwo\\x1b");
    }

    #[test]
    fn ordinary_utf8_and_tabs_pass_borrowed() {
        let text = "crème brûlée\t€ 日本 ✓";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
    }
}
