//! Getting an event out: email over SMTP (keepalived's `smtp_alert`), an
//! HTTP POST of its JSON, an exec hook. Each has a timeout, and all run in
//! a task of their own behind a bounded queue: a dead mail server or a
//! hung webhook never holds up VRRP or the health checks — when the queue
//! is full, an event is dropped and logged instead.
//!
//! What became of them is counted in a [`Deliveries`] record that `agent
//! status` shows. A failure is described once, with its URL redacted
//! (`util::redact`: the agent has no key, so scheme, host and port and a
//! plain marker), and that one text is both logged and recorded: a
//! webhook's token reaches neither.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
    BufReader,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::Instrument;

use super::event::Event;
use super::smtp;
use super::wire::{HttpRequest, http_post, smtp_dialogue};
use crate::inventory::agent::NotificationConfig;
use crate::inventory::{Email, ScriptUser};
use crate::util::{redact, tls};

/// Events waiting for delivery before new ones are dropped.
pub(crate) const QUEUE: usize = 64;

/// How long a webhook or exec hook may take.
pub(crate) const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of the notifications since the agent started, for `agent
/// status`: one count per delivery to one medium.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deliveries {
    /// Deliveries that succeeded.
    pub sent: u64,
    /// Deliveries that failed.
    pub failed: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// The last failure, as logged: secrets redacted.
    pub last_failure: Option<String>,
}

/// The record, shared by the senders (across reloads) and the status.
pub type DeliveryRecord = Arc<Mutex<Deliveries>>;

/// Change the record; a poisoned lock still holds the counts.
fn note(record: &DeliveryRecord, f: impl FnOnce(&mut Deliveries)) {
    f(&mut record.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Where events go; cloning shares the queue.
#[derive(Debug, Clone)]
pub(crate) struct Alerts {
    tx: Option<mpsc::Sender<Event>>,
    record: DeliveryRecord,
}

impl Alerts {
    /// Start delivering to what `config` names, counting in `record`;
    /// nothing when `None`.
    pub fn start(
        config: Option<NotificationConfig>,
        record: DeliveryRecord,
    ) -> Self {
        let Some(config) = config else { return Self { tx: None, record } };
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        let counts = record.clone();
        let delivery = async move {
            while let Some(event) = rx.recv().await {
                deliver(&config, &event, &counts).await;
            }
        };
        tokio::spawn(delivery.in_current_span());
        Self { tx: Some(tx), record }
    }

    /// Queue `event`; never waits.
    pub fn send(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(event) {
            note(&self.record, |d| d.dropped += 1);
            tracing::warn!(
                "notification dropped, the queue is full or closed: {e}"
            );
        }
    }
}

async fn deliver(
    config: &NotificationConfig,
    event: &Event,
    record: &DeliveryRecord,
) {
    let mut outcomes = Vec::new();
    if let Some(email) = &config.email {
        let r = smtp(
            email,
            config.email_ca.as_deref(),
            config.email_password.as_deref(),
            event,
        )
        .await;
        outcomes
            .push(r.map_err(|e| format!("email notification failed: {e:#}")));
    }
    if let Some(url) = &config.webhook {
        let r = webhook(url, config.webhook_ca.as_deref(), event).await;
        // The error may echo the URL too; the whole line is redacted.
        outcomes.push(r.map_err(|e| {
            format!("webhook notification to {url} failed: {e:#}")
        }));
    }
    if let Some(argv) = &config.exec {
        let r = exec(argv, config.exec_user.as_ref(), event).await;
        outcomes.push(
            r.map_err(|e| format!("exec notification {argv:?} failed: {e:#}")),
        );
    }
    for outcome in outcomes {
        match outcome {
            Ok(()) => note(record, |d| d.sent += 1),
            Err(failure) => {
                let failure = redact::text(&failure).into_owned();
                tracing::warn!("{failure}");
                note(record, |d| {
                    d.failed += 1;
                    d.last_failure = Some(failure);
                });
            }
        }
    }
}

/// Send `event` as one email, as [`smtp::Session`] speaks it, trusting
/// `ca` (else the host's bundle) and logging in with `password` where
/// the inventory says so. The dialogue is built whole before connecting,
/// so a field that could inject a command stops the email before any
/// byte is sent.
///
/// # Errors
/// An unsafe field, no connection, a certificate that does not verify, a
/// refused step with the server's answer, or the timeout.
pub async fn smtp(
    email: &Email,
    ca: Option<&str>,
    password: Option<&str>,
    event: &Event,
) -> anyhow::Result<()> {
    let dialogue = smtp_dialogue(email, event)?;
    let session = smtp::Session { email, ca, password };
    timeout(email.timeout.get(), session.send(&dialogue)).await.map_err(
        |_| {
            anyhow!(
                "no answer from {} within {:?}",
                email.smtp_server,
                email.timeout.get()
            )
        },
    )?
}

/// The longest status line read from a webhook's answer, in bytes: the
/// line and a long reason phrase; a server that sends more without a
/// newline gets its answer cut there, and refused.
const STATUS_LINE_MAX: u64 = 1024;

/// POST the event's JSON to an `http://` or `https://` URL; any 2xx
/// answer is success. An `https://` server's certificate is verified
/// against `ca` (the PEM the inventory gave), else the host's CA bundle.
///
/// # Errors
/// An unsupported or unsafe URL (nothing is sent), no connection, a
/// certificate that does not verify (nothing is sent), or a non-2xx
/// answer.
pub async fn webhook(
    url: &str,
    ca: Option<&str>,
    event: &Event,
) -> anyhow::Result<()> {
    let body = serde_json::to_string(event)?;
    let HttpRequest { connect, tls_name, bytes: request } =
        http_post(url, &body)?;
    timeout(HOOK_TIMEOUT, async {
        let tcp = TcpStream::connect(&connect).await?;
        let status = match tls_name {
            Some(name) => {
                let config = tls::client_config(ca)?;
                let stream = tls::connect(tcp, &name, config).await?;
                exchange(stream, &request).await?
            }
            None => exchange(tcp, &request).await?,
        };
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        match (200..300).contains(&code) {
            true => Ok(()),
            false => {
                let quoted: String = status.trim().chars().take(120).collect();
                Err(anyhow!("answered `{quoted}`"))
            }
        }
    })
    .await
    .map_err(|_| anyhow!("no answer within {HOOK_TIMEOUT:?}"))?
}

/// Send `request` and read the answer's status line, at most
/// [`STATUS_LINE_MAX`] bytes of it.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> anyhow::Result<String> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut status = String::new();
    BufReader::new(stream).take(STATUS_LINE_MAX).read_line(&mut status).await?;
    Ok(status)
}

/// Run the exec hook as `user`, `argv` with the event's arguments
/// appended, without a shell, killed at the timeout with its whole
/// process group, through the agent's one command runner
/// ([`sys::process`](crate::agent::sys::process)).
///
/// # Errors
/// An empty `argv`, or the program cannot start, fails, or times out.
pub async fn exec(
    argv: &[String],
    user: Option<&ScriptUser>,
    event: &Event,
) -> anyhow::Result<()> {
    let Some(program) = argv.first() else {
        bail!("the exec hook names no program");
    };
    let argv: Vec<String> = argv.iter().cloned().chain(event.args()).collect();
    crate::agent::sys::process::run(&argv, user, HOOK_TIMEOUT)
        .await
        .map_err(|e| anyhow!("{program}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::agent::alert::event::What;
    use crate::agent::alert::smtp::tests::serve;
    use crate::util::tls::test_ca::TestCa;

    fn event() -> Event {
        Event {
            cluster: "c".into(),
            host: "d1".into(),
            time: "2026-11-26T00:00:00Z".into(),
            what: What::Vrrp {
                instance: "VI_1".into(),
                state: "master".into(),
                priority: 120,
            },
        }
    }

    /// A one-shot SMTP relay that accepts everything: what the client
    /// sent.
    async fn smtp_sink(listener: TcpListener) -> String {
        let (stream, _) = listener.accept().await.unwrap();
        serve(stream, |l| {
            Some(match l {
                "QUIT" => "221 bye\r\n",
                l if l.starts_with("HELO") => "250-sink\r\n250 ok\r\n",
                _ => "250 ok\r\n",
            })
        })
        .await
    }

    #[tokio::test]
    async fn email_goes_through_an_smtp_dialogue() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = tokio::spawn(smtp_sink(listener));
        let email = Email::relay(
            vec!["ops@example.org".into(), "oncall@example.org".into()],
            "d1@example.org".into(),
            format!("127.0.0.1:{port}"),
            crate::inventory::Duration::from_secs(5),
        );
        smtp(&email, None, None, &event()).await.unwrap();
        let seen = sink.await.unwrap();
        assert!(seen.contains("MAIL FROM:<d1@example.org>\r\n"), "{seen}");
        assert!(seen.contains("RCPT TO:<oncall@example.org>\r\n"), "{seen}");
        assert!(
            seen.contains(
                "Subject: [c] d1: VRRP instance VI_1 is now MASTER\r\n"
            ),
            "{seen}"
        );
        assert!(seen.ends_with("QUIT\r\n"), "{seen}");
    }

    #[tokio::test]
    async fn webhook_posts_the_json() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            // Read until the JSON body has arrived whole.
            while !got.ends_with(b"}") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").await.unwrap();
            String::from_utf8(got).unwrap()
        });
        webhook(&format!("http://127.0.0.1:{port}/hook"), None, &event())
            .await
            .unwrap();
        let got = sink.await.unwrap();
        assert!(got.starts_with("POST /hook HTTP/1.0\r\n"), "{got}");
        assert!(
            got.contains("\"event\":\"vrrp\"")
                && got.contains("\"state\":\"master\""),
            "{got}"
        );
    }

    /// An injection that slipped past validation (the agent's own config
    /// built directly) is refused by the writer before it connects: the
    /// listening sink never sees a connection.
    #[tokio::test]
    async fn injected_fields_are_refused_before_anything_is_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let email = Email::relay(
            vec!["ops@example.org\r\nRCPT TO:<evil@example.net>".into()],
            "d1@example.org".into(),
            format!("127.0.0.1:{port}"),
            crate::inventory::Duration::from_secs(5),
        );
        let err =
            smtp(&email, None, None, &event()).await.unwrap_err().to_string();
        assert!(err.contains("email.to[0]") && !err.contains("evil"), "{err}");
        let url = format!("http://127.0.0.1:{port}/x\r\nX-Injected: yes");
        let err = webhook(&url, None, &event()).await.unwrap_err().to_string();
        assert!(err.contains("webhook") && !err.contains("Injected"), "{err}");
        let quiet = timeout(Duration::from_millis(200), listener.accept());
        assert!(quiet.await.is_err(), "something connected to the sink");
    }

    #[tokio::test]
    async fn a_hung_mail_server_never_blocks_the_sender() {
        // Accepts and never says a word.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let record = DeliveryRecord::default();
        let alerts = Alerts::start(
            Some(NotificationConfig {
                email: Some(Email::relay(
                    vec!["ops@example.org".into()],
                    "d1@example.org".into(),
                    format!("127.0.0.1:{port}"),
                    crate::inventory::Duration::from_secs(30),
                )),
                ..Default::default()
            }),
            record.clone(),
        );
        let start = Instant::now();
        for _ in 0..(QUEUE * 2) {
            alerts.send(event());
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        // The first event is with the hung server, QUEUE wait: the rest
        // were dropped, and counted.
        let dropped = record.lock().unwrap().dropped;
        assert!(dropped >= (QUEUE - 1) as u64, "{dropped}");
    }

    /// A failed webhook is logged and recorded once, its path and query
    /// behind the agent's marker; a delivered one is counted.
    #[tokio::test]
    async fn failures_are_recorded_redacted_and_successes_counted() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let record = DeliveryRecord::default();
        let config = NotificationConfig {
            webhook: Some(format!(
                "http://127.0.0.1:{port}/services/T0/XXXXSECRET?token=YYYY"
            )),
            ..Default::default()
        };
        deliver(&config, &event(), &record).await;
        let d = record.lock().unwrap().clone();
        assert_eq!((d.sent, d.failed), (0, 1));
        let failure = d.last_failure.unwrap();
        assert!(
            failure.starts_with(&format!(
                "webhook notification to http://127.0.0.1:{port}/(sensitive) \
                 failed: "
            )),
            "{failure}"
        );
        assert!(!failure.contains("SECRET") && !failure.contains("YYYY"));

        let exec = NotificationConfig {
            exec: Some(vec!["/bin/true".into()]),
            ..Default::default()
        };
        deliver(&exec, &event(), &record).await;
        assert_eq!(record.lock().unwrap().sent, 1);
    }

    #[tokio::test]
    async fn exec_hooks_get_the_arguments_and_their_failures_are_errors() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("args");
        let script = dir.join("hook.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" > {}\n", out.display()),
        )
        .unwrap();
        std::fs::set_permissions(
            &script,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let argv = [script.to_string_lossy().into_owned(), "--flag".into()];
        exec(&argv, None, &event()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "--flag vrrp VI_1 master 120\n"
        );
        assert!(exec(&["/bin/false".into()], None, &event()).await.is_err());
        assert!(exec(&[], None, &event()).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A one-shot https sink on 127.0.0.1: its port, and the request it
    /// read (`None` when the client gave up during the handshake).
    async fn https_sink(
        server: rustls::ServerConfig,
    ) -> (u16, tokio::task::JoinHandle<Option<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let sink = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.ok()?;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            while !got.ends_with(b"}") {
                let n = s.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").await.ok()?;
            s.shutdown().await.ok()?;
            Some(String::from_utf8(got).unwrap())
        });
        (port, sink)
    }

    /// Issue #21: an https webhook is POSTed over TLS to a server whose
    /// certificate chains to the CA given; an expired certificate, one
    /// for another name or one of another CA gets nothing, and the
    /// failure says why.
    #[tokio::test]
    async fn https_webhooks_are_verified_against_the_ca_given() {
        let ca = TestCa::new("test CA");
        let pem = ca.pem();
        let (port, sink) = https_sink(ca.server("127.0.0.1", false)).await;
        let url = format!("https://127.0.0.1:{port}/hook");
        webhook(&url, Some(&pem), &event()).await.unwrap();
        let got = sink.await.unwrap().expect("the request, over TLS");
        assert!(got.starts_with("POST /hook HTTP/1.0\r\n"), "{got}");
        assert!(got.contains("\"event\":\"vrrp\""), "{got}");

        let refused = [
            (ca.server("127.0.0.1", true), &pem, "certificate expired"),
            (ca.server("hooks.example.org", false), &pem, "not valid for name"),
            (
                ca.server("127.0.0.1", false),
                &TestCa::new("another CA").pem(),
                "UnknownIssuer",
            ),
        ];
        for (server, trusted, why) in refused {
            let (port, sink) = https_sink(server).await;
            let url = format!("https://127.0.0.1:{port}/hook");
            let err = webhook(&url, Some(trusted), &event()).await.unwrap_err();
            assert!(format!("{err:#}").contains(why), "{why}: {err:#}");
            assert_eq!(sink.await.unwrap(), None, "{why}: the sink got it");
        }
    }

    /// A webhook that answers with an endless line is read no further
    /// than [`STATUS_LINE_MAX`], and refused.
    #[tokio::test]
    async fn an_endless_answer_is_cut_and_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let line = vec![b'A'; 64 * 1024];
            for _ in 0..256 {
                if s.write_all(&line).await.is_err() {
                    return;
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/hook");
        let err = webhook(&url, None, &event()).await.unwrap_err();
        assert!(err.to_string().starts_with("answered `AAAA"), "{err}");
        assert!(err.to_string().len() < 200, "{err}");
    }
}
