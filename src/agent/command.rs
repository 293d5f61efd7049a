//! `lbdeploy agent …`: from a parsed command to the modules that do the
//! work, and from their outcome to an exit status. The only agent module
//! that knows the CLI types; everything it calls can be used without them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use rustix::thread::CapabilitySet;

use super::dataplane::ipvs;
use super::drain::{self, Drained};
use super::sys::accounts::Ids;
use super::sys::process;
use super::{paths, runtime, status, supervise};
use crate::exit::ExitStatus;
use crate::inventory::Mode;
use crate::inventory::agent::{DirectorConfig, RealserverConfig};

/// The agent's modes, and its service commands for hosts without systemd.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run as a director: VRRP, VIPs, health checks, data plane.
    #[command(long_about = "Run as a director in the foreground: VRRP with \
        the other directors, the VIPs while master, health checks and the \
        kernel data plane. `apply` installs and starts it. Status is \
        served on /run/lbdeploy/agent.sock ($LBDEPLOY_RUN_DIR overrides \
        the directory); SIGHUP re-reads the configuration, keeping the old \
        one if the new one is invalid; SIGTERM stops it (a master \
        resigns); SIGUSR1 stops it for a restart (a master does not \
        resign: run `agent cleanup`, then start it again within two advert \
        intervals and it resumes as master).\n\n\
        Example:\n  lbdeploy agent director --config /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 stopped by SIGTERM/SIGINT/SIGUSR1, 1 error (a bad \
        configuration fails before anything is created).")]
    Director(AgentArgs),
    /// Run as a real server: ARP suppression and the VIP on lo.
    #[command(long_about = "Run as a real server in the foreground: ARP \
        suppression, and the VIPs kept on lo. `apply` installs and starts \
        it. Status, SIGHUP and SIGTERM as for `agent director`.\n\n\
        Example:\n  lbdeploy agent realserver --config \
        /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 stopped by SIGTERM/SIGINT, 1 error (a bad \
        configuration fails before anything is created).")]
    Realserver(AgentArgs),
    /// Ask the running agent for its state.
    #[command(long_about = "Ask the agent on this host for its state over \
        its Unix socket under /run/lbdeploy: mode, PID, configuration and \
        whether it is healthy. With --json, as JSON on stdout.\n\n\
        Example:\n  lbdeploy agent status --json\n\n\
        Exit codes: 0 running and healthy, 1 not running, 3 unhealthy.")]
    Status,
    /// Start the agent under lbdeploy's own supervisor (hosts without systemd).
    #[command(long_about = "Check the configuration, then start the agent \
        under lbdeploy's own supervisor, detached from this session (it \
        survives the SSH session that ran it), and wait up to 5 s until it \
        answers on its status socket. When the agent exits, the supervisor \
        removes what it held (`agent cleanup`) and restarts it: 1 s later, \
        doubling with each quick exit up to 30 s, never giving up. It writes its PID to /run/lbdeploy/agent.pid and \
        appends the agent's output to /run/lbdeploy/agent.log. Does nothing \
        when the supervisor already runs. For hosts without systemd.\n\n\
        Example:\n  lbdeploy agent start realserver --config \
        /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 running, 1 error (bad configuration: nothing started; \
        agent did not come up: stopped again, the log's tail is shown).")]
    Start(ServiceArgs),
    /// Stop the supervised agent.
    #[command(long_about = "Send SIGTERM to the supervisor named in \
        /run/lbdeploy/agent.pid, which stops the agent (SIGKILL after 5 s), \
        and wait up to 10 s until it is gone. Without a running supervisor \
        it only removes a stale PID file.\n\n\
        Example:\n  lbdeploy agent stop\n\n\
        Exit codes: 0 stopped or not running, 1 error.")]
    Stop,
    /// Stop and start the supervised agent (a new binary takes effect).
    #[command(long_about = "Check the configuration, stop the supervised \
        agent and start it again, so a newly installed binary and the \
        settings a reload cannot change (script users, vrrp_rt_priority, \
        vrrp_no_swap) take effect. The stop is a hand-over (SIGUSR1 to the \
        supervisor, which passes it on): a master does not resign, and the \
        new agent, started at once, resumes as master (with adverts of \
        1 s, no backup takes over).\n\n\
        Example:\n  lbdeploy agent restart director --config \
        /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 running again, 1 error (a bad configuration is \
        refused before the running agent is stopped).")]
    Restart(ServiceArgs),
    /// Make the running agent re-read its configuration (SIGHUP).
    #[command(long_about = "Send SIGHUP to the supervisor, which passes it \
        on to the agent (or to the agent itself when no supervisor runs, \
        e.g. under systemd), and wait up to 5 s until the agent reports the \
        reload. A configuration the agent rejects leaves it running on the \
        previous one.\n\n\
        Example:\n  lbdeploy agent reload\n\n\
        Exit codes: 0 reloaded, 1 not running, rejected (the reason is \
        printed) or no answer in time.")]
    Reload,
    /// Remove the VIPs and data plane a director agent that is gone left.
    #[command(long_about = "Remove what a director agent that no longer \
        runs may have left on this host, as it listed it in \
        /run/lbdeploy/holdings.json before taking any of it: each listed \
        VIP still on its interface, the nftables table netdev lbdeploy, \
        and the listed IPVS services lbdeploy owns. Needs no \
        configuration. Each removal is logged; running it again finds \
        nothing to do. Refuses while an agent answers on its status \
        socket. The supervisor runs it before each restart, the systemd \
        unit as ExecStopPost, so that a host whose agent is not running \
        holds nothing of it (a real server's VIPs on lo are not listed and \
        stay).\n\n\
        Example:\n  lbdeploy agent cleanup\n\n\
        Exit codes: 0 removed, or nothing to do (no holdings file), 1 error \
        (a holdings file refused as corrupt, an agent still running, or a \
        removal that failed: the others were still tried).")]
    Cleanup,
    /// Run the agent in the foreground and restart it when it exits.
    #[command(
        hide = true,
        long_about = "What `agent start` runs \
        detached: write /run/lbdeploy/agent.pid, run the agent, and when it \
        exits run `agent cleanup` and restart it, 1 s later, doubling with \
        each quick exit up to 30 s, never giving up; pass SIGHUP on, and \
        stop it on SIGTERM (or on SIGUSR1, passed on: `agent restart`'s \
        hand-over).\n\n\
        Example:\n  lbdeploy agent supervise realserver --config \
        /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 stopped by SIGTERM, 1 gave up or error."
    )]
    Supervise(ServiceArgs),
    /// Reconcile the kernel's IPVS table with a director configuration once.
    #[command(
        name = "ipvs-sync",
        hide = true,
        long_about = "Make the kernel's IPVS table hold the configuration's \
        virtual services (every real server taken as healthy), changing \
        only what differs and only what lbdeploy installed \
        (/run/lbdeploy/ipvs-owned.json); then print the table as \
        `agent ipvs-dump` does. For tests and diagnosis: the director \
        agent does this itself.\n\n\
        Example:\n  lbdeploy agent ipvs-sync --config /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 in sync, 1 error."
    )]
    IpvsSync(AgentArgs),
    /// Print the kernel's IPVS table.
    #[command(
        name = "ipvs-dump",
        hide = true,
        long_about = "Print the kernel's IPVS table as read over generic \
        netlink, one line per service and per destination, in the words \
        of `ipvsadm -Ln`.\n\n\
        Example:\n  lbdeploy agent ipvs-dump\n\n\
        Exit codes: 0 printed, 1 error (e.g. no IPVS in the kernel)."
    )]
    IpvsDump,
    /// Drain a real server on this director: weight 0, kept across restarts.
    #[command(long_about = "Record real server ADDRESS as drained on this \
        director (in every service it is in, or in --service only) in \
        /var/lib/lbdeploy/drained.json, and have the running agent reload: \
        it then forwards to it with weight 0 — with IPVS no new \
        connection while the established ones go on; with nftables, which \
        keeps no connection state, its flows move to the other real \
        servers at once. Kept across the agent's restarts and the host's \
        reboots until `agent undrain`. `lbdeploy drain` runs this on every \
        director.\n\n\
        Example:\n  lbdeploy agent drain 192.168.1.21 --service web\n\n\
        Exit codes: 0 drained (or already), 1 error (an unreadable drained \
        file is not written over).")]
    Drain(DrainArgs),
    /// Put a drained real server back in service on this director.
    #[command(long_about = "Remove real server ADDRESS from this director's \
        drained list (every entry of it, or --service's only) and have the \
        running agent reload, which forwards to it with its weight again.\n\n\
        Example:\n  lbdeploy agent undrain 192.168.1.21\n\n\
        Exit codes: 0 back (or was not drained), 1 error.")]
    Undrain(DrainArgs),
    /// Enter a cgroup, then execute a command (how the agent runs one).
    #[command(
        name = "exec-in",
        hide = true,
        long_about = "What the agent runs its checks, scripts and hooks \
        through when systemd delegated its cgroup: move this process into \
        the cgroup DIR, take the user and group ids given, and execute the \
        command with stdin, stdout and stderr on /dev/null, so that \
        nothing it starts runs outside the cgroup the agent kills at a \
        timeout.\n\n\
        Example:\n  lbdeploy agent exec-in --cgroup \
        /sys/fs/cgroup/system.slice/lbdeploy-agent.service/run-0 -- \
        /bin/sh -c 'exit 0'\n\n\
        Exit codes: the command's; 127 when it could not be started (the \
        reason on stderr)."
    )]
    ExecIn(ExecInArgs),
    /// Execute a command that dies with the agent (how BIRD runs).
    #[command(
        hide = true,
        long_about = "What the agent runs BIRD through: ask the kernel to \
        send this process SIGTERM when the thread of process PARENT that \
        started it ends (PR_SET_PDEATHSIG, kept across exec), check that \
        PARENT is still its parent, and execute the command with stdin on \
        /dev/null. A killed agent so takes BIRD, and its BGP sessions, \
        with it.\n\n\
        Example:\n  lbdeploy agent tied --parent 4242 -- bird -f -c \
        /run/lbdeploy/bird.conf\n\n\
        Exit codes: the command's; 127 when it could not be started (the \
        reason on stderr)."
    )]
    Tied(TiedArgs),
}

/// What `agent tied` runs.
#[derive(Debug, Args)]
pub struct TiedArgs {
    /// The process whose end ends the command.
    #[arg(long, value_name = "PID")]
    pub parent: i32,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub argv: Vec<String>,
}

/// Which real server `agent drain` and `undrain` take.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The real server's address.
    #[arg(value_name = "ADDRESS")]
    pub address: std::net::IpAddr,
    /// Only in this service.
    #[arg(long, value_name = "NAME", value_parser = service_name)]
    pub service: Option<String>,
}

/// A service name as the configuration may have it: printable, short.
fn service_name(text: &str) -> Result<String, String> {
    let printable = text.chars().all(|c| !c.is_control());
    if text.is_empty() || text.len() > 128 || !printable {
        return Err("a service name: 1–128 printable characters".into());
    }
    Ok(text.to_owned())
}

/// What `agent exec-in` runs.
#[derive(Debug, Args)]
pub struct ExecInArgs {
    /// The cgroup to enter.
    #[arg(long, value_name = "DIR")]
    pub cgroup: PathBuf,
    /// The user id to run the command as.
    #[arg(long, requires = "gid")]
    pub uid: Option<u32>,
    /// The group id to run the command as.
    #[arg(long, requires = "uid")]
    pub gid: Option<u32>,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub argv: Vec<String>,
}

/// Options of both agent modes.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent configuration `apply` rendered for this host.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// What the service commands start.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The agent's mode.
    #[arg(value_enum, value_name = "MODE")]
    pub mode: Mode,
    /// The agent configuration.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Run one `lbdeploy agent` command. `json` is the global `--json` flag,
/// which only `status` uses. The runtime directory comes from
/// [`paths::run_dir`] (`$LBDEPLOY_RUN_DIR` or `/run/lbdeploy`).
///
/// # Errors
/// Every failure that should exit 1; its message is what the user reads
/// after `lbdeploy: error:`.
pub fn run(cmd: &AgentCommand, json: bool) -> anyhow::Result<ExitStatus> {
    let run_dir = paths::run_dir();
    match cmd {
        AgentCommand::Director(args) => {
            // A file that does not load keeps nothing more: the runtime
            // refuses it.
            let config =
                crate::inventory::agent::load::<DirectorConfig>(&args.config)
                    .ok();
            let (own, passed) = config.as_ref().map_or_else(
                || (CapabilitySet::empty(), CapabilitySet::empty()),
                |c| {
                    use super::sys::privileges as p;
                    (p::own_capabilities(c), p::passed_capabilities(c))
                },
            );
            super::sys::privileges::confine_if_supervised(own, passed)?;
            // Before the runtime's threads: their stacks are locked too.
            if config.is_some_and(|c| c.vrrp_no_swap) {
                super::sys::memory::lock_all();
            }
            runtime::run::<DirectorConfig>(&args.config, &run_dir)?
        }
        AgentCommand::Realserver(args) => {
            super::sys::privileges::confine_if_supervised(
                CapabilitySet::empty(),
                CapabilitySet::empty(),
            )?;
            runtime::run::<RealserverConfig>(&args.config, &run_dir)?
        }
        AgentCommand::Status => return print_status(&run_dir, json),
        AgentCommand::Start(args) => {
            supervise::start(args.mode, &args.config, &run_dir)?
        }
        AgentCommand::Stop => supervise::stop(&run_dir)?,
        AgentCommand::Restart(args) => {
            supervise::restart(args.mode, &args.config, &run_dir)?
        }
        AgentCommand::Reload => supervise::reload(&run_dir)?,
        AgentCommand::Cleanup => cleanup(&run_dir)?,
        AgentCommand::Supervise(args) => {
            supervise::supervise(args.mode, &args.config, &run_dir)?
        }
        AgentCommand::IpvsSync(args) => ipvs_sync(&args.config, &run_dir)?,
        AgentCommand::IpvsDump => {
            print!("{}", ipvs::render(&ipvs::Ipvs::connect()?.dump()?));
        }
        AgentCommand::Drain(args) => edit_drained(args, true, &run_dir)?,
        AgentCommand::Undrain(args) => edit_drained(args, false, &run_dir)?,
        AgentCommand::Tied(args) => {
            process::exec_tied(args.parent, &args.argv);
            return Ok(ExitStatus::NotStarted);
        }
        AgentCommand::ExecIn(args) => {
            let ids = args.uid.zip(args.gid).map(|(uid, gid)| Ids { uid, gid });
            process::exec_in(&args.cgroup, ids, &args.argv);
            return Ok(ExitStatus::NotStarted);
        }
    }
    Ok(ExitStatus::Ok)
}

/// `agent ipvs-sync`: one reconcile of the IPVS table with every real
/// server taken as healthy (so every service at quorum); the changes and
/// what is left alone go to stderr, the resulting table to stdout.
fn ipvs_sync(
    config: &std::path::Path,
    run_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let config: DirectorConfig = crate::inventory::agent::load(config)?;
    let desired = ipvs::desired(&config, |_, _| true, |_| true);
    let mut kernel = ipvs::Ipvs::connect()?;
    let (plan, _) =
        ipvs::sync(&mut kernel, &desired, &ipvs::owned_path(run_dir))?;
    for op in &plan.ops {
        eprintln!("ipvs: {op}");
    }
    for f in &plan.foreign {
        eprintln!("ipvs: left alone (not lbdeploy's): {f}");
    }
    print!("{}", ipvs::render(&kernel.dump()?));
    Ok(())
}

/// `agent drain` (`drain` true) and `agent undrain`: the drained file
/// edited, then the running agent reloaded; one not running takes it at
/// its start.
fn edit_drained(
    args: &DrainArgs,
    drain: bool,
    run_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let path = std::path::Path::new(drain::DRAINED_FILE);
    let mut set = drain::load(path)
        .map_err(|e| anyhow::anyhow!("{e}: fix or remove it first"))?;
    let before = set.clone();
    let address = args.address;
    let entry = Drained { address, service: args.service.clone() };
    if drain {
        set.insert(entry);
    } else {
        set.retain(|d| {
            d.address != address || args.service.is_some() && *d != entry
        });
    }
    let what = match &args.service {
        Some(s) => format!("{address} in {s}"),
        None => address.to_string(),
    };
    if set == before {
        let state = if drain { "already drained" } else { "not drained" };
        println!("{what}: {state}");
        return Ok(());
    }
    drain::save(path, &set)?;
    if status::query(run_dir).is_ok() {
        supervise::reload(run_dir)?;
    }
    let done = if drain { "drained" } else { "back in service" };
    println!("{what}: {done} ({} drained on this director)", set.len());
    Ok(())
}

/// `agent cleanup`, on a runtime of its own: these commands are
/// synchronous, the cleanup's netlink and `nft` are not.
fn cleanup(run_dir: &std::path::Path) -> anyhow::Result<()> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let removed = rt.block_on(super::cleanup::run(run_dir))?;
    if removed > 0 {
        tracing::info!("cleanup: done, {removed} removed");
    }
    Ok(())
}

/// `agent status`: the answer on stdout (data), 1 when nobody answers, 3
/// when the agent answers but says it is unhealthy.
fn print_status(
    run_dir: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let status = match status::query(run_dir) {
        Ok(s) => s,
        Err(e) => bail!("{e}"),
    };
    let mut out = std::io::stdout().lock();
    if json {
        crate::util::terminal::write_json(&mut out, &status)?;
        writeln!(out)?;
    } else {
        status.write_human(&mut out)?;
    }
    Ok(if status.healthy { ExitStatus::Ok } else { ExitStatus::Partial })
}
