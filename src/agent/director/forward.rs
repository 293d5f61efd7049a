//! The director's forwarding: health checks decide which real servers are
//! in, VRRP decides whether this director forwards at all, and the data
//! plane carries it out. One task owns all of it and handles one message
//! at a time:
//!
//! ```text
//! vrrp instances ──StateChange──▶ ┌──────────────┐ ──▶ nft table (changes, jumps)
//! health checks ──Transition────▶ │ forward loop │ ──▶ notifications
//! worker ───────config, stop────▶ └──────────────┘ ──▶ status snapshot
//! ```
//!
//! With **IPVS** (where the kernel has it: `dataplane: auto` or `ipvs`) the
//! table is kept on every director, as keepalived does: IPVS only sees
//! packets for a VIP the director holds, so the backup's table is inert
//! and ready. With **nftables** the table is kept on every director too,
//! but made inert: only the services whose VIP belongs to an instance this
//! director is master of are jumped to (see `nft::compile`), so becoming
//! master changes one rule instead of loading millions of map elements.
//! Leaving master keeps forwarding for [`GRACE`] more: clients whose ARP
//! caches still point at this director lose no request while the new
//! master announces itself. Stopping does the same, then removes the
//! table. Checks run on every director, so a backup is warm when it takes
//! over.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::agent::alert::deliver::Alerts;
use crate::agent::alert::event::{Event, What};
use crate::agent::check::quorum::{Quorum, live_weight};
use crate::agent::check::runner::{Checks, Target, Transition};
use crate::agent::dataplane::nft::installer::Applied;
use crate::agent::dataplane::{self, ipvs, neigh, nft};
use crate::agent::vrrp::instance::StateChange;
use crate::agent::{log, paths};
use crate::inventory::Dataplane;
use crate::inventory::agent::DirectorConfig;

/// How long a director keeps forwarding after it stopped being master.
pub const GRACE: Duration = Duration::from_secs(2);

/// How often the table is checked against the kernel's (repairs a table
/// removed or edited by hand, see `nft::verify`) and real-server MACs
/// refreshed.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Probes running at once.
const CHECK_CONCURRENCY: usize = 64;

/// What the worker tells the loop.
#[derive(Debug)]
pub enum Msg {
    /// A new configuration (start, reload).
    Config(Box<DirectorConfig>),
    /// Stop: keep forwarding for [`GRACE`], then remove the table.
    Stop,
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
}

/// The running loop.
#[derive(Debug)]
pub struct Forward {
    /// Messages in.
    pub tx: mpsc::Sender<Msg>,
    /// The loop's latest snapshot.
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// The loop's task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Start the loop; state changes of the VRRP instances arrive on
/// `changes`.
pub fn spawn(changes: mpsc::UnboundedReceiver<StateChange>) -> Forward {
    let (tx, rx) = mpsc::channel(8);
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let task = tokio::spawn(run(rx, changes, snapshot.clone()));
    Forward { tx, snapshot, task }
}

/// Everything the loop owns.
struct Loop {
    config: Option<DirectorConfig>,
    alerts: Alerts,
    checks: Option<Checks>,
    /// Each service's real servers, up or not; keyed by service first so
    /// that a lookup by `&str` allocates nothing.
    health: BTreeMap<String, BTreeMap<IpAddr, bool>>,
    /// Each service's quorum verdict, kept up to date by [`Loop::weigh`].
    quorum: BTreeMap<String, Quorum>,
    masters: BTreeSet<String>,
    /// When the grace after leaving master ends.
    leave_at: Option<Instant>,
    /// The nftables table installed, kept to change only what changes.
    plane: nft::Installer,
    /// Whether the next reconcile also checks the kernel's table.
    recheck_due: bool,
    last_error: Option<String>,
    snapshot: Arc<Mutex<Snapshot>>,
    /// The routing netlink socket for neighbour look-ups, opened once.
    netlink: Option<rtnetlink::Handle>,
}

async fn run(
    mut rx: mpsc::Receiver<Msg>,
    mut changes: mpsc::UnboundedReceiver<StateChange>,
    snapshot: Arc<Mutex<Snapshot>>,
) {
    let (check_tx, mut check_rx) = mpsc::channel::<Transition>(256);
    let mut l = Loop {
        config: None,
        alerts: Alerts::start(None),
        checks: None,
        health: BTreeMap::new(),
        quorum: BTreeMap::new(),
        masters: BTreeSet::new(),
        leave_at: None,
        plane: nft::Installer::default(),
        recheck_due: false,
        last_error: None,
        snapshot,
        netlink: None,
    };
    let mut recheck = tokio::time::interval(RECHECK);
    loop {
        let grace_end = l.leave_at;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Config(c)) => l.configure(*c, check_tx.clone()),
                Some(Msg::Stop) | None => {
                    if l.plane.installed().is_some_and(|t| !t.jumps().is_empty()) {
                        tokio::time::sleep(GRACE).await;
                    }
                    l.withdraw().await;
                    return;
                }
            },
            Some(change) = changes.recv() => l.on_state(change),
            Some(t) = check_rx.recv() => l.on_health(t),
            _ = recheck.tick() => l.recheck_due = true,
            _ = tokio::time::sleep_until(grace_end.unwrap_or_else(Instant::now)),
                if grace_end.is_some() => l.leave_at = None,
        }
        l.reconcile().await;
        l.publish();
    }
}

impl Loop {
    fn configure(
        &mut self,
        config: DirectorConfig,
        tx: mpsc::Sender<Transition>,
    ) {
        self.alerts = Alerts::start(config.notification.clone());
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
        self.checks = Some(Checks::spawn(targets, tx, CHECK_CONCURRENCY));
        self.config = Some(config);
        self.weigh();
    }

    /// Whether real server `address` of `service` passes its checks; a
    /// server not checked yet is up, as keepalived's.
    fn is_up(&self, service: &str, address: IpAddr) -> bool {
        let verdict = self.health.get(service).and_then(|s| s.get(&address));
        verdict.copied().unwrap_or(true)
    }

    /// Whether `service` has quorum.
    fn has_quorum(&self, service: &str) -> bool {
        self.quorum.get(service).is_none_or(Quorum::is_up)
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
            log(&format!(
                "service {service} {} quorum: live weight {}, threshold {}",
                if c.up { "gained" } else { "lost" },
                c.weight,
                c.threshold
            ));
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
        log(&format!(
            "real server {} of {} is {}: {}",
            t.address,
            t.service,
            if t.up { "up" } else { "down" },
            t.reason
        ));
        self.health
            .entry(t.service.clone())
            .or_default()
            .insert(t.address, t.up);
        self.event(What::RealServer {
            service: t.service,
            address: t.address,
            up: t.up,
            reason: t.reason,
        });
        self.weigh();
    }

    /// Make the kernel's table what the state calls for.
    async fn reconcile(&mut self) {
        let Some(config) = self.config.clone() else { return };
        match self.ipvs(&config).await {
            Ok(true) => {
                self.last_error = None;
                return;
            }
            Ok(false) => {}
            Err(e) => {
                self.fail(e);
                return;
            }
        }
        match self.forward(&config).await {
            Ok(()) => self.last_error = None,
            Err(e) => self.fail(e),
        }
    }

    /// Remember a data-plane error, logging it when it is new.
    fn fail(&mut self, e: anyhow::Error) {
        let e = format!("{e:#}");
        if self.last_error.as_ref() != Some(&e) {
            log(&format!("data plane: {e}"));
        }
        self.last_error = Some(e);
    }

    /// Sync the IPVS table when the kernel has IPVS and the configuration
    /// allows it; `Ok(false)` when the nftables back end is to be used.
    async fn ipvs(&mut self, config: &DirectorConfig) -> anyhow::Result<bool> {
        if config.dataplane == Dataplane::Nftables {
            return Ok(false);
        }
        let desired = ipvs::desired(
            config,
            |svc, rs| self.is_up(&svc.name, rs.address),
            |svc| self.has_quorum(&svc.name),
        );
        let forced = config.dataplane == Dataplane::Ipvs;
        let plan = tokio::task::spawn_blocking(move || {
            let mut conn = match ipvs::Ipvs::connect() {
                Ok(c) => c,
                Err(ipvs::client::Error::NoIpvs) if !forced => return Ok(None),
                Err(e) => return Err(anyhow::Error::from(e)),
            };
            let record = ipvs::owned_path(&paths::run_dir());
            ipvs::sync(&mut conn, &desired, &record).map(Some)
        })
        .await??;
        let Some(plan) = plan else { return Ok(false) };
        for op in &plan.ops {
            log(&format!("ipvs: {op}"));
        }
        for f in &plan.foreign {
            log(&format!("ipvs: left alone (not lbdeploy's): {f}"));
        }
        Ok(true)
    }

    /// Keep the nftables table current: every service's real servers, and
    /// the instances forwarded — those this director is master of, or
    /// during the grace after leaving master, those it forwarded before.
    async fn forward(&mut self, config: &DirectorConfig) -> anyhow::Result<()> {
        let forwarding = match (self.leave_at, self.plane.installed()) {
            (Some(_), Some(installed)) => installed.forwarding.clone(),
            _ => self.masters.clone(),
        };
        let rips: Vec<IpAddr> = config
            .virtual_services
            .iter()
            .flat_map(|s| {
                let sorry = s.sorry_server.map(|a| a.ip());
                s.real_servers.iter().map(|r| r.address).chain(sorry)
            })
            .collect();
        let handle = match &self.netlink {
            Some(h) => h.clone(),
            None => {
                let (connection, handle, _) = rtnetlink::new_connection()?;
                tokio::spawn(connection);
                self.netlink = Some(handle.clone());
                handle
            }
        };
        let macs = neigh::resolve(&handle, &rips).await?;
        let own = own_mac(&config.interface)?;
        let rules = dataplane::ruleset(
            config,
            own,
            &macs,
            |svc, ip| self.is_up(&svc.name, ip),
            |svc| self.has_quorum(&svc.name),
            forwarding,
        )?;
        let desired = nft::compile(rules, self.plane.installed());
        let jumps = desired.jumps();
        let before = self.plane.installed().map(nft::Compiled::jumps);
        let applied = self.plane.apply(desired).await?;
        if applied == Applied::Whole || before.as_ref() != Some(&jumps) {
            let forwarded = self
                .plane
                .installed()
                .map_or(0, |t| served(config, &t.forwarding).len());
            log(&format!(
                "data plane: forwarding {forwarded} of {} service(s) on {}",
                config.virtual_services.len(),
                config.interface
            ));
        }
        if std::mem::take(&mut self.recheck_due) {
            self.plane.verify().await?;
        }
        Ok(())
    }

    /// Remove the nftables table: the agent stops.
    async fn withdraw(&mut self) {
        if self.plane.installed().is_some() {
            match self.plane.remove().await {
                Ok(()) => log("data plane: stopped, table removed"),
                Err(e) => log(&format!("data plane: {e:#}")),
            }
        }
    }

    fn publish(&self) {
        let real_servers = self.health.clone();
        let forwarding = match (&self.config, self.plane.installed()) {
            (Some(c), Some(t)) => served(c, &t.forwarding),
            _ => Vec::new(),
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
        };
    }
}

/// The names of the services of `config` whose VIP belongs to one of the
/// `instances`.
fn served(
    config: &DirectorConfig,
    instances: &BTreeSet<String>,
) -> Vec<String> {
    config
        .virtual_services
        .iter()
        .filter(|s| {
            dataplane::instance_of(config, s.vip)
                .is_some_and(|i| instances.contains(i))
        })
        .map(|s| s.name.clone())
        .collect()
}

/// This director's MAC on `interface`.
fn own_mac(interface: &str) -> anyhow::Result<nft::Mac> {
    let path = format!("/sys/class/net/{interface}/address");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
    text.parse().map_err(|e: String| anyhow::anyhow!(e))
}
