//! What every back end implements, [`Dataplane`], with what it is handed
//! ([`Desired`]), and the forwarding rules the back ends share. The back
//! ends depend on this file and `dataplane::choose` depends on the back
//! ends, so neither depends back.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use super::stats::TrafficByService;
use crate::inventory::agent::{DirectorConfig, ServiceConfig};
use crate::inventory::{Announce, BGP_INSTANCE};

/// What a back end's asynchronous methods return: a boxed future, so that
/// [`Dataplane`] can be used as `Box<dyn Dataplane>` (an `async fn` in a
/// trait cannot).
pub type Job<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the director's forwarding loop wants forwarded now: the
/// configuration, and the verdicts of the health checks, quorum and VRRP
/// it has gathered.
pub struct Desired<'a> {
    /// The director's configuration.
    pub config: &'a DirectorConfig,
    /// Whether a real server (by address) of a service passes its checks.
    pub up: &'a (dyn Fn(&ServiceConfig, IpAddr) -> bool + Sync),
    /// Whether a service has quorum.
    pub has_quorum: &'a (dyn Fn(&ServiceConfig) -> bool + Sync),
    /// The VRRP instances this director is master of.
    pub masters: &'a BTreeSet<String>,
    /// Whether this director is in the grace period after leaving master,
    /// when it keeps forwarding what it forwarded.
    pub leaving: bool,
}

impl fmt::Debug for Desired<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Desired")
            .field("masters", &self.masters)
            .field("leaving", &self.leaving)
            .finish_non_exhaustive()
    }
}

/// A kernel data plane, as the forwarding loop drives it: one message at
/// a time, `sync` after each, `withdraw` once when the agent stops.
///
/// A trait object (`Box<dyn Dataplane>`) rather than an enum of back ends,
/// so that adding a back end touches no match in the forwarding loop: it
/// implements this trait and gets an arm in `choose`.
pub trait Dataplane: Send + fmt::Debug {
    /// Make the kernel's table what `desired` calls for. Called after
    /// every change, so it must be cheap when nothing changed.
    ///
    /// # Errors
    /// When the kernel refused or the table cannot be built; the loop
    /// reports it and calls again on the next change or recheck.
    fn sync<'a>(
        &'a mut self,
        desired: &'a Desired<'a>,
    ) -> Job<'a, anyhow::Result<()>>;

    /// The next [`sync`](Self::sync) also checks the kernel's table
    /// against what this back end last installed (a table removed or
    /// edited by hand is repaired). A back end that reads the kernel's
    /// table on every sync ignores it.
    fn recheck(&mut self);

    /// Whether this director forwards through the data plane now, so that
    /// stopping first keeps forwarding for the grace period.
    fn forwarding(&self) -> bool;

    /// Take down what this back end installed: the agent stops, or the
    /// configuration chose another back end. `Ok(true)` when something
    /// was removed.
    ///
    /// # Errors
    /// When the kernel refused.
    fn withdraw(&mut self) -> Job<'_, anyhow::Result<bool>>;

    /// The names of the services of `config` forwarded now, for the
    /// status report.
    fn report(&self, config: &DirectorConfig) -> Vec<String>;

    /// What the kernel counted of each real server of `config`'s
    /// services, as this back end last read it; none where it counts
    /// nothing per real server.
    fn traffic(&self, _config: &DirectorConfig) -> TrafficByService {
        TrafficByService::new()
    }
}

/// The VRRP instance of `config` that holds `svc`'s VIP, if any, or
/// [`BGP_INSTANCE`] for a service announced over BGP: the forwarding
/// loop puts it among [`Desired::masters`] while it forwards them.
pub(crate) fn instance_of<'a>(
    config: &'a DirectorConfig,
    svc: &ServiceConfig,
) -> Option<&'a str> {
    if svc.announce == Announce::Bgp {
        return Some(BGP_INSTANCE);
    }
    config
        .vrrp_instances
        .iter()
        .find(|v| v.virtual_addresses.iter().any(|a| a.address.addr == svc.vip))
        .map(|v| v.name.as_str())
}

/// Whether a service's sorry server takes all its traffic, as
/// keepalived's `sorry_server` does: when the service has lost quorum (see
/// [`crate::agent::check::quorum`]), or when no weight is left to forward
/// to. Without quorum and without a sorry server, the live real servers
/// keep serving: losing quorum then only notifies.
pub(crate) fn sorry_takes_over(
    has_quorum: bool,
    forwardable_weight: u64,
) -> bool {
    !has_quorum || forwardable_weight == 0
}
