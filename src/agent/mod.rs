//! The on-host agent: the same `lbdeploy` binary, run by `apply` on every
//! host as `lbdeploy agent director|realserver --config FILE`.
//!
//! * `config` — what the agent reads (rendered by `apply` from the
//!   inventory).
pub mod config;
