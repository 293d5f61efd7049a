//! From YAML text to a typed [`Inventory`], with every load error located.
//!
//! serde stops at the first error. To report as many problems as possible in
//! one run, the document is first read as an untyped YAML tree, then each
//! top-level key and each element of the top-level lists is deserialised on
//! its own: a typo in `directors[0]` and a bad duration in
//! `virtual_services[1]` are both reported. Only when every piece is valid is
//! the whole document deserialised at once.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::diag::Finding;
use super::locate::join;
use super::schema::{
    Director, Inventory, Lab, Notification, RealServerHost, SshDefaults,
    SyncGroup, TrackFile, TrackProcess, VirtualService, VrrpInstance,
    VrrpScript,
};

/// The largest inventory read, in bytes. A cluster of a hundred directors
/// and thousands of real servers is a few hundred KiB; 16 MiB is far above
/// that, and small enough that loading it (linear, about a second) and the
/// tree it becomes stay harmless.
pub(crate) const INPUT_MAX: u64 = 16 << 20;

/// The top-level keys: name, whether required, and how to check the value.
const TOP_LEVEL: &[(&str, bool, Shape)] = &[
    ("cluster", true, Shape::One(check::<String>)),
    ("ssh", false, Shape::One(check::<SshDefaults>)),
    ("dataplane", false, Shape::One(check::<super::schema::Dataplane>)),
    ("ipvs_sync", false, Shape::One(check::<super::schema::IpvsSync>)),
    ("directors", true, Shape::List(check::<Director>)),
    ("real_servers", false, Shape::List(check::<RealServerHost>)),
    ("vrrp_instances", false, Shape::List(check::<VrrpInstance>)),
    ("vrrp_scripts", false, Shape::List(check::<VrrpScript>)),
    ("vrrp_sync_groups", false, Shape::List(check::<SyncGroup>)),
    ("vrrp_track_files", false, Shape::List(check::<TrackFile>)),
    ("vrrp_track_processes", false, Shape::List(check::<TrackProcess>)),
    ("virtual_services", false, Shape::List(check::<VirtualService>)),
    ("notification", false, Shape::One(check::<Notification>)),
    ("bgp", false, Shape::One(check::<super::schema::Bgp>)),
    ("script_security", false, Shape::One(check::<bool>)),
    ("script_user", false, Shape::One(check::<super::values::ScriptUser>)),
    ("vrrp_rt_priority", false, Shape::One(check::<super::values::RtPriority>)),
    ("vrrp_no_swap", false, Shape::One(check::<bool>)),
    ("metrics", false, Shape::One(check::<super::schema::Metrics>)),
    ("lab", false, Shape::One(check::<Lab>)),
];

/// How a top-level value is checked: whole, or element by element.
#[derive(Clone, Copy)]
enum Shape {
    One(fn(Value, &str) -> Vec<Finding>),
    List(fn(Value, &str) -> Vec<Finding>),
}

/// A load error with the position serde gave it, if any: syntax errors know
/// their line, errors in a value tree only know their path.
pub(crate) struct LoadError {
    /// The finding.
    pub finding: Finding,
    /// `(line, column)` when the YAML parser located it.
    pub position: Option<(usize, usize)>,
}

/// Parse `source` into an inventory, or every load error found.
pub fn parse(source: &str) -> Result<Inventory, Vec<LoadError>> {
    let root: Value = serde_yaml::from_str(source).map_err(|e| {
        let position = e.location().map(|l| (l.line(), l.column()));
        let message = strip_location(&e.to_string());
        vec![LoadError {
            finding: Finding::error("", format!("YAML syntax: {message}")),
            position,
        }]
    })?;
    let Value::Mapping(map) = root else {
        return Err(vec![LoadError {
            finding: Finding::error(
                "",
                "the inventory must be a mapping with keys such as \
                 `cluster`, `directors` and `vrrp_instances` — see \
                 inventory.example.yml",
            ),
            position: Some((1, 1)),
        }]);
    };
    let findings = check_top_level(&map);
    if !findings.is_empty() {
        return Err(unlocated(findings));
    }
    deserialize::<Inventory>(Value::Mapping(map), "")
        .map_err(|f| unlocated(vec![f.finding]))
}

fn unlocated(findings: Vec<Finding>) -> Vec<LoadError> {
    findings
        .into_iter()
        .map(|finding| LoadError { finding, position: None })
        .collect()
}

fn check_top_level(map: &Mapping) -> Vec<Finding> {
    let known: Vec<&str> = TOP_LEVEL.iter().map(|(k, ..)| *k).collect();
    let mut findings = Vec::new();
    for key in map.keys() {
        let name = key.as_str().unwrap_or_default();
        if !known.contains(&name) {
            findings
                .push(Finding::error(name, unknown_key_message(name, &known)));
        }
    }
    for (key, required, shape) in TOP_LEVEL {
        let Some(value) = map.get(*key) else {
            if *required {
                findings.push(Finding::error(
                    "",
                    format!("missing key `{key}` — add it at the top level"),
                ));
            }
            continue;
        };
        match shape {
            Shape::One(check) => findings.extend(check(value.clone(), key)),
            Shape::List(check) => match value {
                Value::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        findings.extend(check(
                            item.clone(),
                            &format!("{key}[{i}]"),
                        ));
                    }
                }
                Value::Null if !required => {}
                _ => findings.push(Finding::error(
                    *key,
                    format!("`{key}` must be a list (items start with `- `)"),
                )),
            },
        }
    }
    findings
}

/// The most errors reported for one value; a bound on the retry loop.
const MAX_ERRORS_PER_VALUE: usize = 20;

/// Every error in `value`, not just serde's first: after each error the
/// offending key is removed and deserialisation is tried again, until it
/// succeeds or an error cannot be stepped over (a missing key, a bad list
/// item).
fn check<T: DeserializeOwned>(mut value: Value, prefix: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Keys already reported: removed as culprits, or suggested as the
    // intended spelling of an unknown key.
    let mut reported: Vec<String> = Vec::new();
    while findings.len() < MAX_ERRORS_PER_VALUE {
        let Err(failure) = deserialize::<T>(value.clone(), prefix) else {
            break;
        };
        if failure.missing.as_ref().is_some_and(|m| reported.contains(m)) {
            // Missing because an earlier error removed or misspelt it.
            break;
        }
        let next = failure.culprit.filter(|c| !reported.contains(c));
        findings.push(failure.finding);
        reported.extend(failure.suggested);
        match next {
            Some(culprit) if remove(&mut value, &culprit) => {
                reported.push(culprit);
            }
            _ => break,
        }
    }
    findings
}

/// One deserialisation error, and what the retry loop needs to know.
struct Failure {
    finding: Finding,
    /// The map key (as a path inside the value) to remove to step over it.
    culprit: Option<String>,
    /// For "missing key" errors, the path of the key that is missing.
    missing: Option<String>,
    /// For unknown keys, the path of the key probably meant.
    suggested: Option<String>,
}

/// Deserialise `value`, turning an error into a finding whose path is
/// `prefix` joined with the path inside `value`.
fn deserialize<T: DeserializeOwned>(
    value: Value,
    prefix: &str,
) -> Result<T, Box<Failure>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = match e.path().to_string() {
            dot if dot == "." => String::new(),
            p => p,
        };
        let raw = strip_location(&e.into_inner().to_string());
        let (inner, message, key) = explain(inner, &raw);
        let path = match (prefix, inner.as_str()) {
            (p, "") => p.to_owned(),
            ("", i) => i.to_owned(),
            (p, i) if i.starts_with('[') => format!("{p}{i}"),
            (p, i) => format!("{p}.{i}"),
        };
        let (culprit, missing, suggested) = match key {
            KeyRole::Culprit(meant) => {
                let parent = inner.rsplit_once('.').map_or("", |(p, _)| p);
                let suggested = meant.map(|m| join(parent, &m));
                (Some(inner), None, suggested)
            }
            KeyRole::Missing(name) => (None, Some(join(&inner, &name)), None),
        };
        Box::new(Failure {
            finding: Finding::error(path, message),
            culprit,
            missing,
            suggested,
        })
    })
}

/// Remove the map entry at `path` (in [`Locations`] syntax) from `value`.
/// Returns false when the path does not end in a map key.
///
/// [`Locations`]: super::locate::Locations
fn remove(value: &mut Value, path: &str) -> bool {
    let mut node = value;
    let mut segments = split_path(path).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        node = match (segment, node) {
            (Segment::Key(k), Value::Mapping(m)) if last => {
                // Keep document order: serde reports errors in that order.
                return m.shift_remove(k).is_some();
            }
            (Segment::Key(k), Value::Mapping(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), Value::Sequence(s)) if !last => {
                match s.get_mut(i) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    false
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` → `a`, `b`, `2`, `c`.
fn split_path(path: &str) -> impl Iterator<Item = Segment<'_>> {
    path.split('.').filter(|p| !p.is_empty()).flat_map(|part| {
        let mut pieces = part.split('[');
        let key = pieces.next().filter(|k| !k.is_empty()).map(Segment::Key);
        let indices = pieces.filter_map(|i| {
            i.trim_end_matches(']').parse().ok().map(Segment::Index)
        });
        key.into_iter().chain(indices)
    })
}

/// serde_yaml appends " at line L column C" (sometimes twice, for nested
/// syntax errors); the position is reported in front instead.
fn strip_location(message: &str) -> String {
    static POSITION: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| {
            regex::Regex::new(r" at line \d+ column \d+").expect("valid regex")
        });
    POSITION.replace_all(message, "").into_owned()
}

/// What the retry loop may do about the key named by an error.
enum KeyRole {
    /// The key at the error's path is wrong; removing it steps over it. For
    /// an unknown key, the key probably meant.
    Culprit(Option<String>),
    /// The key with this name is missing under the error's path.
    Missing(String),
}

/// Turn serde's wording into what an operator needs: the key that is wrong,
/// what was probably meant, and how to fix the value. Returns the path
/// (extended with the key for unknown keys), the message and the key's role.
fn explain(path: String, raw: &str) -> (String, String, KeyRole) {
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        // serde_path_to_error usually includes the unknown key; make sure.
        let path = match path.rsplit('.').next() == Some(name) {
            true => path,
            false => join(&path, name),
        };
        let meant = closest(name, &known).map(str::to_owned);
        return (
            path,
            unknown_key_message(name, &known),
            KeyRole::Culprit(meant),
        );
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let message = format!("missing key `{name}` — add it here");
        return (path, message, KeyRole::Missing(name.to_owned()));
    }
    let message = if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        match closest(name, &known) {
            Some(best) => format!(
                "unknown value `{name}` — did you mean `{best}`? \
                 (one of {})",
                known.join(", ")
            ),
            None => format!(
                "unknown value `{name}` — use one of {}",
                known.join(", ")
            ),
        }
    } else if raw.starts_with("invalid type:")
        && raw.ends_with("expected a string")
    {
        format!("{raw} — put the value in quotes")
    } else {
        raw.to_owned()
    };
    (path, message, KeyRole::Culprit(None))
}

/// The names between backticks in serde's "expected one of `a`, `b`".
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn unknown_key_message(name: &str, known: &[&str]) -> String {
    match closest(name, known) {
        Some(best) => format!("unknown key `{name}` — did you mean `{best}`?"),
        None => format!(
            "unknown key `{name}` — valid keys here: {}",
            known.join(", ")
        ),
    }
}

/// The known name closest to `name`, if it is close enough to be a typo.
pub(super) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_nested_key() {
        let mut v: Value =
            serde_yaml::from_str("a:\n  - {b: 1, c: 2}\n").unwrap();
        assert!(remove(&mut v, "a[0].b"));
        assert_eq!(v, serde_yaml::from_str::<Value>("a: [{c: 2}]").unwrap());
        assert!(!remove(&mut v, "a[0]"));
        assert!(!remove(&mut v, "a[3].c"));
    }

    #[test]
    fn suggests_the_closest_key() {
        assert_eq!(
            closest("prioritty", &["name", "priority"]),
            Some("priority")
        );
        assert_eq!(closest("zzz", &["name", "priority"]), None);
    }

    #[test]
    fn explains_quoting() {
        let (_, m, _) = explain(
            "x".into(),
            "invalid type: integer `1111`, expected a string",
        );
        assert!(m.ends_with("put the value in quotes"), "{m}");
    }
}
