//! The end of an apply: how each host ended (`HostResult`, also what
//! the generation records), the recap printed for people or as JSON, and
//! the exit status it implies.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::document::PlanDocument;
use crate::exit::ExitStatus;

/// How one host's apply ended, in the words of the recap and of the
/// generation's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HostResult {
    /// Nothing to do.
    #[serde(rename = "ok")]
    Ok,
    /// Changed and confirmed.
    #[serde(rename = "changed")]
    Changed,
    /// Failed; the reason says where it stands.
    #[serde(rename = "failed")]
    Failed,
    /// Not reached over SSH.
    #[serde(rename = "unreachable")]
    Unreachable,
    /// Not confirmed: the host went back to its previous generation.
    #[serde(rename = "rolled back")]
    RolledBack,
    /// Not tried, because an earlier phase failed.
    #[serde(rename = "skipped")]
    Skipped,
}

impl HostResult {
    /// The word in the recap.
    pub fn as_str(self) -> &'static str {
        match self {
            HostResult::Ok => "ok",
            HostResult::Changed => "changed",
            HostResult::Failed => "failed",
            HostResult::Unreachable => "unreachable",
            HostResult::RolledBack => "rolled back",
            HostResult::Skipped => "skipped",
        }
    }

    /// Whether the host did not reach its desired state.
    pub(crate) fn is_failure(self) -> bool {
        !matches!(self, HostResult::Ok | HostResult::Changed)
    }
}

impl std::fmt::Display for HostResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host's line in the recap.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Recap {
    /// The host.
    pub host: String,
    /// How it ended.
    pub result: HostResult,
    /// Why, for anything but ok/changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One host's recap line.
pub(super) fn recap(
    host: &str,
    result: HostResult,
    reason: Option<String>,
) -> Recap {
    Recap { host: host.to_owned(), result, reason }
}

/// The line's text after the host's name.
pub(super) fn describe(r: &Recap) -> String {
    match &r.reason {
        Some(why) => format!("{}: {why}", r.result),
        None => r.result.as_str().to_owned(),
    }
}

/// The recap of a plan applied with nothing to do.
pub(super) fn recap_of_plan(doc: &PlanDocument) -> Vec<Recap> {
    use super::document::HostStatus;
    doc.hosts
        .iter()
        .map(|h| match h.status {
            HostStatus::Unreachable => {
                recap(&h.name, HostResult::Unreachable, h.error.clone())
            }
            HostStatus::Failed => {
                recap(&h.name, HostResult::Failed, h.error.clone())
            }
            _ => recap(&h.name, HostResult::Ok, None),
        })
        .collect()
}

/// 0 when every host is ok or changed, else 3.
pub(super) fn exit(recaps: &[Recap]) -> ExitStatus {
    match recaps.iter().all(|r| !r.result.is_failure()) {
        true => ExitStatus::Ok,
        false => ExitStatus::Partial,
    }
}

/// Print the recap: JSON, or one line a host and the counts.
pub(super) fn print_recap(
    recaps: &[Recap],
    generation: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let doc =
            serde_json::json!({ "hosts": recaps, "generation": generation });
        crate::util::terminal::write_json(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    let width = recaps.iter().map(|r| r.host.len()).max().unwrap_or(0);
    writeln!(out, "Recap:")?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in recaps {
        // A host's error text is the host's bytes: escaped for the terminal.
        let said = crate::util::terminal::escape(&describe(r)).into_owned();
        writeln!(out, "  {:width$}  {said}", r.host)?;
        *counts.entry(r.result.as_str()).or_default() += 1;
    }
    let counts: Vec<String> =
        counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let generation = match generation {
        Some(n) => format!("; generation {n} recorded"),
        None => String::new(),
    };
    writeln!(out, "Apply: {}{generation}.", counts.join(", "))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::HostResult;

    /// The recap's word and the generation record's are one spelling.
    #[test]
    fn the_recorded_word_is_the_recap_word() {
        use HostResult::*;
        for r in [Ok, Changed, Failed, Unreachable, RolledBack, Skipped] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<HostResult>(&json).unwrap(), r);
        }
    }
}
