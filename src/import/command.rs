//! `lbdeploy import-keepalived`: the command line of the importer and what
//! it prints; the conversion itself is [`super::import`].

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::diag::Report;
use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::inventory::{self, Severity};
use crate::util::files;

/// Options of `import-keepalived`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The directors' keepalived.conf files.
    #[arg(
        value_name = "DIRECTOR=FILE",
        required = true,
        long_help = "A director's keepalived.conf, named after the director \
                     (keepalived01=/etc/keepalived/keepalived.conf). Without \
                     NAME=, the director is named after its `router_id`. \
                     Give every director of the pair; the first one's order \
                     of instances and services is kept."
    )]
    pub directors: Vec<super::Source>,

    /// A real server's rc.local/arptables script, as NAME=FILE.
    #[arg(
        long = "realserver-script",
        value_name = "NAME=FILE",
        help_heading = "What keepalived.conf does not say",
        long_help = "A real server's rc.local/arptables script; its VIP, \
                     its own address (RIP) and its interface are read from \
                     it, and the real server becomes a managed host named \
                     NAME (the file name without extension when absent). \
                     Repeat for each real server."
    )]
    pub scripts: Vec<super::Source>,

    /// A host's own address: `NAME=ADDRESS/PREFIX[@IFACE]`.
    #[arg(
        long = "host",
        value_name = "NAME=ADDR/PREFIX[@IFACE]",
        help_heading = "What keepalived.conf does not say",
        long_help = "A host's own address with its prefix, and its \
                     interface where the files do not say it. For a \
                     director (keepalived01=192.168.1.11/24) this is \
                     required unless its `unicast_src_ip` gives it; a name \
                     that is not a director makes a managed real server \
                     (rs01=192.168.1.21/24@eth0). Overrides what a script \
                     says."
    )]
    pub hosts: Vec<super::HostSpec>,

    /// The cluster's name.
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "What keepalived.conf does not say",
        long_help = "The inventory's `cluster`. Defaults to the common stem \
                     of the directors' names (keepalived01, keepalived02 → \
                     keepalived)."
    )]
    pub cluster: Option<String>,

    /// Name a virtual service: NAME=VIP:PORT.
    #[arg(
        long = "service",
        value_name = "NAME=VIP:PORT",
        value_parser = super::parse_service_name,
        help_heading = "What keepalived.conf does not say",
        long_help = "A name for the virtual service at VIP:PORT \
                     (web=192.168.1.200:80, web6=[2001:db8::80]:80), used in \
                     logs and plans. Services from a virtual_server_group \
                     are named after the group."
    )]
    pub services: Vec<(String, std::net::SocketAddr)>,

    /// Mangle rules that set the marks of `virtual_server fwmark N`.
    #[arg(
        long = "fwmark-rules",
        value_name = "FILE",
        help_heading = "What keepalived.conf does not say",
        long_help = "The rules that mark the packets of keepalived's \
                     `virtual_server fwmark N` services, as `iptables-save \
                     -t mangle` prints them (`-A PREROUTING -d \
                     10.0.0.100/32 -p tcp -m multiport --dports 80,443 -j \
                     MARK --set-mark 1`), as iptables commands, or as \
                     nftables rules ending in `meta mark set 1`. Each mark \
                     becomes a port group (`ports: [80, 443]`) on the VIP \
                     its rules name. A mark set for two VIPs, or by a rule \
                     that says more than a VIP, a protocol and ports, is \
                     refused at its FILE:LINE:COL. Repeat for several files."
    )]
    pub fwmark_rules: Vec<PathBuf>,

    /// The data plane to write (`dataplane:`).
    #[arg(
        long,
        value_name = "auto|ipvs|nftables",
        value_parser = parse_dataplane,
        help_heading = "What keepalived.conf does not say",
        long_help = "The inventory's `dataplane`: auto (the default: IPVS \
                     where the kernel has it, nftables otherwise), ipvs or \
                     nftables."
    )]
    pub dataplane: Option<inventory::Dataplane>,

    /// The lab's controller address (with --lab-client).
    #[arg(
        long,
        value_name = "ADDR/PREFIX",
        requires = "lab_client",
        help_heading = "What keepalived.conf does not say"
    )]
    pub lab_controller: Option<inventory::IfAddr>,

    /// The lab's client address (with --lab-controller).
    #[arg(
        long,
        value_name = "ADDR/PREFIX",
        requires = "lab_controller",
        help_heading = "What keepalived.conf does not say"
    )]
    pub lab_client: Option<inventory::IfAddr>,

    /// Write the inventory here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Fail (exit 1, write nothing) when anything is not carried over.
    #[arg(long)]
    pub strict: bool,
}

impl ImportArgs {
    fn request(&self) -> super::Request {
        super::Request {
            directors: self.directors.clone(),
            scripts: self.scripts.clone(),
            hosts: self.hosts.clone(),
            cluster: self.cluster.clone(),
            services: self.services.clone(),
            fwmark_rules: self.fwmark_rules.clone(),
            dataplane: self.dataplane,
            lab: self.lab_controller.zip(self.lab_client).map(
                |(controller, client)| inventory::Lab {
                    controller,
                    client,
                    router: None,
                },
            ),
        }
    }
}

/// `--dataplane auto|ipvs|nftables`, by the inventory's own names.
fn parse_dataplane(s: &str) -> Result<inventory::Dataplane, String> {
    serde_json::from_value(s.into())
        .map_err(|_| format!("`{s}`: expected auto, ipvs or nftables"))
}

/// `lbdeploy import-keepalived`: keepalived.conf files to one inventory,
/// written only when nothing is refused; with `--json`, a report on
/// stdout instead of the talk on stderr (`json_report`).
///
/// # Errors
/// When the inventory cannot be written.
pub fn run(
    global: &GlobalArgs,
    args: &ImportArgs,
) -> anyhow::Result<ExitStatus> {
    let imported = super::import(&args.request());
    if global.json {
        return json(args, imported);
    }
    let imported = match imported {
        Ok(imported) => imported,
        Err(report) => {
            eprint!("{report}");
            eprintln!(
                "import failed ({} error(s), {} warning(s)); nothing was written",
                report.count(Severity::Error),
                report.count(Severity::Warning)
            );
            return Ok(ExitStatus::Error);
        }
    };
    let warnings = imported.warnings.count(Severity::Warning);
    if !global.quiet || args.strict {
        eprint!("{}", imported.warnings);
    }
    if args.strict && warnings > 0 {
        eprintln!(
            "import failed with --strict ({warnings} warning(s)); nothing was written"
        );
        return Ok(ExitStatus::Error);
    }
    write(args, &imported)?;
    if !global.quiet {
        let inv = &imported.inventory;
        eprintln!(
            "imported {} directors, {} real servers, {} VRRP instances, {} \
             virtual services ({warnings} warning(s)){}",
            inv.directors.len(),
            inv.real_servers.len(),
            inv.vrrp_instances.len(),
            inv.virtual_services.len(),
            args.output
                .as_ref()
                .map(|p| format!(" into {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(ExitStatus::Ok)
}

/// The inventory to `--output`, else to stdout.
fn write(args: &ImportArgs, imported: &super::Imported) -> anyhow::Result<()> {
    match &args.output {
        Some(path) => {
            files::write_atomic(path, imported.yaml.as_bytes(), 0o644)?
        }
        None => std::io::stdout().lock().write_all(imported.yaml.as_bytes())?,
    }
    Ok(())
}

/// `--json`: the inventory written to `--output` when there is one, and
/// the report on stdout; nothing on stderr.
fn json(
    args: &ImportArgs,
    imported: Result<super::Imported, Report>,
) -> anyhow::Result<ExitStatus> {
    let (report, imported) = match imported {
        Ok(i) => (i.warnings.clone(), Some(i)),
        Err(report) => (report, None),
    };
    let refused = args.strict && report.count(Severity::Warning) > 0;
    let imported = imported.filter(|_| !refused);
    if let (Some(i), Some(_)) = (&imported, &args.output) {
        write(args, i)?;
    }
    let doc = json_report(&report, imported.as_ref(), args.output.as_deref());
    let mut out = std::io::stdout().lock();
    crate::util::terminal::write_json(&mut out, &doc)?;
    writeln!(out)?;
    Ok(match imported {
        Some(_) => ExitStatus::Ok,
        None => ExitStatus::Error,
    })
}

/// The `--json` report: whether an inventory was made, every diagnostic
/// kept (and how many more were not), the counts, and the inventory
/// itself, as YAML text and as what it holds.
fn json_report(
    report: &Report,
    imported: Option<&super::Imported>,
    output: Option<&std::path::Path>,
) -> serde_json::Value {
    let diagnostics: Vec<_> = report
        .items
        .iter()
        .map(|d| {
            serde_json::json!({
                "file": d.pos.as_ref().map(|p| p.file.display().to_string()),
                "line": d.pos.as_ref().map(|p| p.line),
                "column": d.pos.as_ref().map(|p| p.col),
                "severity": match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                "message": crate::util::redact::text(&d.message),
            })
        })
        .collect();
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    serde_json::json!({
        "imported": imported.is_some(),
        "output": imported.and(output).map(|p| p.display().to_string()),
        "errors": errors,
        "warnings": warnings,
        "not_shown": errors + warnings - report.items.len(),
        "diagnostics": diagnostics,
        "inventory": imported.map(|i| &i.yaml),
        "counts": imported.map(|i| serde_json::json!({
            "directors": i.inventory.directors.len(),
            "real_servers": i.inventory.real_servers.len(),
            "vrrp_instances": i.inventory.vrrp_instances.len(),
            "virtual_services": i.inventory.virtual_services.len(),
        })),
    })
}
