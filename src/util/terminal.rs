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
//!
//! `--json` output reaches terminals too. serde_json escapes C0 controls
//! but writes DEL, C1 controls and bidi characters raw (valid JSON, yet
//! live on a terminal); [`write_json`] writes them as `\uNNNN`, which
//! every JSON reader decodes back to the same string.

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

/// Write `value` as pretty JSON, every character that [`escape`] would
/// escape and serde_json does not written as a `\uNNNN` escape.
///
/// # Errors
/// Serialising `value` or writing `out` failed.
pub fn write_json<W: std::io::Write, T: serde::Serialize + ?Sized>(
    out: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser =
        serde_json::Serializer::with_formatter(out, SafeJson::default());
    value.serialize(&mut ser)
}

/// serde_json's pretty formatter, with the string fragments it writes raw
/// made terminal-safe.
#[derive(Default)]
struct SafeJson(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for SafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) =
            rest.char_indices().find(|&(_, c)| unsafe_char(c, false))
        {
            writer.write_all(&rest.as_bytes()[..at])?;
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
    ) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_terminal_safe_and_reads_back_the_same() {
        let hostile = "a\x1b[2Kb\x7fc\u{9b}d\u{202e}e\u{2028}f é\n";
        let mut out = Vec::new();
        write_json(&mut out, &serde_json::json!({ "k": [hostile] })).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.chars().any(|c| unsafe_char(c, true)), "{text}");
        assert!(text.contains("\\u007f") && text.contains("\\u202e"), "{text}");
        assert!(text.contains("\n  \"k\": ["), "still pretty: {text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["k"][0], hostile);
    }

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
