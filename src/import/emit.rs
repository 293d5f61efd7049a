//! The inventory as YAML, each section and each entry preceded by a comment
//! naming the keepalived.conf lines it came from, and the warnings of the
//! import listed at the top so the file carries its own review notes.
//!
//! Each piece is serialised by serde (so the text always loads back into
//! the same values) and the comments are put between the pieces.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use super::diag::Report;
use super::merge::Merged;

/// Write `merged` as commented YAML to `out`.
///
/// # Errors
/// Only those of `out`.
pub fn write(
    merged: &Merged,
    sources: &str,
    warnings: &Report,
    out: &mut dyn Write,
) -> io::Result<()> {
    let inv = &merged.inventory;
    let o = &merged.origins;
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Imported by `lbdeploy import-keepalived` from {sources}."
    );
    if !warnings.items.is_empty() {
        y.push_str("#\n# Not carried over or changed on the way (review before `apply`):\n");
        for d in &warnings.items {
            let _ = writeln!(
                y,
                "#   {}",
                d.to_string().replacen("warning: ", "", 1)
            );
        }
        if let Some(line) = warnings.untold() {
            let _ = writeln!(y, "#   {line}");
        }
    }
    y.push('\n');
    section(&mut y, None, "cluster", &inv.cluster);
    section(&mut y, None, "ssh", &inv.ssh);
    section(&mut y, None, "dataplane", &inv.dataplane);
    if let Some(sync) = &inv.ipvs_sync {
        section(&mut y, Some("lvs_sync_daemon"), "ipvs_sync", sync);
    }
    list(&mut y, "directors", &inv.directors, &o.directors);
    list(&mut y, "real_servers", &inv.real_servers, &o.real_servers);
    list(&mut y, "vrrp_instances", &inv.vrrp_instances, &o.vrrp_instances);
    list(&mut y, "vrrp_scripts", &inv.vrrp_scripts, &o.vrrp_scripts);
    list(
        &mut y,
        "vrrp_track_files",
        &inv.vrrp_track_files,
        &o.vrrp_track_files,
    );
    list(
        &mut y,
        "vrrp_track_processes",
        &inv.vrrp_track_processes,
        &o.vrrp_track_processes,
    );
    list(
        &mut y,
        "vrrp_sync_groups",
        &inv.vrrp_sync_groups,
        &o.vrrp_sync_groups,
    );
    list(
        &mut y,
        "virtual_services",
        &inv.virtual_services,
        &o.virtual_services,
    );
    if let Some(n) = &inv.notification {
        section(&mut y, o.notification.as_deref(), "notification", n);
    }
    if inv.script_security {
        let from = Some("enable_script_security");
        section(&mut y, from, "script_security", &true);
    }
    if let Some(user) = &inv.script_user {
        section(&mut y, Some("script_user"), "script_user", user);
    }
    if let Some(p) = inv.vrrp_rt_priority {
        section(&mut y, Some("vrrp_rt_priority"), "vrrp_rt_priority", &p);
    }
    if inv.vrrp_no_swap {
        let from = Some("vrrp_no_swap, checker_no_swap");
        section(&mut y, from, "vrrp_no_swap", &true);
    }
    if let Some(lab) = &inv.lab {
        section(&mut y, Some("--lab-controller, --lab-client"), "lab", lab);
    }
    out.write_all(y.as_bytes())
}

fn yaml<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising the inventory's own types cannot fail: they hold only
    // strings, numbers, lists and string-keyed maps.
    serde_yaml::to_string(value).expect("inventory types serialise")
}

fn section<T: Serialize>(
    y: &mut String,
    from: Option<&str>,
    key: &str,
    value: &T,
) {
    if let Some(from) = from {
        let _ = writeln!(y, "\n# from {from}");
    }
    let mut map = serde_yaml::Mapping::new();
    let value = serde_yaml::to_value(value).expect("inventory types serialise");
    map.insert(key.into(), value);
    y.push_str(&yaml(&map));
}

fn list<T: Serialize>(
    y: &mut String,
    key: &str,
    items: &[T],
    origins: &[String],
) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(y, "\n{key}:");
    for (i, item) in items.iter().enumerate() {
        if let Some(from) = origins.get(i) {
            let _ = writeln!(y, "  # from {from}");
        }
        for line in yaml(std::slice::from_ref(item)).lines() {
            let _ = writeln!(y, "  {line}");
        }
    }
}
