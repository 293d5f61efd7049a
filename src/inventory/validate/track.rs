//! The tracking rules: `vrrp_scripts` (unique names, a command, sane
//! timing and weights) and each instance's `track` (interfaces that can
//! exist, scripts that are defined, keepalived's weight range).

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use super::hosts::interface_name;
use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Inventory, TRACK_WEIGHT_MAX, Track, TrackRef, VrrpInstance, VrrpScript,
};

/// The shortest script interval and timeout: a script is a process
/// started each time, and faster than this it is a busy loop.
const SCRIPT_MIN: StdDuration = StdDuration::from_millis(100);

/// The longest: keepalived's scripts run every few seconds; an hour is
/// the most a health signal can be worth.
const SCRIPT_MAX: StdDuration = StdDuration::from_secs(3600);

/// The most `rise` or `fall` may be.
const RISE_FALL_MAX: u32 = 100;

/// Every script's rules, and a warning for one no instance tracks.
pub(crate) fn vrrp_scripts(inv: &Inventory, out: &mut Vec<Finding>) {
    let mut seen = HashMap::new();
    for (i, s) in inv.vrrp_scripts.iter().enumerate() {
        let path = format!("vrrp_scripts[{i}]");
        if let Some(first) = seen.insert(s.name.as_str(), i) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "script `{}` is defined twice (first at \
                     vrrp_scripts[{first}]) — give each its own name",
                    s.name
                ),
            ));
        }
        script(s, &path, out);
        let tracked = inv
            .vrrp_instances
            .iter()
            .any(|vi| vi.track.scripts.iter().any(|t| t.name == s.name));
        if !tracked {
            out.push(Finding::warning(
                format!("{path}.name"),
                format!(
                    "script `{}` is tracked by no instance, so it never runs \
                     — list it under an instance's `track.scripts`",
                    s.name
                ),
            ));
        }
    }
}

fn script(s: &VrrpScript, path: &str, out: &mut Vec<Finding>) {
    if s.name.is_empty() || s.name.chars().any(char::is_control) {
        out.push(Finding::error(
            format!("{path}.name"),
            "a script needs a name without control characters",
        ));
    }
    let program = s.command.first().map(String::as_str).unwrap_or("");
    if program.is_empty() || s.command.iter().any(|a| a.contains('\0')) {
        out.push(Finding::error(
            format!("{path}.command"),
            "the command is a program and its arguments, e.g. \
             `[/usr/bin/pgrep, -x, haproxy]` (no NUL bytes)",
        ));
    }
    let timing = [("interval", Some(s.interval)), ("timeout", s.timeout)];
    for (field, d) in timing {
        let Some(d) = d else { continue };
        if !(SCRIPT_MIN..=SCRIPT_MAX).contains(&d.get()) {
            out.push(Finding::error(
                format!("{path}.{field}"),
                format!("{d} is out of range — use 100ms–1h"),
            ));
        }
    }
    weight(s.weight, &format!("{path}.weight"), out);
    for (field, n) in [("rise", s.rise), ("fall", s.fall)] {
        if !(1..=RISE_FALL_MAX).contains(&n) {
            out.push(Finding::error(
                format!("{path}.{field}"),
                format!("{n} is out of range — use 1–{RISE_FALL_MAX}"),
            ));
        }
    }
}

/// An instance's `track`: interface names, defined scripts, weights.
pub(crate) fn track(
    inv: &Inventory,
    vi: &VrrpInstance,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let Track { interfaces, scripts, files, processes } = &vi.track;
    for (j, t) in interfaces.iter().enumerate() {
        let p = format!("{path}.track.interfaces[{j}]");
        interface_name(&t.name, &format!("{p}.name"), out);
        weight(t.weight, &format!("{p}.weight"), out);
    }
    let names = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
    let lists: [(&str, &[TrackRef], &str, Vec<String>); 3] = [
        (
            "scripts",
            scripts,
            "vrrp_scripts",
            names(inv.vrrp_scripts.iter().map(|s| s.name.as_str()).collect()),
        ),
        (
            "files",
            files,
            "vrrp_track_files",
            names(
                inv.vrrp_track_files.iter().map(|f| f.name.as_str()).collect(),
            ),
        ),
        (
            "processes",
            processes,
            "vrrp_track_processes",
            names(
                inv.vrrp_track_processes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect(),
            ),
        ),
    ];
    for (field, refs, list, defined) in lists {
        for (j, t) in refs.iter().enumerate() {
            let p = format!("{path}.track.{field}[{j}]");
            if !defined.contains(&t.name) {
                out.push(Finding::error(
                    format!("{p}.name"),
                    format!(
                        "no `{}` in {list} — define it there, or fix the name",
                        t.name
                    ),
                ));
            }
            if let Some(w) = t.weight {
                weight(w, &format!("{p}.weight"), out);
            } else if t.reverse {
                out.push(Finding::error(
                    format!("{p}.reverse"),
                    "`reverse` negates the `weight` given beside it — give \
                     one here, or set `reverse` on the object itself",
                ));
            }
        }
    }
}

/// `vrrp_track_files` and `vrrp_track_processes`: unique names, an
/// absolute file, a process name the kernel can match, a quorum range
/// that can hold, keepalived's weights; a warning for one no instance
/// tracks.
pub(crate) fn tracked_objects(inv: &Inventory, out: &mut Vec<Finding>) {
    let mut seen = HashMap::new();
    for (i, f) in inv.vrrp_track_files.iter().enumerate() {
        let path = format!("vrrp_track_files[{i}]");
        unique(&mut seen, &f.name, &path, out);
        if !f.path.is_absolute() {
            out.push(Finding::error(
                format!("{path}.path"),
                format!("`{}` is not an absolute path", f.path.display()),
            ));
        }
        weight(f.weight, &format!("{path}.weight"), out);
        if let Some(init) = f.init
            && i32::try_from(init.value).is_err()
        {
            out.push(Finding::error(
                format!("{path}.init.value"),
                format!(
                    "{} does not fit the file's number, a 32-bit integer \
                     (−2147483648–2147483647)",
                    init.value
                ),
            ));
        }
        untracked(inv, &f.name, |t| &t.files, &path, out);
    }
    let mut seen = HashMap::new();
    for (i, p) in inv.vrrp_track_processes.iter().enumerate() {
        let path = format!("vrrp_track_processes[{i}]");
        unique(&mut seen, &p.name, &path, out);
        let comm = p.parameters.is_none();
        if p.process.is_empty() || (comm && p.process.len() > COMM_MAX) {
            out.push(Finding::error(
                format!("{path}.process"),
                format!(
                    "`{}` can never match: a process name is 1–{COMM_MAX} \
                     bytes (the kernel cuts longer ones) — give the command \
                     line's first word with `parameters` instead",
                    p.process
                ),
            ));
        }
        if p.quorum_max.is_some_and(|max| max < p.quorum) {
            out.push(Finding::error(
                format!("{path}.quorum_max"),
                "quorum_max is below quorum: the process could never be OK",
            ));
        }
        weight(p.weight, &format!("{path}.weight"), out);
        untracked(inv, &p.name, |t| &t.processes, &path, out);
    }
}

/// The kernel's process-name length (`TASK_COMM_LEN` − 1).
const COMM_MAX: usize = 15;

fn unique<'a>(
    seen: &mut HashMap<&'a str, String>,
    name: &'a str,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if let Some(first) = seen.insert(name, path.to_owned()) {
        out.push(Finding::error(
            format!("{path}.name"),
            format!("`{name}` is defined twice (first at {first})"),
        ));
    }
}

fn untracked(
    inv: &Inventory,
    name: &str,
    refs: fn(&Track) -> &Vec<TrackRef>,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if !inv
        .vrrp_instances
        .iter()
        .any(|vi| refs(&vi.track).iter().any(|t| t.name == name))
    {
        out.push(Finding::warning(
            format!("{path}.name"),
            format!(
                "`{name}` is tracked by no instance, so nothing watches it"
            ),
        ));
    }
}

fn weight(w: i32, path: &str, out: &mut Vec<Finding>) {
    if !(-TRACK_WEIGHT_MAX..=TRACK_WEIGHT_MAX).contains(&w) {
        out.push(Finding::error(
            path,
            format!(
                "weight {w} is out of range — use −{TRACK_WEIGHT_MAX}–\
                 {TRACK_WEIGHT_MAX} (0: fault while failing)"
            ),
        ));
    }
}
