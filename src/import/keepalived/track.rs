//! `vrrp_script` blocks and the `track_script` / `track_interface` lists
//! of a `vrrp_instance`: what an instance tracks, with keepalived's
//! weights.

use super::value::{Fields, Reader};
use crate::import::parser::Node;
use crate::inventory::{
    Duration, FileInit, ParamMatch, Track, TrackFile, TrackInterface,
    TrackProcess, TrackRef, VrrpScript,
};

/// `weight N [reverse|noreverse]`: the weight, and whether it is
/// reversed.
fn weight(
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<(i32, bool)> {
    let (n, rest) = node.args.split_first()?;
    let reverse = match rest {
        [] => false,
        [w] if w == "reverse" => true,
        [w] if w == "noreverse" => false,
        _ => {
            r.warn(node, block, "expected `weight N` or `weight N reverse`");
            false
        }
    };
    match n.parse() {
        Ok(n) => Some((n, reverse)),
        Err(_) => {
            let m = format!("`weight {n}`: expected a whole number");
            r.error(node, block, &m);
            None
        }
    }
}

/// Read `init_file [VALUE] [overwrite]` (VALUE 0 when left out).
fn init_file(
    node: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<FileInit> {
    let mut init = FileInit { value: 0, overwrite: false };
    for arg in &node.args {
        match (arg.as_str(), arg.parse::<i32>()) {
            ("overwrite", _) => init.overwrite = true,
            (_, Ok(n)) => init.value = n.into(),
            (other, Err(_)) => {
                let m = format!(
                    "`init_file {other}`: expected a 32-bit whole number or \
                     `overwrite`"
                );
                r.error(node, block, &m);
                return None;
            }
        }
    }
    Some(init)
}

/// Read a `vrrp_track_file NAME { file PATH; weight N [reverse];
/// init_file [VALUE] [overwrite] }` block.
pub fn file(block: &Node, r: &mut Reader<'_>) -> Option<(TrackFile, Fields)> {
    let Some(name) = block.args.first().cloned() else {
        r.error(block, block, "`vrrp_track_file` needs a name");
        return None;
    };
    let mut fields = Fields::new(&block.pos);
    let mut f = TrackFile {
        name,
        path: Default::default(),
        weight: 1,
        reverse: false,
        init: None,
    };
    for node in block.children() {
        match node.keyword.as_str() {
            "file" => {
                match r.one(node, block) {
                    Some("") => r.error(node, block, "`file` is empty"),
                    Some(p) => f.path = p.into(),
                    None => {}
                }
                fields.set("path", &node.pos);
            }
            "weight" => {
                if let Some((w, rev)) = weight(node, block, r) {
                    (f.weight, f.reverse) = (w, rev);
                }
                fields.set("weight", &node.pos);
            }
            "init_file" => {
                f.init = init_file(node, block, r);
                fields.set("init", &node.pos);
            }
            _ => r.not_carried(node, block),
        }
    }
    if f.path.as_os_str().is_empty() {
        if !fields.has("path") {
            r.error(block, block, "no `file` — add the file to watch");
        }
        return None;
    }
    Some((f, fields))
}

/// Read a `vrrp_track_process NAME { process NAME [ARGS…]; param_match
/// …; quorum N; quorum_max N; weight N [reverse]; delay …}` block.
pub fn process(
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<(TrackProcess, Fields)> {
    let Some(name) = block.args.first().cloned() else {
        r.error(block, block, "`vrrp_track_process` needs a name");
        return None;
    };
    let mut fields = Fields::new(&block.pos);
    let mut p = TrackProcess {
        name,
        process: String::new(),
        parameters: None,
        param_match: ParamMatch::Exact,
        quorum: 1,
        quorum_max: None,
        weight: 0,
        reverse: false,
        fork_delay: None,
        terminate_delay: None,
    };
    for node in block.children() {
        let key = node.keyword.as_str();
        match key {
            "process" => {
                let words = argv(&node.args);
                match words.split_first() {
                    Some((first, rest)) => {
                        p.process = first.clone();
                        if !rest.is_empty() {
                            p.parameters = Some(rest.to_vec());
                        }
                    }
                    None => r.error(node, block, "`process` names no process"),
                }
            }
            "full_command" => {
                p.parameters.get_or_insert_with(Vec::new);
                p.param_match = ParamMatch::Partial;
            }
            "param_match" => {
                p.param_match = match r.one(node, block) {
                    Some("partial") => ParamMatch::Partial,
                    Some("initial") => ParamMatch::Initial,
                    Some("exact") | None => ParamMatch::Exact,
                    Some(_) => {
                        r.error(
                            node,
                            block,
                            "param_match takes exact, partial or initial",
                        );
                        ParamMatch::Exact
                    }
                };
                p.parameters.get_or_insert_with(Vec::new);
            }
            "quorum" => p.quorum = r.number(node, block).unwrap_or(1),
            "quorum_max" => p.quorum_max = r.number(node, block),
            "weight" => {
                if let Some((w, rev)) = weight(node, block, r) {
                    (p.weight, p.reverse) = (w, rev);
                }
            }
            "delay" => {
                p.fork_delay = r.seconds(node, block);
                p.terminate_delay = p.fork_delay;
            }
            "fork_delay" => p.fork_delay = r.seconds(node, block),
            "terminate_delay" => p.terminate_delay = r.seconds(node, block),
            _ => {
                r.not_carried(node, block);
                continue;
            }
        }
        fields.set(key, &node.pos);
    }
    if p.process.is_empty() {
        if !fields.has("process") {
            r.error(block, block, "no `process` — add the process to look for");
        }
        return None;
    }
    Some((p, fields))
}

/// Read a `vrrp_script NAME { … }` block; `None` without a name or a
/// `script`.
pub fn script(
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<(VrrpScript, Fields)> {
    let Some(name) = block.args.first().cloned() else {
        r.error(block, block, "`vrrp_script` needs a name, e.g. `chk_haproxy`");
        return None;
    };
    let mut fields = Fields::new(&block.pos);
    let mut s = VrrpScript {
        name,
        command: Vec::new(),
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
        user: None,
    };
    for node in block.children() {
        let key = node.keyword.as_str();
        match key {
            "script" => {
                s.command = argv(&node.args);
                if s.command.is_empty() {
                    r.error(node, block, "`script` has no command");
                }
            }
            "interval" => {
                s.interval = r.seconds(node, block).unwrap_or(s.interval)
            }
            "timeout" => s.timeout = r.seconds(node, block),
            "weight" => {
                (s.weight, s.reverse) =
                    weight(node, block, r).unwrap_or((0, false));
            }
            "rise" => s.rise = r.number(node, block).unwrap_or(1),
            "fall" => s.fall = r.number(node, block).unwrap_or(1),
            "user" => s.user = r.script_user(&node.args, node, block),
            _ => {
                r.not_carried(node, block);
                continue;
            }
        }
        fields.set(if key == "script" { "command" } else { key }, &node.pos);
    }
    if s.command.is_empty() {
        if !fields.has("command") {
            r.error(block, block, "no `script` — add the command to run");
        }
        return None;
    }
    Some((s, fields))
}

/// What keepalived does with `weight N reverse` that the import, writing
/// `weight N`, does not (keepalived.conf(5), "Weight Reverse Script up
/// Script down"): the priority moves the other way.
fn reversed_weight(w: i32) -> String {
    match w {
        0 => "keepalived faults the instance while it is OK, the import \
              while it fails"
            .to_owned(),
        w if w > 0 => format!(
            "keepalived takes {w} off the priority while it is OK, \
             the import adds {w}: write the instance's priorities so that \
             they rank the directors as keepalived's did"
        ),
        w => format!(
            "keepalived adds {} to the priority while it fails, the \
             import takes it off: write the instance's priorities so that \
             they rank the directors as keepalived's did",
            -i64::from(w)
        ),
    }
}

/// keepalived's script line as an argv: words split at blanks, a single-
/// or double-quoted part kept whole, as keepalived splits it (it runs the
/// program directly, without a shell).
fn argv(args: &[String]) -> Vec<String> {
    let line = args.join(" ");
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Read `track_script`, `track_file`, `track_process` (`{ NAME [weight
/// N] … }`) or `track_interface` (`{ IFACE [weight N] … }`) into `track`.
pub fn track_list(
    track: &mut Track,
    list: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) {
    for item in list.children() {
        let (weight, reverse) = match item.args.as_slice() {
            [] => (None, false),
            [w, n, rest @ ..] if w == "weight" && rest.len() <= 1 => {
                let parsed = n.parse().ok();
                if parsed.is_none() {
                    let m = format!("`weight {n}`: expected a whole number");
                    r.error(item, list, &m);
                }
                let reverse = match rest.first().map(String::as_str) {
                    None | Some("noreverse") => false,
                    Some("reverse") => true,
                    Some(_) => {
                        r.warn(
                            item,
                            list,
                            "expected `NAME`, `NAME weight N` or `NAME weight \
                             N reverse`; the weight is kept",
                        );
                        false
                    }
                };
                (parsed, reverse && parsed.is_some())
            }
            _ => {
                r.warn(item, block, "expected `NAME` or `NAME weight N`");
                (None, false)
            }
        };
        let name = item.keyword.clone();
        let tracked = TrackRef { name, weight, reverse };
        match list.keyword.as_str() {
            "track_script" => track.scripts.push(tracked),
            "track_file" => track.files.push(tracked),
            "track_process" => track.processes.push(tracked),
            _ => {
                let weight = weight.unwrap_or(0);
                if reverse {
                    let m = format!(
                        "`reverse` is not carried over: a tracked interface \
                         has no reversed weight — {}",
                        reversed_weight(weight)
                    );
                    r.warn(item, list, &m);
                }
                let name = tracked.name;
                track.interfaces.push(TrackInterface { name, weight });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_split_as_keepalived_splits_them() {
        let words = |s: &str| argv(&[s.to_owned()]);
        assert_eq!(
            words("/usr/bin/killall -0 haproxy"),
            ["/usr/bin/killall", "-0", "haproxy"]
        );
        assert_eq!(
            words("/bin/sh -c 'test -e /run/ok'"),
            ["/bin/sh", "-c", "test -e /run/ok"]
        );
        assert_eq!(words("  a  \"\" b"), ["a", "", "b"]);
        assert_eq!(argv(&["a".into(), "b c".into()]), ["a", "b", "c"]);
    }

    #[test]
    fn init_file_takes_a_32_bit_number_and_overwrite_in_any_order() {
        let read = |line: &str| {
            let text =
                format!("vrrp_track_file f {{\n file /run/f\n {line}\n}}\n");
            let mut report = crate::import::diag::Report::default();
            let conf = super::super::read_str(
                std::path::Path::new("k.conf"),
                &text,
                &mut report,
            );
            let errors: Vec<String> =
                report.items.iter().map(ToString::to_string).collect();
            (conf.track_files.first().and_then(|(f, _)| f.init), errors)
        };
        let init = |value, overwrite| Some(FileInit { value, overwrite });
        assert_eq!(read("init_file"), (init(0, false), vec![]));
        assert_eq!(read("init_file overwrite -3"), (init(-3, true), vec![]));
        for bad in ["init_file 4294967296", "init_file x"] {
            let (got, errors) = read(bad);
            assert_eq!(got, None, "{bad}");
            assert!(
                errors[0].contains("expected a 32-bit whole number"),
                "{errors:?}"
            );
        }
    }

    /// Issue #21: a required field given a bad value is one error, where
    /// it stands, not a second one saying it is missing.
    #[test]
    fn a_bad_required_value_is_one_error_at_its_line() {
        use crate::import::diag::Severity;
        for (text, at, says) in [
            (
                "vrrp_instance VI_1 {\n interface eth0\n \
                 virtual_router_id 300\n}\n",
                "3:2",
                "expected a whole number 1–255",
            ),
            ("vrrp_track_file f {\n file \"\"\n}\n", "2:2", "`file` is empty"),
            (
                "vrrp_track_process p {\n process\n}\n",
                "2:2",
                "`process` names no process",
            ),
            ("vrrp_script s {\n script\n}\n", "2:2", "`script` has no command"),
            ("vrrp_script s {\n weight 2\n}\n", "1:1", "no `script`"),
        ] {
            let report = crate::import::check_conf(text);
            let errors: Vec<String> = report
                .items
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(ToString::to_string)
                .collect();
            assert_eq!(errors.len(), 1, "{text}: {errors:?}");
            assert!(
                errors[0].starts_with(&format!("keepalived.conf:{at}: "))
                    && errors[0].contains(says),
                "{text}: {errors:?}"
            );
        }
    }
}
