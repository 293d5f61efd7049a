//! BIRD 2's control socket (`bird -s PATH`): how the agent steers the BIRD
//! it runs as its child, as `birdc` does but without a process per
//! question. This module owns the connection ([`Birdc`]): connecting and
//! the greeting, the few requests the agent makes, one at a time, each
//! bounded in time, and the socket's errors, each naming the socket. It
//! exists apart from [`reply`] so that the grammar stays pure: what BIRD's
//! bytes mean, and what each request makes of its reply, is there, tested
//! on captured transcripts and fuzzed without a socket. What to announce,
//! BIRD's configuration file and BIRD's process belong to the rest of
//! `agent::bgp`.
//!
//! # Bounds
//!
//! Whatever holds the socket, it cannot make the agent allocate or wait
//! without end: every exchange ends within [`TIMEOUT`], a request longer
//! than BIRD reads ([`COMMAND_MAX`]) is not sent, and the replies are
//! bounded as [`reply`] says ([`reply::LINE_MAX`], [`reply::REPLY_MAX`]).

pub(crate) mod reply;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

pub use self::reply::{
    BfdSession, Configured, Prefix, Protocol, ReplyError, bgp_established,
};
use self::reply::{Decoder, LINE_MAX, Reply};

/// The longest request sent, in bytes, newline excluded. BIRD 2.0.12
/// reads its control socket into a 1024-byte buffer (`rbsize`,
/// sysdep/unix/main.c): a request line of 1024 bytes, newline included,
/// makes it drop the connection without a word (one of 1023 is answered).
pub const COMMAND_MAX: usize = 1022;

/// How long one exchange may take: connecting and the greeting, or a
/// request and its whole reply. BIRD answers the agent's requests in
/// milliseconds; one that takes seconds is hung, and the agent has VIPs
/// and health checks to look after meanwhile.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to BIRD failed. Each names the socket, so an operator
/// knows which BIRD (and which `-s`) to look at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens on the socket: BIRD not running, or started with
    /// another `-s`.
    #[error(
        "cannot connect to BIRD's control socket {} ({source}); \
         is bird running with -s {}?",
        path.display(),
        path.display()
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why connecting failed.
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("BIRD's control socket {}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// BIRD closed the connection (it exited, or refused a request).
    #[error("BIRD closed its control socket {} (did it exit?)", path.display())]
    Closed {
        /// The socket.
        path: PathBuf,
    },
    /// No complete reply within the timeout.
    #[error(
        "BIRD's control socket {}: no complete reply to `{request}` within \
         {} s; BIRD may be hung",
        path.display(),
        waited.as_secs_f64()
    )]
    Timeout {
        /// The socket.
        path: PathBuf,
        /// The request, or `connect` for the greeting.
        request: String,
        /// How long the client waited.
        waited: Duration,
    },
    /// An earlier request was cut off (timeout, error, or its future
    /// dropped) before its reply was read whole: what is left of that
    /// reply would be misread as the next one's.
    #[error(
        "BIRD's control socket {}: an earlier request was cut off mid-reply; \
         connect again",
        path.display()
    )]
    OutOfStep {
        /// The socket.
        path: PathBuf,
    },
    /// The reply was not what the request expects, or BIRD refused it.
    #[error("BIRD's control socket {}: `{request}`: {source}", path.display())]
    Reply {
        /// The socket.
        path: PathBuf,
        /// The request, or `connect` for the greeting.
        request: String,
        /// What was wrong.
        source: ReplyError,
    },
    /// A request or protocol name this client will not send.
    #[error("not sent to BIRD: {request:?} {reason}")]
    Request {
        /// The request, or the protocol name.
        request: String,
        /// Why not.
        reason: &'static str,
    },
}

// ===== the connection =====

/// A connection to BIRD's control socket: one request at a time, each
/// reply read whole before the next request is sent. Not shared: BIRD
/// serves every connection apart, so each task that asks opens its own.
///
/// # Errors
/// Every request fails the same ways besides its own: [`Error::Reply`]
/// with [`ReplyError::Bird`] when BIRD refuses it (8xxx, 9xxx; the
/// connection stays usable), [`Error::Reply`] with another
/// [`ReplyError`] for a reply of another shape, and any error of the
/// connection ([`Error::Timeout`], [`Error::Closed`], [`Error::Io`]), after
/// which it is of no further use ([`Error::OutOfStep`]).
#[derive(Debug)]
pub struct Birdc {
    path: PathBuf,
    stream: BufReader<UnixStream>,
    timeout: Duration,
    /// False from the moment a request is sent until its reply has been
    /// read whole: a request cut off leaves the rest of its reply in the
    /// socket, where it would be misread as the next one's.
    in_step: bool,
}

impl Birdc {
    /// Connect to the socket BIRD was started with (`bird -s PATH`) and
    /// read its greeting, within [`TIMEOUT`].
    ///
    /// # Errors
    /// [`Error::Connect`] when nothing listens there; a timeout, or a
    /// greeting other than `0001`, when something else does.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Birdc, Error> {
        Birdc::connect_within(path.as_ref(), TIMEOUT).await
    }

    /// [`Birdc::connect`] with every exchange bounded by `timeout`.
    async fn connect_within(
        path: &Path,
        timeout: Duration,
    ) -> Result<Birdc, Error> {
        let opened = tokio::time::timeout(timeout, Birdc::open(path, timeout));
        opened.await.unwrap_or_else(|_| {
            Err(Error::Timeout {
                path: path.to_owned(),
                request: "connect".to_owned(),
                waited: timeout,
            })
        })
    }

    async fn open(path: &Path, timeout: Duration) -> Result<Birdc, Error> {
        let stream = UnixStream::connect(path).await.map_err(|source| {
            Error::Connect { path: path.to_owned(), source }
        })?;
        let mut birdc = Birdc {
            path: path.to_owned(),
            stream: BufReader::new(stream),
            timeout,
            in_step: false,
        };
        let greeting = birdc.read_reply("connect").await?;
        reply::parse_greeting(&greeting)
            .map_err(|source| birdc.reply_error("connect", source))?;
        birdc.in_step = true;
        Ok(birdc)
    }

    /// `configure`: BIRD reads its configuration file again and applies it.
    ///
    /// # Errors
    /// [`ReplyError::Bird`] `8002` (`FILE:LINE:COLUMN message`) when the
    /// file has an error (BIRD keeps running the configuration it had);
    /// see [`Birdc`] for the rest.
    pub async fn configure(&mut self) -> Result<Configured, Error> {
        self.ask("configure", reply::parse_configure).await
    }

    /// `show protocols`: every protocol and its state.
    ///
    /// # Errors
    /// See [`Birdc`].
    pub async fn protocols(&mut self) -> Result<Vec<Protocol>, Error> {
        self.ask("show protocols", reply::parse_protocols).await
    }

    /// `show route export PROTOCOL`: the prefixes BIRD exports to that
    /// protocol now; none while its session is not established. For BGP
    /// that is what passed the export filter: BGP's own checks come after
    /// (a route whose next hop is the neighbour itself is listed here, yet
    /// withdrawn with an "Invalid NEXT_HOP" in BIRD's log); a VIP routed
    /// to a blackhole, announced with the agent's own address, passes them.
    ///
    /// # Errors
    /// [`Error::Request`] for a name BIRD cannot have given a protocol, or
    /// one too long to send ([`COMMAND_MAX`]); an unknown protocol is
    /// BIRD's `9001 syntax error`; see [`Birdc`] for the rest.
    pub async fn exported(
        &mut self,
        protocol: &str,
    ) -> Result<Vec<Prefix>, Error> {
        let request = format!("show route export {}", symbol(protocol)?);
        self.ask(&request, reply::parse_exported).await
    }

    /// `show bfd sessions`: the sessions of the one BFD protocol; none
    /// when no BFD protocol is running.
    ///
    /// # Errors
    /// With two BFD protocols running, BIRD's `9001 There are multiple BFD
    /// protocols running`; see [`Birdc`] for the rest.
    pub async fn bfd_sessions(&mut self) -> Result<Vec<BfdSession>, Error> {
        self.ask("show bfd sessions", reply::parse_bfd_sessions).await
    }

    /// Send `request` and make its reply a `T` with `parse`.
    async fn ask<T>(
        &mut self,
        request: &str,
        parse: impl FnOnce(&Reply) -> Result<T, ReplyError>,
    ) -> Result<T, Error> {
        let reply = self.exchange(request).await?;
        parse(&reply).map_err(|source| self.reply_error(request, source))
    }

    /// Send `request` and read its reply, whatever its code, within the
    /// timeout; the connection is out of step unless both were done.
    async fn exchange(&mut self, request: &str) -> Result<Reply, Error> {
        check_request(request)?;
        if !self.in_step {
            return Err(Error::OutOfStep { path: self.path.clone() });
        }
        self.in_step = false;
        let timeout = self.timeout;
        let Ok(reply) = tokio::time::timeout(timeout, self.send(request)).await
        else {
            return Err(Error::Timeout {
                path: self.path.clone(),
                request: request.to_owned(),
                waited: timeout,
            });
        };
        let reply = reply?;
        self.in_step = true;
        Ok(reply)
    }

    async fn send(&mut self, request: &str) -> Result<Reply, Error> {
        let line = [request.as_bytes(), b"\n"].concat();
        let written = self.stream.get_mut().write_all(&line).await;
        written.map_err(|source| self.io_error(source))?;
        self.read_reply(request).await
    }

    /// Read one reply, a line of at most [`LINE_MAX`] bytes at a time.
    async fn read_reply(&mut self, request: &str) -> Result<Reply, Error> {
        let mut decoder = Decoder::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            // One byte over the bound: a line that long is refused whole.
            let mut bounded = (&mut self.stream).take(LINE_MAX as u64 + 1);
            let read = bounded.read_until(b'\n', &mut line).await;
            let n = read.map_err(|source| self.io_error(source))?;
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if n <= LINE_MAX {
                return Err(Error::Closed { path: self.path.clone() });
            }
            match decoder.push(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(source) => return Err(self.reply_error(request, source)),
            }
        }
    }

    fn reply_error(&self, request: &str, source: ReplyError) -> Error {
        let (path, request) = (self.path.clone(), request.to_owned());
        Error::Reply { path, request, source }
    }

    /// An I/O error; a connection BIRD dropped is [`Error::Closed`].
    fn io_error(&self, source: io::Error) -> Error {
        let path = self.path.clone();
        match source.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                Error::Closed { path }
            }
            _ => Error::Io { path, source },
        }
    }
}

/// Refuse what BIRD would misread: BIRD reads one request per line (a
/// newline would send a second), as a C string (a NUL would cut it short),
/// answers an empty one with a syntax error, and drops the connection on
/// one longer than [`COMMAND_MAX`].
fn check_request(request: &str) -> Result<(), Error> {
    let reason = if request.trim().is_empty() {
        "is empty"
    } else if request.chars().any(char::is_control) {
        "holds a control character (BIRD reads one line, as a C string)"
    } else if request.len() > COMMAND_MAX {
        "is longer than the 1022 bytes BIRD reads (it drops the connection)"
    } else {
        return Ok(());
    };
    Err(Error::Request { request: request.to_owned(), reason })
}

/// `name` quoted as a BIRD symbol (`'vip'`: BIRD 2's syntax for a symbol
/// that could be a keyword, such as `all`), once it is one: letters,
/// digits and `_ . : -` are all a quoted symbol may hold (conf/cf-lex.l).
fn symbol(name: &str) -> Result<String, Error> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_.:-".contains(&b);
    if !name.is_empty() && name.bytes().all(allowed) {
        return Ok(format!("'{name}'"));
    }
    Err(Error::Request {
        request: name.to_owned(),
        reason: "is not a protocol name (letters, digits and _ . : - only)",
    })
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Instant;

    use tokio::net::UnixListener;

    use super::reply::tests::GREETING;
    use super::*;
    use crate::agent::sys::process::testing::scratch;

    #[test]
    fn requests_bird_would_misread_are_not_sent() {
        let refused = |request: &str| {
            matches!(check_request(request), Err(Error::Request { .. }))
        };
        for bad in ["", "  ", "show status\nshutdown", "show\0status", "a\tb"] {
            assert!(refused(bad), "{bad:?}");
        }
        assert!(refused(&"x".repeat(COMMAND_MAX + 1)));
        assert!(!refused(&"x".repeat(COMMAND_MAX)));
        assert!(!refused("show route export 'r1'"));

        assert_eq!(symbol("vip").unwrap(), "'vip'");
        assert_eq!(symbol("bgp_r1.v4:x-y").unwrap(), "'bgp_r1.v4:x-y'");
        for bad in ["", "a b", "x'y", "all\n", "\"r*\""] {
            assert!(
                matches!(symbol(bad), Err(Error::Request { .. })),
                "{bad:?}"
            );
        }
    }

    // ===== the connection, against stand-ins =====

    /// A stand-in for BIRD on a socket of its own: it greets whoever
    /// connects, then leaves the connection to `serve`.
    async fn fake<F, Fut>(name: &str, serve: F) -> PathBuf
    where
        F: FnOnce(UnixStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let path = scratch(name).join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(GREETING.as_bytes()).await.unwrap();
            serve(stream).await;
        });
        path
    }

    fn forget(path: &Path) {
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_hung_bird_times_out_and_leaves_the_connection_out_of_step() {
        let path = fake("birdc-hung", |mut stream| async move {
            let mut request = [0; 64];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(b"1000-BIRD 2.0.12\n").await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .await;
        let waited = Duration::from_millis(200);
        let mut birdc = Birdc::connect_within(&path, waited).await.unwrap();
        let started = Instant::now();
        let err = birdc.protocols().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        // The rest of that reply may yet come: no request is sent.
        let again = birdc.protocols().await.unwrap_err();
        assert!(matches!(again, Error::OutOfStep { .. }), "{again}");
        forget(&path);
    }

    #[tokio::test]
    async fn an_endless_line_is_refused_at_the_line_bound() {
        let path = fake("birdc-endless-line", |mut stream| async move {
            let chunk = [b'x'; 8192];
            let mut sent = stream.write_all(b"1002-").await;
            while sent.is_ok() {
                sent = stream.write_all(&chunk).await;
            }
        })
        .await;
        let mut birdc = Birdc::connect(&path).await.unwrap();
        let err = birdc.protocols().await.unwrap_err();
        let bounded = ReplyError::LineTooLong;
        assert!(
            matches!(&err, Error::Reply { source, .. } if *source == bounded)
        );
        forget(&path);
    }

    #[tokio::test]
    async fn an_endless_reply_is_refused_at_the_reply_bound() {
        let path = fake("birdc-endless-reply", |mut stream| async move {
            let routes = " 10.20.0.100/32 blackhole\n".repeat(1000);
            let mut sent = stream.write_all(b"1007-Table master4:\n").await;
            while sent.is_ok() {
                sent = stream.write_all(routes.as_bytes()).await;
            }
        })
        .await;
        let mut birdc = Birdc::connect(&path).await.unwrap();
        let err = birdc.exported("r1").await.unwrap_err();
        let bounded = ReplyError::ReplyTooLong;
        assert!(
            matches!(&err, Error::Reply { source, .. } if *source == bounded)
        );
        forget(&path);
    }

    #[tokio::test]
    async fn a_bird_that_goes_away_has_closed_the_socket() {
        let path = fake("birdc-closed", |stream| async move { drop(stream) });
        let path = path.await;
        let mut birdc = Birdc::connect(&path).await.unwrap();
        let err = birdc.protocols().await.unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{err}");
        forget(&path);
    }

    #[tokio::test]
    async fn only_birds_greeting_opens_a_connection() {
        let path = scratch("birdc-nobody").join("bird.ctl");
        let err = Birdc::connect(&path).await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&format!("-s {}", path.display())));
        forget(&path);

        let path = scratch("birdc-stranger").join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(b"0016 Access restricted\n").await;
        });
        let err = Birdc::connect(&path).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Reply {
                    source: ReplyError::Unexpected { code: 16, .. },
                    ..
                }
            ),
            "{err}"
        );
        forget(&path);
    }

    // ===== the connection, against a real BIRD =====

    const BIRD: &str = "/usr/sbin/bird";

    /// No neighbour and no kernel protocol: nothing touches an address or
    /// a route, so the root network namespace will do.
    const LIVE_CONF: &str = "router id 10.0.0.1;\nprotocol device {}\n\
        protocol static vip { ipv4; route 10.20.0.100/32 blackhole; }\n";

    /// A bird of one test's own, in the foreground as the test's child:
    /// killed, and its directory removed, when dropped, even when the test
    /// fails.
    struct BirdGuard {
        child: std::process::Child,
        dir: PathBuf,
    }

    impl BirdGuard {
        fn start(dir: PathBuf) -> BirdGuard {
            let child = std::process::Command::new(BIRD)
                .arg("-f")
                .arg("-c")
                .arg(dir.join("bird.conf"))
                .arg("-s")
                .arg(dir.join("bird.ctl"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start bird");
            BirdGuard { child, dir }
        }

        /// Connect as soon as bird has made its socket.
        async fn connect(&self) -> Birdc {
            let deadline = Instant::now() + TIMEOUT;
            loop {
                match Birdc::connect(self.dir.join("bird.ctl")).await {
                    Ok(birdc) => return birdc,
                    Err(Error::Connect { .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(err) => panic!("{err}"),
                }
            }
        }
    }

    impl Drop for BirdGuard {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn state(protocols: &[Protocol], name: &str) -> String {
        let protocol = protocols.iter().find(|p| p.name == name);
        protocol.map(|p| p.state.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_real_bird_is_steered_through_its_socket() {
        if !Path::new(BIRD).exists() || !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs {BIRD} and root");
            return;
        }
        let dir = scratch("birdc-live");
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, LIVE_CONF).unwrap();
        let bird = BirdGuard::start(dir);
        let mut birdc = bird.connect().await;

        let protocols = birdc.protocols().await.unwrap();
        let vip = protocols.iter().find(|p| p.name == "vip").expect("vip");
        assert_eq!(
            (&*vip.proto, &*vip.table, &*vip.state),
            ("Static", "master4", "up")
        );
        assert_eq!(birdc.exported("vip").await.unwrap(), []);
        assert_eq!(birdc.bfd_sessions().await.unwrap(), []);

        // What the file adds is in force once `configure` is done.
        let more = format!(
            "{LIVE_CONF}protocol static vip2 \
             {{ ipv4; route 10.20.0.101/32 blackhole; }}\n"
        );
        std::fs::write(&conf, more).unwrap();
        assert_eq!(birdc.configure().await.unwrap(), Configured::Done);
        assert_eq!(state(&birdc.protocols().await.unwrap(), "vip2"), "up");

        // Refusals, BIRD's or this client's, leave the connection usable.
        let long = birdc.exported(&"x".repeat(COMMAND_MAX)).await;
        assert!(matches!(long, Err(Error::Request { .. })), "{long:?}");
        let unknown = birdc.exported("nosuch").await;
        assert!(
            matches!(
                unknown,
                Err(Error::Reply {
                    source: ReplyError::Bird { code: 9001, .. },
                    ..
                })
            ),
            "{unknown:?}"
        );
        assert_eq!(state(&birdc.protocols().await.unwrap(), "vip"), "up");

        let broken = LIVE_CONF.replace("blackhole; }", "blackhole }");
        std::fs::write(&conf, broken).unwrap();
        let err = birdc.configure().await.unwrap_err();
        let Error::Reply { source: ReplyError::Bird { code, text }, .. } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(*code, 8002);
        let at = format!("{}:3:", conf.display());
        assert!(
            text.starts_with(&at) && text.contains("syntax error"),
            "{text}"
        );
        assert!(err.to_string().contains("bird.ctl"), "{err}");
        // BIRD runs on with the configuration it had, vip2 included.
        let protocols = birdc.protocols().await.unwrap();
        assert_eq!(
            (state(&protocols, "vip"), state(&protocols, "vip2")),
            ("up".to_owned(), "up".to_owned())
        );
    }
}
