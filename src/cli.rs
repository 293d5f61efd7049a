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

use crate::inventory::{self, Diagnostics, Severity};
use crate::lab;

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
        Example:\n  lbdeploy plan --detailed-exitcode")]
    Plan,

    /// Converge every host to the inventory.
    #[command(long_about = "Converge every host to the inventory over SSH, \
        real servers first, then the backup directors, then the master.\n\n\
        Example:\n  lbdeploy apply --yes")]
    Apply,

    /// Go back to the previously applied inventory.
    #[command(long_about = "Apply the previous generation of the inventory \
        (or an earlier one) through the same plan and apply steps.\n\n\
        Example:\n  lbdeploy rollback")]
    Rollback,

    /// List the applied generations.
    #[command(long_about = "List the generations recorded by apply: number, \
        time, user and inventory hash.\n\nExample:\n  lbdeploy history")]
    History,

    /// Show the live state of every host's agent.
    #[command(long_about = "Ask every host's agent for its state: VRRP role, \
        VIPs, real-server health.\n\nExample:\n  lbdeploy status")]
    Status,

    /// Run the on-host agent (what apply installs and starts).
    #[command(subcommand)]
    Agent(AgentCommand),

    /// Build a simulated cluster in network namespaces on this machine.
    Lab(LabArgs),

    /// Turn keepalived.conf files into an inventory.
    #[command(
        name = "import-keepalived",
        long_about = "Read the directors' keepalived.conf files and write an \
            inventory.\n\n\
            Example:\n  lbdeploy import-keepalived \
            keepalived01=/etc/keepalived/keepalived.conf -o inventory.yml"
    )]
    ImportKeepalived,

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

/// The agent's modes.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run as a director: VRRP, VIPs, health checks, data plane.
    Director,
    /// Run as a real server: ARP suppression and the VIP on lo.
    Realserver,
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
        Command::Plan => not_yet("plan", 4),
        Command::Apply => not_yet("apply", 4),
        Command::Rollback => not_yet("rollback", 4),
        Command::History => not_yet("history", 4),
        Command::Status => not_yet("status", 8),
        Command::Agent(AgentCommand::Director) => not_yet("agent director", 6),
        Command::Agent(AgentCommand::Realserver) => {
            not_yet("agent realserver", 5)
        }
        Command::Lab(args) => lab(&cli, args),
        Command::ImportKeepalived => not_yet("import-keepalived", 9),
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
        LabCommand::Responder { port, name, listen } => {
            lab::responder::serve(*listen, *port, name)?;
            Ok(ExitStatus::Ok)
        }
    }
}

fn not_yet(what: &str, issue: u32) -> anyhow::Result<ExitStatus> {
    bail!("`lbdeploy {what}` is not implemented yet (issue #{issue})")
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
