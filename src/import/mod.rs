//! `lbdeploy import-keepalived`: the directors' keepalived.conf files (and
//! optionally the real servers' rc.local/arptables scripts) in, one
//! commented inventory out.
//!
//! * `lexer`, `parser`, `glob` — keepalived's syntax: tokens, a tree of
//!   blocks with positions, `include` with globs;
//! * `keepalived` — keyword semantics for one director's file;
//! * `rsscript` — VIP, RIP and interface from a real-server script;
//! * `merge` — the directors' files → one inventory; `compare` finds where
//!   two copies of a section differ, located in both files;
//! * `emit` — commented YAML;
//! * `diag` — located errors and warnings.
//!
//! keepalived.conf does not say everything an inventory needs: the
//! directors' own addresses (unless `unicast_src_ip` gives them), the real
//! servers' interfaces, names for services, the lab. [`Request`] carries
//! what the user adds on the command line. The result is loaded back with
//! the inventory loader before it is returned, so what is written always
//! validates.

pub mod command;
mod compare;
mod diag;
mod emit;
mod keepalived;
mod lexer;
mod merge;
mod parser;
mod rsscript;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use diag::{Diag, Pos, Report, Severity};

use crate::inventory::{self, IfAddr, Inventory, Lab};

/// `[NAME=]FILE`: a director's keepalived.conf or a real server's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The host's name; from `router_id` or the file name when absent.
    pub name: Option<String>,
    /// The file.
    pub path: PathBuf,
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some(("", _)) | Some((_, "")) => Err(format!(
                "`{s}`: write NAME=FILE, e.g. keepalived01=ka01.conf"
            )),
            Some((name, path)) => {
                Ok(Source { name: Some(name.to_owned()), path: path.into() })
            }
            None => Ok(Source { name: None, path: s.into() }),
        }
    }
}

/// `NAME=ADDRESS/PREFIX[@IFACE]`: a host's own address, which
/// keepalived.conf may not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The host (a director's or a real server's name).
    pub name: String,
    /// Its address and prefix.
    pub address: IfAddr,
    /// Its interface, when keepalived.conf or the script does not say.
    pub interface: Option<String>,
}

impl FromStr for HostSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "write NAME=ADDRESS/PREFIX[@IFACE], e.g. \
                     rs01=192.168.1.21/24@eth0";
        let (name, rest) = s
            .split_once('=')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| format!("`{s}`: {usage}"))?;
        let (address, interface) = match rest.split_once('@') {
            Some((a, i)) => (a, Some(i.to_owned())),
            None => (rest, None),
        };
        let address = address.parse().map_err(|e| format!("`{s}`: {e}"))?;
        Ok(HostSpec { name: name.to_owned(), address, interface })
    }
}

/// Parse `NAME=VIP:PORT` (`[V6]:PORT` for IPv6).
///
/// # Errors
/// A message saying how to write it.
pub fn parse_service_name(s: &str) -> Result<(String, SocketAddr), String> {
    let usage = "write NAME=VIP:PORT, e.g. web=192.168.1.200:80";
    let (name, at) =
        s.split_once('=').ok_or_else(|| format!("`{s}`: {usage}"))?;
    let at = at.parse().map_err(|_| format!("`{s}`: {usage}"))?;
    Ok((name.to_owned(), at))
}

/// Everything an import reads.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The directors' keepalived.conf files, in the order of the inventory.
    pub directors: Vec<Source>,
    /// Real-server scripts.
    pub scripts: Vec<Source>,
    /// Hosts' addresses not in the files.
    pub hosts: Vec<HostSpec>,
    /// The cluster's name; the directors' common name stem when absent.
    pub cluster: Option<String>,
    /// Names for virtual services.
    pub services: Vec<(String, SocketAddr)>,
    /// The lab section, when the inventory is also used with `lbdeploy lab`.
    pub lab: Option<Lab>,
}

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
    let confs: Vec<_> = req
        .directors
        .iter()
        .map(|d| {
            let conf = keepalived::read(&d.path, &mut report);
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
        Ok(loaded) => {
            Ok(Imported { yaml, inventory: loaded.inventory, warnings: report })
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

/// A host name from a file name: `rs01.sh` → `rs01`.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "host".to_owned(), |s| s.to_string_lossy().into_owned())
}
