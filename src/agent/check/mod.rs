//! Health checks of the real servers, with keepalived's meaning of
//! `delay_loop`, `connect_timeout`, `retry` and `delay_before_retry`.
//!
//! * [`health`] — one checker's verdict and schedule (pure);
//! * [`probe`] — a TCP connect or an HTTP GET, judged (the judging pure);
//! * [`runner`] — the checks running on tokio, verdict changes out on a
//!   channel.

pub mod health;
pub mod probe;
pub mod runner;
