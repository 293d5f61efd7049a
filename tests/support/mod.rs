//! Helpers shared by the integration tests.
//!
//! * `subnet` — a lab subnet per test, handed out so that no test picks
//!   one by hand;
//! * `inventory` — the example cluster on a subnet, with each test's
//!   changes, rendered as the YAML `lbdeploy` reads;
//! * `lab` — a namespace lab per test, torn down on drop;
//! * `sinks` — webhook and SMTP receivers inside a lab host;
//! * [`advert_jitter`] — what a capture of 1 s adverts says of their timing.

pub mod inventory;
pub mod lab;
pub mod sinks;
pub mod subnet;
/// The library's test CA, compiled here too (rcgen is a dev-dependency);
/// the lab tests use part of it, the unit tests the rest.
#[path = "../../src/util/tls/test_ca.rs"]
#[allow(dead_code)]
pub mod test_ca;

/// How many adverts a `tcpdump -tt` capture of 1 s adverts holds (one
/// line each, its time first), and the worst deviation of an interval
/// between two of them from 1 s.
pub fn advert_jitter(dump: &str) -> (usize, f64) {
    let times: Vec<f64> = dump
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let worst = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0f64, |m, d| m.max((d - 1.0).abs()));
    (times.len(), worst)
}
