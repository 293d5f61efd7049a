//! The VRRP state machine driven by a fake clock.
//!
//! Single-instance tests feed events by hand and compare the exact actions.
//! Election tests use [`Wire`], a few lines that connect instances with a
//! lossless, zero-delay segment and fire their timers in deadline order, so
//! failover instants can be asserted to the nanosecond against the RFC's
//! formulas ([`skew_time`], [`master_down_interval`]).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lbdeploy::agent::vrrp::error::{ConfigError, DecodeError};
use lbdeploy::agent::vrrp::fsm::{
    Action, Announce, Config, Event, Instance, State, master_down_interval,
    skew_time,
};
use lbdeploy::agent::vrrp::packet::Version;

const SEC: Duration = Duration::from_secs(1);

fn addr(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 250, 250, last))
}

fn config(version: Version, priority: u8, last: u8) -> Config {
    Config {
        version,
        priority,
        adver_interval: SEC,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: addr(last),
    }
}

fn instance(config: Config) -> Instance {
    Instance::new(config).expect("valid config")
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn advert(from: u8, priority: u8, interval: Duration) -> Event {
    Event::AdvertReceived {
        from: addr(from),
        priority,
        max_adver_int: interval,
    }
}

#[test]
fn formulas_match_the_rfcs() {
    // RFC 3768: skew in seconds, independent of the interval.
    assert_eq!(
        skew_time(Version::V2, 100, 2 * SEC),
        Duration::from_micros(609_375)
    );
    assert_eq!(
        master_down_interval(Version::V2, 100, 2 * SEC),
        Duration::from_micros(6_609_375)
    );
    // RFC 5798: skew scales with Master_Adver_Interval.
    assert_eq!(
        skew_time(Version::V3, 100, 2 * SEC),
        Duration::from_micros(1_218_750)
    );
    assert_eq!(
        master_down_interval(Version::V3, 100, 2 * SEC),
        Duration::from_micros(7_218_750)
    );
    assert_eq!(
        skew_time(Version::V3, 255, SEC),
        Duration::from_nanos(3_906_250)
    );
    assert_eq!(
        skew_time(Version::V3, 1, SEC),
        Duration::from_nanos(996_093_750)
    );
}

#[test]
fn startup_arms_master_down_exactly_and_takes_over_when_it_fires() {
    let t0 = secs(7.0);
    let mut a = instance(config(Version::V3, 100, 1));
    let down = master_down_interval(Version::V3, 100, SEC);
    assert_eq!(down, Duration::from_micros(3_609_375));
    assert_eq!(
        a.handle(t0, Event::Startup),
        vec![
            Action::ArmMasterDownTimer { at: t0 + down },
            Action::Transition { from: State::Initialize, to: State::Backup },
        ]
    );
    // One microsecond early is a stale firing: ignored.
    let early = t0 + down - Duration::from_micros(1);
    assert_eq!(a.handle(early, Event::MasterDownTimerFired), vec![]);
    assert_eq!(a.state(), State::Backup);
    let at = t0 + down;
    assert_eq!(
        a.handle(at, Event::MasterDownTimerFired),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::AddVips,
            Action::SendGratuitousArp(Announce::BecameMaster),
            Action::ArmAdverTimer { at: at + SEC },
            Action::Transition { from: State::Backup, to: State::Master },
        ]
    );
    assert_eq!(
        a.handle(at + SEC, Event::AdverTimerFired),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::ArmAdverTimer { at: at + 2 * SEC },
        ]
    );
    assert_eq!(a.stats().became_master, 1);
}

#[test]
fn owner_with_priority_255_is_master_at_once() {
    let mut owner = instance(config(Version::V3, 255, 1));
    let t0 = secs(1.0);
    assert_eq!(
        owner.handle(t0, Event::Startup),
        vec![
            Action::SendAdvert { priority: 255 },
            Action::AddVips,
            Action::SendGratuitousArp(Announce::BecameMaster),
            Action::ArmAdverTimer { at: t0 + SEC },
            Action::Transition { from: State::Initialize, to: State::Master },
        ]
    );
}

#[test]
fn shutdown_resigns_with_priority_zero() {
    let mut m = instance(config(Version::V3, 255, 1));
    m.handle(Duration::ZERO, Event::Startup);
    assert_eq!(
        m.handle(SEC, Event::Shutdown),
        vec![
            Action::CancelTimers,
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition { from: State::Master, to: State::Initialize },
        ]
    );
    // Stopped: timers and adverts are ignored.
    assert_eq!(m.handle(2 * SEC, Event::AdverTimerFired), vec![]);
    assert_eq!(m.handle(2 * SEC, advert(2, 200, SEC)), vec![]);

    let mut b = instance(config(Version::V3, 100, 1));
    b.handle(Duration::ZERO, Event::Startup);
    assert_eq!(
        b.handle(SEC, Event::Shutdown),
        vec![
            Action::CancelTimers,
            Action::Transition { from: State::Backup, to: State::Initialize },
        ]
    );
}

#[test]
fn master_answers_a_priority_zero_advert_at_once() {
    let mut m = instance(config(Version::V3, 255, 1));
    m.handle(Duration::ZERO, Event::Startup);
    let t = secs(0.25);
    assert_eq!(
        m.handle(t, advert(2, 0, SEC)),
        vec![
            Action::SendAdvert { priority: 255 },
            Action::ArmAdverTimer { at: t + SEC }
        ]
    );
    // The replaced deadline (1 s) is stale now.
    assert_eq!(m.handle(SEC, Event::AdverTimerFired), vec![]);
}

/// Master at `priority` on `last`, started at zero.
fn master(priority: u8, last: u8) -> Instance {
    let mut m = instance(config(Version::V3, priority, last));
    m.handle(Duration::ZERO, Event::Startup);
    let down = master_down_interval(Version::V3, priority, SEC);
    m.handle(down, Event::MasterDownTimerFired);
    assert_eq!(m.state(), State::Master);
    m
}

#[test]
fn equal_priority_is_broken_by_the_higher_primary_address() {
    let t = secs(10.0);
    // A higher address wins: we step down.
    let mut m = master(100, 5);
    assert_eq!(
        m.handle(t, advert(6, 100, SEC)),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::RemoveVips,
            Action::ArmMasterDownTimer {
                at: t + master_down_interval(Version::V3, 100, SEC)
            },
            Action::Transition { from: State::Master, to: State::Backup },
        ]
    );
    // A lower address loses: we stay master, and answer (see
    // `a_master_answers_lower_priority_adverts_once_per_interval`).
    let mut m = master(100, 5);
    assert_eq!(m.handle(t, advert(4, 100, SEC)).len(), 2);
    assert_eq!(m.state(), State::Master);
    // Lower priority loses whatever the address.
    let later = t + 2 * SEC;
    assert_eq!(m.handle(later, advert(9, 99, SEC)).len(), 2);
    assert_eq!(m.state(), State::Master);
    // Higher priority wins whatever the address.
    m.handle(t, advert(1, 101, SEC));
    assert_eq!(m.state(), State::Backup);
}

/// Someone else believes it is master (a split brain healing): answer at
/// once with our advert, so it backs off now rather than at its next
/// timer, and announce the VIPs again — but once per
/// Advertisement_Interval however many such adverts arrive, so a flood
/// costs one advert and one burst per interval.
#[test]
fn a_master_answers_lower_priority_adverts_once_per_interval() {
    let mut m = master(100, 5);
    let t = secs(10.0);
    let answer = vec![
        Action::SendAdvert { priority: 100 },
        Action::SendGratuitousArp(Announce::LowerPriority),
    ];
    assert_eq!(m.handle(t, advert(4, 90, SEC)), answer);
    for i in 1..100 {
        let during = t + SEC * i / 100;
        assert_eq!(m.handle(during, advert(4, 90, SEC)), vec![], "{during:?}");
    }
    assert_eq!(m.handle(t + SEC, advert(4, 90, SEC)), answer);
    assert_eq!(m.state(), State::Master);
    assert_eq!(m.stats().adverts_received, 101);
}

/// keepalived's FAULT: a master resigns (priority-0 advert, VIPs off),
/// is deaf and silent while in fault, and starts over as a backup when
/// the fault clears.
#[test]
fn fault_resigns_ignores_everything_and_clears_into_backup() {
    let mut m = master(100, 1);
    let t = secs(10.0);
    assert_eq!(
        m.handle(t, Event::Fault),
        vec![
            Action::CancelTimers,
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition { from: State::Master, to: State::Fault },
        ]
    );
    for ev in [
        Event::AdverTimerFired,
        Event::MasterDownTimerFired,
        advert(2, 50, SEC),
        advert(2, 0, SEC),
        Event::Startup,
        Event::Fault,
    ] {
        assert_eq!(m.handle(t + SEC, ev.clone()), vec![], "{ev:?}");
        assert_eq!(m.state(), State::Fault);
    }
    let back = t + 5 * SEC;
    assert_eq!(
        m.handle(back, Event::FaultCleared),
        vec![
            Action::ArmMasterDownTimer {
                at: back + master_down_interval(Version::V3, 100, SEC)
            },
            Action::Transition { from: State::Fault, to: State::Backup },
        ]
    );
    assert_eq!(m.handle(back, Event::FaultCleared), vec![], "not in fault");

    // A backup has nothing to give up.
    let mut b = instance(config(Version::V3, 100, 1));
    b.handle(Duration::ZERO, Event::Startup);
    assert_eq!(
        b.handle(SEC, Event::Fault),
        vec![
            Action::CancelTimers,
            Action::Transition { from: State::Backup, to: State::Fault },
        ]
    );
    assert_eq!(
        b.handle(2 * SEC, Event::Shutdown),
        vec![Action::Transition { from: State::Fault, to: State::Initialize }]
    );
}

/// An instance whose link is down from the start goes to Fault without
/// ever advertising; the address owner leaves Fault as it starts: master
/// at once.
#[test]
fn fault_before_startup_and_the_owner_leaving_fault() {
    let mut owner = instance(config(Version::V3, 255, 1));
    assert_eq!(
        owner.handle(Duration::ZERO, Event::Fault),
        vec![
            Action::CancelTimers,
            Action::Transition { from: State::Initialize, to: State::Fault },
        ]
    );
    assert_eq!(
        owner.handle(SEC, Event::FaultCleared),
        vec![
            Action::SendAdvert { priority: 255 },
            Action::AddVips,
            Action::SendGratuitousArp(Announce::BecameMaster),
            Action::ArmAdverTimer { at: 2 * SEC },
            Action::Transition { from: State::Fault, to: State::Master },
        ]
    );
}

#[test]
fn rejected_packets_change_nothing() {
    let err = DecodeError::BadChecksum { vrid: 1, received: 1, computed: 2 };
    for mut inst in [master(100, 1), {
        let mut b = instance(config(Version::V3, 100, 1));
        b.handle(Duration::ZERO, Event::Startup);
        b
    }] {
        let before = inst.state();
        let interval = inst.master_adver_interval();
        assert_eq!(
            inst.handle(secs(9.0), Event::AdvertRejected(err.clone())),
            vec![]
        );
        assert_eq!(inst.state(), before);
        assert_eq!(inst.master_adver_interval(), interval);
        assert_eq!(inst.stats().adverts_rejected, 1);
    }
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    let mut b = instance(config(Version::V3, 100, 1));
    b.handle(Duration::ZERO, Event::Startup);
    let t = secs(1.0);
    let half = Duration::from_millis(500);
    let want = 3 * half + skew_time(Version::V3, 100, half);
    assert_eq!(want, Duration::from_nanos(1_804_687_500));
    assert_eq!(
        b.handle(t, advert(2, 200, half)),
        vec![Action::ArmMasterDownTimer { at: t + want }]
    );
    assert_eq!(b.master_adver_interval(), half);
    // A demoted v3 master learns it too.
    let mut m = master(100, 1);
    m.handle(t, advert(2, 200, 2 * SEC));
    assert_eq!(m.master_adver_interval(), 2 * SEC);
}

#[test]
fn v2_backup_refuses_another_interval() {
    let mut b = instance(config(Version::V2, 100, 1));
    b.handle(Duration::ZERO, Event::Startup);
    assert_eq!(b.handle(secs(1.0), advert(2, 200, 2 * SEC)), vec![]);
    assert_eq!(b.master_adver_interval(), SEC);
    assert_eq!(b.stats().adverts_rejected, 1);
    let t = secs(1.5);
    assert_eq!(
        b.handle(t, advert(2, 200, SEC)),
        vec![Action::ArmMasterDownTimer {
            at: t + master_down_interval(Version::V2, 100, SEC)
        }]
    );
    assert_eq!(b.stats().adverts_received, 1);
}

#[test]
fn config_is_validated() {
    let bad = |version, ms: u64| {
        let c = Config {
            adver_interval: Duration::from_millis(ms),
            ..config(version, 100, 1)
        };
        Instance::new(c).err()
    };
    assert_eq!(
        Instance::new(config(Version::V3, 0, 1)).err(),
        Some(ConfigError::ZeroPriority)
    );
    for (version, ms) in
        [(Version::V2, 1500), (Version::V2, 0), (Version::V2, 256_000)]
    {
        assert_eq!(
            bad(version, ms),
            Some(ConfigError::Interval(Duration::from_millis(ms)))
        );
    }
    for ms in [0, 15, 40_960] {
        assert_eq!(
            bad(Version::V3, ms),
            Some(ConfigError::Interval(Duration::from_millis(ms)))
        );
    }
    assert_eq!(bad(Version::V3, 40_950), None);
    assert_eq!(bad(Version::V2, 255_000), None);
}

// ===== elections over a fake wire =====

/// Instances on one lossless, zero-delay segment with one fake clock.
struct Wire {
    nodes: Vec<Node>,
    /// Every transition, with the instant it happened.
    log: Vec<(Duration, usize, State)>,
}

struct Node {
    inst: Instance,
    config: Config,
    timer: Option<(Duration, Event)>,
}

impl Wire {
    fn new(configs: Vec<Config>) -> Self {
        let nodes = configs
            .into_iter()
            .map(|config| Node {
                inst: instance(config.clone()),
                config,
                timer: None,
            })
            .collect();
        Self { nodes, log: Vec::new() }
    }

    /// Delivers `event` to node `i` at `now`, then every advert that
    /// follows from it to every other node, at the same instant.
    fn deliver(&mut self, now: Duration, i: usize, event: Event) {
        let mut queue = vec![(i, event)];
        while let Some((i, event)) = queue.pop() {
            for action in self.nodes[i].inst.handle(now, event) {
                let node = &mut self.nodes[i];
                match action {
                    Action::SendAdvert { priority } => {
                        let from = node.config.primary_addr;
                        let max_adver_int = node.config.adver_interval;
                        for j in (0..self.nodes.len()).filter(|&j| j != i) {
                            let ev = Event::AdvertReceived {
                                from,
                                priority,
                                max_adver_int,
                            };
                            queue.insert(0, (j, ev));
                        }
                    }
                    Action::ArmMasterDownTimer { at } => {
                        node.timer = Some((at, Event::MasterDownTimerFired));
                    }
                    Action::ArmAdverTimer { at } => {
                        node.timer = Some((at, Event::AdverTimerFired));
                    }
                    Action::CancelTimers => node.timer = None,
                    Action::Transition { to, .. } => {
                        self.log.push((now, i, to))
                    }
                    Action::AddVips
                    | Action::RemoveVips
                    | Action::SendGratuitousArp(_) => {}
                }
            }
        }
    }

    /// Fires timers in deadline order up to `end` (inclusive).
    fn run_until(&mut self, end: Duration) {
        loop {
            let next = (0..self.nodes.len())
                .filter_map(|i| {
                    self.nodes[i].timer.as_ref().map(|(at, _)| (*at, i))
                })
                .min();
            let Some((at, i)) = next.filter(|(at, _)| *at <= end) else {
                return;
            };
            let (_, event) = self.nodes[i].timer.take().expect("just seen");
            self.deliver(at, i, event);
        }
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i].inst.state()
    }

    /// When node `i` last became master.
    fn became_master_at(&self, i: usize) -> Option<Duration> {
        self.log
            .iter()
            .rev()
            .find(|(_, n, s)| *n == i && *s == State::Master)
            .map(|(t, ..)| *t)
    }
}

#[test]
fn the_higher_priority_wins_the_election() {
    let mut wire = Wire::new(vec![
        config(Version::V3, 100, 1),
        config(Version::V3, 200, 2),
    ]);
    wire.deliver(Duration::ZERO, 0, Event::Startup);
    wire.deliver(Duration::ZERO, 1, Event::Startup);
    wire.run_until(secs(30.0));
    assert_eq!((wire.state(0), wire.state(1)), (State::Backup, State::Master));
    assert_eq!(
        wire.became_master_at(1),
        Some(master_down_interval(Version::V3, 200, SEC))
    );
    assert_eq!(wire.became_master_at(0), None);
}

/// Node 1 (priority 100) is master alone; node 0 (priority 200) starts at
/// `t0` and preempts, or not, by its settings.
fn late_higher_priority(preempt: bool, delay: Duration) -> Wire {
    let high =
        Config { preempt, preempt_delay: delay, ..config(Version::V3, 200, 1) };
    let mut wire = Wire::new(vec![high, config(Version::V3, 100, 2)]);
    wire.deliver(Duration::ZERO, 1, Event::Startup);
    wire.run_until(secs(9.95));
    assert_eq!(wire.state(1), State::Master);
    wire.deliver(secs(9.95), 0, Event::Startup);
    wire
}

#[test]
fn preempt_takes_over_after_master_down_interval() {
    let mut wire = late_higher_priority(true, Duration::ZERO);
    wire.run_until(secs(60.0));
    assert_eq!((wire.state(0), wire.state(1)), (State::Master, State::Backup));
    let down = master_down_interval(Version::V3, 200, SEC);
    assert_eq!(wire.became_master_at(0), Some(secs(9.95) + down));
}

#[test]
fn nopreempt_leaves_a_lower_priority_master_alone() {
    let mut wire = late_higher_priority(false, Duration::ZERO);
    wire.run_until(secs(120.0));
    assert_eq!((wire.state(0), wire.state(1)), (State::Backup, State::Master));
}

#[test]
fn preempt_delay_waits_from_startup_then_preempts() {
    let delay = 20 * SEC;
    let mut wire = late_higher_priority(true, delay);
    wire.run_until(secs(9.95) + delay - Duration::from_nanos(1));
    assert_eq!(wire.state(0), State::Backup);
    wire.run_until(secs(120.0));
    assert_eq!(wire.became_master_at(0), Some(secs(9.95) + delay));
    assert_eq!((wire.state(0), wire.state(1)), (State::Master, State::Backup));
}

#[test]
fn a_resigning_master_is_replaced_after_skew_time() {
    let mut wire = Wire::new(vec![
        config(Version::V3, 200, 1),
        config(Version::V3, 100, 2),
    ]);
    wire.deliver(Duration::ZERO, 0, Event::Startup);
    wire.deliver(Duration::ZERO, 1, Event::Startup);
    wire.run_until(secs(5.5));
    assert_eq!(wire.state(0), State::Master);
    wire.deliver(secs(5.5), 0, Event::Shutdown);
    wire.run_until(secs(30.0));
    let skew = skew_time(Version::V3, 100, SEC);
    assert_eq!(wire.became_master_at(1), Some(secs(5.5) + skew));
    assert_eq!(wire.state(0), State::Initialize);
}

/// The master's fault hands over at once (its priority-0 advert reaches
/// the backup when the fault is not the link itself); when it clears, the
/// old master comes back as a backup and preempts after its
/// Master_Down_Interval, as after a start.
#[test]
fn a_faulted_master_hands_over_and_preempts_when_it_clears() {
    let mut wire = Wire::new(vec![
        config(Version::V3, 200, 1),
        config(Version::V3, 100, 2),
    ]);
    wire.deliver(Duration::ZERO, 0, Event::Startup);
    wire.deliver(Duration::ZERO, 1, Event::Startup);
    wire.run_until(secs(5.5));
    wire.deliver(secs(5.5), 0, Event::Fault);
    wire.run_until(secs(20.0));
    let skew = skew_time(Version::V3, 100, SEC);
    assert_eq!(wire.became_master_at(1), Some(secs(5.5) + skew));
    assert_eq!(wire.state(0), State::Fault);
    wire.deliver(secs(20.0), 0, Event::FaultCleared);
    wire.run_until(secs(60.0));
    let down = master_down_interval(Version::V3, 200, SEC);
    assert_eq!(wire.became_master_at(0), Some(secs(20.0) + down));
    assert_eq!((wire.state(0), wire.state(1)), (State::Master, State::Backup));
}

/// An agent restarted so soon after its death as master that no backup
/// can have taken over resumes as master at once, as the owner starts;
/// Resume means nothing once started.
#[test]
fn resume_is_master_at_once() {
    let mut m = instance(config(Version::V3, 120, 1));
    let t = secs(3.0);
    assert_eq!(
        m.handle(t, Event::Resume),
        vec![
            Action::SendAdvert { priority: 120 },
            Action::AddVips,
            Action::SendGratuitousArp(Announce::BecameMaster),
            Action::ArmAdverTimer { at: t + SEC },
            Action::Transition { from: State::Initialize, to: State::Master },
        ]
    );
    assert_eq!(m.handle(t + SEC / 2, Event::Resume), vec![]);
    let mut b = instance(config(Version::V3, 100, 2));
    b.handle(Duration::ZERO, Event::Startup);
    assert_eq!(b.handle(SEC, Event::Resume), vec![]);
    assert_eq!(b.state(), State::Backup);
}
