//! The command line: clap definitions, and the glue from a parsed command to
//! the library.
//!
//! Only this module decides exit codes and prints for people. The rule is the
//! same for every command (see `ExitStatus`): 0 done or nothing to do, 1
//! error, 2 changes pending (`plan --detailed-exitcode`), 3 partial failure.
//! stdout is data (plans, `--json`), stderr is talk.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::agent;
use crate::apply;
use crate::import;
use crate::inventory::{self, Diagnostics, Severity};
use crate::lab;
use crate::util::files;

/// Deploy and run LVS Direct-Routing clusters from one inventory file.
#[derive(Debug, Parser)]
#[command(
    name = "lbdeploy",
    version,
    about,
    long_about = "Deploy and run LVS Direct-Routing clusters from one \
                  inventory file.\n\n\
                  lbdeploy replaces keepalived.conf on the directors and the \
                  rc.local/arptables script on the real servers: `plan` shows \
                  what would change on every host, `apply` converges them \
                  over SSH, and the same binary runs on each host as the \
                  agent.\n\n\
                  Example:\n  \
                  lbdeploy -i inventory.example.yml validate",
    after_help = "Exit codes: 0 done, 1 error, 2 changes pending \
                  (plan --detailed-exitcode), 3 some hosts failed."
)]
pub struct Cli {
    /// Inventory file.
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        default_value = "inventory.yml",
        help_heading = "Global options",
        long_help = "The inventory file describing the cluster. Defaults to \
                     inventory.yml in the current directory; start from the \
                     example with `-i inventory.example.yml`."
    )]
    pub inventory: PathBuf,

    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Say more on stderr (repeat for more).
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        conflicts_with = "quiet",
        help_heading = "Global options"
    )]
    pub verbose: u8,

    /// Say only errors on stderr.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,

    /// How the agent and the host side of apply write their log lines.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "LBDEPLOY_LOG_FORMAT",
        default_value_t,
        help_heading = "Global options",
        long_help = "How `lbdeploy agent` and `lbdeploy host` write their \
                     log lines on stderr (agent.log under lbdeploy's \
                     supervisor, the journal under systemd): `logfmt` \
                     (ts=… level=info pid=… instance=VI_1 msg=\"…\") or \
                     `json`, one object a line."
    )]
    pub log_format: crate::util::log::Format,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the inventory and report every problem at once.
    #[command(long_about = "Check the inventory and report every problem at \
        once, each as FILE:LINE:COL: severity: field: what is wrong — what to \
        do. Nothing is contacted.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml validate --strict\n\n\
        Exit codes: 0 valid, 1 invalid (or warnings with --strict).")]
    Validate(ValidateArgs),

    /// Show what apply would change on every host.
    #[command(long_about = "Gather every host's current state over SSH and \
        show what apply would change: files as unified diffs, sysctls, \
        addresses, binary version and service state.\n\n\
        Example:\n  lbdeploy plan --detailed-exitcode\n  lbdeploy plan \
        --limit role:director --out reviewed.plan\n\n\
        Exit codes: 0 no changes (or changes without \
        --detailed-exitcode), 2 changes with --detailed-exitcode, 1 error or \
        a host unreachable.")]
    Plan(PlanArgs),

    /// Converge every host to the inventory.
    #[command(long_about = "Converge every host to the inventory over SSH, \
        real servers first, then the backup directors, then the master; the \
        hosts of a phase in parallel, each phase verified before the next. \
        Every file is written atomically; each host is confirmed over a new \
        SSH connection and restores its previous generation by itself when \
        the confirmation does not arrive within --confirm-timeout. Without \
        a saved plan it shows the plan and asks on a terminal.\n\n\
        Example:\n  lbdeploy apply --yes\n  lbdeploy apply reviewed.plan\n\n\
        Exit codes: 0 every host ok, 3 some host failed, was unreachable or \
        rolled back, 1 error before any host changed.")]
    Apply(ApplyArgs),

    /// Go back to the previously applied inventory.
    #[command(long_about = "Apply the previous generation of the inventory \
        (or generation N with --to) through the same plan, confirm and apply \
        steps, recording a new generation (like `git revert`). Inline VRRP \
        passwords are never stored; they are taken from the current \
        inventory when they are the same.\n\n\
        Example:\n  lbdeploy rollback --yes\n  lbdeploy rollback --to 3\n\n\
        Exit codes: as apply.")]
    Rollback(RollbackArgs),

    /// List the applied generations.
    #[command(long_about = "List the generations recorded by apply and \
        rollback, from .lbdeploy/ next to the inventory: number, time, who, \
        command, inventory hash and per-host results.\n\n\
        Example:\n  lbdeploy history --json")]
    History,

    /// Break a lock left by an apply that is gone.
    #[command(long_about = "Remove the lock of apply ID from .lbdeploy/ next \
        to the inventory and from every host that still holds it. Only a \
        lock held by ID is removed.\n\n\
        Example:\n  lbdeploy unlock 6745a1b20c3f\n\n\
        Exit codes: 0 removed (or there was none), 1 held by another \
        apply or a host unreachable.")]
    Unlock {
        /// The apply whose lock to break, as the lock message names it.
        id: String,
    },

    /// Show the live state of every host's agent.
    #[command(long_about = "Ask every host's agent for its state: VRRP role, \
        VIPs, real-server health.\n\nExample:\n  lbdeploy status")]
    Status,

    /// Run the on-host agent (what apply installs and starts).
    #[command(subcommand)]
    Agent(AgentCommand),

    /// What apply runs on a managed host.
    #[command(subcommand, hide = true)]
    Host(HostCommand),

    /// Build a simulated cluster in network namespaces on this machine.
    Lab(LabArgs),

    /// Turn keepalived.conf files into an inventory.
    #[command(
        name = "import-keepalived",
        long_about = "Read the directors' keepalived.conf files (and the \
            real servers' rc.local/arptables scripts) and write one \
            inventory. Each director's own settings (priority, state, \
            interface) go to its `directors` entry; everything else must be \
            the same in every file, and each difference is reported with \
            both files and lines. Every keyword lbdeploy cannot represent yet \
            is listed as a warning saying what happens to it, and the \
            warnings are repeated at the top of the written file.\n\n\
            keepalived.conf does not hold everything an inventory needs; \
            supply the rest:\n  \
            * each director's own address: --host NAME=ADDRESS/PREFIX \
            (not needed when `unicast_src_ip` gives it and a VIP's prefix \
            covers it);\n  \
            * each managed real server: --realserver-script NAME=FILE (its \
            RIP and interface are read from the script) and/or --host \
            NAME=ADDRESS/PREFIX@IFACE; other real servers are written as \
            unmanaged `address:` entries;\n  \
            * optional: --cluster, --service NAME=VIP:PORT, --lab-controller \
            and --lab-client.\n\n\
            Example (the seed cluster):\n  \
            lbdeploy import-keepalived keepalived01=ka01.conf \
            keepalived02=ka02.conf \\\n    \
            --host keepalived01=192.168.1.11/24 \
            --host keepalived02=192.168.1.12/24 \\\n    \
            --realserver-script rs01=rs01.sh \
            --realserver-script rs02=rs02.sh \\\n    \
            --cluster lvs-dr-demo --service web=192.168.1.200:80 \
            -o inventory.yml\n\n\
            Exit codes: 0 imported (warnings allowed unless --strict), 1 \
            error: nothing is written."
    )]
    ImportKeepalived(ImportArgs),

    /// Print a shell completion script.
    #[command(
        long_about = "Print a completion script for SHELL on stdout.\n\n\
        Example:\n  lbdeploy completions bash > \
        /etc/bash_completion.d/lbdeploy"
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },

    /// Print the man page (roff) on stdout.
    #[command(long_about = "Print the lbdeploy(1) man page in roff on \
        stdout.\n\nExample:\n  lbdeploy manpage | man -l -")]
    Manpage,
}

/// Options of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,
}

/// Options of `import-keepalived`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The directors' keepalived.conf files.
    #[arg(
        value_name = "DIRECTOR=FILE",
        required = true,
        long_help = "A director's keepalived.conf, named after the director \
                     (keepalived01=/etc/keepalived/keepalived.conf). Without \
                     NAME=, the director is named after its `router_id`. \
                     Give every director of the pair; the first one's order \
                     of instances and services is kept."
    )]
    pub directors: Vec<import::Source>,

    /// A real server's rc.local/arptables script, as NAME=FILE.
    #[arg(
        long = "realserver-script",
        value_name = "NAME=FILE",
        help_heading = "What keepalived.conf does not say",
        long_help = "A real server's rc.local/arptables script; its VIP, \
                     its own address (RIP) and its interface are read from \
                     it, and the real server becomes a managed host named \
                     NAME (the file name without extension when absent). \
                     Repeat for each real server."
    )]
    pub scripts: Vec<import::Source>,

    /// A host's own address: `NAME=ADDRESS/PREFIX[@IFACE]`.
    #[arg(
        long = "host",
        value_name = "NAME=ADDR/PREFIX[@IFACE]",
        help_heading = "What keepalived.conf does not say",
        long_help = "A host's own address with its prefix, and its \
                     interface where the files do not say it. For a \
                     director (keepalived01=192.168.1.11/24) this is \
                     required unless its `unicast_src_ip` gives it; a name \
                     that is not a director makes a managed real server \
                     (rs01=192.168.1.21/24@eth0). Overrides what a script \
                     says."
    )]
    pub hosts: Vec<import::HostSpec>,

    /// The cluster's name.
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "What keepalived.conf does not say",
        long_help = "The inventory's `cluster`. Defaults to the common stem \
                     of the directors' names (keepalived01, keepalived02 → \
                     keepalived)."
    )]
    pub cluster: Option<String>,

    /// Name a virtual service: NAME=VIP:PORT.
    #[arg(
        long = "service",
        value_name = "NAME=VIP:PORT",
        value_parser = import::parse_service_name,
        help_heading = "What keepalived.conf does not say",
        long_help = "A name for the virtual service at VIP:PORT \
                     (web=192.168.1.200:80, web6=[2001:db8::80]:80), used in \
                     logs and plans. Services from a virtual_server_group \
                     are named after the group."
    )]
    pub services: Vec<(String, std::net::SocketAddr)>,

    /// The lab's controller address (with --lab-client).
    #[arg(
        long,
        value_name = "ADDR/PREFIX",
        requires = "lab_client",
        help_heading = "What keepalived.conf does not say"
    )]
    pub lab_controller: Option<inventory::IfAddr>,

    /// The lab's client address (with --lab-controller).
    #[arg(
        long,
        value_name = "ADDR/PREFIX",
        requires = "lab_controller",
        help_heading = "What keepalived.conf does not say"
    )]
    pub lab_client: Option<inventory::IfAddr>,

    /// Write the inventory here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Fail (exit 1, write nothing) when anything is not carried over.
    #[arg(long)]
    pub strict: bool,
}

impl ImportArgs {
    fn request(&self) -> import::Request {
        import::Request {
            directors: self.directors.clone(),
            scripts: self.scripts.clone(),
            hosts: self.hosts.clone(),
            cluster: self.cluster.clone(),
            services: self.services.clone(),
            lab: self.lab_controller.zip(self.lab_client).map(
                |(controller, client)| inventory::Lab { controller, client },
            ),
        }
    }
}

/// The agent's modes, and its service commands for hosts without systemd.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run as a director: VRRP, VIPs, health checks, data plane.
    #[command(long_about = "Run as a director in the foreground: VRRP with \
        the other directors, the VIPs while master, health checks and the \
        kernel data plane. `apply` installs and starts it. Status is \
        served on /run/lbdeploy/agent.sock ($LBDEPLOY_RUN_DIR overrides \
        the directory); SIGHUP re-reads the configuration, keeping the old \
        one if the new one is invalid; SIGTERM stops it.\n\n\
        Example:\n  lbdeploy agent director --config /etc/lbdeploy/agent.yml\n\n\
        Exit codes: 0 stopped by SIGTERM/SIGINT, 1 error (a bad \
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
        answers on its status socket. The supervisor restarts the agent 1 s \
        after it exits, writes its PID to /run/lbdeploy/agent.pid and \
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
        agent and start it again, so a newly installed binary takes \
        effect.\n\n\
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
    /// Run the agent in the foreground and restart it when it exits.
    #[command(
        hide = true,
        long_about = "What `agent start` runs \
        detached: write /run/lbdeploy/agent.pid, run the agent, restart it \
        1 s after it exits (giving up after 5 exits within 10 s), pass \
        SIGHUP on, and stop it on SIGTERM.\n\n\
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
}

/// What `plan`, `apply` and `rollback` act on.
#[derive(Debug, Default, Args)]
pub struct TargetArgs {
    /// Only these hosts: names, globs (`rs*`) or `role:director`,
    /// `role:realserver`; repeat or separate with commas.
    #[arg(long, value_name = "PATTERN")]
    pub limit: Vec<String>,
    /// Roles and templates from this directory instead of the built-in
    /// ones (holding `roles/` and `templates/`).
    #[arg(long, value_name = "DIR")]
    pub roles_dir: Option<PathBuf>,
    /// The agent binary to install; this lbdeploy by default. It must be
    /// statically linked and built for the hosts' architecture.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// How many hosts to work on at once.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub forks: u16,
}

/// Options of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Which hosts and inputs.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan, for `lbdeploy apply FILE` to apply exactly it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How `apply` and `rollback` converge.
#[derive(Debug, Args)]
pub struct ConvergeArgs {
    /// Which hosts and inputs.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How long a host waits for its confirmation before it restores its
    /// previous generation.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub confirm_timeout: std::time::Duration,
    /// A shell command run on this machine after each host is activated
    /// and before it is confirmed (LBDEPLOY_HOST and LBDEPLOY_ADDRESS name
    /// the host); when it fails the host is not confirmed and rolls back.
    #[arg(long, value_name = "CMD")]
    pub smoke_test: Option<String>,
}

/// Options of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `plan --out`: apply exactly it, or refuse it as
    /// stale.
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// How to converge.
    #[command(flatten)]
    pub converge: ConvergeArgs,
}

/// Options of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The generation to go back to; the one before the last by default.
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    /// How to converge.
    #[command(flatten)]
    pub converge: ConvergeArgs,
}

/// Options of both agent modes.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent configuration `apply` rendered for this host.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// The agent's mode, for the service commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentMode {
    /// `lbdeploy agent director`.
    Director,
    /// `lbdeploy agent realserver`.
    Realserver,
}

/// What the service commands start.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The agent's mode.
    #[arg(value_enum, value_name = "MODE")]
    pub mode: AgentMode,
    /// The agent configuration.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// What the controller runs on a managed host during `apply` (hidden: an
/// interface between two lbdeploy binaries, not for people).
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Read an activation (JSON) on stdin, apply it, await confirmation.
    Activate,
    /// Confirm generation N so the host keeps it.
    Confirm {
        /// The generation activated.
        generation: u64,
    },
    /// Wait for confirmation of the pending generation; roll back without.
    Watchdog,
    /// Remove this host's lock if apply ID holds it.
    Unlock {
        /// The apply that holds the lock.
        id: String,
    },
}

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
        the client. Running it again on a lab that is up changes nothing; \
        on a half-built one it rebuilds.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab up\n\n\
        Exit codes: 0 up, 1 error (nothing is left behind).")]
    Up,

    /// Remove everything the lab created.
    #[command(long_about = "Stop the lab's processes, delete its namespaces \
        (their mounts go with them) and remove its state directory: exactly \
        what the state file records, also after an interrupted `up`. Without \
        a lab it does nothing.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab down")]
    Down,

    /// Show the lab's hosts, addresses and whether their daemons run.
    #[command(long_about = "Show every lab host with its role, address, \
        namespace and processes (namespace holder, sshd, HTTP responders), \
        whether each runs and listens. With --json, the same as JSON on \
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
        /// The host: an inventory name, `controller` or `client`.
        #[arg(value_name = "HOST")]
        host: String,
        /// The command and its arguments, after `--`.
        #[arg(value_name = "CMD", last = true, required = true)]
        command: Vec<String>,
    },

    /// The whole cluster at work, step by step: up, plan, apply, traffic,
    /// a real server and the master failing, recovery, down.
    #[command(long_about = "Bring the lab up from the inventory, plan and \
        apply it from the controller, send the client's requests through \
        the VIP and show who answers, stop a real server's web server and \
        show it leave the pool, kill -9 the master director's agent and \
        show the VIP move to the backup with the client's outage, bring \
        everything back, check that a second plan is empty, and take the \
        lab down (kept with --keep). Every step is checked against a bound \
        from the configuration.\n\n\
        Example:\n  lbdeploy -i inventory.example.yml lab demo\n\n\
        Exit codes: 0 every step behaved, 1 a step did not (the lab is \
        taken down all the same, unless --keep).")]
    Demo {
        /// Leave the lab up at the end.
        #[arg(long)]
        keep: bool,
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
    },
}

/// How a command ended; `main` turns it into the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done, or nothing to do.
    Ok = 0,
    /// An error; nothing or everything was done, never half.
    Error = 1,
    /// `plan --detailed-exitcode` found changes.
    Changes = 2,
    /// Some hosts failed or rolled back.
    Partial = 3,
}

/// Run a parsed command.
///
/// # Errors
/// Any error that should end the process with status 1, with context.
pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    match &cli.command {
        Command::Validate(args) => validate(&cli, args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(
                *shell,
                &mut cmd,
                "lbdeploy",
                &mut std::io::stdout(),
            );
            Ok(ExitStatus::Ok)
        }
        Command::Manpage => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitStatus::Ok)
        }
        Command::Plan(args) => apply::commands::plan(
            &inputs(&cli, &args.target),
            &apply::commands::PlanOptions {
                forks: args.target.forks.into(),
                json: cli.json,
                detailed_exitcode: args.detailed_exitcode,
                out: args.out.clone(),
            },
        ),
        Command::Apply(args) => apply::commands::apply(
            &inputs(&cli, &args.converge.target),
            args.plan.clone(),
            &converge(&cli, &args.converge),
        ),
        Command::Rollback(args) => apply::commands::rollback(
            &inputs(&cli, &args.converge.target),
            args.to,
            &converge(&cli, &args.converge),
        ),
        Command::History => apply::commands::history(
            &inputs(&cli, &TargetArgs::default()),
            cli.json,
        ),
        Command::Unlock { id } => {
            apply::commands::unlock(&inputs(&cli, &TargetArgs::default()), id)
        }
        Command::Status => not_yet("status", 8),
        Command::Agent(cmd) => {
            crate::util::log::init(cli.log_format);
            agent::service::command(cmd, cli.json)
        }
        Command::Host(cmd) => {
            crate::util::log::init(cli.log_format);
            crate::host::run(cmd)
        }
        Command::Lab(args) => lab(&cli, args),
        Command::ImportKeepalived(args) => import_keepalived(&cli, args),
    }
}

fn converge(cli: &Cli, c: &ConvergeArgs) -> apply::run::Options {
    apply::run::Options {
        forks: c.target.forks.into(),
        yes: c.yes,
        saved: None,
        confirm_timeout: c.confirm_timeout,
        smoke_test: c.smoke_test.clone(),
        json: cli.json,
        quiet: cli.quiet,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    }
}

fn inputs(cli: &Cli, t: &TargetArgs) -> apply::prepare::Inputs {
    apply::prepare::Inputs {
        inventory: cli.inventory.clone(),
        roles_dir: t.roles_dir.clone(),
        binary: t.binary.clone(),
        limit: t.limit.clone(),
    }
}

/// The state directory of an existing lab: `--state-dir`; else, when there
/// is no inventory file, the only lab in the default place; else the
/// inventory's cluster's default.
fn lab_state_dir(cli: &Cli, args: &LabArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.state_dir {
        return Ok(dir.clone());
    }
    if !cli.inventory.exists()
        && let Some(dir) = lab::sole_default_lab()
    {
        return Ok(dir);
    }
    Ok(lab::default_state_dir(&load_inventory(cli)?.cluster))
}

fn load_inventory(cli: &Cli) -> anyhow::Result<inventory::Inventory> {
    match inventory::load(&cli.inventory, &inventory::System) {
        Ok(l) => Ok(l.inventory),
        Err(e) => bail!("{e}"),
    }
}

/// How the lab's hints name this lab in later commands.
fn lab_selector(cli: &Cli, args: &LabArgs) -> String {
    match &args.state_dir {
        Some(dir) => format!("--state-dir {}", dir.display()),
        None => format!("-i {}", cli.inventory.display()),
    }
}

fn lab(cli: &Cli, args: &LabArgs) -> anyhow::Result<ExitStatus> {
    let mut talk = std::io::stderr().lock();
    match &args.command {
        LabCommand::Up => {
            let inv = load_inventory(cli)?;
            let dir = match &args.state_dir {
                Some(dir) => dir.clone(),
                None => lab::default_state_dir(&inv.cluster),
            };
            let outcome = lab::up(&inv, &dir, &mut talk)?;
            if !cli.quiet {
                if outcome == lab::UpOutcome::AlreadyUp {
                    writeln!(
                        talk,
                        "lab {} was already up; nothing changed",
                        inv.cluster
                    )?;
                }
                let status =
                    lab::status(&dir)?.context("the lab state vanished")?;
                lab::print_usage(&status, &lab_selector(cli, args), &mut talk)?;
            }
            Ok(ExitStatus::Ok)
        }
        LabCommand::Down => {
            let dir = lab_state_dir(cli, args)?;
            let outcome = lab::down(&dir)?;
            if !cli.quiet {
                match outcome {
                    lab::DownOutcome::Removed => {
                        writeln!(talk, "lab in {} removed", dir.display())?
                    }
                    lab::DownOutcome::NothingThere => {
                        writeln!(
                            talk,
                            "no lab in {}; nothing to do",
                            dir.display()
                        )?;
                    }
                }
            }
            Ok(ExitStatus::Ok)
        }
        LabCommand::Status => {
            let dir = lab_state_dir(cli, args)?;
            let Some(status) = lab::status(&dir)? else {
                bail!(
                    "no lab in {} — start one with `lbdeploy lab up`",
                    dir.display()
                );
            };
            let mut out = std::io::stdout().lock();
            if cli.json {
                serde_json::to_writer_pretty(&mut out, &status)?;
                writeln!(out)?;
            } else {
                lab::print_status(&status, &mut out)?;
            }
            Ok(if status.healthy {
                ExitStatus::Ok
            } else {
                ExitStatus::Partial
            })
        }
        LabCommand::Exec { host, command } => {
            let dir = lab_state_dir(cli, args)?;
            match lab::exec(&dir, host, command)? {}
        }
        LabCommand::Demo { keep } => {
            let inv = load_inventory(cli)?;
            let dir = match &args.state_dir {
                Some(dir) => dir.clone(),
                None => lab::default_state_dir(&inv.cluster),
            };
            writeln!(
                talk,
                "lab up ({} hosts) ...",
                inv.directors.len() + inv.real_servers.len() + 2
            )?;
            lab::up(&inv, &dir, &mut std::io::sink())?;
            let result =
                lab::demo::Demo::new(&cli.inventory, &inv, &dir, &mut talk)
                    .and_then(|mut d| d.run());
            if *keep {
                writeln!(
                    talk,
                    "the lab stays up: `lbdeploy {} lab down` removes it",
                    lab_selector(cli, args)
                )?;
            } else {
                lab::down(&dir)?;
                writeln!(talk, "lab down")?;
            }
            result.map(|()| ExitStatus::Ok)
        }
        LabCommand::Responder { port, name, listen, status, delay } => {
            let behaviour = lab::responder::Behaviour {
                name: name.clone(),
                status: *status,
                delay: delay.unwrap_or_default(),
            };
            lab::responder::serve(*listen, *port, behaviour)?;
            Ok(ExitStatus::Ok)
        }
    }
}

fn not_yet(what: &str, issue: u32) -> anyhow::Result<ExitStatus> {
    bail!("`lbdeploy {what}` is not implemented yet (issue #{issue})")
}

fn import_keepalived(
    cli: &Cli,
    args: &ImportArgs,
) -> anyhow::Result<ExitStatus> {
    let imported = match import::import(&args.request()) {
        Ok(imported) => imported,
        Err(report) => {
            eprint!("{report}");
            eprintln!(
                "import failed ({} error(s), {} warning(s)); nothing was written",
                report.count(Severity::Error),
                report.count(Severity::Warning)
            );
            return Ok(ExitStatus::Error);
        }
    };
    let warnings = imported.warnings.count(Severity::Warning);
    if !cli.quiet || args.strict {
        eprint!("{}", imported.warnings);
    }
    if args.strict && warnings > 0 {
        eprintln!(
            "import failed with --strict ({warnings} warning(s)); nothing was written"
        );
        return Ok(ExitStatus::Error);
    }
    match &args.output {
        Some(path) => {
            files::write_atomic(path, imported.yaml.as_bytes(), 0o644)?
        }
        None => std::io::stdout().lock().write_all(imported.yaml.as_bytes())?,
    }
    if !cli.quiet {
        let inv = &imported.inventory;
        eprintln!(
            "imported {} directors, {} real servers, {} VRRP instances, {} \
             virtual services ({warnings} warning(s)){}",
            inv.directors.len(),
            inv.real_servers.len(),
            inv.vrrp_instances.len(),
            inv.virtual_services.len(),
            args.output
                .as_ref()
                .map(|p| format!(" into {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(ExitStatus::Ok)
}

fn validate(cli: &Cli, args: &ValidateArgs) -> anyhow::Result<ExitStatus> {
    let loaded = inventory::load(&cli.inventory, &inventory::System);
    let diagnostics = match &loaded {
        Ok(l) => l.warnings.clone(),
        Err(inventory::Error::Invalid(d)) => d.clone(),
        Err(e @ inventory::Error::Read { .. }) => bail!("{e}"),
    };
    let failed = loaded.is_err()
        || (args.strict && diagnostics.count(Severity::Warning) > 0);
    if cli.json {
        print_json(&diagnostics, !failed)?;
    } else if !cli.quiet || failed {
        eprint!("{diagnostics}");
        eprintln!(
            "{}",
            summary(&cli.inventory, &diagnostics, failed, args.strict)
        );
    }
    if let (Ok(l), true) = (&loaded, cli.verbose > 0 && !cli.json) {
        let inv = &l.inventory;
        eprintln!(
            "cluster {}: {} directors, {} real servers, {} VRRP instances, \
             {} virtual services",
            inv.cluster,
            inv.directors.len(),
            inv.real_servers.len(),
            inv.vrrp_instances.len(),
            inv.virtual_services.len()
        );
    }
    Ok(if failed { ExitStatus::Error } else { ExitStatus::Ok })
}

fn summary(file: &Path, d: &Diagnostics, failed: bool, strict: bool) -> String {
    let (errors, warnings) =
        (d.count(Severity::Error), d.count(Severity::Warning));
    let counts = format!("{errors} error(s), {warnings} warning(s)");
    match (failed, errors) {
        (false, _) => format!("{}: valid ({counts})", file.display()),
        (true, 0) if strict => {
            format!("{}: invalid with --strict ({counts})", file.display())
        }
        _ => format!("{}: invalid ({counts})", file.display()),
    }
}

fn print_json(d: &Diagnostics, valid: bool) -> anyhow::Result<()> {
    let items: Vec<_> = d
        .items
        .iter()
        .map(|i| {
            serde_json::json!({
                "file": d.file,
                "line": i.line,
                "column": i.col,
                "severity": match i.finding.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                "path": i.finding.path,
                "message": i.finding.message,
            })
        })
        .collect();
    let doc = serde_json::json!({ "valid": valid, "diagnostics": items });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn inventory_defaults_and_is_global() {
        let cli = Cli::try_parse_from(["lbdeploy", "validate"]).unwrap();
        assert_eq!(cli.inventory, PathBuf::from("inventory.yml"));
        let cli = Cli::try_parse_from(["lbdeploy", "validate", "-i", "x.yml"])
            .unwrap();
        assert_eq!(cli.inventory, PathBuf::from("x.yml"));
    }

    #[test]
    fn import_takes_named_files_hosts_and_both_lab_addresses() {
        let cli = Cli::try_parse_from([
            "lbdeploy",
            "import-keepalived",
            "ka01=a.conf",
            "b.conf",
            "--host",
            "rs01=10.0.0.21/24@eth0",
            "--service",
            "web=[2001:db8::1]:80",
        ])
        .unwrap();
        let Command::ImportKeepalived(args) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!(args.directors[0].name.as_deref(), Some("ka01"));
        assert_eq!(args.directors[1].name, None);
        assert_eq!(args.hosts[0].interface.as_deref(), Some("eth0"));
        assert_eq!(args.services[0].1.port(), 80);
        let bad = |extra: &[&str]| {
            let base = ["lbdeploy", "import-keepalived", "a.conf"];
            Cli::try_parse_from(base.iter().chain(extra)).is_err()
        };
        assert!(bad(&["--lab-controller", "10.0.0.10/24"]));
        assert!(bad(&["--host", "rs01=10.0.0.21"]), "a prefix is required");
        assert!(bad(&["=a.conf"]));
        assert!(
            Cli::try_parse_from(["lbdeploy", "import-keepalived"]).is_err()
        );
    }

    #[test]
    fn lab_state_dir_goes_anywhere_after_lab() {
        for argv in [
            &["lbdeploy", "lab", "--state-dir", "/tmp/l", "status"][..],
            &["lbdeploy", "lab", "status", "--state-dir", "/tmp/l"],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            let Command::Lab(args) = cli.command else { panic!() };
            assert_eq!(args.state_dir, Some(PathBuf::from("/tmp/l")));
        }
    }

    #[test]
    fn lab_exec_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from([
            "lbdeploy",
            "lab",
            "exec",
            "rs01",
            "--",
            "sh",
            "-c",
            "echo -n x",
        ])
        .unwrap();
        let Command::Lab(LabArgs {
            command: LabCommand::Exec { host, command },
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(host, "rs01");
        assert_eq!(command, ["sh", "-c", "echo -n x"]);
        assert!(
            Cli::try_parse_from(["lbdeploy", "lab", "exec", "rs01"]).is_err()
        );
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        assert!(
            Cli::try_parse_from(["lbdeploy", "-v", "-q", "validate"]).is_err()
        );
        let cli = Cli::try_parse_from(["lbdeploy", "-vv", "validate"]).unwrap();
        assert_eq!(cli.verbose, 2);
    }
}
