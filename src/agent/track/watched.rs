//! The trackers as the director runs them: one per tracked script, file
//! or process of its configuration ([`Watched`]), started once however
//! many instances track it ([`Running`]), each instance following it
//! through a [`Source`].

use tokio::sync::watch;

use super::Tracker;
use super::file::{self, FileSpec, FileState};
use super::process::{self, Matcher, Params, ProcessSpec, ProcessState};
use super::script::{self, ScriptSpec, ScriptState};
use crate::inventory::{ParamMatch, TrackFile, TrackProcess, VrrpScript};

/// A tracked object as the configuration defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// A `vrrp_scripts` entry.
    Script(VrrpScript),
    /// A `vrrp_track_files` entry.
    File(TrackFile),
    /// A `vrrp_track_processes` entry.
    Process(TrackProcess),
}

/// A running tracker: its state, and the task, stopped when dropped.
#[derive(Debug)]
pub struct Running {
    /// Where its state is published.
    pub source: Source,
    _task: Task,
}

/// The tracker that owns the task: held only to be dropped with
/// [`Running`].
#[derive(Debug)]
enum Task {
    Script { _tracker: Tracker<ScriptState> },
    File { _tracker: Tracker<FileState> },
    Process { _tracker: Tracker<ProcessState> },
}

/// One tracker's state, as an instance follows it.
#[derive(Debug, Clone)]
pub enum Source {
    /// A script's.
    Script(watch::Receiver<ScriptState>),
    /// A file's.
    File(watch::Receiver<FileState>),
    /// A process's.
    Process(watch::Receiver<ProcessState>),
}

impl Watched {
    /// Its name, as instances refer to it.
    pub fn name(&self) -> &str {
        match self {
            Self::Script(s) => &s.name,
            Self::File(f) => &f.name,
            Self::Process(p) => &p.name,
        }
    }

    /// What it is, in status lines: `script chk`, `file prio`.
    pub fn what(&self) -> String {
        let kind = match self {
            Self::Script(_) => "script",
            Self::File(_) => "file",
            Self::Process(_) => "process",
        };
        format!("{kind} {}", self.name())
    }

    /// Start its tracker.
    pub fn start(&self) -> Running {
        match self {
            Self::Script(s) => {
                let t = script::spawn(ScriptSpec {
                    name: s.name.clone(),
                    argv: s.command.clone(),
                    interval: s.interval.get(),
                    timeout: s.timeout.unwrap_or(s.interval).get(),
                    rise: s.rise,
                    fall: s.fall,
                    user: s.user.clone(),
                });
                Running {
                    source: Source::Script(t.state.clone()),
                    _task: Task::Script { _tracker: t },
                }
            }
            Self::File(f) => {
                if let Some(init) = f.init {
                    match file::initialise(&f.path, init) {
                        Ok(true) => tracing::info!(
                            "file {}: {} started at {}",
                            f.name,
                            f.path.display(),
                            init.value
                        ),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(
                            "file {}: cannot give {} its starting number: \
                             {e:#}",
                            f.name,
                            f.path.display()
                        ),
                    }
                }
                let t = file::spawn(FileSpec {
                    name: f.name.clone(),
                    path: f.path.clone(),
                });
                Running {
                    source: Source::File(t.state.clone()),
                    _task: Task::File { _tracker: t },
                }
            }
            Self::Process(p) => {
                let t = process::spawn(process_spec(p));
                Running {
                    source: Source::Process(t.state.clone()),
                    _task: Task::Process { _tracker: t },
                }
            }
        }
    }
}

/// How often the processes are looked for: keepalived's scans are
/// event-driven; once a second costs 0.15 % of a core per tracked process
/// here (BENCHMARKS.md).
const PROCESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn process_spec(p: &TrackProcess) -> ProcessSpec {
    let matcher = match &p.parameters {
        None => Matcher::Comm(p.process.clone()),
        Some(params) => Matcher::Command {
            program: p.process.clone(),
            params: match p.param_match {
                ParamMatch::Exact => Params::Exact(params.clone()),
                ParamMatch::Partial if params.is_empty() => Params::Any,
                ParamMatch::Partial => Params::Partial(params.clone()),
                ParamMatch::Initial => Params::Initial(params.clone()),
            },
        },
    };
    ProcessSpec {
        name: p.name.clone(),
        matcher,
        quorum: p.quorum,
        quorum_max: p.quorum_max.unwrap_or(u32::MAX),
        fork_delay: p.fork_delay.map(|d| d.get()).unwrap_or_default(),
        terminate_delay: p.terminate_delay.map(|d| d.get()).unwrap_or_default(),
        interval: PROCESS_INTERVAL,
    }
}

impl Source {
    /// Wait for the next change; an error when the tracker is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        match self {
            Self::Script(rx) => rx.changed().await,
            Self::File(rx) => rx.changed().await,
            Self::Process(rx) => rx.changed().await,
        }
    }

    /// Whether it is OK now and, for a file, its number; marked seen.
    pub fn seen(&mut self) -> (bool, Option<i64>) {
        match self {
            Self::Script(rx) => (rx.borrow_and_update().ok, None),
            Self::File(rx) => (true, Some(rx.borrow_and_update().value)),
            Self::Process(rx) => (rx.borrow_and_update().ok, None),
        }
    }
}
