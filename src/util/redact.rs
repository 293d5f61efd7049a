//! The one redaction: what keeps secrets out of everything lbdeploy shows,
//! saves or logs — plans on a terminal, `--json`, saved plans, generations,
//! error messages and the agent's log lines.
//!
//! Two kinds of secret travel through lbdeploy's text:
//!
//! * **YAML values of secret keys** (`password:`, keepalived's
//!   `auth_pass:`): the rendered `agent.yml` carries the VRRP password this
//!   way, and so may a host's current file. The value is replaced by
//!   [`HIDDEN`] and every continuation line of it (a block scalar `|-`, a
//!   folded plain scalar, a quoted string left open) is dropped, so a
//!   password with a newline never shows any of its lines, nor how many it
//!   has.
//! * **URLs** (webhooks): services put their tokens in the path
//!   (`/services/T0/B0/XXXX`) as often as in the query, so only the
//!   scheme, host and port are kept — an operator still sees *where* a
//!   notification goes — and userinfo, path, query and fragment give way
//!   to one marker. On the controller the marker carries a keyed
//!   fingerprint of the whole URL, `/(sensitive:1a2b3c4d5e6f)`, so two
//!   URLs can be told apart and a changed one is seen in a plan's diff:
//!   the first [`PRINT_HEX`] hex digits of the HMAC-SHA-256 under the
//!   controller's key (`.lbdeploy/controller.key`, handed over once with
//!   [`set_key`]) — the same HMAC a generation's `meta.json` records for
//!   an inline webhook URL, so the two can be matched. The agent has no
//!   key and shows the plain marker, `/(sensitive)`.
//!
//! [`known`] is the third, narrower tool: it hides given secret values
//! wherever they appear, for text (a parser's message) whose shape is not
//! YAML or a URL.
//!
//! Everything here is pure but for the key, which is set once per process
//! and only read after; callers apply it at the output edge.

use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

use regex::Regex;

use super::hex::hex;
use super::hmac::hmac_sha256;

/// What a hidden value reads as.
pub const HIDDEN: &str = "(sensitive)";

/// How many hex digits of a URL's fingerprint a marker shows: 48 bits,
/// enough to tell a cluster's few URLs apart at a glance and short enough
/// to read; without the key, no number of digits says anything of the URL.
pub const PRINT_HEX: usize = 12;

/// What a URL's fingerprint is computed over, before the URL: the label
/// under which a generation's `meta.json` records the same HMAC.
pub const PRINT_LABEL: &str = "notification webhook";

/// The controller's fingerprint key, once known.
static KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Give the redaction the controller's key, so URL markers carry a
/// fingerprint. The first key given stays: every marker a process prints
/// is under the same key.
pub fn set_key(key: &[u8]) {
    let _ = KEY.set(key.to_vec());
}

/// A key whose value is a secret, at the start of a line, after a sequence
/// dash, or inside a flow mapping; quoted (JSON) keys too. Group `key`
/// starts at the key's column, group `head` ends where the value starts.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<head>(?:^|[\s{,])(?:-\s+)?(?P<key>["']?(?:password|auth_pass)["']?)\s*:)(?:\s|$)"#,
    )
    .expect("the pattern is valid")
});

/// A URL: scheme, optional userinfo, authority (host and port), optional
/// path, query and fragment. Quotes and angle brackets end it, as they
/// end a URL in YAML, JSON and log text.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<base>[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<user>[^\s/?#@'"<>]*)@)?(?P<host>[^\s/?#@'"<>]*)(?P<path>/[^\s?#'"<>]*)?(?:\?(?P<query>[^\s#'"<>]*))?(?:#(?P<frag>[^\s'"<>]*))?"#,
    )
    .expect("the pattern is valid")
});

/// A path that is already a marker: redacting twice changes nothing.
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^/\(sensitive(?::[0-9a-f]+)?\)$")
        .expect("the pattern is valid")
});

/// `text` with every secret key's value and every URL's credentials
/// hidden. Text without either comes back borrowed.
pub fn text(text: &str) -> Cow<'_, str> {
    keyed(text, KEY.get().map(Vec::as_slice))
}

/// [`text`] with URL markers fingerprinted under `key` (none: the plain
/// marker); `text` passes the process's key.
pub fn keyed<'a>(text: &'a str, key: Option<&[u8]>) -> Cow<'a, str> {
    let keys = keys(text);
    match urls(&keys, key) {
        Cow::Borrowed(_) => keys,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// Hide the values of secret keys, and their continuation lines.
fn keys(text: &str) -> Cow<'_, str> {
    if !SECRET_KEY.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // While hiding a value: the secret key's column (continuation lines are
    // indented deeper) and the quote still open, if any.
    let mut hiding: Option<(usize, Option<char>)> = None;
    for line in text.split_inclusive('\n') {
        if let Some((column, quote)) = hiding {
            let body = line.trim_end_matches(['\n', '\r']);
            let indent = body.len() - body.trim_start().len();
            match quote {
                Some(q) => {
                    let still_open = closes(body, q).is_none();
                    hiding = still_open.then_some((column, Some(q)));
                    continue;
                }
                None if body.trim().is_empty() || indent > column => continue,
                None => hiding = None,
            }
        }
        let Some(m) = SECRET_KEY.captures(line) else {
            out.push_str(line);
            continue;
        };
        let head = m.name("head").expect("always matched");
        let column = m.name("key").expect("always matched").start();
        let value = line[head.end()..].trim_end_matches(['\n', '\r']).trim();
        if value.is_empty() {
            // `password:` alone: the value (if any) is on the lines below.
            out.push_str(line);
            hiding = Some((column, None));
            continue;
        }
        out.push_str(&line[..head.end()]);
        out.push(' ');
        out.push_str(HIDDEN);
        if line.ends_with('\n') {
            out.push('\n');
        }
        let quote = value.chars().next().filter(|c| matches!(c, '"' | '\''));
        hiding = match quote {
            Some(q) if closes(&value[1..], q).is_none() => {
                Some((column, Some(q)))
            }
            _ => Some((column, None)),
        };
    }
    Cow::Owned(out)
}

/// Where in `s` a string quoted with `q` ends (YAML: `\"` escapes in double
/// quotes, `''` in single quotes), if it does.
fn closes(s: &str, q: char) -> Option<usize> {
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (q, c) {
            ('"', '\\') => {
                chars.next();
            }
            ('\'', '\'') if chars.peek().is_some_and(|&(_, n)| n == '\'') => {
                chars.next();
            }
            (q, c) if q == c => return Some(i),
            _ => {}
        }
    }
    None
}

/// Keep the scheme, host and port of every URL in `text` and hide the
/// rest behind one marker; a URL with nothing past its port (or `/`)
/// stays as it is.
fn urls<'a>(text: &'a str, key: Option<&[u8]>) -> Cow<'a, str> {
    let out = URL.replace_all(text, |m: &regex::Captures<'_>| {
        let whole = &m[0];
        let user = m.name("user").map(|u| u.as_str());
        let path = m.name("path").map_or("", |p| p.as_str());
        let (query, frag) = (m.name("query"), m.name("frag"));
        let plain = user.is_none() && matches!(path, "" | "/");
        let marked = MARKER.is_match(path) && user.is_none_or(|u| u == HIDDEN);
        if (plain || marked) && query.is_none() && frag.is_none() {
            return whole.to_owned();
        }
        let mut out = m["base"].to_owned();
        if user.is_some() {
            out.push_str(HIDDEN);
            out.push('@');
        }
        out.push_str(&m["host"]);
        out.push('/');
        out.push_str(&marker(whole, key));
        out
    });
    match out {
        // Only URLs with nothing to hide: the text as it came.
        Cow::Owned(s) if s == text => Cow::Borrowed(text),
        out => out,
    }
}

/// The marker of URL `url`: [`HIDDEN`] with the URL's fingerprint under
/// `key` when there is one.
fn marker(url: &str, key: Option<&[u8]>) -> String {
    let Some(key) = key else { return HIDDEN.to_owned() };
    let message = [PRINT_LABEL.as_bytes(), b"\0", url.as_bytes()].concat();
    let print = hex(&hmac_sha256(key, &message));
    format!("(sensitive:{})", &print[..PRINT_HEX])
}

/// `text` with each of `secrets` hidden wherever it appears — whole, and
/// each of its lines on its own, so a multi-line secret broken apart by a
/// parser's message is hidden too.
pub fn known<'a>(text: &'a str, secrets: &[&str]) -> Cow<'a, str> {
    let mut pieces: Vec<&str> = secrets
        .iter()
        .flat_map(|s| std::iter::once(*s).chain(s.lines()))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    // Longest first: a whole secret before the lines it contains.
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
    pieces.dedup();
    if !pieces.iter().any(|p| text.contains(p)) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for p in pieces {
        out = out.replace(p, HIDDEN);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_password_values_only() {
        let text = "auth:\n  type: pass\n  password: '1111'\n  - password: x\nnot_password: y\n";
        assert_eq!(
            super::text(text),
            "auth:\n  type: pass\n  password: (sensitive)\n  - password: (sensitive)\nnot_password: y\n"
        );
    }

    #[test]
    fn leaves_other_text_borrowed() {
        assert!(matches!(super::text("a: b\n"), Cow::Borrowed("a: b\n")));
    }

    #[test]
    fn a_block_scalar_password_shows_none_of_its_lines() {
        // What serde_yaml writes for "sé\ncrèt\n€": a literal block.
        let text = "- name: VI-1\n  password: |-\n    sé\n    crèt\n    €\n  priority: 100\nnext: 1\n";
        let out = super::text(text);
        assert_eq!(
            out,
            "- name: VI-1\n  password: (sensitive)\n  priority: 100\nnext: 1\n"
        );
    }

    #[test]
    fn an_empty_value_hides_the_block_below_it() {
        let text = "password:\n  line1\n  line2\nother: x\n";
        assert_eq!(super::text(text), "password:\nother: x\n");
    }

    #[test]
    fn an_open_quote_hides_up_to_its_end_whatever_the_indent() {
        let text = "password: \"ab\ncd\\\"\nef\"\nnext: 1\n";
        assert_eq!(super::text(text), "password: (sensitive)\nnext: 1\n");
        let text = "  password: 'a''\nb'\n  next: 1\n";
        assert_eq!(super::text(text), "  password: (sensitive)\n  next: 1\n");
    }

    #[test]
    fn json_and_flow_keys_are_hidden_too() {
        assert_eq!(
            super::text(r#"{"password": "x\ny", "a": 1}"#),
            r#"{"password": (sensitive)"#
        );
        assert_eq!(
            super::text("auth: { type: pass, password: '1111' }"),
            "auth: { type: pass, password: (sensitive)"
        );
    }

    #[test]
    fn urls_keep_scheme_host_and_port_only() {
        let hide = |t: &str| keyed(t, None).into_owned();
        assert_eq!(
            hide(
                "webhook to http://bot:s3cr%C3%A9t@hooks.example:8080/a/b?token=xyz&v=2#frag failed"
            ),
            "webhook to http://(sensitive)@hooks.example:8080/(sensitive) failed"
        );
        // Slack's token is in the path, others' in the query or a lone
        // parameter; a userinfo without a password may be one too.
        for (url, shown) in [
            ("http://hooks.example/services/T0/B0/XXXXSECRET", "hooks.example"),
            ("http://h:81/p?tok", "h:81"),
            ("http://h?token=XXXXSECRET", "h"),
            (
                "http://XXXXSECRET@[2001:db8::1]:8080/",
                "(sensitive)@[2001:db8::1]:8080",
            ),
        ] {
            let out = hide(&format!("url: '{url}' x"));
            assert_eq!(out, format!("url: 'http://{shown}/(sensitive)' x"));
        }
        for bare in
            ["http://h", "http://h/", "http://[::1]:80/", "a http://h:8/ b"]
        {
            assert!(matches!(keyed(bare, None), Cow::Borrowed(_)), "{bare}");
        }
    }

    #[test]
    fn a_keyed_marker_tells_urls_apart_and_says_nothing_without_the_key() {
        let key = b"0123456789abcdef0123456789abcdef";
        let a = keyed("http://h:8080/services/T0/B0/AAAA", Some(key));
        let b = keyed("http://h:8080/services/T0/B0/BBBB", Some(key));
        assert!(a.starts_with("http://h:8080/(sensitive:"), "{a}");
        assert_eq!(a.len(), "http://h:8080/(sensitive:)".len() + PRINT_HEX);
        assert_ne!(a, b, "two URLs, two fingerprints");
        let again = keyed("http://h:8080/services/T0/B0/AAAA", Some(key));
        assert_eq!(a, again, "one URL, one fingerprint");
        let other = keyed("http://h:8080/services/T0/B0/AAAA", Some(&[7; 32]));
        assert_ne!(a, other, "another key, another fingerprint");
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        let key = b"0123456789abcdef0123456789abcdef";
        for text in [
            "webhook: http://u:p@h:1/x/y?t=1#f\nnext: 1\n",
            "http://h/(sensitive) and http://h/x?y",
            "password: 'x'\n",
        ] {
            for key in [None, Some(&key[..])] {
                let once = keyed(text, key).into_owned();
                assert_eq!(keyed(&once, key), once, "{text:?}");
            }
        }
    }

    #[test]
    fn known_secrets_are_hidden_whole_and_line_by_line() {
        let secret = "pä\nss";
        assert_eq!(
            known("unknown field `ss`, near pä\nss", &[secret]),
            "unknown field `(sensitive)`, near (sensitive)"
        );
        assert!(matches!(known("clean", &[secret]), Cow::Borrowed(_)));
    }
}
