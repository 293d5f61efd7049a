//! From inventory to hosts: the desired state of each host, its current
//! state, and the difference between them. Pure but for [`gather`], which
//! asks the hosts over SSH.
//!
//! * [`roles`] — what each kind of host owns, and the template environment;
//! * [`desired`] — the inventory compiled into each host's desired state
//!   (pure apart from reading secrets through an `Environment`);
//! * [`binary`] — the agent binary to install: its identity and
//!   architecture;
//! * [`facts`] — the script that gathers a host's current state in one round
//!   trip, and its parser;
//! * [`gather`] — running it on every selected host, in parallel;
//! * [`stamps`] — what the controller remembers of each host's binary,
//!   so that an unchanged one is not hashed again;
//! * [`diff`] — desired versus current: the changes a host needs (pure);
//! * [`select`] — `--limit` patterns;
//! * [`redact`] — secrets kept out of what is shown and saved;
//! * [`render`] — the plan as people read it, into any writer.
pub mod binary;
pub mod desired;
pub mod diff;
pub mod facts;
pub mod gather;
pub(crate) mod kernel;
pub(crate) mod programs;
pub mod redact;
pub mod render;
pub mod roles;
pub mod select;
pub mod stamps;
