//! An email's SMTP session: in clear to a relay (keepalived's way), in
//! clear until `STARTTLS` (RFC 3207), or TLS from the first byte (RFC
//! 8314); then, when the inventory gives credentials, AUTH PLAIN or LOGIN
//! (RFC 4954) — only ever over TLS, which validation enforces and this
//! module checks again; then the message.
//!
//! What the server says is read by the smtp check's bounded reader
//! (`check::smtp::Replies`) and never trusted further: a server that does not
//! offer `STARTTLS` gets nothing (no silent fall-back to clear text), and
//! one that sends bytes after its answer to `STARTTLS` — which a man in
//! the middle would have injected into the clear part, to be read as if
//! it came over TLS — is left at once.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::{SmtpDialogue, SmtpStep};
use crate::agent::check::smtp::Replies;
use crate::inventory::{Email, SmtpTls};
use crate::util::tls;

/// What the session needs besides the dialogue: the server, how to
/// protect the connection, whom to trust and how to log in.
pub struct Session<'a> {
    /// Where to connect, as the inventory says.
    pub email: &'a Email,
    /// The PEM of the CAs to trust; the host's bundle when `None`.
    pub ca: Option<&'a str>,
    /// AUTH's password, with `email.auth`'s user name.
    pub password: Option<&'a str>,
}

impl Session<'_> {
    /// Connect, protect, log in and speak `dialogue`.
    ///
    /// # Errors
    /// No connection, a certificate that does not verify, a server that
    /// does not offer what the inventory asks for (nothing of the message
    /// is sent then), or a refused step with the server's reply.
    pub async fn send(&self, dialogue: &SmtpDialogue) -> anyhow::Result<()> {
        let (host, port) = host_port(&self.email.smtp_server).unwrap_or((
            &self.email.smtp_server,
            self.email.tls.default_port(),
        ));
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let mut replies = Replies::default();
        match self.email.tls {
            SmtpTls::None => {
                let mut s = tcp;
                expect(&mut replies, &mut s, 220).await?;
                let hello = format!("HELO {}\r\n", dialogue.host);
                command(&mut s, &mut replies, &hello, 250).await?;
                self.message(&mut s, &mut replies, dialogue).await
            }
            SmtpTls::Implicit => {
                let mut s = tls::connect(tcp, host, self.trust()?).await?;
                expect(&mut replies, &mut s, 220).await?;
                self.login_and_send(&mut s, &mut replies, dialogue).await
            }
            SmtpTls::Starttls => {
                let mut s = tcp;
                expect(&mut replies, &mut s, 220).await?;
                let offered = ehlo(&mut s, &mut replies, dialogue).await?;
                if !offered.iter().any(|c| c == "STARTTLS") {
                    bail!(
                        "{host} does not offer STARTTLS; nothing was sent \
                         (it offers: {})",
                        offered.join(", ")
                    );
                }
                command(&mut s, &mut replies, "STARTTLS\r\n", 220).await?;
                if replies.pending() {
                    bail!(
                        "{host} sent more after its answer to STARTTLS \
                         (injected in clear?); nothing was sent"
                    );
                }
                let mut s = tls::connect(s, host, self.trust()?).await?;
                self.login_and_send(&mut s, &mut Replies::default(), dialogue)
                    .await
            }
        }
    }

    fn trust(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        tls::client_config(self.ca)
    }

    /// Over TLS: EHLO, AUTH when credentials are given, the message.
    async fn login_and_send<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        replies: &mut Replies,
        dialogue: &SmtpDialogue,
    ) -> anyhow::Result<()> {
        let offered = ehlo(s, replies, dialogue).await?;
        if let (Some(auth), Some(password)) = (&self.email.auth, self.password)
        {
            let mechanisms: Vec<&str> = offered
                .iter()
                .filter_map(|c| c.strip_prefix("AUTH "))
                .flat_map(str::split_whitespace)
                .collect();
            login(s, replies, &mechanisms, &auth.username, password).await?;
        }
        self.message(s, replies, dialogue).await
    }

    async fn message<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        replies: &mut Replies,
        dialogue: &SmtpDialogue,
    ) -> anyhow::Result<()> {
        for SmtpStep { line, expect } in &dialogue.steps {
            command(s, replies, line, *expect).await?;
        }
        Ok(())
    }
}

/// `EHLO`, and the extensions the server lists (upper-cased keyword and
/// its parameters, one per line after the first).
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    replies: &mut Replies,
    dialogue: &SmtpDialogue,
) -> anyhow::Result<Vec<String>> {
    let hello = format!("EHLO {}\r\n", dialogue.host);
    send_line(s, &hello).await?;
    let (reply, raw) = replies.next(s).await.map_err(|e| anyhow!(e))?;
    if reply.code != 250 {
        bail!("EHLO: expected 250, got `{reply}`");
    }
    Ok(extensions(&raw))
}

/// The extensions of an EHLO reply's raw lines (already bounded by the
/// decoder): each line after the first, its text upper-cased.
fn extensions(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .skip(1)
        .filter_map(|l| l.get(4..))
        .map(|l| l.trim().to_ascii_uppercase())
        .collect()
}

/// AUTH PLAIN (RFC 4616) when offered, else AUTH LOGIN.
async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    replies: &mut Replies,
    offered: &[&str],
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    if offered.contains(&"PLAIN") {
        let token = BASE64.encode(format!("\0{user}\0{password}"));
        let line = format!("AUTH PLAIN {token}\r\n");
        return command(s, replies, &line, 235).await.map_err(|_| {
            anyhow!(
                "AUTH PLAIN as `{user}` refused (the password is not shown)"
            )
        });
    }
    if offered.contains(&"LOGIN") {
        command(s, replies, "AUTH LOGIN\r\n", 334).await?;
        command(s, replies, &format!("{}\r\n", BASE64.encode(user)), 334)
            .await?;
        let line = format!("{}\r\n", BASE64.encode(password));
        return command(s, replies, &line, 235).await.map_err(|_| {
            anyhow!(
                "AUTH LOGIN as `{user}` refused (the password is not shown)"
            )
        });
    }
    bail!(
        "the server offers neither AUTH PLAIN nor LOGIN (it offers: {}); \
         nothing was sent",
        offered.join(" ")
    )
}

/// Send `line` and read the reply, which must be `code`.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    replies: &mut Replies,
    line: &str,
    code: u16,
) -> anyhow::Result<()> {
    send_line(s, line).await?;
    expect(replies, s, code).await
}

async fn send_line<S: AsyncWrite + Unpin>(
    s: &mut S,
    line: &str,
) -> anyhow::Result<()> {
    s.write_all(line.as_bytes()).await?;
    s.flush().await?;
    Ok(())
}

/// `host` and `port` of `host:port` or `[v6]:port`; `None` for a bare
/// host (the port is then the mode's default).
fn host_port(server: &str) -> Option<(&str, u16)> {
    let (host, port) = server.rsplit_once(':')?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// The next reply, which must be `code`.
async fn expect<S: AsyncRead + Unpin>(
    replies: &mut Replies,
    s: &mut S,
    code: u16,
) -> anyhow::Result<()> {
    let (reply, _) = replies.next(s).await.map_err(|e| anyhow!(e))?;
    if reply.code != code {
        bail!("expected {code}, got `{reply}`");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use crate::agent::alert::event::{Event, What};
    use crate::agent::alert::wire::smtp_dialogue;
    use crate::inventory::SmtpAuth;
    use crate::util::tls::test_ca::TestCa;

    fn email(port: u16, tls: SmtpTls) -> Email {
        Email {
            tls,
            auth: Some(SmtpAuth {
                username: "lb".into(),
                ..Default::default()
            }),
            ..Email::relay(
                vec!["ops@example.org".into()],
                "d1@example.org".into(),
                format!("127.0.0.1:{port}"),
                crate::inventory::Duration::from_secs(5),
            )
        }
    }

    fn dialogue() -> SmtpDialogue {
        let event = Event {
            cluster: "c".into(),
            host: "d1".into(),
            time: "2026-12-07T00:00:00Z".into(),
            what: What::Vrrp {
                instance: "VI_1".into(),
                state: "master".into(),
                priority: 120,
            },
        };
        smtp_dialogue(&email(0, SmtpTls::None), &event).unwrap()
    }

    /// A server that greets, then answers each line as `answer` says
    /// (nothing while a message is sent); what it read, until QUIT, the
    /// end, or an answer of `None`, which closes the connection.
    pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        answer: impl Fn(&str) -> Option<&'static str>,
    ) -> String {
        let mut s = BufReader::new(stream);
        let mut seen = String::new();
        s.get_mut().write_all(b"220 test ESMTP\r\n").await.unwrap();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                return seen;
            }
            seen.push_str(&line);
            let reply = match (in_data, line.trim_end()) {
                (true, ".") => {
                    in_data = false;
                    "250 queued\r\n"
                }
                (true, _) => continue,
                (false, "DATA") => {
                    in_data = true;
                    "354 go on\r\n"
                }
                (false, l) => match answer(l) {
                    Some(r) => r,
                    None => return seen,
                },
            };
            s.get_mut().write_all(reply.as_bytes()).await.unwrap();
            s.get_mut().flush().await.unwrap();
            if line.trim_end() == "QUIT" {
                return seen;
            }
        }
    }

    /// Issue #21: TLS from the first byte, verified against the CA
    /// given, and AUTH LOGIN when PLAIN is not offered; the credentials
    /// arrive intact.
    #[tokio::test]
    async fn implicit_tls_logs_in_and_sends() {
        let ca = TestCa::new("smtp CA");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
            ca.server("127.0.0.1", false),
        ));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            serve(tls, |l| {
                Some(match l {
                    l if l.starts_with("EHLO") => {
                        "250-test\r\n250 AUTH LOGIN\r\n"
                    }
                    "AUTH LOGIN" => "334 VXNlcm5hbWU6\r\n",
                    "QUIT" => "221 bye\r\n",
                    l if l.starts_with("MAIL") || l.starts_with("RCPT") => {
                        "250 ok\r\n"
                    }
                    l if l == BASE64.encode("lb") => "334 UGFzc3dvcmQ6\r\n",
                    _ => "235 ok\r\n",
                })
            })
            .await
        });
        let pem = ca.pem();
        let session = Session {
            email: &email(port, SmtpTls::Implicit),
            ca: Some(&pem),
            password: Some("s3cret"),
        };
        session.send(&dialogue()).await.unwrap();
        let seen = server.await.unwrap();
        let lines: Vec<&str> = seen.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "EHLO d1",
                "AUTH LOGIN",
                &BASE64.encode("lb"),
                &BASE64.encode("s3cret")
            ]
        );
        assert!(seen.contains("MAIL FROM:<d1@example.org>"), "{seen}");
    }

    /// A server that does not offer STARTTLS, or that sends more after
    /// its answer to it, gets nothing of the message.
    #[tokio::test]
    async fn starttls_refused_or_tampered_sends_nothing() {
        type Answer = fn(&str) -> Option<&'static str>;
        let cases: [(Answer, &str); 2] = [
            (
                |l| match l.starts_with("EHLO") {
                    true => Some("250-test\r\n250 AUTH PLAIN\r\n"),
                    false => None,
                },
                "does not offer STARTTLS",
            ),
            (
                |l| match l {
                    l if l.starts_with("EHLO") => {
                        Some("250-test\r\n250 STARTTLS\r\n")
                    }
                    "STARTTLS" => Some("220 go ahead\r\n250 injected\r\n"),
                    _ => None,
                },
                "sent more after its answer to STARTTLS",
            ),
        ];
        for (answer, says) in cases {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                serve(tcp, answer).await
            });
            let session = Session {
                email: &email(port, SmtpTls::Starttls),
                ca: None,
                password: Some("s3cret"),
            };
            let err = session.send(&dialogue()).await.unwrap_err();
            assert!(err.to_string().contains(says), "{says}: {err:#}");
            let seen = server.await.unwrap();
            assert!(!seen.contains("MAIL") && !seen.contains("AUTH"), "{seen}");
        }
    }

    #[test]
    fn servers_are_split_into_host_and_port() {
        assert_eq!(
            host_port("smtp.example.org:587"),
            Some(("smtp.example.org", 587))
        );
        assert_eq!(
            host_port("[2001:db8::1]:465"),
            Some(("[2001:db8::1]", 465))
        );
        assert_eq!(host_port("smtp.example.org"), None);
        assert_eq!(host_port("2001:db8::1"), None);
        assert_eq!(host_port("h:notaport"), None);
    }

    #[test]
    fn ehlo_extensions_are_the_lines_after_the_first() {
        let raw = b"250-mx.example.org hi\r\n250-starttls\r\n250 AUTH PLAIN LOGIN\r\n";
        assert_eq!(extensions(raw), ["STARTTLS", "AUTH PLAIN LOGIN"]);
        assert!(extensions(b"250 mx\r\n").is_empty());
    }
}
