//! The notification rules: mailboxes as RFC 5321 has them, a webhook URL
//! the agent can deliver to, and an exec hook that is a program.
//!
//! Each value here ends up in a protocol dialogue (SMTP commands, an HTTP
//! request line) or on a command line, so "looks about right" is not
//! enough: a CR/LF in an address once added recipients to the SMTP
//! dialogue (issue #17, finding 5), and an `https://` URL once passed
//! validation only to be refused by the agent at every event (finding 10):
//! what validation accepts, the agent delivers — an `https://` webhook's
//! CA file is parsed here by the same code the agent uses ([`crate::util::tls`]).
//!
//! A webhook's URL may come from the controller's environment or a file
//! (`url_env`, `url_file`), so that its token never sits in the
//! inventory; [`webhook_url`] resolves it — for validation here and for
//! the rendering of the agents' files alike — and checks what it finds
//! exactly as an inline URL is checked.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::environment::{Environment, secret_source};
use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Email, Notification, NotifyHooks, Webhook, WebhookSource,
};

/// RFC 5321 §4.5.3.1.1: the longest local part, in octets.
pub(crate) const LOCAL_PART_MAX: usize = 64;
/// The longest mailbox: RFC 5321 §4.5.3.1.3's 256-octet path less its
/// angle brackets. It also keeps the domain under §4.5.3.1.2's 255.
pub(crate) const MAILBOX_MAX: usize = 254;
/// RFC 1035 §2.3.4: the longest label of a domain name.
const LABEL_MAX: usize = 63;
/// The longest webhook URL, in bytes: as long as any inline string of the
/// inventory may be (`text::TEXT_MAX`), whichever source it comes from.
pub(crate) const URL_MAX: usize = 4096;
/// The largest `url_file`: the longest URL and its trailing newline.
pub(crate) const URL_FILE_MAX: u64 = URL_MAX as u64 + 1;

/// A webhook's URL, a CA file or an SMTP password that could not be had:
/// the field to blame and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationProblem {
    /// The field path, `notification.webhook…`, `notification.email…`.
    pub field: String,
    /// What is wrong, naming the variable or file, never the value.
    pub message: String,
}

/// The most of an SMTP `password_file` read, and the longest password:
/// far more than any account's, small enough for one AUTH line.
const SMTP_PASSWORD_MAX: u64 = 1024;

/// The longest SMTP AUTH user name, in bytes (RFC 4616 bounds the
/// identity at 255 octets).
const SMTP_USERNAME_MAX: usize = 255;

/// Every notification rule; `base` resolves a relative `url_file`.
pub(crate) fn notification(
    n: &Notification,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
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
        let secured = email_ca(email, base, env)
            .and_then(|_| smtp_password(email, base, env).map(drop));
        if let Err(p) = secured {
            out.push(Finding::error(p.field, p.message));
        }
    }
    if let Some(w) = &n.webhook {
        let ca = webhook_url(w, base, env)
            .and_then(|url| webhook_ca(w, &url, base, env));
        if let Err(p) = ca {
            out.push(Finding::error(p.field, p.message));
        }
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

/// The URL `w` gives — inline, or read from the controller's environment
/// or a file (`base` resolves a relative one, one trailing newline is
/// dropped) — checked as `webhook` checks an inline one.
///
/// # Errors
/// No source or several, a variable unset or empty, a file that cannot be
/// used, or a URL the agent cannot deliver to; the message names the
/// variable or file the URL came from and never quotes the URL.
pub fn webhook_url(
    w: &Webhook,
    base: &Path,
    env: &dyn Environment,
) -> Result<String, NotificationProblem> {
    let at = |field: &str, message: String| NotificationProblem {
        field: format!("notification.webhook{field}"),
        message,
    };
    let (field, from, url) = match w {
        Webhook::Url(url) => ("", String::new(), url.clone()),
        Webhook::Source(s) => match s {
            WebhookSource {
                url: Some(url),
                url_env: None,
                url_file: None,
                ..
            } => (".url", String::new(), url.clone()),
            WebhookSource {
                url: None,
                url_env: Some(var),
                url_file: None,
                ..
            } => {
                let url = env.var(var).filter(|v| !v.is_empty());
                let url = url.ok_or_else(|| {
                    at(
                        ".url_env",
                        format!(
                            "environment variable `{var}` is not set or \
                             empty — export the webhook's URL in it before \
                             running lbdeploy"
                        ),
                    )
                })?;
                (".url_env", format!("the URL in `${var}`: "), url)
            }
            WebhookSource {
                url: None,
                url_env: None,
                url_file: Some(f),
                ..
            } => {
                let path = base.join(f);
                let text = env.read_secret(&path, URL_FILE_MAX);
                let text = text.map_err(|why| {
                    at(
                        ".url_file",
                        format!("cannot use `{}`: {why}", path.display()),
                    )
                })?;
                let url = text.strip_suffix('\n').unwrap_or(&text).to_owned();
                let from = format!("the URL in `{}`: ", path.display());
                (".url_file", from, url)
            }
            _ => {
                return Err(at(
                    "",
                    "give the URL exactly one way: `url`, `url_env` or \
                     `url_file`"
                        .into(),
                ));
            }
        },
    };
    webhook(&url).map_err(|why| at(field, format!("{from}{why}")))?;
    Ok(url)
}

/// The PEM of `email`'s `ca_file`, for the agent to verify the SMTP
/// server with; `None` for the director's CA bundle.
///
/// # Errors
/// A CA file for a connection in clear, or one that cannot be read or
/// holds no usable CA certificate.
pub fn email_ca(
    email: &Email,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<String>, NotificationProblem> {
    let Some(file) = &email.ca_file else { return Ok(None) };
    let at = |message: String| NotificationProblem {
        field: "notification.email.ca_file".into(),
        message,
    };
    if email.tls.is_none() {
        return Err(at("a CA file verifies a TLS connection, and this one \
                       is in clear — set `tls: starttls` or `tls: implicit`"
            .into()));
    }
    ca_pem(file, base, env).map(Some).map_err(at)
}

/// The password `email` logs in with, read from its variable or file;
/// `None` without `auth`.
///
/// # Errors
/// `auth` over a connection in clear, a user name or password no AUTH
/// line can carry, or a password that cannot be had.
pub fn smtp_password(
    email: &Email,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<String>, NotificationProblem> {
    let Some(auth) = &email.auth else { return Ok(None) };
    let at = |field: &str, message: String| NotificationProblem {
        field: format!("notification.email.auth{field}"),
        message,
    };
    if email.tls.is_none() {
        return Err(at(
            "",
            "logging in over a connection in clear sends the password in \
             clear — set `tls: starttls` (port 587) or `tls: implicit` \
             (port 465)"
                .into(),
        ));
    }
    if auth.username.is_empty() || auth.username.len() > SMTP_USERNAME_MAX {
        return Err(at(
            ".username",
            format!("the user name must be 1–{SMTP_USERNAME_MAX} bytes"),
        ));
    }
    let source = secret_source(
        auth.password_env.as_deref(),
        auth.password_file.as_deref(),
        SMTP_PASSWORD_MAX,
        base,
        env,
    );
    let (field, password) = match source {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(at(
                "",
                "no password — give `password_env` or `password_file`".into(),
            ));
        }
        Err(p) => return Err(at(p.field, p.message)),
    };
    if password.is_empty()
        || password.len() as u64 > SMTP_PASSWORD_MAX
        || password.chars().any(char::is_control)
    {
        return Err(at(
            field,
            format!(
                "the password must be 1–{SMTP_PASSWORD_MAX} bytes without \
                 control characters (not quoted here)"
            ),
        ));
    }
    Ok(Some(password))
}

/// A CA file's PEM (`base` resolves a relative one), checked by the code
/// the agent loads it with.
pub(crate) fn ca_pem(
    file: &Path,
    base: &Path,
    env: &dyn Environment,
) -> Result<String, String> {
    let path = base.join(file);
    let pem = env
        .read_public(&path, crate::util::tls::CA_FILE_MAX)
        .map_err(|why| format!("cannot use `{}`: {why}", path.display()))?;
    crate::util::tls::roots_from_pem(&pem)
        .map_err(|why| format!("`{}` {why}", path.display()))?;
    Ok(pem)
}

/// The PEM of `w`'s `ca_file` (`base` resolves a relative one), for the
/// agent to verify `url`'s server with; `None` when the host's CA bundle
/// is to be used.
///
/// # Errors
/// A CA file for a plain `http://` URL, or one that cannot be read or
/// holds no usable CA certificate — named, never quoted.
pub fn webhook_ca(
    w: &Webhook,
    url: &str,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<String>, NotificationProblem> {
    let Some(file) = w.ca_file() else { return Ok(None) };
    let at = |message: String| NotificationProblem {
        field: "notification.webhook.ca_file".into(),
        message,
    };
    if url::Url::parse(url).map(|u| u.scheme() == "https") != Ok(true) {
        return Err(at("a CA file verifies an https:// webhook, and this \
                       one is http:// — drop `ca_file` or use https"
            .into()));
    }
    ca_pem(file, base, env).map(Some).map_err(at)
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
/// first), `http` or `https`, with a host and no credentials (the agent
/// sends none).
///
/// # Errors
/// The message for the finding.
pub(crate) fn webhook(raw: &str) -> Result<(), String> {
    if raw.len() > URL_MAX {
        return Err(format!(
            "the URL is {} bytes long, at most {URL_MAX}",
            raw.len()
        ));
    }
    if raw.is_empty() {
        return Err("the URL is empty — write http://host/path".into());
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains a space or a control character — \
                    percent-encode it (%20)"
            .into());
    }
    let url = url::Url::parse(raw)
        .map_err(|e| format!("not a URL ({e}) — write http://host/path"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "the scheme `{other}` is neither http nor https — write \
                 https://host/path"
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
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;
    use crate::inventory::schema::{SmtpAuth, SmtpTls};
    use crate::inventory::validate::environment::Vars;

    const TOKEN: &str = "XXXXSECRET";

    fn env_of(name: &str) -> Webhook {
        Webhook::Source(WebhookSource {
            url_env: Some(name.into()),
            ..Default::default()
        })
    }

    fn file_of(path: &str) -> Webhook {
        Webhook::Source(WebhookSource {
            url_file: Some(path.into()),
            ..Default::default()
        })
    }

    /// A fresh directory holding `url` with `text` and mode 0600.
    fn dir_with(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lbd-webhook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("url");
        std::fs::write(&path, text).unwrap();
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        dir
    }

    #[test]
    fn a_url_from_the_environment_is_checked_like_an_inline_one() {
        let url = format!("http://hooks.example/services/T0/B0/{TOKEN}");
        let url: &'static str = url.leak();
        let env = Vars(HashMap::from([
            ("HOOK", url),
            ("EMPTY", ""),
            ("FTP", "ftp://hooks.example/x"),
        ]));
        let base = Path::new("/nonexistent");
        assert_eq!(
            webhook_url(&env_of("HOOK"), base, &env).as_deref(),
            Ok(url)
        );
        for (var, says) in [
            ("UNSET", "`UNSET` is not set or empty"),
            ("EMPTY", "`EMPTY` is not set or empty"),
            ("FTP", "the URL in `$FTP`: the scheme `ftp` is neither"),
        ] {
            let p = webhook_url(&env_of(var), base, &env).unwrap_err();
            assert_eq!(p.field, "notification.webhook.url_env");
            assert!(
                p.message.starts_with("environment variable")
                    || p.message.starts_with("the URL in"),
                "{}",
                p.message
            );
            assert!(p.message.contains(says), "{}", p.message);
        }
    }

    /// Issue #21: a CA file is read for an https:// URL only, and must
    /// hold a usable CA certificate; the PEM is what the agent gets.
    #[test]
    fn a_webhook_ca_file_is_read_for_https_only_and_must_hold_a_ca() {
        let dir = dir_with("ca", "");
        let pem = crate::util::tls::test_ca::TestCa::new("ca").pem();
        std::fs::write(dir.join("ca.pem"), &pem).unwrap();
        std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
        let env = Vars(HashMap::new());
        let with = |url: &str, ca: &str| {
            let w = Webhook::Source(WebhookSource {
                url: Some(url.into()),
                ca_file: Some(ca.into()),
                ..Default::default()
            });
            webhook_ca(&w, url, &dir, &env)
        };
        assert_eq!(with("https://h/x", "ca.pem"), Ok(Some(pem)));
        for (url, ca, says) in [
            ("http://h/x", "ca.pem", "this one is http://"),
            ("https://h/x", "junk.pem", "holds no `BEGIN CERTIFICATE`"),
            ("https://h/x", "none.pem", "there is no such file"),
        ] {
            let p = with(url, ca).unwrap_err();
            assert_eq!(p.field, "notification.webhook.ca_file");
            assert!(p.message.contains(says), "{ca}: {}", p.message);
        }
        let inline = Webhook::Url("https://h/x".into());
        assert_eq!(webhook_ca(&inline, "https://h/x", &dir, &env), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn email(tls: SmtpTls, auth: Option<SmtpAuth>) -> Email {
        Email {
            tls,
            auth,
            ..Email::relay(
                vec!["ops@example.org".into()],
                "lb@example.org".into(),
                "smtp.example.org".into(),
                crate::inventory::Duration::from_secs(5),
            )
        }
    }

    fn auth(var: Option<&str>, file: Option<&str>) -> Option<SmtpAuth> {
        Some(SmtpAuth {
            username: "lb".into(),
            password_env: var.map(Into::into),
            password_file: file.map(Into::into),
        })
    }

    /// Issue #21: SMTP AUTH only over TLS, its password from exactly one
    /// source, never quoted; a CA file only for TLS.
    #[test]
    fn smtp_auth_wants_tls_and_one_usable_password() {
        let dir = dir_with("smtp", "s3cret\n");
        let env = Vars(HashMap::from([("PW", "env-pw"), ("BAD", "a\rb")]));
        let tls = SmtpTls::Starttls;
        let got = |e: &Email| smtp_password(e, &dir, &env);
        assert_eq!(got(&email(tls, None)), Ok(None));
        assert_eq!(
            got(&email(tls, auth(Some("PW"), None))),
            Ok(Some("env-pw".into()))
        );
        assert_eq!(
            got(&email(SmtpTls::Implicit, auth(None, Some("url")))),
            Ok(Some("s3cret".into()))
        );
        for (e, field, says) in [
            (email(SmtpTls::None, auth(Some("PW"), None)), "", "in clear"),
            (email(tls, auth(None, None)), "", "no password"),
            (email(tls, auth(Some("PW"), Some("url"))), "", "one way"),
            (email(tls, auth(Some("UNSET"), None)), ".password_env", "UNSET"),
            (email(tls, auth(None, Some("none"))), ".password_file", "no such"),
            (email(tls, auth(Some("BAD"), None)), ".password_env", "control"),
        ] {
            let p = got(&e).unwrap_err();
            assert_eq!(p.field, format!("notification.email.auth{field}"));
            assert!(p.message.contains(says), "{says}: {}", p.message);
            assert!(!p.message.contains("env-pw"), "{}", p.message);
        }
        let mut nameless = email(tls, auth(Some("PW"), None));
        nameless.auth.as_mut().unwrap().username.clear();
        assert!(got(&nameless).unwrap_err().field.ends_with(".username"));

        let mut clear = email(SmtpTls::None, None);
        clear.ca_file = Some("ca.pem".into());
        let p = email_ca(&clear, &dir, &env).unwrap_err();
        assert_eq!(p.field, "notification.email.ca_file");
        assert!(p.message.contains("in clear"), "{}", p.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_url_from_a_file_loses_one_trailing_newline_only() {
        let dir =
            dir_with("newline", &format!("http://h:81/p?token={TOKEN}\n"));
        let env = Vars(HashMap::new());
        let got = webhook_url(&file_of("url"), &dir, &env);
        assert_eq!(got.as_deref().map(|u| u.ends_with(TOKEN)), Ok(true));
        std::fs::write(dir.join("url"), "http://h/p\n\n").unwrap();
        let p = webhook_url(&file_of("url"), &dir, &env).unwrap_err();
        assert_eq!(p.field, "notification.webhook.url_file");
        assert!(p.message.contains("control character"), "{}", p.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_linked_or_oversized_url_file_is_refused_by_name() {
        let dir = dir_with("bad", &format!("http://h/{TOKEN}"));
        let env = Vars(HashMap::new());
        let refuse = |w: &Webhook| webhook_url(w, &dir, &env).unwrap_err();
        std::os::unix::fs::symlink(dir.join("url"), dir.join("link")).unwrap();
        let big = format!("http://h/{}", "x".repeat(URL_MAX));
        std::fs::write(dir.join("big"), &big).unwrap();
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.join("big"), perms).unwrap();
        for (file, says) in [
            ("missing", "no such file"),
            ("link", "symbolic link"),
            ("big", &format!("larger than {URL_FILE_MAX} bytes")),
        ] {
            let p = refuse(&file_of(file));
            assert_eq!(p.field, "notification.webhook.url_file");
            let named = format!("cannot use `{}`", dir.join(file).display());
            assert!(p.message.starts_with(&named), "{}", p.message);
            assert!(p.message.contains(says), "{}", p.message);
            assert!(!p.message.contains(TOKEN), "{}", p.message);
        }
        // The longest URL a file may hold, with its newline, is taken.
        let longest = format!("http://h/{}", "x".repeat(URL_MAX - 9));
        std::fs::write(dir.join("big"), format!("{longest}\n")).unwrap();
        assert_eq!(webhook_url(&file_of("big"), &dir, &env), Ok(longest));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_webhook_gives_its_url_exactly_one_way() {
        let env = Vars(HashMap::from([("HOOK", "http://h/x")]));
        let base = Path::new("/nonexistent");
        let both = Webhook::Source(WebhookSource {
            url: Some("http://h/x".into()),
            url_env: Some("HOOK".into()),
            ..Default::default()
        });
        for w in [both, Webhook::Source(WebhookSource::default())] {
            let p = webhook_url(&w, base, &env).unwrap_err();
            assert_eq!(p.field, "notification.webhook");
            assert!(p.message.contains("exactly one way"), "{}", p.message);
        }
        let inline = Webhook::Source(WebhookSource {
            url: Some("ftp://h/x".into()),
            ..Default::default()
        });
        let p = webhook_url(&inline, base, &env).unwrap_err();
        assert_eq!(p.field, "notification.webhook.url");
        let p = webhook_url(&Webhook::Url("".into()), base, &env).unwrap_err();
        assert_eq!(p.field, "notification.webhook");
    }

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
        assert_eq!(webhook("https://hooks.example.org/x"), Ok(()));
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
