//! `plan`, `apply`, `rollback`, `history` and `unlock` as commands: the
//! glue between parsed arguments, the pure pieces and the hosts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::document::{FORMAT, HostPlan, PlanDocument, Summary};
use super::generations::Store;
use super::prepare::{Inputs, Prepared, prepare};
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
    let rt = runtime()?;
    let gathered = rt.block_on(gather(
        prepared.hosts.clone(),
        &prepared.binary,
        opts.forks,
    ));
    let doc = document(inputs, &prepared, &gathered)?;
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
