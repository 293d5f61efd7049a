//! Telling people and systems what the director saw: VRRP transitions,
//! real servers going up or down and services losing or regaining quorum,
//! by email (keepalived's `smtp_alert`), webhook and exec hook, as the
//! inventory's `notification:` says.
//!
//! * [`event`] — the event and how it reads in each medium (pure);
//! * [`wire`] — the SMTP dialogue and the HTTP request, built by pure
//!   functions that refuse CR/LF (and `<`, `>` in SMTP paths) in any field;
//! * [`smtp`] — an email's SMTP session: in clear, STARTTLS or TLS, AUTH;
//! * [`deliver`] — the senders, behind a queue that never blocks.

pub mod deliver;
pub mod event;
pub mod smtp;
pub mod wire;
