//! How the data plane's reconciles went: how many, how many failed, and
//! how long they took, for `agent status` and the Prometheus metrics
//! (`agent::metrics`), which render this one record; and what it counted
//! of each real server's traffic ([`Traffic`]).
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

/// What the kernel counted of one real server of one service, as the
/// data plane last read it. With Direct Routing only the clients' half of
/// each flow passes the director, so packets and bytes are those sent to
/// the real server. IPVS counts from when the destination was added (a
/// real server that failed its checks and came back starts again from
/// zero), nftables from when its counting set first saw the real server's
/// MAC; IPVS also counts connections, which nftables, keeping no
/// connection state, leaves out.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
pub struct Traffic {
    /// Packets forwarded to it.
    pub packets: u64,
    /// Bytes forwarded to it.
    pub bytes: u64,
    /// Connections scheduled to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Of its connection entries, those established (IPVS's ActiveConn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_connections: Option<u32>,
    /// And the others: closing, or not yet established (InActConn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_connections: Option<u32>,
}

/// Each service's real servers' [`Traffic`], by service name and address.
pub type TrafficByService = std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<std::net::IpAddr, Traffic>,
>;
