//! BIRD as the director's child, steered to announce what the forwarding
//! loop wants.
//!
//! The loop hands over a [`Want`] (the configuration and the VIPs to
//! announce now) whenever it changes; this task writes `bird.conf` when
//! its text changes and has BIRD reconfigure, starts BIRD when it is not
//! running (again after a backoff when it died), and polls BIRD's
//! sessions for the status. BIRD runs through `agent tied`, so it dies
//! with the agent's thread that started it: a killed agent's BGP
//! sessions drop and the routers withdraw its routes.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::Signal;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use super::birdc::Birdc;
use super::conf;
use crate::agent::sys::net::Net;
use crate::agent::sys::process;
use crate::inventory::agent::BgpConfig;
use crate::util::{files, programs};

/// How often BIRD's sessions are read for the status.
const POLL: Duration = Duration::from_secs(1);

/// The longest wait before starting a BIRD that died again.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How long BIRD has to end on SIGTERM (it tells its peers first).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the forwarding loop wants announced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Want {
    /// This director's name, for the file's header.
    pub host: String,
    /// This director's address: the sessions' source.
    pub address: IpAddr,
    /// The BGP settings.
    pub bgp: BgpConfig,
    /// Every VIP announced over BGP.
    pub vips: BTreeSet<IpAddr>,
    /// Those to announce now.
    pub announced: BTreeSet<IpAddr>,
}

/// BGP as the director's status shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BgpStatus {
    /// Whether BIRD runs.
    pub running: bool,
    /// Every VIP announced over BGP.
    pub vips: Vec<IpAddr>,
    /// Those announced now.
    pub announced: Vec<IpAddr>,
    /// Each peer's session: its BGP state and whether it is up.
    pub sessions: Vec<Session>,
    /// The last failure to run or steer BIRD, until it works again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One BGP session as BIRD reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// The BIRD protocol's name (`peer_ADDRESS`).
    pub name: String,
    /// The protocol's state (`up`, `start`, …).
    pub state: String,
    /// BIRD's detail: the BGP state, `Established` once up.
    pub info: String,
    /// Whether the session is up: `info`'s BGP state read once, here, so
    /// that the status's readers need not know BIRD's words.
    pub established: bool,
    /// What BIRD exports to the peer now (`VIP/32`): the announcement
    /// as the session carries it, not as the agent asked.
    pub exported: Vec<String>,
    /// The BFD session with the peer (`Up`, `Down`, `Init`), when BFD is
    /// on and BIRD has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
}

/// The running speaker.
#[derive(Debug)]
pub(crate) struct Speaker {
    tx: watch::Sender<Option<Want>>,
    status: Arc<Mutex<BgpStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Speaker {
    /// Start the task; BIRD starts with the first [`Want`]. Its files
    /// live in `run_dir`.
    pub(crate) fn spawn(run_dir: &Path) -> Self {
        let (tx, rx) = watch::channel(None);
        let status = Arc::new(Mutex::new(BgpStatus::default()));
        let files = Files::in_dir(run_dir);
        let task = tokio::spawn(run(rx, files, status.clone()));
        Speaker { tx, status, task }
    }

    /// Announce what `want` says from now on.
    pub(crate) fn want(&self, want: Want) {
        self.tx.send_if_modified(|w| {
            let changed = w.as_ref() != Some(&want);
            *w = Some(want);
            changed
        });
    }

    /// What BIRD is doing, as last seen.
    pub(crate) fn status(&self) -> BgpStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stop BIRD (its peers are told) and the task: the channel's end
    /// is the task's.
    pub(crate) async fn stop(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// BIRD's files in the agent's runtime directory.
#[derive(Debug, Clone)]
struct Files {
    conf: PathBuf,
    socket: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Self {
        Files { conf: dir.join("bird.conf"), socket: dir.join("bird.ctl") }
    }
}

/// Everything the task owns.
struct Task {
    files: Files,
    status: Arc<Mutex<BgpStatus>>,
    bird: Option<Child>,
    /// The text of `bird.conf` as last written.
    written: Option<String>,
    /// When BIRD may be started again after it died, and the next wait.
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
    /// The VIPs whose local blackhole route is in place.
    routes: BTreeSet<IpAddr>,
}

async fn run(
    mut rx: watch::Receiver<Option<Want>>,
    files: Files,
    status: Arc<Mutex<BgpStatus>>,
) {
    let mut t = Task {
        files,
        status,
        bird: None,
        written: None,
        retry_at: None,
        backoff: Duration::from_secs(1),
        last_error: None,
        routes: BTreeSet::new(),
    };
    let mut poll = tokio::time::interval(POLL);
    loop {
        let retry_at = t.retry_at;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { break },
            exit = wait(&mut t.bird) => t.died(exit),
            _ = poll.tick() => {
                let peers: Vec<IpAddr> = rx.borrow().iter()
                    .flat_map(|w| w.bgp.peers.iter().map(|p| p.address))
                    .collect();
                t.poll(&peers).await;
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)),
                if retry_at.is_some() => t.retry_at = None,
        }
        // Nothing until the loop's first reconcile.
        let want = rx.borrow_and_update().clone();
        if let Some(w) = want {
            t.converge(&w).await;
        }
    }
    t.stop_bird().await;
    t.blackholes(&BTreeSet::new()).await;
}

/// The exit of BIRD if it runs; never otherwise.
async fn wait(
    bird: &mut Option<Child>,
) -> std::io::Result<std::process::ExitStatus> {
    match bird {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

impl Task {
    /// Write the file when its text changed, start BIRD when it is not
    /// running and may be, else have it reconfigure.
    async fn converge(&mut self, want: &Want) {
        self.blackholes(&want.vips).await;
        let text = conf::render(
            &want.host,
            &want.bgp,
            want.address,
            &want.vips,
            &want.announced,
        );
        let changed = self.written.as_ref() != Some(&text);
        if changed {
            // 0600: the file holds the peers' passwords.
            if let Err(e) =
                files::write_atomic(&self.files.conf, text.as_bytes(), 0o600)
            {
                self.fail(format!("{e:#}"));
                return;
            }
            self.written = Some(text);
        }
        if self.bird.is_none() {
            if self.retry_at.is_none() {
                self.start();
            }
        } else if changed {
            self.reconfigure().await;
        }
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.vips = want.vips.iter().copied().collect();
        s.announced = want.announced.iter().copied().collect();
        s.running = self.bird.is_some();
        s.last_error = self.last_error.clone();
    }

    /// Make the VIPs with a local blackhole route `vips` (listed in the
    /// holdings file, which `agent cleanup` reads, before any is added).
    async fn blackholes(&mut self, vips: &BTreeSet<IpAddr>) {
        if *vips == self.routes {
            return;
        }
        let net = match Net::connect() {
            Ok(n) => n,
            Err(e) => return self.fail(format!("opening rtnetlink: {e}")),
        };
        let changes: Vec<(IpAddr, bool)> = vips
            .difference(&self.routes)
            .map(|ip| (*ip, true))
            .chain(self.routes.difference(vips).map(|ip| (*ip, false)))
            .collect();
        for (ip, on) in changes {
            match net.blackhole(ip, on).await {
                Ok(_) if on => {
                    self.routes.insert(ip);
                }
                Ok(_) => {
                    self.routes.remove(&ip);
                }
                Err(e) => self.fail(e.to_string()),
            }
        }
    }

    fn start(&mut self) {
        let Some(bird) = bird_program() else {
            self.fail("bird is not installed (apt-get install bird2)".into());
            self.retry_at = Some(Instant::now() + BACKOFF_MAX);
            return;
        };
        let mut command = Command::new("/proc/self/exe");
        command
            .args(["agent", "tied", "--parent"])
            .arg(std::process::id().to_string())
            .arg("--")
            .arg(bird)
            .arg("-f")
            .arg("-c")
            .arg(&self.files.conf)
            .arg("-s")
            .arg(&self.files.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match command.spawn() {
            Ok(mut child) => {
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(log_lines(stderr));
                }
                tracing::info!(
                    "bgp: BIRD started (pid {})",
                    child.id().unwrap_or(0)
                );
                self.bird = Some(child);
                self.last_error = None;
            }
            Err(e) => {
                self.fail(format!("starting BIRD: {e}"));
                self.retry_at = Some(Instant::now() + self.backoff);
            }
        }
    }

    /// BIRD ended on its own: start it again after the backoff, which
    /// doubles up to [`BACKOFF_MAX`] while it keeps dying.
    fn died(&mut self, exit: std::io::Result<std::process::ExitStatus>) {
        self.bird = None;
        self.written = None;
        let how = match exit {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        self.fail(format!(
            "BIRD ended ({how}); starting it again in {:?}",
            self.backoff
        ));
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.status.lock().unwrap_or_else(|p| p.into_inner()).running = false;
    }

    async fn reconfigure(&mut self) {
        let result = match Birdc::connect(&self.files.socket).await {
            Ok(mut c) => c.configure().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => self.last_error = None,
            Err(e) => {
                // Written again at the next change, or BIRD's next start.
                self.written = None;
                self.fail(format!("reconfiguring BIRD: {e}"));
            }
        }
    }

    /// Read the sessions for the status; a BIRD that answers has its
    /// backoff reset.
    async fn poll(&mut self, peers: &[IpAddr]) {
        if self.bird.is_none() {
            return;
        }
        let Ok(sessions) = sessions(&self.files.socket, peers).await else {
            return;
        };
        self.backoff = Duration::from_secs(1);
        self.status.lock().unwrap_or_else(|p| p.into_inner()).sessions =
            sessions;
    }

    fn fail(&mut self, e: String) {
        if self.last_error.as_ref() != Some(&e) {
            tracing::warn!("bgp: {e}");
        }
        self.last_error = Some(e);
        self.status.lock().unwrap_or_else(|p| p.into_inner()).last_error =
            self.last_error.clone();
    }

    /// SIGTERM (BIRD sends its peers a Cease), SIGKILL after
    /// [`STOP_TIMEOUT`].
    async fn stop_bird(&mut self) {
        let Some(mut child) = self.bird.take() else { return };
        process::stop(&mut child, Signal::TERM, STOP_TIMEOUT).await;
        tracing::info!("bgp: BIRD stopped");
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.running = false;
        s.announced.clear();
        s.sessions.clear();
    }
}

/// Each peer's session as BIRD reports it: its protocol's state, what it
/// exports, its BFD session.
async fn sessions(
    socket: &Path,
    peers: &[IpAddr],
) -> Result<Vec<Session>, super::birdc::Error> {
    let mut birdc = Birdc::connect(socket).await?;
    let protocols = birdc.protocols().await?;
    let bfd = birdc.bfd_sessions().await?;
    let mut out = Vec::new();
    for peer in peers {
        let name = conf::peer_protocol(*peer);
        let Some(p) = protocols.iter().find(|p| p.name == name) else {
            continue;
        };
        let exported = birdc.exported(&name).await?;
        out.push(Session {
            name,
            state: p.state.clone(),
            info: p.info.clone(),
            established: super::birdc::bgp_established(&p.info),
            exported: exported.iter().map(ToString::to_string).collect(),
            bfd: bfd.iter().find(|b| b.peer == *peer).map(|b| b.state.clone()),
        });
    }
    Ok(out)
}

/// BIRD's log lines into the agent's log.
async fn log_lines(stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "bird", "bird: {}", crate::util::terminal::escape(&line));
    }
}

/// The `bird` program: root's sbin directories first (a root daemon's
/// child should be what the system installed), then `PATH`.
fn bird_program() -> Option<PathBuf> {
    programs::in_sbin("bird").or_else(|| programs::which("bird"))
}
