//! The host side of `apply`: what the installed lbdeploy binary does when
//! the controller activates a generation on it.
//!
//! * [`activation`] — the JSON contract between controller and host.

pub mod activation;
