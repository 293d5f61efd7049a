//! The director's forwarding: health checks decide which real servers are
//! in, VRRP decides whether this director forwards at all, and the data
//! plane carries it out. One task owns all of it and handles one message
//! at a time:
//!
//! ```text
//! vrrp instances ──StateChange──▶ ┌──────────────┐ ──▶ Dataplane::sync
//! health checks ──Transition────▶ │ forward loop │ ──▶ notifications
//! worker ───────config, stop────▶ └──────────────┘ ──▶ status snapshot
//! ```
//!
//! The data plane is a [`Dataplane`], chosen by `dataplane::choose`
//! from the configuration's `dataplane` (again only when a reload changes
//! it); the loop knows no back end. With **IPVS** the table is kept on
//! every director, as keepalived does, and is inert on a backup. With
//! **nftables** it is kept on every director too, but only the services
//! of the instances this director is master of are jumped to. Leaving
//! master keeps forwarding for `GRACE` more: clients whose ARP caches
//! still point at this director lose no request while the new master
//! announces itself. Stopping does the same, then withdraws the data
//! plane. Checks run on every director, so a backup is warm when it takes
//! over.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::alert::deliver::{Alerts, DeliveryRecord};
use crate::agent::alert::event::{Event, What};
use crate::agent::bgp::announce;
use crate::agent::bgp::speaker::{BgpStatus, Speaker, Want};
use crate::agent::check::quorum::{Quorum, live_weight};
use crate::agent::check::runner::{Checks, Target, Transition};
use crate::agent::dataplane::stats::TrafficByService;
use crate::agent::dataplane::{self, Dataplane, Desired};
use crate::agent::paths;
use crate::agent::vrrp::instance::StateChange;
use crate::inventory::agent::{DirectorConfig, ServiceConfig};
use crate::inventory::{self, BGP_INSTANCE};

/// How long a director keeps forwarding after it stopped being master.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// How often the table is checked against the kernel's (repairs a table
/// removed or edited by hand, see [`Dataplane::recheck`]) and real-server
/// MACs refreshed.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Probes running at once.
const CHECK_CONCURRENCY: usize = 64;

/// What the worker tells the loop.
#[derive(Debug)]
pub enum Msg {
    /// A new configuration (start, reload).
    Config(Box<DirectorConfig>),
    /// Stop: keep forwarding for `GRACE`, then withdraw the data plane.
    Stop,
    /// End at once for a restart, the data plane as it is: `agent
    /// cleanup` removes it before the restarted agent puts it back.
    HandOver,
}

/// What the loop reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Instances this director is master of.
    pub master_of: Vec<String>,
    /// Services forwarded now.
    pub forwarding: Vec<String>,
    /// Real servers by service: `address` → up.
    pub real_servers: BTreeMap<String, BTreeMap<IpAddr, bool>>,
    /// Services by name: whether each has quorum.
    pub quorum: BTreeMap<String, bool>,
    /// The last data-plane error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Configurations taken and reconciled once (the snapshot after it is
    /// published): with [`Forward::sent`], whether the latest one has been
    /// tried yet — until it has, `last_error` may speak of an older one.
    pub configs: u64,
    /// What the data plane counted of each real server, by service;
    /// refreshed at every reconcile, so at most [`RECHECK`] old.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub traffic: TrafficByService,
    /// Why each real server that is down is (its last check's failure),
    /// by service.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub down_because: BTreeMap<String, BTreeMap<IpAddr, String>>,
    /// BGP, on a director with a `bgp:` block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpStatus>,
}

/// The running loop.
#[derive(Debug)]
pub struct Forward {
    /// Messages in.
    pub tx: mpsc::Sender<Msg>,
    /// The loop's latest snapshot.
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// What became of the notifications, kept across reloads.
    pub deliveries: DeliveryRecord,
    /// The loop's task.
    pub task: tokio::task::JoinHandle<()>,
    /// Configurations sent to the loop ([`Forward::configure`]).
    pub sent: u64,
}

impl Forward {
    /// Hand the loop a new configuration (start, reload), counted so that
    /// the status can tell when the loop has tried it
    /// ([`Forward::settling`]).
    pub async fn configure(&mut self, config: DirectorConfig) {
        if self.tx.send(Msg::Config(Box::new(config))).await.is_ok() {
            self.sent += 1;
        }
    }

    /// Whether the loop has not yet reconciled the latest configuration:
    /// a status asked now would judge the data plane by an older one.
    pub fn settling(&self) -> bool {
        let s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        s.configs < self.sent
    }
}

/// Start the loop; state changes of the VRRP instances arrive on
/// `changes`.
pub fn spawn(changes: mpsc::UnboundedReceiver<StateChange>) -> Forward {
    let (tx, rx) = mpsc::channel(8);
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let deliveries = DeliveryRecord::default();
    let run = run(rx, changes, snapshot.clone(), deliveries.clone());
    let task = tokio::spawn(run.in_current_span());
    Forward { tx, snapshot, deliveries, task, sent: 0 }
}

/// Everything the loop owns.
struct Loop {
    config: Option<DirectorConfig>,
    alerts: Alerts,
    deliveries: DeliveryRecord,
    checks: Option<Checks>,
    /// Each service's real servers, up or not; keyed by service first so
    /// that a lookup by `&str` allocates nothing.
    health: BTreeMap<String, BTreeMap<IpAddr, bool>>,
    /// Why each real server that is down is, by service.
    down_because: BTreeMap<String, BTreeMap<IpAddr, String>>,
    /// Each service's quorum verdict, kept up to date by [`Loop::weigh`].
    quorum: BTreeMap<String, Quorum>,
    masters: BTreeSet<String>,
    /// When the grace after leaving master ends.
    leave_at: Option<Instant>,
    /// The data plane, with the `dataplane` setting it was chosen for;
    /// `None` until the first configuration, or while choosing fails.
    plane: Option<(inventory::Dataplane, Box<dyn Dataplane>)>,
    last_error: Option<String>,
    snapshot: Arc<Mutex<Snapshot>>,
    /// Configurations taken (see [`Snapshot::configs`]).
    configs: u64,
    /// BIRD, while the configuration has a `bgp:` block.
    speaker: Option<Speaker>,
}

async fn run(
    mut rx: mpsc::Receiver<Msg>,
    mut changes: mpsc::UnboundedReceiver<StateChange>,
    snapshot: Arc<Mutex<Snapshot>>,
    deliveries: DeliveryRecord,
) {
    let (check_tx, mut check_rx) = mpsc::channel::<Transition>(256);
    let mut l = Loop {
        config: None,
        alerts: Alerts::start(None, deliveries.clone()),
        deliveries,
        checks: None,
        health: BTreeMap::new(),
        down_because: BTreeMap::new(),
        quorum: BTreeMap::new(),
        masters: BTreeSet::new(),
        leave_at: None,
        plane: None,
        last_error: None,
        snapshot,
        configs: 0,
        speaker: None,
    };
    let mut recheck = tokio::time::interval(RECHECK);
    loop {
        let grace_end = l.leave_at;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Config(c)) => l.configure(*c, check_tx.clone()),
                Some(Msg::HandOver) => return,
                Some(Msg::Stop) | None => {
                    let grace = l.withdraw_announcements();
                    if l.plane.as_ref().is_some_and(|(_, p)| p.forwarding()) {
                        tokio::time::sleep(grace).await;
                    }
                    if let Some((_, p)) = l.plane.take() {
                        withdraw(p).await;
                    }
                    if let Some(speaker) = l.speaker.take() {
                        speaker.stop().await;
                    }
                    return;
                }
            },
            Some(change) = changes.recv() => l.on_state(change),
            Some(t) = check_rx.recv() => l.on_health(t),
            _ = recheck.tick() => {
                if let Some((_, p)) = &mut l.plane {
                    p.recheck();
                }
            }
            _ = tokio::time::sleep_until(grace_end.unwrap_or_else(Instant::now)),
                if grace_end.is_some() => l.leave_at = None,
        }
        let forwarding = l.reconcile().await;
        l.publish(forwarding);
    }
}

impl Loop {
    fn configure(
        &mut self,
        config: DirectorConfig,
        tx: mpsc::Sender<Transition>,
    ) {
        self.alerts =
            Alerts::start(config.notification.clone(), self.deliveries.clone());
        if let Some(mut old) = self.checks.take() {
            old.stop();
        }
        let targets: Vec<Target> = config
            .virtual_services
            .iter()
            .flat_map(|svc| {
                svc.real_servers.iter().map(|rs| Target {
                    service: svc.name.clone(),
                    address: rs.address,
                    port: rs.port.get() as u16,
                    delay_loop: svc.delay_loop.get(),
                    checks: rs.checks.clone(),
                    weight: rs.weight,
                })
            })
            .collect();
        // Servers start up (keepalived's behaviour); known verdicts of
        // servers still configured are kept.
        let mut health: BTreeMap<String, BTreeMap<IpAddr, bool>> =
            BTreeMap::new();
        for t in &targets {
            let known =
                self.health.get(&t.service).and_then(|s| s.get(&t.address));
            health
                .entry(t.service.clone())
                .or_default()
                .insert(t.address, known.copied().unwrap_or(true));
        }
        self.health = health;
        // The reasons of servers still configured and still down.
        let health = &self.health;
        self.down_because.retain(|service, servers| {
            servers.retain(|ip, _| !is_up(health, service, *ip));
            !servers.is_empty()
        });
        self.checks = Some(Checks::spawn(targets, tx, CHECK_CONCURRENCY));
        match (config.bgp.is_some(), self.speaker.take()) {
            (true, None) => {
                self.speaker = Some(Speaker::spawn(&paths::run_dir()));
            }
            (true, kept @ Some(_)) => self.speaker = kept,
            (false, Some(old)) => {
                tokio::spawn(old.stop());
            }
            (false, None) => {}
        }
        self.config = Some(config);
        self.configs += 1;
        self.weigh();
    }

    /// Whether real server `address` of `service` passes its checks; a
    /// server not checked yet is up, as keepalived's.
    fn is_up(&self, service: &str, address: IpAddr) -> bool {
        is_up(&self.health, service, address)
    }

    /// Bring every service's quorum verdict up to date with the real
    /// servers' health, notifying each gain and loss. A service new to the
    /// configuration, or whose quorum settings changed, starts over with
    /// keepalived's start-up rule, and is notified if it starts without.
    fn weigh(&mut self) {
        let Some(config) = &self.config else { return };
        let mut next = BTreeMap::new();
        let mut changes = Vec::new();
        for svc in &config.virtual_services {
            let live = live_weight(svc, |ip| self.is_up(&svc.name, ip));
            let fresh = Quorum::new(svc.quorum, svc.hysteresis, live);
            let q = match self.quorum.get(&svc.name) {
                Some(old) if old.same_settings(&fresh) => {
                    let mut q = *old;
                    changes
                        .extend(q.update(live).map(|c| (svc.name.clone(), c)));
                    q
                }
                _ => {
                    changes.extend(
                        fresh.at_start(live).map(|c| (svc.name.clone(), c)),
                    );
                    fresh
                }
            };
            next.insert(svc.name.clone(), q);
        }
        self.quorum = next;
        for (service, c) in changes {
            let (weight, threshold) = (c.weight, c.threshold);
            if c.up {
                tracing::info!(
                    %service,
                    "service {service} gained quorum: live weight {weight}, \
                     threshold {threshold}"
                );
            } else {
                tracing::warn!(
                    %service,
                    "service {service} lost quorum: live weight {weight}, \
                     threshold {threshold}"
                );
            }
            self.event(What::Quorum {
                service,
                up: c.up,
                weight: c.weight,
                threshold: c.threshold,
            });
        }
    }

    fn event(&self, what: What) {
        let Some(c) = &self.config else { return };
        self.alerts.send(Event {
            cluster: c.cluster.clone(),
            host: c.host.clone(),
            time: humantime::format_rfc3339_seconds(
                std::time::SystemTime::now(),
            )
            .to_string(),
            what,
        });
    }

    fn on_state(&mut self, change: StateChange) {
        let was_master = !self.masters.is_empty();
        if change.state == "MASTER" {
            self.masters.insert(change.instance.clone());
        } else {
            self.masters.remove(&change.instance);
        }
        if was_master && self.masters.is_empty() {
            self.leave_at = Some(Instant::now() + GRACE);
        }
        if !self.masters.is_empty() {
            self.leave_at = None;
        }
        self.event(What::Vrrp {
            instance: change.instance,
            state: change.state.to_lowercase(),
            priority: change.priority,
        });
    }

    fn on_health(&mut self, t: Transition) {
        let (address, service, reason) = (t.address, &t.service, &t.reason);
        if t.up {
            tracing::info!(
                %service, rip = %address,
                "real server {address} of {service} is up: {reason}"
            );
        } else {
            tracing::warn!(
                %service, rip = %address,
                "real server {address} of {service} is down: {reason}"
            );
        }
        self.health
            .entry(t.service.clone())
            .or_default()
            .insert(t.address, t.up);
        let reasons = self.down_because.entry(t.service.clone()).or_default();
        match t.up {
            true => {
                reasons.remove(&t.address);
            }
            false => {
                reasons.insert(t.address, t.reason.clone());
            }
        }
        self.event(What::RealServer {
            service: t.service,
            address: t.address,
            up: t.up,
            reason: t.reason,
        });
        self.weigh();
    }

    /// Make the kernel's table what the state calls for; the services
    /// it forwards now, which are announced and published.
    async fn reconcile(&mut self) -> Vec<String> {
        let Some(config) = self.config.clone() else { return Vec::new() };
        let Some(mut plane) = self.choose(config.dataplane).await else {
            return Vec::new();
        };
        let (health, quorum) = (&self.health, &self.quorum);
        // Services announced over BGP are forwarded by every director,
        // as if it were their instance's master.
        let mut masters = self.masters.clone();
        if config.bgp.is_some() {
            masters.insert(BGP_INSTANCE.to_owned());
        }
        let desired = Desired {
            config: &config,
            up: &|svc: &ServiceConfig, ip| is_up(health, &svc.name, ip),
            has_quorum: &|svc: &ServiceConfig| has_quorum(quorum, &svc.name),
            masters: &masters,
            leaving: self.leave_at.is_some(),
        };
        let started = Instant::now();
        let result = plane.sync(&desired).await;
        dataplane::stats::observe(started.elapsed(), result.is_ok());
        let ok = result.is_ok();
        let forwarding = plane.report(&config);
        self.plane = Some((config.dataplane, plane));
        match result {
            Ok(()) => self.last_error = None,
            Err(e) => self.fail(e),
        }
        self.announce(&config, ok, &forwarding);
        forwarding
    }

    /// Tell BIRD which VIPs to announce: those this director forwards
    /// now ([`announce::announced`]), none when `can` is false.
    fn announce(
        &self,
        config: &DirectorConfig,
        can: bool,
        forwarding: &[String],
    ) {
        let (Some(speaker), Some(b)) = (&self.speaker, &config.bgp) else {
            return;
        };
        let quorum = &self.quorum;
        speaker.want(Want {
            host: config.host.clone(),
            address: config.address.addr,
            bgp: b.clone(),
            vips: announce::vips(config),
            announced: announce::announced(config, can, forwarding, |s| {
                has_quorum(quorum, s)
            }),
        });
    }

    /// On stop: withdraw every VIP announced over BGP first, so that the
    /// routers stop sending flows here, then keep forwarding for what is
    /// returned — the longer of [`GRACE`] and `bgp.drain_grace` when
    /// something was announced.
    fn withdraw_announcements(&self) -> Duration {
        let Some(config) = self.config.clone() else { return GRACE };
        let announced = self
            .speaker
            .as_ref()
            .is_some_and(|s| !s.status().announced.is_empty());
        self.announce(&config, false, &[]);
        match (&config.bgp, announced) {
            (Some(b), true) => {
                tracing::info!(
                    "bgp: withdrawn; forwarding for {} more",
                    b.drain_grace
                );
                GRACE.max(b.drain_grace.get())
            }
            _ => GRACE,
        }
    }

    /// The data plane for `setting`, taken out of the loop for one sync:
    /// the one running, or a new one when there is none or a reload
    /// changed the setting (the old one is withdrawn first). `None` when
    /// choosing failed, which is reported; the next change tries again.
    async fn choose(
        &mut self,
        setting: inventory::Dataplane,
    ) -> Option<Box<dyn Dataplane>> {
        match self.plane.take() {
            Some((was, plane)) if was == setting => return Some(plane),
            Some((_, old)) => withdraw(old).await,
            None => {}
        }
        match dataplane::choose(setting).await {
            Ok(plane) => Some(plane),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Remember a data-plane error, logging it when it is new.
    fn fail(&mut self, e: anyhow::Error) {
        let e = format!("{e:#}");
        if self.last_error.as_ref() != Some(&e) {
            tracing::warn!("data plane: {e}");
        }
        self.last_error = Some(e);
    }

    /// The snapshot after a reconcile, with the services it left
    /// `forwarding`.
    fn publish(&self, forwarding: Vec<String>) {
        let real_servers = self.health.clone();
        let traffic = match (&self.config, &self.plane) {
            (Some(c), Some((_, p))) => p.traffic(c),
            _ => Default::default(),
        };
        let mut s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        *s = Snapshot {
            master_of: self.masters.iter().cloned().collect(),
            forwarding,
            real_servers,
            quorum: self
                .quorum
                .iter()
                .map(|(name, q)| (name.clone(), q.is_up()))
                .collect(),
            last_error: self.last_error.clone(),
            configs: self.configs,
            traffic,
            down_because: self
                .down_because
                .iter()
                .filter(|(_, servers)| !servers.is_empty())
                .map(|(s, servers)| (s.clone(), servers.clone()))
                .collect(),
            bgp: self.speaker.as_ref().map(Speaker::status),
        };
    }
}

/// Whether real server `address` of `service` passes its checks in
/// `health`; a server not checked yet is up, as keepalived's.
fn is_up(
    health: &BTreeMap<String, BTreeMap<IpAddr, bool>>,
    service: &str,
    address: IpAddr,
) -> bool {
    let verdict = health.get(service).and_then(|s| s.get(&address));
    verdict.copied().unwrap_or(true)
}

/// Whether `service` has quorum in `quorum`; one not weighed yet has.
fn has_quorum(quorum: &BTreeMap<String, Quorum>, service: &str) -> bool {
    quorum.get(service).is_none_or(Quorum::is_up)
}

/// Withdraw a data plane: the agent stops, or a reload chose another.
async fn withdraw(mut plane: Box<dyn Dataplane>) {
    match plane.withdraw().await {
        Ok(true) => tracing::info!("data plane: stopped, table removed"),
        Ok(false) => {}
        Err(e) => tracing::warn!("data plane: {e:#}"),
    }
}
