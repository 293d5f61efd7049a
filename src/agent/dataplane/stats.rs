//! How the data plane's reconciles went: how many, how many failed, and
//! how long they took, for `agent status` and the Prometheus metrics
//! (`agent::metrics`), which render this one record.
//!
//! Process-wide, as `check::stats` is: one forwarding loop per agent
//! reconciles, one at a time.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::check::stats::Histogram;

/// The reconciles since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciles {
    /// Reconciles that failed (the error is the forwarding's
    /// `last_error`).
    pub errors: u64,
    /// How long each took, failed ones included; its count is the
    /// number of reconciles.
    pub duration: Histogram,
}

static RECORD: Mutex<Reconciles> =
    Mutex::new(Reconciles { errors: 0, duration: Histogram::EMPTY });

/// Count one reconcile: whether it worked and how long it took.
pub fn observe(took: Duration, ok: bool) {
    let mut r = RECORD.lock().unwrap_or_else(|p| p.into_inner());
    r.duration.observe(took);
    if !ok {
        r.errors += 1;
    }
}

/// The reconciles so far.
pub fn snapshot() -> Reconciles {
    RECORD.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
