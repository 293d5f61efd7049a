//! The options every command sees: the inventory, the output form and how
//! much to say. `cli` flattens them into the command line (they are
//! `global`, so they go before or after the subcommand); each command
//! takes them by reference, so no command module imports `cli`.

use std::path::PathBuf;

use clap::Args;

/// The global options.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
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
}
