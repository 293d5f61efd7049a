//! Located messages of the importer: `FILE:LINE: severity: message`.
//!
//! keepalived.conf has no columns worth naming (a keyword and its values sit
//! on one line), so a position is a file and a line. Every stage — lexer,
//! parser, keyword semantics, merge — pushes into one [`Report`], and the
//! importer fails only at the end, so an operator sees every problem at once.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub(crate) use crate::inventory::Severity;

/// A place in a source file: the file as the user named it (or as an
/// `include` resolved it) and a line from 1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// The file.
    pub file: Arc<Path>,
    /// The line, from 1.
    pub line: u32,
}

impl Pos {
    /// `file:line` when the other position is in another file, `line N`
    /// when it is in the same one: how messages point back at a block.
    pub(crate) fn relative_to(&self, other: &Pos) -> String {
        if self.file == other.file {
            format!("line {}", self.line)
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One problem or remark, located where possible (command-line input has
/// no position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// Error or warning.
    pub severity: Severity,
    /// Where, when it comes from a file.
    pub pos: Option<Pos>,
    /// What — and what happens or what to do.
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.pos {
            Some(pos) => write!(f, "{pos}: {severity}: {}", self.message),
            None => write!(f, "{severity}: {}", self.message),
        }
    }
}

/// Every diagnostic of one import, in the order they are reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The diagnostics; [`Report::sorted`] orders them by position.
    pub items: Vec<Diag>,
}

impl Report {
    /// Record an error.
    pub fn error(&mut self, pos: Option<&Pos>, message: impl Into<String>) {
        self.push(Severity::Error, pos, message.into());
    }

    /// Record a warning.
    pub(crate) fn warn(
        &mut self,
        pos: Option<&Pos>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, pos, message.into());
    }

    fn push(&mut self, severity: Severity, pos: Option<&Pos>, message: String) {
        self.items.push(Diag { severity, pos: pos.cloned(), message });
    }

    /// The number of diagnostics of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// Unlocated diagnostics first (they concern the command line), then by
    /// file and line; the order of equal positions is kept.
    pub fn sorted(mut self) -> Self {
        self.items.sort_by(|a, b| a.pos.cmp(&b.pos));
        self
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.iter().try_for_each(|d| writeln!(f, "{d}"))
    }
}

impl std::error::Error for Report {}
