//! `plan`, `apply`, `rollback`, `history` and `unlock` as commands: the
//! glue between parsed arguments, the pure pieces and the hosts.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::document::PlanDocument;
use super::generations::{Restored, Store};
use super::prepare::{Inputs, Removals, prepare, prepare_text};
use super::recap::HostResult;
use super::run::Options as RunOptions;
use super::survey::{Survey, close, runtime, show, survey};
use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::inventory::System;

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
    /// Leave the hosts that have left the inventory as they are (by
    /// default they are retired: agent stopped and disabled, files
    /// removed, sysctls put back); a later apply retires them.
    #[arg(long)]
    pub keep_removed: bool,
    /// Put back in service every real server drained at runtime on the
    /// selected directors (`lbdeploy drain`): their drained lists go, as
    /// `lbdeploy undrain` would take them one by one.
    #[arg(long)]
    pub undrain: bool,
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

/// How `apply` and `rollback` run, from the command line.
fn converge(global: &GlobalArgs, c: &ConvergeArgs) -> RunOptions {
    RunOptions {
        forks: c.target.forks.into(),
        yes: c.yes,
        saved: None,
        confirm_timeout: c.confirm_timeout,
        smoke_test: c.smoke_test.clone(),
        json: global.json,
        quiet: global.quiet,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        restores: None,
    }
}

/// What a command reads, from the command line.
fn inputs(global: &GlobalArgs, t: &TargetArgs) -> Inputs {
    Inputs {
        inventory: global.inventory.clone(),
        roles_dir: t.roles_dir.clone(),
        binary: t.binary.clone(),
        limit: t.limit.clone(),
        removed: match t.keep_removed {
            true => Removals::Keep,
            false => Removals::Retire,
        },
        undrain: t.undrain,
    }
}

/// `lbdeploy plan`.
///
/// # Errors
/// Anything that stops planning before the hosts (inventory, roles,
/// binary), or a plan that cannot be written.
pub fn plan(
    global: &GlobalArgs,
    args: &PlanArgs,
) -> anyhow::Result<ExitStatus> {
    let inputs = &inputs(global, &args.target);
    let prepared = prepare(inputs, &System)?;
    let forks = args.target.forks.into();
    let Survey { rt, gathered, doc } = survey(inputs, &prepared, forks)?;
    show(&doc, &gathered, global.json)?;
    if let Some(out) = &args.out {
        doc.save(out)?;
        eprintln!(
            "Saved the plan to {}; `lbdeploy apply {}` applies exactly it.",
            out.display(),
            out.display()
        );
    }
    rt.block_on(close(gathered));
    let s = doc.summary;
    Ok(if s.unreachable + s.failed > 0 {
        ExitStatus::Error
    } else if args.detailed_exitcode && s.changes > 0 {
        ExitStatus::Changes
    } else {
        ExitStatus::Ok
    })
}

/// `lbdeploy apply [PLAN]`.
///
/// # Errors
/// As [`super::run::apply`]; an invalid inventory fails here, before any
/// connection.
pub fn apply(
    global: &GlobalArgs,
    args: &ApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let mut inputs = inputs(global, &args.converge.target);
    let saved = args.plan.clone();
    if let Some(plan) = &saved {
        // The saved plan names its inventory, limit and undrain; the
        // command line's must not silently apply something else.
        let doc = PlanDocument::load(plan)?;
        inputs.inventory = doc.inventory;
        inputs.limit = doc.limit;
        inputs.undrain = doc.undrain;
    }
    let prepared = prepare(&inputs, &System)?;
    let opts = RunOptions { saved, ..converge(global, &args.converge) };
    super::run::apply(&inputs, prepared, &opts)
}

/// `lbdeploy rollback [--to N]`.
///
/// # Errors
/// No such generation, its secrets cannot be answered, or as apply.
pub fn rollback(
    global: &GlobalArgs,
    args: &RollbackArgs,
) -> anyhow::Result<ExitStatus> {
    let inputs = &inputs(global, &args.converge.target);
    let store = Store::new(&inputs.state_dir());
    let list = store.list()?;
    let target = match args.to {
        Some(n) => n,
        None => match list.len() {
            0 | 1 => anyhow::bail!(
                "there is no earlier generation to roll back to ({} recorded) — \
                 see `lbdeploy history`",
                list.len()
            ),
            n => list[n - 2].number,
        },
    };
    let meta = store.meta(target)?;
    let text = store.inventory(target)?;
    let current = crate::inventory::load(&inputs.inventory, &System).ok();
    let env = store.secrets(
        &System,
        &meta,
        current.as_ref().map(|l| &l.inventory),
    )?;
    let prepared = prepare_text(inputs, &env.restore(&text)?, &env)?;
    eprintln!(
        "Rolling back to generation {target} ({}, by {}).",
        meta.time, meta.by
    );
    let restores = Restored { number: target, secrets: meta.secrets.clone() };
    let opts = RunOptions {
        restores: Some(restores),
        ..converge(global, &args.converge)
    };
    super::run::apply(inputs, prepared, &opts)
}

/// `lbdeploy history`.
///
/// # Errors
/// When the generations cannot be read.
pub fn history(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let inputs = inputs(global, &TargetArgs::default());
    let list = Store::new(&inputs.state_dir()).list()?;
    let mut out = std::io::stdout().lock();
    if global.json {
        crate::util::terminal::write_json(&mut out, &list)?;
        writeln!(out)?;
        return Ok(ExitStatus::Ok);
    }
    if list.is_empty() {
        writeln!(
            out,
            "No generations yet: `lbdeploy apply` records the first."
        )?;
        return Ok(ExitStatus::Ok);
    }
    write_history(&mut out, &list)?;
    Ok(ExitStatus::Ok)
}

/// The history table: one line per generation; a rollback's line names
/// the generation it restored (`RESTORED`), whose inventory hash it
/// shares. The text of `meta.json` is the controller's own, but a
/// command line may hold anything an operator typed: escaped.
fn write_history(
    out: &mut impl Write,
    list: &[super::generations::Meta],
) -> std::io::Result<()> {
    use crate::util::terminal::escape;
    writeln!(
        out,
        "{:>4}  {:20}  {:16}  {:12}  {:8}  HOSTS  COMMAND",
        "GEN", "TIME", "BY", "INVENTORY", "RESTORED"
    )?;
    for m in list {
        let changed =
            m.hosts.values().filter(|r| **r == HostResult::Changed).count();
        let restored = m.restored.map_or("-".to_owned(), |n| n.to_string());
        writeln!(
            out,
            "{:>4}  {:20}  {:16}  {:12}  {restored:8}  {changed}/{}    {}",
            m.number,
            escape(&m.time),
            escape(&m.by),
            escape(&m.inventory_sha256.chars().take(12).collect::<String>()),
            m.hosts.len(),
            escape(&m.command)
        )?;
    }
    Ok(())
}

/// `lbdeploy unlock ID`: the controller's lock and every host's.
///
/// # Errors
/// When the controller's lock is another apply's.
pub fn unlock(global: &GlobalArgs, id: &str) -> anyhow::Result<ExitStatus> {
    let inputs = &inputs(global, &TargetArgs::default());
    let mut status = ExitStatus::Ok;
    match super::lock::break_lock(&inputs.state_dir(), id)? {
        true => eprintln!("Removed the controller's lock of apply {id}."),
        false => eprintln!("The controller holds no lock."),
    }
    let prepared = prepare(inputs, &System)?;
    let rt = runtime()?;
    let results = rt.block_on(async {
        let mut out = Vec::new();
        for (desired, target) in &prepared.hosts {
            let bin = desired.binary.to_string_lossy().into_owned();
            let r = match crate::transport::Connection::open(target).await {
                Ok(conn) => {
                    let r = conn.run(&bin, &["host", "unlock", id], b"").await;
                    conn.close().await;
                    r.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            out.push((desired.name.clone(), r));
        }
        out
    });
    for (host, r) in results {
        match r {
            Ok(out) if out.success() => {
                eprintln!("{host}: removed the lock of apply {id}")
            }
            Ok(out) => {
                let said = out.stderr_text();
                let said = said.trim_start_matches("lbdeploy: error: ");
                // A host without a lock, or without lbdeploy, has nothing to break.
                if !said.contains("not locked") && out.code != Some(127) {
                    status = ExitStatus::Error;
                }
                eprintln!("{host}: {said}");
            }
            Err(e) => {
                status = ExitStatus::Error;
                eprintln!("{host}: {e}");
            }
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::apply::generations::Meta;

    /// Issue #19: a rollback's line names what it restored, beside the
    /// hash it shares with it; what meta.json holds is escaped.
    #[test]
    fn r19_history_shows_what_a_rollback_restored() {
        let meta = |n, restored, command: &str| Meta {
            number: n,
            time: "2026-12-05T13:00:00Z".into(),
            by: "root@ctl".into(),
            command: command.into(),
            inventory_sha256: "0123456789abcdef".into(),
            binary_sha256: "b".into(),
            secrets: BTreeMap::new(),
            hosts: BTreeMap::from([("d1".into(), HostResult::Changed)]),
            restored,
            retiring: BTreeMap::new(),
        };
        let list = [
            meta(1, None, "lbdeploy apply"),
            meta(3, Some(1), "lbdeploy rollback\x1b[2J"),
        ];
        let mut out = Vec::new();
        write_history(&mut out, &list).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("INVENTORY     RESTORED"), "{text}");
        assert!(lines[1].contains("0123456789ab  -         1/1"), "{text}");
        assert!(lines[2].contains("0123456789ab  1         1/1"), "{text}");
        assert!(lines[2].ends_with("rollback\\x1b[2J"), "{text}");
    }
}
