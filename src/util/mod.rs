//! Small helpers that both halves of lbdeploy use, one per job: the
//! controller (`apply`, `plan`, `transport`, `lab`, `import`) and the agent
//! share these and the inventory's types, and nothing else.
//!
//! * [`files`] — every file lbdeploy writes is renamed into place through it;
//! * [`hex`] — lower-case hex of digests;
//! * [`hmac`] — HMAC-SHA-256, for keyed fingerprints of secrets;
//! * [`shell`] — quoting a word for `sh`;
//! * [`glob`] — glob(3) patterns, for keepalived's `include` and `--limit`;
//! * [`fnv`] — a hash that comes out the same in every process;
//! * [`log`] — the one logging path: `tracing` to stderr, logfmt or JSON;
//! * [`programs`] — an installed program found by name;
//! * [`redact`] — the one redaction of secrets, for every output;
//! * [`terminal`] — host-supplied text made safe for a terminal;
//! * [`tls`] — TLS clients: whom to trust (the host's CA bundle, or a CA
//!   file's), the handshake; a CA file checked by the code that uses it.
//!
//! Nothing here depends on another lbdeploy module.

pub mod files;
pub mod fnv;
pub mod glob;
pub mod hex;
pub mod hmac;
pub mod log;
pub mod programs;
pub mod redact;
pub mod shell;
pub mod terminal;
pub mod tls;
