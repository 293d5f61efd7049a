//! `lbdeploy agent …`: from a parsed command to the modules that do the
//! work, and from their outcome to an exit status. The only agent module
//! that knows the CLI types; everything it calls can be used without them.

use std::io::Write;

use anyhow::bail;

use crate::inventory::agent::{DirectorConfig, RealserverConfig};
use super::dataplane::ipvs;
use super::status::Mode;
use super::{paths, runtime, status, supervise};
use crate::cli::{AgentCommand, AgentMode, ExitStatus};

/// Run one `lbdeploy agent` command. `json` is the global `--json` flag,
/// which only `status` uses. The runtime directory comes from
/// [`paths::run_dir`] (`$LBDEPLOY_RUN_DIR` or `/run/lbdeploy`).
///
/// # Errors
/// Every failure that should exit 1; its message is what the user reads
/// after `lbdeploy: error:`.
pub fn command(cmd: &AgentCommand, json: bool) -> anyhow::Result<ExitStatus> {
    let run_dir = paths::run_dir();
    match cmd {
        AgentCommand::Director(args) => {
            runtime::run::<DirectorConfig>(&args.config, &run_dir)?
        }
        AgentCommand::Realserver(args) => {
            runtime::run::<RealserverConfig>(&args.config, &run_dir)?
        }
        AgentCommand::Status => return print_status(&run_dir, json),
        AgentCommand::Start(args) => {
            supervise::start(mode(args.mode), &args.config, &run_dir)?
        }
        AgentCommand::Stop => supervise::stop(&run_dir)?,
        AgentCommand::Restart(args) => {
            supervise::restart(mode(args.mode), &args.config, &run_dir)?
        }
        AgentCommand::Reload => supervise::reload(&run_dir)?,
        AgentCommand::Supervise(args) => {
            supervise::supervise(mode(args.mode), &args.config, &run_dir)?
        }
        AgentCommand::IpvsSync(args) => ipvs_sync(&args.config, &run_dir)?,
        AgentCommand::IpvsDump => {
            print!("{}", ipvs::render(&ipvs::Ipvs::connect()?.dump()?));
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
    let plan = ipvs::sync(&mut kernel, &desired, &ipvs::owned_path(run_dir))?;
    for op in &plan.ops {
        eprintln!("ipvs: {op}");
    }
    for f in &plan.foreign {
        eprintln!("ipvs: left alone (not lbdeploy's): {f}");
    }
    print!("{}", ipvs::render(&kernel.dump()?));
    Ok(())
}

fn mode(mode: AgentMode) -> Mode {
    match mode {
        AgentMode::Director => Mode::Director,
        AgentMode::Realserver => Mode::Realserver,
    }
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
        serde_json::to_writer_pretty(&mut out, &status)?;
        writeln!(out)?;
    } else {
        status.write_human(&mut out)?;
    }
    Ok(if status.healthy { ExitStatus::Ok } else { ExitStatus::Partial })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_modes_map_to_status_modes() {
        assert_eq!(mode(AgentMode::Director), Mode::Director);
        assert_eq!(mode(AgentMode::Realserver).as_str(), "realserver");
    }
}
