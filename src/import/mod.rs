//! `lbdeploy import-keepalived`: the directors' keepalived.conf files (and
//! optionally the real servers' rc.local/arptables scripts) in, one
//! commented inventory out.
//!
//! * `lexer`, `parser`, `glob` — keepalived's syntax: tokens, a tree of
//!   blocks with positions, `include` with globs;
//! * `keepalived` — keyword semantics for one director's file;
//! * `fwmark` — the mangle rules behind `virtual_server fwmark N`
//!   (`--fwmark-rules`), read into port groups;
//! * `rsscript` — VIP, RIP and interface from a real-server script;
//! * `merge` — the directors' files → one inventory; `compare` finds where
//!   two copies of a section differ, located in both files;
//! * `emit` — commented YAML;
//! * `diag` — located errors and warnings;
//! * `request` — what the user adds on the command line.
//!
//! keepalived.conf does not say everything an inventory needs: the
//! directors' own addresses (unless `unicast_src_ip` gives them), the real
//! servers' interfaces, names for services, the lab. `Request` carries
//! what the user adds on the command line. The result is loaded back with
//! the inventory loader before it is returned, so what is written always
//! validates.

pub mod command;
mod compare;
mod diag;
mod emit;
mod fwmark;
mod keepalived;
mod lexer;
mod merge;
mod parser;
mod request;
mod rsscript;

use std::path::Path;

pub(crate) use diag::Report;
pub(crate) use request::{HostSpec, Request, Source, parse_service_name};

use crate::inventory::{self, Inventory, Severity};

/// A successful import.
#[derive(Debug)]
pub struct Imported {
    /// The commented YAML.
    pub yaml: String,
    /// The same inventory, as loaded back from `yaml`.
    pub inventory: Inventory,
    /// What was not carried over or changed on the way.
    pub warnings: Report,
}

/// Import the files `req` names.
///
/// # Errors
/// Every error found (with the warnings beside them), sorted by position.
pub fn import(req: &Request) -> Result<Imported, Report> {
    let mut report = Report::default();
    // Read before the directors' files, which look their marks up.
    let marks = (!req.fwmark_rules.is_empty())
        .then(|| fwmark::Marks::read(&req.fwmark_rules, &mut report));
    let confs: Vec<_> = req
        .directors
        .iter()
        .map(|d| {
            let conf = keepalived::read(&d.path, marks.as_ref(), &mut report);
            let name =
                d.name.clone().unwrap_or_else(|| match &conf.router_id {
                    Some(r) => r.value.clone(),
                    None => stem(&d.path),
                });
            (name, conf)
        })
        .collect();
    let scripts: Vec<_> = req
        .scripts
        .iter()
        .filter_map(|s| {
            let script = rsscript::read(&s.path, &mut report)?;
            Some((s.name.clone().unwrap_or_else(|| stem(&s.path)), script))
        })
        .collect();
    if report.has_errors() {
        return Err(report.sorted());
    }
    let merged = merge::merge(&confs, &scripts, req, &mut report);
    let report = report.sorted();
    let merged = match merged {
        Some(m) if !report.has_errors() => m,
        _ => return Err(report),
    };
    let sources: Vec<_> =
        req.directors.iter().map(|d| d.path.display().to_string()).collect();
    let mut yaml = Vec::new();
    emit::write(&merged, &sources.join(", "), &report, &mut yaml)
        .expect("writing to memory cannot fail");
    let yaml = String::from_utf8(yaml).expect("the YAML is built from strings");
    let name = Path::new("<imported inventory>");
    match inventory::load_str(name, &yaml, Path::new("."), &inventory::System) {
        // What validation warns of, at the keepalived.conf line too: the
        // inventory runs, but maybe not as the operator thinks.
        Ok(loaded) => {
            let mut report = report;
            for item in &loaded.warnings.items {
                let f = &item.finding;
                report.warn(
                    merged.origins.locate(&f.path),
                    format!("`{}`: {}", f.path, f.message),
                );
            }
            let warnings = report.sorted();
            Ok(Imported { yaml, inventory: loaded.inventory, warnings })
        }
        // Each problem at the keepalived.conf line it came from.
        Err(inventory::Error::Invalid(found)) => {
            let mut report = report;
            for item in found
                .items
                .iter()
                .filter(|i| i.finding.severity == Severity::Error)
            {
                let f = &item.finding;
                report.error(
                    merged.origins.locate(&f.path),
                    format!(
                        "lbdeploy cannot run this: `{}`: {}",
                        f.path, f.message
                    ),
                );
            }
            Err(report.sorted())
        }
        Err(e) => {
            let mut report = report;
            report.error(
                None,
                format!(
                    "the imported inventory does not validate; this is what \
                     lbdeploy cannot run as configured:\n{e}"
                ),
            );
            Err(report)
        }
    }
}

/// Read keepalived.conf text on its own (no merge, no output) and return
/// what the import would say about it: the entry point for fuzzing and for
/// editors that want diagnostics.
pub fn check_conf(text: &str) -> Report {
    let mut report = Report::default();
    keepalived::read_str(Path::new("keepalived.conf"), text, &mut report);
    report.sorted()
}

/// Read a `--fwmark-rules` file's text on its own and return what the
/// import would say about it: the entry point for fuzzing.
pub fn check_fwmark_rules(text: &str) -> Report {
    let mut report = Report::default();
    fwmark::Marks::default().add_text(
        Path::new("fwmark.rules"),
        text,
        &mut report,
    );
    report.sorted()
}

/// A host name from a file name: `rs01.sh` → `rs01`.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "host".to_owned(), |s| s.to_string_lossy().into_owned())
}
