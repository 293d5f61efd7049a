//! Surveying the hosts: every selected host's facts gathered over SSH, the
//! plan document made of them, and how it is shown. `plan` stops here;
//! `apply` and `rollback` go on from it ([`super::run`]).

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::document::{FORMAT, HostPlan, PlanDocument, Summary};
use super::generations::Store;
use super::prepare::{Inputs, Prepared};
use crate::inventory::drained::{self, DRAINED_FILE};
use crate::plan::diff::Change;
use crate::plan::gather::{Gathered, gather};
use crate::plan::programs;
use crate::plan::render::{HostOutcome, Printer};
use crate::plan::stamps::{self, Stamp, Stamps};

/// A tokio runtime for one command: a handful of threads is plenty, the
/// work is waiting on `ssh`.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset.
pub(crate) fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Every selected host's facts and the plan made of them.
pub(crate) struct Survey {
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
pub(crate) fn survey(
    inputs: &Inputs,
    prepared: &Prepared,
    forks: usize,
) -> anyhow::Result<Survey> {
    let rt = runtime()?;
    let path = inputs.state_dir().join(STAMPS_FILE);
    let old = load_stamps(&path);
    let gathered = rt.block_on(gather(
        prepared.hosts.clone(),
        &prepared.binary,
        forks,
        &old,
    ));
    save_stamps(&path, &old, &gathered, &prepared.all_hosts);
    let gathered = rt.block_on(refuse_unfit(inputs, prepared, gathered));
    let doc = document(inputs, prepared, &gathered)?;
    Ok(Survey { rt, gathered, doc })
}

/// The controller's stamps of the hosts' binaries, in the state directory
/// (`plan::stamps`).
const STAMPS_FILE: &str = "binary-stamps";

/// The stamps in `path`; none when it is missing, unreadable or bigger
/// than `stamps::MAX_BYTES` (every binary is then hashed).
fn load_stamps(path: &Path) -> Stamps {
    match crate::util::files::read_regular(path, stamps::MAX_BYTES) {
        Ok(text) => Stamps::parse(&text),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(file = %path.display(), "stamps ignored: {e}");
            }
            Stamps::default()
        }
    }
}

/// Remember each planned host's binary as it was seen (hosts gone from the
/// inventory forgotten), when that changes the file. Only into an existing
/// state directory: `plan` before the first `apply` leaves no trace. A
/// file that cannot be written costs the next plan a hash per host, so it
/// is only logged.
fn save_stamps(
    path: &Path,
    old: &Stamps,
    gathered: &[(String, Gathered)],
    hosts: &[String],
) {
    let mut new = old.clone();
    for (name, g) in gathered {
        if let Gathered::Planned(p) = g
            && let (Some(stat), Some(sha256)) =
                (&p.facts.binary_stat, &p.facts.binary_sha256)
        {
            let stamp = Stamp { stat: stat.clone(), sha256: sha256.clone() };
            new.learn(name, stamp);
        }
    }
    new.retain(hosts);
    if &new == old || !path.parent().is_some_and(Path::is_dir) {
        return;
    }
    let text = new.render();
    if let Err(e) =
        crate::util::files::write_atomic(path, text.as_bytes(), 0o600)
    {
        tracing::warn!(file = %path.display(), "cannot remember the binaries' stamps: {e:#}");
    }
}

/// Each planned director whose facts say its kernel has no IPVS while
/// its configuration needs it ([`crate::plan::kernel`]) becomes a failed
/// host, its message naming the service where the inventory writes it:
/// planned, it would apply a scheduler the data plane silently ignores.
/// So does one that would run BIRD or `nft` and has none
/// ([`crate::plan::programs`]).
async fn refuse_unfit(
    inputs: &Inputs,
    prepared: &Prepared,
    gathered: Vec<(String, Gathered)>,
) -> Vec<(String, Gathered)> {
    let mut out = Vec::with_capacity(gathered.len());
    for (name, g) in gathered {
        let Gathered::Planned(p) = g else {
            out.push((name, g));
            continue;
        };
        if programs::needs_bird(&p.desired, p.facts.bird) {
            p.conn.close().await;
            let (line, col) = crate::inventory::position(&prepared.text, "bgp");
            let message = format!(
                "{}:{line}:{col}: {name} announces VIPs over BGP and has no \
                 BIRD — install it ({}) and plan again",
                inputs.inventory.display(),
                programs::INSTALL_BIRD,
            );
            out.push((name, Gathered::Failed(message)));
            continue;
        }
        if let Some(why) =
            programs::needs_nft(&p.desired, p.facts.nft, p.facts.ipvs)
        {
            p.conn.close().await;
            let inv = &prepared.inventory;
            let entry = match inv.directors.iter().position(|d| d.name == name)
            {
                Some(i) => format!("directors[{i}]"),
                None => inv
                    .real_servers
                    .iter()
                    .position(|r| r.name == name)
                    .map_or_else(String::new, |i| format!("real_servers[{i}]")),
            };
            let (line, col) =
                crate::inventory::position(&prepared.text, &entry);
            let message = format!(
                "{}:{line}:{col}: {name}: {why} and has no `nft` — install \
                 it ({}) and plan again",
                inputs.inventory.display(),
                programs::INSTALL_NFT,
            );
            out.push((name, Gathered::Failed(message)));
            continue;
        }
        let Some(need) =
            crate::plan::kernel::needs_ipvs(&p.desired, p.facts.ipvs)
        else {
            out.push((name, Gathered::Planned(p)));
            continue;
        };
        p.conn.close().await;
        let index = prepared
            .inventory
            .virtual_services
            .iter()
            .position(|s| s.vip == need.vip && s.first_port() == need.port);
        let (line, col) = index.map_or((1, 1), |i| {
            crate::inventory::position(
                &prepared.text,
                &format!("virtual_services[{i}]"),
            )
        });
        let why = match need.forced {
            true => "`dataplane: ipvs` needs IPVS".to_owned(),
            false => format!(
                "the `{}` scheduler needs IPVS (`dataplane: auto` would \
                 fall back to nftables and not apply it)",
                need.scheduler
            ),
        };
        let message = format!(
            "{}:{line}:{col}: service {}: {why}, and the kernel of {name} \
             has none — use one of rr, wrr, sh, mh, or give {name} a kernel \
             with IPVS",
            inputs.inventory.display(),
            need.service,
        );
        out.push((name, Gathered::Failed(message)));
    }
    out
}

/// The plan document of what was gathered.
///
/// # Errors
/// When the generation store cannot be read.
pub(crate) fn document(
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
        undrain: inputs.undrain,
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
        crate::util::terminal::write_json(&mut out, doc)?;
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
    let drained = drained(gathered);
    if !drained.is_empty() {
        writeln!(
            out,
            "Drained at runtime, not by the inventory (`lbdeploy undrain \
             HOST` puts one back, `apply --undrain` all):"
        )?;
        for (host, list) in drained {
            let line = format!("  {host}: {list}");
            writeln!(out, "{}", crate::util::terminal::escape_lines(&line))?;
        }
    }
    Ok(())
}

/// Each director's drained real servers, as its facts hold its drained
/// file (`address (service)`, comma-separated); directors with none,
/// whose file does not parse (their agent says why), or whose plan
/// undrains them (`--undrain`) are left out.
fn drained(gathered: &[(String, Gathered)]) -> Vec<(String, String)> {
    let path = Path::new(DRAINED_FILE);
    gathered
        .iter()
        .filter_map(|(name, g)| {
            let Gathered::Planned(p) = g else { return None };
            if p.changes.iter().any(|c| matches!(c, Change::Undrain { .. })) {
                return None;
            }
            let text = &p.facts.files.get(path)?.content;
            let list = drained::parse(&String::from_utf8_lossy(text)).ok()?;
            let shown: Vec<String> =
                list.iter().map(ToString::to_string).collect();
            (!shown.is_empty()).then(|| (name.clone(), shown.join(", ")))
        })
        .collect()
}

/// Close every open connection.
pub async fn close(gathered: Vec<(String, Gathered)>) {
    for (_, g) in gathered {
        if let Gathered::Planned(p) = g {
            p.conn.close().await;
        }
    }
}
