//! One VRRP instance at work: the thin I/O loop around the pure state
//! machine.
//!
//! ```text
//!  AdvertSocket ──packet──▶ classify (ttl, codec, vrid, auth) ──Event──┐
//!  sleep_until(deadline) ─────────────── timer Event ─────────────────┤
//!  ctl_rx (Stop) ─────────────────────── Shutdown ────────────────────┤
//!  netlink link/address ── fault::fault ── Fault / FaultCleared ──────┤
//!                                                                     ▼
//!                                               fsm::Instance::handle(now, ev)
//!                                                                     │
//!  AdvertSocket ◀─ SendAdvert  Net ◀─ Add/RemoveVips  AnnounceSocket ◀─ GARP/NA
//!  notify hook + log line ◀─ Transition        status ◀─ counters, state
//! ```
//!
//! The loop owns the instance, its sockets and its timers and handles one
//! input at a time; the director's worker talks to it through `ctl_tx`
//! and reads its [`InstanceStatus`] snapshot. Everything that decides is
//! pure and lives beside it: the settings ([`super::settings`]), the
//! receive checks ([`super::receive`]), the fault conditions
//! ([`super::fault`]), the hooks' arguments ([`super::notify`]) and the
//! state machine ([`super::fsm`]), all tested without sockets. Which instances run is the director's
//! ([`crate::agent::director`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::sys::net::{self, Address, Net};
use crate::agent::track::Source;
use crate::agent::vrrp::error::DecodeError;
use crate::agent::vrrp::fault::{Facts, fault};
use crate::agent::vrrp::fsm::{
    self, Action, Announce, Event, State, state_name,
};
use crate::agent::vrrp::notify::{Kind, hooks_for, notify_args, run_hook};
use crate::agent::vrrp::packet::PseudoHeader;
use crate::agent::vrrp::receive::{Received, classify};
use crate::agent::vrrp::reject_log::{LogVerdict, RejectLog};
use crate::agent::vrrp::settings::Settings;
use crate::agent::vrrp::socket::{
    AdvertSocket, AnnounceSocket, Datagram, Destinations,
};
use crate::agent::vrrp::sync::{Member, Members, group_fault, group_state};
use crate::agent::vrrp::tracking::{Tracked, Verdict, verdict};
use crate::agent::{mastership, paths};
use crate::inventory::NotifyHooks;

/// Per-instance counters (RFC 6527's spirit), in the status report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Adverts sent (one per destination).
    pub adverts_sent: u64,
    /// Adverts for our VRID that passed every check and reached the
    /// state machine.
    pub adverts_received: u64,
    /// Packets dropped for a TTL or hop limit other than 255 (RFC 5798
    /// §7.1).
    pub bad_ttl: u64,
    /// Packets dropped for a bad checksum.
    pub bad_checksum: u64,
    /// v2 adverts whose authentication differs from ours.
    pub auth_failures: u64,
    /// Other packets the codec refused (truncated, bad version, type,
    /// count).
    pub other_errors: u64,
    /// Packets from a source that is not one of the instance's peers that
    /// got past the kernel's filter (those queued before it was attached).
    pub strangers: u64,
    /// Adverts or ARPs the kernel refused to send.
    pub send_errors: u64,
    /// VIP additions or removals netlink refused.
    pub vip_errors: u64,
    /// VIPs removed by someone else while master, and put back.
    pub vip_restores: u64,
    /// VIPs added by someone else while not master (left alone).
    pub foreign_vips: u64,
    /// State changes.
    pub transitions: u64,
}

/// What the status shows for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    /// Instance name.
    pub name: String,
    /// Its VRID.
    pub vrid: u8,
    /// `MASTER`, `BACKUP`, `FAULT` or `STOP` (keepalived's words).
    pub state: &'static str,
    /// Why the instance is in fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Our configured priority.
    pub priority: u8,
    /// The priority in force: the configured one moved by tracking.
    pub effective_priority: u8,
    /// The tracked objects and how they fare.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracked: Vec<Tracked>,
    /// Master_Adver_Interval now in force, in milliseconds.
    pub master_adver_interval_ms: u64,
    /// The counters.
    pub counters: Counters,

    // ===== last transition (issue #19, for `lbdeploy status`) =====
    /// The last state change: from what, and when; absent before the
    /// first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition: Option<LastTransition>,
}

/// An instance's last state change, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastTransition {
    /// The state it left (keepalived's words).
    pub from: &'static str,
    /// When, RFC 3339 (UTC).
    pub at: String,
}

impl Counters {
    /// Count a refused packet under its kind.
    pub fn count(&mut self, e: &DecodeError) {
        match Self::reason(e) {
            "bad_ttl" => self.bad_ttl += 1,
            "bad_checksum" => self.bad_checksum += 1,
            "auth_failures" => self.auth_failures += 1,
            _ => self.other_errors += 1,
        }
    }

    /// The counter a refused packet is counted under, by name: the
    /// reason its log lines are rate-limited by.
    pub fn reason(e: &DecodeError) -> &'static str {
        match e {
            DecodeError::BadTtl { .. } => "bad_ttl",
            DecodeError::BadChecksum { .. } => "bad_checksum",
            DecodeError::AuthMismatch { .. }
            | DecodeError::UnsupportedAuthType { .. } => "auth_failures",
            _ => "other_errors",
        }
    }
}

/// An instance entered a state: what the director's forwarding and
/// notifications follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The instance.
    pub instance: String,
    /// `MASTER`, `BACKUP`, … (`state_name`).
    pub state: &'static str,
    /// Our priority in it.
    pub priority: u8,
}

/// What the worker tells a running instance.
#[derive(Debug)]
pub enum InstanceMsg {
    /// Resign (priority-0 advert, VIPs removed) and end the task.
    Stop,
    /// End the task as it stands, for a restart: no priority-0 advert and
    /// no transition, so a master's mark stays for `agent cleanup` to
    /// stamp and its VIPs for it to remove, and the restarted instance
    /// resumes as master before any backup's Master_Down_Interval ends
    /// (`agent::mastership`).
    HandOver,
}

/// A tracked script, file or process as an instance sees it: its weight
/// here and its tracker's state.
#[derive(Debug)]
pub struct TrackedObject {
    /// What it is: `script chk`, `file prio`.
    pub what: String,
    /// keepalived's weight in this instance.
    pub weight: i32,
    /// Whether the weight is negated.
    pub reverse: bool,
    /// Its tracker's state.
    pub source: Source,
}

/// An instance's place in a sync group.
#[derive(Debug, Clone)]
pub struct SyncLink {
    /// The group's name.
    pub group: String,
    /// How many instances it has.
    pub size: usize,
    /// The group's own hooks.
    pub hooks: Option<NotifyHooks>,
    /// The table every member writes to and reads.
    pub table: watch::Sender<Members>,
}

/// A running instance, as the worker holds it.
#[derive(Debug)]
pub struct Handle {
    /// To tell the loop to stop; dropping it stops the loop too.
    pub ctl_tx: mpsc::Sender<InstanceMsg>,
    /// The loop's latest snapshot, for the status report.
    pub status: Arc<Mutex<InstanceStatus>>,
    /// The loop's task; finished means the instance is dead.
    pub task: JoinHandle<()>,
}

/// The kind of timer armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    MasterDown,
    Adver,
}

/// The loop's state: everything one instance owns.
struct Looper {
    s: Settings,
    fsm: fsm::Instance,
    sock: AdvertSocket,
    announcer: AnnounceSocket,
    net: Net,
    epoch: Instant,
    timer: Option<(Duration, Timer)>,
    /// When the second burst of announcements is due, and its size.
    garp_at: Option<(Duration, u32)>,
    counters: Counters,
    /// The last state change, for the status.
    last_transition: Option<LastTransition>,
    /// Which refusals are worth a log line now.
    reject_log: RejectLog,
    status: Arc<Mutex<InstanceStatus>>,
    changes: mpsc::UnboundedSender<StateChange>,
    /// Address events: to keep the VIPs while master, and to notice our
    /// own address going.
    events: net::Events,
    /// Link events, for the fault conditions.
    links: net::Events<net::Link>,
    /// What the kernel last said about the interface.
    facts: Facts,
    /// Why the instance is in fault, if it is.
    fault: Option<String>,
    /// Each tracked interface's name, weight and whether it is up with a
    /// carrier.
    tracked_links: Vec<Tracked>,
    /// Each tracked script's, file's and process's name, weight and
    /// state; and, at the same index, where its tracker publishes it.
    tracked_objects: Vec<Tracked>,
    sources: Vec<Source>,
    /// Its sync group, and the group's table as last seen.
    sync: Option<(SyncLink, watch::Receiver<Members>)>,
    /// It replaces, in the same agent, an instance of the same router
    /// that was master when it handed over (a reload changed its
    /// settings): it resumes as master, keeping the VIPs.
    handed_master: bool,
}

/// Open the instance's sockets and start its loop; its state changes go
/// to `changes`. With `handed_master` it replaces a master of the same
/// router in this agent and resumes as master (unless in fault).
///
/// # Errors
/// When a socket cannot be opened.
pub fn spawn(
    s: Settings,
    watched: Vec<TrackedObject>,
    sync: Option<SyncLink>,
    net: Net,
    changes: mpsc::UnboundedSender<StateChange>,
    handed_master: bool,
) -> std::io::Result<Handle> {
    let sock =
        AdvertSocket::open(&s.interface, s.index, s.local, &s.dst, &s.accept)?;
    let announcer = AnnounceSocket::open(&s.interface)?;
    let fsm = fsm::Instance::new(s.fsm.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let status = Arc::new(Mutex::new(InstanceStatus {
        name: s.name.clone(),
        vrid: s.vrid,
        state: state_name(State::Initialize),
        fault: None,
        priority: s.fsm.priority,
        effective_priority: s.fsm.priority,
        tracked: Vec::new(),
        master_adver_interval_ms: s.fsm.adver_interval.as_millis() as u64,
        counters: Counters::default(),
        last_transition: None,
    }));
    let tracked_links = s
        .track
        .interfaces
        .iter()
        .map(|t| Tracked {
            what: format!("interface {}", t.name),
            weight: t.weight,
            ok: false,
            value: None,
            reverse: false,
        })
        .collect();
    let mut sources: Vec<Source> = Vec::new();
    let mut tracked_objects = Vec::new();
    for mut t in watched {
        let (ok, value) = t.source.seen();
        tracked_objects.push(Tracked {
            what: t.what,
            weight: t.weight,
            ok,
            value,
            reverse: t.reverse,
        });
        sources.push(t.source);
    }
    let (ctl_tx, ctl_rx) = mpsc::channel(1);
    let (name, vrid) = (s.name.clone(), s.vrid);
    let looper = Looper {
        s,
        fsm,
        sock,
        announcer,
        net,
        epoch: Instant::now(),
        timer: None,
        garp_at: None,
        counters: Counters::default(),
        last_transition: None,
        reject_log: RejectLog::default(),
        status: status.clone(),
        changes,
        events: net::subscribe("vrrp"),
        links: net::subscribe_links("vrrp"),
        facts: Facts { up: true, carrier: true, address: true },
        fault: None,
        tracked_links,
        tracked_objects,
        sources,
        sync: sync.map(|link| {
            let rx = link.table.subscribe();
            (link, rx)
        }),
        handed_master,
    };
    // Every line the loop logs names its instance.
    let span = tracing::info_span!("vrrp", instance = %name, vrid);
    let task = tokio::spawn(looper.run(ctl_rx).instrument(span));
    Ok(Handle { ctl_tx, status, task })
}

/// The sync group's table changed; never, without a group.
async fn group_changed(
    sync: &mut Option<(SyncLink, watch::Receiver<Members>)>,
) {
    let Some((_, rx)) = sync else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The index of the first tracker whose state changed; never, without
/// trackers. A tracker gone (its instance is being replaced) is not a
/// change.
async fn changed(states: &mut [Source]) -> usize {
    if states.is_empty() {
        return std::future::pending().await;
    }
    let each = states.iter_mut().enumerate().map(|(i, rx)| {
        Box::pin(async move {
            match rx.changed().await {
                Ok(()) => i,
                Err(_) => std::future::pending().await,
            }
        })
    });
    futures_util::future::select_all(each).await.0
}

impl Looper {
    async fn run(mut self, mut ctl_rx: mpsc::Receiver<InstanceMsg>) {
        if self.s.accept.is_empty() {
            // Said once, so the posture is in the log (see `filter`).
            tracing::info!(
                "adverts are not filtered by source: no peer addresses \
                 configured (IPv6 over multicast, or a lone director); \
                 unicast peers give the kernel's filter"
            );
        }
        let present = match self.net.addresses().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        self.refresh_facts(&present).await;
        if let Verdict::Priority(p) = self.verdict() {
            self.handle(Event::Priority(p)).await;
        }
        self.fault = self.why_fault();
        let interval = self.s.fsm.adver_interval;
        let resume =
            mastership::resumable(&paths::run_dir(), self.s.vrid, interval)
                || self.handed_master;
        // VIPs present now were left by an earlier run, except those of
        // the master this instance replaces in the same agent, which it
        // keeps holding without a gap.
        if !(self.handed_master && self.fault.is_none()) {
            self.remove_stale_vips(&present).await;
        }
        match &self.fault {
            Some(why) => {
                tracing::warn!("cannot start: {why}; in fault until it clears");
                self.handle(Event::Fault).await;
            }
            None if resume => {
                tracing::info!(
                    "{}: resuming as master",
                    if self.handed_master {
                        "replacing the master of the agent's previous \
                         configuration"
                    } else {
                        "restarted within two advert intervals of its \
                         release as master"
                    }
                );
                self.handle(Event::Resume).await;
            }
            None => self.handle(Event::Startup).await,
        }
        let mut buf = vec![0u8; 4096];
        loop {
            let garp_at = self.garp_at.map(|g| g.0);
            let next = match (self.timer.map(|t| t.0), garp_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wake = self.epoch + next.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                // Stop, or the worker is gone: resign either way.
                msg = ctl_rx.recv() => {
                    if let Some(InstanceMsg::HandOver) = msg {
                        tracing::info!(
                            "handing over to the restarted agent: ending as \
                             {} without resigning",
                            state_name(self.fsm.state())
                        );
                        return;
                    }
                    self.handle(Event::Shutdown).await;
                    if let Some((link, _)) = &self.sync {
                        link.table.send_modify(|t| {
                            t.remove(&self.s.name);
                        });
                    }
                    return;
                }
                _ = group_changed(&mut self.sync) => self.reassess().await,
                r = self.sock.recv(&mut buf) => match r {
                    Ok(packet) => self.on_packet(packet).await,
                    Err(e) => {
                        tracing::warn!("receiving: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tokio::time::sleep_until(wake), if next.is_some() => {
                    self.on_deadline().await;
                }
                ev = net::next_event(&mut self.events) => match ev {
                    Some(ev) => self.on_address(ev).await,
                    None => {
                        tracing::warn!("the netlink address watch ended; re-subscribing");
                        self.events = net::subscribe("vrrp");
                        self.resync().await;
                    }
                },
                i = changed(&mut self.sources) => {
                    let (ok, value) = self.sources[i].seen();
                    self.tracked_objects[i].ok = ok;
                    self.tracked_objects[i].value = value;
                    self.reassess().await;
                }
                link = net::next_event(&mut self.links) => match link {
                    Some(link) => self.on_link(&link).await,
                    None => {
                        tracing::warn!("the netlink link watch ended; re-subscribing");
                        self.links = net::subscribe_links("vrrp");
                        self.resync().await;
                    }
                },
            }
        }
    }

    /// A link changed: ours (a fault condition) or a tracked one.
    async fn on_link(&mut self, link: &net::Link) {
        let mut moved = false;
        if link.index == self.s.index {
            self.facts.up = link.up;
            self.facts.carrier = link.carrier;
            moved = true;
        }
        let what = format!("interface {}", link.name);
        for t in self.tracked_links.iter_mut().filter(|t| t.what == what) {
            t.ok = link.up && link.carrier;
            moved = true;
        }
        if moved {
            self.reassess().await;
        }
    }

    /// Read the interface's link state and whether our address is among
    /// `present`, and the tracked links, as at start or after events may
    /// have been lost.
    async fn refresh_facts(&mut self, present: &[Address]) {
        for (t, name) in
            self.tracked_links.iter_mut().zip(&self.s.track.interfaces)
        {
            t.ok = match self.net.link_named(&name.name).await {
                Ok(link) => link.is_some_and(|l| l.up && l.carrier),
                Err(e) => {
                    tracing::warn!("{e}");
                    false
                }
            };
        }
        match self.net.link(self.s.index).await {
            Ok(link) => {
                self.facts.up = link.up;
                self.facts.carrier = link.carrier;
            }
            // The interface is gone (deleted under us).
            Err(e) => {
                tracing::warn!("{e}");
                self.facts.up = false;
                self.facts.carrier = false;
            }
        }
        self.facts.address = present
            .iter()
            .any(|a| a.index == self.s.index && a.ip == self.s.local);
    }

    /// Events may have been lost with a subscription: look again.
    async fn resync(&mut self) {
        match self.net.addresses().await {
            Ok(present) => self.refresh_facts(&present).await,
            Err(e) => tracing::warn!("{e}"),
        }
        self.reassess().await;
    }

    /// What the tracked objects make of the instance.
    fn verdict(&self) -> Verdict {
        verdict(self.s.fsm.priority, &self.tracked())
    }

    /// Every tracked object: interfaces, then scripts.
    fn tracked(&self) -> Vec<Tracked> {
        [self.tracked_links.as_slice(), &self.tracked_objects].concat()
    }

    /// Why the instance cannot work of itself: its own interface first,
    /// then a tracked object of weight 0.
    fn own_fault(&self) -> Option<String> {
        fault(&self.s.interface, self.s.local, self.facts).or(
            match self.verdict() {
                Verdict::Fault(why) => Some(why),
                Verdict::Priority(_) => None,
            },
        )
    }

    /// Why the instance cannot work: of itself, or because another
    /// member of its sync group cannot.
    fn why_fault(&self) -> Option<String> {
        self.own_fault().or_else(|| {
            let (link, rx) = self.sync.as_ref()?;
            group_fault(&link.group, &self.s.name, &rx.borrow())
        })
    }

    /// Tell the sync group our state and own fault; when that puts the
    /// whole group in a new state, run the group's hooks (here, so they
    /// run once: only one member's update completes the group).
    fn tell_group(&self) {
        let Some((link, _)) = &self.sync else { return };
        let me = Member { state: self.fsm.state(), fault: self.own_fault() };
        let mut entered = None;
        link.table.send_if_modified(|t| {
            if t.get(&self.s.name) == Some(&me) {
                return false;
            }
            let before = group_state(t, link.size);
            t.insert(self.s.name.clone(), me);
            let after = group_state(t, link.size);
            if after != before {
                entered = after;
            }
            true
        });
        let Some(to) = entered else { return };
        tracing::info!(group = %link.group, "sync group {} is {}", link.group, state_name(to));
        if let Some(hooks) = &link.hooks {
            let args = notify_args(Kind::Group, &link.group, to, 0);
            for script in hooks_for(hooks, to) {
                run_hook(script, hooks.user.as_ref(), &args);
            }
        }
    }

    /// Follow the facts: the effective priority first (so leaving fault
    /// starts at the right one), then entering or leaving fault.
    async fn reassess(&mut self) {
        if let Verdict::Priority(p) = self.verdict() {
            let old = self.fsm.priority();
            if p != old {
                tracing::info!("priority {old} -> {p} (tracking)");
                self.handle(Event::Priority(p)).await;
            }
        }
        let why = self.why_fault();
        match (&self.fault, &why) {
            (None, Some(reason)) => {
                tracing::warn!("fault: {reason}");
                self.fault = why;
                self.handle(Event::Fault).await;
            }
            (Some(reason), None) => {
                tracing::info!("fault cleared ({reason} no longer)");
                self.fault = None;
                self.handle(Event::FaultCleared).await;
            }
            (Some(old), Some(new)) if old != new => {
                tracing::warn!("still in fault: {new}");
                self.fault = why;
                self.publish();
            }
            _ => {}
        }
        self.tell_group();
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn on_packet(&mut self, packet: Datagram<'_>) {
        let s = &self.s;
        let peers = match &s.dst {
            Destinations::Unicast(peers) => Some(peers.as_slice()),
            Destinations::Multicast(_) => None,
        };
        let now = self.now();
        let got =
            classify(packet, s.vrid, s.local, &s.auth, s.v3, peers, &s.accept);
        match got {
            Received::Advert(ev) => {
                self.counters.adverts_received += 1;
                self.handle(ev).await;
            }
            Received::Rejected(e) => {
                self.counters.count(&e);
                let reason = Counters::reason(&e);
                if let LogVerdict::Log { suppressed } =
                    self.reject_log.admit(reason, now)
                {
                    tracing::warn!(
                        suppressed,
                        "dropped: {e} ({suppressed} more {reason} unlogged)"
                    );
                }
                self.handle(Event::AdvertRejected(e)).await;
            }
            Received::Stranger(src) => {
                self.counters.strangers += 1;
                if let LogVerdict::Log { suppressed } =
                    self.reject_log.admit("strangers", now)
                {
                    tracing::warn!(
                        %src,
                        suppressed,
                        "dropped: a packet from {src}, not a peer of this \
                         instance ({suppressed} more strangers unlogged)"
                    );
                }
            }
            Received::NotOurs => {}
        }
    }

    async fn on_deadline(&mut self) {
        let now = self.now();
        if let Some((_, repeat)) = self.garp_at.filter(|g| now >= g.0) {
            self.garp_at = None;
            self.announce(repeat);
        }
        if let Some((at, kind)) = self.timer.filter(|(at, _)| now >= *at) {
            let _ = at;
            self.timer = None;
            let ev = match kind {
                Timer::MasterDown => Event::MasterDownTimerFired,
                Timer::Adver => Event::AdverTimerFired,
            };
            self.handle(ev).await;
        }
    }

    /// Feed one event to the state machine and carry out its actions in
    /// order, then publish the new snapshot.
    async fn handle(&mut self, ev: Event) {
        let now = self.now();
        for action in self.fsm.handle(now, ev) {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::AddVips => self.vips(true).await,
                Action::RemoveVips => self.vips(false).await,
                Action::SendGratuitousArp(why) => self.announce_for(now, why),
                Action::ArmMasterDownTimer { at } => {
                    self.timer = Some((at, Timer::MasterDown));
                }
                Action::ArmAdverTimer { at } => {
                    self.timer = Some((at, Timer::Adver));
                }
                Action::CancelTimers => self.timer = None,
                Action::Transition { from, to } => self.transition(from, to),
            }
        }
        self.publish();
    }

    fn send_advert(&mut self, priority: u8) {
        let advert = self.s.advert(priority);
        for dst in self.s.dst.addrs() {
            // `Settings::new` keeps peers to `local`'s family.
            let sent = PseudoHeader::new(self.s.local, dst)
                .ok_or_else(|| std::io::Error::other("address family mix"))
                .and_then(|ip| {
                    advert
                        .encode(&ip, self.s.v3)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                })
                .and_then(|msg| self.sock.send(&msg, dst));
            match sent {
                Ok(()) => self.counters.adverts_sent += 1,
                Err(e) => {
                    self.counters.send_errors += 1;
                    tracing::warn!("sending an advert to {dst}: {e}");
                }
            }
        }
    }

    /// Add (or remove) every VIP with its label through rtnetlink.
    async fn vips(&mut self, add: bool) {
        for vip in &self.s.vips {
            let r = if add {
                self.net.add(vip).await
            } else {
                self.net.remove(vip).await
            };
            if let Err(e) = r {
                self.counters.vip_errors += 1;
                tracing::warn!("{e}");
            }
        }
    }

    /// Someone else changed one of our VIPs. While master the VIPs are
    /// ours to keep: one removed (by hand, `ip addr flush`, a network
    /// manager) is put back at once. In any other state a VIP that
    /// appears is reported and left alone: it is not ours to remove.
    ///
    /// Our own address coming or going may start or end a fault.
    async fn on_address(&mut self, ev: net::Event) {
        let (net::Event::Added(a) | net::Event::Removed(a)) = &ev;
        if a.index == self.s.index && a.ip == self.s.local {
            self.facts.address = matches!(ev, net::Event::Added(_));
            self.reassess().await;
            return;
        }
        let Some(vip) = self.s.vips.iter().find(|v| net::same(v, a)).cloned()
        else {
            return;
        };
        let master = self.fsm.state() == State::Master;
        match ev {
            net::Event::Removed(_) if master => {
                match self.net.add(&vip).await {
                    Ok(()) => {
                        self.counters.vip_restores += 1;
                        tracing::warn!(
                            "VIP {}/{} was removed while master; put back",
                            vip.ip,
                            vip.prefix
                        );
                    }
                    Err(e) => {
                        self.counters.vip_errors += 1;
                        tracing::warn!("putting back a removed VIP: {e}");
                    }
                }
                self.publish();
            }
            net::Event::Added(_) if !master => {
                self.counters.foreign_vips += 1;
                tracing::warn!(
                    "VIP {}/{} was added by someone else on this {} \
                     director; left alone",
                    vip.ip,
                    vip.prefix,
                    state_name(self.fsm.state())
                );
                self.publish();
            }
            _ => {}
        }
    }

    /// A backup must not hold the VIPs; an agent killed as master left
    /// them behind (as keepalived does), so take them off before starting.
    async fn remove_stale_vips(&mut self, present: &[Address]) {
        let stale: Vec<Address> = self
            .s
            .vips
            .iter()
            .filter(|v| present.iter().any(|p| net::same(v, p)))
            .cloned()
            .collect();
        for vip in &stale {
            tracing::info!(
                "removing {}/{} left from an earlier run",
                vip.ip,
                vip.prefix
            );
            if let Err(e) = self.net.remove(vip).await {
                self.counters.vip_errors += 1;
                tracing::warn!("{e}");
            }
        }
    }

    /// Announce the VIPs for `why`: one burst now and, unless its delay
    /// is zero, a second one then (replacing one still due).
    fn announce_for(&mut self, now: Duration, why: Announce) {
        let g = self.s.garp;
        let (repeat, delay) = match why {
            Announce::BecameMaster => (g.master_repeat, g.master_delay),
            Announce::LowerPriority => {
                tracing::info!(
                    "a lower priority advert while master: another director \
                     believed it was master; advertising and announcing the \
                     VIPs again"
                );
                (g.lower_priority_repeat, g.lower_priority_delay)
            }
        };
        if repeat == 0 {
            return;
        }
        self.announce(repeat);
        if !delay.get().is_zero() {
            self.garp_at = Some((now + delay.get(), repeat));
        }
    }

    /// One burst of gratuitous ARP (IPv4) or unsolicited Neighbour
    /// Advertisements (IPv6), `repeat` per VIP.
    fn announce(&mut self, repeat: u32) {
        for vip in &self.s.vips {
            for _ in 0..repeat {
                if let Err(e) = self.announcer.announce(vip.ip) {
                    self.counters.send_errors += 1;
                    tracing::warn!("announcing {}: {e}", vip.ip);
                }
            }
        }
    }

    fn transition(&mut self, from: State, to: State) {
        self.counters.transitions += 1;
        self.last_transition = Some(LastTransition {
            from: state_name(from),
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
        });
        let run_dir = paths::run_dir();
        if to == State::Master {
            mastership::became_master(&run_dir, self.s.vrid);
        } else {
            self.garp_at = None;
            mastership::left_master(&run_dir, self.s.vrid);
        }
        let priority = self.fsm.priority();
        tracing::info!(
            "{} -> {} (priority {priority})",
            state_name(from),
            state_name(to)
        );
        // The receiver lives as long as the worker; gone means stopping.
        let _ = self.changes.send(StateChange {
            instance: self.s.name.clone(),
            state: state_name(to),
            priority,
        });
        self.tell_group();
        let Some(hooks) = &self.s.notify else { return };
        let args = notify_args(Kind::Instance, &self.s.name, to, priority);
        for script in hooks_for(hooks, to) {
            run_hook(script, hooks.user.as_ref(), &args);
        }
    }

    fn publish(&self) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.state = state_name(self.fsm.state());
        st.fault.clone_from(&self.fault);
        st.effective_priority = self.fsm.priority();
        st.tracked = self.tracked();
        st.master_adver_interval_ms =
            self.fsm.master_adver_interval().as_millis() as u64;
        st.counters = self.counters;
        st.last_transition.clone_from(&self.last_transition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_packets_are_counted_by_kind() {
        let mut c = Counters::default();
        c.count(&DecodeError::BadChecksum {
            vrid: 51,
            received: 0,
            computed: 1,
        });
        c.count(&DecodeError::BadTtl { vrid: None, ttl: 1 });
        c.count(&DecodeError::AuthMismatch { vrid: 51 });
        c.count(&DecodeError::NoAddresses { vrid: 51 });
        assert_eq!(
            (c.bad_checksum, c.bad_ttl, c.auth_failures, c.other_errors),
            (1, 1, 1, 1)
        );
    }
}
