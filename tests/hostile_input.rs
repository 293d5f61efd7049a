//! Hostile strings in every string field of the inventory (issue #17,
//! findings 4, 5 and 10): the example inventory's value tree is walked, so
//! a field added to it is covered without a line here, and each string in
//! it is replaced in turn by control characters, quotes, `$()`, `-o…` and
//! a 1 MB string. What must hold:
//!
//! * an unsafe value fails `validate` with an error located at the field
//!   (FILE:LINE:COL), and the report never carries its raw bytes;
//! * nothing panics or hangs (each load is timed);
//! * a value that passes is rendered by `plan` only quoted: every rendered
//!   file is free of control characters but its line ends, and each
//!   agent configuration still parses as YAML.

use std::path::Path;
use std::time::{Duration, Instant};

use lbdeploy::inventory;
use lbdeploy::plan::desired;
use lbdeploy::plan::roles::Roles;
use serde_yaml::Value;

use crate::desired::NoSecrets;

/// The longest one load may take, 1 MB string included: far above the
/// few milliseconds it takes, far below a hang.
const LOAD_BOUND: Duration = Duration::from_secs(5);

/// A hostile value and whether every field must refuse it.
struct Payload {
    name: &'static str,
    value: String,
    refused_everywhere: bool,
}

fn payloads() -> Vec<Payload> {
    let p = |name, value: &str, refused_everywhere| Payload {
        name,
        value: value.to_owned(),
        refused_everywhere,
    };
    vec![
        p(
            "unit-injection",
            "x\n[Service]\nExecStartPre=+/bin/sh -c 'id'",
            true,
        ),
        p("smtp-injection", "x@y\r\nRCPT TO:<evil@example.net>", true),
        p("tab", "eth\t0", true),
        p("nul", "a\0b", true),
        p("delete", "a\u{7f}b", true),
        p("terminal-title", "\u{1b}]0;forged\u{7}", true),
        p("next-line", "a\u{85}b", true),
        p("line-separator", "a\u{2028}b", true),
        p("paragraph-separator", "a\u{2029}b", true),
        Payload {
            name: "1MB",
            value: "x".repeat(1 << 20),
            refused_everywhere: true,
        },
        p("quotes", "'\"`", false),
        p("command-substitution", "$(touch /tmp/lbd-hostile)", false),
        p("option", "-oProxyCommand=touch /tmp/lbd-hostile", false),
    ]
}

/// The example, with the fields it leaves out set, so they are walked too.
fn seeded_example() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("inventory.example.yml"))
        .expect("the example");
    let mut doc: Value = serde_yaml::from_str(&text).expect("YAML");
    let extra: Value =
        serde_yaml::from_str("{host: keepalived01.example.org, user: deploy}")
            .unwrap();
    doc["directors"][0]["ssh"] = extra;
    doc["notification"]["webhook"] = "http://hooks.example.org/lb".into();
    doc["notification"]["exec"] =
        serde_yaml::from_str("[/usr/local/bin/notify, --flag]").unwrap();
    doc
}

/// Every string leaf: its path (the diagnostics' syntax) and a setter.
fn string_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(path.to_owned()),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                string_paths(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                let k = k.as_str().expect("string keys");
                let p = if path.is_empty() {
                    k.to_owned()
                } else {
                    format!("{path}.{k}")
                };
                string_paths(item, &p, out);
            }
        }
        _ => {}
    }
}

/// The leaf at `path`, for replacing.
fn leaf<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
    let mut node = v;
    for part in path.split('.') {
        let mut pieces = part.split('[');
        let key = pieces.next().unwrap();
        node = &mut node[key];
        for i in pieces {
            let i: usize = i.trim_end_matches(']').parse().unwrap();
            node = &mut node[i];
        }
    }
    node
}

/// Whether ssh could read a leading `-` in this field as an option.
fn is_ssh_word(path: &str) -> bool {
    let host_name = (path.starts_with("directors[")
        || path.starts_with("real_servers["))
        && path.ends_with("].name");
    host_name || path.ends_with("ssh.host") || path.ends_with("ssh.user")
}

/// The error is at the field or at one of its ancestors (a load error in
/// a typed value may name the value's own path or its container's).
fn names(found: &str, field: &str) -> bool {
    found == field
        || (field.starts_with(found)
            && matches!(field.as_bytes().get(found.len()), Some(b'.' | b'[')))
}

#[test]
fn every_string_field_refuses_hostile_values_with_a_located_error() {
    let example = seeded_example();
    let mut fields = Vec::new();
    string_paths(&example, "", &mut fields);
    assert!(fields.len() > 40, "the walk found only {fields:?}");
    let roles = Roles::embedded().expect("embedded roles");
    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut refused, mut rendered) = (0, 0);
    for field in &fields {
        for p in payloads() {
            let mut doc = example.clone();
            *leaf(&mut doc, field) = Value::String(p.value.clone());
            let text = serde_yaml::to_string(&doc).unwrap();
            let t0 = Instant::now();
            let result = inventory::load_str(
                Path::new("input.yml"),
                &text,
                Path::new("."),
                &NoSecrets,
            );
            let took = t0.elapsed();
            let case = format!("{field} = {}", p.name);
            if took > LOAD_BOUND {
                failures.push(format!("{case}: took {took:?}"));
            }
            let must_refuse = p.refused_everywhere
                || (p.name == "option" && is_ssh_word(field));
            match result {
                Err(inventory::Error::Invalid(d)) => {
                    refused += 1;
                    let report = d.to_string();
                    let located = d.items.iter().any(|i| {
                        format!("{:?}", i.finding.severity) == "Error"
                            && names(&i.finding.path, field)
                            && i.line >= 1
                            && i.col >= 1
                    });
                    if must_refuse && !located {
                        failures
                            .push(format!("{case}: not located:\n{report}"));
                    }
                    let raw = report.chars().any(|c| {
                        c != '\n' && (c.is_control() || c == '\u{2028}')
                    });
                    if raw || report.len() > 64 * 1024 {
                        failures.push(format!(
                            "{case}: the report carries the value"
                        ));
                    }
                    for line in report.lines() {
                        if !line.starts_with("input.yml:") {
                            failures
                                .push(format!("{case}: unlocated line {line}"));
                        }
                    }
                }
                Err(e) => failures.push(format!("{case}: unexpected {e}")),
                Ok(_) if must_refuse => {
                    failures.push(format!("{case}: passed validation"));
                }
                Ok(loaded) => {
                    rendered += 1;
                    let hosts = desired::compile(
                        &loaded.inventory,
                        &roles,
                        &NoSecrets,
                        Path::new("."),
                        "0".repeat(64).as_str(),
                    );
                    // A compile error is a refusal too; only what is
                    // rendered must be clean.
                    for h in hosts.iter().flatten() {
                        for f in &h.files {
                            if f.content
                                .chars()
                                .any(|c| c != '\n' && c.is_control())
                            {
                                failures.push(format!(
                                    "{case}: {} {} has a control character",
                                    h.name,
                                    f.path.display()
                                ));
                            }
                        }
                        let config =
                            h.files.iter().find(|f| f.path == h.config);
                        if let Some(c) = config
                            && serde_yaml::from_str::<Value>(&c.content)
                                .is_err()
                        {
                            failures.push(format!(
                                "{case}: {} is not YAML",
                                h.name
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        refused > 0 && rendered > 0,
        "{refused} refused, {rendered} rendered"
    );
    // The whole table, for the record: fields × payloads in this time.
    assert!(started.elapsed() < Duration::from_secs(120));
}
