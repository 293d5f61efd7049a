//! From inventory to hosts: the desired state of each host, and the roles and
//! templates it is rendered from.
//!
//! * `roles` — what each kind of host owns, and the template environment;
//! * `desired` — the inventory compiled into each host's desired state
//!   (pure apart from reading secrets through an `Environment`).
pub mod desired;
pub mod facts;
pub mod roles;
