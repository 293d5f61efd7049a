//! The rule every string obeys, whatever its field: no control characters
//! and a bounded length.
//!
//! Strings from the inventory end up in rendered files (the agent's
//! configuration, the systemd unit, sysctl files), on command lines and in
//! protocol dialogues (SMTP, HTTP). A newline in a host name once wrote a
//! `[Service]` section into the unit (issue #17, finding 4). Rather than
//! remembering the rule field by field, the typed inventory is serialised
//! back into a YAML value tree and every string in it, keys included, is
//! checked: a field added to the schema tomorrow is covered without a line
//! here.

use serde_yaml::Value;

use crate::inventory::diag::Finding;
use crate::inventory::schema::Inventory;

/// The longest string the inventory accepts anywhere, in bytes: as long
/// as Linux's `PATH_MAX`, far beyond any name, address or command line an
/// operator writes by hand; a longer script belongs in a file of its own.
pub(crate) const TEXT_MAX: usize = 4096;

/// The first character that may not appear in an inventory string, with
/// its index in characters: C0 and C1 controls (newline, tab, escape, DEL,
/// NEL…) and Unicode's line and paragraph separators, all of which end or
/// bend a line in some reader of the files lbdeploy writes.
pub(crate) fn forbidden_char(s: &str) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// Check every string of `inv`: keys and values, at any depth.
pub(crate) fn strings(inv: &Inventory, out: &mut Vec<Finding>) {
    match serde_yaml::to_value(inv) {
        Ok(tree) => walk(&tree, "", out),
        // Every schema type serialises (string keys only); if one ever did
        // not, say so rather than let its strings through unchecked.
        Err(e) => out.push(Finding::error(
            "",
            format!("internal: the inventory cannot be checked: {e}"),
        )),
    }
}

fn walk(value: &Value, path: &str, out: &mut Vec<Finding>) {
    match value {
        Value::String(s) => {
            text(s, path, "", out);
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map {
                let Some(key) = key.as_str() else { continue };
                if text(key, path, "a key of this mapping ", out) {
                    walk(item, &crate::inventory::locate::join(path, key), out);
                }
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, path, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// One string's rule; `what` prefixes the message for keys. The message
/// never quotes the string: it may be a secret, or the very bytes that
/// would do harm on the operator's terminal. Returns whether it passed.
fn text(s: &str, path: &str, what: &str, out: &mut Vec<Finding>) -> bool {
    if s.len() > TEXT_MAX {
        out.push(Finding::error(
            path,
            format!(
                "{what}is {} bytes long — at most {TEXT_MAX} bytes are \
                 accepted",
                s.len()
            ),
        ));
        return false;
    }
    let Some((at, c)) = forbidden_char(s) else { return true };
    out.push(Finding::error(
        path,
        format!(
            "{what}contains the control character U+{:04X} at character \
             {} — names, addresses, paths and commands must be plain text \
             on one line (it would end a line in a generated file)",
            u32::from(c),
            at + 1
        ),
    ));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_separators_are_found() {
        assert_eq!(forbidden_char("eth0"), None);
        assert_eq!(forbidden_char("é-ü ok"), None);
        assert_eq!(forbidden_char("a\nb"), Some((1, '\n')));
        assert_eq!(forbidden_char("\t"), Some((0, '\t')));
        assert_eq!(forbidden_char("x\u{7f}"), Some((1, '\u{7f}')));
        assert_eq!(forbidden_char("x\u{85}"), Some((1, '\u{85}')));
        assert_eq!(forbidden_char("ab\u{2028}"), Some((2, '\u{2028}')));
        assert_eq!(forbidden_char("\u{2029}"), Some((0, '\u{2029}')));
    }

    #[test]
    fn nested_values_and_keys_are_walked() {
        let tree: Value = serde_yaml::from_str(
            "a: [ok, \"b\\nc\"]\nm: {\"k\\r\": 1, fine: {deep: \"\\e[2J\"}}\n",
        )
        .unwrap();
        let mut out = Vec::new();
        walk(&tree, "", &mut out);
        let paths: Vec<_> = out.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a[1]", "m", "m.fine.deep"]);
        assert!(out[0].message.contains("U+000A at character 2"), "{out:?}");
        assert!(out[1].message.starts_with("a key of"), "{out:?}");
    }

    #[test]
    fn a_long_string_is_refused_without_being_quoted() {
        let long = "x".repeat(TEXT_MAX + 1);
        let mut out = Vec::new();
        assert!(!text(&long, "p", "", &mut out));
        assert!(out[0].message.len() < 200, "{}", out[0].message);
        assert!(text(&"x".repeat(TEXT_MAX), "p", "", &mut out));
    }
}
