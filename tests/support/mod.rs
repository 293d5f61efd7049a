//! Helpers shared by the integration tests.
//!
//! * `subnet` — a lab subnet per test, handed out so that no test picks
//!   one by hand;
//! * `inventory` — the example cluster on a subnet, with each test's
//!   changes, rendered as the YAML `lbdeploy` reads;
//! * `lab` — a namespace lab per test, torn down on drop;
//! * `sinks` — webhook and SMTP receivers inside a lab host.

pub mod inventory;
pub mod lab;
pub mod sinks;
pub mod subnet;
