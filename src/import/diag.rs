//! Located messages of the importer: `FILE:LINE:COL: severity: message`,
//! as `validate` gives them for an inventory; the column is where the
//! statement's keyword starts (its values sit on the same line). Every stage — lexer,
//! parser, keyword semantics, merge — pushes into one [`Report`], and the
//! importer fails only at the end, so an operator sees every problem at once.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub(crate) use crate::inventory::Severity;

/// A place in a source file: the file as the user named it (or as an
/// `include` resolved it), a line and a column from 1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// The file.
    pub file: Arc<Path>,
    /// The line, from 1.
    pub line: u32,
    /// The column, in characters from 1: where the statement's keyword
    /// (or the brace, or the quote) starts.
    pub col: u32,
}

impl Pos {
    /// `file:line`: where a block is, for the inventory's comments (its
    /// column is that of its keyword, which says nothing there).
    pub(crate) fn file_line(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

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
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
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

/// The most diagnostics one import keeps: a file that is no
/// keepalived.conf at all (a log, an `include` of the wrong directory)
/// gave one per line, 240,000 lines of output and 200 MB for 16 MB of
/// input. Past it they are counted, not kept.
pub(crate) const KEPT_MAX: usize = 1000;

/// Every diagnostic of one import, in the order they are reported: the
/// first [`KEPT_MAX`], and how many more of each severity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The diagnostics; [`Report::sorted`] orders them by position.
    pub items: Vec<Diag>,
    /// Errors and warnings past [`KEPT_MAX`].
    untold: (usize, usize),
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
        if self.items.len() < KEPT_MAX {
            self.items.push(Diag { severity, pos: pos.cloned(), message });
            return;
        }
        match severity {
            Severity::Error => self.untold.0 += 1,
            Severity::Warning => self.untold.1 += 1,
        }
    }

    /// The number of diagnostics of a severity, kept or not.
    pub fn count(&self, severity: Severity) -> usize {
        let untold = match severity {
            Severity::Error => self.untold.0,
            Severity::Warning => self.untold.1,
        };
        untold + self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// A last line for the diagnostics not kept, if any.
    pub(crate) fn untold(&self) -> Option<String> {
        let (errors, warnings) = self.untold;
        (errors + warnings > 0).then(|| {
            format!(
                "… and {} more not shown ({errors} error(s), {warnings} \
                 warning(s)): only the first {KEPT_MAX} are kept",
                errors + warnings
            )
        })
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
        self.items.iter().try_for_each(|d| writeln!(f, "{d}"))?;
        match self.untold() {
            Some(line) => writeln!(f, "{line}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Report {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #17: a flood of diagnostics is bounded; the counts stay
    /// exact and the output says what it left out.
    #[test]
    fn past_the_bound_diagnostics_are_counted_not_kept() {
        let mut report = Report::default();
        for i in 0..KEPT_MAX + 7 {
            match i % 2 {
                0 => report.error(None, format!("e{i}")),
                _ => report.warn(None, format!("w{i}")),
            }
        }
        assert_eq!(report.items.len(), KEPT_MAX);
        assert_eq!(report.count(Severity::Error), KEPT_MAX / 2 + 4);
        assert_eq!(report.count(Severity::Warning), KEPT_MAX / 2 + 3);
        let text = report.to_string();
        assert_eq!(text.lines().count(), KEPT_MAX + 1);
        assert!(text.ends_with(
            "… and 7 more not shown (4 error(s), 3 warning(s)): only the \
             first 1000 are kept\n"
        ));
        assert_eq!(Report::default().untold(), None);
    }
}
