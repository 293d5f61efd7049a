//! The controller side of `plan`, `apply`, `rollback` and `history`.
//!
//! * [`prepare`] — inventory, roles, binary and `--limit` into every
//!   selected host's desired state, before any connection;
//! * [`document`] — the plan as data (`--json`, `--out`, staleness);
//! * [`generations`] — the record of applied inventories, for rollback;
//!   `key` — the controller's key for its fingerprints of passwords;
//! * [`lock`] — one apply per inventory at a time;
//! * [`phases`] — real servers, then backup directors, then the master,
//!   then the hosts that have left the inventory (`removed`);
//! * [`activate`] — one host's upload, activation and confirmation (the
//!   controller's half of `host activate`);
//! * [`survey`] — every host's facts and the plan made of them, shown;
//! * [`run`] — the apply itself: phases in order, hosts in parallel,
//!   generation; [`progress`] shows it and [`recap`] sums it up;
//! * [`commands`] — `plan`, `apply`, `rollback`, `history`, `unlock`.

pub mod activate;
pub mod commands;
pub mod document;
pub mod generations;
pub(crate) mod key;
pub mod lock;
pub mod phases;
pub mod prepare;
pub mod progress;
pub mod recap;
pub(crate) mod removed;
pub mod run;
pub mod survey;
