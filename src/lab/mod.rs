//! `lbdeploy lab`: the inventory's cluster as network-namespace hosts on
//! this machine, each with its own filesystem state and sshd.
//!
//! * `plan` — what the lab consists of, from the inventory (pure);
//! * `state` — the state file recording everything created;
//! * `preflight` — root, tools and address checks before anything changes;
//! * `netns` — namespaces, the bridge and the veths;
//! * `host` — each host's mount and UTS namespaces and its processes;
//! * `sshd` — keys, sshd and the controller's SSH client setup;
//! * `responder` — the HTTP responder on the real servers;
//! * `procs` — `/proc`: liveness, namespace membership, listening sockets;
//! * `cmd` — running `ip`, `nsenter`, `ssh-keygen` with readable errors.
//!
//! This module strings them together into `up`, `down`, `status` and
//! `exec`. The CLI decides what to print and the exit code.

mod cmd;
mod host;
mod netns;
mod plan;
mod preflight;
mod procs;
pub mod responder;
mod sshd;
mod state;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use plan::HostPlan;
pub use plan::{DEFAULT_STATE_ROOT, LabPlan, Role, default_state_dir};
use state::{LabState, Layout, ProcKind, ProcRecord};

use crate::inventory::Inventory;

/// How long sshd and the responders may take to listen after they start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long processes get to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What `up` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOutcome {
    /// The lab was built (or rebuilt after an interrupted `up`).
    Built,
    /// The same lab was already up and whole; nothing changed.
    AlreadyUp,
}

/// What `down` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownOutcome {
    /// A lab was there and is gone.
    Removed,
    /// There was no lab in the state directory.
    NothingThere,
}

/// Build the lab for `inv` with its state in `state_dir`.
///
/// Idempotent: when the same lab is already up and whole, nothing changes;
/// when an earlier `up` stopped half-way or one of its processes died, the
/// remains are removed and the lab rebuilt. Progress goes to `talk`.
///
/// # Errors
/// When a preflight check fails, the state directory holds a lab built
/// from another inventory, or a step fails (what was made is then removed).
pub fn up(
    inv: &Inventory,
    state_dir: &Path,
    talk: &mut dyn Write,
) -> anyhow::Result<UpOutcome> {
    let tools = preflight::check(inv)?;
    let state_dir = std::path::absolute(state_dir)?;
    let plan = LabPlan::new(inv, &state_dir)?;
    let layout = Layout::new(state_dir);
    if let Some(existing) = layout.load()? {
        if existing.plan != plan {
            bail!(
                "the lab in {} was built from a different inventory — take \
                 it down first with `lbdeploy lab --state-dir {0} down`",
                layout.root().display()
            );
        }
        if status_of(&existing, layout.root()).healthy {
            return Ok(UpOutcome::AlreadyUp);
        }
        writeln!(
            talk,
            "lab {}: an earlier `up` did not finish or a host process \
             died; removing what is left and building it again",
            plan.cluster
        )?;
        teardown(&layout, &existing)?;
    }
    for ns in plan.namespaces() {
        if netns::exists(ns) {
            bail!(
                "network namespace {ns} exists but no lab state in {} \
                 records it (left by a lab whose state directory was \
                 removed?) — check with `ip netns pids {ns}`, then remove it \
                 with `ip netns delete {ns}`",
                layout.root().display()
            );
        }
    }
    let root = layout.root();
    if root.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "state directory {} is not empty and holds no lab — pick another \
             with --state-dir",
            root.display()
        );
    }
    let created = state::create_dirs(root)?;
    let mut state = LabState::new(plan, created);
    layout.save(&state)?;
    if let Err(e) = build(&layout, &mut state, &tools) {
        // Leave the machine as it was: a half-built lab helps nobody, and
        // the error already carries the failing command and its output.
        if let Err(t) = teardown(&layout, &state) {
            return Err(e.context(format!(
                "also, removing the half-built lab failed ({t:#}): run \
                 `lbdeploy lab --state-dir {} down`",
                layout.root().display()
            )));
        }
        return Err(e);
    }
    Ok(UpOutcome::Built)
}

fn build(
    layout: &Layout,
    state: &mut LabState,
    tools: &preflight::Tools,
) -> anyhow::Result<()> {
    let plan = state.plan.clone();
    let exe = std::env::current_exe().context("finding this binary")?;
    host::check_exe(&exe)?;
    sshd::keygen(
        &layout.client_key(),
        &format!("lbdeploy-lab@{}", plan.cluster),
    )?;
    for h in &plan.hosts {
        let dir = layout.host_dir(h);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        if h.role.has_sshd() {
            sshd::keygen(&dir.join("ssh_host_ed25519_key"), &h.name)?;
        }
    }

    state.namespaces.push(plan.switch_netns.clone());
    layout.save(state)?;
    netns::add(&plan.switch_netns)?;
    netns::build_switch(&plan.switch_netns)?;
    for h in &plan.hosts {
        state.namespaces.push(h.netns.clone());
        layout.save(state)?;
        netns::add(&h.netns)?;
        netns::plug(&plan.switch_netns, h)?;
        let holder = host::start_holder(
            h,
            &exe,
            &layout.host_dir(h).join("holder.log"),
        )?;
        state.processes.push(holder);
        layout.save(state)?;
    }

    install_ssh_files(layout, state)?;
    for h in &plan.hosts {
        let holder = holder_pid(state, h)?;
        let dir = layout.host_dir(h);
        if h.role.has_sshd() {
            let sshd = tools.sshd.to_string_lossy();
            let config = format!("{}/sshd_config", sshd::HOST_SSH_DIR);
            let args = [sshd.as_ref(), "-D", "-e", "-f", &config];
            let rec = host::spawn_in(
                h,
                holder,
                ProcKind::Sshd,
                &args,
                &dir.join("sshd.log"),
            )?;
            state.processes.push(rec);
        }
        for &port in &h.http_ports {
            let rec = start_responder(h, holder, port, &dir)?;
            state.processes.push(rec);
        }
        layout.save(state)?;
    }
    wait_ready(layout, state)
}

fn start_responder(
    h: &HostPlan,
    holder: i32,
    port: u16,
    dir: &Path,
) -> anyhow::Result<ProcRecord> {
    let bin = format!("{}/lbdeploy", host::LAB_BIN);
    let listen = match h.address.addr {
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
        &h.name,
        "--listen",
        listen,
    ];
    let log = dir.join(format!("responder-{port}.log"));
    host::spawn_in(h, holder, ProcKind::Responder { port }, &args, &log)
}

/// Put sshd's files into every managed host and the client setup into the
/// controller.
fn install_ssh_files(layout: &Layout, state: &LabState) -> anyhow::Result<()> {
    let client_pub = sshd::public_key(&layout.client_key())?;
    let mut host_keys = Vec::new();
    for h in state.plan.hosts.iter().filter(|h| h.role.has_sshd()) {
        let holder = holder_pid(state, h)?;
        let key = layout.host_dir(h).join("ssh_host_ed25519_key");
        let dir = sshd::HOST_SSH_DIR;
        let private = std::fs::read(&key)?;
        host::install(
            holder,
            &format!("{dir}/ssh_host_ed25519_key"),
            &private,
            0o600,
        )?;
        host::install(
            holder,
            &format!("{dir}/sshd_config"),
            sshd::sshd_config(h).as_bytes(),
            0o644,
        )?;
        let authorized = format!("{client_pub}\n");
        host::install(
            holder,
            &format!("{dir}/authorized_keys"),
            authorized.as_bytes(),
            0o600,
        )?;
        host_keys.push((h, sshd::public_key(&key)?));
    }
    let managed = state.plan.hosts.iter().filter(|h| h.role.has_sshd());
    for h in state.plan.hosts.iter().filter(|h| h.role == Role::Controller) {
        let holder = holder_pid(state, h)?;
        let private = std::fs::read(layout.client_key())?;
        host::install(holder, "/root/.ssh/id_ed25519", &private, 0o600)?;
        host::install(
            holder,
            "/root/.ssh/id_ed25519.pub",
            format!("{client_pub}\n").as_bytes(),
            0o644,
        )?;
        host::install(
            holder,
            "/root/.ssh/config",
            sshd::client_config(managed.clone()).as_bytes(),
            0o600,
        )?;
        let kh =
            sshd::known_hosts(host_keys.iter().map(|(h, k)| (*h, k.clone())));
        host::install(holder, "/root/.ssh/known_hosts", kh.as_bytes(), 0o644)?;
        std::fs::set_permissions(
            host::path_in(holder, "/root/.ssh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
    }
    Ok(())
}

fn holder_pid(state: &LabState, h: &HostPlan) -> anyhow::Result<i32> {
    state.process(&h.name, ProcKind::Holder).map(|p| p.pid).with_context(|| {
        format!("host {} has no holder process recorded", h.name)
    })
}

/// Wait until every sshd and responder listens, or one of them died.
fn wait_ready(layout: &Layout, state: &LabState) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let status = status_of(state, layout.root());
        if status.healthy {
            return Ok(());
        }
        let dead = status
            .hosts
            .iter()
            .flat_map(|h| h.processes.iter().map(move |p| (h, p)))
            .find(|(_, p)| !p.alive);
        if let Some((h, p)) = dead {
            let log = layout
                .host_dir(state.plan.host(&h.name).expect("from the plan"))
                .join(p.log_name());
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "{} on host {} exited: {}",
                p.kind_label(),
                h.name,
                text.trim()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "the lab's daemons did not listen within {}s — see the logs \
                 in {}",
                READY_TIMEOUT.as_secs(),
                layout.root().join("hosts").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Remove the lab recorded in `state`: its processes (recorded, and any
/// other process in its namespaces, e.g. an SSH session), its namespaces
/// and the files `up` made. Tolerates each of them being gone already.
fn teardown(layout: &Layout, state: &LabState) -> anyhow::Result<()> {
    let mut victims: BTreeSet<(i32, u64)> = state
        .processes
        .iter()
        .filter(|p| procs::is_alive(p.pid, p.start_time))
        .map(|p| (p.pid, p.start_time))
        .collect();
    for ns in &state.namespaces {
        victims.extend(
            procs::pids_in_netns(ns)
                .into_iter()
                .filter_map(|pid| Some((pid, procs::start_time(pid)?))),
        );
    }
    procs::stop(&victims.into_iter().collect::<Vec<_>>(), STOP_GRACE);
    for ns in state.namespaces.iter().rev() {
        let left = procs::pids_in_netns(ns);
        if !left.is_empty() {
            bail!(
                "processes {left:?} in namespace {ns} would not exit; the lab state is kept"
            );
        }
        netns::delete(ns)?;
    }
    for entry in layout.owned_entries() {
        let r = if entry.is_dir() {
            std::fs::remove_dir_all(&entry)
        } else {
            std::fs::remove_file(&entry)
        };
        match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("removing {}", entry.display()));
            }
            _ => {}
        }
    }
    for dir in &state.created_dirs {
        // Another cluster's lab may share a parent such as
        // /var/lib/lbdeploy-lab; a non-empty directory is left alone.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// Remove the lab whose state is in `state_dir`.
///
/// # Errors
/// When the state cannot be read, or a process or namespace cannot be
/// removed (the state is then kept so `down` can be run again).
pub fn down(state_dir: &Path) -> anyhow::Result<DownOutcome> {
    let layout = Layout::new(std::path::absolute(state_dir)?);
    match layout.load()? {
        None => Ok(DownOutcome::NothingThere),
        Some(state) => {
            teardown(&layout, &state)?;
            Ok(DownOutcome::Removed)
        }
    }
}

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
    fn kind_label(&self) -> String {
        match self.kind {
            ProcKind::Holder => "the namespace holder".into(),
            ProcKind::Sshd => "sshd".into(),
            ProcKind::Responder { port } => {
                format!("the HTTP responder on port {port}")
            }
        }
    }

    fn log_name(&self) -> String {
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
    pub address: String,
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

/// The live state of the lab in `state_dir`; `None` when there is none.
///
/// # Errors
/// When the state file cannot be read.
pub fn status(state_dir: &Path) -> anyhow::Result<Option<Status>> {
    let layout = Layout::new(std::path::absolute(state_dir)?);
    Ok(layout.load()?.map(|s| status_of(&s, layout.root())))
}

fn status_of(state: &LabState, state_dir: &Path) -> Status {
    let hosts: Vec<HostStatus> = state
        .plan
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
                address: h.address.to_string(),
                interface: h.interface.clone(),
                netns: h.netns.clone(),
                netns_exists: netns::exists(&h.netns),
                processes,
            }
        })
        .collect();
    let healthy = netns::exists(&state.plan.switch_netns)
        && hosts
            .iter()
            .all(|h| h.netns_exists && h.processes.iter().all(ProcStatus::ok));
    Status {
        cluster: state.plan.cluster.clone(),
        id: state.plan.id.clone(),
        state_dir: state_dir.to_owned(),
        switch_netns: state.plan.switch_netns.clone(),
        healthy,
        hosts,
    }
}

/// Replace this process with `command` running inside lab host `host`.
///
/// The command runs in the host's network, mount and UTS namespaces, in
/// the caller's working directory when the host can see it (else `/`),
/// with this binary first on `PATH` so `lbdeploy` works inside. Its exit
/// status becomes this process's.
///
/// # Errors
/// When there is no such lab or host, or the command cannot be started.
pub fn exec(
    state_dir: &Path,
    host: &str,
    command: &[String],
) -> anyhow::Result<Infallible> {
    let layout = Layout::new(std::path::absolute(state_dir)?);
    let state = layout.load()?.with_context(|| {
        format!(
            "no lab in {} — start one with `lbdeploy lab up`",
            layout.root().display()
        )
    })?;
    let Some(h) = state.plan.host(host) else {
        let names: Vec<_> =
            state.plan.hosts.iter().map(|h| h.name.as_str()).collect();
        bail!(
            "the lab has no host `{host}` — its hosts are {}",
            names.join(", ")
        );
    };
    let holder = state
        .process(&h.name, ProcKind::Holder)
        .filter(|p| procs::is_alive(p.pid, p.start_time))
        .with_context(|| {
            format!(
                "host {host} is not running (its namespace holder is gone) — \
                 rebuild the lab with `lbdeploy lab up`"
            )
        })?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let wd = if host::path_in(holder.pid, &cwd.to_string_lossy()).is_dir() {
        cwd
    } else {
        PathBuf::from("/")
    };
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let cmd = cmd::Cmd::new("nsenter")
        .args(["-t", &holder.pid.to_string(), "-m", "-u", "-n"])
        .arg(format!("--wdns={}", wd.display()))
        .arg("--")
        .args(command);
    let err =
        cmd.command().env("PATH", format!("{}:{path}", host::LAB_BIN)).exec();
    Err(cmd.spawn_error(err).into())
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
            h.address,
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
        let ip = rs.address.split('/').next().unwrap_or_default();
        writeln!(
            out,
            "  lbdeploy lab {select} exec client -- curl -s http://{ip}:{port}/"
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
            h.address,
            netns,
            procs.join(", ")
        )?;
    }
    Ok(())
}
