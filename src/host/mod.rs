//! The host side of `apply`: what the installed lbdeploy binary does when
//! the controller activates a generation on it.
//!
//! * [`activation`] — the JSON contract between controller and host.
//! * [`layout`] — every host path, rooted under `LBDEPLOY_HOST_ROOT` in
//!   tests.
//! * [`lock`] — the host lock and the refusal messages.
//! * [`snapshot`] — the before-image in `pending/state.json`.
//! * [`activate`] — `host activate`: all of a generation or none of it.
//! * [`watchdog`] — commit on confirmation, roll back at the deadline; the
//!   pure decision [`watchdog::decide`].
//! * [`rollback`] — restoring the before-image, committing a generation.
//! * [`confirm`] — `host confirm N`.
//! * [`agent`] — starting, restarting, reloading, stopping the agent.
//! * [`originals`] — the sysctls as they were before lbdeploy, which a
//!   host leaving the inventory gets back.
//!
//! # State on the host (`/var/lib/lbdeploy`)
//! ```text
//! lock                  JSON {apply_id, holder, pid, since} while activating
//! generation            the confirmed generation number (read by facts)
//! generation-seen       the highest number ever activated here (facts)
//! manifest              managed files, one absolute path a line (facts)
//! pending/state.json    the activation and the before-image
//! pending/binary        the previous binary, when replaced
//! pending/deadline      `boottime-ms N`: CLOCK_BOOTTIME ms of the rollback
//! pending/watchdog.pid  the watchdog's PID
//! pending/confirmed     created by `host confirm`
//! generations/N/        (0700) files.json [{path, mode, stored}] + contents
//! journal               "TIME<TAB>N<TAB>confirmed|rolled back<TAB>APPLY"
//! last-rollback.json    {generation, apply_id, at, reason}
//! original-sysctls.json {key: value} before lbdeploy first set each key
//! watchdog.log          the watchdog's output
//! ```

pub mod activate;
pub mod activation;
pub mod agent;
pub mod confirm;
pub mod layout;
pub mod lock;
pub mod originals;
pub mod rollback;
pub mod snapshot;
pub mod watchdog;

use std::io::{Read, Write};

use anyhow::Context;
use clap::Subcommand;

use crate::exit::ExitStatus;
use layout::Layout;
use lock::Refusal;

/// What the controller runs on a managed host during `apply` (hidden: an
/// interface between two lbdeploy binaries, not for people).
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Read an activation (JSON) on stdin, apply it, await confirmation.
    Activate,
    /// Confirm generation N so the host keeps it.
    Confirm {
        /// The generation activated.
        generation: u64,
    },
    /// Wait for confirmation of the pending generation; roll back without.
    Watchdog,
    /// Remove this host's lock if apply ID holds it.
    Unlock {
        /// The apply that holds the lock.
        id: String,
    },
}

/// Run a `host` subcommand on this host.
///
/// Refusals (locked, awaiting confirmation) are printed here with their
/// `locked:` prefix as the first line of stderr, for the controller to
/// recognise; other errors go back to `main`.
///
/// # Errors
/// Any failure of the subcommand; exit status 1.
pub fn run(cmd: &HostCommand) -> anyhow::Result<ExitStatus> {
    let layout = Layout::from_env();
    match cmd {
        HostCommand::Activate => {
            let _hangup = HangupIgnored::new()?;
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading the activation from stdin")?;
            match activate::activate(&layout, &input) {
                Ok(report) => {
                    activate::print_report(&report);
                    Ok(ExitStatus::Ok)
                }
                Err(e) => refusal_or(e),
            }
        }
        HostCommand::Confirm { generation } => {
            confirm::confirm(&layout, *generation)?;
            let _ = writeln!(
                std::io::stdout(),
                "confirmed generation {generation}"
            );
            Ok(ExitStatus::Ok)
        }
        HostCommand::Watchdog => {
            let _hangup = HangupIgnored::new()?;
            watchdog::run(&layout)?;
            Ok(ExitStatus::Ok)
        }
        HostCommand::Unlock { id } => {
            lock::unlock(&layout, id)?;
            Ok(ExitStatus::Ok)
        }
    }
}

fn refusal_or(e: anyhow::Error) -> anyhow::Result<ExitStatus> {
    match e.downcast_ref::<Refusal>() {
        Some(r) => {
            let _ = writeln!(std::io::stderr(), "{r}");
            Ok(ExitStatus::Error)
        }
        None => Err(e),
    }
}

/// SIGHUP ignored while alive: a vanishing SSH session must not kill an
/// activation half-way. Registering a tokio signal stream replaces the
/// default (terminating) disposition without `unsafe`; the stream is kept
/// and never read. SIGPIPE is already ignored by the Rust runtime, and
/// stdout write errors are ignored by the callers.
struct HangupIgnored {
    _signal: tokio::signal::unix::Signal,
    _runtime: tokio::runtime::Runtime,
}

impl HangupIgnored {
    fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime for signal handling")?;
        let signal = {
            let _entered = runtime.enter();
            tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            )
            .context("ignoring SIGHUP")?
        };
        Ok(Self { _signal: signal, _runtime: runtime })
    }
}
