//! Half-open TCP checks, the socket side: one raw IPv4 socket per agent
//! sends every probe's SYN and reads every answer ([`super::syn`] builds
//! and reads the bytes).
//!
//! One task owns the socket. Probes reach it on a channel; it sends each
//! SYN at once (a burst of probes that fall due together costs one wakeup)
//! and files it under its sequence number until the answer comes back.
//!
//! The source port is reserved by a bound TCP socket that never listens:
//! no local connection can take the port, and the kernel answers each
//! SYN-ACK to it with the RST that frees the server's half-open entry.
//! The source address is the one the kernel would pick for the server
//! (a UDP `connect`), remembered for [`SOURCE_TTL`] and forgotten when a
//! probe goes unanswered, so a change of route costs at most one probe.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::net::UdpSocket as AsyncSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

use super::syn::{self, Verdict};

/// How long a source address found for a server is used before the
/// kernel is asked again.
pub const SOURCE_TTL: Duration = Duration::from_secs(60);

/// How often probes nobody answered are forgotten.
const SWEEP: Duration = Duration::from_secs(1);

/// The answers the socket may hold unread: bursts of thousands of probes
/// answered within a millisecond must not overflow the default buffer.
const RECEIVE_BUFFER: usize = 4 << 20;

/// A handle on the prober task; clones share it, and the task ends when
/// the last one is dropped.
#[derive(Debug, Clone)]
pub struct Prober {
    requests: mpsc::UnboundedSender<Request>,
}

#[derive(Debug)]
struct Request {
    to: SocketAddrV4,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), String>>,
}

impl Prober {
    /// Open the raw socket, reserve the source port and start the task on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be opened: the agent lacks `CAP_NET_RAW`.
    pub fn start() -> io::Result<(Self, impl Future<Output = ()> + Send)> {
        let reserve = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        reserve.bind(&SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            0,
        )))?;
        let port = reserve
            .local_addr()?
            .as_socket_ipv4()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("reserved port is not IPv4"))?;
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))?;
        raw.set_nonblocking(true)?;
        raw.set_recv_buffer_size(RECEIVE_BUFFER)?;
        let program: Vec<SockFilter> = syn::filter(port)
            .iter()
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        raw.attach_filter(&program)?;
        let (requests, rx) = mpsc::unbounded_channel();
        let book = Book {
            port,
            seqs: Seqs::new(),
            pending: HashMap::new(),
            sources: HashMap::new(),
        };
        // tokio's UdpSocket only issues sendto/recvfrom, which suit a raw
        // socket as well, and registers the descriptor without `unsafe`.
        let raw = AsyncSocket::from_std(UdpSocket::from(raw))?;
        let task = serve(raw, reserve, book, rx);
        Ok((Self { requests }, task))
    }

    /// Whether `to` answers a SYN with a SYN-ACK within `limit`.
    ///
    /// # Errors
    /// Why not: refused (RST), no answer, no route, or the prober is gone.
    pub async fn probe(
        &self,
        to: SocketAddrV4,
        limit: Duration,
    ) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + limit;
        self.requests
            .send(Request { to, deadline, reply })
            .map_err(|_| "the half-open prober has stopped".to_owned())?;
        match timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the half-open prober has stopped".into()),
            Err(_) => Err(format!("SYN to {to}: no answer within {limit:?}")),
        }
    }
}

/// Sequence numbers for probes: hard to guess off-path, so a forged
/// SYN-ACK cannot pass a dead server as listening.
struct Seqs {
    key: RandomState,
    counter: u64,
}

impl Seqs {
    fn new() -> Self {
        Self { key: RandomState::new(), counter: 0 }
    }

    fn next(&mut self) -> u32 {
        self.counter += 1;
        self.key.hash_one(self.counter) as u32
    }
}

struct Pending {
    to: SocketAddrV4,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), String>>,
}

/// The task's state apart from the socket.
struct Book {
    port: u16,
    seqs: Seqs,
    pending: HashMap<u32, Pending>,
    sources: HashMap<Ipv4Addr, (Ipv4Addr, Instant)>,
}

impl Book {
    /// The address the kernel would send to `to` from.
    fn source(&mut self, to: Ipv4Addr, now: Instant) -> io::Result<Ipv4Addr> {
        if let Some(&(from, at)) = self.sources.get(&to)
            && now.duration_since(at) < SOURCE_TTL
        {
            return Ok(from);
        }
        let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        udp.connect((to, 9))?;
        let SocketAddr::V4(local) = udp.local_addr()? else {
            return Err(io::Error::other("an IPv6 source for an IPv4 server"));
        };
        self.sources.insert(to, (*local.ip(), now));
        Ok(*local.ip())
    }

    /// The SYN for `r`, filed as pending; `None` when `r` has been
    /// answered already (no route).
    fn prepare(&mut self, r: Request) -> Option<(u32, [u8; 20], SocketAddrV4)> {
        let now = Instant::now();
        let from = match self.source(*r.to.ip(), now) {
            Ok(ip) => SocketAddrV4::new(ip, self.port),
            Err(e) => {
                let _ = r.reply.send(Err(format!("SYN to {}: {e}", r.to)));
                return None;
            }
        };
        let mut seq = self.seqs.next();
        while self.pending.contains_key(&seq) {
            seq = self.seqs.next();
        }
        let segment = syn::segment(from, r.to, seq);
        let to = r.to;
        self.pending
            .insert(seq, Pending { to, deadline: r.deadline, reply: r.reply });
        Some((seq, segment, to))
    }

    /// Settle the probe `packet` answers, if it answers one.
    fn settle(&mut self, packet: &[u8]) {
        let Some(a) = syn::answer(packet) else { return };
        if a.to_port != self.port {
            return;
        }
        let Some(p) = self.pending.get(&a.seq) else { return };
        if p.to != a.from {
            return;
        }
        let p = self.pending.remove(&a.seq).expect("just found");
        let result = match a.verdict {
            Verdict::Listening => Ok(()),
            Verdict::Refused => Err(format!("SYN to {}: refused (RST)", p.to)),
        };
        let _ = p.reply.send(result);
    }

    /// Forget probes past their deadline, and where their servers' traffic
    /// came from: a route may have changed.
    fn sweep(&mut self, now: Instant) {
        let sources = &mut self.sources;
        self.pending.retain(|_, p| {
            let live = p.deadline > now;
            if !live {
                sources.remove(p.to.ip());
            }
            live
        });
    }
}

async fn serve(
    raw: AsyncSocket,
    _reserve: Socket,
    mut book: Book,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut sweep = tokio::time::interval(SWEEP);
    let mut buf = [0u8; 1500];
    loop {
        tokio::select! {
            r = requests.recv() => {
                let Some(r) = r else { return };
                send(&raw, &mut book, r).await;
                while let Ok(r) = requests.try_recv() {
                    send(&raw, &mut book, r).await;
                }
            }
            ready = raw.readable() => {
                if ready.is_err() {
                    return;
                }
                // Until it would block; a receive error (ICMP-reported,
                // say) is no answer, and what is queued behind it waits
                // for the next readiness.
                while let Ok(n) = raw.try_recv(&mut buf) {
                    book.settle(&buf[..n]);
                }
            }
            _ = sweep.tick() => book.sweep(Instant::now()),
        }
    }
}

/// Send `r`'s SYN, waiting for room in the socket's send buffer.
async fn send(raw: &AsyncSocket, book: &mut Book, r: Request) {
    let Some((seq, segment, to)) = book.prepare(r) else { return };
    // A raw socket takes the port of its destination as zero.
    let sent = raw.send_to(&segment, SocketAddrV4::new(*to.ip(), 0)).await;
    if let Err(e) = sent
        && let Some(p) = book.pending.remove(&seq)
    {
        let _ = p.reply.send(Err(format!("SYN to {to}: {e}")));
    }
}
