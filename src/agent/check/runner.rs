//! Health checks running: one task per real server of each service, each
//! checker on its own schedule ([`Health`]), the server up only while every
//! checker says so. Checks run as `Probe`s, whatever their kind, and
//! share what `Shared` holds (the half-open prober). Verdict
//! changes go out on a channel; the director acts on them (data plane,
//! notifications).
//!
//! A semaphore bounds how many probes run at once, and each task starts at
//! a point of its first `delay_loop` fixed by a hash of its key, so a
//! thousand checks do not fire in the same millisecond — and one hung
//! server holds only its own task.
//!
//! Checks fall due on a grid of `TICK`: a check's next run moves to the
//! nearest point of the grid, so all the checks due around one point run
//! in one wakeup of the runtime instead of one each. At 5,000 checks a
//! second that is 100 wakeups instead of up to 1,000, which a virtual
//! machine pays for dearly (each re-arms a timer), for a shift of at most
//! half a tick, either way, that averages out.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::health::{Health, Timing};
use super::probe::{Probe, Shared};
use crate::inventory::Check;

/// The grid checks fall due on; each check runs within half of this of
/// the time keepalived's timing gives it.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// A real server of a service, with its checks.
#[derive(Debug, Clone)]
pub struct Target {
    /// The service's name.
    pub service: String,
    /// The real server.
    pub address: IpAddr,
    /// Its port (checks use `connect_port` when they set one).
    pub port: u16,
    /// Between checks.
    pub delay_loop: Duration,
    /// What to check; none means always up.
    pub checks: Vec<Check>,
    /// Its weight, for the record of [`super::stats`].
    pub weight: u32,
}

/// A verdict change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The service.
    pub service: String,
    /// The real server.
    pub address: IpAddr,
    /// Up now, or down.
    pub up: bool,
    /// The result that decided it.
    pub reason: String,
}

/// Running checks; dropping this stops them.
#[derive(Debug)]
pub struct Checks {
    tasks: JoinSet<()>,
}

impl Checks {
    /// Start checking `targets`, at most `concurrency` probes at a time,
    /// reporting changes on `tx`.
    pub fn spawn(
        targets: Vec<Target>,
        tx: mpsc::Sender<Transition>,
        concurrency: usize,
    ) -> Self {
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        super::stats::reset(
            targets
                .iter()
                .map(|t| (t.service.clone(), t.address, t.port, t.weight)),
        );
        let mut tasks = JoinSet::new();
        let all = targets.iter().flat_map(|t| &t.checks);
        let shared = super::share(all, &mut tasks);
        let grid = Grid(Instant::now());
        for t in targets.into_iter().filter(|t| !t.checks.is_empty()) {
            let start = grid.nearest(Instant::now() + spread(&t, t.delay_loop));
            let checkers =
                t.checks.iter().map(|c| checker(&t, c, start, &shared));
            let checkers = checkers.collect();
            tasks.spawn(
                run(t, checkers, grid, tx.clone(), gate.clone())
                    .in_current_span(),
            );
        }
        Self { tasks }
    }

    /// Stop every check now.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A checker ready to run.
struct Checker {
    probe: Box<dyn Probe>,
    limit: Duration,
    health: Health,
    due: Instant,
}

/// The [`TICK`] grid shared by every check of a runner, from its origin.
#[derive(Debug, Clone, Copy)]
struct Grid(Instant);

impl Grid {
    /// The point of the grid nearest to `at`.
    fn nearest(self, at: Instant) -> Instant {
        let tick = TICK.as_nanos();
        let since = at.saturating_duration_since(self.0).as_nanos();
        let slots = (since + tick / 2) / tick;
        // Checks are due within hours, so the slots fit a u32 of ticks.
        self.0 + TICK * u32::try_from(slots).unwrap_or(u32::MAX)
    }
}

/// Run the `checkers` of `t` until the receiver of `tx` is gone.
async fn run(
    t: Target,
    mut checkers: Vec<Checker>,
    grid: Grid,
    tx: mpsc::Sender<Transition>,
    gate: Arc<Semaphore>,
) {
    let mut up = true;
    loop {
        let (i, due) = checkers
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.due))
            .min_by_key(|&(_, due)| due)
            .expect("a target with checks");
        tokio::time::sleep_until(due).await;
        let c = &mut checkers[i];
        let (result, took) = {
            let _permit = gate.acquire().await;
            let started = Instant::now();
            (c.probe.check(c.limit).await, started.elapsed())
        };
        let seen = super::stats::Seen {
            ok: result.is_ok(),
            latency: took,
            certificate_expiry: c.probe.certificate_expiry(),
        };
        super::stats::observe(&t.service, t.address, t.port, seen);
        let outcome = c.health.record(result.is_ok());
        c.due = grid.nearest(Instant::now() + outcome.next_in);
        let now_up = checkers.iter().all(|c| c.health.is_up());
        if now_up != up {
            up = now_up;
            let reason = match result {
                Ok(()) => "every check passes".to_owned(),
                Err(e) => e,
            };
            let change = Transition {
                service: t.service.clone(),
                address: t.address,
                up,
                reason,
            };
            if tx.send(change).await.is_err() {
                return;
            }
        }
    }
}

/// `c`, a check of `t`, armed and first due at `start`.
fn checker(t: &Target, c: &Check, start: Instant, shared: &Shared) -> Checker {
    let timing = c.timing();
    Checker {
        probe: super::arm(c, SocketAddr::new(t.address, t.port), shared),
        limit: timing.timeout.get(),
        health: Health::new(Timing::new(t.delay_loop, timing)),
        due: start,
    }
}

/// Where in its first `delay_loop` a target starts: a fixed function of
/// its identity, so restarts do not bunch checks either.
fn spread(t: &Target, delay_loop: Duration) -> Duration {
    let key = format!("{}/{}:{}", t.service, t.address, t.port);
    let h = crate::util::fnv::fnv1a(key.as_bytes());
    let ms = delay_loop.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Duration as Dur, TcpCheck};

    fn target(port: u16, delay_loop: Duration) -> Target {
        Target {
            service: "web".into(),
            address: "127.0.0.1".parse().unwrap(),
            port,
            delay_loop,
            checks: vec![Check::Tcp(TcpCheck {
                connect_timeout: Dur::from_millis(200),
                retry: 1,
                delay_before_retry: Dur::from_millis(50),
                rise: 1,
                connect_port: None,
                half_open: false,
            })],
            weight: 1,
        }
    }

    #[test]
    fn spread_stays_within_the_first_delay_loop_and_differs() {
        let d = Duration::from_secs(6);
        let a = spread(&target(80, d), d);
        let b = spread(&target(81, d), d);
        assert!(a < d && b < d);
        assert_ne!(a, b);
        assert_eq!(a, spread(&target(80, d), d), "fixed, not random");
    }

    #[test]
    fn due_times_move_to_the_nearest_tick() {
        let origin = Instant::now();
        let grid = Grid(origin);
        let at = |ms| origin + Duration::from_millis(ms);
        assert_eq!(grid.nearest(at(0)), at(0));
        assert_eq!(grid.nearest(at(4)), at(0));
        assert_eq!(grid.nearest(at(5)), at(10), "half a tick goes up");
        assert_eq!(grid.nearest(at(1_006)), at(1_010));
        assert_eq!(grid.nearest(at(6_000)), at(6_000));
        // Before the origin (never asked for) is the origin.
        assert_eq!(grid.nearest(origin - Duration::from_millis(3)), origin);
    }

    /// A check of a port nothing listens on yet, half-open or not: it
    /// must go down for a reason containing each of `why`, and come back
    /// once the port listens.
    async fn closed_then_listening(half_open: bool, why: &[&str]) {
        // A port that was just free: nothing listens there yet.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let delay_loop = Duration::from_millis(100);
        let mut t = target(port, delay_loop);
        if let Check::Tcp(c) = &mut t.checks[0] {
            c.half_open = half_open;
        }
        let (tx, mut rx) = mpsc::channel(4);
        let mut checks = Checks::spawn(vec![t], tx, 4);
        // Down within delay_loop + 2 × timeout + 1 × retry pause, plus slack.
        let bound = Duration::from_millis(100 + 2 * 200 + 50 + 500);
        let down =
            tokio::time::timeout(bound, rx.recv()).await.unwrap().unwrap();
        assert!(!down.up, "{down:?}");
        for w in why {
            assert!(down.reason.contains(w), "not `{w}`: {down:?}");
        }
        let _listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let up = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(up.up, "{up:?}");
        checks.stop();
    }

    #[tokio::test]
    async fn a_closed_port_goes_down_and_comes_back_when_it_listens() {
        closed_then_listening(false, &["connect to 127.0.0.1"]).await;
    }

    /// Set in the copy of this test binary that runs without CAP_NET_RAW.
    const NO_NET_RAW: &str = "LBDEPLOY_TEST_NO_NET_RAW";

    #[tokio::test]
    async fn half_open_checks_see_an_rst_and_a_syn_ack() {
        if std::env::var_os(NO_NET_RAW).is_some() {
            return;
        }
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: a half-open check needs a raw socket (root)");
            return;
        }
        closed_then_listening(true, &["SYN to 127.0.0.1", "refused (RST)"])
            .await;
    }

    /// Without CAP_NET_RAW (this test binary run again, for this test
    /// only, under `setpriv --bounding-set -net_raw`) half-open checks say
    /// so once and connect fully instead.
    #[tokio::test]
    async fn half_open_checks_connect_fully_without_a_raw_socket() {
        if std::env::var_os(NO_NET_RAW).is_some() {
            // The agent's logging path, so the parent sees the warning.
            crate::util::log::init(crate::util::log::Format::Logfmt);
            closed_then_listening(true, &["connect to 127.0.0.1"]).await;
            return;
        }
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: dropping CAP_NET_RAW needs root");
            return;
        }
        let name = "agent::check::runner::tests::\
                    half_open_checks_connect_fully_without_a_raw_socket";
        let out = std::process::Command::new("setpriv")
            .args(["--bounding-set", "-net_raw", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture"])
            .env(NO_NET_RAW, "1")
            .output()
            .expect("setpriv (util-linux)");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "the test did not run: {stdout}");
        assert!(
            stderr.contains("half-open checks need a raw socket"),
            "no word of the fallback: {stderr}"
        );
    }
}
