//! The status protocol between a running agent and whoever asks: `lbdeploy
//! agent status`, `agent start`/`reload` (to know when the agent is up or
//! has reloaded) and, later, the controller's `status` over SSH.
//!
//! # Format
//! A client connects to `RUN/agent.sock`; the agent writes one JSON object
//! ([`Status`]) followed by `\n` and closes the connection. There is no
//! request: the socket answers one question, so framing stays trivial and a
//! shell can ask with `socat - UNIX-CONNECT:/run/lbdeploy/agent.sock`.
//! Fields are only ever added, so an older reader keeps working.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::paths;
use crate::util::redact;
use crate::util::terminal::escape;

/// How long a client waits for the agent's answer. The agent answers from
/// memory, so anything slower means it is stuck, which is worth an error.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

use crate::inventory::Mode;

/// What a running agent says about itself.
///
/// `config_sha256` lets `plan` tell whether the agent runs the file that is
/// on disk (a changed file whose hash differs means a reload is due);
/// `reloads` and `last_reload_error` let `reload` wait for and report the
/// outcome of a SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The agent's role.
    pub mode: Mode,
    /// The agent process (not the supervisor): what a SIGHUP should reach
    /// when no supervisor runs, e.g. under systemd.
    pub pid: u32,
    /// The configuration file, as given on the command line.
    pub config: PathBuf,
    /// Lowercase hex SHA-256 of the configuration bytes in effect (the last
    /// file that loaded successfully).
    pub config_sha256: String,
    /// When the agent started, RFC 3339 (UTC).
    pub started_at: String,
    /// When the configuration in effect was loaded, RFC 3339 (UTC).
    pub loaded_at: String,
    /// Reload attempts since start, successful or not: a reader that saw
    /// `n` knows its SIGHUP was handled once it sees more than `n`.
    pub reloads: u64,
    /// Why the last reload was rejected; `null` once a reload succeeds. The
    /// agent keeps running on the previous configuration meanwhile.
    pub last_reload_error: Option<String>,
    /// Running with a valid configuration. A rejected reload does not make
    /// the agent unhealthy: the previous configuration still applies.
    pub healthy: bool,
    /// The agent binary's version, to spot a host that needs a restart
    /// after an upgrade.
    pub version: String,
    /// Log lines this agent could not write and dropped (a full file
    /// system, a full pipe): logging never stops the agent.
    #[serde(default)]
    pub log_lines_dropped: u64,
    /// What the mode reports about its own work (VIPs, VRRP state, …).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,

    // ===== degraded state (issue #19) =====
    /// Why the agent cannot do what its configuration says: a data plane
    /// that refused it (a stateful scheduler on nftables, a failed `nft`
    /// load, an IPVS error), a VIP missing from `lo`. Any reason makes
    /// `healthy` false: the agent runs, but not as configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
    /// The latest configuration has not been tried by the whole agent yet
    /// (the data plane takes it a moment after the load): `degraded` may
    /// still speak of the one before. `apply` waits for this to clear
    /// before it judges the agent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settling: bool,
}

impl Status {
    /// How the agent fares in one word: `healthy`, `degraded` (with
    /// reasons) or `unhealthy` (a part of it stopped).
    pub fn health(&self) -> &'static str {
        match (self.healthy, self.degraded.is_empty()) {
            (true, _) => "healthy",
            (false, false) => "degraded",
            (false, true) => "unhealthy",
        }
    }
}

impl Status {
    /// A few lines for people, as `lbdeploy agent status` prints them
    /// without `--json`. Every string the agent reported has its control
    /// characters escaped: the answer comes from a socket anything running
    /// as root could bind, and its text ends up on a terminal.
    ///
    /// # Errors
    /// Only those of `out`.
    pub(crate) fn write_human(
        &self,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let health = match self.healthy {
            true => self.health().to_owned(),
            false => self.health().to_uppercase(),
        };
        writeln!(
            out,
            "agent {} running, pid {}, {health}, version {}",
            self.mode,
            self.pid,
            escape(&self.version)
        )?;
        writeln!(
            out,
            "config  {} (sha256 {})",
            escape(&self.config.display().to_string()),
            escape(&self.config_sha256)
        )?;
        writeln!(out, "started {}", escape(&self.started_at))?;
        writeln!(
            out,
            "loaded  {} ({} reload(s) since start)",
            escape(&self.loaded_at),
            self.reloads
        )?;
        for why in &self.degraded {
            writeln!(out, "degraded: {}", escape(&redact::text(why)))?;
        }
        if self.settling {
            writeln!(out, "settling: the latest configuration is being taken")?;
        }
        if let Some(e) = &self.last_reload_error {
            let e = escape(&redact::text(e)).into_owned();
            writeln!(out, "last reload failed, old config kept: {e}")?;
        }
        let instances = self.details["vrrp_instances"].as_array();
        for i in instances.into_iter().flatten() {
            write!(
                out,
                "vrrp    {} (vrid {}): {}, priority {}",
                escape(i["name"].as_str().unwrap_or("?")),
                i["vrid"],
                escape(i["state"].as_str().unwrap_or("?")),
                i["priority"]
            )?;
            let effective = &i["effective_priority"];
            if !effective.is_null() && *effective != i["priority"] {
                write!(out, " (effective {effective})")?;
            }
            if let Some(why) = i["fault"].as_str() {
                write!(out, " ({})", escape(why))?;
            }
            let last = &i["last_transition"];
            if let (Some(from), Some(at)) =
                (last["from"].as_str(), last["at"].as_str())
            {
                write!(out, ", was {} until {}", escape(from), escape(at))?;
            }
            writeln!(out)?;
        }
        let notified = &self.details["notifications"];
        if let Some(failure) = notified["last_failure"].as_str() {
            writeln!(
                out,
                "notify  {} sent, {} failed, last: {}",
                notified["sent"],
                notified["failed"],
                escape(&redact::text(failure))
            )?;
        }
        let thread = &self.details["vrrp_thread"];
        if let Some(policy) = thread["policy"].as_str() {
            write!(out, "vrrp    thread {}", escape(policy))?;
            if let Some(p) = thread["priority"].as_u64() {
                write!(out, " priority {p}")?;
            }
            writeln!(out)?;
            if let Some(w) = thread["warning"].as_str() {
                writeln!(out, "warning: {}", escape(w))?;
            }
        }
        let memory = &self.details["memory"];
        if let Some(locked) = memory["locked"].as_bool() {
            let how = if locked { "locked" } else { "not locked" };
            writeln!(out, "memory  {how}")?;
            if let Some(w) = memory["warning"].as_str() {
                writeln!(out, "warning: {}", escape(w))?;
            }
        }
        Ok(())
    }
}

/// Why the agent could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing listens on the socket: no agent, or a stale socket file.
    #[error(
        "the agent is not running: cannot connect to {} ({source})",
        socket.display()
    )]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// Something accepted but did not answer in time or broke off.
    #[error("the agent on {} did not answer: {source}", socket.display())]
    Read {
        /// The socket.
        socket: PathBuf,
        /// The I/O error (a timeout after `QUERY_TIMEOUT` included).
        source: std::io::Error,
    },
    /// The answer was not a status object, e.g. another program's socket.
    #[error("the agent on {} answered garbage: {source}", socket.display())]
    Decode {
        /// The socket.
        socket: PathBuf,
        /// What serde found.
        source: serde_json::Error,
    },
}

/// Ask the agent whose runtime directory is `run_dir` for its status.
///
/// Blocking on purpose: callers are one-shot commands and scripts, and a
/// blocking client can be called from anywhere, a tokio runtime included
/// (through `spawn_blocking`).
///
/// # Errors
/// [`QueryError::NotRunning`] when nothing listens on the socket, else a
/// read or decode error naming the socket.
pub fn query(run_dir: &Path) -> Result<Status, QueryError> {
    let socket = paths::socket(run_dir);
    let mut stream = match UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(source) => return Err(QueryError::NotRunning { socket, source }),
    };
    let mut text = String::new();
    let read = stream
        .set_read_timeout(Some(QUERY_TIMEOUT))
        .and_then(|()| stream.read_to_string(&mut text));
    if let Err(source) = read {
        return Err(QueryError::Read { socket, source });
    }
    decode(&text).map_err(|source| QueryError::Decode { socket, source })
}

/// Encode one status answer: the JSON object and its newline.
pub fn encode(status: &Status) -> Vec<u8> {
    // Serialising a struct of strings and integers cannot fail.
    let mut line = serde_json::to_vec(status).expect("status is plain data");
    line.push(b'\n');
    line
}

/// Decode one status answer as [`encode`] writes it.
///
/// # Errors
/// When the text is not one status object.
pub fn decode(text: &str) -> Result<Status, serde_json::Error> {
    serde_json::from_str(text.trim_end())
}

/// Whether a BGP session in a director's status is up: its
/// `established`, or — in the status of an agent from before that field,
/// which leaves it out — what BIRD's `info` says. Every reader of
/// another agent's status (`lbdeploy status`, `apply` waiting for a
/// director's sessions) asks here. The fallback stays while such agents
/// may run: a controller is upgraded before its directors, and without
/// it their sessions would look down — `status` warning of every one,
/// `apply` failing a healthy director after its wait.
pub fn bgp_session_up(established: Option<bool>, info: &str) -> bool {
    established
        .unwrap_or_else(|| crate::agent::bgp::birdc::bgp_established(info))
}

#[cfg(test)]
impl Status {
    /// A healthy agent's status with `details`, for the tests of what
    /// reads a status (its encoding, the metrics).
    pub(crate) fn example(mode: Mode, details: serde_json::Value) -> Self {
        Status {
            mode,
            pid: 7,
            config: "/etc/lbdeploy/agent.yml".into(),
            config_sha256: "ab".repeat(32),
            started_at: "2026-01-01T00:00:00Z".into(),
            loaded_at: "2026-01-01T00:00:10Z".into(),
            reloads: 2,
            last_reload_error: None,
            healthy: true,
            version: "0.1.0".into(),
            log_lines_dropped: 0,
            degraded: Vec::new(),
            settling: false,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            pid: 42,
            reloads: 1,
            last_reload_error: Some("bad".into()),
            ..Status::example(
                Mode::Realserver,
                serde_json::json!({ "vips": ["192.0.2.1"] }),
            )
        }
    }

    #[test]
    fn a_bgp_session_is_up_as_its_agent_says_or_as_older_ones_said() {
        assert!(bgp_session_up(Some(true), "Established"));
        assert!(!bgp_session_up(Some(false), "Established"), "the field wins");
        assert!(bgp_session_up(None, "Established"), "an older agent");
        assert!(!bgp_session_up(None, "Active        Socket: refused"));
    }

    #[test]
    fn encodes_one_line_and_decodes_back() {
        let line = encode(&sample());
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let text = String::from_utf8(line).unwrap();
        assert!(text.contains(r#""mode":"realserver""#), "{text}");
        assert!(text.contains(r#""last_reload_error":"bad""#), "{text}");
        assert_eq!(decode(&text).unwrap(), sample());
    }

    #[test]
    fn null_reload_error_and_unknown_fields_are_accepted() {
        let mut s = sample();
        s.last_reload_error = None;
        let text = String::from_utf8(encode(&s)).unwrap();
        assert!(text.contains(r#""last_reload_error":null"#), "{text}");
        let text = text.trim_end();
        let newer = format!(r#"{},"newer":1}}"#, &text[..text.len() - 1]);
        assert_eq!(decode(&newer).unwrap(), s);
    }

    #[test]
    fn human_form_mentions_a_failed_reload() {
        let mut out = Vec::new();
        sample().write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("agent realserver running, pid 42"));
        assert!(text.contains("last reload failed, old config kept: bad"));
    }

    /// Issue #19: degraded is a state of its own, with its reasons, in
    /// the text status too.
    #[test]
    fn r19_human_form_says_degraded_and_why() {
        let mut s = sample();
        s.mode = Mode::Director;
        s.healthy = false;
        s.degraded = vec![
            "data plane: service web: the `wlc` scheduler needs connection \
             state\x1b[2J"
                .into(),
        ];
        assert_eq!(s.health(), "degraded");
        let mut out = Vec::new();
        s.write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("agent director running, pid 42, DEGRADED"));
        assert!(
            text.contains(
                "\ndegraded: data plane: service web: the `wlc` scheduler \
                 needs connection state\\x1b[2J\n"
            ),
            "{text}"
        );
        s.degraded.clear();
        assert_eq!(s.health(), "unhealthy");
        let json = String::from_utf8(encode(&sample())).unwrap();
        assert!(!json.contains("degraded") && !json.contains("settling"));
    }

    #[test]
    fn human_form_shows_each_vrrp_state_and_why_in_fault() {
        let mut s = sample();
        s.details = serde_json::json!({ "vrrp_instances": [
            { "name": "VI_1", "vrid": 51, "state": "MASTER", "priority": 120,
              "effective_priority": 60 },
            { "name": "VI_2", "vrid": 52, "state": "FAULT", "priority": 120,
              "fault": "eth0 has no carrier",
              "last_transition": { "from": "BACKUP", "at": "2026-12-05T13:00:00Z" } },
        ]});
        let mut out = Vec::new();
        s.write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "vrrp    VI_1 (vrid 51): MASTER, priority 120 (effective 60)\n\
                 vrrp    VI_2 (vrid 52): FAULT, priority 120 \
                 (eth0 has no carrier), was BACKUP until 2026-12-05T13:00:00Z\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn human_form_shows_the_memory_lock_and_why_not() {
        let human = |s: &Status| {
            let mut out = Vec::new();
            s.write_human(&mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let mut s = sample();
        s.details = serde_json::json!({ "memory": { "locked": true } });
        assert!(human(&s).ends_with("memory  locked\n"), "{}", human(&s));
        // A warning is host text: escaped.
        s.details = serde_json::json!({ "memory":
            { "locked": false, "warning": "cannot: ENOMEM\u{1b}[2J" } });
        let text = human(&s);
        assert!(
            text.contains("memory  not locked\nwarning: cannot: ENOMEM"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn human_form_shows_the_vrrp_threads_scheduling_and_why_not() {
        let mut s = sample();
        s.details = serde_json::json!({ "vrrp_thread":
            { "policy": "SCHED_RR", "priority": 50 } });
        let mut out = Vec::new();
        s.write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("vrrp    thread SCHED_RR priority 50\n"),
            "{text}"
        );
        s.details = serde_json::json!({ "vrrp_thread":
            { "policy": "SCHED_OTHER", "warning": "cannot: EPERM" } });
        let mut out = Vec::new();
        s.write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(
                "vrrp    thread SCHED_OTHER\nwarning: cannot: EPERM\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn human_form_escapes_what_the_agent_reported() {
        let mut s = sample();
        s.version = "0.1\x1b]0;owned\x07".into();
        s.last_reload_error =
            Some("bad\x1b[1A\x1b[2K\npassword: |-\n  sé\n  crèt".into());
        s.details = serde_json::json!({ "vrrp_instances": [
            { "name": "VI\u{202e}1", "vrid": 51, "state": "MASTER\x1b[8m",
              "priority": 120, "fault": "x\ry" },
        ]});
        let mut out = Vec::new();
        s.write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text}");
        assert!(text.contains("version 0.1\\x1b]0;owned\\x07"), "{text}");
        assert!(
            text.contains(
                "kept: bad\\x1b[1A\\x1b[2K\\x0apassword: (sensitive)"
            ),
            "{text}"
        );
        assert!(!text.contains("sé") && !text.contains("crèt"), "{text}");
        assert!(
            text.contains("VI\\u{202e}1 (vrid 51): MASTER\\x1b[8m"),
            "{text}"
        );
        assert!(text.contains("(x\\x0dy)"), "{text}");
    }

    #[test]
    fn human_form_shows_the_last_failed_notification_redacted() {
        let mut s = sample();
        s.details = serde_json::json!({ "notifications": {
            "sent": 3, "failed": 1, "dropped": 0,
            "last_failure": "webhook notification to \
                             http://h:81/services/T0/XXXX?t=YY failed: \x1b[2K",
        }});
        let mut out = Vec::new();
        s.write_human(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "notify  3 sent, 1 failed, last: webhook notification to \
                 http://h:81/(sensitive) failed: \\x1b[2K\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_socket_means_not_running() {
        let err = query(Path::new("/nonexistent/lbdeploy")).unwrap_err();
        assert!(matches!(err, QueryError::NotRunning { .. }));
        assert!(
            err.to_string().starts_with(
                "the agent is not running: cannot connect to \
                 /nonexistent/lbdeploy/agent.sock ("
            ),
            "{err}"
        );
    }
}
