//! What every kind of check implements ([`Probe`]), and what the checks of
//! one runner share ([`Shared`]). The kinds depend on this file and the
//! dispatch in `check` depends on the kinds, so neither depends back.

use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use super::half_open;

/// One check of one real server, armed: its options read once, what it
/// shares with other checks in hand.
pub(crate) trait Probe: Send + Sync {
    /// Check the server once, giving up after `limit`.
    ///
    /// # Errors
    /// Why the server fails the check, naming it.
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>>;

    /// When the certificate the last check saw expires: for checks over
    /// TLS, reported whether or not they verify it.
    fn certificate_expiry(&self) -> Option<SystemTime> {
        None
    }
}

/// What the checks of one runner share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The half-open prober, when some check is half-open and the raw
    /// socket opened.
    pub(crate) prober: Option<half_open::Prober>,
}

/// A check whose options validation would have refused (the agent was
/// handed them anyway): always down, saying why, rather than passing.
pub(crate) struct Misconfigured(pub(crate) String);

impl Probe for Misconfigured {
    fn check(&self, _: Duration) -> BoxFuture<'_, Result<(), String>> {
        let why = self.0.clone();
        Box::pin(async move { Err(why) })
    }
}
