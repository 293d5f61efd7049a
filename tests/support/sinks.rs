//! Notification sinks inside a lab host: where a director's webhooks and
//! emails land in the tests.
//!
//! A socket belongs to the network namespace of the thread that created
//! it, for its whole life. So a short-lived thread enters the host's
//! namespace with setns(2), binds the listener and ends; the listener is
//! then served from ordinary threads of the test, and the test process
//! itself never leaves its own namespace. Dropping a sink stops it and
//! closes every socket, so nothing holds the lab's namespace once the test
//! is done.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a sink waits on a silent client before dropping it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a sink does with a connection.
#[derive(Debug, Clone)]
enum Kind {
    /// Reads one HTTP request, answers `204`, reports the request.
    Webhook,
    /// The same over TLS, as the server `config` says; a client that
    /// gives up during the handshake is reported as nothing.
    HttpsWebhook(Arc<rustls::ServerConfig>),
    /// Speaks SMTP as a relay that accepts everything, reports the
    /// dialogue.
    Smtp(SmtpTls),
    /// Accepts and never says a word: a mail server that hangs.
    Silent,
}

/// A listener in a lab host and what it received.
pub struct Sink {
    port: u16,
    received: mpsc::Receiver<String>,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
}

impl Sink {
    /// A webhook receiver on `port` in network namespace `netns`.
    pub fn webhook(netns: &str, port: u16) -> Self {
        Self::start(netns, port, Kind::Webhook)
    }

    /// An `https://` webhook receiver on `port` in `netns`, with the
    /// certificate and key of `config`.
    pub fn https_webhook(
        netns: &str,
        port: u16,
        config: rustls::ServerConfig,
    ) -> Self {
        Self::start(netns, port, Kind::HttpsWebhook(Arc::new(config)))
    }

    /// An SMTP relay on `port` in network namespace `netns`.
    pub fn smtp(netns: &str, port: u16) -> Self {
        Self::start(netns, port, Kind::Smtp(SmtpTls::None))
    }

    /// An SMTP relay on `port` in `netns` that protects its connections
    /// as `tls` says and accepts any AUTH PLAIN.
    pub fn smtp_tls(netns: &str, port: u16, tls: SmtpTls) -> Self {
        Self::start(netns, port, Kind::Smtp(tls))
    }

    /// A server on `port` in `netns` that accepts and never answers.
    pub fn silent(netns: &str, port: u16) -> Self {
        Self::start(netns, port, Kind::Silent)
    }

    /// The next message (a request, a dialogue, or for a silent sink the
    /// peer's address) for which `wanted` holds, skipping the others;
    /// `None` when none came within `bound`.
    pub fn next(
        &self,
        bound: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let until = Instant::now() + bound;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            match self.received.recv_timeout(left) {
                Ok(m) if wanted(&m) => return Some(m),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    fn start(netns: &str, port: u16, kind: Kind) -> Self {
        let listener = bind_in(netns, port);
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let (tx, received) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let server = std::thread::spawn(move || {
            serve(&listener, kind, &tx, &flag);
        });
        Self { port, received, stop, server: Some(server) }
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink(port {})", self.port)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Bind `0.0.0.0:port` inside the namespace bound at `/run/netns/NAME`.
fn bind_in(netns: &str, port: u16) -> TcpListener {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path)
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("entering {path}: {e}"));
        TcpListener::bind(("0.0.0.0", port))
            .unwrap_or_else(|e| panic!("binding port {port} in {path}: {e}"))
    })
    .join()
    .expect("the binding thread")
}

/// Accept until `stop`, polling so that the flag is seen; each client is
/// handled on a thread of its own, silent ones are held here.
fn serve(
    listener: &TcpListener,
    kind: Kind,
    tx: &mpsc::Sender<String>,
    stop: &AtomicBool,
) {
    let mut held = Vec::new();
    let mut clients = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
                match &kind {
                    Kind::Silent => {
                        let _ = tx.send(peer.to_string());
                        held.push(stream);
                    }
                    kind => {
                        let (tx, kind) = (tx.clone(), kind.clone());
                        clients.push(std::thread::spawn(move || {
                            let got = match kind {
                                Kind::Webhook => webhook(stream),
                                Kind::HttpsWebhook(config) => {
                                    rustls::ServerConnection::new(config)
                                        .map_err(std::io::Error::other)
                                        .and_then(|tls| {
                                            webhook(rustls::StreamOwned::new(
                                                tls, stream,
                                            ))
                                        })
                                }
                                Kind::Smtp(tls) => smtp(stream, &tls),
                                Kind::Silent => unreachable!("held above"),
                            };
                            if let Ok(m) = got {
                                let _ = tx.send(m);
                            }
                        }));
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    drop(held);
    for c in clients {
        let _ = c.join();
    }
}

/// Read one request (head, then `Content-Length` bytes of body), answer
/// `204`; the request as text.
fn webhook(stream: impl Read + Write) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(v) =
            line.to_ascii_lowercase().strip_prefix("content-length:")
        {
            length = v.trim().parse().unwrap_or(0);
        }
        request.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    request.push_str(&String::from_utf8_lossy(&body));
    let stream = reader.get_mut();
    stream.write_all(b"HTTP/1.0 204 No Content\r\n\r\n")?;
    stream.flush()?;
    Ok(request)
}

/// How an SMTP sink protects its connections.
#[derive(Debug, Clone)]
pub enum SmtpTls {
    /// In clear, as keepalived's relay.
    None,
    /// `STARTTLS` offered in the EHLO reply, then TLS as `config` says.
    /// (TLS from the first byte is the same TLS, tested in the unit
    /// tests.)
    Starttls(Arc<rustls::ServerConfig>),
}

/// A byte stream in either direction, boxed so that a dialogue can go on
/// over TLS after `STARTTLS` without a type per layer.
trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

/// TLS, as `config` says, over `stream`.
fn tls_over(
    config: Arc<rustls::ServerConfig>,
    stream: Box<dyn Duplex>,
) -> std::io::Result<Box<dyn Duplex>> {
    let conn =
        rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    Ok(Box::new(rustls::StreamOwned::new(conn, stream)))
}

/// Accept one message as a relay would; the client's side of the
/// dialogue, with `(TLS)` where TLS began and AUTH PLAIN's credentials
/// decoded as `AUTH PLAIN user:password`.
fn smtp(stream: TcpStream, tls: &SmtpTls) -> std::io::Result<String> {
    let starttls = match tls {
        SmtpTls::Starttls(config) => Some(config.clone()),
        SmtpTls::None => None,
    };
    relay(Box::new(stream), starttls, true, String::new())
}

/// The relay's side over `stream`: a greeting when `greet`, then each
/// command answered; `STARTTLS` offered while `starttls` is given, and
/// taken by going on over TLS.
fn relay(
    stream: Box<dyn Duplex>,
    starttls: Option<Arc<rustls::ServerConfig>>,
    greet: bool,
    mut seen: String,
) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream);
    let reply = |r: &mut BufReader<Box<dyn Duplex>>, text: &[u8]| {
        r.get_mut().write_all(text)?;
        r.get_mut().flush()
    };
    if greet {
        reply(&mut reader, b"220 sink ESMTP\r\n")?;
    }
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(seen);
        }
        let command = line.trim_end();
        match command.strip_prefix("AUTH PLAIN ") {
            Some(b64) => {
                seen.push_str(&format!("AUTH PLAIN {}\r\n", plain(b64)))
            }
            None => seen.push_str(&line),
        }
        match (in_data, command) {
            (true, ".") => {
                in_data = false;
                reply(&mut reader, b"250 queued\r\n")?;
            }
            (true, _) => {}
            (false, "DATA") => {
                in_data = true;
                reply(&mut reader, b"354 go on\r\n")?;
            }
            (false, "QUIT") => {
                reply(&mut reader, b"221 bye\r\n")?;
                return Ok(seen);
            }
            (false, "STARTTLS") if starttls.is_some() => {
                reply(&mut reader, b"220 go ahead\r\n")?;
                seen.push_str("(TLS)\r\n");
                let config = starttls.expect("offered");
                let stream = tls_over(config, reader.into_inner())?;
                return relay(stream, None, false, seen);
            }
            (false, c) if c.starts_with("EHLO") => {
                let offer: &[u8] = match starttls {
                    Some(_) => {
                        b"250-sink\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
                    }
                    None => b"250-sink\r\n250 AUTH PLAIN\r\n",
                };
                reply(&mut reader, offer)?;
            }
            (false, c) if c.starts_with("AUTH PLAIN ") => {
                reply(&mut reader, b"235 authenticated\r\n")?;
            }
            _ => reply(&mut reader, b"250 ok\r\n")?,
        }
    }
}

/// AUTH PLAIN's `\0user\0password` (RFC 4616) as `user:password`.
fn plain(b64: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut parts = text.split('\0').skip(1);
    format!(
        "{}:{}",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    )
}
