//! The `tcp` check: a full TCP connect, or with `half_open` a SYN whose
//! answer is read by the runner's one [`Prober`] (the socket side in
//! `half_open`, the bytes in [`super::syn`]).
//!
//! The connect here is also the first step of the `http_get` check.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::Instrument;

use super::half_open::Prober;
use super::probe::{Probe, Shared};
use crate::inventory::{Check, TcpCheck};

/// A `tcp` check of `server` (its port unless `connect_port` says
/// otherwise): half-open when asked and the runner has a prober, else a
/// full connect.
pub(crate) fn arm(
    c: &TcpCheck,
    server: SocketAddr,
    shared: &Shared,
) -> Box<dyn Probe> {
    let port = c.connect_port.map_or(server.port(), |p| p.get() as u16);
    let addr = SocketAddr::new(server.ip(), port);
    match (addr, shared.prober.as_ref().filter(|_| c.half_open)) {
        (SocketAddr::V4(to), Some(prober)) => {
            Box::new(HalfOpen { prober: prober.clone(), to })
        }
        // Validation refuses half-open checks of IPv6 servers.
        _ => Box::new(Connect(addr)),
    }
}

/// A TCP connection to `addr`, opened within `limit`.
///
/// # Errors
/// Why not: refused, timed out, unreachable.
pub(crate) async fn connect(
    addr: SocketAddr,
    limit: Duration,
) -> Result<TcpStream, String> {
    match timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
        Err(_) => Err(format!("connect to {addr}: no answer within {limit:?}")),
    }
}

/// A full connect, closed at once.
struct Connect(SocketAddr);

impl Probe for Connect {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { connect(self.0, limit).await.map(drop) })
    }
}

/// A SYN, answered by a SYN-ACK (up) or an RST (refused).
struct HalfOpen {
    prober: Prober,
    to: std::net::SocketAddrV4,
}

impl Probe for HalfOpen {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.prober.probe(self.to, limit))
    }
}

/// The prober every half-open check of `checks` shares, its task in
/// `tasks`; `None` when no check is half-open, or when the raw socket
/// cannot be opened (no `CAP_NET_RAW`): those checks then connect fully,
/// which tests the servers as well, at the higher cost.
pub(crate) fn prober<'a>(
    mut checks: impl Iterator<Item = &'a Check>,
    tasks: &mut JoinSet<()>,
) -> Option<Prober> {
    if !checks.any(|c| matches!(c, Check::Tcp(t) if t.half_open)) {
        return None;
    }
    match Prober::start() {
        Ok((prober, task)) => {
            tasks.spawn(task.in_current_span());
            Some(prober)
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "half-open checks need a raw socket ({e}); checking with a \
                 full TCP connect instead"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connect_to_a_closed_port_says_where_and_why() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = Duration::from_millis(300);
        assert!(connect(addr, limit).await.is_ok());
        drop(listener);
        let why = connect(addr, limit).await.unwrap_err();
        assert!(why.starts_with(&format!("connect to {addr}: ")), "{why}");
    }
}
