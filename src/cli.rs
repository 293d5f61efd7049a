//! The command line: the top-level clap definitions and the dispatch from a
//! parsed command to the command that runs it.
//!
//! Each command defines its own arguments beside its body (`validate`,
//! `apply::commands`, `agent::command`, `host`, `lab::command`,
//! `import::command`) and this module embeds them, so nothing below `cli`
//! imports from it. Every command returns an [`ExitStatus`]: 0 done or
//! nothing to do, 1 error, 2 changes pending (`plan --detailed-exitcode`),
//! 3 partial failure. stdout is data (plans, `--json`), stderr is talk.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::agent::command::AgentCommand;
use crate::apply::commands::{ApplyArgs, PlanArgs, RollbackArgs};
use crate::drain::{DrainArgs, Which};
use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::host::HostCommand;
use crate::import::command::ImportArgs;
use crate::lab::command::LabArgs;
use crate::status::StatusArgs;
use crate::validate::ValidateArgs;
use crate::{agent, apply, import, lab, validate};

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
    /// The options every command sees.
    #[command(flatten)]
    pub global: GlobalArgs,

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
    #[command(long_about = "Ask every host at once over SSH, one round trip \
        each: its agent (running, pid, version, generation, healthy or \
        degraded and why), each VRRP instance (state, priorities, VIPs \
        held), each real server's health as each director sees it, and on \
        real servers the VIPs on lo and the ARP settings. Warnings come \
        first: two masters or none for an instance, a VIP held by a host \
        that is not master, a real server up on one director and down on \
        another, a host not at the controller's latest generation, a host \
        unreachable or degraded.\n\n\
        Example:\n  lbdeploy status\n  lbdeploy status --watch 5s \
        --limit role:director\n  lbdeploy --json status\n\n\
        Exit codes: 0 all well, 3 a warning (degraded, unreachable, \
        inconsistent), 1 error before any host was asked.")]
    Status(StatusArgs),

    /// Take a real server out of service on every director, at runtime.
    #[command(long_about = "Drain real server HOST (its inventory name, \
        or the address of an unmanaged one) on every director at once, \
        without editing the inventory: each records it in its own \
        /var/lib/lbdeploy/drained.json (kept across agent restarts and \
        reboots) and forwards to it with weight 0. With IPVS no new \
        connection reaches it and the established ones go on; so with \
        nftables, whose established flows stay pinned to it. `lbdeploy status` shows it drained \
        until `lbdeploy undrain`. --service limits it to one service. \
        --wait then asks the directors every second until none has an \
        active connection to it (IPVS's ActiveConn) and, where the data \
        plane counts packets but not connections (nftables), none has \
        forwarded a packet to it for 15 s; up to --timeout (5m).\n\n\
        Example:\n  lbdeploy drain rs01\n  lbdeploy drain rs01 --service \
        web --wait --timeout 10m\n\n\
        Exit codes: 0 drained on every director (and with --wait, no \
        active connection left), 3 a director failed or could not be \
        reached (the others are drained), or connections left at the \
        timeout, 1 error before any director was asked.")]
    Drain(DrainArgs),

    /// Put a drained real server back in service on every director.
    #[command(long_about = "Undo `lbdeploy drain HOST` on every director: \
        each removes it from its drained list (every entry, or \
        --service's) and forwards to it with its weight again.\n\n\
        Example:\n  lbdeploy undrain rs01\n\n\
        Exit codes: 0 back on every director, 3 a director failed or could \
        not be reached, 1 error before any director was asked.")]
    Undrain(Which),

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

/// Run a parsed command.
///
/// # Errors
/// Any error that should end the process with status 1, with context.
pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let global = &cli.global;
    match &cli.command {
        Command::Validate(args) => validate::run(global, args),
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
        Command::Plan(args) => apply::commands::plan(global, args),
        Command::Apply(args) => apply::commands::apply(global, args),
        Command::Rollback(args) => apply::commands::rollback(global, args),
        Command::History => apply::commands::history(global),
        Command::Unlock { id } => apply::commands::unlock(global, id),
        Command::Status(args) => crate::status::run(global, args),
        Command::Drain(args) => crate::drain::drain(global, args),
        Command::Undrain(which) => crate::drain::undrain(global, which),
        Command::Agent(cmd) => {
            crate::util::log::init(global.log_format);
            agent::command::run(cmd, global.json)
        }
        Command::Host(cmd) => {
            crate::util::log::init(global.log_format);
            crate::host::run(cmd)
        }
        Command::Lab(args) => lab::command::run(global, args),
        Command::ImportKeepalived(args) => import::command::run(global, args),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::lab::command::LabCommand;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn inventory_defaults_and_is_global() {
        let cli = Cli::try_parse_from(["lbdeploy", "validate"]).unwrap();
        assert_eq!(cli.global.inventory, PathBuf::from("inventory.yml"));
        let cli = Cli::try_parse_from(["lbdeploy", "validate", "-i", "x.yml"])
            .unwrap();
        assert_eq!(cli.global.inventory, PathBuf::from("x.yml"));
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

    /// Issue #19: `--watch` alone takes the default interval, `--watch
    /// 5s` its own; `--limit` repeats.
    #[test]
    fn r19_status_takes_watch_with_or_without_an_interval() {
        use std::time::Duration;
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Status(a) = cli.command else { panic!() };
            a
        };
        assert_eq!(parse(&["lbdeploy", "status"]).watch, None);
        let a = parse(&["lbdeploy", "status", "--watch"]);
        assert_eq!(a.watch, Some(Duration::from_secs(2)));
        let a =
            parse(&["lbdeploy", "status", "--watch", "5s", "--limit", "d*"]);
        assert_eq!(
            (a.watch, a.limit),
            (Some(Duration::from_secs(5)), vec!["d*".to_owned()])
        );
        assert!(
            Cli::try_parse_from(["lbdeploy", "status", "--watch", "x"])
                .is_err()
        );
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        assert!(
            Cli::try_parse_from(["lbdeploy", "-v", "-q", "validate"]).is_err()
        );
        let cli = Cli::try_parse_from(["lbdeploy", "-vv", "validate"]).unwrap();
        assert_eq!(cli.global.verbose, 2);
    }

    /// `--log-format` takes only the formats there are, after the
    /// subcommand too (where the supervisor puts it for its agents).
    #[test]
    fn log_format_is_one_of_two_words_anywhere() {
        use crate::util::log::Format;
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        let cli =
            parse(&["lbdeploy", "agent", "status", "--log-format", "json"]);
        assert_eq!(cli.unwrap().global.log_format, Format::Json);
        let cli = parse(&["lbdeploy", "agent", "status"]).unwrap();
        assert_eq!(cli.global.log_format, Format::Logfmt);
        for bad in ["xml", "", "JSON\n"] {
            let args = ["lbdeploy", "--log-format", bad, "agent", "status"];
            assert!(parse(&args).is_err(), "{bad:?} accepted");
        }
    }
}
