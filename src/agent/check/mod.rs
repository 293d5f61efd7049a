//! Health checks of the real servers, with keepalived's meaning of
//! `delay_loop`, `connect_timeout`, `retry` and `delay_before_retry`, plus
//! `rise`.
//!
//! * [`health`] — one checker's verdict and schedule (pure);
//! * [`probe`] — a TCP connect or an HTTP GET, judged (the judging pure);
//! * [`syn`] — half-open TCP checks: the SYN sent and the answer read
//!   (pure); [`half_open`] — the raw socket that sends and reads them;
//! * [`runner`] — the checks running on tokio, verdict changes out on a
//!   channel;
//! * [`quorum`] — whether a service has enough live weight, with
//!   hysteresis (pure).

pub mod half_open;
pub mod health;
pub mod probe;
pub mod quorum;
pub mod runner;
pub mod syn;
