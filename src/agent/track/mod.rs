//! What a VRRP instance tracks besides its peers, keepalived's `track_*`
//! family: each tracked thing is a task that publishes its state on a
//! `watch` channel, for the instance to fold into its priority.
//! Nothing here knows about VRRP.
//!
//! * [`script`] — a `vrrp_script`: a command run every `interval`, with
//!   `rise`/`fall` hysteresis.
//! * [`file`](mod@file) — a `vrrp_track_file`: a number in a file, watched with
//!   inotify, and what it does to a priority with a weight.
//! * [`process`] — a `vrrp_track_process`: how many processes match a
//!   name or command line, from /proc every `interval`, and whether
//!   that is a quorum, debounced by keepalived's delays.

pub mod file;
pub mod process;
pub mod script;
mod watched;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use watched::{Running, Source, Watched};

/// A tracker at work: its state on a `watch` channel (changed only when
/// it changes), and its task, stopped when this is dropped — for a
/// script, dropping the task's future drops the run it awaits, which
/// kills the script's process group.
#[derive(Debug)]
pub struct Tracker<T> {
    /// The tracked object's state.
    pub state: watch::Receiver<T>,
    task: JoinHandle<()>,
}

impl<T> Tracker<T> {
    /// Start `task`, which publishes on the sender of `state`.
    fn new(state: watch::Receiver<T>, task: JoinHandle<()>) -> Self {
        Self { state, task }
    }
}

impl<T> Drop for Tracker<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
