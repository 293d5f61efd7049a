//! Health checks of the real servers, with keepalived's meaning of
//! `delay_loop`, `connect_timeout`, `retry` and `delay_before_retry`, plus
//! `rise`.
//!
//! Each kind of check is one file, dispatched from the inventory's own
//! [`Check`] by `arm` — the one place a kind is matched on — into a
//! `Probe` the runner holds without knowing its kind:
//!
//! * `tcp` — a connect, or a half-open SYN (`syn` builds and reads the
//!   bytes, pure; `half_open` owns the raw socket that sends them);
//! * `http` — an HTTP GET, judged (the judging pure);
//! * `exec` — a command run on the director;
//! * `ping` — an ICMP echo of the server;
//! * `dns` — a DNS query over UDP, its reply judged (`dns::wire` reads
//!   and writes the messages, pure);
//! * `udp` — a datagram, and perhaps its reply, judged (pure); the UDP
//!   exchange it shares with `dns` is `datagram`'s;
//! * `smtp` — an SMTP greeting, `HELO` and `QUIT`, each reply judged
//!   (`smtp::reply` reads them, pure and bounded);
//! * `probe` — what every kind implements, and what checks share.
//!
//! Around them:
//!
//! * [`health`] — one checker's verdict and schedule (pure);
//! * [`runner`] — the checks running on tokio, verdict changes out on a
//!   channel;
//! * [`quorum`] — whether a service has enough live weight, with
//!   hysteresis (pure);
//! * [`stats`] — what the probes did, per real server (runs, failures,
//!   latency), for the status and the metrics.
//!
//! A new kind of check is a file here with its `arm`, an arm in `arm`,
//! and on the inventory side its options and rules.

use std::net::SocketAddr;

use crate::inventory::Check;
use probe::{Probe, Shared};

mod datagram;
pub(crate) mod dns;
mod exec;
mod half_open;
pub mod health;
mod http;
pub mod ping;
mod probe;
pub mod quorum;
pub mod runner;
pub(crate) mod smtp;
pub mod stats;
pub mod syn;
mod tcp;
mod udp;

/// What `checks` need shared, its tasks spawned on `tasks`: the
/// half-open prober when some check is half-open.
pub(crate) fn share<'a>(
    checks: impl Iterator<Item = &'a Check>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Shared {
    Shared { prober: tcp::prober(checks, tasks) }
}

/// `check` of the real server at `server` (its address and port), ready
/// to run.
pub(crate) fn arm(
    check: &Check,
    server: SocketAddr,
    shared: &Shared,
) -> Box<dyn Probe> {
    match check {
        Check::Tcp(c) => tcp::arm(c, server, shared),
        Check::HttpGet(c) => http::arm(c, server),
        Check::Exec(c) => exec::arm(c),
        Check::Ping(c) => ping::arm(c, server),
        Check::Dns(c) => dns::arm(c, server),
        Check::Udp(c) => udp::arm(c, server),
        Check::Smtp(c) => smtp::arm(c, server),
    }
}
