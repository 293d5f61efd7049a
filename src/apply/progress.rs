//! What a running apply tells the operator on stderr: a spinner line per
//! host on a terminal (indicatif), plain `host: step` lines otherwise, so
//! CI logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The display for one apply.
pub(crate) struct Progress {
    bars: Option<MultiProgress>,
    quiet: bool,
}

/// One host's line.
pub(crate) struct HostLine {
    name: String,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// Spinners when stderr is a terminal; nothing at all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(MultiProgress::new);
        Self { bars, quiet }
    }

    /// A phase starts.
    pub(crate) fn phase(&self, name: &str, hosts: usize) {
        let line = format!(
            "== {name} ({hosts} host{})",
            if hosts == 1 { "" } else { "s" }
        );
        self.say(&line);
    }

    /// A line between the hosts' lines.
    pub fn say(&self, line: &str) {
        match (&self.bars, self.quiet) {
            (_, true) => {}
            (Some(m), _) => {
                let _ = m.println(line);
            }
            (None, _) => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// A line for host `name`.
    pub fn host(&self, name: &str) -> HostLine {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold}: {msg}")
                    .expect("the template is valid"),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        HostLine { name: name.to_owned(), bar, quiet: self.quiet }
    }
}

impl HostLine {
    /// The host moved on to `step`.
    pub fn step(&self, step: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(step.to_owned()),
            None if !self.quiet => {
                let _ = writeln!(std::io::stderr(), "{}: {step}", self.name);
            }
            None => {}
        }
    }

    /// The host is done: `result` is its recap word and reason.
    pub fn done(&self, result: &str) {
        // The reason may be a host's error text: escaped for the terminal.
        let result = &*crate::util::terminal::escape(result);
        match &self.bar {
            Some(bar) => bar.finish_with_message(result.to_owned()),
            None if !self.quiet => {
                let _ = writeln!(std::io::stderr(), "{}: {result}", self.name);
            }
            None => {}
        }
    }
}
