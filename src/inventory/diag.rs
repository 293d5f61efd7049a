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
                p => format!("{p}: "),
            };
            writeln!(
                f,
                "{}:{}:{}: {severity}: {path}{}",
                self.file.display(),
                d.line,
                d.col,
                d.finding.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
