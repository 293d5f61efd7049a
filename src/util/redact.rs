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
//! * **URLs with credentials** (webhooks): the userinfo password and every
//!   query value are replaced, the scheme, host and path kept, so an
//!   operator still sees *where* a notification goes.
//!
//! [`known`] is the third, narrower tool: it hides given secret values
//! wherever they appear, for text (a parser's message) whose shape is not
//! YAML or a URL.
//!
//! Everything here is pure; callers apply it at the output edge.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a hidden value reads as.
pub const HIDDEN: &str = "(sensitive)";

/// A key whose value is a secret, at the start of a line, after a sequence
/// dash, or inside a flow mapping; quoted (JSON) keys too. Group `key`
/// starts at the key's column, group `head` ends where the value starts.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<head>(?:^|[\s{,])(?:-\s+)?(?P<key>["']?(?:password|auth_pass)["']?)\s*:)(?:\s|$)"#,
    )
    .expect("the pattern is valid")
});

/// A URL: scheme, optional userinfo, host and path, optional query and
/// fragment. Quotes and angle brackets end it, as they end a URL in YAML,
/// JSON and log text.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<base>[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<user>[^\s/?#@:'"<>]*):(?P<pass>[^\s/?#@'"<>]*)@)?(?P<rest>[^\s?#'"<>]*)(?:\?(?P<query>[^\s#'"<>]*))?(?:#(?P<frag>[^\s'"<>]*))?"#,
    )
    .expect("the pattern is valid")
});

/// `text` with every secret key's value and every URL's credentials
/// hidden. Text without either comes back borrowed.
pub fn text(text: &str) -> Cow<'_, str> {
    let keys = keys(text);
    match urls(&keys) {
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

/// Hide the credentials of every URL in `text`.
fn urls(text: &str) -> Cow<'_, str> {
    URL.replace_all(text, |m: &regex::Captures<'_>| {
        let mut out = m["base"].to_owned();
        if let Some(user) = m.name("user") {
            out.push_str(user.as_str());
            out.push(':');
            if !m["pass"].is_empty() {
                out.push_str(HIDDEN);
            }
            out.push('@');
        }
        out.push_str(&m["rest"]);
        if let Some(query) = m.name("query") {
            out.push('?');
            out.push_str(&hide_query(query.as_str()));
        }
        if m.name("frag").is_some_and(|f| !f.is_empty()) {
            out.push('#');
            out.push_str(HIDDEN);
        }
        out
    })
}

/// `a=1&b=2` → `a=(sensitive)&b=(sensitive)`; a parameter without `=` may
/// itself be a token and is hidden whole.
fn hide_query(query: &str) -> String {
    query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) => format!("{k}={HIDDEN}"),
            None if p.is_empty() => String::new(),
            None => HIDDEN.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
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
    fn urls_keep_where_and_hide_credentials() {
        assert_eq!(
            super::text(
                "webhook to http://bot:s3cr%C3%A9t@hooks.example:8080/a/b?token=xyz&v=2#frag failed"
            ),
            "webhook to http://bot:(sensitive)@hooks.example:8080/a/b?token=(sensitive)&v=(sensitive)#(sensitive) failed"
        );
        assert_eq!(
            super::text("url: 'http://h/p?tok' x"),
            "url: 'http://h/p?(sensitive)' x"
        );
        assert_eq!(super::text("http://h/p"), "http://h/p");
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
