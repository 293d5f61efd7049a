//! The UDP exchange the `dns` and `udp` checks share: a socket
//! `connect`ed to the server, so the kernel hands it only the server's
//! datagrams and reports the server's ICMP errors on it; one datagram
//! sent; datagrams read until a deadline. What the datagrams mean is each
//! kind's business.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

/// The most bytes one datagram holds (a UDP length is 16 bits): a read
/// into this never cuts a datagram short.
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// A UDP socket connected to one real server, with the deadline of one
/// check.
pub(crate) struct Exchange {
    socket: UdpSocket,
    /// The server's address and port.
    to: SocketAddr,
    /// The check's kind, which starts its messages (`dns`, `udp`).
    kind: &'static str,
    /// What the check sends, for messages (`query`, `datagram`).
    sent: &'static str,
    /// When the check gives up, and the limit it was given.
    deadline: Instant,
    limit: Duration,
}

impl Exchange {
    /// A socket connected to `to` for a check of `kind` that sends a
    /// `sent` and gives up after `limit`. `IP_RECVERR` (`IPV6_RECVERR`)
    /// is set, as keepalived sets it: without it Linux reports only port
    /// and protocol unreachable on a UDP socket, not a host or network
    /// unreachable.
    ///
    /// # Errors
    /// When no socket can be opened or connected, as the check's failure.
    pub(crate) async fn open(
        kind: &'static str,
        sent: &'static str,
        to: SocketAddr,
        limit: Duration,
    ) -> Result<Self, String> {
        let deadline = Instant::now() + limit;
        let any: SocketAddr = match to {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let x = Self {
            socket: UdpSocket::bind(any)
                .await
                .map_err(|e| format!("{kind}: {sent} to {to}: {e}"))?,
            to,
            kind,
            sent,
            deadline,
            limit,
        };
        let recverr = match to {
            SocketAddr::V4(_) => {
                setsockopt(&x.socket, sockopt::Ipv4RecvErr, &true)
            }
            SocketAddr::V6(_) => {
                setsockopt(&x.socket, sockopt::Ipv6RecvErr, &true)
            }
        };
        // Without it the check still sees a closed port; a host that
        // does not answer ARP then times out instead.
        if let Err(e) = recverr {
            tracing::debug!(error = %e, "IP_RECVERR not set");
        }
        x.socket.connect(to).await.map_err(|e| x.failed(e))?;
        Ok(x)
    }

    /// Send `datagram` to the server.
    ///
    /// # Errors
    /// Why it could not be sent (an earlier ICMP error among them).
    pub(crate) async fn send(&self, datagram: &[u8]) -> Result<(), String> {
        self.socket.send(datagram).await.map(drop).map_err(|e| self.failed(e))
    }

    /// The next datagram from the server into `buf` (at least
    /// [`MAX_DATAGRAM`] long, so none is cut), its length; `None` once
    /// the deadline has passed.
    ///
    /// # Errors
    /// An ICMP error the server's host or a router sent back (port, host
    /// or network unreachable…), or a failing socket.
    pub(crate) async fn recv(
        &self,
        buf: &mut [u8],
    ) -> Result<Option<usize>, String> {
        match timeout_at(self.deadline, self.socket.recv(buf)).await {
            Ok(read) => read.map(Some).map_err(|e| self.failed(e)),
            Err(_) => Ok(None),
        }
    }

    /// The message of a timeout: `KIND: timeout after LIMIT`.
    pub(crate) fn timed_out(&self) -> String {
        format!("{}: timeout after {:?}", self.kind, self.limit)
    }

    /// What socket error `e` means for the check.
    fn failed(&self, e: io::Error) -> String {
        let (kind, sent, to) = (self.kind, self.sent, self.to);
        match e.kind() {
            io::ErrorKind::ConnectionRefused => format!(
                "{kind}: {to} refused the {sent} (nothing listens on UDP {})",
                to.port()
            ),
            _ => format!("{kind}: {sent} to {to}: {e}"),
        }
    }
}
