//! The inventory: one YAML file that describes a whole LVS-DR cluster.
//!
//! [`load`] reads it, reports every load and validation problem at once with
//! `FILE:LINE:COL`, and returns the typed [`Inventory`] with its warnings.
//! Nothing here touches the network or a host; a command that changes
//! anything runs only after `load` succeeded.
//!
//! * `schema` — the shapes and defaults an operator writes;
//! * `values` — durations, bounded integers and addresses that check
//!   themselves;
//! * `load` — YAML to types, collecting located load errors;
//! * `validate` — the cross-field rules (pure);
//! * `locate` — field path → line and column;
//! * `diag` — how problems are reported;
//! * `mode` — director or real server, the one spelling of the agent's
//!   mode;
//! * [`agent`] — what one host's agent is told: the slice of the inventory
//!   that `apply` renders into its `agent.yml`, shared by the controller,
//!   which writes it, and the agent, which reads it;
//! * [`drained`] — the real servers a director drained at runtime, as
//!   the agent keeps them and the controller shows them.

pub mod agent;
mod diag;
pub mod drained;
mod load;
mod locate;
mod mode;
mod schema;
mod validate;
mod values;

use std::path::{Path, PathBuf};

use crate::util::files;

pub(crate) use diag::{Diagnostic, Diagnostics, Finding, Severity};
pub use mode::Mode;
pub use schema::*;
pub use validate::{
    Environment, NotificationProblem, PasswordProblem, System,
    effective_priority, email_ca, peer_password, secret_file, service_label,
    smtp_password, vrrp_password, webhook_ca, webhook_url,
};
pub(crate) use validate::{ca_pem, forbidden_char};
pub use values::{
    Bounded, Duration, IfAddr, Port, Priority, RouterId, RtPriority,
    ScriptUser, Weight, vip_problem,
};

/// An inventory that loaded and validated, with the warnings it produced.
#[derive(Debug)]
pub struct Loaded {
    /// The inventory.
    pub inventory: Inventory,
    /// Warnings, located; empty when there are none.
    pub warnings: Diagnostics,
}

/// Why an inventory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read inventory {}: {source}{hint}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
        /// What to do, when there is something obvious.
        hint: String,
    },
    /// The file has problems; every one of them is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Read, parse and validate the inventory at `path`.
///
/// # Errors
/// [`Error::Read`] when the file cannot be read, [`Error::Invalid`] with
/// every problem found otherwise. Warnings never fail the load; callers that
/// want `--strict` check `warnings` themselves.
pub fn load(path: &Path, env: &dyn Environment) -> Result<Loaded, Error> {
    // A regular file within the bound, read as untrusted input.
    let source =
        files::read_regular(path, load::INPUT_MAX).map_err(|source| {
            let hint = match source.kind() {
                std::io::ErrorKind::NotFound => format!(
                    " — pass the inventory with `-i FILE`; to start from the \
                 example cluster use `-i inventory.example.yml`{}",
                    if path == Path::new("inventory.yml") {
                        " (or copy it to inventory.yml)"
                    } else {
                        ""
                    }
                ),
                _ => String::new(),
            };
            Error::Read { path: path.to_owned(), source, hint }
        })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(path, &source, base, env)
}

/// Where the field at `path` (diagnostics' syntax: `virtual_services[2]`)
/// is written in inventory `source`, as (line, column); the nearest
/// enclosing field when it is not there, `(1, 1)` when the document cannot
/// be indexed. For messages about an inventory that has already loaded.
pub fn position(source: &str, path: &str) -> (usize, usize) {
    locate::Locations::index(source).map_or((1, 1), |l| l.find(path))
}

/// Parse and validate inventory text; `file` is only used in messages and
/// `base` resolves relative secret files.
///
/// # Errors
/// [`Error::Invalid`] with every problem found.
pub fn load_str(
    file: &Path,
    source: &str,
    base: &Path,
    env: &dyn Environment,
) -> Result<Loaded, Error> {
    let refuse = |(line, col), message: String| {
        let finding = Finding::error("", message);
        Error::Invalid(Diagnostics::new(
            file,
            vec![Diagnostic { finding, line, col }],
        ))
    };
    if source.len() as u64 > load::INPUT_MAX {
        return Err(refuse(
            (1, 1),
            format!("the inventory is larger than {} bytes", load::INPUT_MAX),
        ));
    }
    let locations = locate::Locations::index(source).map_err(|e| {
        let why = match e.paths {
            false => format!(
                "nested deeper than {} levels of mappings and lists — an \
                 inventory needs about six",
                locate::DEPTH_MAX
            ),
            true => format!(
                "too large to index: the field paths pass {} bytes here \
                 (long keys nested deep with many fields below them)",
                locate::PATH_BYTES_MAX
            ),
        };
        refuse(e.position, why)
    })?;
    let place = |finding: Finding, position: Option<(usize, usize)>| {
        let (line, col) =
            position.unwrap_or_else(|| locations.find(&finding.path));
        Diagnostic { finding, line, col }
    };
    let inventory = load::parse(source).map_err(|errors| {
        let items = errors.into_iter().map(|e| place(e.finding, e.position));
        Error::Invalid(Diagnostics::new(file, items.collect()))
    })?;
    let findings = validate::validate(&inventory, base, env);
    let (errors, warnings): (Vec<_>, Vec<_>) = findings
        .into_iter()
        .map(|f| place(f, None))
        .partition(|d| d.finding.severity == Severity::Error);
    if !errors.is_empty() {
        let mut all = errors;
        all.extend(warnings);
        return Err(Error::Invalid(Diagnostics::new(file, all)));
    }
    Ok(Loaded { inventory, warnings: Diagnostics::new(file, warnings) })
}
