//! Helpers shared by the integration tests.
//!
//! * `lab` — a namespace lab per test, torn down on drop.

pub mod lab;
