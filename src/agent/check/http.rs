//! The `http_get` check (keepalived's `HTTP_GET`, and over TLS its
//! `SSL_GET`): a GET judged by status, body digest and body pattern. Each
//! phase has its own timeout — a server that accepts and then never
//! answers fails the read timeout, as keepalived's `connect_timeout` does
//! for both; the TLS handshake counts with the connect.
//!
//! [`judge`] (is this HTTP answer what the check wants?) is pure; the rest
//! is a thin tokio adapter.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use md5::{Digest, Md5};
use regex::Regex;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::probe::{Misconfigured, Probe};
use super::tcp;
use crate::inventory::HttpCheck;
use crate::util::tls;

/// The most of an answer read: health pages are small, and a server that
/// streams forever must not hold the checker.
pub(crate) const MAX_ANSWER: usize = 1 << 20;

/// What an HTTP check wants.
#[derive(Debug, Clone)]
pub(crate) struct HttpWant {
    /// Path requested.
    pub(crate) path: String,
    /// `Host:` header; the address when absent.
    pub(crate) host: Option<String>,
    /// The status the answer must have.
    pub(crate) status: u16,
    /// Lower-case hex MD5 of the body (keepalived's `digest`).
    pub(crate) digest: Option<String>,
    /// A pattern the body must match.
    pub(crate) body: Option<Regex>,
}

/// An `http_get` check of `server` (its port unless `connect_port` says
/// otherwise), its body pattern compiled once and its TLS configured once.
pub(crate) fn arm(c: &HttpCheck, server: SocketAddr) -> Box<dyn Probe> {
    let port = c.connect_port.map_or(server.port(), |p| p.get() as u16);
    let tls = match &c.tls {
        None => None,
        Some(t) => match tls::check_config(t.ca.as_deref(), t.verify) {
            Ok(config) => Some(Tls {
                config,
                name: t.sni_name.clone().unwrap_or(server.ip().to_string()),
            }),
            // Validation parsed the CAs already: only a config file
            // written by hand gets here.
            Err(e) => return Box::new(Misconfigured(format!("tls: {e:#}"))),
        },
    };
    Box::new(Get {
        addr: SocketAddr::new(server.ip(), port),
        want: HttpWant {
            path: c.path.clone(),
            host: c.virtualhost.clone(),
            status: c.status_code,
            digest: c.digest.clone(),
            // Validation compiled it already; a pattern that does not
            // compile here simply does not constrain.
            body: c.body_regex.as_deref().and_then(|r| Regex::new(r).ok()),
        },
        tls,
        expiry: std::sync::Mutex::new(None),
    })
}

struct Get {
    addr: SocketAddr,
    want: HttpWant,
    tls: Option<Tls>,
    /// When the certificate the last handshake saw expires.
    expiry: std::sync::Mutex<Option<SystemTime>>,
}

/// How a check speaks TLS: whom it trusts (or not) and the server name
/// it sends (SNI, when a DNS name) and verifies.
struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: String,
}

impl Get {
    /// Keep the expiry of the server's own certificate, the chain's first.
    fn saw(&self, chain: Option<&[rustls::pki_types::CertificateDer<'_>]>) {
        let expiry =
            chain.and_then(|c| c.first()).and_then(|c| tls::not_after(c));
        *self.expiry.lock().unwrap_or_else(|p| p.into_inner()) = expiry;
    }
}

impl Probe for Get {
    fn certificate_expiry(&self) -> Option<SystemTime> {
        *self.expiry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let tcp = tcp::connect(self.addr, limit).await?;
            let answer = match &self.tls {
                None => get(tcp, self.addr, &self.want, limit).await?,
                Some(t) => {
                    let handshake =
                        tls::connect(tcp, &t.name, t.config.clone());
                    let stream = match timeout(limit, handshake).await {
                        Ok(Ok(s)) => {
                            self.saw(s.get_ref().1.peer_certificates());
                            s
                        }
                        // What a refused handshake saw is not kept: the
                        // failure says what was wrong with it.
                        Ok(Err(e)) => {
                            self.saw(None);
                            return Err(format!("{e:#}"));
                        }
                        Err(_) => {
                            self.saw(None);
                            return Err(format!(
                                "TLS handshake with {}: not within {limit:?}",
                                self.addr
                            ));
                        }
                    };
                    get(stream, self.addr, &self.want, limit).await?
                }
            };
            judge(&answer, &self.want)
        })
    }
}

/// GET `want.path` over `stream` (to `addr`) and read the answer, at most
/// [`MAX_ANSWER`] bytes within `limit`.
///
/// # Errors
/// Why no whole answer came.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    want: &HttpWant,
    limit: Duration,
) -> Result<Vec<u8>, String> {
    let host = want.host.clone().unwrap_or_else(|| addr.ip().to_string());
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lbdeploy-check\r\n\
         Connection: close\r\n\r\n",
        want.path
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        let read = (&mut stream)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut answer)
            .await;
        match read {
            // A TLS server that closes without close_notify (keepalived
            // does not insist either, unless `tls_compliant`) has still
            // said what it said.
            Err(e)
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && !answer.is_empty() => {}
            other => {
                other?;
            }
        }
        Ok::<_, std::io::Error>(answer)
    };
    match timeout(limit, exchange).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) => Err(format!("GET {} from {addr}: {e}", want.path)),
        Err(_) => Err(format!(
            "GET {} from {addr}: no complete answer within {limit:?}",
            want.path
        )),
    }
}

/// Whether `answer` (a whole HTTP/1.x response) is what `want` asks for.
///
/// # Errors
/// What is wrong with it.
pub(crate) fn judge(answer: &[u8], want: &HttpWant) -> Result<(), String> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let body = &answer[split + 4..];
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("the answer has no status line")?;
    if status != want.status {
        return Err(format!("status {status}, not {}", want.status));
    }
    if let Some(digest) = &want.digest {
        let got = crate::util::hex::hex(&Md5::digest(body));
        if !got.eq_ignore_ascii_case(digest) {
            return Err(format!("body digest {got}, not {digest}"));
        }
    }
    if let Some(re) = &want.body
        && !re.is_match(&String::from_utf8_lossy(body))
    {
        return Err(format!("body does not match /{re}/"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::HttpTls;

    fn want() -> HttpWant {
        HttpWant {
            path: "/".into(),
            host: None,
            status: 200,
            digest: None,
            body: None,
        }
    }

    const OK: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nrs01\n";

    #[test]
    fn status_digest_and_pattern() {
        assert_eq!(judge(OK, &want()), Ok(()));
        let w = HttpWant { status: 204, ..want() };
        assert_eq!(judge(OK, &w), Err("status 200, not 204".into()));
        // md5("rs01\n")
        let good = format!("{:x}", Md5::digest(b"rs01\n"));
        assert_eq!(
            judge(OK, &HttpWant { digest: Some(good), ..want() }),
            Ok(())
        );
        let bad = HttpWant { digest: Some("00".repeat(16)), ..want() };
        assert!(judge(OK, &bad).unwrap_err().starts_with("body digest"));
        let re =
            HttpWant { body: Some(Regex::new("^rs0[12]").unwrap()), ..want() };
        assert_eq!(judge(OK, &re), Ok(()));
        let re = HttpWant { body: Some(Regex::new("^web").unwrap()), ..want() };
        assert!(judge(OK, &re).is_err());
    }

    #[test]
    fn garbage_fails_with_a_reason() {
        assert!(judge(b"", &want()).is_err());
        assert!(judge(b"SSH-2.0-OpenSSH\r\n\r\n", &want()).is_err());
    }

    #[tokio::test]
    async fn tcp_refused_and_http_against_a_local_server() {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // First client: answer; second: accept and say nothing.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            s.write_all(OK).await.unwrap();
            drop(s);
            let (silent, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(silent);
        });
        let limit = Duration::from_millis(300);
        let get =
            Get { addr, want: want(), tls: None, expiry: Default::default() };
        assert_eq!(get.check(limit).await, Ok(()));
        let slow = get.check(limit).await.unwrap_err();
        assert!(slow.contains("no complete answer"), "{slow}");
        server.abort();
        let _ = server.await;
        // Nothing listens on the port any more.
        assert!(tcp::connect(addr, limit).await.is_err());
    }

    /// A TLS server on 127.0.0.1 answering every client with `OK`, as
    /// `server` says, until aborted.
    async fn https(
        server: rustls::ServerConfig,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut s) = acceptor.accept(tcp).await else { continue };
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(OK).await;
                let _ = s.shutdown().await;
            }
        });
        (addr, task)
    }

    fn check(tls: HttpTls) -> HttpCheck {
        let yaml = "{ path: / }";
        HttpCheck { tls: Some(tls), ..serde_yaml::from_str(yaml).unwrap() }
    }

    /// Issue #21: over TLS without `verify` any certificate does, as for
    /// keepalived's SSL_GET; with it, one that chains to the CA given,
    /// is valid now and names the server — else the reason is given.
    #[tokio::test]
    async fn https_verifies_only_when_asked() {
        use crate::util::tls::test_ca::TestCa;
        let ca = TestCa::new("check CA");
        let limit = Duration::from_secs(2);
        let verify = |name: Option<&str>| HttpTls {
            sni_name: name.map(Into::into),
            verify: true,
            ca: Some(ca.pem()),
            ..Default::default()
        };
        let cases = [
            (ca.server("127.0.0.1", false), HttpTls::default(), None),
            (ca.server("127.0.0.1", true), HttpTls::default(), None),
            (ca.server("127.0.0.1", false), verify(None), None),
            (
                ca.server("www.lab.test", false),
                verify(Some("www.lab.test")),
                None,
            ),
            (ca.server("127.0.0.1", true), verify(None), Some("expired")),
            (
                ca.server("www.lab.test", false),
                verify(None),
                Some("not valid for name"),
            ),
            (
                ca.server("www.lab.test", false),
                verify(Some("other.lab.test")),
                Some("not valid for name"),
            ),
        ];
        for (i, (server, tls, fails)) in cases.into_iter().enumerate() {
            let (addr, task) = https(server).await;
            let probe = arm(&check(tls), addr);
            let got = probe.check(limit).await;
            task.abort();
            let expiry = probe.certificate_expiry();
            match fails {
                None => {
                    assert_eq!(got, Ok(()), "case {i}");
                    // Case 1's certificate expired in 2021, unverified.
                    let expired = expiry.unwrap() < SystemTime::now();
                    assert_eq!(expired, i == 1, "case {i}: {expiry:?}");
                }
                Some(why) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(why), "case {i}: {err}");
                    assert_eq!(expiry, None, "case {i}");
                }
            }
        }
    }
}
