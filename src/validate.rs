//! `lbdeploy validate`: load the inventory, print every problem at once
//! (FILE:LINE:COL, or JSON), and exit 1 when it cannot be used. The rules
//! themselves are the inventory's ([`crate::inventory`]); this module only
//! reports them.

use std::io::Write;
use std::path::Path;

use anyhow::bail;
use clap::Args;

use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::inventory::{self, Diagnostics, Severity};

/// Options of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,
}

/// `lbdeploy validate`: every problem at once, as text on stderr or
/// JSON on stdout.
///
/// # Errors
/// When the inventory cannot be read at all.
pub fn run(
    global: &GlobalArgs,
    args: &ValidateArgs,
) -> anyhow::Result<ExitStatus> {
    let loaded = inventory::load(&global.inventory, &inventory::System);
    let diagnostics = match &loaded {
        Ok(l) => l.warnings.clone(),
        Err(inventory::Error::Invalid(d)) => d.clone(),
        Err(e @ inventory::Error::Read { .. }) => bail!("{e}"),
    };
    let failed = loaded.is_err()
        || (args.strict && diagnostics.count(Severity::Warning) > 0);
    if global.json {
        print_json(&diagnostics, !failed)?;
    } else if !global.quiet || failed {
        // A message may quote a value (a webhook URL with its token).
        eprint!("{}", crate::util::redact::text(&diagnostics.to_string()));
        eprintln!(
            "{}",
            summary(&global.inventory, &diagnostics, failed, args.strict)
        );
    }
    if let (Ok(l), true) = (&loaded, global.verbose > 0 && !global.json) {
        let inv = &l.inventory;
        eprintln!(
            "cluster {}: {} directors, {} real servers, {} VRRP instances, \
             {} virtual services",
            inv.cluster,
            inv.directors.len(),
            inv.real_servers.len(),
            inv.vrrp_instances.len(),
            inv.virtual_services.len()
        );
    }
    Ok(if failed { ExitStatus::Error } else { ExitStatus::Ok })
}

fn summary(file: &Path, d: &Diagnostics, failed: bool, strict: bool) -> String {
    let (errors, warnings) =
        (d.count(Severity::Error), d.count(Severity::Warning));
    let counts = format!("{errors} error(s), {warnings} warning(s)");
    match (failed, errors) {
        (false, _) => format!("{}: valid ({counts})", file.display()),
        (true, 0) if strict => {
            format!("{}: invalid with --strict ({counts})", file.display())
        }
        _ => format!("{}: invalid ({counts})", file.display()),
    }
}

fn print_json(d: &Diagnostics, valid: bool) -> anyhow::Result<()> {
    let items: Vec<_> = d
        .items
        .iter()
        .map(|i| {
            serde_json::json!({
                "file": d.file,
                "line": i.line,
                "column": i.col,
                "severity": match i.finding.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                "path": i.finding.path,
                "message": crate::util::redact::text(&i.finding.message),
            })
        })
        .collect();
    let doc = serde_json::json!({ "valid": valid, "diagnostics": items });
    let mut out = std::io::stdout().lock();
    crate::util::terminal::write_json(&mut out, &doc)?;
    writeln!(out)?;
    Ok(())
}
