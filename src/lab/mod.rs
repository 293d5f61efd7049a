//! `lbdeploy lab`: the inventory's cluster as network-namespace hosts on
//! this machine, each with its own filesystem state and sshd — or, with
//! `--init systemd`, as containers booting systemd, reboots included.
//!
//! * `topology` — what the lab consists of, from the inventory (pure);
//! * `state` — the state file recording everything created;
//! * `preflight` — root, tools and address checks before anything changes;
//! * `netns` — namespaces, the bridge and the veths;
//! * `holder` — each host's mount and UTS namespaces and its processes;
//! * `machine` — hosts that boot systemd in a container (`--init systemd`);
//! * `rootfs` — the cached Debian root file system those hosts boot;
//! * `sshd` — keys, sshd and the controller's SSH client setup;
//! * `responder` — the HTTP responder on the real servers (and DNS);
//!   `protocols`, its UDP and SMTP modes;
//! * `router` — the router between client and cluster (`lab.router`):
//!   BIRD peering with the directors, multipath routes to the VIPs;
//! * `status` — the live state of a lab, and how it is shown;
//! * `procs` — `/proc`: liveness, namespace membership, listening sockets;
//! * `cmd` — running `ip`, `nsenter`, `ssh-keygen` with readable errors.
//!
//! This module strings them together into `up`, `down`, `status` and
//! `exec`. The CLI decides what to print and the exit code.

mod cmd;
pub mod command;
pub mod demo;
mod holder;
mod machine;
mod netns;

mod preflight;
mod procs;
pub mod protocols;
pub mod responder;
mod rootfs;
mod router;
mod sshd;
mod state;
mod status;
mod topology;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use machine::Restart;
pub use router::BgpSession;
pub(crate) use state::sole_default_lab;
use state::{LabState, Layout, ProcKind};
use status::status_of;
pub use status::{
    HostStatus, ProcStatus, RouterStatus, Status, print_status, print_usage,
};
pub use topology::HostInit;
use topology::Topology;
pub(crate) use topology::default_state_dir;

use crate::inventory::{self, Inventory};
use crate::util::files;

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

/// Build the lab for `inv` (read from a file in `inventory_dir`, against
/// which its relative secret files are read) with its state in
/// `state_dir`.
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
    inventory_dir: &Path,
    state_dir: &Path,
    init: HostInit,
    talk: &mut dyn Write,
) -> anyhow::Result<UpOutcome> {
    let mut tools = preflight::check(inv, init)?;
    let bird_conf = router::config(inv, &inventory::System, inventory_dir)?;
    let state_dir = std::path::absolute(state_dir)?;
    let topology = Topology::new(inv, &state_dir, init)?;
    let layout = Layout::new(state_dir);
    if let Some(existing) = layout.load()? {
        let built_elsewise = || {
            anyhow::anyhow!(
                "the lab in {} was built from a different inventory — take \
                 it down first with `lbdeploy lab --state-dir {0} down`",
                layout.root().display()
            )
        };
        if existing.topology != topology {
            return Err(built_elsewise());
        }
        if status_of(&existing, layout.root()).healthy {
            // The router's configuration (VIPs, sessions, passwords) is
            // not in the topology: its file says what BIRD runs with.
            let same_router = match (topology.router(), &bird_conf) {
                (Some(r), Some(conf)) => router::runs_with(&layout, r, conf),
                _ => true,
            };
            if !same_router {
                return Err(built_elsewise());
            }
            return Ok(UpOutcome::AlreadyUp);
        }
        writeln!(
            talk,
            "lab {}: an earlier `up` did not finish or a host process \
             died; removing what is left and building it again",
            topology.cluster
        )?;
        teardown(&layout, &existing)?;
    }
    for ns in topology.namespaces() {
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
    if init == HostInit::Systemd {
        tools.rootfs = Some(rootfs::ensure(talk)?);
    }
    let created = state::create_dirs(root)?;
    let mut state = LabState::new(topology, created);
    layout.save(&state)?;
    if let Err(e) = build(&layout, &mut state, &tools, bird_conf.as_deref()) {
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
    bird_conf: Option<&str>,
) -> anyhow::Result<()> {
    let topology = state.topology.clone();
    let exe = std::env::current_exe().context("finding this binary")?;
    holder::check_exe(&exe)?;
    sshd::keygen(
        &layout.client_key(),
        &format!("lbdeploy-lab@{}", topology.cluster),
    )?;
    for h in &topology.hosts {
        let dir = layout.host_dir(h);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        if h.role.has_sshd() {
            sshd::keygen(&sshd::host_key(layout, h), &h.name)?;
        }
    }

    state.namespaces.push(topology.switch_netns.clone());
    layout.save(state)?;
    netns::add(&topology.switch_netns)?;
    netns::build_switch(&topology.switch_netns)?;
    for h in topology.hosts.iter().filter(|h| h.init == HostInit::Namespace) {
        state.namespaces.push(h.netns.clone());
        layout.save(state)?;
        netns::add(&h.netns)?;
        netns::plug(topology.upstream(h)?, h)?;
        let dir = layout.host_dir(h);
        let binds = router::binds(h, &dir);
        let log = dir.join("holder.log");
        let holder = holder::start_holder(h, &exe, &binds, &log)?;
        state.processes.push(holder);
        layout.save(state)?;
    }

    sshd::install(layout, state)?;
    for h in topology.hosts.iter().filter(|h| h.init == HostInit::Systemd) {
        let rootfs = tools.rootfs.as_deref().context("no root file system")?;
        let switch = &topology.switch_netns;
        state.processes.push(machine::start(layout, h, rootfs, switch, &exe)?);
        layout.save(state)?;
    }
    for h in topology.hosts.iter().filter(|h| h.init == HostInit::Namespace) {
        let holder = state.holder(&h.name)?;
        let dir = layout.host_dir(h);
        if h.role.has_sshd() {
            let log = dir.join("sshd.log");
            state.processes.push(sshd::start(h, holder, &tools.sshd, &log)?);
        }
        for &port in &h.http_ports {
            let log = dir.join(format!("responder-{port}.log"));
            state.processes.push(responder::start(h, holder, port, &log)?);
        }
        layout.save(state)?;
    }
    if let Some(r) = topology.router() {
        let conf = bird_conf.context("no configuration for the router")?;
        let bird = tools.bird.as_deref().context("no bird found")?;
        router::enable_forwarding(r)?;
        let holder = state.holder(&r.name)?;
        state.processes.push(router::start(layout, r, holder, bird, conf)?);
        layout.save(state)?;
    }
    wait_ready(layout, state)
}

/// Wait until every sshd and responder listens, or one of them died.
fn wait_ready(layout: &Layout, state: &LabState) -> anyhow::Result<()> {
    let booting =
        state.topology.hosts.iter().any(|h| h.init == HostInit::Systemd);
    // A boot takes a second or more, and each look at a container costs
    // tens of milliseconds of /proc: poll a booting lab less often.
    let (timeout, poll) = if booting {
        (machine::BOOT_TIMEOUT, Duration::from_millis(100))
    } else {
        (READY_TIMEOUT, Duration::from_millis(20))
    };
    let deadline = Instant::now() + timeout;
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
                .host_dir(state.topology.host(&h.name).expect("from the plan"))
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
                timeout.as_secs(),
                layout.root().join("hosts").display()
            );
        }
        std::thread::sleep(poll);
    }
}

/// How many times `teardown` sweeps the lab's processes at most.
const STOP_ROUNDS: usize = 3;

/// The lab's processes still alive: those recorded, and any other process
/// in its namespaces (an SSH session, a child of an interrupted `up`).
fn victims(state: &LabState) -> Vec<(i32, u64)> {
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
    victims.into_iter().collect()
}

/// Remove the lab recorded in `state`: its processes (recorded, and any
/// other process in its namespaces, e.g. an SSH session), its namespaces
/// and the files `up` made. Tolerates each of them being gone already.
fn teardown(layout: &Layout, state: &LabState) -> anyhow::Result<()> {
    // An `up` killed half-way may leave a child that enters a namespace
    // only after the first sweep (a holder or sshd still starting), so
    // sweep again while any namespace holds a process, a bounded number
    // of times.
    for p in state.processes.iter().filter(|p| p.kind == ProcKind::Machine) {
        machine::kill(p);
    }
    for _ in 0..STOP_ROUNDS {
        let victims = victims(state);
        if victims.is_empty() {
            break;
        }
        procs::stop(&victims, STOP_GRACE);
    }
    for h in state.topology.hosts.iter().filter(|h| h.init == HostInit::Systemd)
    {
        machine::remove_cgroups(h);
    }
    for ns in state.namespaces.iter().rev() {
        let left = procs::pids_in_netns(ns);
        if !left.is_empty() {
            bail!(
                "processes {left:?} in namespace {ns} would not exit; the lab state is kept"
            );
        }
        netns::delete(ns)?;
    }
    let mut entries = Vec::new();
    for entry in layout.owned_entries() {
        // An `up` killed while it wrote a file leaves its temporary.
        entries.extend(files::leftover_temps(&entry)?);
        entries.push(entry);
    }
    for entry in entries {
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

/// The process whose namespaces are host `h` now (its holder, or the init
/// of its container), with the `nsenter` that enters them.
///
/// # Errors
/// When the host does not run.
fn host_process(
    state: &LabState,
    h: &topology::LabHost,
) -> anyhow::Result<(i32, cmd::Cmd)> {
    let name = &h.name;
    let alive = |kind| {
        state
            .process(name, kind)
            .filter(|p| procs::is_alive(p.pid, p.start_time))
    };
    match h.init {
        HostInit::Namespace => {
            let holder = alive(ProcKind::Holder).with_context(|| {
                format!(
                    "host {name} is not running (its namespace holder is \
                     gone) — rebuild the lab with `lbdeploy lab up`"
                )
            })?;
            Ok((holder.pid, holder::enter_namespaces(holder.pid)))
        }
        HostInit::Systemd => {
            let init = alive(ProcKind::Machine)
                .and_then(|p| machine::init_of(p.pid))
                .with_context(|| {
                    format!(
                        "host {name} is not running (powered off, or booting \
                         — see `lbdeploy lab status`)"
                    )
                })?;
            Ok((init, machine::enter(init)))
        }
    }
}

/// Reboot systemd host `host` of the lab in `state_dir` (`how` says
/// cleanly or by a power cut) and wait until it serves again: sshd and
/// its responders listen. Returns how long that took.
///
/// # Errors
/// When there is no such lab or host, the host is a namespace host, or it
/// does not come back within `machine::BOOT_TIMEOUT`.
pub fn restart(
    state_dir: &Path,
    host: &str,
    how: Restart,
) -> anyhow::Result<Duration> {
    let layout = Layout::new(std::path::absolute(state_dir)?);
    let state = layout
        .load()?
        .with_context(|| format!("no lab in {}", layout.root().display()))?;
    let h = state
        .topology
        .host(host)
        .with_context(|| format!("the lab has no host `{host}`"))?;
    if h.init != HostInit::Systemd {
        bail!(
            "host {host} is a namespace host, which has no init to reboot — \
             build the lab with `lbdeploy lab up --init systemd`"
        );
    }
    let boot_loop = state
        .process(host, ProcKind::Machine)
        .filter(|p| procs::is_alive(p.pid, p.start_time))
        .with_context(|| format!("host {host} is not running"))?;
    machine::restart(host, boot_loop.pid, how, |init| status::serves(h, init))
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

/// The live state of the lab in `state_dir`; `None` when there is none.
///
/// # Errors
/// When the state file cannot be read.
pub fn status(state_dir: &Path) -> anyhow::Result<Option<Status>> {
    let layout = Layout::new(std::path::absolute(state_dir)?);
    Ok(layout.load()?.map(|s| {
        let mut status = status_of(&s, layout.root());
        status.router = status::router_status(&s, layout.root());
        status
    }))
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
    let Some(h) = state.topology.host(host) else {
        let names: Vec<_> =
            state.topology.hosts.iter().map(|h| h.name.as_str()).collect();
        bail!(
            "the lab has no host `{host}` — its hosts are {}",
            names.join(", ")
        );
    };
    let (pid, enter) = host_process(&state, h)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let wd = if holder::path_in(pid, &cwd.to_string_lossy()).is_dir() {
        cwd
    } else {
        PathBuf::from("/")
    };
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let cmd =
        enter.arg(format!("--wdns={}", wd.display())).arg("--").args(command);
    let err =
        cmd.command().env("PATH", format!("{}:{path}", holder::LAB_BIN)).exec();
    Err(cmd.spawn_error(err).into())
}
