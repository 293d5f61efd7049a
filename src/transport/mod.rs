//! How the controller reaches a host: the system OpenSSH client.
//!
//! * [`target`] — where and as whom to connect, resolved from the inventory;
//! * `remote` — the one builder of a remote command: as it is for root,
//!   through `sudo` for another user (`ssh.become`);
//! * [`ssh`] — a multiplexed connection per host (the `openssh` crate), and
//!   one-off fresh connections for the confirmation that proves a host is
//!   still reachable after an apply.
//!
//! Errors are sorted into the three failures an operator acts on
//! differently (unreachable, authentication, host key), each with a hint.

pub(crate) mod remote;
pub mod ssh;
pub mod target;

pub use ssh::{ConnectError, ConnectErrorKind, Connection, Output, RunError};
pub use target::Target;
