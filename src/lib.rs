//! lbdeploy: deploy and run an LVS Direct-Routing cluster from one inventory.
//!
//! The crate is one library with one binary. The binary (`main.rs`,
//! `cli.rs`) only parses arguments and connects the modules below; everything
//! that can be tested without a terminal lives here.

pub mod agent;
pub mod apply;
pub mod cli;
pub mod drain;
pub mod exit;
pub mod fuzzing;
pub mod global;
pub mod host;
pub mod import;
pub mod inventory;
pub mod lab;
pub mod plan;
pub mod status;
pub mod transport;
pub mod util;
pub mod validate;
