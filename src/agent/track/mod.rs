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

pub use watched::{Running, Source, Watched};
