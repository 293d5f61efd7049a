//! Health checks of the real servers, with keepalived's meaning of
//! `delay_loop`, `connect_timeout`, `retry` and `delay_before_retry`, plus
//! `rise`.
//!
//! * [`health`] — one checker's verdict and schedule (pure);
//! * [`probe`] — a TCP connect or an HTTP GET, judged (the judging pure);
//! * [`runner`] — the checks running on tokio, verdict changes out on a
//!   channel;
//! * [`quorum`] — whether a service has enough live weight, with
//!   hysteresis (pure).

pub mod health;
pub mod probe;
pub mod quorum;
pub mod runner;
