//! The notification rules: mailboxes as RFC 5321 has them, a webhook URL
//! the agent can deliver to, and an exec hook that is a program.
//!
//! Each value here ends up in a protocol dialogue (SMTP commands, an HTTP
//! request line) or on a command line, so "looks about right" is not
//! enough: a CR/LF in an address once added recipients to the SMTP
//! dialogue (issue #17, finding 5), and an `https://` URL passed
//! validation only to be refused by the agent at every event (finding 10).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::inventory::diag::Finding;
use crate::inventory::schema::{Notification, NotifyHooks};

/// RFC 5321 §4.5.3.1.1: the longest local part, in octets.
pub(crate) const LOCAL_PART_MAX: usize = 64;
/// The longest mailbox: RFC 5321 §4.5.3.1.3's 256-octet path less its
/// angle brackets. It also keeps the domain under §4.5.3.1.2's 255.
pub(crate) const MAILBOX_MAX: usize = 254;
/// RFC 1035 §2.3.4: the longest label of a domain name.
const LABEL_MAX: usize = 63;

/// Every notification rule.
pub(crate) fn notification(n: &Notification, out: &mut Vec<Finding>) {
    if let Some(email) = &n.email {
        let addrs =
            email.to.iter().enumerate().map(|(i, a)| (format!("to[{i}]"), a));
        for (field, addr) in addrs.chain([("from".to_owned(), &email.from)]) {
            if let Err(why) = mailbox(addr) {
                out.push(Finding::error(
                    format!("notification.email.{field}"),
                    format!(
                        "not an email address: {why} — write \
                         name@example.org"
                    ),
                ));
            }
        }
        if email.to.is_empty() {
            out.push(Finding::error(
                "notification.email.to",
                "no recipients — list at least one address",
            ));
        }
    }
    if let Some(url) = &n.webhook
        && let Err(why) = webhook(url)
    {
        out.push(Finding::error("notification.webhook", why));
    }
    if let Some(argv) = &n.exec {
        program(argv, "notification.exec", out);
    }
}

/// The notify hooks of an instance or a sync group at `path`.
pub(crate) fn hooks(h: &NotifyHooks, path: &str, out: &mut Vec<Finding>) {
    let all = [
        ("master", &h.master),
        ("backup", &h.backup),
        ("fault", &h.fault),
        ("any", &h.any),
    ];
    for (field, argv) in all {
        if let Some(argv) = argv {
            program(argv, &format!("{path}.{field}"), out);
        }
    }
}

/// A hook's argv: a program by its absolute path (the agent runs it
/// without a shell or a `PATH` search), then its arguments.
fn program(argv: &[String], path: &str, out: &mut Vec<Finding>) {
    if !argv.first().is_some_and(|p| p.starts_with('/')) {
        out.push(Finding::error(
            path,
            "the hook is a program with an absolute path and its \
             arguments, e.g. `[/usr/local/bin/notify, --flag]`; for a \
             shell, `[/bin/sh, -c, \"…\"]`",
        ));
    }
}

/// A mailbox as lbdeploy accepts it: RFC 5321's `Mailbox` with a
/// dot-atom local part (no quoted strings) and a domain of letter-digit-
/// hyphen labels or an address literal, within the RFC's lengths.
///
/// # Errors
/// What is wrong, without quoting the address.
pub(crate) fn mailbox(addr: &str) -> Result<(), String> {
    if addr.len() > MAILBOX_MAX {
        return Err(format!(
            "{} octets long, at most {MAILBOX_MAX}",
            addr.len()
        ));
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err("there is no `@`".into());
    };
    if local.is_empty() || local.len() > LOCAL_PART_MAX {
        return Err(format!(
            "the part before `@` must have 1–{LOCAL_PART_MAX} characters"
        ));
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    };
    if !local.split('.').all(|a| !a.is_empty() && a.chars().all(atext)) {
        return Err("the part before `@` may hold letters, digits, \
                    `!#$%&'*+-/=?^_`{|}~` and single dots between them"
            .into());
    }
    if let Some(literal) =
        domain.strip_prefix('[').and_then(|d| d.strip_suffix(']'))
    {
        let ok = match literal.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => literal.parse::<Ipv4Addr>().is_ok(),
        };
        return match ok {
            true => Ok(()),
            false => Err("the address literal is not `[IPv4]` or \
                          `[IPv6:address]`"
                .into()),
        };
    }
    match domain.split('.').all(ldh_label) {
        true => Ok(()),
        false => Err("the domain must be labels of letters, digits and \
                      inner hyphens, joined by dots"
            .into()),
    }
}

/// A domain label: 1–63 letters, digits and hyphens, not starting or
/// ending with a hyphen (RFC 1035 §2.3.1, RFC 1123 §2.1).
fn ldh_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= LABEL_MAX
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A webhook the agent can deliver to: parsed by the WHATWG URL parser
/// (which would silently drop tabs and newlines, so they are refused
/// first), `http` only — the agent has no TLS yet — with a host and no
/// credentials (the agent sends none).
///
/// # Errors
/// The message for the finding.
pub(crate) fn webhook(raw: &str) -> Result<(), String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains a space or a control character — \
                    percent-encode it (%20)"
            .into());
    }
    let url = url::Url::parse(raw)
        .map_err(|e| format!("not a URL ({e}) — write http://host/path"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err("https:// webhooks are not supported yet: the agent \
                        has no TLS — point it at a local relay over \
                        http:// that forwards to the https endpoint"
                .into());
        }
        other => {
            return Err(format!(
                "the scheme `{other}` is not http — write http://host/path"
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host — write http://host/path".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL carries credentials, which the agent never \
                    sends — put a token in the path or query instead"
            .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_follow_rfc_5321() {
        for good in [
            "ops@example.org",
            "root@localhost",
            "first.last+tag@mail-1.example.org",
            "a!#$%&'*+-/=?^_`{|}~@x",
            "ops@[192.0.2.1]",
            "ops@[IPv6:2001:db8::1]",
        ] {
            assert_eq!(mailbox(good), Ok(()), "{good}");
        }
        for bad in [
            "ops",
            "@example.org",
            "ops@",
            "ops@example.org\r\nRCPT TO:<x@y>",
            "ops@example.org>",
            "<ops@example.org",
            "o ps@example.org",
            "\"quoted\"@example.org",
            ".ops@example.org",
            "o..ps@example.org",
            "ops.@example.org",
            "ops@-example.org",
            "ops@example-.org",
            "ops@exa_mple.org",
            "ops@example..org",
            "ops@[192.0.2.300]",
            "ops@[IPv6:nope]",
            "ops@ex\u{e4}mple.org",
        ] {
            assert!(mailbox(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mailbox_lengths_are_bounded() {
        let local = "a".repeat(LOCAL_PART_MAX);
        assert_eq!(mailbox(&format!("{local}@x")), Ok(()));
        assert!(mailbox(&format!("{local}a@x")).is_err());
        let label = "b".repeat(LABEL_MAX);
        assert_eq!(mailbox(&format!("a@{label}")), Ok(()));
        assert!(mailbox(&format!("a@{label}b")).is_err());
        let domain = vec!["c".repeat(60); 4].join(".");
        assert_eq!(mailbox(&format!("a@{domain}")), Ok(()));
        let domain = vec!["c".repeat(LABEL_MAX); 4].join(".");
        let err = mailbox(&format!("a@{domain}")).unwrap_err();
        assert!(err.contains("at most 254"), "{err}");
    }

    #[test]
    fn webhooks_are_http_urls_with_a_host() {
        assert_eq!(webhook("http://hooks.example.org:8080/x?t=1"), Ok(()));
        assert_eq!(webhook("http://[2001:db8::1]/x"), Ok(()));
        let err = webhook("https://hooks.example.org/x").unwrap_err();
        assert!(err.contains("no TLS"), "{err}");
        for bad in [
            "http://h/x\r\nX-Injected: yes",
            "http://h/x y",
            "http://h/\tx",
            "ftp://h/x",
            "hooks.example.org/x",
            "http://:80/x",
            "http://user:pw@h/x",
            "http://h:99999/",
        ] {
            assert!(webhook(bad).is_err(), "{bad:?}");
        }
    }
}
