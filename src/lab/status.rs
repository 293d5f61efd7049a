//! The live state of a lab, computed from its state file and `/proc`, and
//! how `lab status` and `lab up` show it.
//!
//! A lab is *healthy* when every namespace exists and every expected process
//! (holder, sshd, responders) runs and, for daemons, listens. `up` uses the
//! same verdict to decide between "already up" and "rebuild", and waits on
//! it after starting the daemons.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::inventory::IfAddr;

use super::netns;
use super::procs;
use super::state::{LabState, ProcKind};
use super::topology::Role;

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
            ProcKind::Sshd => "sshd".into(),
            ProcKind::Responder { port } => {
                format!("the HTTP responder on port {port}")
            }
        }
    }

    pub(super) fn log_name(&self) -> String {
        match self.kind {
            ProcKind::Holder => "holder.log".into(),
            ProcKind::Sshd => "sshd.log".into(),
            ProcKind::Responder { port } => format!("responder-{port}.log"),
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
    /// Its network namespace.
    pub netns: String,
    /// Whether that namespace exists.
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
}

pub(super) fn status_of(state: &LabState, state_dir: &Path) -> Status {
    let hosts: Vec<HostStatus> = state
        .topology
        .hosts
        .iter()
        .map(|h| {
            let holder = state.process(&h.name, ProcKind::Holder);
            let processes = LabState::expected_kinds(h)
                .into_iter()
                .map(|kind| {
                    let rec = state.process(&h.name, kind);
                    let alive = rec
                        .is_some_and(|r| procs::is_alive(r.pid, r.start_time));
                    let port = match kind {
                        ProcKind::Holder => None,
                        ProcKind::Sshd => Some(h.ssh_port),
                        ProcKind::Responder { port } => Some(port),
                    };
                    let listening = port.map(|port| {
                        alive
                            && holder.is_some_and(|hd| {
                                procs::listens(hd.pid, h.address.addr, port)
                            })
                    });
                    ProcStatus {
                        kind,
                        pid: rec.map(|r| r.pid),
                        alive,
                        listening,
                    }
                })
                .collect();
            HostStatus {
                name: h.name.clone(),
                role: h.role,
                address: h.address,
                interface: h.interface.clone(),
                netns: h.netns.clone(),
                netns_exists: netns::exists(&h.netns),
                processes,
            }
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
    }
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
                    ProcKind::Sshd => "sshd".to_owned(),
                    ProcKind::Responder { port } => format!("http:{port}"),
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
    Ok(())
}
