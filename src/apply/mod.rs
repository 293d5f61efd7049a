//! The controller side of `plan`, `apply`, `rollback` and `history`.
//!
//! * [`prepare`] — inventory, roles, binary and `--limit` into every
//!   selected host's desired state, before any connection;
//! * [`document`] — the plan as data (`--json`, `--out`, staleness);
//! * [`generations`] — the record of applied inventories, for rollback;
//! * [`files`] — atomic writes of the controller's own files.

pub mod commands;
pub mod document;
pub mod files;
pub mod generations;
pub mod host;
pub mod lock;
pub mod phases;
pub mod prepare;
pub mod progress;
pub mod run;
