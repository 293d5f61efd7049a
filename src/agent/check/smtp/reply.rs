//! SMTP replies as the `smtp` check reads them from the server (RFC 5321
//! §4.2): lines of a three-digit code, then `-` on every line but the
//! last, then text, each line ending in CRLF (a bare LF is taken too, as
//! keepalived takes it). Pure and bounded: every byte comes from the
//! network, so [`decode`] never reads past the bounds below, never
//! panics, and says "incomplete" (`Ok(None)`) rather than fail on a reply
//! that has not all arrived yet.

use std::fmt;

/// The longest reply line, CRLF included (RFC 5321 §4.5.3.1.5, "reply
/// line": 512 octets). keepalived's whole buffer is this size too.
pub(crate) const MAX_LINE: usize = 512;

/// The most lines one reply may have. An EHLO reply lists one extension
/// a line, a dozen or two in practice; a greeting or a HELO reply has
/// one or a few.
pub(crate) const MAX_LINES: usize = 64;

/// The most bytes one reply may take, all its lines. Below
/// `MAX_LINES × MAX_LINE` on purpose: many lines are fine, many long
/// lines are a server streaming at us.
pub(crate) const MAX_REPLY: usize = 8 * 1024;

/// The most of a reply's text kept for messages: enough to name the
/// server's complaint.
const MAX_TEXT: usize = 80;

/// One reply: its code, and the text of its first line (at most
/// [`MAX_TEXT`] characters, lossily decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The three-digit reply code, e.g. 220.
    pub(crate) code: u16,
    /// The first line's text after the code.
    pub(crate) text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text.is_empty() {
            true => write!(f, "{}", self.code),
            false => write!(
                f,
                "{} {}",
                self.code,
                crate::util::terminal::escape(&self.text)
            ),
        }
    }
}

/// Why bytes from the server are no SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplyError {
    /// A line longer than [`MAX_LINE`] (or no line end within it).
    LineTooLong,
    /// More than [`MAX_LINES`] lines.
    TooManyLines,
    /// More than [`MAX_REPLY`] bytes without the reply's last line.
    TooLong,
    /// A line that does not start with three digits and ` `, `-` or its
    /// end: its number (from 1).
    Malformed(usize),
    /// A line whose code is not the first line's (§4.2.1): its number.
    CodeChanged(usize),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong => {
                write!(f, "a reply line longer than {MAX_LINE} bytes")
            }
            Self::TooManyLines => {
                write!(f, "a reply of more than {MAX_LINES} lines")
            }
            Self::TooLong => write!(f, "a reply longer than {MAX_REPLY} bytes"),
            Self::Malformed(n) => {
                write!(f, "reply line {n} does not start with a code")
            }
            Self::CodeChanged(n) => {
                write!(f, "reply line {n} has another code than line 1")
            }
        }
    }
}

/// The reply at the start of `buf` and the bytes it took; `Ok(None)` when
/// `buf` holds only the start of one (read more).
///
/// # Errors
/// When `buf` cannot start a reply within the bounds.
pub(crate) fn decode(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut first: Option<Reply> = None;
    let mut at = 0;
    for number in 1..=MAX_LINES {
        let rest = &buf[at..];
        let window = &rest[..rest.len().min(MAX_LINE)];
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            return match rest.len() >= MAX_LINE {
                true => Err(ReplyError::LineTooLong),
                false if at + rest.len() >= MAX_REPLY => {
                    Err(ReplyError::TooLong)
                }
                false => Ok(None),
            };
        };
        if at + lf + 1 > MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
        let line = window[..lf].strip_suffix(b"\r").unwrap_or(&window[..lf]);
        at += lf + 1;
        let (code, last, text) =
            line_parts(line).ok_or(ReplyError::Malformed(number))?;
        match &first {
            None => {
                let text: String = String::from_utf8_lossy(text)
                    .chars()
                    .take(MAX_TEXT)
                    .collect();
                first = Some(Reply { code, text });
            }
            Some(f) if f.code != code => {
                return Err(ReplyError::CodeChanged(number));
            }
            Some(_) => {}
        }
        if last {
            return Ok(first.map(|reply| (reply, at)));
        }
    }
    Err(ReplyError::TooManyLines)
}

/// A line's code, whether it is the reply's last (` ` or nothing after
/// the code, rather than `-`), and its text.
fn line_parts(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    let (digits, rest) = line.split_at_checked(3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match rest.split_first() {
        None => Some((code, true, rest)),
        Some((b' ', text)) => Some((code, true, text)),
        Some((b'-', text)) => Some((code, false, text)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, text: &str) -> Reply {
        Reply { code, text: text.to_owned() }
    }

    #[test]
    fn one_line_replies_crlf_or_bare_lf() {
        let banner = b"220 mx.lab.test ESMTP Postfix\r\n";
        assert_eq!(
            decode(banner),
            Ok(Some((reply(220, "mx.lab.test ESMTP Postfix"), banner.len())))
        );
        assert_eq!(decode(b"250\n"), Ok(Some((reply(250, ""), 4))));
        // What follows the reply is left for the next.
        assert_eq!(
            decode(b"221 bye\r\n220 again"),
            Ok(Some((reply(221, "bye"), 9)))
        );
    }

    #[test]
    fn multi_line_replies_are_read_whole() {
        let ehlo = b"250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
        assert_eq!(
            decode(ehlo),
            Ok(Some((reply(250, "mx.lab.test"), ehlo.len())))
        );
        assert_eq!(decode(&ehlo[..20]), Ok(None));
        assert_eq!(
            decode(b"220-a\r\n554 no\r\n"),
            Err(ReplyError::CodeChanged(2))
        );
    }

    #[test]
    fn incomplete_is_no_error() {
        assert_eq!(decode(b""), Ok(None));
        assert_eq!(decode(b"22"), Ok(None));
        assert_eq!(decode(b"220 mx"), Ok(None));
        assert_eq!(decode(b"220 mx\r"), Ok(None));
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in
            [&b"HTTP/1.0 200 OK\r\n"[..], b"22 x\r\n", b"2200\r\n", b"\r\n"]
        {
            assert_eq!(decode(bad), Err(ReplyError::Malformed(1)), "{bad:?}");
        }
        assert_eq!(
            decode(b"220-ok\r\nSSH-2.0\r\n"),
            Err(ReplyError::Malformed(2))
        );
    }

    #[test]
    fn every_bound_holds() {
        // A line of exactly MAX_LINE bytes, CRLF included, passes.
        let mut line = b"220 ".to_vec();
        line.resize(MAX_LINE - 2, b'a');
        line.extend_from_slice(b"\r\n");
        assert!(matches!(decode(&line), Ok(Some((_, n))) if n == MAX_LINE));
        line.insert(4, b'a');
        assert_eq!(decode(&line), Err(ReplyError::LineTooLong));
        assert_eq!(decode(&[b'2'; MAX_LINE]), Err(ReplyError::LineTooLong));
        // Many short lines: the line count.
        let many = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(decode(&many), Err(ReplyError::TooManyLines));
        // Long lines: the byte count, before the line count.
        let long = format!("250-{}\r\n", "a".repeat(400)).repeat(30);
        assert_eq!(decode(long.as_bytes()), Err(ReplyError::TooLong));
        // The text kept for messages is cut.
        let refusal = format!("554 {}\r\n", "b".repeat(300));
        let Ok(Some((r, _))) = decode(refusal.as_bytes()) else { panic!() };
        assert_eq!(r.text.len(), MAX_TEXT);
    }
}
