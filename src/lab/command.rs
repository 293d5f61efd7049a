//! `lbdeploy lab …`: the lab's command line and what each subcommand
//! prints; building, inspecting and removing labs is the rest of
//! [`crate::lab`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{HostInit, Restart};
use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::inventory;

/// Options of `lab`, shared by its subcommands.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where the lab keeps its state.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "LBDEPLOY_LAB_STATE_DIR",
        help_heading = "Lab options",
        long_help = "The directory holding the lab's state file, keys and \
                     logs. Defaults to /var/lib/lbdeploy-lab/CLUSTER, with \
                     CLUSTER from the inventory. down, status and exec \
                     need no inventory with --state-dir, nor when there is \
                     no inventory file and only one lab in the default \
                     place. \
                     Labs with different state directories run side by \
                     side, each on a segment of its own.\n\n\
                     Example:\n  lbdeploy lab --state-dir /tmp/lab1 status"
    )]
    pub state_dir: Option<PathBuf>,

    /// What to do with the lab.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The lab's commands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create a namespace host with its own sshd for every inventory host.
    #[command(long_about = "Build the inventory's cluster on this machine \
        (as root): every director and real server becomes a host with its own \
        network, mount and UTS namespaces, its inventory address and \
        interface name on one bridged segment, private /etc/lbdeploy, \
        /var/lib/lbdeploy, /usr/local/sbin, /etc/sysctl.d, \
        /etc/systemd/system, /run and /root, and its own sshd. Real servers \
        also answer HTTP on their service ports with their name. Two more \
        hosts come from the inventory's `lab:` section: the controller, set \
        up to `ssh HOST` to every host with strict host-key checking, and \
        the client. With `lab.router`, a third: a router running BIRD \
        between the client (then on a link of its own behind it) and the \
        hosts, peering over BGP with every director and routing each VIP \
        they announce over all of them (`lab exec router -- birdc show \
        route`). Running it again on a \
        lab that is up changes nothing; on a half-built one it rebuilds.\n\n\
        With --init systemd, every director and real server is instead a \
        container booting systemd from a Debian bookworm root file system \
        (built once with debootstrap into /var/cache/lbdeploy-lab, about \
        1–2 minutes, then cached), with its own network namespace at every \
        boot: hosts as real as they come here, reboots included (see \
        `lab reboot` and `lab crash`).\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab up\n  \
        lbdeploy -i inventory.example.yml lab up --init systemd\n  \
        lbdeploy -i inventory.bgp.example.yml lab up\n\n\
        Exit codes: 0 up, 1 error (nothing is left behind).")]
    Up {
        /// How directors and real servers run.
        #[arg(long, value_enum, default_value_t = HostInit::Namespace)]
        init: HostInit,
    },

    /// Remove everything the lab created.
    #[command(long_about = "Stop the lab's processes, delete its namespaces \
        (their mounts go with them) and remove its state directory: exactly \
        what the state file records, also after an interrupted `up`. Without \
        a lab it does nothing.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab down")]
    Down,

    /// Show the lab's hosts, addresses and whether their daemons run.
    #[command(long_about = "Show every lab host with its role, address, \
        namespace and processes (namespace holder, sshd, HTTP responders, \
        the router's BIRD), whether each runs and listens, and the \
        router's BGP sessions. With --json, the same as JSON on \
        stdout.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab status\n\n\
        Exit codes: 0 healthy, 1 no lab, 3 something is not running.")]
    Status,

    /// Run a command inside a lab host.
    #[command(long_about = "Run CMD inside HOST's namespaces (network, \
        mount, hostname), in the current directory when the host can see \
        it. This lbdeploy is first on PATH there. The exit status is the \
        command's.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab exec controller \
        -- ssh keepalived01 hostname")]
    Exec {
        /// The host: an inventory name, `controller`, `client` or
        /// `router`.
        #[arg(value_name = "HOST")]
        host: String,
        /// The command and its arguments, after `--`.
        #[arg(value_name = "CMD", last = true, required = true)]
        command: Vec<String>,
    },

    /// Reboot a systemd host cleanly and wait until it serves again.
    #[command(long_about = "Run `systemctl reboot` inside HOST (a lab built \
        with --init systemd) and wait until it has booted again and its sshd \
        and web servers listen; print how long that took. The host boots \
        with a fresh network namespace, as a real host does: what is not \
        configured to come back does not.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab reboot rs01\n\n\
        Exit codes: 0 back, 1 error or not back within 60 s.")]
    Reboot {
        /// The host: a director or real server.
        #[arg(value_name = "HOST")]
        host: String,
    },

    /// Cut a systemd host's power, boot it again and wait until it serves.
    #[command(long_about = "Kill every process of HOST (a lab built with \
        --init systemd) at once, as a power cut does — no unit stops, \
        nothing is flushed — then boot it again and wait until its sshd and \
        web servers listen; print how long that took.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab crash keepalived01\n\n\
        Exit codes: 0 back, 1 error or not back within 60 s.")]
    Crash {
        /// The host: a director or real server.
        #[arg(value_name = "HOST")]
        host: String,
    },

    /// The whole cluster at work, step by step: up, plan, apply, traffic,
    /// a real server and a director failing, recovery, down.
    #[command(long_about = "Bring the lab up from the inventory, plan and \
        apply it from the controller, send the client's requests through \
        the VIP and show who answers, stop a real server's web server and \
        show it leave the pool, kill -9 a director's agent and show the \
        cluster carry on, bring everything back, check that a second plan \
        is empty, and take the lab down (kept with --keep). Every step is \
        checked against a bound from the configuration.\n\n\
        The inventory picks the story. With VRRP, the master's agent is \
        killed and the VIP moves to the backup within \
        Master_Down_Interval, with the client's outage shown. When every \
        VIP is announced over BGP (`announce: bgp`, with `lab.router`), \
        all directors are active: the router's route has a next hop per \
        director and each carries part of the requests; the first \
        director's agent is killed (BIRD dies with it) and the router \
        drops it within BFD's interval × multiplier (else the hold time) \
        while the client's long-lived streams and requests through the \
        other directors go on without a failure.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab demo\n  \
        lbdeploy -i inventory.bgp.example.yml lab demo\n\n\
        Exit codes: 0 every step behaved, 1 a step did not (the lab is \
        taken down all the same, unless --keep).")]
    Demo {
        /// Leave the lab up at the end.
        #[arg(long)]
        keep: bool,
        /// How directors and real servers run (as for `lab up`).
        #[arg(long, value_enum, default_value_t = HostInit::Namespace)]
        init: HostInit,
    },

    /// Serve HTTP as a lab real server (started by `lab up`).
    #[command(hide = true)]
    Responder {
        /// The port to listen on.
        #[arg(long, value_name = "PORT")]
        port: u16,
        /// The host name to answer with.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The address to bind; the wildcard so VIP traffic arrives too.
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
        listen: std::net::IpAddr,
        /// The status to answer with: a failing application's 500 or 503
        /// for health-check tests.
        #[arg(long, value_name = "CODE", default_value_t = 200)]
        status: u16,
        /// Wait this long before answering, e.g. `3s`: a hung
        /// application for health-check tests.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        delay: Option<std::time::Duration>,
        /// Answer DNS over UDP on this port too: TXT queries with the
        /// host name, A or AAAA queries with --dns-answer.
        #[arg(long, value_name = "PORT")]
        dns_port: Option<u16>,
        /// The address A (IPv4) or AAAA (IPv6) queries get; without it
        /// they get no answer (NOERROR, never NXDOMAIN).
        #[arg(long, value_name = "ADDR", requires = "dns_port")]
        dns_answer: Option<std::net::IpAddr>,
        /// Answer every UDP datagram on this port too: with --udp-answer,
        /// or an echo without it.
        #[arg(long, value_name = "PORT")]
        udp_port: Option<u16>,
        /// The text every datagram gets instead of its echo.
        #[arg(long, value_name = "TEXT", requires = "udp_port")]
        udp_answer: Option<String>,
        /// Speak SMTP on this port too: a greeting, HELO/EHLO, QUIT.
        #[arg(long, value_name = "PORT")]
        smtp_port: Option<u16>,
        /// The greeting's code: a refusal such as 554 for health-check
        /// tests.
        #[arg(
            long,
            value_name = "CODE",
            default_value_t = 220,
            requires = "smtp_port"
        )]
        smtp_greeting: u16,
        /// The code HELO and EHLO get: a refusal such as 502 for
        /// health-check tests.
        #[arg(
            long,
            value_name = "CODE",
            default_value_t = 250,
            requires = "smtp_port"
        )]
        smtp_helo: u16,
        /// Serve HTTPS on this port too, with --tls-cert and --tls-key.
        #[arg(long, value_name = "PORT", requires_all = ["tls_cert", "tls_key"])]
        tls_port: Option<u16>,
        /// The PEM file of the HTTPS certificate chain.
        #[arg(long, value_name = "FILE", requires = "tls_port")]
        tls_cert: Option<PathBuf>,
        /// The PEM file of its private key.
        #[arg(long, value_name = "FILE", requires = "tls_port")]
        tls_key: Option<PathBuf>,
    },
}

/// The state directory of an existing lab: `--state-dir`; else, when there
/// is no inventory file, the only lab in the default place; else the
/// inventory's cluster's default.
fn lab_state_dir(
    global: &GlobalArgs,
    args: &LabArgs,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.state_dir {
        return Ok(dir.clone());
    }
    if !global.inventory.exists()
        && let Some(dir) = super::sole_default_lab()
    {
        return Ok(dir);
    }
    Ok(super::default_state_dir(&load_inventory(global)?.cluster))
}

fn load_inventory(global: &GlobalArgs) -> anyhow::Result<inventory::Inventory> {
    match inventory::load(&global.inventory, &inventory::System) {
        Ok(l) => Ok(l.inventory),
        Err(e) => bail!("{e}"),
    }
}

/// The inventory's directory, against which its relative secret files
/// are read.
fn inventory_dir(global: &GlobalArgs) -> &std::path::Path {
    global.inventory.parent().unwrap_or(std::path::Path::new("."))
}

/// How the lab's hints name this lab in later commands.
fn lab_selector(global: &GlobalArgs, args: &LabArgs) -> String {
    match &args.state_dir {
        Some(dir) => format!("--state-dir {}", dir.display()),
        None => format!("-i {}", global.inventory.display()),
    }
}

/// `lbdeploy lab …`.
///
/// # Errors
/// Whatever stops the lab command; the lab is never left half-built.
pub fn run(global: &GlobalArgs, args: &LabArgs) -> anyhow::Result<ExitStatus> {
    match &args.command {
        LabCommand::Up { init } => up(global, args, *init),
        LabCommand::Down => down(global, args),
        LabCommand::Status => status(global, args),
        LabCommand::Exec { host, command } => {
            let dir = lab_state_dir(global, args)?;
            match super::exec(&dir, host, command)? {}
        }
        LabCommand::Reboot { host } => {
            restart(global, args, host, Restart::Reboot)
        }
        LabCommand::Crash { host } => {
            restart(global, args, host, Restart::PowerCut)
        }
        LabCommand::Demo { keep, init } => demo(global, args, *keep, *init),
        LabCommand::Responder {
            port,
            name,
            listen,
            status,
            delay,
            dns_port,
            dns_answer,
            udp_port,
            udp_answer,
            smtp_port,
            smtp_greeting,
            smtp_helo,
            tls_port,
            tls_cert,
            tls_key,
        } => {
            let behaviour = super::responder::Behaviour {
                name: name.clone(),
                status: *status,
                delay: delay.unwrap_or_default(),
            };
            // DNS, UDP, SMTP and HTTPS first: each is bound by the time HTTP
            // listens, which is what `lab status` and the tests wait for.
            if let Some(dns_port) = dns_port {
                let answers = super::responder::DnsAnswers {
                    address: *dns_answer,
                    name: name.clone(),
                };
                super::responder::serve_dns(*listen, *dns_port, answers)?;
            }
            if let Some(port) = udp_port {
                let answer = udp_answer.clone();
                super::protocols::serve_udp(*listen, *port, answer)?;
            }
            if let Some(port) = smtp_port {
                let smtp = super::protocols::Smtp {
                    name: name.clone(),
                    greeting: *smtp_greeting,
                    helo: *smtp_helo,
                };
                super::protocols::serve_smtp(*listen, *port, smtp)?;
            }
            if let (Some(port), Some(cert), Some(key)) =
                (tls_port, tls_cert, tls_key)
            {
                let b = behaviour.clone();
                super::responder::serve_tls(*listen, *port, cert, key, b)?;
            }
            super::responder::serve(*listen, *port, behaviour)?;
            Ok(ExitStatus::Ok)
        }
    }
}

/// The state directory a new lab gets: `--state-dir`, or the cluster's.
fn new_state_dir(args: &LabArgs, inv: &inventory::Inventory) -> PathBuf {
    match &args.state_dir {
        Some(dir) => dir.clone(),
        None => super::default_state_dir(&inv.cluster),
    }
}

/// `lab up`, then how to use the lab.
fn up(
    global: &GlobalArgs,
    args: &LabArgs,
    init: HostInit,
) -> anyhow::Result<ExitStatus> {
    let mut talk = std::io::stderr().lock();
    let inv = load_inventory(global)?;
    let dir = new_state_dir(args, &inv);
    let outcome =
        super::up(&inv, inventory_dir(global), &dir, init, &mut talk)?;
    if !global.quiet {
        if outcome == super::UpOutcome::AlreadyUp {
            writeln!(
                talk,
                "lab {} was already up; nothing changed",
                inv.cluster
            )?;
        }
        let status = super::status(&dir)?.context("the lab state vanished")?;
        super::print_usage(&status, &lab_selector(global, args), &mut talk)?;
    }
    Ok(ExitStatus::Ok)
}

/// `lab reboot` and `lab crash`.
fn restart(
    global: &GlobalArgs,
    args: &LabArgs,
    host: &str,
    how: Restart,
) -> anyhow::Result<ExitStatus> {
    let dir = lab_state_dir(global, args)?;
    let took = super::restart(&dir, host, how)?;
    if !global.quiet {
        let what = match how {
            Restart::Reboot => "rebooted",
            Restart::PowerCut => "lost power",
        };
        writeln!(
            std::io::stderr().lock(),
            "{host} {what}; serving again after {:.1} s",
            took.as_secs_f64()
        )?;
    }
    Ok(ExitStatus::Ok)
}

/// `lab down`.
fn down(global: &GlobalArgs, args: &LabArgs) -> anyhow::Result<ExitStatus> {
    let dir = lab_state_dir(global, args)?;
    let outcome = super::down(&dir)?;
    if !global.quiet {
        let mut talk = std::io::stderr().lock();
        match outcome {
            super::DownOutcome::Removed => {
                writeln!(talk, "lab in {} removed", dir.display())?
            }
            super::DownOutcome::NothingThere => {
                writeln!(talk, "no lab in {}; nothing to do", dir.display())?
            }
        }
    }
    Ok(ExitStatus::Ok)
}

/// `lab status`: 0 healthy, 3 something is not running.
fn status(global: &GlobalArgs, args: &LabArgs) -> anyhow::Result<ExitStatus> {
    let dir = lab_state_dir(global, args)?;
    let Some(status) = super::status(&dir)? else {
        bail!("no lab in {} — start one with `lbdeploy lab up`", dir.display());
    };
    let mut out = std::io::stdout().lock();
    if global.json {
        crate::util::terminal::write_json(&mut out, &status)?;
        writeln!(out)?;
    } else {
        super::print_status(&status, &mut out)?;
    }
    Ok(if status.healthy { ExitStatus::Ok } else { ExitStatus::Partial })
}

/// `lab demo`: up, the demo's steps, and down unless `keep`, also when a
/// step failed.
fn demo(
    global: &GlobalArgs,
    args: &LabArgs,
    keep: bool,
    init: HostInit,
) -> anyhow::Result<ExitStatus> {
    let mut talk = std::io::stderr().lock();
    let inv = load_inventory(global)?;
    let dir = new_state_dir(args, &inv);
    let router = inv.lab.as_ref().is_some_and(|l| l.router.is_some());
    let hosts =
        inv.directors.len() + inv.real_servers.len() + 2 + usize::from(router);
    writeln!(talk, "lab up ({hosts} hosts) ...")?;
    super::up(&inv, inventory_dir(global), &dir, init, &mut talk)?;
    let result =
        super::demo::Demo::new(&global.inventory, &inv, &dir, init, &mut talk)
            .and_then(|mut d| d.run());
    if keep {
        writeln!(
            talk,
            "the lab stays up: `lbdeploy {} lab down` removes it",
            lab_selector(global, args)
        )?;
    } else {
        super::down(&dir)?;
        writeln!(talk, "lab down")?;
    }
    result.map(|()| ExitStatus::Ok)
}
