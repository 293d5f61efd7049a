//! The live state of a lab, computed from its state file and `/proc`, and
//! how `lab status` and `lab up` show it.
//!
//! A lab is *healthy* when every namespace exists and every expected process
//! (holder, sshd, responders, the router's BIRD) runs and, for daemons,
//! listens. `up` uses the same verdict to decide between "already up" and
//! "rebuild", and waits on it after starting the daemons.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::inventory::IfAddr;

use super::machine;
use super::netns;
use super::procs;
use super::router::{self, BgpSession, BirdFiles};
use super::state::{LabState, Layout, ProcKind};
use super::topology::{HostInit, LabHost, Role};

/// The live state of one lab process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcStatus {
    /// What it is.
    #[serde(flatten)]
    pub kind: ProcKind,
    /// Its PID, when one was recorded.
    pub pid: Option<i32>,
    /// Whether that process still runs.
    pub alive: bool,
    /// For daemons, whether they accept connections.
    pub listening: Option<bool>,
}

impl ProcStatus {
    pub(super) fn kind_label(&self) -> String {
        match self.kind {
            ProcKind::Holder => "the namespace holder".into(),
            ProcKind::Machine => "the container's boot loop".into(),
            ProcKind::Sshd => "sshd".into(),
            ProcKind::Responder { port } => {
                format!("the HTTP responder on port {port}")
            }
            ProcKind::Bird => "BIRD".into(),
        }
    }

    pub(super) fn log_name(&self) -> String {
        match self.kind {
            ProcKind::Holder => "holder.log".into(),
            ProcKind::Machine => "boot.log".into(),
            ProcKind::Sshd => "sshd.log".into(),
            ProcKind::Responder { port } => format!("responder-{port}.log"),
            ProcKind::Bird => router::BIRD_LOG.into(),
        }
    }

    fn ok(&self) -> bool {
        self.alive && self.listening != Some(false)
    }
}

/// The live state of one lab host.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// Inventory name.
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// Address and prefix.
    pub address: IfAddr,
    /// Its interface.
    pub interface: String,
    /// How it runs.
    pub init: HostInit,
    /// Its network namespace; for a systemd host, its machine name.
    pub netns: String,
    /// Whether that namespace exists (for a systemd host: whether the
    /// container runs).
    pub netns_exists: bool,
    /// Its processes, expected ones first.
    pub processes: Vec<ProcStatus>,
}

/// The live state of a lab, what `lab status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The cluster name.
    pub cluster: String,
    /// The lab id in every namespace name.
    pub id: String,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The switch namespace.
    pub switch_netns: String,
    /// Whether every namespace exists and every process runs and listens.
    pub healthy: bool,
    /// Each host.
    pub hosts: Vec<HostStatus>,
    /// The router's BIRD, when the lab has a router: filled by
    /// `lab::status`, not by the polls of `up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterStatus>,
}

/// What the router's BIRD says.
#[derive(Debug, Clone, Serialize)]
pub struct RouterStatus {
    /// Its control socket on the machine: `birdc -s SOCKET …` (inside
    /// the router, `lab exec router -- birdc …` finds it without `-s`).
    pub control_socket: PathBuf,
    /// Its BGP sessions, one per director.
    pub sessions: Vec<BgpSession>,
    /// Why there are no sessions to show (BIRD does not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub(super) fn status_of(state: &LabState, state_dir: &Path) -> Status {
    let hosts: Vec<HostStatus> = state
        .topology
        .hosts
        .iter()
        .map(|h| match h.init {
            HostInit::Namespace => namespace_host(state, state_dir, h),
            HostInit::Systemd => systemd_host(state, h),
        })
        .collect();
    let healthy = netns::exists(&state.topology.switch_netns)
        && hosts
            .iter()
            .all(|h| h.netns_exists && h.processes.iter().all(ProcStatus::ok));
    Status {
        cluster: state.topology.cluster.clone(),
        id: state.topology.id.clone(),
        state_dir: state_dir.to_owned(),
        switch_netns: state.topology.switch_netns.clone(),
        healthy,
        hosts,
        router: None,
    }
}

/// What the router's BIRD says, when the lab has a router.
pub(super) fn router_status(
    state: &LabState,
    state_dir: &Path,
) -> Option<RouterStatus> {
    let router = state.topology.router()?;
    let layout = Layout::new(state_dir.to_owned());
    let socket = BirdFiles::of(&layout, router).socket;
    let (sessions, error) = match router::sessions(&socket) {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Some(RouterStatus { control_socket: socket, sessions, error })
}

/// The port a daemon of `kind` listens on, on `h`.
fn port_of(h: &LabHost, kind: ProcKind) -> Option<u16> {
    match kind {
        ProcKind::Holder | ProcKind::Machine | ProcKind::Bird => None,
        ProcKind::Sshd => Some(h.ssh_port),
        ProcKind::Responder { port } => Some(port),
    }
}

/// A namespace host: its holder and the daemons the lab started in it.
/// BIRD listens once its control socket answers.
fn namespace_host(
    state: &LabState,
    state_dir: &Path,
    h: &LabHost,
) -> HostStatus {
    let holder = state.process(&h.name, ProcKind::Holder);
    let bird_answers = || {
        let layout = Layout::new(state_dir.to_owned());
        router::answers(&BirdFiles::of(&layout, h).socket)
    };
    let processes = LabState::expected_kinds(h)
        .into_iter()
        .map(|kind| {
            let rec = state.process(&h.name, kind);
            let alive =
                rec.is_some_and(|r| procs::is_alive(r.pid, r.start_time));
            let listening = match kind {
                ProcKind::Bird => Some(alive && bird_answers()),
                _ => port_of(h, kind).map(|port| {
                    alive
                        && holder.is_some_and(|hd| {
                            procs::listens(hd.pid, h.address.addr, port)
                        })
                }),
            };
            ProcStatus { kind, pid: rec.map(|r| r.pid), alive, listening }
        })
        .collect();
    host_status(h, netns::exists(&h.netns), processes)
}

/// A systemd host: its boot loop, and its sshd and responders (its own
/// services, so they count as alive while the host runs, and are whole
/// once they listen; a host still booting is not dead).
fn systemd_host(state: &LabState, h: &LabHost) -> HostStatus {
    let rec = state.process(&h.name, ProcKind::Machine);
    let running = rec.is_some_and(|r| procs::is_alive(r.pid, r.start_time));
    let init = rec.filter(|_| running).and_then(|r| machine::init_of(r.pid));
    let processes = LabState::expected_kinds(h)
        .into_iter()
        .map(|kind| match kind {
            ProcKind::Machine => ProcStatus {
                kind,
                pid: rec.map(|r| r.pid),
                alive: running,
                listening: None,
            },
            _ => ProcStatus {
                kind,
                pid: None,
                alive: running,
                listening: port_of(h, kind).map(|port| {
                    init.is_some_and(|i| {
                        procs::listens(i, h.address.addr, port)
                    })
                }),
            },
        })
        .collect();
    host_status(h, init.is_some(), processes)
}

fn host_status(
    h: &LabHost,
    netns_exists: bool,
    processes: Vec<ProcStatus>,
) -> HostStatus {
    HostStatus {
        name: h.name.clone(),
        role: h.role,
        address: h.address,
        interface: h.interface.clone(),
        init: h.init,
        netns: h.netns.clone(),
        netns_exists,
        processes,
    }
}

/// Whether systemd host `h`, whose container's init is `init`, serves:
/// sshd and every responder listen.
pub(super) fn serves(h: &LabHost, init: i32) -> bool {
    LabState::expected_kinds(h).into_iter().all(|kind| {
        port_of(h, kind)
            .is_none_or(|port| procs::listens(init, h.address.addr, port))
    })
}

/// Tell the user what the lab is and how to use it (`up`'s epilogue).
/// `select` is how later commands name this lab (`-i FILE` or
/// `--state-dir DIR`).
///
/// # Errors
/// When `out` cannot be written.
pub fn print_usage(
    status: &Status,
    select: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "lab {} is up (id {}, state in {}):",
        status.cluster,
        status.id,
        status.state_dir.display()
    )?;
    for h in &status.hosts {
        writeln!(
            out,
            "  {:<14} {:<12} {:<20} {}",
            h.name,
            h.role.to_string(),
            h.address.to_string(),
            h.netns
        )?;
    }
    let first = |role| {
        status.hosts.iter().find(|h| h.role == role).map(|h| h.name.as_str())
    };
    writeln!(
        out,
        "Run commands inside a host with `lbdeploy lab exec HOST -- CMD...`, e.g."
    )?;
    if let Some(d) = first(Role::Director) {
        writeln!(
            out,
            "  lbdeploy lab {select} exec controller -- ssh {d} hostname"
        )?;
    }
    let responder = status.hosts.iter().find_map(|h| {
        h.processes.iter().find_map(|p| match p.kind {
            ProcKind::Responder { port } => Some((h, port)),
            _ => None,
        })
    });
    if let Some((rs, port)) = responder {
        let url = SocketAddr::new(rs.address.addr, port);
        writeln!(
            out,
            "  lbdeploy lab {select} exec client -- curl -s http://{url}/"
        )?;
    }
    writeln!(
        out,
        "  lbdeploy lab {select} exec controller -- lbdeploy --help"
    )?;
    if status.router.is_some() {
        writeln!(
            out,
            "  lbdeploy lab {select} exec router -- birdc show route"
        )?;
    }
    writeln!(out, "Take it down with `lbdeploy lab {select} down`.")
}

/// `lab status` as a table, one host per line.
///
/// # Errors
/// When `out` cannot be written.
pub fn print_status(
    status: &Status,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "lab {} (id {}, state in {}): {}",
        status.cluster,
        status.id,
        status.state_dir.display(),
        if status.healthy {
            "up"
        } else {
            "NOT WHOLE — run `lbdeploy lab up` to rebuild"
        }
    )?;
    writeln!(
        out,
        "{:<14} {:<12} {:<20} {:<26} PROCESSES",
        "HOST", "ROLE", "ADDRESS", "NAMESPACE"
    )?;
    for h in &status.hosts {
        let netns = if h.netns_exists {
            h.netns.clone()
        } else {
            format!("{} (gone)", h.netns)
        };
        let procs: Vec<String> = h
            .processes
            .iter()
            .map(|p| {
                let what = match p.kind {
                    ProcKind::Holder => "holder".to_owned(),
                    ProcKind::Machine => "machine".to_owned(),
                    ProcKind::Sshd => "sshd".to_owned(),
                    ProcKind::Responder { port } => format!("http:{port}"),
                    ProcKind::Bird => "bird".to_owned(),
                };
                let state = match (p.alive, p.listening) {
                    (false, _) => "dead",
                    (true, Some(false)) => "not listening",
                    (true, _) => "ok",
                };
                let pid =
                    p.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
                format!("{what} {pid} {state}")
            })
            .collect();
        writeln!(
            out,
            "{:<14} {:<12} {:<20} {:<26} {}",
            h.name,
            h.role.to_string(),
            h.address.to_string(),
            netns,
            procs.join(", ")
        )?;
    }
    match &status.router {
        Some(r) => print_sessions(r, out),
        None => Ok(()),
    }
}

/// The router's BGP sessions, one line each, under the hosts.
fn print_sessions(
    router: &RouterStatus,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "BGP sessions of the router (birdc -s {} show protocols):",
        router.control_socket.display()
    )?;
    if let Some(e) = &router.error {
        return writeln!(out, "  none known: {e}");
    }
    for s in &router.sessions {
        writeln!(out, "  {:<14} {:<6} {}", s.name, s.state, s.info)?;
    }
    Ok(())
}
