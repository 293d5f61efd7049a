//! The lab responder's UDP and SMTP modes (`lbdeploy lab responder
//! --udp-port`, `--smtp-port`): what a real server's datagram service and
//! mail server are in the lab, so the `udp` and `smtp` checks have
//! something to judge, and a test something to break.
//!
//! UDP: every datagram is answered at once, with `--udp-answer`'s text or,
//! without it, with itself (an echo). SMTP: a greeting with
//! `--smtp-greeting`'s code (220 by default), `HELO`/`EHLO` answered with
//! `--smtp-helo`'s (250), `QUIT` with 221 and a close, anything else
//! 500. Both bind the address given, the wildcard by default: the checks
//! reach a real server at its own address, which it answers from. One
//! thread per mode, and per SMTP connection; what they read is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::Context;

/// The most of a datagram read; the lab's checks send a few bytes.
const MAX_DATAGRAM: usize = 2048;

/// The longest SMTP command line read (RFC 5321 §4.5.3.1.4: 512 octets);
/// past it the client is answered 500 and the rest of the line read as
/// the next.
const MAX_COMMAND: usize = 512;

/// How long an SMTP connection may sit idle before the responder hangs
/// up, so that forgotten clients do not pile up threads.
const IDLE: Duration = Duration::from_secs(10);

/// Answer every datagram on `listen:port` with `answer`, or echo it
/// without one, in a thread of its own until the process ends. Returns
/// once the port is bound.
///
/// # Errors
/// When the port cannot be bound.
pub fn serve_udp(
    listen: IpAddr,
    port: u16,
    answer: Option<String>,
) -> anyhow::Result<()> {
    let addr = SocketAddr::new(listen, port);
    let socket =
        UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let answered = socket.recv_from(&mut buf).and_then(|(n, from)| {
                let reply = answer.as_deref().map_or(&buf[..n], str::as_bytes);
                socket.send_to(reply, from)
            });
            // A client gone is its business; a failing socket must not
            // spin a core.
            if answered.is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    Ok(())
}

/// How the SMTP mode answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// The host's name, in the greeting and the HELO reply.
    pub name: String,
    /// The greeting's code: 220, or a refusal such as 554.
    pub greeting: u16,
    /// The code `HELO` and `EHLO` get: 250, or a refusal such as 502.
    pub helo: u16,
}

impl Smtp {
    /// The greeting line.
    pub fn greeting(&self) -> String {
        format!("{} {} ESMTP lbdeploy lab\r\n", self.greeting, self.name)
    }

    /// The reply to command line `line` (its line end included or not),
    /// and whether the connection then ends.
    pub fn answer(&self, line: &[u8]) -> (String, bool) {
        let verb: String = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(|b| char::from(b.to_ascii_uppercase()))
            .collect();
        match verb.as_str() {
            "HELO" | "EHLO" => {
                (format!("{} {}\r\n", self.helo, self.name), false)
            }
            "QUIT" => (format!("221 {} closing\r\n", self.name), true),
            _ => ("500 command not recognised\r\n".to_owned(), false),
        }
    }
}

/// Speak SMTP as `smtp` says on `listen:port`, in a thread of its own
/// (and one per connection) until the process ends. Returns once the port
/// is bound.
///
/// # Errors
/// When the port cannot be bound.
pub fn serve_smtp(listen: IpAddr, port: u16, smtp: Smtp) -> anyhow::Result<()> {
    let addr = SocketAddr::new(listen, port);
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("binding TCP {addr}"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let smtp = smtp.clone();
            // A client that goes away mid-dialogue ends its own thread.
            std::thread::spawn(move || drop(converse(stream, &smtp)));
        }
    });
    Ok(())
}

/// One SMTP connection: the greeting, then a reply per command line.
fn converse(stream: TcpStream, smtp: &Smtp) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut writer = stream.try_clone()?;
    writer.write_all(smtp.greeting().as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(MAX_COMMAND);
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_COMMAND as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let (reply, close) = smtp.answer(&line);
        writer.write_all(reply.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp() -> Smtp {
        Smtp { name: "rs01".into(), greeting: 220, helo: 250 }
    }

    #[test]
    fn smtp_answers_helo_ehlo_and_quit_and_refuses_the_rest() {
        assert_eq!(smtp().greeting(), "220 rs01 ESMTP lbdeploy lab\r\n");
        assert_eq!(
            smtp().answer(b"HELO lb\r\n"),
            ("250 rs01\r\n".into(), false)
        );
        assert_eq!(
            smtp().answer(b"ehlo lb\r\n"),
            ("250 rs01\r\n".into(), false)
        );
        assert_eq!(
            smtp().answer(b"QUIT\r\n"),
            ("221 rs01 closing\r\n".into(), true)
        );
        assert_eq!(
            smtp().answer(b"\xff\r\n").0,
            "500 command not recognised\r\n"
        );
        let refusing = Smtp { greeting: 554, helo: 502, ..smtp() };
        assert!(refusing.greeting().starts_with("554 "));
        assert_eq!(refusing.answer(b"HELO x").0, "502 rs01\r\n");
    }

    /// A free port on loopback for `serve_*`, which do not say which port
    /// 0 would bind.
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn udp_echoes_or_answers_over_loopback() {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        for (answer, want) in [(None, &b"ping"[..]), (Some("pong"), b"pong")] {
            let port = free_port();
            let lo = "127.0.0.1".parse().unwrap();
            serve_udp(lo, port, answer.map(str::to_owned)).unwrap();
            client.send_to(b"ping", ("127.0.0.1", port)).unwrap();
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
    }

    #[test]
    fn smtp_over_loopback() {
        let port = free_port();
        serve_smtp("127.0.0.1".parse().unwrap(), port, smtp()).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"HELO lb\r\nQUIT\r\n").unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert_eq!(
            all,
            "220 rs01 ESMTP lbdeploy lab\r\n250 rs01\r\n221 rs01 closing\r\n"
        );
    }
}
