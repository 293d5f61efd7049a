//! `vrrp_script` blocks and the `track_script` / `track_interface` lists
//! of a `vrrp_instance`: what an instance tracks, with keepalived's
//! weights.

use super::value::{Fields, Reader};
use crate::import::parser::Node;
use crate::inventory::{Duration, Track, TrackInterface, TrackRef, VrrpScript};

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
        rise: 1,
        fall: 1,
    };
    for node in block.children() {
        let key = node.keyword.as_str();
        match key {
            "script" => s.command = argv(&node.args),
            "interval" => {
                s.interval = r.seconds(node, block).unwrap_or(s.interval)
            }
            "timeout" => s.timeout = r.seconds(node, block),
            "weight" => s.weight = r.number(node, block).unwrap_or(0),
            "rise" => s.rise = r.number(node, block).unwrap_or(1),
            "fall" => s.fall = r.number(node, block).unwrap_or(1),
            "user" => {
                r.warn(
                    node,
                    block,
                    "`user` is not carried over: the script runs as the \
                     agent's user (root, with the unit's capabilities)",
                );
                continue;
            }
            _ => {
                r.not_carried(node, block);
                continue;
            }
        }
        fields.set(if key == "script" { "command" } else { key }, &node.pos);
    }
    if s.command.is_empty() {
        r.error(block, block, "no `script` — add the command to run");
        return None;
    }
    Some((s, fields))
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

/// Read `track_script { NAME [weight N] … }` or `track_interface { IFACE
/// [weight N] … }` into `track`.
pub fn track_list(
    track: &mut Track,
    list: &Node,
    block: &Node,
    r: &mut Reader<'_>,
) {
    for item in list.children() {
        let weight = match item.args.as_slice() {
            [] => None,
            [w, n] if w == "weight" => {
                let parsed = n.parse().ok();
                if parsed.is_none() {
                    let m = format!("`weight {n}`: expected a whole number");
                    r.error(item, list, &m);
                }
                parsed
            }
            _ => {
                r.warn(item, block, "expected `NAME` or `NAME weight N`");
                None
            }
        };
        let name = item.keyword.clone();
        if list.keyword == "track_script" {
            track.scripts.push(TrackRef { name, weight });
        } else {
            let weight = weight.unwrap_or(0);
            track.interfaces.push(TrackInterface { name, weight });
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
}
