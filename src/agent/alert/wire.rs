//! The bytes an alert puts on the wire: the SMTP dialogue and the HTTP
//! request, built by pure functions that refuse any field able to break
//! out of its line. Pure.
//!
//! Validation already refuses such values in the inventory, but the agent
//! reads its own configuration file and the events carry names from it;
//! the writer is the last place that knows which bytes end a command, so
//! it checks again (issue #17, finding 5: CR/LF in `to` put `RCPT TO` and
//! `NOOP` into the dialogue, in the URL an `X-Injected:` header into the
//! request). A refusal names the field, never its content, and nothing is
//! sent.

use crate::inventory::Email;

use super::event::Event;

/// Why an alert was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field holds a character that would end or bend its line.
    #[error("{field} contains {what}; nothing was sent")]
    Unsafe {
        /// The field, as `email.to[1]` or `webhook`.
        field: String,
        /// What was found, as `a CR or LF`.
        what: &'static str,
    },
    /// The webhook URL is not one the agent can deliver to.
    #[error("webhook: {0}; nothing was sent")]
    Url(String),
}

/// One SMTP command and the reply code that lets the dialogue go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpStep {
    /// The bytes to send, CRLF-terminated.
    pub line: String,
    /// RFC 5321 §4.2's reply code that must come back.
    pub expect: u16,
}

/// Refuse CR, LF and every other control character in a field written
/// into one line of a protocol.
fn one_line(field: &str, value: &str) -> Result<(), WireError> {
    if value.chars().any(char::is_control) {
        return Err(WireError::Unsafe {
            field: field.to_owned(),
            what: "a CR, LF or other control character",
        });
    }
    Ok(())
}

/// A path of `MAIL FROM:<…>` or `RCPT TO:<…>`: one line, and no angle
/// bracket that would close the path early (RFC 5321 §4.1.2).
fn smtp_path(field: &str, value: &str) -> Result<(), WireError> {
    one_line(field, value)?;
    if value.contains(['<', '>']) {
        return Err(WireError::Unsafe {
            field: field.to_owned(),
            what: "`<` or `>`",
        });
    }
    Ok(())
}

/// What an email says to the server once greeted (and, where asked
/// for, protected and logged in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpDialogue {
    /// The name this host gives in `HELO` / `EHLO`: the event's host.
    pub host: String,
    /// MAIL FROM to QUIT.
    pub steps: Vec<SmtpStep>,
}

/// The SMTP dialogue for `event`, after the greeting and `HELO` (or
/// `EHLO`): MAIL FROM, one RCPT TO per recipient, DATA, the message with
/// its lines dot-stuffed (RFC 5321 §4.5.2), QUIT.
///
/// # Errors
/// [`WireError::Unsafe`] when the sender, a recipient, the host name for
/// HELO or the subject could inject a command or a header.
pub fn smtp_dialogue(
    email: &Email,
    event: &Event,
) -> Result<SmtpDialogue, WireError> {
    smtp_path("email.from", &email.from)?;
    for (i, to) in email.to.iter().enumerate() {
        smtp_path(&format!("email.to[{i}]"), to)?;
    }
    one_line("host", &event.host)?;
    let subject = event.subject();
    one_line("subject", &subject)?;
    one_line("time", &event.time)?;
    let step = |line: String, expect| SmtpStep { line, expect };
    let mut steps = vec![step(format!("MAIL FROM:<{}>\r\n", email.from), 250)];
    for to in &email.to {
        steps.push(step(format!("RCPT TO:<{to}>\r\n"), 250));
    }
    steps.push(step("DATA\r\n".into(), 354));
    // The body is free text: its lines are normalised to CRLF and a
    // leading dot doubled, so no line of it can end the DATA section.
    let body: String = event
        .body()
        .lines()
        .map(|l| l.replace('\r', " "))
        .map(|l| match l.starts_with('.') {
            true => format!(".{l}\r\n"),
            false => format!("{l}\r\n"),
        })
        .collect();
    steps.push(step(
        format!(
            "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\n\r\n\
             {body}.\r\n",
            email.from,
            email.to.join(", "),
            event.time,
        ),
        250,
    ));
    steps.push(step("QUIT\r\n".into(), 221));
    Ok(SmtpDialogue { host: event.host.clone(), steps })
}

/// An HTTP request ready to send, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `host:port` to connect to (IPv6 hosts in brackets).
    pub connect: String,
    /// For `https://`, the name the server's certificate must carry (the
    /// URL's host); `None` for plain `http://`.
    pub tls_name: Option<String>,
    /// The request, head and body.
    pub bytes: String,
}

/// A `POST` of `body` (JSON) to `url`, HTTP/1.0 so the answer ends with
/// the connection.
///
/// # Errors
/// [`WireError::Unsafe`] for whitespace or control characters anywhere in
/// the URL (the WHATWG parser would drop tabs and newlines silently),
/// [`WireError::Url`] for a URL that does not parse, is not `http://` or
/// `https://`, or has no host.
pub fn http_post(url: &str, body: &str) -> Result<HttpRequest, WireError> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(WireError::Unsafe {
            field: "webhook".into(),
            what: "a space, CR, LF or other control character",
        });
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| WireError::Url(format!("not a URL: {e}")))?;
    let tls = match parsed.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(WireError::Url(format!(
                "the scheme `{other}` is neither http nor https"
            )));
        }
    };
    let host = match parsed.host_str() {
        Some(h) if !h.is_empty() => h,
        _ => return Err(WireError::Url("the URL has no host".into())),
    };
    // The parser percent-encodes what may not appear raw; a port it kept
    // is a number. The checks stay, as the writer's own guarantee.
    let port = parsed.port_or_known_default().unwrap_or(80);
    let tls_name = tls.then(|| host.to_owned());
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    one_line("webhook path", &target)?;
    one_line("webhook host", &authority)?;
    let bytes = format!(
        "POST {target} HTTP/1.0\r\nHost: {authority}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         User-Agent: lbdeploy\r\n\r\n{body}",
        body.len()
    );
    Ok(HttpRequest { connect: format!("{host}:{port}"), tls_name, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::alert::event::What;

    fn email(to: &[&str], from: &str) -> Email {
        Email::relay(
            to.iter().map(|s| (*s).to_owned()).collect(),
            from.into(),
            "127.0.0.1".into(),
            crate::inventory::Duration::from_secs(5),
        )
    }

    fn event(host: &str, instance: &str) -> Event {
        Event {
            cluster: "c".into(),
            host: host.into(),
            time: "2026-11-26T00:00:00Z".into(),
            what: What::Vrrp {
                instance: instance.into(),
                state: "master".into(),
                priority: 120,
            },
        }
    }

    #[test]
    fn a_clean_dialogue_has_every_step() {
        let dialogue =
            smtp_dialogue(&email(&["a@x", "b@x"], "d@x"), &event("d1", "VI"))
                .unwrap();
        assert_eq!(dialogue.host, "d1");
        let steps = dialogue.steps;
        let lines: Vec<&str> = steps.iter().map(|s| s.line.as_str()).collect();
        assert_eq!(
            lines[..4],
            [
                "MAIL FROM:<d@x>\r\n",
                "RCPT TO:<a@x>\r\n",
                "RCPT TO:<b@x>\r\n",
                "DATA\r\n"
            ]
        );
        assert!(lines[4].ends_with("\r\n.\r\n"), "{}", lines[4]);
        assert_eq!(steps.last().unwrap().expect, 221);
    }

    #[test]
    fn injected_smtp_fields_are_refused_by_name() {
        let cases = [
            (email(&["a@x\r\nRCPT TO:<evil@y>"], "d@x"), "email.to[0]"),
            (email(&["a@x", "b@x>\r\nNOOP"], "d@x"), "email.to[1]"),
            (email(&["a@x"], "d@x\nNOOP"), "email.from"),
            (email(&["a@x>"], "d@x"), "email.to[0]"),
            (email(&["a@x"], "<d@x"), "email.from"),
        ];
        for (e, field) in cases {
            let err = smtp_dialogue(&e, &event("d1", "VI")).unwrap_err();
            assert!(
                matches!(&err, WireError::Unsafe { field: f, .. } if f == field),
                "{err}"
            );
            assert!(!err.to_string().contains("evil"), "{err}");
        }
        let ok = email(&["a@x"], "d@x");
        let err = smtp_dialogue(&ok, &event("d1\r\nNOOP", "VI")).unwrap_err();
        assert!(err.to_string().starts_with("host "), "{err}");
        let err =
            smtp_dialogue(&ok, &event("d1", "VI\r\nBcc: x@y")).unwrap_err();
        assert!(err.to_string().starts_with("subject "), "{err}");
    }

    #[test]
    fn a_body_line_of_a_single_dot_is_stuffed() {
        let mut e = event("d1", "VI");
        e.what = What::RealServer {
            service: "web".into(),
            address: "10.0.0.1".parse().unwrap(),
            up: false,
            reason: "x\n.\nQUIT".into(),
        };
        let steps = smtp_dialogue(&email(&["a@x"], "d@x"), &e).unwrap().steps;
        let message = &steps[3].line;
        assert!(message.contains("\r\n..\r\nQUIT\r\n"), "{message}");
        assert!(!message.contains("\r\n.\r\nQUIT"), "{message}");
    }

    #[test]
    fn http_requests_are_built_from_the_parsed_url() {
        let r = http_post("http://h.example:8080/hook?t=1", "{}").unwrap();
        assert_eq!(r.connect, "h.example:8080");
        assert!(
            r.bytes.starts_with(
                "POST /hook?t=1 HTTP/1.0\r\nHost: h.example:8080\r\n"
            ),
            "{}",
            r.bytes
        );
        assert_eq!(r.tls_name, None);
        let r = http_post("http://[::1]/", "{}").unwrap();
        assert_eq!(r.connect, "[::1]:80");
        assert!(r.bytes.contains("\r\nHost: [::1]\r\n"), "{}", r.bytes);
    }

    #[test]
    fn an_https_url_names_the_certificate_it_wants() {
        let r = http_post("https://hooks.example.org/lb?t=1", "{}").unwrap();
        assert_eq!(r.connect, "hooks.example.org:443");
        assert_eq!(r.tls_name.as_deref(), Some("hooks.example.org"));
        assert!(r.bytes.contains("\r\nHost: hooks.example.org\r\n"));
        let r = http_post("https://[2001:db8::1]:8443/", "{}").unwrap();
        assert_eq!(r.connect, "[2001:db8::1]:8443");
        assert_eq!(r.tls_name.as_deref(), Some("[2001:db8::1]"));
    }

    #[test]
    fn injected_urls_are_refused() {
        for bad in [
            "http://h/x\r\nX-Injected: yes",
            "http://h/x\nX-Injected: yes",
            "http://h/x HTTP/1.1\r\nX: y",
            "http://h\t/x",
        ] {
            let err = http_post(bad, "{}").unwrap_err();
            assert!(
                matches!(&err, WireError::Unsafe { field, .. } if field == "webhook"),
                "{bad:?}: {err}"
            );
            assert!(!err.to_string().contains("Injected"), "{err}");
        }
        assert!(matches!(http_post("ftp://h/x", "{}"), Err(WireError::Url(_))));
        assert!(matches!(http_post("nope", "{}"), Err(WireError::Url(_))));
    }
}
