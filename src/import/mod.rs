//! `lbdeploy import-keepalived`: keepalived.conf files in, an inventory out.
//!
//! * `lexer`, `parser`, `glob` — keepalived's syntax: tokens, a tree of
//!   blocks with positions, `include`;
//! * `keepalived` — keyword semantics for one director's file;
//! * `diag` — located errors and warnings.

mod diag;
mod glob;
mod lexer;
mod parser;

pub use diag::{Diag, Pos, Report};
