//! The plan as people read it: per host, `+` create, `~` change (with a
//! unified diff), `-` remove, then one summary line.
//!
//! Everything shown passes through two filters at this edge: secrets are
//! hidden ([`redact`](super::redact)) and host-supplied bytes — file
//! contents, paths, sysctl values, error text — have their control
//! characters escaped ([`escape`]), so a compromised host can neither read
//! out a password through the plan nor forge or hide plan lines with
//! escape sequences.
//!
//! Rendering writes to any `io::Write` with the colour decided by the caller
//! (once, from the terminal and `NO_COLOR`), so tests render colourless text
//! into a buffer and compare it with golden files.

use std::io::{self, Write};

use similar::{ChangeTag, TextDiff};

use super::diff::{Change, ServiceAction, UnitProblem};
use super::redact::redact;
use crate::util::terminal::escape;

/// What happened when a host was planned.
#[derive(Debug)]
pub(crate) enum HostOutcome {
    /// Facts were gathered; these changes are needed (maybe none).
    Planned(Vec<Change>),
    /// The host could not be reached; the reason says why and what to do.
    Unreachable(String),
    /// Reached, but it cannot be planned; the reason says why.
    Failed(String),
}

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Writes plans, coloured or not.
pub(crate) struct Printer<W> {
    out: W,
    colour: bool,
}

impl<W: Write> Printer<W> {
    /// A printer into `out`; `colour` adds ANSI colours.
    pub fn new(out: W, colour: bool) -> Self {
        Self { out, colour }
    }

    /// `text`, redacted and escaped, in `colour`: the colour codes are the
    /// only control characters that reach the terminal.
    fn paint(&self, colour: &'static str, text: &str) -> String {
        let text = shown(text);
        match self.colour {
            true => format!("{colour}{text}{RESET}"),
            false => text,
        }
    }

    /// Print every host's plan and the summary line.
    ///
    /// # Errors
    /// When the writer fails (a closed pipe).
    pub fn plan(&mut self, hosts: &[(String, HostOutcome)]) -> io::Result<()> {
        let (mut changed, mut unchanged, mut unreachable, mut failed) =
            (0, 0, 0, 0);
        for (host, outcome) in hosts {
            match outcome {
                HostOutcome::Planned(changes) if changes.is_empty() => {
                    unchanged += 1;
                    writeln!(
                        self.out,
                        "{}: no changes",
                        self.paint(BOLD, host)
                    )?;
                }
                HostOutcome::Planned(changes) => {
                    changed += 1;
                    let head = match changes
                        .iter()
                        .any(|c| matches!(c, Change::Retire { .. }))
                    {
                        true => self.paint(
                            RED,
                            &format!("- host {host} (not in the inventory):"),
                        ),
                        false => format!("{}:", self.paint(BOLD, host)),
                    };
                    writeln!(self.out, "{head}")?;
                    for c in changes {
                        self.change(c)?;
                    }
                }
                HostOutcome::Unreachable(why) => {
                    unreachable += 1;
                    let line = format!("{host}: unreachable: {why}");
                    writeln!(self.out, "{}", self.paint(RED, &line))?;
                }
                HostOutcome::Failed(why) => {
                    failed += 1;
                    let line = format!("{host}: failed: {why}");
                    writeln!(self.out, "{}", self.paint(RED, &line))?;
                }
            }
        }
        let failed = match failed {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        writeln!(
            self.out,
            "Plan: {changed} hosts to change, {unchanged} unchanged, \
             {unreachable} unreachable{failed}."
        )
    }

    fn change(&mut self, c: &Change) -> io::Result<()> {
        let line = match c {
            Change::Binary { path, old, new } => self.paint(
                YELLOW,
                &format!(
                    "  ~ binary {}: {} → {}",
                    path.display(),
                    old.as_deref().map_or("absent", short),
                    short(new)
                ),
            ),
            Change::CreateFile { path, mode, content } => {
                let head = format!("  + {} (mode {mode:04o})", path.display());
                writeln!(self.out, "{}", self.paint(GREEN, &head))?;
                return self.text_diff("", content);
            }
            Change::UpdateFile { path, old_mode, new_mode, old, new } => {
                let mode = match old_mode == new_mode {
                    true => String::new(),
                    false => format!(" (mode {old_mode:04o} → {new_mode:04o})"),
                };
                let head = format!("  ~ {}{mode}", path.display());
                writeln!(self.out, "{}", self.paint(YELLOW, &head))?;
                return self.text_diff(old, new);
            }
            Change::Blocker { message } => {
                self.paint(RED, &format!("  ! {message}"))
            }
            Change::Unfinished { seen } => self.paint(
                YELLOW,
                &format!(
                    "  ~ unfinished activation (highest generation seen: {}): \
                     finished before the new one",
                    seen.map_or("none".into(), |g| g.to_string())
                ),
            ),
            Change::RemoveFile { path } => {
                self.paint(RED, &format!("  - {}", path.display()))
            }
            Change::Undrain { path, drained } => {
                let what = match drained.is_empty() {
                    true => "a list that does not parse".to_owned(),
                    false => drained.join(", "),
                };
                self.paint(
                    GREEN,
                    &format!(
                        "  ~ undrain {what}: {} removed, back in service",
                        path.display()
                    ),
                )
            }
            Change::Sysctl { key, old, new } => self.paint(
                YELLOW,
                &format!(
                    "  ~ sysctl {key}: {} → {new}",
                    old.as_deref().unwrap_or("absent")
                ),
            ),
            Change::Unit { name, problem } => {
                let what = match problem {
                    UnitProblem::Disabled { state } => format!(
                        "{state}, would not start after a reboot: enable"
                    ),
                    UnitProblem::Masked { state } => {
                        format!("{state}, cannot start: unmask and enable")
                    }
                    UnitProblem::Stale => "systemd runs an older copy of \
                                           the unit file: daemon-reload"
                        .to_owned(),
                };
                self.paint(YELLOW, &format!("  ~ unit {name}: {what}"))
            }
            Change::RemoveDropIn { path, content } => {
                let head = format!(
                    "  - {} (a drop-in overriding the agent's unit)",
                    path.display()
                );
                writeln!(self.out, "{}", self.paint(RED, &head))?;
                return self.text_diff(content, "");
            }
            Change::Retire { name, running } => {
                let stop = match running {
                    true => "stop (its VIPs go with it) and disable",
                    false => "disable",
                };
                self.paint(
                    RED,
                    &format!(
                        "  - service {name}: {stop}; the sysctls lbdeploy \
                         set back to their values before it; the binary \
                         and the generation history stay"
                    ),
                )
            }
            Change::Service { name, action, reasons } => {
                let verb = match action {
                    ServiceAction::Reload => "reload",
                    ServiceAction::Restart => "restart",
                    ServiceAction::Start => "start",
                };
                let why = match reasons.is_empty() {
                    true => String::new(),
                    false => format!(": {}", reasons.join(", ")),
                };
                let line = format!("  ~ service {name}: {verb}{why}");
                self.paint(YELLOW, &line)
            }
        };
        writeln!(self.out, "{line}")
    }

    /// A unified diff, indented under its file line.
    fn text_diff(&mut self, old: &str, new: &str) -> io::Result<()> {
        let (old, new) = (redact(old), redact(new));
        let diff = TextDiff::from_lines(&*old, &*new);
        for group in diff.grouped_ops(3) {
            for op in group {
                for change in diff.iter_changes(&op) {
                    let (sign, colour) = match change.tag() {
                        ChangeTag::Delete => ("-", RED),
                        ChangeTag::Insert => ("+", GREEN),
                        ChangeTag::Equal => (" ", ""),
                    };
                    let text = change.value().trim_end_matches('\n');
                    let line = format!("      {sign}{text}");
                    match colour {
                        "" => writeln!(self.out, "{}", shown(&line))?,
                        c => writeln!(self.out, "{}", self.paint(c, &line))?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// `text` as it may reach the terminal: secrets hidden, control
/// characters escaped.
fn shown(text: &str) -> String {
    escape(&redact(text)).into_owned()
}

/// The first 12 hex digits of a hash: enough to tell binaries apart.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(hosts: &[(String, HostOutcome)], colour: bool) -> String {
        let mut buf = Vec::new();
        Printer::new(&mut buf, colour).plan(hosts).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn renders_every_kind_of_change() {
        let hosts = vec![
            (
                "rs1".to_owned(),
                HostOutcome::Planned(vec![
                    Change::UpdateFile {
                        path: "/etc/lbdeploy/agent.yml".into(),
                        old_mode: 0o644,
                        new_mode: 0o600,
                        old: "a: 1\nb: 2\n".into(),
                        new: "a: 1\nb: 3\n".into(),
                    },
                    Change::Sysctl {
                        key: "net.ipv4.conf.all.arp_ignore".into(),
                        old: Some("0".into()),
                        new: "1".into(),
                    },
                    Change::RemoveFile { path: "/etc/old".into() },
                    Change::Undrain {
                        path: "/var/lib/lbdeploy/drained.json".into(),
                        drained: vec!["10.2.0.21 (web)".into()],
                    },
                    Change::Service {
                        name: "lbdeploy-agent".into(),
                        action: ServiceAction::Reload,
                        reasons: Vec::new(),
                    },
                ]),
            ),
            ("rs2".to_owned(), HostOutcome::Planned(vec![])),
            ("lb1".to_owned(), HostOutcome::Unreachable("timed out".into())),
        ];
        let expected = "\
rs1:
  ~ /etc/lbdeploy/agent.yml (mode 0644 → 0600)
       a: 1
      -b: 2
      +b: 3
  ~ sysctl net.ipv4.conf.all.arp_ignore: 0 → 1
  - /etc/old
  ~ undrain 10.2.0.21 (web): /var/lib/lbdeploy/drained.json removed, back \
in service
  ~ service lbdeploy-agent: reload
rs2: no changes
lb1: unreachable: timed out
Plan: 1 hosts to change, 1 unchanged, 1 unreachable.
";
        assert_eq!(render(&hosts, false), expected);
        assert!(render(&hosts, true).contains("\x1b[31m      -b: 2\x1b[0m"));
    }

    /// Issue #19: a host that has left the inventory says so in its
    /// heading, and what its retirement does.
    #[test]
    fn r19_a_retired_host_is_headed_as_removed() {
        let hosts = vec![(
            "web3".to_owned(),
            HostOutcome::Planned(vec![
                Change::Retire { name: "lbdeploy-agent".into(), running: true },
                Change::RemoveFile { path: "/etc/lbdeploy/agent.yml".into() },
            ]),
        )];
        let expected = "\
- host web3 (not in the inventory):
  - service lbdeploy-agent: stop (its VIPs go with it) and disable; the \
sysctls lbdeploy set back to their values before it; the binary and the \
generation history stay
  - /etc/lbdeploy/agent.yml
Plan: 1 hosts to change, 0 unchanged, 0 unreachable.
";
        assert_eq!(render(&hosts, false), expected);
    }

    #[test]
    fn host_bytes_are_escaped_and_secrets_hidden_coloured_or_not() {
        let hostile = "x: 1\x1b]0;title\x07\x1b[1A\x1b[2K\x1b[8m\r\u{202e}\n";
        let hosts = vec![
            (
                "d1".to_owned(),
                HostOutcome::Planned(vec![
                    Change::UpdateFile {
                        path: "/etc/lbdeploy/agent.yml".into(),
                        old_mode: 0o600,
                        new_mode: 0o600,
                        old: format!("password: |-\n  pä\n  ß\n{hostile}"),
                        new: "password: |-\n  pä\n  ß\nx: 1\n".into(),
                    },
                    Change::RemoveFile { path: "/etc/\x1b[2Jx".into() },
                ]),
            ),
            ("d2".to_owned(), HostOutcome::Failed("no\x1b[31m\nway".into())),
        ];
        for colour in [false, true] {
            let text = render(&hosts, colour);
            // Only the printer's own colours may remain as raw ESC.
            let ours = [GREEN, YELLOW, RED, BOLD, RESET]
                .iter()
                .fold(text.clone(), |t, c| t.replace(c, ""));
            assert!(!ours.contains(['\x1b', '\x07', '\r']), "{text:?}");
            assert!(!text.contains('\u{202e}'), "{text:?}");
            assert!(!text.contains("pä") && !text.contains('ß'), "{text}");
            assert!(text.contains("password: (sensitive)"), "{text}");
            assert!(
                text.contains(
                    "-x: 1\\x1b]0;title\\x07\\x1b[1A\\x1b[2K\\x1b[8m\\x0d"
                ),
                "{text}"
            );
            assert!(text.contains("\\u{202e}"), "{text}");
            assert!(text.contains("  - /etc/\\x1b[2Jx"), "{text}");
            assert!(text.contains("d2: failed: no\\x1b[31m\\x0away"), "{text}");
        }
    }
}
