//! `plan`, `apply`, `rollback`, `history` and `unlock` as commands: the
//! glue between parsed arguments, the pure pieces and the hosts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::document::{FORMAT, HostPlan, PlanDocument, Summary};
use super::generations::{Secrets, Store};
use super::prepare::{Inputs, Prepared, prepare, prepare_text};
use super::run::Options as RunOptions;
use crate::cli::ExitStatus;
use crate::inventory::System;
use crate::plan::gather::{Gathered, gather};
use crate::plan::render::{HostOutcome, Printer};

/// How `plan` prints and exits.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Hosts in parallel.
    pub forks: usize,
    /// JSON on stdout instead of text.
    pub json: bool,
    /// Exit 2 when there are changes.
    pub detailed_exitcode: bool,
    /// Save the plan here.
    pub out: Option<PathBuf>,
}

/// A tokio runtime for one command: a handful of threads is plenty, the
/// work is waiting on `ssh`.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `lbdeploy plan`.
///
/// # Errors
/// Anything that stops planning before the hosts (inventory, roles,
/// binary), or a plan that cannot be written.
pub fn plan(inputs: &Inputs, opts: &PlanOptions) -> anyhow::Result<ExitStatus> {
    let prepared = prepare(inputs, &System)?;
    let Survey { rt, gathered, doc } = survey(inputs, &prepared, opts.forks)?;
    show(&doc, &gathered, opts.json)?;
    if let Some(out) = &opts.out {
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
    } else if opts.detailed_exitcode && s.changes > 0 {
        ExitStatus::Changes
    } else {
        ExitStatus::Ok
    })
}

/// Every selected host's facts and the plan made of them.
pub struct Survey {
    /// The runtime the hosts' connections live on.
    pub rt: tokio::runtime::Runtime,
    /// Per host, inventory order.
    pub gathered: Vec<(String, Gathered)>,
    /// The plan.
    pub doc: PlanDocument,
}

/// Gather every selected host's facts on a fresh runtime (which keeps
/// their connections) and the plan document of them.
///
/// # Errors
/// When the runtime cannot start or the generations cannot be read.
pub fn survey(
    inputs: &Inputs,
    prepared: &Prepared,
    forks: usize,
) -> anyhow::Result<Survey> {
    let rt = runtime()?;
    let gathered =
        rt.block_on(gather(prepared.hosts.clone(), &prepared.binary, forks));
    let doc = document(inputs, prepared, &gathered)?;
    Ok(Survey { rt, gathered, doc })
}

/// The plan document of what was gathered.
///
/// # Errors
/// When the generation store cannot be read.
pub fn document(
    inputs: &Inputs,
    prepared: &Prepared,
    gathered: &[(String, Gathered)],
) -> anyhow::Result<PlanDocument> {
    let hosts: Vec<HostPlan> =
        gathered.iter().map(|(name, g)| HostPlan::of(name, g)).collect();
    Ok(PlanDocument {
        format: FORMAT.to_owned(),
        inventory: inputs.inventory.clone(),
        inventory_sha256: prepared.inventory_sha256.clone(),
        binary_sha256: prepared.binary.sha256.clone(),
        limit: inputs.limit.clone(),
        generation: Store::new(&inputs.state_dir()).last()?,
        summary: Summary::of(&hosts),
        hosts,
    })
}

/// Print the plan: JSON, or text with diffs.
///
/// # Errors
/// When stdout is closed.
pub fn show(
    doc: &PlanDocument,
    gathered: &[(String, Gathered)],
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, doc)?;
        writeln!(out)?;
        return Ok(());
    }
    let outcomes: Vec<(String, HostOutcome)> = gathered
        .iter()
        .map(|(name, g)| {
            let o = match g {
                Gathered::Planned(p) => HostOutcome::Planned(p.changes.clone()),
                Gathered::Unreachable(e) => {
                    HostOutcome::Unreachable(e.to_string())
                }
                Gathered::Failed(e) => HostOutcome::Failed(e.clone()),
            };
            (name.clone(), o)
        })
        .collect();
    Printer::new(&mut out, colour()).plan(&outcomes)?;
    Ok(())
}

/// Close every open connection.
pub async fn close(gathered: Vec<(String, Gathered)>) {
    for (_, g) in gathered {
        if let Gathered::Planned(p) = g {
            p.conn.close().await;
        }
    }
}

/// `lbdeploy apply [PLAN]`.
///
/// # Errors
/// As [`super::run::apply`]; an invalid inventory fails here, before any
/// connection.
pub fn apply(
    inputs: &Inputs,
    saved: Option<PathBuf>,
    opts: &RunOptions,
) -> anyhow::Result<ExitStatus> {
    let mut inputs = inputs.clone();
    if let Some(plan) = &saved {
        // The saved plan names its inventory and limit; the command line's
        // `-i` and `--limit` must not silently apply something else.
        let doc = PlanDocument::load(plan)?;
        inputs.inventory = doc.inventory;
        inputs.limit = doc.limit;
    }
    let prepared = prepare(&inputs, &System)?;
    let opts = RunOptions { saved, ..opts.clone() };
    super::run::apply(&inputs, prepared, &opts)
}

/// `lbdeploy rollback [--to N]`.
///
/// # Errors
/// No such generation, its secrets cannot be answered, or as apply.
pub fn rollback(
    inputs: &Inputs,
    to: Option<u64>,
    opts: &RunOptions,
) -> anyhow::Result<ExitStatus> {
    let store = Store::new(&inputs.state_dir());
    let list = store.list()?;
    let target = match to {
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
    let env =
        Secrets::new(&System, &meta, current.as_ref().map(|l| &l.inventory))?;
    let prepared = prepare_text(inputs, &text, &env)?;
    eprintln!(
        "Rolling back to generation {target} ({}, by {}).",
        meta.time, meta.by
    );
    super::run::apply(inputs, prepared, opts)
}

/// `lbdeploy history`.
///
/// # Errors
/// When the generations cannot be read.
pub fn history(inputs: &Inputs, json: bool) -> anyhow::Result<ExitStatus> {
    let list = Store::new(&inputs.state_dir()).list()?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &list)?;
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
    writeln!(
        out,
        "{:>4}  {:20}  {:16}  {:12}  HOSTS  COMMAND",
        "GEN", "TIME", "BY", "INVENTORY"
    )?;
    for m in &list {
        let changed = m.hosts.values().filter(|r| *r == "changed").count();
        writeln!(
            out,
            "{:>4}  {:20}  {:16}  {:12}  {changed}/{}    {}",
            m.number,
            m.time,
            m.by,
            &m.inventory_sha256[..12.min(m.inventory_sha256.len())],
            m.hosts.len(),
            m.command
        )?;
    }
    Ok(ExitStatus::Ok)
}

/// `lbdeploy unlock ID`: the controller's lock and every host's.
///
/// # Errors
/// When the controller's lock is another apply's.
pub fn unlock(inputs: &Inputs, id: &str) -> anyhow::Result<ExitStatus> {
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
