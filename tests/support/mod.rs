//! Helpers shared by the integration tests.
//!
//! * `lab` — a namespace lab per test, torn down on drop;
//! * `sinks` — webhook and SMTP receivers inside a lab host.

pub mod lab;
pub mod sinks;
