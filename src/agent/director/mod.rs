//! `lbdeploy agent director`'s work: one VRRP [`instance`] loop per
//! configured instance, each holding the VIPs while it is master, and the
//! [`forward`]ing (health checks and the data plane) that follows them.
//! The loop itself, its settings and the protocol are
//! [`crate::agent::vrrp`]'s; this module only coordinates the instances
//! and the forwarding.
//!
//! The [`Worker`] is what the runtime drives: it starts the instances at
//! start, restarts only the instances whose settings changed on a reload
//! (an unchanged instance keeps running, so a reload never drops a VIP it
//! did not have to; a changed one that is still the same router hands
//! over to its successor, which resumes as master if it was), and on
//! SIGTERM makes each instance resign (priority-0
//! advert, VIPs removed); on SIGUSR1 (a restart) it hands over instead:
//! every instance ends as it stands, so a master's restarted successor
//! resumes as master. Which instances to stop and start is the pure
//! `restarts`.
//!
//! Before it starts an instance or hands the forwarding a configuration,
//! the worker writes down what that configuration may make it hold
//! (`agent::holdings`), so that `agent cleanup` can remove it
//! all if the agent dies without resigning.
//!
//! The instance loops run on the VRRP thread
//! ([`crate::agent::sys::realtime`]), started at the first apply with the
//! configuration's `vrrp_rt_priority`; the forwarding, the trackers and
//! everything else stay on the agent's main thread.

pub mod forward;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::json;

use tokio::sync::{mpsc, watch};

use self::forward::Forward;
use super::drain::{self, Drained};
use super::holdings::{self, Holdings};
use super::paths;
use super::runtime::{self, ModeConfig, Report};
use crate::agent::sys::net::{self, Net};
use crate::agent::sys::realtime::{Scheduling, VrrpThread};
use crate::agent::track::{Running, Watched};
use crate::agent::vrrp::fsm::{State, state_name};
use crate::agent::vrrp::instance::{self, Handle, InstanceMsg, StateChange};
use crate::agent::vrrp::settings::{Settings, link_local};
use crate::agent::vrrp::sync::Members;
use crate::inventory::IfAddr;
use crate::inventory::Mode;
use crate::inventory::SyncGroup;
use crate::inventory::agent::{DirectorConfig, VrrpConfig};

/// How long a resigning instance may take (one advert, the VIPs off)
/// before the worker stops waiting for it.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// How long starting an IPv6 instance waits for the interface's addresses
/// to leave duplicate address detection. The kernel's defaults take one
/// to two seconds (a random delay of up to 1 s, then one probe answered
/// within 1 s).
const DAD_WAIT: Duration = Duration::from_secs(5);

/// How often the addresses are looked at meanwhile.
const DAD_POLL: Duration = Duration::from_millis(100);

/// What an instance's loop depends on: if any of it changes, the instance
/// is restarted; if none does, it is left alone.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceKey {
    /// The interface.
    pub interface: String,
    /// Our primary address on it.
    pub address: IfAddr,
    /// The instance's settings.
    pub vrrp: VrrpConfig,
    /// The scripts, files and processes it tracks: a changed one
    /// restarts the instance, whose tracker of it is replaced.
    pub watched: Vec<Watched>,
    /// Its sync group, if any: a changed group restarts its members.
    pub group: Option<SyncGroup>,
}

/// The instances of a configuration, as keys.
pub fn keys(config: &DirectorConfig) -> Vec<InstanceKey> {
    config
        .vrrp_instances
        .iter()
        .map(|v| InstanceKey {
            interface: config.interface.clone(),
            address: config.address,
            vrrp: v.clone(),
            watched: watched(config, v),
            group: config
                .vrrp_sync_groups
                .iter()
                .find(|g| g.instances.contains(&v.name))
                .cloned(),
        })
        .collect()
}

/// The scripts, files and processes of `config` that instance `v`
/// tracks, in the order of its `track` lists.
fn watched(config: &DirectorConfig, v: &VrrpConfig) -> Vec<Watched> {
    let t = &v.track;
    let pick = |refs: &[crate::inventory::TrackRef], all: Vec<Watched>| {
        refs.iter()
            .filter_map(|r| all.iter().find(|w| w.name() == r.name).cloned())
            .collect::<Vec<_>>()
    };
    let scripts = config.vrrp_scripts.iter().cloned().map(Watched::Script);
    let files = config.vrrp_track_files.iter().cloned().map(Watched::File);
    let processes =
        config.vrrp_track_processes.iter().cloned().map(Watched::Process);
    [
        pick(&t.scripts, scripts.collect()),
        pick(&t.files, files.collect()),
        pick(&t.processes, processes.collect()),
    ]
    .concat()
}

/// The weight instance `v` gives to `w`, and whether it is negated
/// (both resolved by `plan`: the object's own unless the instance
/// overrides them).
fn weight_in(v: &VrrpConfig, w: &Watched) -> (i32, bool) {
    let refs = match w {
        Watched::Script(_) => &v.track.scripts,
        Watched::File(_) => &v.track.files,
        Watched::Process(_) => &v.track.processes,
    };
    refs.iter()
        .find(|r| r.name == w.name())
        .map_or((0, false), |r| (r.weight.unwrap_or(0), r.reverse))
}

/// Which instances a reload restarts, by index: those to stop and those
/// to start (an instance whose settings changed is in both).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Restarts {
    /// Indexes into the running instances to stop.
    pub stop: Vec<usize>,
    /// Indexes into the wanted instances to start.
    pub start: Vec<usize>,
    /// Pairs of those (running, wanted) that are the same router on the
    /// same link with the same VIPs: the running one hands over instead
    /// of resigning, and a master's successor resumes as master, so a
    /// changed priority, timer, tracker or hook costs no failover.
    pub handed: Vec<(usize, usize)>,
}

/// Which running instances to stop and which wanted ones to start: an
/// instance whose key is unchanged is neither (it keeps its state and its
/// VIPs); a changed one is stopped and started again, handing over to its
/// successor when it [`continues`] as one. Pure.
pub(crate) fn restarts(
    running: &[InstanceKey],
    wanted: &[InstanceKey],
) -> Restarts {
    let stop: Vec<usize> =
        (0..running.len()).filter(|&i| !wanted.contains(&running[i])).collect();
    let start: Vec<usize> =
        (0..wanted.len()).filter(|&i| !running.contains(&wanted[i])).collect();
    let handed = stop
        .iter()
        .filter_map(|&i| {
            let j =
                start.iter().find(|&&j| continues(&running[i], &wanted[j]))?;
            Some((i, *j))
        })
        .collect();
    Restarts { stop, start, handed }
}

/// Whether `new` is `old` with other settings: the same VRRP router
/// (name, VRID, version) on the same interface and address, holding the
/// same VIPs. Its peers cannot tell the successor from the old instance
/// but by what changed in its adverts (its priority, its interval).
fn continues(old: &InstanceKey, new: &InstanceKey) -> bool {
    let (a, b) = (&old.vrrp, &new.vrrp);
    old.interface == new.interface
        && old.address == new.address
        && a.name == b.name
        && a.virtual_router_id == b.virtual_router_id
        && a.version == b.version
        && a.virtual_addresses == b.virtual_addresses
}

/// The director mode's worker: the running VRRP instances.
#[derive(Debug, Default)]
pub struct Worker {
    net: Option<Net>,
    running: Vec<(InstanceKey, Handle)>,
    /// Where the instances report state changes; the forwarding loop
    /// reads them.
    changes: Option<mpsc::UnboundedSender<StateChange>>,
    forward: Option<Forward>,
    /// What the holdings file lists now; `None` until the first apply.
    holdings: Option<Holdings>,
    /// One tracker per script, file or process some instance tracks,
    /// run once however many instances track it.
    trackers: Vec<(Watched, Running)>,
    /// Each sync group's table, shared by its members.
    groups: Vec<(SyncGroup, watch::Sender<Members>)>,
    /// Where the instance loops run; started at the first apply.
    vrrp_thread: Option<VrrpThread>,
    /// How that thread is scheduled, with what the last reload asked.
    scheduling: Option<Scheduling>,
    /// The configuration the agent started with: what its capabilities,
    /// scheduling and memory lock come from.
    started_with: Option<DirectorConfig>,
    /// The real servers drained on this director, as the last apply read
    /// them ([`drain`]), or why they could not be read.
    drained: Option<Result<BTreeSet<Drained>, String>>,
}

impl Worker {
    /// Write `holdings` to the runtime directory's holdings file, unless
    /// it already lists exactly that.
    fn record(&mut self, holdings: Holdings) -> anyhow::Result<()> {
        if self.holdings.as_ref() != Some(&holdings) {
            let file = paths::holdings_file(&paths::run_dir());
            holdings::save(&file, &holdings)?;
            self.holdings = Some(holdings);
        }
        Ok(())
    }

    /// Make an instance resign and wait for it; whether it stopped in
    /// time (one that did not may still hold its VIPs).
    async fn stop_one(name: &str, handle: Handle) -> bool {
        Self::end_one(name, handle, InstanceMsg::Stop).await
    }

    /// Tell an instance to end (`how`: resign, or hand over) and wait for
    /// it; whether it ended in time.
    async fn end_one(name: &str, handle: Handle, how: InstanceMsg) -> bool {
        let _ = handle.ctl_tx.send(how).await;
        if tokio::time::timeout(STOP_TIMEOUT, handle.task).await.is_err() {
            tracing::warn!(instance = %name, "a vrrp instance did not stop in time");
            return false;
        }
        true
    }
}

/// Whether an instance's adverts go over IPv6 (its VIPs are IPv6).
fn speaks_ipv6(c: &VrrpConfig) -> bool {
    c.virtual_addresses.iter().any(|v| v.address.addr.is_ipv6())
}

/// Whether the interface's IPv6 addresses are ready for an instance to
/// bind: none is tentative, and a link-local one is usable.
pub(crate) fn dad_settled(usable: &[Ipv6Addr], any_tentative: bool) -> bool {
    !any_tentative && link_local(usable).is_some()
}

/// The IPv6 addresses of `interface` (index `index`) an instance can bind.
/// With `wait` (an IPv6 instance is about to start) it first waits up to
/// [`DAD_WAIT`] for duplicate address detection to end: an agent started
/// with its link — at boot, or after `ip link set up` — would otherwise
/// fail to bind its link-local address.
async fn usable_ipv6(
    net: &Net,
    index: u32,
    interface: &str,
    wait: bool,
) -> Result<Vec<Ipv6Addr>, net::Error> {
    let deadline = tokio::time::Instant::now() + DAD_WAIT;
    let mut said = false;
    loop {
        let all = net.ipv6(index).await?;
        let usable: Vec<Ipv6Addr> =
            all.iter().filter(|a| !a.tentative).map(|a| a.ip).collect();
        if !wait
            || dad_settled(&usable, usable.len() < all.len())
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(usable);
        }
        if !said {
            tracing::info!(
                interface,
                "waiting for duplicate address detection on {interface} \
                 (up to {DAD_WAIT:?})"
            );
            said = true;
        }
        tokio::time::sleep(DAD_POLL).await;
    }
}

/// A director's configuration runs this mode's [`Worker`]; the impl sits
/// here, beside the worker, so the runtime needs no mode.
impl ModeConfig for DirectorConfig {
    const MODE: Mode = Mode::Director;
    type Worker = Worker;

    fn host(&self) -> &str {
        &self.host
    }

    fn check(&self) -> Result<(), String> {
        crate::agent::script_security::check(self)
    }

    fn metrics(&self) -> Option<std::net::SocketAddr> {
        self.metrics.map(|m| m.listen)
    }
}

impl runtime::Worker<DirectorConfig> for Worker {
    async fn apply(&mut self, config: &DirectorConfig) -> anyhow::Result<()> {
        let net = match &self.net {
            Some(n) => n.clone(),
            None => {
                let n = Net::connect().context("opening rtnetlink")?;
                self.net = Some(n.clone());
                n
            }
        };
        // What this configuration may hold is on disk before any of it is
        // taken; while the old instances stop, the file lists theirs too.
        let index = net.index(&config.interface).await?;
        let wanted_holdings = Holdings::of(config, index);
        let during = match &self.holdings {
            Some(old) => old.union(&wanted_holdings),
            None => wanted_holdings.clone(),
        };
        self.record(during)?;
        let changes = match &self.changes {
            Some(tx) => tx.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.forward = Some(forward::spawn(rx));
                self.changes = Some(tx.clone());
                tx
            }
        };
        let vrrp_thread = match &self.vrrp_thread {
            Some(t) => t,
            None => {
                let t = VrrpThread::start(config.vrrp_rt_priority)
                    .context("starting the vrrp thread")?;
                self.vrrp_thread.insert(t)
            }
        };
        let scheduling = vrrp_thread
            .scheduling()
            .after_reload(vrrp_thread.asked(), config.vrrp_rt_priority);
        // A refusal at start was logged by the thread; a reload's note once.
        if let Some(w) = &scheduling.warning
            && Some(&scheduling) != self.scheduling.as_ref()
            && vrrp_thread.scheduling() != &scheduling
        {
            tracing::warn!("{w}");
        }
        self.scheduling = Some(scheduling);
        match &self.started_with {
            None => self.started_with = Some(config.clone()),
            Some(first) => {
                let later = config.restart_settings(first);
                if !later.is_empty() {
                    tracing::warn!(
                        "a reload cannot apply {}: the agent set them when \
                         it started; they take effect when it restarts \
                         (`apply` restarts it for them)",
                        later.join(", ")
                    );
                }
            }
        }
        let vrrp_rt = vrrp_thread.handle().clone();
        let wanted = keys(config);
        let running: Vec<InstanceKey> =
            self.running.iter().map(|(k, _)| k.clone()).collect();
        let restarts = restarts(&running, &wanted);
        // Resolve everything before stopping anything: a configuration
        // that cannot run leaves the running instances alone.
        let mut start = Vec::new();
        if !restarts.start.is_empty() {
            let v6 =
                restarts.start.iter().any(|&i| speaks_ipv6(&wanted[i].vrrp));
            let ipv6 = usable_ipv6(&net, index, &config.interface, v6).await?;
            let mut problems = Vec::new();
            for &i in &restarts.start {
                let k = &wanted[i];
                let (iface, addr) = (&k.interface, k.address);
                match Settings::new(iface, index, addr, &ipv6, &k.vrrp) {
                    Ok(s) => start.push((i, k.clone(), s)),
                    Err(e) => problems.push(e),
                }
            }
            if !problems.is_empty() {
                return Err(anyhow!(problems.join("; ")));
            }
        }
        let mut all_stopped = true;
        // Which of the instances to start replace a master in place.
        let mut handed_master = vec![false; wanted.len()];
        for i in restarts.stop.into_iter().rev() {
            let (key, handle) = self.running.remove(i);
            let name = &key.vrrp.name;
            match restarts.handed.iter().find(|(old, _)| *old == i) {
                Some(&(_, j)) => {
                    tracing::info!(
                        instance = %name,
                        "settings changed: handing over to its successor"
                    );
                    let status = handle.status.clone();
                    let ended =
                        Self::end_one(name, handle, InstanceMsg::HandOver)
                            .await;
                    let state = status.lock().map_or("", |s| s.state);
                    handed_master[j] =
                        ended && state == state_name(State::Master);
                    all_stopped &= ended;
                }
                None => {
                    tracing::info!(
                        instance = %name,
                        "stopping (changed or removed)"
                    );
                    all_stopped &= Self::stop_one(name, handle).await;
                }
            }
        }
        // Trackers no instance needs any more, or changed, go (their
        // instances were restarted above); new ones start.
        let wanted_trackers: Vec<&Watched> =
            wanted.iter().flat_map(|k| &k.watched).collect();
        self.trackers.retain(|(w, _)| wanted_trackers.contains(&w));
        for w in wanted_trackers {
            if !self.trackers.iter().any(|(r, _)| r == w) {
                self.trackers.push((w.clone(), w.start()));
            }
        }
        // Tables of groups gone or changed go (their members were
        // restarted above); new ones start empty.
        let wanted_groups: Vec<&SyncGroup> =
            wanted.iter().filter_map(|k| k.group.as_ref()).collect();
        self.groups.retain(|(g, _)| wanted_groups.contains(&g));
        for g in wanted_groups {
            if !self.groups.iter().any(|(r, _)| r == g) {
                let (table, _) = watch::channel(Members::new());
                self.groups.push((g.clone(), table));
            }
        }
        for (j, key, settings) in start {
            let name = settings.name.clone();
            let sync = key.group.as_ref().and_then(|g| {
                let (_, table) = self.groups.iter().find(|(r, _)| r == g)?;
                Some(instance::SyncLink {
                    group: g.name.clone(),
                    size: g.instances.len(),
                    hooks: g.notify.clone(),
                    table: table.clone(),
                })
            });
            let watched = key
                .watched
                .iter()
                .filter_map(|w| {
                    let (_, running) =
                        self.trackers.iter().find(|(r, _)| r == w)?;
                    let (weight, reverse) = weight_in(&key.vrrp, w);
                    Some(instance::TrackedObject {
                        what: w.what(),
                        weight,
                        reverse,
                        source: running.source.clone(),
                    })
                })
                .collect();
            // Its sockets, timers and task belong to the vrrp thread.
            let _on_vrrp_thread = vrrp_rt.enter();
            let handle = instance::spawn(
                settings,
                watched,
                sync,
                net.clone(),
                changes.clone(),
                handed_master[j],
            )
            .with_context(|| format!("vrrp instance {name}: sockets"))?;
            self.running.push((key, handle));
        }
        if let Some(f) = &mut self.forward {
            let drained = drain::load(Path::new(drain::DRAINED_FILE));
            let mut forwarded = config.clone();
            match &drained {
                Ok(d) => drain::apply(&mut forwarded, d),
                Err(e) => tracing::warn!("drained real servers: {e}"),
            }
            self.drained = Some(drained);
            f.configure(forwarded).await;
        }
        // The old instances have stopped and taken their VIPs with them;
        // if one did not stop in time, the file keeps listing them.
        if all_stopped {
            let settled =
                self.holdings.as_ref().map_or(wanted_holdings.clone(), |h| {
                    h.settled(&wanted_holdings)
                });
            self.record(settled)?;
        }
        Ok(())
    }

    async fn stop(&mut self) {
        for (key, handle) in self.running.drain(..) {
            Self::stop_one(&key.vrrp.name, handle).await;
        }
        self.trackers.clear();
        self.groups.clear();
        // The forwarding outlives the resignation by its grace period.
        if let Some(f) = self.forward.take() {
            let _ = f.tx.send(forward::Msg::Stop).await;
            let bound = forward::GRACE + STOP_TIMEOUT;
            if tokio::time::timeout(bound, f.task).await.is_err() {
                tracing::warn!("the data plane did not stop in time");
            }
        }
    }

    /// For a restart: every instance ends as it stands (a master does not
    /// resign) and the forwarding ends with the data plane in place;
    /// `agent cleanup` removes the VIPs and the data plane and stamps the
    /// masters' marks, and the restarted agent resumes where this one
    /// left.
    async fn hand_over(&mut self) {
        for (key, handle) in self.running.drain(..) {
            Self::end_one(&key.vrrp.name, handle, InstanceMsg::HandOver).await;
        }
        self.trackers.clear();
        self.groups.clear();
        if let Some(f) = self.forward.take() {
            let _ = f.tx.send(forward::Msg::HandOver).await;
            if tokio::time::timeout(STOP_TIMEOUT, f.task).await.is_err() {
                tracing::warn!("the data plane did not stop in time");
            }
        }
    }

    fn report(&self) -> Report {
        let instances: Vec<_> = self
            .running
            .iter()
            .map(|(_, h)| {
                h.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
            })
            .collect();
        let forwarding = self.forward.as_ref().map(|f| {
            f.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone()
        });
        let notifications = self.forward.as_ref().map(|f| {
            f.deliveries.lock().unwrap_or_else(|p| p.into_inner()).clone()
        });
        let mut degraded = Vec::new();
        if let Some(e) = forwarding.as_ref().and_then(|f| f.last_error.clone())
        {
            degraded.push(format!("data plane: {e}"));
        }
        let bgp = forwarding.as_ref().and_then(|f| f.bgp.as_ref());
        if let Some(e) = bgp.and_then(|b| b.last_error.clone()) {
            degraded.push(format!("bgp: {e}"));
        }
        if let Some(Err(e)) = &self.drained {
            degraded.push(format!(
                "drained real servers: {e} (nothing is drained until it \
                 is fixed)"
            ));
        }
        let drained = match &self.drained {
            Some(Ok(d)) => d.iter().cloned().collect(),
            _ => Vec::new(),
        };
        Report {
            healthy: self.running.iter().all(|(_, h)| !h.task.is_finished())
                && self.forward.as_ref().is_none_or(|f| !f.task.is_finished()),
            degraded,
            settling: self.forward.as_ref().is_some_and(Forward::settling),
            details: json!({
                "vrrp_instances": instances,
                "forwarding": forwarding,
                "drained": drained,
                "notifications": notifications,
                "vrrp_thread": self.scheduling,
                "memory": crate::agent::sys::memory::state(),
                // For the metrics; see `agent::metrics`.
                "real_server_checks": crate::agent::check::stats::snapshot(),
                "dataplane_reconciles":
                    crate::agent::dataplane::stats::snapshot(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, priority: u8) -> InstanceKey {
        let vrrp: VrrpConfig = serde_yaml::from_str(&format!(
            "name: {name}\nvirtual_router_id: 51\nversion: 2\n\
             advert_int: 1s\npriority: {priority}\npreempt: true\n\
             virtual_addresses: [{{address: 10.0.0.200/24}}]\n"
        ))
        .unwrap();
        InstanceKey {
            interface: "eth0".into(),
            address: IfAddr { addr: "10.0.0.11".parse().unwrap(), prefix: 24 },
            vrrp,
            watched: Vec::new(),
            group: None,
        }
    }

    #[test]
    fn an_unchanged_instance_is_left_running() {
        let running = [key("A", 100), key("B", 100)];
        let same = restarts(&running, &running);
        assert_eq!(same, Restarts::default());
        let wanted = [key("B", 100), key("A", 90), key("C", 100)];
        let p = restarts(&running, &wanted);
        assert_eq!(
            p,
            Restarts { stop: vec![0], start: vec![1, 2], handed: vec![(0, 1)] },
            "A's priority changed: it hands over to its successor"
        );
        let mut moved = key("B", 100);
        moved.interface = "eth1".into();
        assert_eq!(
            restarts(&running, &[key("A", 100), moved]),
            Restarts { stop: vec![1], start: vec![1], handed: vec![] },
            "another interface is another router: B resigns"
        );
        // A tracked script that changed restarts its instance.
        let mut tracking = key("B", 100);
        tracking.watched = vec![Watched::Script(
            serde_yaml::from_str(
                "{name: chk, command: [/bin/true], interval: 2s}",
            )
            .unwrap(),
        )];
        assert_eq!(
            restarts(&running, &[key("A", 100), tracking]),
            Restarts { stop: vec![1], start: vec![1], handed: vec![(1, 1)] }
        );
    }

    #[test]
    fn only_the_same_router_with_the_same_vips_hands_over() {
        let old = key("A", 100);
        let mut faster = key("A", 100);
        faster.vrrp.advert_int =
            crate::inventory::Duration(Duration::from_millis(100));
        assert!(continues(&old, &faster));
        let mut vrid = key("A", 100);
        vrid.vrrp.virtual_router_id = 52;
        let mut v3 = key("A", 100);
        v3.vrrp.version = 3;
        let mut vips = key("A", 100);
        vips.vrrp.virtual_addresses.clear();
        let mut address = key("A", 100);
        address.address.prefix = 16;
        for other in [key("B", 100), vrid, v3, vips, address] {
            assert!(!continues(&old, &other), "{other:?}");
        }
    }

    #[test]
    fn dad_is_settled_with_a_link_local_and_nothing_tentative() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let global: Ipv6Addr = "fd77::11".parse().unwrap();
        assert!(dad_settled(&[ll, global], false));
        assert!(!dad_settled(&[global], false), "no link-local yet");
        assert!(!dad_settled(&[], true), "link-local tentative");
        assert!(
            !dad_settled(&[ll], true),
            "a tentative unicast peer address may be the one bound"
        );
        let v6 = key("A", 100).vrrp;
        assert!(!speaks_ipv6(&v6));
    }
}
