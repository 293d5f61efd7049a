//! One VRRP instance at work: the thin loop around the pure state machine.
//!
//! ```text
//!  AdvertSocket ──packet──▶ classify (ttl, codec, vrid, auth) ──Event──┐
//!  sleep_until(deadline) ─────────────── timer Event ─────────────────┤
//!  ctl_rx (Stop) ─────────────────────── Shutdown ────────────────────┤
//!                                                                     ▼
//!                                               fsm::Instance::handle(now, ev)
//!                                                                     │
//!  AdvertSocket ◀─ SendAdvert  Net ◀─ Add/RemoveVips  AnnounceSocket ◀─ GARP/NA
//!  notify hook + log line ◀─ Transition        status ◀─ counters, state
//! ```
//!
//! The loop owns the instance, its sockets and its timers and handles one
//! input at a time; the worker talks to it through `ctl_tx` and reads its
//! [`InstanceStatus`] snapshot. Everything that decides is a pure function
//! here ([`Settings::new`], [`classify`], [`notify_args`]) or in
//! [`crate::agent::vrrp::fsm`], tested without sockets.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::agent::log;
use crate::agent::sys::net::{self, Address, Net};
use crate::agent::vrrp::error::DecodeError;
use crate::agent::vrrp::fsm::{self, Action, Event, State};
use crate::agent::vrrp::ipv4::decode_ipv4_packet;
use crate::agent::vrrp::ipv6::decode_ipv6_message;
use crate::agent::vrrp::packet::{
    Addrs, Advert, AdvertV2, AdvertV3, Auth, PseudoHeader, V3Checksum, Version,
};
use crate::agent::vrrp::socket::{
    AdvertSocket, AnnounceSocket, Datagram, Destinations,
};
use crate::inventory::agent::VrrpConfig;
use crate::inventory::{IfAddr, NotifyHooks};

/// Gratuitous ARPs (or, for IPv6, unsolicited Neighbour Advertisements)
/// per VIP sent at once on becoming master, and again after
/// [`GARP_MASTER_DELAY`]: keepalived's `garp_master_repeat` default, which
/// it applies to both.
pub const GARP_MASTER_REPEAT: usize = 5;
/// When the second burst of announcements goes out, for switches that
/// missed the first: keepalived's `garp_master_delay` default.
pub const GARP_MASTER_DELAY: Duration = Duration::from_secs(5);

/// Everything an instance needs, checked and resolved before any socket is
/// opened, so a bad configuration fails `apply` with nothing half started.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Instance name, for logs and notify hooks.
    pub name: String,
    /// The VRID adverts are matched by.
    pub vrid: u8,
    /// The interface VRRP and the VIPs live on.
    pub interface: String,
    /// Its index: the scope of link-local addresses.
    pub index: u32,
    /// Our primary address there, of the VIPs' family: advert source and
    /// election tie-breaker. For IPv6 the interface's link-local address
    /// (RFC 5798 §5.1.2.1).
    pub local: IpAddr,
    /// The state machine's settings.
    pub fsm: fsm::Config,
    /// What adverts must carry (v2 PASS), and what ours carry.
    pub auth: Auth,
    /// How a v3 checksum is computed.
    pub v3: V3Checksum,
    /// Where adverts go.
    pub dst: Destinations,
    /// The VIPs (interface index filled in by the caller).
    pub vips: Vec<Address>,
    /// Scripts run on transitions.
    pub notify: Option<NotifyHooks>,
}

impl Settings {
    /// Resolve an instance of the agent's configuration on `interface`
    /// (index `index`), whose addresses are `address` (the director's own,
    /// from the inventory) and `ipv6` (the interface's IPv6 addresses now).
    /// The VIPs choose the family the instance speaks.
    ///
    /// An IPv6 instance speaks from the interface's link-local address
    /// (RFC 5798 §5.1.2.1) when it multicasts. With unicast peers it
    /// speaks from the one peer address that is the interface's own — the
    /// inventory lists every director's IPv6 address there, as for IPv4,
    /// but knows no director's IPv6 address to leave out — and sends to
    /// the others, as keepalived's `unicast_src_ip` and `unicast_peer` do.
    ///
    /// # Errors
    /// A message naming the instance: VIPs of both families, an IPv6
    /// instance that is not version 3, has no link-local address to speak
    /// from or none of whose unicast peers is this interface's, an IPv4 one
    /// on a director without an IPv4 address, a password longer than 8
    /// bytes, a version other than 2 or 3, settings the state machine
    /// refuses.
    pub fn new(
        interface: &str,
        index: u32,
        address: IfAddr,
        ipv6: &[Ipv6Addr],
        c: &VrrpConfig,
    ) -> Result<Self, String> {
        let fail = |what: String| format!("vrrp instance {}: {what}", c.name);
        let version = match c.version {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(fail(format!("unknown vrrp version {v}"))),
        };
        let vips = &c.virtual_addresses;
        let v6 = vips.iter().any(|v| v.address.addr.is_ipv6());
        if v6 && vips.iter().any(|v| v.address.addr.is_ipv4()) {
            return Err(fail(
                "mixes IPv4 and IPv6 VIPs; an instance speaks one family \
                 (RFC 5798 §5.2.5)"
                    .into(),
            ));
        }
        let mut peers = c.unicast_peers.clone();
        let local = match (v6, version, address.addr) {
            (true, Version::V2, _) => {
                return Err(fail("VRRPv2 cannot carry IPv6 VIPs".into()));
            }
            (true, Version::V3, _) if !peers.is_empty() => {
                let own = peers
                    .iter()
                    .position(
                        |p| matches!(p, IpAddr::V6(p) if ipv6.contains(p)),
                    )
                    .ok_or_else(|| {
                        fail(format!(
                            "none of the unicast peers is an address of \
                             {interface}: list this director's own IPv6 \
                             address among them, as for the others"
                        ))
                    })?;
                peers.remove(own)
            }
            (true, Version::V3, _) => {
                IpAddr::V6(link_local(ipv6).ok_or_else(|| {
                    fail(format!(
                        "{interface} has no usable IPv6 link-local address to \
                         send adverts from (is IPv6 disabled on it, or did \
                         duplicate address detection fail?)"
                    ))
                })?)
            }
            (false, _, IpAddr::V4(a)) => IpAddr::V4(a),
            (false, _, IpAddr::V6(a)) => {
                return Err(fail(format!(
                    "IPv4 VIPs need an IPv4 address on {interface}, and \
                     this director's is {a}"
                )));
            }
        };
        let auth = match (&c.password, version) {
            (Some(p), Version::V2) => {
                Auth::pass(p.as_bytes()).ok_or_else(|| {
                    fail("the password is longer than 8 bytes".into())
                })?
            }
            _ => Auth::None,
        };
        if let Some(p) = peers.iter().find(|p| p.is_ipv6() != v6) {
            return Err(fail(format!(
                "unicast peer {p} is not of the VIPs' address family"
            )));
        }
        let vips: Vec<Address> = vips
            .iter()
            .map(|v| Address {
                index,
                ip: v.address.addr,
                prefix: v.address.prefix,
                label: v.label.clone(),
            })
            .collect();
        if vips.is_empty() {
            return Err(fail("no virtual address".into()));
        }
        let fsm = fsm::Config {
            version,
            priority: c.priority,
            adver_interval: c.advert_int.get(),
            preempt: c.preempt,
            preempt_delay: c.preempt_delay.map(|d| d.get()).unwrap_or_default(),
            primary_addr: local,
        };
        fsm::Instance::new(fsm.clone()).map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            name: c.name.clone(),
            vrid: c.virtual_router_id,
            interface: interface.to_owned(),
            index,
            local,
            fsm,
            auth,
            v3: if c.v3_checksum_as_v2 {
                V3Checksum::AsV2
            } else {
                V3Checksum::Rfc5798
            },
            dst: if c.unicast_peers.is_empty() {
                Destinations::multicast_for(local)
            } else {
                Destinations::Unicast(peers)
            },
            vips,
            notify: c.notify.clone(),
        })
    }

    /// Our advert with `priority` (ours, or 0 when leaving).
    pub fn advert(&self, priority: u8) -> Advert {
        // `new` checked that every VIP is of `local`'s family.
        let v4 = self.vips.iter().filter_map(|v| match v.ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        });
        let v6 = self.vips.iter().filter_map(|v| match v.ip {
            IpAddr::V4(_) => None,
            IpAddr::V6(a) => Some(a),
        });
        let interval = self.fsm.adver_interval;
        match self.fsm.version {
            Version::V2 => Advert::V2(AdvertV2 {
                vrid: self.vrid,
                priority,
                // `Instance::new` checked 1–255 whole seconds.
                adver_int: interval.as_secs() as u8,
                auth: self.auth.clone(),
                addrs: v4.collect(),
            }),
            Version::V3 => Advert::V3(AdvertV3 {
                vrid: self.vrid,
                priority,
                // `Instance::new` checked 10 ms steps up to 40.95 s.
                max_adver_int: (interval.as_millis() / 10) as u16,
                addrs: match self.local {
                    IpAddr::V4(_) => Addrs::V4(v4.collect()),
                    IpAddr::V6(_) => Addrs::V6(v6.collect()),
                },
            }),
        }
    }
}

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
    /// Adverts or ARPs the kernel refused to send.
    pub send_errors: u64,
    /// VIP additions or removals netlink refused.
    pub vip_errors: u64,
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
    /// `MASTER`, `BACKUP` or `STOP` (keepalived's words).
    pub state: &'static str,
    /// Our priority.
    pub priority: u8,
    /// Master_Adver_Interval now in force, in milliseconds.
    pub master_adver_interval_ms: u64,
    /// The counters.
    pub counters: Counters,
}

/// The word keepalived uses for a state, in notify hooks and the status.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "STOP",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
    }
}

/// What a received packet is to the instance whose VRID is `vrid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A valid advert: feed it to the state machine.
    Advert(Event),
    /// A packet for us that was refused: count it; the state machine is
    /// told too ([`Event::AdvertRejected`]) and changes nothing.
    Rejected(DecodeError),
    /// Another VRID, our own advert, or not VRRP: ignore it.
    NotOurs,
}

/// Classify one packet read from the raw socket: outer header, TTL, codec,
/// VRID, authentication, in RFC 5798 §7.1's order. With unicast `peers`,
/// only their adverts count, and an IPv6 advert's hop limit is not checked
/// (see [`decode_ipv6_message`]). Pure.
pub fn classify(
    packet: Datagram<'_>,
    vrid: u8,
    local: IpAddr,
    auth: &Auth,
    v3: V3Checksum,
    peers: Option<&[IpAddr]>,
) -> Received {
    let decoded = match packet {
        Datagram::V4(p) => decode_ipv4_packet(p, v3)
            .map(|(header, advert)| (IpAddr::V4(header.src), advert)),
        Datagram::V6(meta, msg) => {
            decode_ipv6_message(&meta, msg, peers.is_none())
                .map(|advert| (IpAddr::V6(meta.src), advert))
        }
    };
    match decoded {
        Ok((src, _)) if src == local => Received::NotOurs,
        Ok((src, _)) if peers.is_some_and(|p| !p.contains(&src)) => {
            Received::NotOurs
        }
        Ok((_, advert)) if advert.vrid() != vrid => Received::NotOurs,
        Ok((src, advert)) => match advert.verify_auth(auth) {
            Ok(()) => Received::Advert(Event::advert(src, &advert)),
            Err(e) => Received::Rejected(e),
        },
        // Errors before the VRID is known (not VRRP, a broken header) are
        // nobody's; those with another VRID are another instance's.
        Err(e) if e.vrid() == Some(vrid) => Received::Rejected(e),
        Err(_) => Received::NotOurs,
    }
}

impl Counters {
    /// Count a refused packet under its kind.
    pub fn count(&mut self, e: &DecodeError) {
        match e {
            DecodeError::BadTtl { .. } => self.bad_ttl += 1,
            DecodeError::BadChecksum { .. } => self.bad_checksum += 1,
            DecodeError::AuthMismatch { .. }
            | DecodeError::UnsupportedAuthType { .. } => {
                self.auth_failures += 1
            }
            _ => self.other_errors += 1,
        }
    }
}

/// The arguments a notify hook gets, as keepalived's `notify` script
/// does: `INSTANCE NAME STATE PRIORITY`.
pub fn notify_args(name: &str, to: State, priority: u8) -> [String; 4] {
    [
        "INSTANCE".into(),
        name.into(),
        state_name(to).into(),
        priority.to_string(),
    ]
}

/// The lowest unicast link-local address among `ipv6`, so every start
/// picks the same one should there be several: what VRRP over IPv6
/// multicasts from (RFC 5798 §5.1.2.1).
pub fn link_local(ipv6: &[Ipv6Addr]) -> Option<Ipv6Addr> {
    ipv6.iter().copied().filter(Ipv6Addr::is_unicast_link_local).min()
}

/// The hooks to run on entering `to`: the state's own, then `any`.
pub fn hooks_for(hooks: &NotifyHooks, to: State) -> Vec<&str> {
    let own = match to {
        State::Master => hooks.master.as_deref(),
        State::Backup => hooks.backup.as_deref(),
        State::Initialize => None,
    };
    own.into_iter().chain(hooks.any.as_deref()).collect()
}

/// An instance entered a state: what the director's forwarding and
/// notifications follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The instance.
    pub instance: String,
    /// `MASTER`, `BACKUP`, … ([`state_name`]).
    pub state: &'static str,
    /// Our priority in it.
    pub priority: u8,
}

/// What the worker tells a running instance.
#[derive(Debug)]
pub enum InstanceMsg {
    /// Resign (priority-0 advert, VIPs removed) and end the task.
    Stop,
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
    garp_at: Option<Duration>,
    counters: Counters,
    status: Arc<Mutex<InstanceStatus>>,
    changes: mpsc::UnboundedSender<StateChange>,
}

/// Open the instance's sockets and start its loop; its state changes go
/// to `changes`.
///
/// # Errors
/// When a socket cannot be opened.
pub fn spawn(
    s: Settings,
    net: Net,
    changes: mpsc::UnboundedSender<StateChange>,
) -> std::io::Result<Handle> {
    let sock = AdvertSocket::open(&s.interface, s.index, s.local, &s.dst)?;
    let announcer = AnnounceSocket::open(&s.interface)?;
    let fsm = fsm::Instance::new(s.fsm.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let status = Arc::new(Mutex::new(InstanceStatus {
        name: s.name.clone(),
        vrid: s.vrid,
        state: state_name(State::Initialize),
        priority: s.fsm.priority,
        master_adver_interval_ms: s.fsm.adver_interval.as_millis() as u64,
        counters: Counters::default(),
    }));
    let (ctl_tx, ctl_rx) = mpsc::channel(1);
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
        status: status.clone(),
        changes,
    };
    let task = tokio::spawn(looper.run(ctl_rx));
    Ok(Handle { ctl_tx, status, task })
}

impl Looper {
    async fn run(mut self, mut ctl_rx: mpsc::Receiver<InstanceMsg>) {
        self.remove_stale_vips().await;
        self.handle(Event::Startup).await;
        let mut buf = vec![0u8; 4096];
        loop {
            let next = match (self.timer.map(|t| t.0), self.garp_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wake = self.epoch + next.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                // Stop, or the worker is gone: resign either way.
                _ = ctl_rx.recv() => {
                    self.handle(Event::Shutdown).await;
                    return;
                }
                r = self.sock.recv(&mut buf) => match r {
                    Ok(packet) => self.on_packet(packet).await,
                    Err(e) => {
                        log(&format!("vrrp {}: receiving: {e}", self.s.name));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tokio::time::sleep_until(wake), if next.is_some() => {
                    self.on_deadline().await;
                }
            }
        }
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
        match classify(packet, s.vrid, s.local, &s.auth, s.v3, peers) {
            Received::Advert(ev) => {
                self.counters.adverts_received += 1;
                self.handle(ev).await;
            }
            Received::Rejected(e) => {
                self.counters.count(&e);
                log(&format!("vrrp {}: dropped: {e}", s.name));
                self.handle(Event::AdvertRejected(e)).await;
            }
            Received::NotOurs => {}
        }
    }

    async fn on_deadline(&mut self) {
        let now = self.now();
        if self.garp_at.is_some_and(|g| now >= g) {
            self.garp_at = None;
            self.announce();
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
                Action::SendGratuitousArp => {
                    self.announce();
                    self.garp_at = Some(now + GARP_MASTER_DELAY);
                }
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
                    log(&format!(
                        "vrrp {}: sending an advert to {dst}: {e}",
                        self.s.name
                    ));
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
                log(&format!("vrrp {}: {e}", self.s.name));
            }
        }
    }

    /// A backup must not hold the VIPs; an agent killed as master left
    /// them behind (as keepalived does), so take them off before starting.
    async fn remove_stale_vips(&mut self) {
        let present = match self.net.addresses().await {
            Ok(p) => p,
            Err(e) => {
                log(&format!("vrrp {}: {e}", self.s.name));
                return;
            }
        };
        let stale: Vec<Address> = self
            .s
            .vips
            .iter()
            .filter(|v| present.iter().any(|p| net::same(v, p)))
            .cloned()
            .collect();
        for vip in &stale {
            log(&format!(
                "vrrp {}: removing {}/{} left from an earlier run",
                self.s.name, vip.ip, vip.prefix
            ));
            if let Err(e) = self.net.remove(vip).await {
                self.counters.vip_errors += 1;
                log(&format!("vrrp {}: {e}", self.s.name));
            }
        }
    }

    /// One burst of gratuitous ARP (IPv4) or unsolicited Neighbour
    /// Advertisements (IPv6), [`GARP_MASTER_REPEAT`] per VIP.
    fn announce(&mut self) {
        for vip in &self.s.vips {
            for _ in 0..GARP_MASTER_REPEAT {
                if let Err(e) = self.announcer.announce(vip.ip) {
                    self.counters.send_errors += 1;
                    log(&format!(
                        "vrrp {}: announcing {}: {e}",
                        self.s.name, vip.ip
                    ));
                }
            }
        }
    }

    fn transition(&mut self, from: State, to: State) {
        self.counters.transitions += 1;
        if to != State::Master {
            self.garp_at = None;
        }
        let priority = self.s.fsm.priority;
        log(&format!(
            "vrrp {} (vrid {}): {} -> {} (priority {priority})",
            self.s.name,
            self.s.vrid,
            state_name(from),
            state_name(to)
        ));
        // The receiver lives as long as the worker; gone means stopping.
        let _ = self.changes.send(StateChange {
            instance: self.s.name.clone(),
            state: state_name(to),
            priority,
        });
        let Some(hooks) = &self.s.notify else { return };
        let args = notify_args(&self.s.name, to, priority);
        for script in hooks_for(hooks, to) {
            run_hook(script, &args);
        }
    }

    fn publish(&self) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.state = state_name(self.fsm.state());
        st.master_adver_interval_ms =
            self.fsm.master_adver_interval().as_millis() as u64;
        st.counters = self.counters;
    }
}

/// Run a notify hook in the background, as keepalived does: through the
/// shell (so the configured string may carry its own arguments), with the
/// transition appended, reaped by a task that logs a failure.
fn run_hook(script: &str, args: &[String; 4]) {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("exec {script} \"$@\"")).arg("sh").args(args);
    let script = script.to_owned();
    match cmd.spawn() {
        Ok(mut child) => {
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => log(&format!("notify hook {script}: {s}")),
                    Err(e) => log(&format!("notify hook {script}: {e}")),
                }
            });
        }
        Err(e) => log(&format!("notify hook {script}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::agent::vrrp::ipv6::Ipv6Meta;
    use crate::agent::vrrp::packet::{MULTICAST_V6, TTL};

    fn config() -> VrrpConfig {
        serde_yaml::from_str(
            "name: VI_1\nvirtual_router_id: 51\nversion: 2\nadvert_int: 1s\n\
             priority: 120\npreempt: true\npassword: secret\n\
             virtual_addresses: [{address: 10.0.0.200/24, label: eth0:1}]\n",
        )
        .unwrap()
    }

    fn local() -> IfAddr {
        IfAddr { addr: "10.0.0.11".parse().unwrap(), prefix: 24 }
    }

    /// The interface's IPv6 addresses: a global one and the link-local
    /// one adverts multicast from.
    fn ipv6() -> Vec<Ipv6Addr> {
        ["fd00::11", "fe80::11"].map(|a| a.parse().unwrap()).into()
    }

    fn ll() -> Ipv6Addr {
        "fe80::11".parse().unwrap()
    }

    /// `config()` as a v3 instance with IPv6 VIPs.
    fn config_v6() -> VrrpConfig {
        let mut c = config();
        c.version = 3;
        c.password = None;
        c.virtual_addresses = serde_yaml::from_str(
            "[{address: 'fd00::200/64'}, {address: 'fd00::201/64'}]",
        )
        .unwrap();
        c
    }

    /// An IPv4 packet around `msg` as a raw socket delivers it.
    fn ip_packet(src: Ipv4Addr, ttl: u8, msg: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, 112, 0, 0];
        p[2..4].copy_from_slice(&((20 + msg.len()) as u16).to_be_bytes());
        p.extend(src.octets());
        p.extend([224, 0, 0, 18]);
        p.extend(msg);
        p
    }

    #[test]
    fn settings_resolve_the_config() {
        let s = Settings::new("eth0", 7, local(), &ipv6(), &config()).unwrap();
        assert_eq!(s.vips[0].index, 7);
        assert_eq!(s.vips[0].label.as_deref(), Some("eth0:1"));
        assert_eq!(s.local, IpAddr::V4("10.0.0.11".parse().unwrap()));
        assert_eq!(
            s.dst,
            Destinations::Multicast("224.0.0.18".parse().unwrap())
        );
        assert_eq!(s.auth, Auth::pass(b"secret").unwrap());
        let mut c = config();
        c.password = Some("much too long".into());
        let e = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap_err();
        assert!(e.contains("VI_1") && e.contains("8 bytes"), "{e}");
        c.password = None;
        c.unicast_peers = vec!["10.0.0.12".parse().unwrap()];
        let s = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap();
        assert_eq!(s.auth, Auth::None);
        assert_eq!(
            s.dst,
            Destinations::Unicast(vec!["10.0.0.12".parse().unwrap()])
        );
        c.priority = 0;
        assert!(Settings::new("eth0", 7, local(), &ipv6(), &c).is_err());
    }

    #[test]
    fn ipv6_vips_make_an_ipv6_instance_from_the_link_local_address() {
        let s =
            Settings::new("eth0", 7, local(), &ipv6(), &config_v6()).unwrap();
        let ll = IpAddr::V6(ll());
        assert_eq!((s.local, s.fsm.primary_addr), (ll, ll));
        assert_eq!(s.dst, Destinations::Multicast(IpAddr::V6(MULTICAST_V6)));
        let Advert::V3(a) = s.advert(120) else { panic!("v3 expected") };
        assert_eq!(
            a.addrs,
            Addrs::V6(vec![
                "fd00::200".parse().unwrap(),
                "fd00::201".parse().unwrap()
            ])
        );
        let refused = |c: &VrrpConfig, ipv6: &[Ipv6Addr], what: &str| {
            let e = Settings::new("eth0", 7, local(), ipv6, c).unwrap_err();
            assert!(e.contains("VI_1") && e.contains(what), "{e}");
        };
        refused(
            &config_v6(),
            &ipv6()[..1],
            "no usable IPv6 link-local address",
        );
        let mut c = config_v6();
        c.version = 2;
        refused(&c, &ipv6(), "VRRPv2");
        let mut c = config_v6();
        c.unicast_peers = vec!["fd00::12".parse().unwrap()];
        refused(&c, &ipv6(), "none of the unicast peers is an address of eth0");
        let mut c = config_v6();
        c.virtual_addresses.extend(config().virtual_addresses);
        refused(&c, &ipv6(), "mixes IPv4 and IPv6");
        let mut c = config();
        c.unicast_peers = vec!["fd00::12".parse().unwrap()];
        refused(&c, &ipv6(), "fd00::12 is not of the VIPs' address family");
        let v6_director =
            IfAddr { addr: "fd00::11".parse().unwrap(), prefix: 64 };
        let e = Settings::new("eth0", 7, v6_director, &ipv6(), &config())
            .unwrap_err();
        assert!(e.contains("need an IPv4 address on eth0"), "{e}");
    }

    #[test]
    fn ipv6_unicast_speaks_from_the_peer_address_that_is_ours() {
        let mut c = config_v6();
        c.unicast_peers = ["fd00::12", "fd00::11", "fd00::13"]
            .map(|a| a.parse().unwrap())
            .into();
        let s = Settings::new("eth0", 7, local(), &ipv6(), &c).unwrap();
        let own: IpAddr = "fd00::11".parse().unwrap();
        assert_eq!((s.local, s.fsm.primary_addr), (own, own));
        assert_eq!(
            s.dst,
            Destinations::Unicast(
                ["fd00::12", "fd00::13"].map(|a| a.parse().unwrap()).into()
            )
        );
    }

    #[test]
    fn classify_checks_ttl_vrid_auth_and_skips_our_own() {
        let s = Settings::new("eth0", 7, local(), &ipv6(), &config()).unwrap();
        let peer: Ipv4Addr = "10.0.0.12".parse().unwrap();
        let ip =
            PseudoHeader::V4 { src: peer, dst: "224.0.0.18".parse().unwrap() };
        let msg = s.advert(70).encode(&ip, s.v3).unwrap();
        let ok = |p: &[u8]| {
            classify(Datagram::V4(p), 51, s.local, &s.auth, s.v3, None)
        };
        let got = ok(&ip_packet(peer, TTL, &msg));
        assert_eq!(
            got,
            Received::Advert(Event::AdvertReceived {
                from: IpAddr::V4(peer),
                priority: 70,
                max_adver_int: Duration::from_secs(1),
            })
        );
        assert!(matches!(
            ok(&ip_packet(peer, 254, &msg)),
            Received::Rejected(DecodeError::BadTtl { ttl: 254, .. })
        ));
        let ours: Ipv4Addr = "10.0.0.11".parse().unwrap();
        assert_eq!(ok(&ip_packet(ours, TTL, &msg)), Received::NotOurs);
        let packet = ip_packet(peer, TTL, &msg);
        assert_eq!(
            classify(Datagram::V4(&packet), 52, s.local, &s.auth, s.v3, None),
            Received::NotOurs
        );
        let other = Auth::pass(b"other").unwrap();
        assert!(matches!(
            classify(Datagram::V4(&packet), 51, s.local, &other, s.v3, None),
            Received::Rejected(DecodeError::AuthMismatch { vrid: 51 })
        ));
        let mut bad = msg.clone();
        bad[6] ^= 0xff;
        let Received::Rejected(e) = ok(&ip_packet(peer, TTL, &bad)) else {
            panic!("a bad checksum must be rejected");
        };
        let mut c = Counters::default();
        c.count(&e);
        c.count(&DecodeError::BadTtl { vrid: None, ttl: 1 });
        c.count(&DecodeError::AuthMismatch { vrid: 51 });
        c.count(&DecodeError::NoAddresses { vrid: 51 });
        assert_eq!(
            (c.bad_checksum, c.bad_ttl, c.auth_failures, c.other_errors),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn classify_ipv6_unicast_takes_the_peers_at_any_hop_limit_and_nobody_else()
    {
        let s =
            Settings::new("eth0", 7, local(), &ipv6(), &config_v6()).unwrap();
        let peer: Ipv6Addr = "fd00::12".parse().unwrap();
        let peers = [IpAddr::V6(peer)];
        let meta = Ipv6Meta {
            src: peer,
            dst: "fd00::11".parse().unwrap(),
            hop_limit: 64,
        };
        let msg = s.advert(70).encode(&meta.pseudo_header(), s.v3).unwrap();
        let got = |meta: Ipv6Meta, peers| {
            classify(
                Datagram::V6(meta, &msg),
                51,
                s.local,
                &s.auth,
                s.v3,
                peers,
            )
        };
        assert!(matches!(got(meta, Some(&peers[..])), Received::Advert(_)));
        assert!(matches!(
            got(meta, None),
            Received::Rejected(DecodeError::BadTtl { ttl: 64, .. })
        ));
        let stranger = "fd00::66".parse().unwrap();
        let msg = s
            .advert(70)
            .encode(&Ipv6Meta { src: stranger, ..meta }.pseudo_header(), s.v3)
            .unwrap();
        assert_eq!(
            classify(
                Datagram::V6(Ipv6Meta { src: stranger, ..meta }, &msg),
                51,
                s.local,
                &s.auth,
                s.v3,
                Some(&peers[..])
            ),
            Received::NotOurs
        );
    }

    #[test]
    fn classify_ipv6_checks_the_hop_limit_and_skips_our_own() {
        let s =
            Settings::new("eth0", 7, local(), &ipv6(), &config_v6()).unwrap();
        let peer: Ipv6Addr = "fe80::12".parse().unwrap();
        let meta = Ipv6Meta { src: peer, dst: MULTICAST_V6, hop_limit: TTL };
        let msg = s.advert(70).encode(&meta.pseudo_header(), s.v3).unwrap();
        let got = |meta: Ipv6Meta| {
            classify(Datagram::V6(meta, &msg), 51, s.local, &s.auth, s.v3, None)
        };
        assert_eq!(
            got(meta),
            Received::Advert(Event::AdvertReceived {
                from: IpAddr::V6(peer),
                priority: 70,
                max_adver_int: Duration::from_secs(1),
            })
        );
        assert!(matches!(
            got(Ipv6Meta { hop_limit: 1, ..meta }),
            Received::Rejected(DecodeError::BadTtl { ttl: 1, .. })
        ));
        let ours = Ipv6Meta { src: ll(), ..meta };
        let msg = s.advert(70).encode(&ours.pseudo_header(), s.v3).unwrap();
        assert_eq!(
            classify(
                Datagram::V6(ours, &msg),
                51,
                s.local,
                &s.auth,
                s.v3,
                None
            ),
            Received::NotOurs
        );
    }

    #[test]
    fn hooks_get_keepalived_arguments() {
        let hooks = NotifyHooks {
            master: Some("/m".into()),
            backup: None,
            fault: None,
            any: Some("/any x".into()),
        };
        assert_eq!(hooks_for(&hooks, State::Master), ["/m", "/any x"]);
        assert_eq!(hooks_for(&hooks, State::Backup), ["/any x"]);
        assert_eq!(
            notify_args("VI_1", State::Master, 120),
            ["INSTANCE", "VI_1", "MASTER", "120"]
        );
    }
}
