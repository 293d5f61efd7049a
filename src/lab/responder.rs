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
//! It is ours rather than busybox httpd for those behaviours. One thread
//! per connection: a lab serves a handful of test clients.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

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
    let addr = SocketAddr::new(listen, port);
    let listener =
        TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let behaviour = behaviour.clone();
        std::thread::spawn(move || {
            // A client that goes away mid-request is its own business.
            let _ = handle(stream, &behaviour);
        });
    }
    Ok(())
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

fn handle(stream: TcpStream, behaviour: &Behaviour) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(&stream);
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
        return keep_streaming(&stream, behaviour);
    }
    (&stream).write_all(&answer(&head, behaviour))?;
    (&stream).flush()
}

/// `/stream`: a head without a length, then the name once per
/// [`STREAM_EVERY`] until the client goes or [`STREAM_FOR`] is over.
fn keep_streaming(
    stream: &TcpStream,
    behaviour: &Behaviour,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.0 {} {}\r\nContent-Type: text/plain\r\n\
         Server: lbdeploy-lab\r\n\r\n",
        behaviour.status,
        reason(behaviour.status)
    );
    let mut out = stream;
    out.write_all(head.as_bytes())?;
    let line = format!("{}\n", behaviour.name);
    let end = std::time::Instant::now() + STREAM_FOR;
    while std::time::Instant::now() < end {
        out.write_all(line.as_bytes())?;
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

    #[test]
    fn serves_over_tcp() {
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
}
