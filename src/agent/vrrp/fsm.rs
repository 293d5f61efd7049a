//! The VRRP state machine of RFC 5798 §6 (and RFC 3768 §6 for v2), pure.
//!
//! An [`Instance`] is one virtual router on one interface. It owns no
//! socket, task or clock: the loop calls [`Instance::handle`] with the
//! current time and one [`Event`] and carries out the returned [`Action`]s
//! in order. Time is a [`Duration`] since an epoch the loop picks (e.g. the
//! agent's start); deadlines in actions use the same epoch. So a test, or a
//! replayed recording, drives the machine with a fake clock and checks
//! timings to the nanosecond.
//!
//! Beside RFC 5798's three states it has keepalived's fourth, Fault: an
//! instance that cannot work (its interface is down or lost its carrier or
//! its address) holds no VIP and sends nothing until the fault clears, then
//! starts over as from Initialize. Why it cannot work is the loop's to find
//! out ([`super::fault`]); the machine only hears [`Event::Fault`] and
//! [`Event::FaultCleared`].
//!
//! Timers: an instance has at most one timer at a time (Master_Down_Timer
//! in Backup, Adver_Timer in Master). Each `Arm…` action replaces whatever
//! was armed before. A timer event that does not match the armed deadline
//! (one that fired late after being replaced) is ignored, so the loop need
//! not be exact about cancellation.
//!
//! The formulas of §6.1 are the `const fn`s [`skew_time`] and
//! [`master_down_interval`]; lab tests call them too for their bounds.

use std::net::IpAddr;
use std::time::Duration;

use super::error::{ConfigError, DecodeError};
use super::packet::{Advert, Version};

/// Priority of the address owner, which becomes master at once (RFC 5798
/// §5.2.4, §6.4.1).
pub(crate) const PRIORITY_OWNER: u8 = 255;
/// Priority a master sends when it leaves (RFC 5798 §5.2.4).
pub(crate) const PRIORITY_LEAVING: u8 = 0;

/// The longest v3 interval, 4095 cs (a 12-bit field).
const MAX_V3_INTERVAL: Duration = Duration::from_millis(40_950);
/// The v3 interval unit.
const CENTISECOND: Duration = Duration::from_millis(10);

/// Skew_Time: how much later a lower-priority backup declares the master
/// down, so the highest-priority backup wins the race.
///
/// * v2 (RFC 3768 §6.1): `(256 − Priority) / 256` seconds.
/// * v3 (RFC 5798 §6.1): `((256 − Priority) × Master_Adver_Interval) / 256`.
///
/// Computed in nanoseconds, which is exact for v2 and within half a
/// nanosecond for v3 (keepalived truncates to microseconds).
pub const fn skew_time(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    let base = match version {
        Version::V2 => Duration::from_secs(1),
        Version::V3 => master_adver_interval,
    };
    let ns = (256 - priority as u128) * base.as_nanos() / 256;
    nanos(ns)
}

/// Master_Down_Interval: how long a backup waits without adverts before
/// it takes over: `3 × Master_Adver_Interval + Skew_Time` (RFC 5798 §6.1;
/// RFC 3768 §6.1 with Advertisement_Interval).
pub const fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    let skew = skew_time(version, priority, master_adver_interval);
    nanos(3 * master_adver_interval.as_nanos() + skew.as_nanos())
}

/// A nanosecond count as a duration, saturating (no VRRP interval comes
/// near 584 years, but const fns cannot panic politely).
const fn nanos(ns: u128) -> Duration {
    if ns > u64::MAX as u128 {
        Duration::MAX
    } else {
        Duration::from_nanos(ns as u64)
    }
}

/// One virtual router's settings, as the agent's configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Protocol version: selects skew formula and interval learning.
    pub version: Version,
    /// Our priority, 1–255; 255 means we own the addresses.
    pub priority: u8,
    /// Advertisement_Interval: how often we advertise as master.
    pub adver_interval: Duration,
    /// Preempt_Mode: whether a higher-priority backup takes over from a
    /// lower-priority master (keepalived's `nopreempt` clears it).
    pub preempt: bool,
    /// keepalived's `preempt_delay`: after startup, how long to tolerate a
    /// lower-priority master before preempting it.
    pub preempt_delay: Duration,
    /// Our primary address on the interface, the election tie-breaker
    /// (RFC 5798 §6.4.3).
    pub primary_addr: IpAddr,
}

/// The three states of RFC 5798 §6.4, and keepalived's Fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before startup or after shutdown.
    Initialize,
    /// Watching the master, ready to take over.
    Backup,
    /// Holding the VIPs and advertising.
    Master,
    /// Unable to work: no VIP, no advert, deaf to adverts, until the
    /// fault clears.
    Fault,
}

/// Everything that can happen to an instance, time included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instance is enabled (agent start, configuration load).
    Startup,
    /// The instance is enabled by an agent restarted so soon after its
    /// death as master that no backup can have taken over
    /// (`agent::mastership`): master at once, as the address owner
    /// starts.
    Resume,
    /// The instance is disabled (agent stop): a master resigns.
    Shutdown,
    /// A valid advert for our VRID: decoded, checksum and authentication
    /// verified, TTL checked.
    AdvertReceived {
        /// Sender's primary address (the IP source).
        from: IpAddr,
        /// Sender's priority.
        priority: u8,
        /// Sender's advertisement interval.
        max_adver_int: Duration,
    },
    /// A packet for this instance that the codec refused. It is counted and
    /// changes nothing else, so replayed recordings keep the errors in order.
    AdvertRejected(DecodeError),
    /// The armed Master_Down_Timer deadline has passed.
    MasterDownTimerFired,
    /// The armed Adver_Timer deadline has passed.
    AdverTimerFired,
    /// The instance cannot work (keepalived's FAULT): a master resigns,
    /// anyone stops taking part. Also valid before startup, for an
    /// instance whose interface is down from the start.
    Fault,
    /// The fault is gone: start over, as [`Event::Startup`] does.
    FaultCleared,
    /// Tracking moved the effective priority (keepalived's weights): it is
    /// what adverts carry and elections compare from now on. Clamped to
    /// 1–254; the address owner's 255 is never adjusted.
    Priority(u8),
}

impl Event {
    /// The event for a decoded, verified advert from `from`, so the loop
    /// does not pick fields itself.
    pub fn advert(from: IpAddr, advert: &Advert) -> Self {
        Self::AdvertReceived {
            from,
            priority: advert.priority(),
            max_adver_int: advert.interval(),
        }
    }
}

/// What the loop must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (ours, or 0 when leaving).
    SendAdvert {
        /// Priority field of the advert.
        priority: u8,
    },
    /// Put the VIPs on the interface.
    AddVips,
    /// Take the VIPs off the interface.
    RemoveVips,
    /// Announce the VIPs: gratuitous ARP for IPv4, unsolicited Neighbor
    /// Advertisement for IPv6; how many and how often depends on why.
    SendGratuitousArp(Announce),
    /// Arm the Master_Down_Timer at this instant, replacing any timer.
    ArmMasterDownTimer {
        /// Deadline, in the epoch of `now`.
        at: Duration,
    },
    /// Arm the Adver_Timer at this instant, replacing any timer.
    ArmAdverTimer {
        /// Deadline, in the epoch of `now`.
        at: Duration,
    },
    /// Disarm the timer.
    CancelTimers,
    /// The state changed: for notify hooks, logs and metrics.
    Transition {
        /// State before.
        from: State,
        /// State after.
        to: State,
    },
}

/// Why the VIPs are announced: keepalived configures each case apart
/// (`garp_master_*`, `garp_lower_prio_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// We became master: neighbours still point at the old one.
    BecameMaster,
    /// A master heard a lower-priority advert: someone else believed it
    /// was master (a split brain or a partition healing), and neighbours
    /// may have followed its announcements.
    LowerPriority,
}

/// Counters per instance, in the spirit of the RFC 6527 statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Adverts that took part in the election.
    pub adverts_received: u64,
    /// Packets refused by the codec, and v2 adverts whose interval differs
    /// from ours (RFC 3768 §7.1).
    pub adverts_rejected: u64,
    /// Times this instance became master.
    pub became_master: u64,
}

/// The deadline that is armed, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    MasterDown(Duration),
    Adver(Duration),
}

/// One virtual router's protocol state.
#[derive(Debug, Clone)]
pub struct Instance {
    config: Config,
    /// The priority in force: the configured one moved by tracking.
    priority: u8,
    state: State,
    /// Master_Adver_Interval: ours in v2, learned from the master in v3.
    master_adver_interval: Duration,
    timer: Option<Timer>,
    /// When `preempt_delay` has passed since startup.
    preempt_after: Duration,
    /// When a master last answered a lower-priority advert, so a flood
    /// of them costs at most one answer per Advertisement_Interval.
    lower_answered: Option<Duration>,
    stats: Stats,
}

// ===== impl Instance =====

impl Instance {
    /// A stopped instance (state Initialize) with validated settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for priority 0 or an interval the version cannot
    /// carry (v2: whole seconds 1–255; v3: 10 ms steps up to 40.95 s).
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        if config.priority == 0 {
            return Err(ConfigError::ZeroPriority);
        }
        let int = config.adver_interval;
        let fits = match config.version {
            Version::V2 => {
                int.subsec_nanos() == 0 && (1..=255).contains(&int.as_secs())
            }
            Version::V3 => {
                int.as_nanos() % CENTISECOND.as_nanos() == 0
                    && !int.is_zero()
                    && int <= MAX_V3_INTERVAL
            }
        };
        if !fits {
            return Err(ConfigError::Interval(int));
        }
        Ok(Self {
            master_adver_interval: config.adver_interval,
            priority: config.priority,
            config,
            state: State::Initialize,
            timer: None,
            preempt_after: Duration::ZERO,
            lower_answered: None,
            stats: Stats::default(),
        })
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority: the configured one moved by tracking.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Master_Adver_Interval now in force (v3 learns it from the master).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Handles one event at time `now` and returns what to do.
    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Action> {
        use Event as E;
        use State as S;
        match (self.state, event) {
            (_, E::AdvertRejected(_)) => {
                self.stats.adverts_rejected += 1;
                Vec::new()
            }
            (_, E::Priority(p)) => {
                if self.config.priority != PRIORITY_OWNER {
                    self.priority = p.clamp(1, PRIORITY_OWNER - 1);
                }
                Vec::new()
            }
            (S::Initialize, E::Startup) | (S::Fault, E::FaultCleared) => {
                self.startup(now)
            }
            (S::Initialize, E::Resume) => {
                self.preempt_after = now;
                self.become_master(now)
            }
            (S::Initialize | S::Backup | S::Master, E::Fault) => self.fault(),
            (S::Fault, E::Shutdown) => self.fault_shutdown(),
            (S::Initialize | S::Fault, _)
            | (_, E::Startup | E::Resume | E::FaultCleared) => Vec::new(),
            (S::Backup, E::Shutdown) => self.backup_shutdown(),
            (S::Backup, E::MasterDownTimerFired) => {
                self.backup_master_down(now)
            }
            (S::Backup, E::AdvertReceived { priority, max_adver_int, .. }) => {
                self.backup_advert(now, priority, max_adver_int)
            }
            (S::Master, E::Shutdown) => self.master_shutdown(),
            (S::Master, E::AdverTimerFired) => self.master_adver_timer(now),
            (
                S::Master,
                E::AdvertReceived { from, priority, max_adver_int },
            ) => self.master_advert(now, from, priority, max_adver_int),
            (S::Backup, E::AdverTimerFired)
            | (S::Master, E::MasterDownTimerFired) => Vec::new(),
        }
    }

    /// RFC 5798 §6.4.1 (Initialize, Startup): the address owner (priority
    /// 255) becomes master at once; anyone else sets Master_Adver_Interval
    /// to Advertisement_Interval, arms Master_Down_Timer and becomes
    /// backup. Also starts keepalived's `preempt_delay`.
    ///
    /// Leaving Fault is the same start, as keepalived's: whoever holds the
    /// VIPs meanwhile is heard before we claim them, and a link that
    /// flaps waits out `preempt_delay` again.
    fn startup(&mut self, now: Duration) -> Vec<Action> {
        self.preempt_after = now.saturating_add(self.config.preempt_delay);
        self.master_adver_interval = self.config.adver_interval;
        if self.config.priority == PRIORITY_OWNER {
            return self.become_master(now);
        }
        let from = self.state;
        let at = now.saturating_add(self.master_down_interval());
        self.state = State::Backup;
        vec![self.arm(Timer::MasterDown(at)), transition(from, State::Backup)]
    }

    /// Entering Fault (keepalived's semantics): timers off; a master sends
    /// a priority-0 advert — which reaches the backups when the fault is
    /// not the link itself, so they take over after Skew_Time — and drops
    /// the VIPs.
    fn fault(&mut self) -> Vec<Action> {
        let from = self.state;
        self.timer = None;
        self.state = State::Fault;
        let mut actions = vec![Action::CancelTimers];
        if from == State::Master {
            actions.extend([
                Action::SendAdvert { priority: PRIORITY_LEAVING },
                Action::RemoveVips,
            ]);
        }
        actions.push(transition(from, State::Fault));
        actions
    }

    /// Shutdown in Fault: nothing is held, nothing armed.
    fn fault_shutdown(&mut self) -> Vec<Action> {
        self.state = State::Initialize;
        vec![transition(State::Fault, State::Initialize)]
    }

    /// RFC 5798 §6.4.2 (Backup, Shutdown): cancel Master_Down_Timer and go
    /// to Initialize. A backup holds no VIP, so nothing else to undo.
    fn backup_shutdown(&mut self) -> Vec<Action> {
        self.timer = None;
        self.state = State::Initialize;
        vec![Action::CancelTimers, transition(State::Backup, State::Initialize)]
    }

    /// RFC 5798 §6.4.2 (Backup, Master_Down_Timer fires): the master is
    /// gone; take over. Ignored unless it is the deadline we armed.
    fn backup_master_down(&mut self, now: Duration) -> Vec<Action> {
        match self.timer {
            Some(Timer::MasterDown(at)) if now >= at => self.become_master(now),
            _ => Vec::new(),
        }
    }

    /// RFC 5798 §6.4.2 (Backup, ADVERTISEMENT received):
    ///
    /// * priority 0: the master is leaving; set Master_Down_Timer to
    ///   Skew_Time, so the best backup takes over first;
    /// * Preempt_Mode false, or priority ≥ ours: accept this master; v3
    ///   learns its interval (Master_Adver_Interval), then Master_Down_Timer
    ///   is reset to Master_Down_Interval;
    /// * otherwise discard it, so the timer runs out and we preempt.
    ///
    /// keepalived's `preempt_delay` sits in between: until it has passed
    /// since startup, a lower-priority master is accepted as under
    /// nopreempt, but the timer never runs past the end of the delay, so we
    /// preempt exactly then. v2 adverts whose interval differs from ours are
    /// discarded first (RFC 3768 §7.1).
    fn backup_advert(
        &mut self,
        now: Duration,
        priority: u8,
        max_adver_int: Duration,
    ) -> Vec<Action> {
        if !self.accept(max_adver_int) {
            return Vec::new();
        }
        let ours = self.priority;
        let version = self.config.version;
        let at = if priority == PRIORITY_LEAVING {
            let skew = skew_time(version, ours, self.master_adver_interval);
            now.saturating_add(skew)
        } else if !self.config.preempt || priority >= ours {
            self.learn_interval(max_adver_int);
            now.saturating_add(self.master_down_interval())
        } else if now < self.preempt_after {
            self.learn_interval(max_adver_int);
            now.saturating_add(self.master_down_interval())
                .min(self.preempt_after)
        } else {
            return Vec::new();
        };
        vec![self.arm(Timer::MasterDown(at))]
    }

    /// RFC 5798 §6.4.3 (Master, Adver_Timer fires): advertise and reset
    /// the Adver_Timer to Advertisement_Interval. Ignored unless it is the
    /// deadline we armed.
    fn master_adver_timer(&mut self, now: Duration) -> Vec<Action> {
        match self.timer {
            Some(Timer::Adver(at)) if now >= at => {
                let next = now.saturating_add(self.config.adver_interval);
                vec![self.send_advert(), self.arm(Timer::Adver(next))]
            }
            _ => Vec::new(),
        }
    }

    /// RFC 5798 §6.4.3 (Master, Shutdown): cancel the Adver_Timer, send an
    /// advert with priority 0 so a backup takes over after Skew_Time
    /// instead of Master_Down_Interval, drop the VIPs, go to Initialize.
    fn master_shutdown(&mut self) -> Vec<Action> {
        self.timer = None;
        self.state = State::Initialize;
        vec![
            Action::CancelTimers,
            Action::SendAdvert { priority: PRIORITY_LEAVING },
            Action::RemoveVips,
            transition(State::Master, State::Initialize),
        ]
    }

    /// RFC 5798 §6.4.3 (Master, ADVERTISEMENT received):
    ///
    /// * priority 0: a peer resigned; advertise now and reset Adver_Timer
    ///   so backups do not take over;
    /// * priority above ours, or equal with a greater primary address (the
    ///   tie-break): step down: v3 learns Master_Adver_Interval, arm
    ///   Master_Down_Timer, drop the VIPs, become backup. Before that, one
    ///   parting advert with our priority — lbdeploy's one addition to the
    ///   RFC: after a split brain the winner may never have heard us, yet
    ///   neighbours point at us; our advert is a lower-priority one to it,
    ///   which it answers by announcing the VIPs (the next case, and
    ///   keepalived's `garp_lower_prio_repeat`). Without it, clients would
    ///   keep sending to us until their neighbour entries expired;
    /// * otherwise the sender believes it is master, or is about to (a
    ///   split brain or a partition healing): answer at once with our
    ///   advert, so it backs off now, and announce the VIPs again, since
    ///   neighbours may have followed it — keepalived's
    ///   `garp_lower_prio_repeat`. At most one answer per
    ///   Advertisement_Interval, however many such adverts arrive.
    fn master_advert(
        &mut self,
        now: Duration,
        from: IpAddr,
        priority: u8,
        max_adver_int: Duration,
    ) -> Vec<Action> {
        if !self.accept(max_adver_int) {
            return Vec::new();
        }
        let ours = self.priority;
        if priority == PRIORITY_LEAVING {
            let next = now.saturating_add(self.config.adver_interval);
            return vec![self.send_advert(), self.arm(Timer::Adver(next))];
        }
        let wins = priority > ours
            || (priority == ours && from > self.config.primary_addr);
        if !wins {
            return self.answer_lower_priority(now);
        }
        self.learn_interval(max_adver_int);
        let at = now.saturating_add(self.master_down_interval());
        self.state = State::Backup;
        vec![
            self.send_advert(),
            Action::RemoveVips,
            self.arm(Timer::MasterDown(at)),
            transition(State::Master, State::Backup),
        ]
    }

    /// See [`Self::master_advert`].
    fn answer_lower_priority(&mut self, now: Duration) -> Vec<Action> {
        let interval = self.config.adver_interval;
        if self
            .lower_answered
            .is_some_and(|at| now < at.saturating_add(interval))
        {
            return Vec::new();
        }
        self.lower_answered = Some(now);
        vec![
            self.send_advert(),
            Action::SendGratuitousArp(Announce::LowerPriority),
        ]
    }

    /// The common "transition to Master" steps of §6.4.1 and §6.4.2: send
    /// an advert, own the VIPs, announce them, arm Adver_Timer.
    fn become_master(&mut self, now: Duration) -> Vec<Action> {
        let from = self.state;
        let next = now.saturating_add(self.config.adver_interval);
        self.state = State::Master;
        self.stats.became_master += 1;
        vec![
            self.send_advert(),
            Action::AddVips,
            Action::SendGratuitousArp(Announce::BecameMaster),
            self.arm(Timer::Adver(next)),
            transition(from, State::Master),
        ]
    }

    /// Whether an advert is processed at all (its interval is
    /// acceptable, [`Self::interval_acceptable`]); those that are are
    /// counted.
    fn accept(&mut self, max_adver_int: Duration) -> bool {
        let ok = self.interval_acceptable(max_adver_int);
        if ok {
            self.stats.adverts_received += 1;
        }
        ok
    }

    /// RFC 3768 §7.1: a v2 advert must carry our interval, else it is
    /// discarded and counted. v3 learns the master's instead.
    fn interval_acceptable(&mut self, max_adver_int: Duration) -> bool {
        let ok = self.config.version == Version::V3
            || max_adver_int == self.config.adver_interval;
        if !ok {
            self.stats.adverts_rejected += 1;
        }
        ok
    }

    /// RFC 5798 §6.4.2/§6.4.3: v3 sets Master_Adver_Interval from the
    /// master's advert (Skew_Time and Master_Down_Interval follow from
    /// it); v2 keeps ours.
    fn learn_interval(&mut self, max_adver_int: Duration) {
        if self.config.version == Version::V3 {
            self.master_adver_interval = max_adver_int;
        }
    }

    fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.config.version,
            self.priority,
            self.master_adver_interval,
        )
    }

    fn send_advert(&self) -> Action {
        Action::SendAdvert { priority: self.priority }
    }

    /// Records the armed deadline and returns the action that arms it.
    fn arm(&mut self, timer: Timer) -> Action {
        self.timer = Some(timer);
        match timer {
            Timer::MasterDown(at) => Action::ArmMasterDownTimer { at },
            Timer::Adver(at) => Action::ArmAdverTimer { at },
        }
    }
}

fn transition(from: State, to: State) -> Action {
    Action::Transition { from, to }
}

/// The word keepalived uses for a state, in notify hooks and the status.
pub(crate) fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "STOP",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}
