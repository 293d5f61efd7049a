//! Comparing two directors' copies of the same section, field by field.
//!
//! Both copies are turned into JSON values (the inventory's own serde
//! shapes), real-server lists become maps keyed by `ADDR:PORT` so their
//! order does not count, and every differing path is reported with the
//! position each file gave it (see `Fields::at`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use serde_json::Value;

use super::diag::{Pos, Report};
use super::keepalived::Fields;

/// Every field where `a` and `b` differ: the position in `b`'s file and
/// "`field` is B here but A in FILE:LINE".
pub(crate) fn differences<T: Serialize>(
    (a, fa): (&T, &Fields),
    (b, fb): (&T, &Fields),
) -> Vec<(Pos, String)> {
    let (Ok(va), Ok(vb)) = (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return Vec::new();
    };
    let (va, vb) = (keyed(va), keyed(vb));
    let mut paths = Vec::new();
    diff(&va, &vb, String::new(), &mut paths);
    let show = |v: &Value, path: &str| {
        lookup(v, path).map_or("absent".to_owned(), ToString::to_string)
    };
    paths
        .into_iter()
        .map(|path| {
            let message = format!(
                "`{path}` is {} here but {} in {}",
                show(&vb, &path),
                show(&va, &path),
                fa.at(&path)
            );
            (fb.at(&path).clone(), message)
        })
        .collect()
}

/// Report the differences of two copies that must agree, as errors.
pub(crate) fn conflicts<T: Serialize>(
    what: &str,
    a: (&T, &Fields),
    b: (&T, &Fields),
    report: &mut Report,
) {
    for (pos, difference) in differences(a, b) {
        report.error(
            Some(&pos),
            format!(
                "{what}: {difference} — the directors must agree; make the \
                 files say the same"
            ),
        );
    }
}

/// Real-server lists as maps keyed by `ADDR:PORT`, so order does not count
/// and paths match the positions recorded while reading.
fn keyed(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("real_servers", Value::Array(list)) => {
                        let entries = list.into_iter().map(|rs| {
                            let addr = rs["address"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let ip: Option<IpAddr> = addr.parse().ok();
                            let port =
                                rs["port"].as_u64().unwrap_or_default() as u16;
                            let key = ip.map_or(addr, |ip| {
                                SocketAddr::new(ip, port).to_string()
                            });
                            (key, keyed(rs))
                        });
                        (k, Value::Object(entries.collect()))
                    }
                    (_, v) => (k, keyed(v)),
                })
                .collect(),
        ),
        Value::Array(list) => {
            Value::Array(list.into_iter().map(keyed).collect())
        }
        other => other,
    }
}

fn diff(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, sub, out),
                    _ => out.push(sub),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(path),
        _ => {}
    }
}

/// The value at a path made by [`diff`].
fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let (i, r) = r.split_once(']')?;
            v = v.get(i.parse::<usize>().ok()?)?;
            rest = r.strip_prefix('.').unwrap_or(r);
            continue;
        }
        let map = v.as_object()?;
        // Keys may hold dots (`10.0.0.1:80`): take the longest that exists.
        let end = (1..=rest.len())
            .rev()
            .filter(|&e| e == rest.len() || rest[e..].starts_with(['.', '[']))
            .find(|&e| map.contains_key(&rest[..e]))?;
        v = &map[&rest[..end]];
        rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
    }
    Some(v)
}
