//! From inventory to hosts: the desired state of each host, and the roles and
//! templates it is rendered from.
//!
//! * `roles` — what each kind of host owns, and the template environment;
//! * `desired` — the inventory compiled into each host's desired state
//!   (pure apart from reading secrets through an `Environment`);
//! * `facts` — the script that gathers a host's current state in one round
//!   trip, and its parser;
//! * `diff` — desired versus current: the changes a host needs (pure);
//! * `render` — the plan as people read it, into any writer.
//!
//! Still to come (issue #4): the SSH transport, `apply` with its phases and
//! atomic writes, generations and rollback.
pub mod binary;
pub mod desired;
pub mod diff;
pub mod facts;
pub mod gather;
pub mod redact;
pub mod render;
pub mod roles;
pub mod select;
