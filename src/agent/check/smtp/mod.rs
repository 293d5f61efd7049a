//! The `smtp` check (keepalived's `SMTP_CHECK`): connect, read the
//! greeting (220), send `HELO` (250), send `QUIT` (any reply). What
//! counts as up, and where it differs from keepalived, is said on
//! [`SmtpCheck`].
//!
//! [`reply`] reads the server's replies and [`judge`] decides what each
//! means at its stage of the dialogue; both are pure. The rest is a thin
//! tokio adapter over the connect the `tcp` check makes.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::probe::{Misconfigured, Probe};
use super::tcp;
use crate::inventory::{SmtpCheck, helo_name_problem};
use reply::Reply;

pub(crate) mod reply;

/// An `smtp` check of `server` (its port unless `connect_port` says
/// otherwise).
pub(crate) fn arm(c: &SmtpCheck, server: SocketAddr) -> Box<dyn Probe> {
    let port = c.connect_port.map_or(server.port(), |p| p.get() as u16);
    match helo_name_problem(&c.helo_name) {
        // Never sent: a name validation refuses may hold a line end.
        Some(why) => Box::new(Misconfigured(format!("smtp: helo_name {why}"))),
        None => Box::new(Smtp {
            to: SocketAddr::new(server.ip(), port),
            helo: format!("HELO {}\r\n", c.helo_name),
        }),
    }
}

struct Smtp {
    to: SocketAddr,
    /// The `HELO` command, line end included.
    helo: String,
}

impl Probe for Smtp {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(smtp(self.to, &self.helo, limit))
    }
}

/// Where in the dialogue a reply is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The server's greeting, on connecting: 220 (RFC 5321 §4.3.2).
    Greeting,
    /// The reply to `HELO`: 250.
    Helo,
    /// The reply to `QUIT`: any (keepalived reads a line and looks no
    /// further; 221 is what servers send).
    Quit,
}

/// Whether `reply`, read at `stage`, lets the dialogue go on.
///
/// # Errors
/// Why the server fails: a reply other than the one the stage wants.
pub(crate) fn judge(stage: Stage, reply: &Reply) -> Result<(), String> {
    match (stage, reply.code) {
        (Stage::Greeting, 220) | (Stage::Helo, 250) | (Stage::Quit, _) => {
            Ok(())
        }
        (Stage::Greeting, _) => {
            Err(format!("smtp: greeting `{reply}`, not 220"))
        }
        (Stage::Helo, _) => {
            Err(format!("smtp: HELO answered `{reply}`, not 250"))
        }
    }
}

/// The dialogue with `to`: connected within `limit`, then spoken within
/// `limit` again.
///
/// # Errors
/// Why the server fails.
async fn smtp(
    to: SocketAddr,
    helo: &str,
    limit: Duration,
) -> Result<(), String> {
    let stream = tcp::connect(to, limit).await?;
    match timeout(limit, dialogue(stream, helo)).await {
        Ok(done) => done,
        Err(_) => Err(format!("smtp: no complete dialogue within {limit:?}")),
    }
}

/// Greeting, `HELO`, `QUIT`, each reply judged.
async fn dialogue(mut stream: TcpStream, helo: &str) -> Result<(), String> {
    let mut replies = Replies::default();
    let mut next = async |stream: &mut TcpStream| {
        replies
            .next(stream)
            .await
            .map(|(r, _)| r)
            .map_err(|e| format!("smtp: {e}"))
    };
    let greeting = next(&mut stream).await?;
    judge(Stage::Greeting, &greeting)?;
    send(&mut stream, helo).await?;
    judge(Stage::Helo, &next(&mut stream).await?)?;
    send(&mut stream, "QUIT\r\n").await?;
    judge(Stage::Quit, &next(&mut stream).await?)
}

async fn send(stream: &mut TcpStream, line: &str) -> Result<(), String> {
    stream.write_all(line.as_bytes()).await.map_err(|e| format!("smtp: {e}"))
}

/// A server's replies, one after the other, from bytes read as they come:
/// the check's and the email notifications' one reader of SMTP.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// Read and not yet taken: less than [`reply::MAX_REPLY`] plus one
    /// read, since `reply::decode` refuses more without a whole reply.
    buf: Vec<u8>,
}

impl Replies {
    /// The next reply, and its raw lines (for an EHLO's extensions).
    ///
    /// # Errors
    /// Bytes that are no reply within the bounds, a read error, or the
    /// server closing first.
    pub(crate) async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(Reply, Vec<u8>), String> {
        let mut chunk = [0u8; 1024];
        loop {
            match reply::decode(&self.buf) {
                Ok(Some((reply, used))) => {
                    let raw = self.buf.drain(..used).collect();
                    return Ok((reply, raw));
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Whether bytes came that no reply has taken yet.
    pub(crate) fn pending(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    fn reply(code: u16, text: &str) -> Reply {
        Reply { code, text: text.to_owned() }
    }

    #[test]
    fn each_stage_wants_its_code() {
        assert_eq!(judge(Stage::Greeting, &reply(220, "mx")), Ok(()));
        assert_eq!(
            judge(Stage::Greeting, &reply(554, "no\x1b[2J")),
            Err("smtp: greeting `554 no\\x1b[2J`, not 220".into())
        );
        assert_eq!(judge(Stage::Helo, &reply(250, "hi")), Ok(()));
        assert_eq!(
            judge(Stage::Helo, &reply(502, "")),
            Err("smtp: HELO answered `502`, not 250".into())
        );
        assert_eq!(judge(Stage::Quit, &reply(500, "")), Ok(()));
    }

    #[test]
    fn a_bad_helo_name_is_never_sent() {
        let c: SmtpCheck =
            serde_yaml::from_str("{ helo_name: \"a\\r\\nRCPT\" }").unwrap();
        let server = "127.0.0.1:25".parse().unwrap();
        let probe = arm(&c, server);
        let why = futures_util::FutureExt::now_or_never(
            probe.check(Duration::from_secs(1)),
        );
        assert!(
            matches!(why, Some(Err(w)) if w.starts_with("smtp: helo_name"))
        );
    }

    /// A server on loopback that speaks `greeting` and answers each line
    /// it reads with the next of `answers`, and records what it read.
    async fn server(
        greeting: &'static str,
        answers: &'static [&'static str],
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            w.write_all(greeting.as_bytes()).await.unwrap();
            let mut lines = BufReader::new(r).lines();
            let mut read = Vec::new();
            for answer in answers {
                let Ok(Some(line)) = lines.next_line().await else { break };
                read.push(line);
                w.write_all(answer.as_bytes()).await.unwrap();
            }
            read
        });
        (addr, task)
    }

    const LIMIT: Duration = Duration::from_millis(500);

    #[tokio::test]
    async fn a_whole_dialogue_passes_with_multi_line_replies() {
        let (addr, task) = server(
            "220-mx.lab.test ESMTP\r\n220 ready\r\n",
            &["250-mx.lab.test\r\n250 SIZE\r\n", "221 bye\r\n"],
        )
        .await;
        assert_eq!(smtp(addr, "HELO lab.test\r\n", LIMIT).await, Ok(()));
        assert_eq!(task.await.unwrap(), ["HELO lab.test", "QUIT"]);
    }

    #[tokio::test]
    async fn a_refusing_banner_a_helo_refused_silence_and_a_close_fail() {
        let (addr, _) = server("554 no service\r\n", &[]).await;
        assert_eq!(
            smtp(addr, "HELO x\r\n", LIMIT).await,
            Err("smtp: greeting `554 no service`, not 220".into())
        );
        let (addr, _) = server("220 ok\r\n", &["500 what\r\n"]).await;
        assert_eq!(
            smtp(addr, "HELO x\r\n", LIMIT).await,
            Err("smtp: HELO answered `500 what`, not 250".into())
        );
        // Accepts and never greets: the dialogue's bound.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        assert_eq!(
            smtp(addr, "HELO x\r\n", LIMIT).await,
            Err("smtp: no complete dialogue within 500ms".into())
        );
        hold.abort();
        // No reply to QUIT: keepalived fails that too.
        let (addr, _) = server("220 ok\r\n", &["250 hi\r\n"]).await;
        let why = smtp(addr, "HELO x\r\n", LIMIT).await.unwrap_err();
        assert_eq!(why, "smtp: the server closed the connection");
    }
}
