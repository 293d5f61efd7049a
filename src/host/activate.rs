//! `host activate`: apply one generation, all of it or none of it, and
//! leave a watchdog waiting for its confirmation.
//!
//! Order: parse and check the whole activation (nothing touched yet), take
//! the lock, finish any pending activation a crash left behind, write the
//! before-image, then change things: drop-ins and drained list, binary,
//! files, removals, sysctls, service. A retirement (the host left the inventory) stops and
//! disables the agent first, then removes its files and puts the
//! original sysctls back. Any failure from there on rolls back at once.
//! The SSH session may vanish meanwhile; the caller ignores SIGHUP and
//! stdout write errors so the activation still ends whole.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::activation::{Activation, Report};
use super::agent::{Op, Service, is_drop_in_of, unit_file_name};
use super::layout::Layout;
use super::lock::{LockGuard, Refusal};
use super::originals;
use super::rollback;
use super::snapshot::{self, Pending, manifest_paths};
use super::watchdog::{self, Recovery};
use crate::inventory::Mode;
use crate::inventory::drained::DRAINED_FILE;
use crate::plan::diff::ServiceAction;
use crate::util::files;

/// Parse and check an activation before anything is touched.
///
/// # Errors
/// When the JSON is malformed or a path or sysctl key is unusable.
pub fn parse(layout: &Layout, input: &[u8]) -> anyhow::Result<Activation> {
    let de = &mut serde_json::Deserializer::from_slice(input);
    let a: Activation = serde_path_to_error::deserialize(de)
        .context("reading the activation from stdin")?;
    for f in &a.files {
        layout.host(&f.path)?;
        if f.mode > 0o7777 {
            anyhow::bail!(
                "{}: mode {:o} is not a file mode",
                f.path.display(),
                f.mode
            );
        }
    }
    layout.host(&a.binary)?;
    if let Some(staged) = &a.staged_binary {
        let real = layout.host(staged)?;
        if real.parent() != layout.host(&a.binary)?.parent() {
            anyhow::bail!(
                "staged binary {} is not next to {}",
                staged.display(),
                a.binary.display()
            );
        }
    }
    for key in a.sysctls.keys() {
        layout.sysctl(key)?;
    }
    if a.retire
        && (!a.files.is_empty()
            || !a.sysctls.is_empty()
            || a.service_action.is_some()
            || a.enable)
    {
        anyhow::bail!(
            "a retirement brings no files, sysctls or service action: it \
             removes what the last generation installed"
        );
    }
    if a.undrain && (a.agent != Mode::Director || a.retire) {
        anyhow::bail!("only a director in the inventory has drains to clear");
    }
    for d in &a.drop_ins {
        if !is_drop_in_of(d, &a.service) {
            anyhow::bail!(
                "{}: not a drop-in of {} (only *.conf in its .d directory \
                 under /etc/systemd/system or /run/systemd/system is removed)",
                d.display(),
                unit_file_name(&a.service)
            );
        }
        layout.host(d)?;
    }
    Ok(a)
}

/// Activate `input` (the JSON read from stdin) on the host and return the
/// report; a watchdog then waits for `host confirm`.
///
/// # Errors
/// `Refusal` when locked or still waiting for a confirmation; any other
/// error after rolling back whatever was changed.
pub fn activate(layout: &Layout, input: &[u8]) -> anyhow::Result<Report> {
    let a = parse(layout, input)?;
    let lock = LockGuard::acquire(layout, &a.apply_id, &a.holder)?;
    finish_leftover(layout)?;
    note_number(layout, a.generation)?;
    let service =
        Service::new(layout, &a.service, &a.binary, a.agent, &a.config)?;
    let was_running = service.is_running();
    std::fs::create_dir_all(layout.pending())
        .with_context(|| format!("creating {}", layout.pending().display()))?;
    let pending = match snapshot::take(layout, &a, was_running)
        .and_then(|p| snapshot::save(layout, &p).map(|()| p))
    {
        Ok(p) => p,
        Err(e) => {
            // Nothing was changed yet: forget the half-written image.
            let _ = files::remove_dir_whole(&layout.pending());
            return Err(e.context("taking the before-image"));
        }
    };
    // Before the first change: what lbdeploy is about to set for the first
    // time, as it was (a failure here changed nothing either).
    if let Err(e) = originals::note(layout, &pending.sysctls) {
        let _ = files::remove_dir_whole(&layout.pending());
        return Err(e);
    }
    let report = match change(layout, &pending, &service) {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("activation failed: {e:#}");
            if let Err(re) = rollback::roll_back(layout, &pending, &reason) {
                return Err(e.context(format!(
                    "activation failed and so did its rollback ({re:#}); \
                     the next activation will retry it"
                )));
            }
            return Err(e.context(format!(
                "activation of generation {} failed and was rolled back",
                a.generation
            )));
        }
    };
    drop(lock);
    Ok(report)
}

/// Whether generation `n` may be activated on a host whose highest seen
/// number is `seen`: only above it, so that no number ever names two
/// different applies on one host (issue #17, finding 9).
///
/// # Errors
/// When `n` is not above `seen`.
pub(crate) fn check_number(seen: Option<u64>, n: u64) -> anyhow::Result<()> {
    match seen {
        Some(s) if n <= s => anyhow::bail!(
            "generation {n} is not above {s}, the highest this host has \
             seen: a generation number is never used twice — plan again"
        ),
        _ => Ok(()),
    }
}

/// Check generation `n` against the highest number seen and record it,
/// before anything is changed: a number that reached the host is burnt
/// even if nothing of its activation stays.
fn note_number(layout: &Layout, n: u64) -> anyhow::Result<()> {
    let path = layout.generation_seen();
    let seen = files::read_text_opt(&path)?
        .map(|t| {
            t.trim().parse::<u64>().with_context(|| {
                format!("{}: not a generation number", path.display())
            })
        })
        .transpose()?;
    check_number(seen, n)?;
    files::write_atomic(&path, format!("{n}\n").as_bytes(), 0o644)
        .with_context(|| format!("recording generation {n} as seen"))
}

/// Finish a pending activation whose watchdog died; refuse while a live
/// watchdog waits.
fn finish_leftover(layout: &Layout) -> anyhow::Result<()> {
    if !layout.pending().exists() {
        return Ok(());
    }
    let Some(pending) = snapshot::load(layout)? else {
        // The before-image was never completed: nothing was changed.
        files::remove_dir_whole(&layout.pending())
            .context("removing an incomplete pending activation")?;
        return Ok(());
    };
    match watchdog::recover(
        watchdog::watchdog_alive(layout),
        watchdog::confirmed(layout),
    ) {
        Recovery::Refuse => Err(Refusal::Pending {
            generation: pending.activation.generation,
            apply_id: pending.activation.apply_id.clone(),
        }
        .into()),
        Recovery::Finish(watchdog::Step::RollBack) => rollback::roll_back(
            layout,
            &pending,
            "its watchdog died before confirmation",
        )
        .context("rolling back an activation whose watchdog died"),
        Recovery::Finish(step) => watchdog::carry_out(layout, &pending, step)
            .context("committing an activation whose watchdog died"),
    }
}

/// Every change of the activation, then the deadline and the watchdog.
fn change(
    layout: &Layout,
    pending: &Pending,
    service: &Service,
) -> anyhow::Result<Report> {
    let a = &pending.activation;
    let mut report = Report {
        generation: a.generation,
        written: Vec::new(),
        removed: Vec::new(),
        sysctls: Vec::new(),
        binary_replaced: false,
        service_action: a.service_action,
        confirm_within_ms: a.confirm_timeout_ms,
    };
    if a.unmask {
        // Before any write: a mask is a symlink where the unit may go.
        service.run(Op::Unmask, false)?;
    }
    if a.retire {
        stop_for_good(layout, service)?;
    }
    for d in &a.drop_ins {
        if files::remove_opt(&layout.host(d)?)? {
            report.removed.push(d.clone());
        }
    }
    if a.undrain && files::remove_opt(&layout.host(Path::new(DRAINED_FILE))?)? {
        report.removed.push(DRAINED_FILE.into());
    }
    if let Some(staged) = &a.staged_binary {
        files::install_staged(&layout.host(staged)?, &layout.host(&a.binary)?)?;
        report.binary_replaced = true;
    }
    for f in &a.files {
        let real = layout.host(&f.path)?;
        if !snapshot::is_same(&real, f.content.as_bytes(), f.mode)? {
            files::write_atomic(&real, f.content.as_bytes(), f.mode)?;
            report.written.push(f.path.clone());
        }
    }
    for old in
        pending.manifest.as_deref().map(manifest_paths).unwrap_or_default()
    {
        if !a.files.iter().any(|f| f.path == old)
            && files::remove_opt(&layout.host(&old)?)?
        {
            report.removed.push(old);
        }
    }
    let sysctls = match a.retire {
        true => originals::load(layout)?,
        false => a.sysctls.clone(),
    };
    for (key, value) in &sysctls {
        if rollback::set_sysctl(layout, key, value)? {
            report.sysctls.push(key.clone());
        }
    }
    if a.retire && !report.removed.is_empty() {
        // The unit file went: systemd forgets the unit.
        service.run(Op::DaemonReload, false)?;
    }
    if let Some(action) = a.service_action {
        let unit = unit_file_name(&a.service);
        let unit_changed =
            a.daemon_reload
                || !a.drop_ins.is_empty()
                || report.written.iter().chain(&report.removed).any(|p| {
                    p.file_name().is_some_and(|n| *n == *unit.as_str())
                });
        service
            .run(Op::from(action), unit_changed)
            .with_context(|| format!("{action:?} of {}", a.service))?;
    }
    if a.enable && a.service_action != Some(ServiceAction::Start) {
        service.run(Op::Enable, false)?;
    }
    let deadline =
        watchdog::Deadline::after(watchdog::boot_ms(), a.confirm_timeout_ms);
    files::write_atomic(
        &layout.pending_deadline(),
        deadline.render().as_bytes(),
        0o644,
    )?;
    watchdog::spawn(layout)?;
    Ok(report)
}

/// A retirement's first step, while the agent's configuration is still
/// there: stop it — it takes its VIPs, data plane and ARP tables with it,
/// a real server's VIPs even under `keep_vip_on_stop` (the mark says so)
/// — and disable it.
fn stop_for_good(layout: &Layout, service: &Service) -> anyhow::Result<()> {
    if service.is_running() {
        // In the runtime directory, which a running agent has.
        let mark = layout.retiring_mark();
        files::write_atomic(&mark, b"", 0o600)?;
        let stopped = service.run(Op::Stop, false);
        files::remove_opt(&mark)?;
        stopped?;
    }
    service.run(Op::Disable, false)
}

/// Print the report on stdout; a vanished SSH session is not an error
/// (the activation is complete and the watchdog runs regardless).
pub(crate) fn print_report(report: &Report) {
    if let Ok(json) = serde_json::to_string(report) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r17_numbers_only_go_up() {
        assert!(check_number(None, 1).is_ok());
        assert!(check_number(Some(5), 6).is_ok());
        let err = check_number(Some(6), 6).unwrap_err();
        assert!(format!("{err}").contains("not above 6"), "{err}");
        assert!(check_number(Some(6), 2).is_err());
    }
}
