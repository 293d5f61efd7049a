//! Prometheus metrics: `GET /metrics` on the address `agent.yml`'s
//! `metrics.listen` names, in the text exposition format.
//!
//! * `http` — the little HTTP/1.1 spoken (pure, every bound named);
//! * `exposition` — the text format written (pure);
//! * `render` — the metric families, from the agent's status: the one
//!   `lbdeploy agent status --json` prints, so both say the same (pure);
//! * this file — the listener, a thin adapter: it accepts, bounds each
//!   scrape, asks the serve loop for the status ([`Endpoint::next`]) and
//!   answers.
//!
//! A scrape never reaches the VRRP thread: the serve loop answers it from
//! the snapshots the instances publish, on the agent's main thread, and
//! the rendering happens in the scrape's own task. At most
//! [`SCRAPES_MAX`] scrapes run at once (more are answered 503 and
//! closed), each within [`SCRAPE_TIMEOUT`] from accept to the last byte.

mod exposition;
pub mod http;
pub mod render;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use exposition::valid_name;

use super::status::Status;

/// Scrapes served at once. Prometheus scrapes each target from one
/// connection at a time; a few more leave room for a second Prometheus
/// and a person with curl, and bound what a flood of connections costs.
pub const SCRAPES_MAX: usize = 4;

/// From accept to the last byte written: a client that sends its head
/// slowly, or reads the answer slowly, is cut off after this.
/// Prometheus's default scrape timeout is 10 s.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// A scrape waiting for the status: the serve loop sends it back.
pub type Scrape = oneshot::Sender<Status>;

/// The metrics endpoint of a running agent: the listener (when the
/// configuration asks for one) and the scrapes it hands the serve loop.
#[derive(Debug)]
pub struct Endpoint {
    listening: Option<(SocketAddr, JoinHandle<()>)>,
    scrape_tx: mpsc::Sender<Scrape>,
    scrape_rx: mpsc::Receiver<Scrape>,
}

impl Default for Endpoint {
    fn default() -> Self {
        let (scrape_tx, scrape_rx) = mpsc::channel(SCRAPES_MAX);
        Endpoint { listening: None, scrape_tx, scrape_rx }
    }
}

impl Endpoint {
    /// Listen on `want`, or stop listening when `None`. An unchanged
    /// address keeps its listener; a new one is bound before the old one
    /// is closed, so a failure leaves the endpoint as it was.
    ///
    /// # Errors
    /// When the address cannot be bound (in use, not this host's).
    pub async fn follow(
        &mut self,
        want: Option<SocketAddr>,
    ) -> anyhow::Result<()> {
        if self.listening.as_ref().map(|(a, _)| *a) == want {
            return Ok(());
        }
        let next = match want {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr).await.with_context(|| {
                        format!("metrics: cannot listen on {addr}")
                    })?;
                tracing::info!("metrics on http://{addr}{}", http::PATH);
                let tx = self.scrape_tx.clone();
                let task = tokio::spawn(accept(listener, tx).in_current_span());
                Some((addr, task))
            }
            None => None,
        };
        if let Some((_, old)) = std::mem::replace(&mut self.listening, next) {
            old.abort();
        }
        Ok(())
    }

    /// The next scrape waiting for a status; pending for ever when
    /// nothing listens.
    pub async fn next(&mut self) -> Scrape {
        // The endpoint holds a sender, so the channel never closes.
        self.scrape_rx.recv().await.expect("the endpoint keeps a sender")
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some((_, task)) = self.listening.take() {
            task.abort();
        }
    }
}

/// Accept scrapes until aborted.
async fn accept(listener: TcpListener, scrape_tx: mpsc::Sender<Scrape>) {
    let slots = Arc::new(Semaphore::new(SCRAPES_MAX));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                tracing::warn!("metrics: accepting: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Every slot busy: say so if the socket takes it at once,
            // never wait for it.
            let _ = stream.try_write(&http::refuse(http::Status::Busy));
            continue;
        };
        let tx = scrape_tx.clone();
        tokio::spawn(
            async move {
                let _slot = slot;
                let _ = tokio::time::timeout(SCRAPE_TIMEOUT, serve(stream, tx))
                    .await;
            }
            .in_current_span(),
        );
    }
}

/// One connection: read the head, judge it, answer, close.
async fn serve(mut stream: TcpStream, scrape_tx: mpsc::Sender<Scrape>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_len = loop {
        if let Some(end) = http::head_end(&buf) {
            break end;
        }
        if buf.len() > http::HEAD_MAX {
            break buf.len();
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let answer = match http::judge(&buf[..head_len]) {
        http::Verdict::Refuse(status) => http::refuse(status),
        verdict => {
            let (reply_tx, reply_rx) = oneshot::channel();
            if scrape_tx.send(reply_tx).await.is_err() {
                return;
            }
            let Ok(status) = reply_rx.await else { return };
            let body =
                render::render(&status, own_process(), host_generation());
            http::ok(&body, verdict == http::Verdict::MetricsHead)
        }
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
    // Closing with unread bytes in the socket would send a reset, which
    // can reach the client before it read the answer (a refused head
    // that was too long): read what it sent, within a bound, first.
    let mut drained = 0;
    while drained < DRAIN_MAX {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The most a refused client's leftover bytes are read before the
/// connection is closed anyway.
const DRAIN_MAX: usize = 64 * 1024;

/// The file where the host side of `apply` keeps the generation it last
/// confirmed (`host::layout`'s `generation`, which `plan`'s facts read
/// too; a test holds the two equal). The agent only reads it.
pub const GENERATION_FILE: &str = "/var/lib/lbdeploy/generation";

/// The most of [`GENERATION_FILE`] read: a number.
const GENERATION_MAX: u64 = 32;

/// The host's confirmed generation, when it has one.
fn host_generation() -> Option<u64> {
    let file = std::fs::File::open(GENERATION_FILE).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, GENERATION_MAX),
        &mut text,
    )
    .ok()?;
    render::generation(&text)
}

/// This process's CPU time and memory, from `/proc/self`.
fn own_process() -> Option<render::Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    render::process(&stat, &status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Mode;

    fn status() -> Status {
        Status::example(Mode::Realserver, serde_json::Value::Null)
    }

    /// A free loopback port, found by binding port 0 and letting go.
    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    async fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = s.read_to_end(&mut answer);
        tokio::time::timeout(SCRAPE_TIMEOUT * 2, read).await.unwrap().unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// The endpoint on a real loopback socket: a scrape gets the status
    /// rendered, everything else its refusal, slow clients hold at most
    /// `SCRAPES_MAX` slots (the next one is told 503 at once), and
    /// following `None` closes the port.
    #[tokio::test]
    async fn scrapes_are_served_bounded_and_refused() {
        let addr = free_port();
        let mut endpoint = Endpoint::default();
        endpoint.follow(Some(addr)).await.unwrap();
        // The serve loop's part: answer every scrape with the status.
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let answering = tokio::spawn(async move {
            loop {
                tokio::select! {
                    scrape = endpoint.next() => {
                        let _ = scrape.send(status());
                    }
                    _ = &mut stop_rx => return endpoint,
                }
            }
        });
        let got = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("\r\n\r\n# HELP lbdeploy_agent_build_info"));
        assert!(got.contains("\nlbdeploy_agent_healthy 1\n"), "{got}");
        let got = ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 405 "), "{got}");
        let got = ask(addr, b"GET /admin HTTP/1.1\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 404 "), "{got}");
        let huge =
            format!("GET /metrics HTTP/1.1\r\nX: {}", "y".repeat(20_000));
        let got = ask(addr, huge.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
        // Slow clients that never finish their head take every slot.
        let mut slow = Vec::new();
        for _ in 0..SCRAPES_MAX {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
            slow.push(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        // Nothing sent: a request left unread would make the close a
        // reset, which may overtake the 503 (the busy path reads nothing).
        let got = ask(addr, b"").await;
        assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // They are cut off at the scrape timeout, and the slots come back.
        let mut buf = [0u8; 16];
        let cut = tokio::time::timeout(
            SCRAPE_TIMEOUT + Duration::from_secs(2),
            slow[0].read(&mut buf),
        );
        assert_eq!(cut.await.expect("cut off in time").unwrap_or(0), 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = ask(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        stop_tx.send(()).unwrap();
        let mut endpoint = answering.await.unwrap();
        endpoint.follow(None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }

    #[tokio::test]
    async fn an_address_in_use_is_an_error_that_names_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let mut endpoint = Endpoint::default();
        let err = endpoint.follow(Some(addr)).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with(&format!("metrics: cannot listen on {addr}: ")),
            "{text}"
        );
    }
}
