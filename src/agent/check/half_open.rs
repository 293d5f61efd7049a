//! Half-open TCP checks, the socket side: one raw IPv4 socket per agent
//! sends every probe's SYN and reads every answer ([`super::syn`] builds
//! and reads the bytes).
//!
//! One task owns the socket. Probes reach it on a channel; it sends each
//! SYN at once (a burst of probes that fall due together costs one wakeup)
//! and files it under its sequence number until the answer comes back.
//! An unanswered SYN is sent again after 1 s, then 2 s, 4 s… until the
//! check's timeout, as the kernel retransmits a connect's SYN, so one lost
//! packet fails a half-open check no sooner than it fails a connect.
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

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::net::UdpSocket as AsyncSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

use super::syn::{self, Verdict};

/// How long a source address found for a server is used before the
/// kernel is asked again.
pub(crate) const SOURCE_TTL: Duration = Duration::from_secs(60);

/// How often unanswered probes are looked at: sent again, or forgotten
/// past their deadline.
const SWEEP: Duration = Duration::from_millis(100);

/// When an unanswered SYN is first sent again; each later wait doubles.
/// The kernel's initial retransmission timeout for a SYN (RFC 6298 §2.1).
const FIRST_RESEND: Duration = Duration::from_secs(1);

/// Room for answers not read yet, some thousands. The default (a few
/// hundred answers) already holds what one 10 ms tick of the runner sends
/// at 20,000 checks a second, but a stalled task could let more pile up;
/// an answer dropped for room would cost its check a resend.
const RECEIVE_BUFFER: usize = 4 << 20;

/// A handle on the prober task; clones share it, and the task ends when
/// the last one is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Prober {
    requests: mpsc::UnboundedSender<Request>,
}

#[derive(Debug)]
struct Request {
    to: SocketAddrV4,
    limit: Duration,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Why a probe failed that nothing answered.
fn unanswered(to: SocketAddrV4, limit: Duration) -> String {
    format!("SYN to {to}: no answer within {limit:?}")
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
        // Past net.core.rmem_max needs CAP_NET_ADMIN; without it the
        // kernel's cap is what there is.
        if setsockopt(&raw, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            raw.set_recv_buffer_size(RECEIVE_BUFFER)?;
        }
        let program: Vec<SockFilter> = syn::filter(port)
            .iter()
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        raw.attach_filter(&program)?;
        // Unbounded, yet bounded by the checks: each has at most one probe
        // waiting at a time.
        let (requests, rx) = mpsc::unbounded_channel();
        let book = Book::new(port);
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
        self.requests
            .send(Request { to, limit, reply })
            .map_err(|_| "the half-open prober has stopped".to_owned())?;
        // The prober answers at its deadline, which starts a little later
        // than this one; whichever comes first says the same.
        match timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the half-open prober has stopped".into()),
            Err(_) => Err(unanswered(to, limit)),
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

/// A SYN sent and not answered yet.
struct Pending {
    to: SocketAddrV4,
    segment: [u8; 20],
    limit: Duration,
    deadline: Instant,
    /// When it is sent again, and the wait after that.
    resend_at: Instant,
    backoff: Duration,
    reply: oneshot::Sender<Result<(), String>>,
}

/// A SYN to put on the wire: its sequence number, bytes and server.
type Syn = (u32, [u8; 20], SocketAddrV4);

/// The task's state apart from the socket.
struct Book {
    port: u16,
    seqs: Seqs,
    pending: HashMap<u32, Pending>,
    sources: HashMap<Ipv4Addr, (Ipv4Addr, Instant)>,
}

impl Book {
    fn new(port: u16) -> Self {
        Self {
            port,
            seqs: Seqs::new(),
            pending: HashMap::new(),
            sources: HashMap::new(),
        }
    }

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
    fn prepare(&mut self, r: Request, now: Instant) -> Option<Syn> {
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
        let pending = Pending {
            to,
            segment,
            limit: r.limit,
            deadline: now + r.limit,
            resend_at: now + FIRST_RESEND,
            backoff: FIRST_RESEND * 2,
            reply: r.reply,
        };
        self.pending.insert(seq, pending);
        Some((seq, segment, to))
    }

    /// Settle the probe `packet` answers, if it answers one.
    fn settle(&mut self, packet: &[u8]) {
        let Some(a) = syn::answer(packet) else { return };
        if a.to_port != self.port {
            return;
        }
        // Ours only if the server probed under that number answers.
        if self.pending.get(&a.seq).is_none_or(|p| p.to != a.from) {
            return;
        }
        let Some(p) = self.pending.remove(&a.seq) else { return };
        let result = match a.verdict {
            Verdict::Listening => Ok(()),
            Verdict::Refused => Err(format!("SYN to {}: refused (RST)", p.to)),
        };
        let _ = p.reply.send(result);
    }

    /// Fail probes past their deadline, and forget where their servers'
    /// traffic came from (a route may have changed); return the SYNs due
    /// to be sent again.
    fn sweep(&mut self, now: Instant) -> Vec<Syn> {
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for p in expired.iter().filter_map(|seq| self.pending.remove(seq)) {
            self.sources.remove(p.to.ip());
            let _ = p.reply.send(Err(unanswered(p.to, p.limit)));
        }
        let mut again = Vec::new();
        for (&seq, p) in &mut self.pending {
            if now >= p.resend_at {
                again.push((seq, p.segment, p.to));
                p.resend_at = now + p.backoff;
                p.backoff *= 2;
            }
        }
        again
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
                // This probe and every other one already queued.
                let now = Instant::now();
                let mut next = Some(r);
                while let Some(r) = next {
                    if let Some(syn) = book.prepare(r, now) {
                        send(&raw, &mut book, syn).await;
                    }
                    next = requests.try_recv().ok();
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
            _ = sweep.tick() => {
                for syn in book.sweep(Instant::now()) {
                    send(&raw, &mut book, syn).await;
                }
            }
        }
    }
}

/// Put a SYN on the wire, waiting for room in the socket's send buffer.
async fn send(raw: &AsyncSocket, book: &mut Book, (seq, segment, to): Syn) {
    // A raw socket takes the port of its destination as zero.
    let sent = raw.send_to(&segment, SocketAddrV4::new(*to.ip(), 0)).await;
    if let Err(e) = sent
        && let Some(p) = book.pending.remove(&seq)
    {
        let _ = p.reply.send(Err(format!("SYN to {to}: {e}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        limit: Duration,
    ) -> (Request, oneshot::Receiver<Result<(), String>>) {
        let (reply, answer) = oneshot::channel();
        let to = "127.0.0.1:80".parse().unwrap();
        (Request { to, limit, reply }, answer)
    }

    #[test]
    fn an_unanswered_syn_is_sent_again_after_1_2_4_s_until_the_deadline() {
        let mut book = Book::new(40000);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (r, mut answer) = request(Duration::from_secs(5));
        let syn = book.prepare(r, t0).unwrap();
        assert_eq!(&syn.1[0..2], &40000u16.to_be_bytes(), "from our port");
        assert!(book.sweep(at(999)).is_empty());
        assert_eq!(book.sweep(at(1_000)), vec![syn], "the same SYN again");
        assert!(book.sweep(at(2_999)).is_empty());
        assert_eq!(book.sweep(at(3_000)), vec![syn]);
        assert!(book.sweep(at(4_999)).is_empty());
        assert!(answer.try_recv().is_err(), "no verdict yet");
        // At the deadline it fails, and its source address is forgotten.
        assert!(book.sweep(at(5_000)).is_empty());
        assert!(book.pending.is_empty() && book.sources.is_empty());
        assert_eq!(
            answer.try_recv(),
            Ok(Err("SYN to 127.0.0.1:80: no answer within 5s".into()))
        );
    }

    #[test]
    fn an_answer_settles_its_own_probe_only() {
        let mut book = Book::new(40000);
        let (r, mut answer) = request(Duration::from_secs(1));
        let (seq, _, to) = book.prepare(r, Instant::now()).unwrap();
        // The server's SYN-ACK, IPv4 header and TCP header.
        let syn_ack = |from: SocketAddrV4, ack: u32| {
            let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
            p.extend(from.ip().octets());
            p.extend([127, 0, 0, 1]);
            p.extend(from.port().to_be_bytes());
            p.extend(40000u16.to_be_bytes());
            p.extend([0, 0, 0, 7]);
            p.extend(ack.to_be_bytes());
            p.extend([5 << 4, 0x12, 4, 0, 0, 0, 0, 0]);
            p
        };
        let elsewhere = SocketAddrV4::new(*to.ip(), 81);
        book.settle(&syn_ack(elsewhere, seq.wrapping_add(1)));
        book.settle(&syn_ack(to, seq.wrapping_add(2)));
        assert!(answer.try_recv().is_err(), "settled by a stranger");
        book.settle(&syn_ack(to, seq.wrapping_add(1)));
        assert_eq!(answer.try_recv(), Ok(Ok(())));
        assert!(book.pending.is_empty());
    }
}
