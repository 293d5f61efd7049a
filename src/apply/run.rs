//! `apply` (and `rollback`, which is an apply of an older inventory): lock,
//! plan, confirm, converge phase by phase, recap, record the generation.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::Semaphore;

use super::activate::{self, Context, Outcome};
use super::document::PlanDocument;
use super::generations::{Meta, Restored, Store, canonical_sha256};
use super::lock::{Holder, Lock};
use super::phases::phases;
use super::prepare::{Inputs, Prepared};
use super::progress::Progress;
use super::recap::{
    HostResult, Recap, describe, exit, print_recap, recap, recap_of_plan,
};
use super::removed::still_retiring;
use super::survey::{Survey, close, show, survey};
use crate::exit::ExitStatus;
use crate::inventory::Mode;
use crate::plan::gather::{Gathered, Planned};

/// How `apply` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts in parallel within a phase.
    pub forks: usize,
    /// Do not ask.
    pub yes: bool,
    /// A plan saved by `plan --out` to apply exactly.
    pub saved: Option<PathBuf>,
    /// How long each host waits for its confirmation.
    pub confirm_timeout: Duration,
    /// Run before confirming each host.
    pub smoke_test: Option<String>,
    /// JSON recap on stdout.
    pub json: bool,
    /// Less talk.
    pub quiet: bool,
    /// The command, as recorded in locks and generations.
    pub command: String,
    /// The generation a rollback restores, recorded in the new one.
    pub(crate) restores: Option<Restored>,
}

/// Apply `prepared` (from the inventory file or a generation).
///
/// # Errors
/// The lock is held, the saved plan is stale, the operator declined, or
/// the generation cannot be recorded.
pub fn apply(
    inputs: &Inputs,
    prepared: Prepared,
    opts: &Options,
) -> anyhow::Result<ExitStatus> {
    let id = apply_id();
    let holder = Holder::me(&id, &opts.command);
    let lock = Lock::acquire(&inputs.state_dir(), holder.clone())?;
    let Survey { rt, gathered, doc } = survey(inputs, &prepared, opts.forks)?;
    if let Some(saved) = &opts.saved {
        let old = PlanDocument::load(saved)?;
        if let Some(why) = old.staleness(&doc) {
            rt.block_on(close(gathered));
            bail!(
                "the saved plan {} is stale: {why} — run `lbdeploy plan --out {}` \
                 again and review it",
                saved.display(),
                saved.display()
            );
        }
    } else if !opts.json {
        show(&doc, &gathered, false)?;
    }
    if doc.summary.changes == 0 {
        rt.block_on(close(gathered));
        let recaps = recap_of_plan(&doc);
        print_recap(&recaps, None, opts.json)?;
        return Ok(exit(&recaps));
    }
    if opts.saved.is_none() && !opts.yes && !ask(doc.summary.changes)? {
        rt.block_on(close(gathered));
        bail!("nothing applied: not confirmed");
    }
    let store = Store::new(&inputs.state_dir());
    let host_generation = gathered
        .iter()
        .filter_map(|(_, g)| match g {
            Gathered::Planned(p) => p.facts.generation.max(p.facts.seen),
            _ => None,
        })
        .max();
    let generation = next_generation(store.last()?, host_generation);
    let binary = std::fs::read(&prepared.binary.file).with_context(|| {
        format!("cannot read {}", prepared.binary.path.display())
    })?;
    let ctx = Context {
        apply_id: id,
        holder: format!("{} pid {}: {}", holder.by, holder.pid, holder.command),
        generation,
        binary: Arc::new(binary),
        confirm_timeout: opts.confirm_timeout,
        smoke_test: opts.smoke_test.clone(),
    };
    let recaps = rt.block_on(converge(&prepared, gathered, &ctx, opts));
    let changed = recaps.iter().any(|r| r.result == HostResult::Changed);
    let recorded = match changed {
        true => {
            record(&store, &prepared, &ctx, opts, &recaps)?;
            Some(generation)
        }
        false => None,
    };
    drop(lock);
    print_recap(&recaps, recorded, opts.json)?;
    Ok(exit(&recaps))
}

/// The number of the next apply: above the controller's last record and
/// above every number any host has seen (committed or not), so that no
/// number ever names two applies (issue #17, finding 9).
pub(crate) fn next_generation(stored: Option<u64>, hosts: Option<u64>) -> u64 {
    stored.max(hosts).unwrap_or(0) + 1
}

/// Run the phases in order; a phase with a failure stops the ones after it.
async fn converge(
    prepared: &Prepared,
    gathered: Vec<(String, Gathered)>,
    ctx: &Context,
    opts: &Options,
) -> Vec<Recap> {
    let (planned, mut recaps) = split(gathered);
    let selected: Vec<String> =
        prepared.hosts.iter().map(|(d, _)| d.name.clone()).collect();
    let progress = Arc::new(Progress::new(opts.quiet || opts.json));
    let gate = Arc::new(Semaphore::new(opts.forks.max(1)));
    let mut stopped: Option<String> = None;
    let was_director = |name: &str| {
        prepared
            .hosts
            .iter()
            .any(|(d, _)| d.name == name && d.agent == Mode::Director)
    };
    for phase in phases(&prepared.inventory, &selected, was_director) {
        let todo: Vec<_> = phase
            .hosts
            .iter()
            .filter_map(|h| planned.get(h).cloned())
            .collect();
        if let Some(why) = &stopped {
            for p in todo {
                let name = &p.desired.name;
                recaps.insert(
                    name.clone(),
                    recap(name, HostResult::Skipped, Some(why.clone())),
                );
            }
            continue;
        }
        progress.phase(phase.name, todo.len());
        let tasks: Vec<_> = todo
            .into_iter()
            .map(|p| {
                let (ctx, gate, progress) =
                    (ctx.clone(), gate.clone(), progress.clone());
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let line = progress.host(&p.desired.name);
                    let outcome =
                        activate::apply(&p, &ctx, &|s: &str| line.step(s))
                            .await;
                    let r = recap_of(&p.desired.name, outcome);
                    line.done(&describe(&r));
                    r
                })
            })
            .collect();
        for t in tasks {
            let r = t.await.expect("a host's apply does not panic");
            if matches!(r.result, HostResult::Failed | HostResult::RolledBack) {
                stopped = Some(format!(
                    "{} {} in phase `{}`",
                    r.host, r.result, phase.name
                ));
            }
            recaps.insert(r.host.clone(), r);
        }
    }
    for p in planned.into_values() {
        if let Ok(p) = Arc::try_unwrap(p) {
            p.conn.close().await;
        }
    }
    selected.iter().filter_map(|h| recaps.remove(h)).collect()
}

/// The hosts that were planned, to apply; the recaps of those that were
/// not reached or failed while gathering.
fn split(
    gathered: Vec<(String, Gathered)>,
) -> (BTreeMap<String, Arc<Planned>>, BTreeMap<String, Recap>) {
    let mut planned = BTreeMap::new();
    let mut recaps = BTreeMap::new();
    for (name, g) in gathered {
        let r = match g {
            Gathered::Planned(p) => {
                planned.insert(name, Arc::from(p));
                continue;
            }
            Gathered::Unreachable(e) => {
                recap(&name, HostResult::Unreachable, Some(e.to_string()))
            }
            Gathered::Failed(e) => recap(&name, HostResult::Failed, Some(e)),
        };
        recaps.insert(name, r);
    }
    (planned, recaps)
}

/// The recap line of a host's activation outcome.
fn recap_of(host: &str, outcome: Outcome) -> Recap {
    match outcome {
        Outcome::Ok => recap(host, HostResult::Ok, None),
        Outcome::Changed => recap(host, HostResult::Changed, None),
        Outcome::RolledBack(why) => {
            recap(host, HostResult::RolledBack, Some(why))
        }
        Outcome::Failed(why) => recap(host, HostResult::Failed, Some(why)),
    }
}

/// Ask on the terminal; refuse without one.
fn ask(hosts: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "apply would change {hosts} host(s) and stdin is not a terminal to \
             ask — review the plan above and pass --yes, or apply a saved plan \
             (`lbdeploy plan --out FILE`, then `lbdeploy apply FILE`)"
        );
    }
    eprint!("Apply these changes to {hosts} host(s)? Type `yes` to go on: ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn record(
    store: &Store,
    prepared: &Prepared,
    ctx: &Context,
    opts: &Options,
    recaps: &[Recap],
) -> anyhow::Result<()> {
    let (inventory, mut secrets) =
        store.without_secrets(&prepared.inventory)?;
    if let Some(r) = &opts.restores {
        // The restored inventory refers to these instead of holding them.
        secrets.extend(r.secrets.clone());
    }
    let holder = Holder::me(&ctx.apply_id, &opts.command);
    let meta = Meta {
        number: ctx.generation,
        time: holder.since,
        by: holder.by,
        command: opts.command.clone(),
        inventory_sha256: canonical_sha256(&inventory, &secrets)?,
        binary_sha256: prepared.binary.sha256.clone(),
        secrets,
        hosts: recaps.iter().map(|r| (r.host.clone(), r.result)).collect(),
        restored: opts.restores.as_ref().map(|r| r.number),
        retiring: still_retiring(&prepared.removed, |host| {
            recaps.iter().any(|r| {
                r.host == host
                    && matches!(r.result, HostResult::Ok | HostResult::Changed)
            })
        }),
    };
    store.record(&meta, &inventory)
}

/// A short id unique enough to name one apply: time and pid.
fn apply_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}{:04x}", t.as_secs(), std::process::id() & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::next_generation;

    /// Issue #17, finding 9: a host stuck with 6 seen (committed or not)
    /// while the controller's record says 5 gets 7, never 6 again.
    #[test]
    fn r17_the_next_number_is_above_every_one_seen() {
        assert_eq!(next_generation(None, None), 1);
        assert_eq!(next_generation(Some(5), Some(6)), 7);
        assert_eq!(next_generation(Some(9), Some(6)), 10);
        assert_eq!(next_generation(None, Some(3)), 4);
    }
}
