//! The lab's HTTP responder: what a real server's web application is in the
//! lab (`lbdeploy lab responder`, hidden, started by `lab up`).
//!
//! Every request gets `200 OK` with the host's name as the body, so a test
//! sees which real server answered a request sent to the VIP; the health
//! check path `/lvstest.html` is one such request. A test can start one
//! that misbehaves the way a health checker must notice ([`Behaviour`]):
//! another status, another page (another name, so another digest), or an
//! answer that comes too late. It binds the wildcard
//! address: in Direct Routing the director forwards packets still addressed
//! to the VIP, which the real server holds on `lo`, and a socket bound to
//! the RIP alone would never see them.
//!
//! `GET /stream` is a long-lived connection instead: the name, then a
//! line every 50 ms for at most two minutes — the client
//! acknowledges each, so a connection the director sends to another real
//! server is reset within a line (which the continuity tests count).
//!
//! With `--tls-port` it serves the same over HTTPS too ([`serve_tls`]),
//! with the certificate and key files a test made.
//!
//! It is ours rather than busybox httpd for those behaviours. One thread
//! per connection: a lab serves a handful of test clients.
//!
//! With `--dns-port` it answers DNS over UDP too ([`serve_dns`], one
//! thread): every A (or AAAA) query with `--dns-answer` and every TXT
//! query with the host's name, whatever the name asked; never NXDOMAIN.
//! Its replies leave from the address the query was sent to
//! (`IP_PKTINFO`, `IPV6_PKTINFO`), so a query to the VIP is answered by the VIP, as Direct
//! Routing needs — a wildcard UDP socket would answer from the real
//! server's own address, which clients drop.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use nix::libc;
use nix::sys::socket::{
    self as nix_socket, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage, sockopt,
};

use crate::agent::check::dns::wire::{
    self, CLASS_IN, Data, Header, Record, TYPE_A, TYPE_AAAA, TYPE_TXT,
};

use super::holder;
use super::state::{ProcKind, ProcRecord};
use super::topology::LabHost;

/// Longest request head read; anything longer is answered as it stands.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How often `/stream` sends a line.
const STREAM_EVERY: Duration = Duration::from_millis(50);

/// How long `/stream` goes on at most: a stream nobody closes ends by
/// itself.
const STREAM_FOR: Duration = Duration::from_secs(120);

/// How the responder answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// The host name, which is the body.
    pub name: String,
    /// The status of every answer.
    pub status: u16,
    /// How long to wait before answering.
    pub delay: Duration,
}

/// Serve HTTP on `listen:port` as `behaviour` says, until killed.
///
/// # Errors
/// When the port cannot be bound; errors on single connections are dropped
/// with the connection.
pub fn serve(
    listen: IpAddr,
    port: u16,
    behaviour: Behaviour,
) -> anyhow::Result<()> {
    accept(bind(listen, port)?, behaviour, None);
    Ok(())
}

/// Serve HTTPS on `listen:port` in a thread of its own, as `behaviour`
/// says, with the certificate chain and key of the PEM files `cert` and
/// `key`: the server an `http_get` check with `tls` is tested against.
///
/// # Errors
/// When the files do not hold a chain and a key, or the port cannot be
/// bound.
pub fn serve_tls(
    listen: IpAddr,
    port: u16,
    cert: &Path,
    key: &Path,
    behaviour: Behaviour,
) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading {}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key")?;
    let listener = bind(listen, port)?;
    let config = std::sync::Arc::new(config);
    std::thread::spawn(move || accept(listener, behaviour, Some(config)));
    Ok(())
}

fn bind(listen: IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(listen, port);
    TcpListener::bind(addr).with_context(|| format!("binding {addr}"))
}

/// Answer every connection on a thread of its own, over TLS when `tls`
/// is given.
fn accept(
    listener: TcpListener,
    behaviour: Behaviour,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (behaviour, tls) = (behaviour.clone(), tls.clone());
        std::thread::spawn(move || {
            // A client that goes away mid-request is its own business.
            let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
            let _ = match tls {
                None => handle(stream, &behaviour),
                Some(config) => rustls::ServerConnection::new(config)
                    .map_err(std::io::Error::other)
                    .and_then(|conn| {
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        handle(&mut tls, &behaviour)?;
                        tls.conn.send_close_notify();
                        tls.flush()
                    }),
            };
        });
    }
}

/// The longest DNS query read: a header and one question (255-byte name),
/// with room for an EDNS record; a longer datagram is cut and then, not
/// decoding, left unanswered.
const MAX_QUERY: usize = 1024;

/// What the DNS side answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswers {
    /// The address every A query (IPv4) or AAAA query (IPv6) gets.
    pub address: Option<IpAddr>,
    /// The text every TXT query gets: the host's name.
    pub name: String,
}

/// Answer DNS over UDP on `listen:port` as `answers` says, in a thread of
/// its own, until the process ends. Returns once the port is bound, so a
/// caller that then listens for HTTP is ready for both when that port is.
///
/// # Errors
/// When the port cannot be bound.
pub fn serve_dns(
    listen: IpAddr,
    port: u16,
    answers: DnsAnswers,
) -> anyhow::Result<()> {
    let addr = SocketAddr::new(listen, port);
    let socket =
        UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))?;
    // The reply leaves from the address the query was sent to (the VIP
    // on the real server's `lo`), not the one the kernel would pick.
    match listen {
        IpAddr::V4(_) => {
            nix_socket::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)
                .context("IP_PKTINFO")?;
        }
        IpAddr::V6(_) => {
            nix_socket::setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
                .context("IPV6_RECVPKTINFO")?;
        }
    }
    std::thread::spawn(move || {
        loop {
            // A query that cannot be answered (a client gone, a full
            // buffer) is the client's business; the next one may be fine.
            // A socket that keeps failing must not spin a core, though.
            if answer_query(&socket, &answers).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    Ok(())
}

/// The address a query was sent to, as `sendmsg` takes it back for the
/// reply's source.
enum Source {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

impl Source {
    fn of(c: ControlMessageOwned) -> Option<Self> {
        match c {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                Some(Self::V4(libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: info.ipi_addr,
                    ipi_addr: libc::in_addr { s_addr: 0 },
                }))
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                Some(Self::V6(libc::in6_pktinfo {
                    ipi6_addr: info.ipi6_addr,
                    ipi6_ifindex: 0,
                }))
            }
            _ => None,
        }
    }

    fn control(&self) -> ControlMessage<'_> {
        match self {
            Self::V4(info) => ControlMessage::Ipv4PacketInfo(info),
            Self::V6(info) => ControlMessage::Ipv6PacketInfo(info),
        }
    }
}

/// Read one query and answer it from the address it was sent to (over
/// IPv6, an IPv4 query on a dual-stack socket included: the kernel gives
/// its address mapped, and takes it back so).
fn answer_query(
    socket: &UdpSocket,
    answers: &DnsAnswers,
) -> std::io::Result<()> {
    let mut buf = [0u8; MAX_QUERY];
    let (n, from, to) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsgs = nix::cmsg_space!(libc::in6_pktinfo);
        let msg = nix_socket::recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsgs),
            MsgFlags::empty(),
        )?;
        let to = msg.cmsgs()?.find_map(Source::of);
        (msg.bytes, msg.address, to)
    };
    let (Some(from), Some(to)) = (from, to) else { return Ok(()) };
    let Some(reply) = dns_reply(&buf[..n], answers) else { return Ok(()) };
    nix_socket::sendmsg(
        socket.as_raw_fd(),
        &[IoSlice::new(&reply)],
        &[to.control()],
        MsgFlags::empty(),
        Some(&from),
    )?;
    Ok(())
}

/// The reply to datagram `query`: its ID, question and RD copied,
/// authoritative, NOERROR, and `answers`' address (an A query, an IPv4
/// address; AAAA, IPv6) or name (TXT) as the one answer, owned by the name
/// asked; no answer for other types or classes. `None` for what is no
/// standard query with one question: a response, another opcode, bytes
/// that do not decode.
pub fn dns_reply(query: &[u8], answers: &DnsAnswers) -> Option<Vec<u8>> {
    let m = wire::decode(query).ok()?;
    let q =
        m.question.filter(|_| !m.header.response && m.header.opcode == 0)?;
    let data = match (q.qclass, q.qtype, answers.address) {
        (CLASS_IN, TYPE_A, Some(IpAddr::V4(a))) => Some(Data::A(a)),
        (CLASS_IN, TYPE_AAAA, Some(IpAddr::V6(a))) => Some(Data::Aaaa(a)),
        (CLASS_IN, TYPE_TXT, _) => {
            Some(Data::Txt(vec![answers.name.as_bytes().to_vec()]))
        }
        _ => None,
    };
    let answer = data.map(|data| Record {
        name: q.name.clone(),
        rtype: q.qtype,
        class: CLASS_IN,
        ttl: 0,
        data,
    });
    let header = Header {
        id: m.header.id,
        response: true,
        authoritative: true,
        recursion_desired: m.header.recursion_desired,
        ..Header::default()
    };
    Some(wire::encode(&header, Some(&q), answer.as_slice()))
}

/// Start the responder for `host` on `port` inside the host held by
/// `holder`, running this binary as bound into the host.
///
/// # Errors
/// When it cannot be started.
pub(super) fn start(
    host: &LabHost,
    holder: i32,
    port: u16,
    log: &Path,
) -> anyhow::Result<ProcRecord> {
    let bin = format!("{}/lbdeploy", holder::LAB_BIN);
    let listen = match host.address.addr {
        IpAddr::V4(_) => "0.0.0.0",
        IpAddr::V6(_) => "::",
    };
    let port_s = port.to_string();
    let args = [
        bin.as_str(),
        "lab",
        "responder",
        "--port",
        &port_s,
        "--name",
        &host.name,
        "--listen",
        listen,
    ];
    holder::spawn_in(host, holder, ProcKind::Responder { port }, &args, log)
}

fn handle(
    mut stream: impl Read + Write,
    behaviour: &Behaviour,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut stream);
    let mut head = String::new();
    // Read up to the blank line that ends the head; the body, if any, is
    // not needed to answer.
    while head.len() < MAX_HEAD {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    std::thread::sleep(behaviour.delay);
    if head.split_whitespace().nth(1) == Some("/stream") {
        return keep_streaming(&mut stream, behaviour);
    }
    stream.write_all(&answer(&head, behaviour))?;
    stream.flush()
}

/// `/stream`: a head without a length, then the name once per
/// [`STREAM_EVERY`] until the client goes or [`STREAM_FOR`] is over.
fn keep_streaming(
    out: &mut impl Write,
    behaviour: &Behaviour,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.0 {} {}\r\nContent-Type: text/plain\r\n\
         Server: lbdeploy-lab\r\n\r\n",
        behaviour.status,
        reason(behaviour.status)
    );
    out.write_all(head.as_bytes())?;
    let line = format!("{}\n", behaviour.name);
    let end = std::time::Instant::now() + STREAM_FOR;
    while std::time::Instant::now() < end {
        out.write_all(line.as_bytes())?;
        out.flush()?;
        std::thread::sleep(STREAM_EVERY);
    }
    Ok(())
}

/// The response to a request whose head is `head`: the behaviour's status
/// with its name and a newline, without the body for `HEAD`.
pub fn answer(head: &str, behaviour: &Behaviour) -> Vec<u8> {
    let body = format!("{}\n", behaviour.name);
    let is_head = head.split_whitespace().next() == Some("HEAD");
    let mut out = format!(
        "HTTP/1.0 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\nServer: lbdeploy-lab\r\n\r\n",
        behaviour.status,
        reason(behaviour.status),
        body.len()
    );
    if !is_head {
        out.push_str(&body);
    }
    out.into_bytes()
}

/// The reason phrase of the statuses tests use; clients read the code.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy application: `200 OK` at once.
    fn healthy(name: &str) -> Behaviour {
        Behaviour { name: name.to_owned(), status: 200, delay: Duration::ZERO }
    }

    #[test]
    fn answers_with_the_host_name() {
        let r = answer(
            "GET /lvstest.html HTTP/1.1\r\nHost: x\r\n",
            &healthy("rs01"),
        );
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 5\r\n"));
        assert!(r.ends_with("\r\n\r\nrs01\n"));
    }

    #[test]
    fn head_has_no_body() {
        let r =
            String::from_utf8(answer("HEAD / HTTP/1.1\r\n", &healthy("rs01")))
                .unwrap();
        assert!(r.ends_with("\r\n\r\n"), "{r}");
    }

    #[test]
    fn a_failing_application_answers_with_its_status() {
        let failing = Behaviour { status: 503, ..healthy("rs01") };
        let r =
            String::from_utf8(answer("GET / HTTP/1.1\r\n", &failing)).unwrap();
        assert!(r.starts_with("HTTP/1.0 503 Service Unavailable\r\n"), "{r}");
    }

    fn dns() -> DnsAnswers {
        DnsAnswers {
            address: Some("192.0.2.7".parse().unwrap()),
            name: "rs01".to_owned(),
        }
    }

    /// A query for `lab.test`, recursion desired (as dig asks).
    fn query(id: u16, qtype: u16) -> Vec<u8> {
        let name = wire::Name::from_labels([&b"lab"[..], b"test"]).unwrap();
        wire::query(id, &name, qtype)
    }

    #[test]
    fn dns_answers_a_with_the_address_and_txt_with_the_name() {
        let reply = dns_reply(&query(0x4242, TYPE_A), &dns()).unwrap();
        let m = wire::decode(&reply).unwrap();
        assert_eq!(m.header.id, 0x4242);
        assert!(m.header.response && m.header.recursion_desired);
        assert_eq!(m.header.rcode, 0);
        assert_eq!(m.question.unwrap().name.to_string(), "lab.test");
        assert_eq!(m.answers[0].data, Data::A("192.0.2.7".parse().unwrap()));
        let m = wire::decode(&dns_reply(&query(1, TYPE_TXT), &dns()).unwrap())
            .unwrap();
        assert_eq!(m.answers[0].data, Data::Txt(vec![b"rs01".to_vec()]));
        // NODATA for the rest, and for A when no address is set; never
        // NXDOMAIN.
        for (qtype, answers) in [
            (TYPE_AAAA, dns()),
            (wire::TYPE_SOA, dns()),
            (TYPE_A, DnsAnswers { address: None, ..dns() }),
        ] {
            let m =
                wire::decode(&dns_reply(&query(2, qtype), &answers).unwrap())
                    .unwrap();
            assert_eq!((m.header.rcode, m.answers.len()), (0, 0), "{qtype}");
        }
    }

    #[test]
    fn dns_leaves_responses_and_garbage_unanswered() {
        let reply = dns_reply(&query(3, TYPE_A), &dns()).unwrap();
        assert_eq!(dns_reply(&reply, &dns()), None, "a response");
        assert_eq!(dns_reply(b"\x00\x01", &dns()), None);
        let mut notify = query(3, TYPE_A);
        notify[2] |= 4 << 3; // opcode NOTIFY
        assert_eq!(dns_reply(&notify, &dns()), None);
    }

    #[test]
    fn dns_over_udp_on_loopback() {
        // serve_dns does not say which port 0 would bind: take a free one.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        serve_dns("127.0.0.1".parse().unwrap(), port, dns()).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        client.connect(("127.0.0.1", port)).unwrap();
        client.send(&query(9, TYPE_TXT)).unwrap();
        let mut buf = [0u8; 512];
        let n = client.recv(&mut buf).unwrap();
        let m = wire::decode(&buf[..n]).unwrap();
        assert_eq!(m.answers[0].data, Data::Txt(vec![b"rs01".to_vec()]));
    }

    #[test]
    fn serves_over_tcp() {
        use std::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            handle(s, &healthy("rs02")).unwrap();
        });
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        assert!(out.ends_with("rs02\n"), "{out}");
    }

    /// Over TLS, with the files a test CA wrote: the check that verifies
    /// against that CA gets the name.
    #[tokio::test]
    async fn serves_over_tls_from_pem_files() {
        use crate::inventory::{HttpCheck, HttpTls};
        use crate::util::tls::test_ca::TestCa;
        let dir = std::env::temp_dir()
            .join(format!("lbd-responder-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new("responder CA");
        let (cert, key) = ca.server_files(&dir, "rs02", "rs02.lab.test", false);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let localhost = IpAddr::from([127, 0, 0, 1]);
        serve_tls(localhost, port, &cert, &key, healthy("rs02")).unwrap();
        let check = HttpCheck {
            body_regex: Some("^rs02\n".into()),
            tls: Some(HttpTls {
                sni_name: Some("rs02.lab.test".into()),
                verify: true,
                ca: Some(ca.pem()),
                ..Default::default()
            }),
            ..serde_yaml::from_str("{ path: / }").unwrap()
        };
        let mut tasks = tokio::task::JoinSet::new();
        let shared = crate::agent::check::share(std::iter::empty(), &mut tasks);
        let check = crate::inventory::Check::HttpGet(check);
        let server = SocketAddr::new(localhost, port);
        let probe = crate::agent::check::arm(&check, server, &shared);
        assert_eq!(probe.check(Duration::from_secs(2)).await, Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
