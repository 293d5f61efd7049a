//! What the health checks have done, per real server: runs by result,
//! consecutive failures and a latency histogram, for `agent status` and
//! the Prometheus metrics (`agent::metrics`), which render this one
//! record.
//!
//! The record is process-wide, as `util::log`'s count of dropped lines
//! is: an agent runs one set of checks at a time (the runner replaces
//! it on a reload with [`reset`]), and every probe writes one entry
//! under a mutex held for a few additions, never across an await.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The latency histogram's upper bounds, in seconds: from a loopback
/// connect (well under a millisecond) to keepalived's longest
/// `connect_timeout` defaults; slower probes count under `+Inf` only.
pub const LATENCY_BOUNDS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Probe latencies: a count per bucket of [`LATENCY_BOUNDS`] (not
/// cumulative: the renderer adds them up) plus one for anything slower,
/// their sum and their count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `buckets[i]` counts latencies in `(bounds[i-1], bounds[i]]`; the
    /// last one, index `LATENCY_BOUNDS.len()`, those above every bound.
    pub buckets: Vec<u64>,
    /// The sum of the latencies, in seconds.
    pub sum_seconds: f64,
    /// How many latencies were recorded.
    pub count: u64,
}

impl Histogram {
    /// No latency yet (a `const` for records kept in a `static`).
    pub const EMPTY: Histogram =
        Histogram { buckets: Vec::new(), sum_seconds: 0.0, count: 0 };

    /// Count one latency.
    pub fn observe(&mut self, latency: Duration) {
        let s = latency.as_secs_f64();
        if self.buckets.len() != LATENCY_BOUNDS.len() + 1 {
            self.buckets = vec![0; LATENCY_BOUNDS.len() + 1];
        }
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i] += 1;
        self.sum_seconds += s;
        self.count += 1;
    }
}

/// One real server of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerChecks {
    /// The service's name.
    pub service: String,
    /// The real server's address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its weight as forwarded: the inventory's, 0 while drained.
    pub weight: u32,
    /// Probes that passed.
    pub runs_ok: u64,
    /// Probes that failed (timed out included).
    pub runs_failed: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// How long the probes took, passed or failed.
    pub latency: Histogram,
    /// When the certificate a check over TLS last saw expires, in seconds
    /// since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiry: Option<u64>,
}

/// What one probe found.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// Whether it passed.
    pub ok: bool,
    /// How long it took.
    pub latency: Duration,
    /// When the server's certificate expires, for a check over TLS.
    pub certificate_expiry: Option<std::time::SystemTime>,
}

impl ServerChecks {
    /// A server nothing was counted for yet.
    pub fn new(service: String, address: IpAddr, port: u16) -> Self {
        ServerChecks {
            service,
            address,
            port,
            weight: 0,
            runs_ok: 0,
            runs_failed: 0,
            consecutive_failures: 0,
            latency: Histogram::default(),
            certificate_expiry: None,
        }
    }

    /// Count one probe's result and how long it took, and keep the
    /// expiry of the certificate it saw.
    pub fn record(&mut self, seen: Seen) {
        let Seen { ok, latency, certificate_expiry } = seen;
        if let Some(at) = certificate_expiry {
            let since = at.duration_since(std::time::UNIX_EPOCH);
            self.certificate_expiry = since.ok().map(|d| d.as_secs());
        }
        if ok {
            self.runs_ok += 1;
            self.consecutive_failures = 0;
        } else {
            self.runs_failed += 1;
            self.consecutive_failures += 1;
        }
        self.latency.observe(latency);
    }
}

/// A real server's key in the record.
type Key = (String, IpAddr, u16);

/// The record: every real server the running checks cover.
static RECORD: Mutex<BTreeMap<Key, ServerChecks>> = Mutex::new(BTreeMap::new());

fn record() -> std::sync::MutexGuard<'static, BTreeMap<Key, ServerChecks>> {
    // Nothing panics while holding it; a poisoned map is still whole.
    RECORD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start a new record for `servers` (service, address, port, weight):
/// the counts of servers that stay are kept, as their health verdicts
/// are across a reload; servers gone are dropped.
pub fn reset(servers: impl IntoIterator<Item = (String, IpAddr, u16, u32)>) {
    let mut r = record();
    let old = std::mem::take(&mut *r);
    *r = carried(old, servers);
}

/// The record for `servers`, with the counts `old` has for them. Pure.
fn carried(
    mut old: BTreeMap<Key, ServerChecks>,
    servers: impl IntoIterator<Item = (String, IpAddr, u16, u32)>,
) -> BTreeMap<Key, ServerChecks> {
    let mut next = BTreeMap::new();
    for (service, address, port, weight) in servers {
        let key = (service, address, port);
        let mut s = old
            .remove(&key)
            .unwrap_or_else(|| ServerChecks::new(key.0.clone(), address, port));
        s.weight = weight;
        next.insert(key, s);
    }
    next
}

/// Count one probe of `service`'s real server `address:port`.
pub fn observe(service: &str, address: IpAddr, port: u16, seen: Seen) {
    let key = (service.to_owned(), address, port);
    if let Some(s) = record().get_mut(&key) {
        s.record(seen);
    }
}

/// Every real server's counts, by service and address.
pub fn snapshot() -> Vec<ServerChecks> {
    record().values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(9));
        assert_eq!(h.buckets.len(), LATENCY_BOUNDS.len() + 1);
        assert_eq!(h.buckets[0], 2, "0.5 ms and exactly 1 ms");
        assert_eq!(h.buckets[5], 1, "30 ms is in (25 ms, 50 ms]");
        assert_eq!(h.buckets[LATENCY_BOUNDS.len()], 1, "9 s above all");
        assert_eq!(h.count, 4);
        assert!((h.sum_seconds - 9.0315).abs() < 1e-9, "{}", h.sum_seconds);
    }

    #[test]
    fn a_success_ends_a_run_of_failures() {
        let ip = "10.0.0.21".parse().unwrap();
        let mut s = ServerChecks::new("web".to_owned(), ip, 80);
        let seen = |ok| Seen {
            ok,
            latency: Duration::from_millis(1),
            certificate_expiry: None,
        };
        for ok in [false, false, false] {
            s.record(seen(ok));
        }
        assert_eq!((s.runs_failed, s.consecutive_failures), (3, 3));
        s.record(seen(true));
        assert_eq!(
            (s.runs_ok, s.runs_failed, s.consecutive_failures),
            (1, 3, 0)
        );
        assert_eq!(s.latency.count, 4);
        // A certificate seen is kept, also by the probes that see none.
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        s.record(Seen { certificate_expiry: Some(at), ..seen(true) });
        s.record(seen(false));
        assert_eq!(s.certificate_expiry, Some(1_800_000_000));
    }

    #[test]
    fn a_reload_keeps_the_counts_of_servers_that_stay() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let servers = |w: u32| {
            vec![
                ("web".to_owned(), ip("10.0.0.21"), 80, w),
                ("web".to_owned(), ip("10.0.0.22"), 80, 1),
            ]
        };
        let mut r = carried(BTreeMap::new(), servers(1));
        let key = ("web".to_owned(), ip("10.0.0.21"), 80);
        r.get_mut(&key).unwrap().record(Seen {
            ok: false,
            latency: Duration::ZERO,
            certificate_expiry: None,
        });
        let r = carried(r, servers(5));
        assert_eq!(r.len(), 2);
        assert_eq!((r[&key].runs_failed, r[&key].weight), (1, 5));
        let r = carried(r, vec![("web".to_owned(), ip("10.0.0.22"), 80, 1)]);
        assert!(!r.contains_key(&key), "a server gone is dropped");
    }

    #[test]
    fn bounds_rise_strictly() {
        assert!(LATENCY_BOUNDS.windows(2).all(|w| w[0] < w[1]));
    }
}
