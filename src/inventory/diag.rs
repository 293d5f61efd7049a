//! Located diagnostics: what is wrong, where, and what to do.
//!
//! Every problem found while loading or validating an inventory becomes one
//! [`Diagnostic`] rendered as `FILE:LINE:COL: error: path.to.field: what is
//! wrong — what to do`, the shape compilers use so editors can jump to it.
//! They are collected, never thrown one at a time: an operator fixing an
//! inventory wants every problem in one run.

use std::fmt;
use std::path::{Path, PathBuf};

/// Whether a diagnostic stops the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something lbdeploy will do that the operator may not expect.
    Warning,
    /// Something that makes the inventory unusable.
    Error,
}

/// A problem before it is located: produced by the pure validation, which
/// knows field paths but not lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The field, as `vrrp_instances[0].advert_int`.
    pub path: String,
    /// What is wrong — what to do.
    pub message: String,
}

impl Finding {
    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    /// A warning at `path`.
    pub fn warning(
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A finding with its place in the file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The finding.
    pub finding: Finding,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// All diagnostics of one inventory file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// The inventory file, as the user named it.
    pub file: PathBuf,
    /// Every problem found, sorted by position.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Diagnostics for `file`, sorted by line and column.
    pub fn new(file: &Path, mut items: Vec<Diagnostic>) -> Self {
        items.sort_by_key(|d| (d.line, d.col));
        Self { file: file.to_owned(), items }
    }

    /// The number of diagnostics of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.finding.severity == severity).count()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            let severity = match d.finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let path = match d.finding.path.as_str() {
                "" => String::new(),
                p => format!("{}: ", escaped(p)),
            };
            let message = escaped(&d.finding.message);
            writeln!(
                f,
                "{}:{}:{}: {severity}: {path}{message}",
                self.file.display(),
                d.line,
                d.col,
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The most characters of one message or path that are printed: a
/// message may quote a value, and a 1 MB value is no help to anyone.
pub(crate) const SHOWN_MAX: usize = 512;

/// A message or path may quote a value (an unknown enum word, a bad
/// address, a misspelt key); its control characters are shown escaped, so
/// a value cannot forge lines or drive the operator's terminal, and it is
/// cut after [`SHOWN_MAX`] characters.
fn escaped(s: &str) -> String {
    let cut = s.chars().count() > SHOWN_MAX;
    s.chars()
        .take(SHOWN_MAX)
        .chain(cut.then_some('…'))
        .map(|c| match c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_escaped_and_cut() {
        assert_eq!(escaped("a\nb\u{1b}c"), "a\\u{a}b\\u{1b}c");
        assert_eq!(escaped("x\u{2028}"), "x\\u{2028}");
        let long = escaped(&"y".repeat(SHOWN_MAX * 4));
        assert_eq!(long.chars().count(), SHOWN_MAX + 1);
        assert!(long.ends_with('…'));
    }
}
