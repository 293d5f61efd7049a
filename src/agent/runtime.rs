//! The foreground agent: `lbdeploy agent director|realserver --config FILE`.
//!
//! It owns the agent's life cycle and leaves the modes' work (VRRP, VIPs,
//! ARP suppression) to each mode's [`Worker`]:
//!
//! * load and validate the configuration before touching anything, so a
//!   bad file fails with its name and leaves no socket behind;
//! * serve [`super::status`] on `RUN/agent.sock`, and the same status
//!   as Prometheus metrics when the configuration asks
//!   ([`super::metrics`]);
//! * the worker converges the host to the configuration at start (a failure
//!   there ends the agent with 1) and after every reload;
//! * SIGHUP re-reads the configuration (a bad new file is reported and the
//!   old one kept); SIGTERM or SIGINT stops the worker, removes the socket
//!   and ends with 0;
//! * SIGUSR1 ends it the same way for a restart: the worker hands over
//!   ([`Worker::hand_over`]) instead of stopping — a director's master
//!   ends without resigning, so the agent restarted after it resumes as
//!   master and no backup takes over (`agent::mastership`). The
//!   supervisor's `agent restart` and the unit's `RestartKillSignal=`
//!   send it; whoever restarts the agent runs `agent cleanup` between the
//!   two, as after any exit.
//!
//! ```text
//! signals task ──ControlMsg──▶ serve loop ◀── accept on agent.sock
//!  (HUP/TERM/INT/USR1)          (owns Agent)  ──▶ one Status line per client
//! metrics scrapes ───Scrape───▶      │       ──▶ one Status per scrape
//! ```
//!
//! The serve loop owns all state and handles one event at a time; signals
//! reach it as messages, so tests drive it with a channel instead of
//! signals ([`serve`]).

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::metrics::Endpoint;
use super::paths;
use super::status::{self, Status};
use crate::inventory::Mode;
use crate::inventory::agent as config;
use crate::util::redact;

/// A configuration type that names the agent mode it configures and the
/// worker that carries it out, so one runtime serves both modes.
pub trait ModeConfig: DeserializeOwned + Send + Sync + 'static {
    /// The mode this configuration is for.
    const MODE: Mode;
    /// What does the mode's work.
    type Worker: Worker<Self>;

    /// This host's inventory name, on every log line the agent writes.
    fn host(&self) -> &str;

    /// What the configuration asks that the host refuses, beyond its
    /// syntax (the director's `script_security`); checked before the
    /// configuration is taken, at start and at every reload.
    ///
    /// # Errors
    /// What is refused, as one message.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// Where the configuration asks for Prometheus metrics; none by
    /// default.
    fn metrics(&self) -> Option<std::net::SocketAddr> {
        None
    }
}

/// A mode's work on the host, driven by the runtime: the runtime owns the
/// configuration's life cycle, the worker owns what it changes on the host
/// (and any tasks it spawns to keep it so).
pub trait Worker<C>: Default + Send {
    /// Make the host match `config`: at start, and after every reload that
    /// loaded. Must be idempotent.
    ///
    /// # Errors
    /// When the host cannot be made to match; at start this ends the agent.
    fn apply(
        &mut self,
        config: &C,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Undo what the worker did, as its configuration says (SIGTERM).
    fn stop(&mut self) -> impl Future<Output = ()> + Send;

    /// End for a restart (SIGUSR1): leave what the next agent takes over
    /// and `agent cleanup` removes meanwhile. A mode with nothing to hand
    /// over stops as on SIGTERM.
    fn hand_over(&mut self) -> impl Future<Output = ()> + Send {
        self.stop()
    }

    /// Whether the mode is healthy, and what it reports.
    fn report(&self) -> Report;
}

/// A worker's part of the status.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `false` makes `agent status` exit 3 and `apply` refuse to confirm.
    pub healthy: bool,
    /// Mode-specific details, as JSON.
    pub details: serde_json::Value,
    /// Why the mode cannot do what its configuration says (a data plane
    /// that refused it, a VIP missing from `lo`): each makes the agent
    /// degraded, hence not healthy.
    pub degraded: Vec<String>,
    /// The latest configuration has not been tried yet by every part of
    /// the mode, so `degraded` may still speak of the one before.
    pub settling: bool,
}

/// A configuration as loaded: the parsed value and what the status reports
/// about the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded<C> {
    /// The parsed configuration.
    pub config: C,
    /// Lowercase hex SHA-256 of the bytes parsed.
    pub sha256: String,
    /// When it was read.
    pub loaded_at: SystemTime,
}

/// Read, hash and parse a configuration file. `start` calls this too, to
/// refuse a bad file before anything is spawned.
///
/// # Errors
/// When the file cannot be read or is not a valid `C`; the error names
/// the file.
pub fn load<C: ModeConfig>(path: &Path) -> Result<Loaded<C>, config::Error> {
    let bytes = std::fs::read(path).map_err(|source| config::Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let config: C = config::parse(path, &text)?;
    config.check().map_err(|message| config::Error::Invalid {
        path: path.to_owned(),
        message,
    })?;
    Ok(Loaded {
        config,
        sha256: format!("{:x}", Sha256::digest(&bytes)),
        loaded_at: SystemTime::now(),
    })
}

/// What the serve loop is told from outside: the signals, as messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMsg {
    /// Re-read the configuration (SIGHUP).
    Reload,
    /// Stop serving and return (SIGTERM, SIGINT).
    Shutdown,
    /// Stop serving and return, for a restart (SIGUSR1).
    HandOver,
}

/// A running agent's state; the serve loop owns it.
#[derive(Debug)]
pub struct Agent<C: ModeConfig> {
    config_path: PathBuf,
    started_at: SystemTime,
    current: Loaded<C>,
    reloads: u64,
    last_reload_error: Option<String>,
    worker: C::Worker,
    metrics: Endpoint,
}

impl<C: ModeConfig> Agent<C> {
    /// An agent running `loaded`, read from `config_path`.
    pub fn new(config_path: PathBuf, loaded: Loaded<C>) -> Self {
        Agent {
            config_path,
            started_at: SystemTime::now(),
            current: loaded,
            reloads: 0,
            last_reload_error: None,
            worker: C::Worker::default(),
            metrics: Endpoint::default(),
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &C {
        &self.current.config
    }

    /// Converge the host to the configuration in effect.
    ///
    /// # Errors
    /// The worker's.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.worker.apply(&self.current.config).await?;
        self.metrics.follow(self.current.config.metrics()).await
    }

    /// Re-read the configuration file and converge to it. A file that does
    /// not load, or that the worker cannot carry out, is remembered for the
    /// status; a file that does not load leaves the current configuration
    /// in place. Either way the attempt is counted.
    pub async fn reload(&mut self) {
        self.reloads += 1;
        match load::<C>(&self.config_path) {
            Ok(loaded) => {
                tracing::info!(
                    "reloaded {} (sha256 {})",
                    self.config_path.display(),
                    loaded.sha256
                );
                self.current = loaded;
                self.last_reload_error = None;
                let config = &self.current.config;
                let applied = match self.worker.apply(config).await {
                    Ok(()) => self.metrics.follow(config.metrics()).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    // Secrets (a webhook's URL) redacted, in the log and
                    // in the status alike.
                    let e = redact::text(&format!("{e:#}")).into_owned();
                    tracing::warn!("cannot carry out the new config: {e}");
                    self.last_reload_error = Some(e);
                }
            }
            Err(e) => {
                let e = redact::text(&e.to_string()).into_owned();
                tracing::warn!("reload rejected, keeping the old config: {e}");
                self.last_reload_error = Some(e);
            }
        }
    }

    /// Undo the worker's changes (SIGTERM).
    pub async fn stop(&mut self) {
        self.worker.stop().await;
    }

    /// Leave the worker's holdings to the next agent (SIGUSR1).
    pub async fn hand_over(&mut self) {
        self.worker.hand_over().await;
    }

    /// The status this agent reports now.
    pub fn status(&self) -> Status {
        let time = |t| humantime::format_rfc3339_seconds(t).to_string();
        let report = self.worker.report();
        Status {
            mode: C::MODE,
            pid: std::process::id(),
            config: self.config_path.clone(),
            config_sha256: self.current.sha256.clone(),
            started_at: time(self.started_at),
            loaded_at: time(self.current.loaded_at),
            reloads: self.reloads,
            last_reload_error: self.last_reload_error.clone(),
            // A configuration loaded (or the agent would not run) and the
            // worker says its part is in order.
            healthy: report.healthy && report.degraded.is_empty(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            log_lines_dropped: crate::util::log::dropped_lines(),
            details: report.details,
            degraded: report.degraded,
            settling: report.settling,
        }
    }
}

/// Run the agent in the foreground until SIGTERM or SIGINT.
///
/// # Errors
/// A bad configuration (before anything is created), a run directory or
/// socket that cannot be made, or another agent already answering.
pub fn run<C: ModeConfig>(
    config_path: &Path,
    run_dir: &Path,
) -> anyhow::Result<()> {
    // `{e}` alone: the error already quotes its I/O cause, and anyhow's
    // chain would print it twice.
    let loaded = load::<C>(config_path).map_err(|e| anyhow!("{e}"))?;
    // Every line the agent logs names its host and mode; the tasks it
    // spawns carry this span on (`in_current_span`).
    let span = tracing::info_span!(
        "agent",
        host = %loaded.config.host(),
        mode = %C::MODE
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(
        async {
            // Handlers first: a SIGTERM right after the socket appears must
            // take the clean path, not the default action.
            let signals = Signals::install()?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(run_dir)
                .with_context(|| format!("creating {}", run_dir.display()))?;
            let socket = paths::socket(run_dir);
            let listener = bind(run_dir)?;
            let _socket = SocketGuard(socket.clone());
            let mut agent = Agent::new(config_path.to_owned(), loaded);
            if let Err(e) = agent.start().await {
                agent.stop().await;
                return Err(e.context(format!(
                    "cannot carry out {}",
                    config_path.display()
                )));
            }
            tracing::info!(
                "{} agent running, pid {}, config {} (sha256 {}), status on {}",
                C::MODE,
                std::process::id(),
                config_path.display(),
                agent.current.sha256,
                socket.display()
            );
            let (control_tx, control_rx) = mpsc::channel(8);
            tokio::spawn(signals.forward(control_tx));
            match serve(&mut agent, listener, control_rx).await {
                ControlMsg::HandOver => {
                    tracing::info!("{} agent stopping for a restart", C::MODE);
                    agent.hand_over().await;
                }
                _ => {
                    tracing::info!("{} agent stopping", C::MODE);
                    agent.stop().await;
                }
            }
            Ok(())
        }
        .instrument(span),
    )
}

/// Answer status requests and handle control messages until
/// [`ControlMsg::Shutdown`] or [`ControlMsg::HandOver`], which it returns,
/// or until every sender is gone (a shutdown).
pub async fn serve<C: ModeConfig>(
    agent: &mut Agent<C>,
    listener: UnixListener,
    mut control_rx: mpsc::Receiver<ControlMsg>,
) -> ControlMsg {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut stream, _)) => {
                    let line = status::encode(&agent.status());
                    // A slow client must not hold up signals or others.
                    tokio::spawn(async move {
                        let _ = stream.write_all(&line).await;
                        let _ = stream.shutdown().await;
                    });
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!("accepting a status client: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100))
                        .await;
                }
            },
            scrape = agent.metrics.next() => {
                // The scrape may have timed out meanwhile.
                let _ = scrape.send(agent.status());
            }
            msg = control_rx.recv() => match msg {
                Some(ControlMsg::Reload) => agent.reload().await,
                Some(end) => return end,
                None => return ControlMsg::Shutdown,
            },
        }
    }
}

/// Bind the status socket. A socket file nobody answers on is left over
/// from an agent that was killed and is replaced; one that answers belongs
/// to a running agent, and taking it over would orphan that agent.
fn bind(run_dir: &Path) -> anyhow::Result<UnixListener> {
    let socket = &paths::socket(run_dir);
    if std::fs::symlink_metadata(socket).is_ok() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            let who = match status::query(run_dir) {
                Ok(s) => format!(" ({} agent, pid {})", s.mode, s.pid),
                Err(_) => String::new(),
            };
            bail!(
                "another agent{who} already answers on {}; stop it first \
                 (`lbdeploy agent stop`)",
                socket.display()
            );
        }
        std::fs::remove_file(socket).with_context(|| {
            format!("removing the stale socket {}", socket.display())
        })?;
    }
    UnixListener::bind(socket)
        .with_context(|| format!("binding {}", socket.display()))
}

/// Removes the status socket when the agent returns, also on an error
/// path, so `status` says "not running" rather than timing out.
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The signals the agent handles, installed together.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
    hand_over: Signal,
}

impl Signals {
    fn install() -> io::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hand_over: signal(SignalKind::user_defined1())?,
        })
    }

    /// Turn signals into messages until the serve loop is gone.
    async fn forward(mut self, control_tx: mpsc::Sender<ControlMsg>) {
        loop {
            let msg = tokio::select! {
                _ = self.hangup.recv() => ControlMsg::Reload,
                _ = self.terminate.recv() => ControlMsg::Shutdown,
                _ = self.interrupt.recv() => ControlMsg::Shutdown,
                _ = self.hand_over.recv() => ControlMsg::HandOver,
            };
            if control_tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::agent::{DirectorConfig, RealserverConfig};

    /// A worker that changes nothing: it holds the configuration and
    /// reports healthy.
    #[derive(Debug, Default)]
    struct Idle;

    impl<C: Send + Sync> Worker<C> for Idle {
        async fn apply(&mut self, _: &C) -> anyhow::Result<()> {
            Ok(())
        }

        async fn stop(&mut self) {}

        fn report(&self) -> Report {
            Report { healthy: true, ..Report::default() }
        }
    }

    /// A real server's configuration driven by the [`Idle`] worker: these
    /// tests are about the life cycle, and the real worker would change the
    /// test machine's own sysctls and `lo`.
    #[derive(Debug, serde::Deserialize)]
    #[serde(transparent)]
    struct Inert(RealserverConfig);

    impl ModeConfig for Inert {
        const MODE: Mode = Mode::Realserver;
        type Worker = Idle;

        fn host(&self) -> &str {
            &self.0.host
        }
    }

    const RS: &str = "cluster: c\nhost: rs01\ninterface: eth0\n\
                      arp_suppression: sysctl\nvips: [192.0.2.1]\n";

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_hashes_the_bytes_and_names_a_bad_file() {
        let dir = temp_dir("load");
        let file = dir.join("agent.yml");
        std::fs::write(&file, RS).unwrap();
        let loaded = load::<RealserverConfig>(&file).unwrap();
        assert_eq!(loaded.sha256, format!("{:x}", Sha256::digest(RS)));
        assert_eq!(loaded.sha256.len(), 64);
        // A real server's file is not a director's.
        let err = load::<DirectorConfig>(&file).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        let err = load::<RealserverConfig>(&dir.join("missing.yml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.yml"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn reload_counts_attempts_and_keeps_the_old_config_on_error() {
        let dir = temp_dir("reload");
        let file = dir.join("agent.yml");
        std::fs::write(&file, RS).unwrap();
        let mut agent = Agent::new(file.clone(), load::<Inert>(&file).unwrap());
        let first = agent.status().config_sha256;
        std::fs::write(&file, RS.replace("rs01", "rs02")).unwrap();
        agent.reload().await;
        let s = agent.status();
        assert_eq!((s.reloads, s.last_reload_error.as_deref()), (1, None));
        assert_ne!(s.config_sha256, first);
        assert_eq!(agent.config().0.host, "rs02");
        std::fs::write(&file, "vips: not a list\n").unwrap();
        agent.reload().await;
        let bad = agent.status();
        assert_eq!(bad.reloads, 2);
        assert_eq!(bad.config_sha256, s.config_sha256);
        assert!(bad.healthy);
        assert!(bad.last_reload_error.unwrap().contains("agent.yml"));
        assert_eq!(agent.config().0.host, "rs02");
        // The parser quotes the value it refuses: a URL, token and all.
        let url = "http://h:81/services/T0/XXXXSECRET";
        let quoted = RS.replace(
            "arp_suppression: sysctl",
            &format!("arp_suppression: {url}"),
        );
        std::fs::write(&file, quoted).unwrap();
        agent.reload().await;
        let said = agent.status().last_reload_error.unwrap();
        assert!(said.contains("http://h:81/(sensitive)"), "{said}");
        assert!(!said.contains("SECRET"), "{said}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn serve_answers_status_and_stops_on_shutdown() {
        let dir = temp_dir("serve");
        let file = dir.join("agent.yml");
        std::fs::write(&file, RS).unwrap();
        let mut agent = Agent::new(file.clone(), load::<Inert>(&file).unwrap());
        let listener = bind(&dir).unwrap();
        let (control_tx, control_rx) = mpsc::channel(1);
        let client = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                let s = status::query(&dir).unwrap();
                control_tx.blocking_send(ControlMsg::Reload).unwrap();
                control_tx.blocking_send(ControlMsg::Shutdown).unwrap();
                s
            })
        };
        let end = serve(&mut agent, listener, control_rx).await;
        assert_eq!(end, ControlMsg::Shutdown);
        let seen = client.await.unwrap();
        assert_eq!(seen.mode, Mode::Realserver);
        assert_eq!(seen.pid, std::process::id());
        assert_eq!(agent.status().reloads, 1);
        // The listener went with `serve`; its socket file, left behind
        // (no guard here), is stale and the next agent takes it over.
        assert!(bind(&dir).is_ok());
        // SIGUSR1 ends it for a restart; every sender gone, for good.
        let (control_tx, control_rx) = mpsc::channel(1);
        control_tx.send(ControlMsg::HandOver).await.unwrap();
        let listener = bind(&dir).unwrap();
        let end = serve(&mut agent, listener, control_rx).await;
        assert_eq!(end, ControlMsg::HandOver);
        let (control_tx, control_rx) = mpsc::channel(1);
        drop(control_tx);
        let listener = bind(&dir).unwrap();
        let end = serve(&mut agent, listener, control_rx).await;
        assert_eq!(end, ControlMsg::Shutdown);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
