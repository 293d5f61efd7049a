//! One logging path for the agent and the host side of apply: `tracing`
//! events with fields, written to stderr one line each.
//!
//! stderr is where both supervisors look: lbdeploy's own supervisor appends
//! it to `agent.log`, and under systemd it is the unit's journald stream.
//! Either way a line must parse without a human, so the format is chosen by
//! a flag (`--log-format`, or `LBDEPLOY_LOG_FORMAT`):
//!
//! * `logfmt` (the default): `ts=… level=info pid=… instance=VI_1
//!   msg="became master"` — what `journalctl` shows readably and what log
//!   shippers split into fields;
//! * `json`: one object a line, the same fields.
//!
//! Under systemd, logfmt lines start with their syslog priority (`<4>`),
//! which journald takes as the level: `journalctl -u lbdeploy-agent -p
//! warning` shows warnings only.
//!
//! Span fields (the VRRP instance, the service) come before the event's
//! own, outermost first, so every line names what it is about. The PID is
//! on every line because agent and supervisor share one file.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormatFields, FormattedFields,
};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `key=value` pairs, values quoted when they hold spaces or quotes.
    #[default]
    Logfmt,
    /// One JSON object a line.
    Json,
}

impl Format {
    /// The word on the command line (`--log-format logfmt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Logfmt => "logfmt",
            Format::Json => "json",
        }
    }
}

/// The format this process logs in, once [`init`] chose it.
static CHOSEN: OnceLock<Format> = OnceLock::new();

/// The format this process logs in: what a supervisor hands the agents it
/// starts, so one log file never mixes two formats.
pub fn current() -> Format {
    CHOSEN.get().copied().unwrap_or_default()
}

/// Whether stderr is journald's stream (systemd says so in
/// `JOURNAL_STREAM`, `DEVICE:INODE` of the stream it handed over): then
/// each logfmt line starts with its syslog priority, `<4>` for a warning,
/// which journald takes as the line's level and strips, so `journalctl
/// -p warning` shows warnings and worse only.
static JOURNAL: OnceLock<bool> = OnceLock::new();

/// Whether `journal_stream` (the variable's value) names the file whose
/// device and inode are `dev` and `ino`.
fn is_journal_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream.split_once(':').and_then(|(d, i)| {
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) == Some((dev, ino))
}

/// [`is_journal_stream`] for this process's stderr.
fn stderr_is_journal() -> bool {
    let Ok(var) = std::env::var("JOURNAL_STREAM") else { return false };
    let Ok(st) = rustix::fs::fstat(io::stderr()) else {
        return false;
    };
    is_journal_stream(&var, st.st_dev, st.st_ino)
}

/// The syslog priority journald reads from a line's `<N>` prefix.
fn syslog_priority(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// Install the process-wide subscriber, writing to stderr in `format`.
/// A second call (tests that start several agents in one process) keeps
/// the first subscriber.
pub fn init(format: Format) {
    let _ = CHOSEN.set(format);
    let _ = JOURNAL.set(stderr_is_journal());
    let builder = tracing_subscriber::fmt()
        .with_writer(|| Lossy(io::stderr()))
        .with_max_level(tracing::Level::INFO);
    let _ = match format {
        Format::Logfmt => {
            builder.fmt_fields(LogfmtFields).event_format(Logfmt).try_init()
        }
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// Log writes that failed since the process started: lines lost to a full
/// file system, a closed or full pipe, a closed stderr.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many log writes failed and were dropped: what the agent's status
/// reports as `log_lines_dropped`.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// A writer whose failures are counted and swallowed. Logging must never
/// stop the agent: `eprintln!` panics when stderr fails (a full
/// `agent.log` once stopped the VRRP loop while the process lived on with
/// the VIP, issue #17), and a line that cannot be written is worth less
/// than the adverts after it. Non-blocking ends (the supervisor's pipe)
/// fail with `EAGAIN` instead of waiting: dropped too.
pub struct Lossy<W>(pub W);

impl<W: io::Write> io::Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// Write one line for people to stderr, through [`Lossy`]: what replaces
/// `eprintln!` wherever the running agent talks outside `tracing`.
pub fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(Lossy(io::stderr()), "{line}");
}

/// The logfmt line: timestamp, level, PID, span fields, event fields.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let level = event.metadata().level();
        if JOURNAL.get().copied().unwrap_or(false) {
            write!(writer, "<{}>", syslog_priority(level))?;
        }
        let level = level.as_str().to_ascii_lowercase();
        write!(writer, "ts={ts} level={level} pid={}", std::process::id())?;
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            let ext = span.extensions();
            if let Some(fields) = ext.get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                write!(writer, " {fields}")?;
            }
        }
        let mut pairs = Pairs::default();
        event.record(&mut pairs);
        let line = pairs.finish();
        if !line.is_empty() {
            write!(writer, " {line}")?;
        }
        writeln!(writer)
    }
}

/// Span fields in the same `key=value` form as the events'.
struct LogfmtFields;

impl<'w> FormatFields<'w> for LogfmtFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut pairs = Pairs::default();
        fields.record(&mut pairs);
        writer.write_str(&pairs.finish())
    }
}

/// `key=value` pairs gathered from a record; the message goes last, as
/// `msg`, so the fields line up at the start of every line.
#[derive(Default)]
struct Pairs {
    text: String,
    message: Option<String>,
}

impl Pairs {
    fn push(&mut self, key: &str, value: &str) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        let _ = write!(self.text, "{key}={}", quote(value));
    }

    fn finish(mut self) -> String {
        if let Some(message) = self.message.take() {
            self.push("msg", &message);
        }
        self.text
    }
}

impl Visit for Pairs {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.push(field.name(), &text);
        }
    }
}

/// A logfmt value: bare when it is one plain word, else in double quotes
/// with `"` and `\` escaped and control characters written as escapes, so
/// one event is always one line.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '='));
    if plain {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_is_dropped_and_counted_never_an_error() {
        // /dev/full: every write fails with ENOSPC, as on a full disk.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        let mut w = Lossy(full.unwrap());
        let before = dropped_lines();
        for _ in 0..3 {
            assert_eq!(w.write(b"a line\n").unwrap(), 7);
        }
        w.flush().unwrap();
        // Other tests may drop lines too: at least ours.
        assert!(dropped_lines() >= before + 3);
        let mut ok = Lossy(Vec::new());
        ok.write_all(b"kept\n").unwrap();
        assert_eq!(ok.0, b"kept\n");
    }

    #[test]
    fn the_journal_is_recognised_by_its_stream_only() {
        assert!(is_journal_stream("8:12345", 8, 12345));
        assert!(!is_journal_stream("8:12345", 8, 12346), "another file");
        assert!(!is_journal_stream("8:", 8, 0));
        assert!(!is_journal_stream("", 0, 0));
        assert_eq!(syslog_priority(&tracing::Level::WARN), 4);
        assert_eq!(syslog_priority(&tracing::Level::INFO), 6);
    }

    #[test]
    fn values_are_bare_only_when_plain() {
        assert_eq!(quote("VI_1"), "VI_1");
        assert_eq!(quote("became master"), "\"became master\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote("say \"hi\"\\"), r#""say \"hi\"\\""#);
    }

    #[test]
    fn the_word_is_the_flag_value() {
        use clap::ValueEnum;
        for f in super::Format::value_variants() {
            let value = f.to_possible_value().unwrap();
            assert_eq!(value.get_name(), f.as_str());
        }
    }

    #[test]
    fn one_event_is_one_line() {
        assert_eq!(quote("a\nb\r"), r#""a\nb\u{d}""#);
    }
}
