//! The IPVS back end as the director's forwarding loop drives it: the
//! [`Dataplane`] over [`super::desired`] and [`super::sync`]. The table is
//! kept on every director, as keepalived does: IPVS only sees packets for
//! a VIP the director holds, so a backup's table is inert and ready, and
//! VRRP changes nothing here. What to program is decided by the pure parts
//! ([`super::desired`], [`super::reconcile()`], [`super::marks::assign`]);
//! this file only runs them off the async threads, keeps the port groups'
//! mark table beside the services and logs what changed.

use super::marks::{self, Change, Marks};
use super::reconcile::Foreign;
use super::syncd::{self, Daemon, Step};
use super::{Counted, Ipvs, client, owned_path};
use crate::agent::dataplane::backend::{Dataplane, Desired, Job};
use crate::agent::dataplane::stats::TrafficByService;
use crate::agent::paths;
use crate::inventory::agent::DirectorConfig;

/// The IPVS back end. Holds nothing between syncs but what the last one
/// read of the kernel's counts and what it left alone: each opens its
/// netlink socket, reads the kernel's table and changes only what differs.
#[derive(Debug, Default)]
pub(crate) struct Plane {
    counted: Counted,
    /// What the last sync found that is not lbdeploy's, so each is
    /// logged once, not at every sync.
    foreign: Vec<Foreign>,
    /// The port groups' mark table.
    marks: Marks,
    /// The sync daemon the last sync wanted (`ipvs_sync`), if any.
    daemon: Option<Daemon>,
}

/// What `now` holds that `before` did not: the services and destinations
/// not lbdeploy's that appeared since the last sync.
fn appeared<'a>(before: &[Foreign], now: &'a [Foreign]) -> Vec<&'a Foreign> {
    now.iter().filter(|f| !before.contains(f)).collect()
}

/// `net.ipv4.vs.sloppy_tcp`, this network namespace's.
const SLOPPY_TCP: &str = "/proc/sys/net/ipv4/vs/sloppy_tcp";

/// Turn on `net.ipv4.vs.sloppy_tcp` if it is off: IPVS then schedules
/// any packet of a TCP connection it has no entry for, not only a SYN. A
/// hashing scheduler (`mh`, `sh`, `dh`) picks the same real server on
/// every director, so a new master forwards the connections the old one
/// had to where they were (Seesaw's answer to failover without a sync
/// daemon; `tests/ipvs_vm.rs`). Read at every sync (one small file), so
/// a setting turned off by hand comes back; left on when the agent stops,
/// as keepalived leaves IPVS's settings.
///
/// # Errors
/// When the setting cannot be read or written (no right to): the sync
/// fails, so the status shows the director degraded, though the table
/// it made forwards new connections.
fn sloppy_tcp() -> anyhow::Result<()> {
    let now = std::fs::read_to_string(SLOPPY_TCP)
        .map_err(|e| anyhow::anyhow!("reading {SLOPPY_TCP}: {e}"))?;
    if now.trim() != "1" {
        std::fs::write(SLOPPY_TCP, "1\n")
            .map_err(|e| anyhow::anyhow!("writing {SLOPPY_TCP}: {e}"))?;
        tracing::info!(
            "ipvs: net.ipv4.vs.sloppy_tcp set to 1: a new master keeps the \
             connections of hashing schedulers on their real servers"
        );
    }
    Ok(())
}

/// Make the running sync daemons `wanted` ([`syncd::steps`]); with none
/// wanted, stop them all if `ours` was wanted before (a reload removed
/// `ipvs_sync`, or the agent stops: while it is set, both of the
/// namespace's daemons are the agent's), else leave them alone. The
/// steps taken.
///
/// # Errors
/// A refused listing or step.
fn sync_daemon(
    conn: &mut Ipvs,
    wanted: Option<&Daemon>,
    ours: Option<Daemon>,
) -> Result<Vec<Step>, client::Error> {
    if wanted.is_none() && ours.is_none() {
        return Ok(Vec::new());
    }
    conn.converge_daemons(wanted)
}

impl Plane {
    /// Whether the kernel has IPVS: `dataplane: auto`'s test.
    ///
    /// # Errors
    /// When asking failed for another reason than IPVS's absence.
    pub(crate) async fn available() -> anyhow::Result<bool> {
        let probe = tokio::task::spawn_blocking(|| match Ipvs::connect() {
            Ok(_) => Ok(true),
            Err(client::Error::NoIpvs) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e)),
        });
        probe.await?
    }
}

impl Dataplane for Plane {
    fn sync<'a>(
        &'a mut self,
        d: &'a Desired<'a>,
    ) -> Job<'a, anyhow::Result<()>> {
        // Before anything changes: every group gets a mark, or nothing
        // is built.
        let rules = match marks::assign(d.config) {
            Ok(assigned) => marks::rules(d.config, &assigned),
            Err(full) => return Box::pin(async move { Err(full.into()) }),
        };
        let desired = super::desired(
            d.config,
            |svc, rs| (d.up)(svc, rs.address),
            |svc| (d.has_quorum)(svc),
        );
        let hashing =
            d.config.virtual_services.iter().any(|s| s.scheduler.is_hashing());
        // The sync daemon follows its instance: master here, the master
        // daemon; any other state, the backup one.
        let daemon = d
            .config
            .ipvs_sync
            .as_ref()
            .map(|s| syncd::wanted(s, d.masters.contains(&s.instance)));
        let ours = self.daemon.clone();
        self.daemon.clone_from(&daemon);
        Box::pin(async move {
            let (table, steps) = tokio::task::spawn_blocking(move || {
                let mut conn = Ipvs::connect()?;
                let record = owned_path(&paths::run_dir());
                let table = super::sync(&mut conn, &desired, &record);
                let steps = sync_daemon(&mut conn, daemon.as_ref(), ours);
                anyhow::Ok((table, steps))
            })
            .await??;
            for step in steps? {
                tracing::info!("ipvs: {step}");
            }
            let (plan, counted) = table?;
            self.counted = counted;
            for op in &plan.ops {
                tracing::info!("ipvs: {op}");
            }
            for f in appeared(&self.foreign, &plan.foreign) {
                tracing::info!("ipvs: left alone (not lbdeploy's): {f}");
            }
            self.foreign = plan.foreign;
            // After the services, so that a mark never names a service
            // not there yet (a marked packet without one would reach the
            // director's own stack).
            match self.marks.sync(&rules).await? {
                Change::Nothing => {}
                Change::Loaded => tracing::info!(
                    "ipvs: loaded table inet {} (the marks of {} port \
                     group(s))",
                    marks::TABLE,
                    rules.len()
                ),
                Change::Removed => tracing::info!(
                    "ipvs: removed table inet {} (no port group left)",
                    marks::TABLE
                ),
            }
            // After the table: its netlink family loaded `ip_vs`, which
            // makes the setting's file.
            if hashing { sloppy_tcp() } else { Ok(()) }
        })
    }

    /// Every sync reads the kernel's table already.
    fn recheck(&mut self) {}

    /// IPVS forwards only what reaches this director, i.e. the VIPs it
    /// holds; those leave with VRRP, so there is nothing to wait for.
    fn forwarding(&self) -> bool {
        false
    }

    /// The agent leaves the IPVS table (and the port groups' mark table)
    /// as it is when it stops: without the VIPs it forwards nothing, and a
    /// restart reconciles it with the record of what lbdeploy owns. Once
    /// the agent is gone, `agent cleanup` (the supervisor's, or the unit's
    /// `ExecStopPost`) removes both, so that a host whose agent is not
    /// running holds nothing of it.
    ///
    /// The sync daemons stop with the agent (keepalived's behaviour):
    /// left running, a backup daemon would take entries from a master
    /// this director no longer follows.
    fn withdraw(&mut self) -> Job<'_, anyhow::Result<bool>> {
        let ours = self.daemon.take();
        Box::pin(async move {
            if ours.is_some() {
                let steps = tokio::task::spawn_blocking(move || {
                    sync_daemon(&mut Ipvs::connect()?, None, ours)
                })
                .await??;
                for step in steps {
                    tracing::info!("ipvs: {step}");
                }
            }
            Ok(false)
        })
    }

    /// The status lists no services for IPVS (it forwards whatever VIPs
    /// VRRP gives this director); the table is `agent ipvs-dump`'s.
    fn report(&self, _: &DirectorConfig) -> Vec<String> {
        Vec::new()
    }

    /// As the last sync's dump counted them: at most [`RECHECK`] old.
    ///
    /// [`RECHECK`]: crate::agent::director::forward::RECHECK
    fn traffic(&self, config: &DirectorConfig) -> TrafficByService {
        super::traffic(config, &self.counted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dataplane::ipvs::{Proto, ServiceKey};

    /// A hand-made service is logged when first seen, not at every sync.
    #[test]
    fn what_is_left_alone_is_logged_when_it_appears() {
        let key = |port| ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: [10, 9, 9, 9].into(),
            port,
        };
        let (a, b) = (Foreign::Service(key(8080)), Foreign::Service(key(8081)));
        assert_eq!(appeared(&[], std::slice::from_ref(&a)), [&a]);
        assert!(
            appeared(std::slice::from_ref(&a), std::slice::from_ref(&a))
                .is_empty()
        );
        assert_eq!(
            appeared(std::slice::from_ref(&a), &[a.clone(), b.clone()]),
            [&b]
        );
    }
}
