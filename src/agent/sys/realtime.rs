//! The director's VRRP thread and its real-time scheduling (keepalived's
//! `vrrp_rt_priority`).
//!
//! Every VRRP instance loop runs on one OS thread of its own, named
//! [`THREAD_NAME`], with its own single-threaded tokio runtime: its
//! sockets, its timers and its netlink subscriptions live there, so
//! adverts and the master-down timer never wait behind health checks,
//! the data plane or the status socket on the agent's main thread. With
//! `vrrp_rt_priority: N` in the configuration that thread — and only that
//! thread — runs under `SCHED_RR` at priority `N`: on a machine whose
//! every core is busy, a backup then hears the master's 10 ms adverts in
//! time and does not take over by mistake (BENCHMARKS.md, "Fast timers
//! under stress").
//!
//! Two things keep the real-time thread harmless:
//!
//! * **no child inherits it.** A process forked by a `SCHED_RR` thread is
//!   `SCHED_RR` too (keepalived asks for `SCHED_RESET_ON_FORK`, which no
//!   safe crate offers), so the VRRP thread starts no process and no
//!   thread: notify hooks are handed to the main runtime
//!   ([`spawn_ordinary`]), where scripts, checks and `nft` run as well;
//! * **a runaway is killed.** `RLIMIT_RTTIME` is lowered to
//!   [`RUNAWAY_RTTIME`] of CPU without blocking: the loop blocks on its
//!   sockets between events, so only a bug reaches it, and then the kernel
//!   kills the agent (whose cleanup and restart follow) instead of letting
//!   it starve the machine.
//!
//! The kernel allows `SCHED_RR` to a thread with `CAP_SYS_NICE` or within
//! `RLIMIT_RTPRIO`: the unit sets `LimitRTPRIO=` when the setting is on,
//! and the supervised agent keeps `CAP_SYS_NICE` for itself when it drops
//! its capabilities ([`super::privileges`]). Refused (`EPERM`), the thread
//! runs as any other: a warning in the log and in `agent status`, not a
//! failure — the cluster works as without the setting.

use std::cell::RefCell;
use std::time::Duration;

use rustix::process::{Resource, Rlimit, setrlimit};
use serde::Serialize;
use thread_priority::{
    RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue,
    ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::inventory::RtPriority;

/// The VRRP thread's name, as `/proc/PID/task/TID/comm` shows it.
pub const THREAD_NAME: &str = "lbd-vrrp";

/// The CPU time the real-time VRRP thread may use without blocking before
/// the kernel kills the agent (`RLIMIT_RTTIME`, soft and hard). Handling
/// one event takes microseconds, and a reload that starts a hundred
/// instances tens of milliseconds; a second is only ever a loop that does
/// not end. keepalived's default (10 ms, `vrrp_rlimit_rttime`) is for a
/// process that does less per wake-up.
pub const RUNAWAY_RTTIME: Duration = Duration::from_secs(1);

thread_local! {
    /// On the VRRP thread, the runtime that started it: where what the
    /// thread must not run itself (processes) goes.
    static ORDINARY: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// How the VRRP thread is scheduled, as `agent status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scheduling {
    /// `SCHED_RR` or `SCHED_OTHER`.
    pub policy: &'static str,
    /// The real-time priority in force (`SCHED_RR` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Why the configured priority is not in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Scheduling {
    /// Scheduled as any other thread, as configured.
    pub const ORDINARY: Self =
        Self { policy: "SCHED_OTHER", priority: None, warning: None };

    /// Under `SCHED_RR` at `priority`.
    pub fn realtime(priority: RtPriority) -> Self {
        Self {
            policy: "SCHED_RR",
            priority: u8::try_from(priority.get()).ok(),
            warning: None,
        }
    }

    /// `priority` was asked for and the kernel said `error`.
    pub fn refused(priority: RtPriority, error: &std::io::Error) -> Self {
        Self {
            warning: Some(format!(
                "cannot run the vrrp thread under SCHED_RR at priority \
                 {priority}: {error}; it runs as any other thread (the \
                 agent needs CAP_SYS_NICE or RLIMIT_RTPRIO of at least \
                 {priority}: the rendered unit's LimitRTPRIO=, and no \
                 RestrictRealtime=)"
            )),
            ..Self::ORDINARY
        }
    }

    /// What a reload that asks for `wanted` while the thread runs with
    /// `running` has to say: the thread keeps the scheduling it started
    /// with, so a change waits for the agent's next start.
    pub fn after_reload(
        &self,
        running: Option<RtPriority>,
        wanted: Option<RtPriority>,
    ) -> Self {
        if running == wanted {
            return self.clone();
        }
        let wanted =
            wanted.map_or_else(|| "none".to_owned(), |p| p.to_string());
        let note = format!(
            "vrrp_rt_priority {wanted} takes effect when the agent restarts"
        );
        let warning = match &self.warning {
            Some(w) => format!("{w}; {note}"),
            None => note,
        };
        Self { warning: Some(warning), ..self.clone() }
    }
}

/// The VRRP thread: a single-threaded runtime on an OS thread of its own,
/// scheduled as the configuration asked when it started. Dropping it
/// stops the runtime (its remaining tasks are dropped) and joins the
/// thread.
#[derive(Debug)]
pub struct VrrpThread {
    handle: Handle,
    asked: Option<RtPriority>,
    scheduling: Scheduling,
    stop_tx: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VrrpThread {
    /// Start the thread, under `SCHED_RR` at `priority` if given. Call it
    /// from within the agent's runtime: that runtime is where the thread
    /// hands its processes ([`spawn_ordinary`]).
    ///
    /// # Errors
    /// The thread or its runtime could not be created. A refused real-time
    /// policy is no error: [`Self::scheduling`] says so.
    pub fn start(priority: Option<RtPriority>) -> std::io::Result<Self> {
        let ordinary = Handle::current();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                // Before the runtime exists: it starts no thread, but
                // nothing on this one should run before the policy is set.
                let scheduling = enter(priority);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                ORDINARY.with(|o| *o.borrow_mut() = Some(ordinary));
                let _ = ready_tx.send(Ok((rt.handle().clone(), scheduling)));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })?;
        // The thread answers as soon as its runtime is built: a wait of
        // well under a millisecond, once per agent.
        let (handle, scheduling) = ready_rx.recv().map_err(|_| {
            std::io::Error::other("the vrrp thread ended before it started")
        })??;
        if let Some(w) = &scheduling.warning {
            tracing::warn!("{w}");
        } else if let Some(p) = scheduling.priority {
            tracing::info!("vrrp thread under SCHED_RR at priority {p}");
        }
        Ok(Self {
            handle,
            asked: priority,
            scheduling,
            stop_tx: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The thread's runtime: instance loops are spawned (and their sockets
    /// opened) inside it.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The priority the thread was started with.
    pub fn asked(&self) -> Option<RtPriority> {
        self.asked
    }

    /// How the thread is scheduled.
    pub fn scheduling(&self) -> &Scheduling {
        &self.scheduling
    }
}

impl Drop for VrrpThread {
    fn drop(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Run `task` where processes may be started: on the runtime that started
/// the VRRP thread when called on it (a child of the real-time thread
/// would inherit its policy), on the current runtime otherwise.
pub fn spawn_ordinary<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match ORDINARY.with(|o| o.borrow().clone()) {
        Some(handle) => drop(handle.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

/// Put the calling thread under `SCHED_RR` at `priority` and bound its
/// CPU time without blocking; `None` leaves it alone.
fn enter(priority: Option<RtPriority>) -> Scheduling {
    let Some(p) = priority else { return Scheduling::ORDINARY };
    let value = u8::try_from(p.get())
        .ok()
        .and_then(|v| ThreadPriorityValue::try_from(v).ok());
    let Some(value) = value else {
        let e = std::io::Error::from(std::io::ErrorKind::InvalidInput);
        return Scheduling::refused(p, &e);
    };
    let rr = ThreadSchedulePolicy::Realtime(
        RealtimeThreadSchedulePolicy::RoundRobin,
    );
    let set = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        rr,
    );
    match set {
        Ok(()) => {
            let us = RUNAWAY_RTTIME.as_micros() as u64;
            let limit = Rlimit { current: Some(us), maximum: Some(us) };
            if let Err(e) = setrlimit(Resource::Rttime, limit) {
                tracing::warn!("cannot bound the vrrp thread's CPU time: {e}");
            }
            Scheduling::realtime(p)
        }
        Err(thread_priority::Error::OS(errno)) => {
            Scheduling::refused(p, &std::io::Error::from_raw_os_error(errno))
        }
        Err(e) => Scheduling::refused(p, &std::io::Error::other(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prio(p: u32) -> RtPriority {
        RtPriority::new(p).unwrap()
    }

    #[test]
    fn a_refusal_says_what_would_allow_it() {
        let eperm = std::io::Error::from_raw_os_error(1);
        let s = Scheduling::refused(prio(50), &eperm);
        assert_eq!(s.policy, "SCHED_OTHER");
        assert_eq!(s.priority, None);
        let w = s.warning.unwrap();
        assert!(w.contains("priority 50"), "{w}");
        assert!(w.contains("Operation not permitted"), "{w}");
        assert!(w.contains("LimitRTPRIO="), "{w}");
        assert!(w.contains("CAP_SYS_NICE"), "{w}");
    }

    #[test]
    fn status_shows_policy_and_priority() {
        let json =
            serde_json::to_value(Scheduling::realtime(prio(10))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"policy": "SCHED_RR", "priority": 10})
        );
        let json = serde_json::to_value(Scheduling::ORDINARY).unwrap();
        assert_eq!(json, serde_json::json!({"policy": "SCHED_OTHER"}));
    }

    #[test]
    fn a_reload_that_changes_the_priority_waits_for_a_restart() {
        let rr = Scheduling::realtime(prio(10));
        let same = rr.after_reload(Some(prio(10)), Some(prio(10)));
        assert_eq!(same, rr);
        let off = rr.after_reload(Some(prio(10)), None);
        assert_eq!(off.policy, "SCHED_RR", "still in force");
        assert!(
            off.warning.unwrap().contains("vrrp_rt_priority none takes effect")
        );
        let on = Scheduling::ORDINARY.after_reload(None, Some(prio(20)));
        assert_eq!(on.policy, "SCHED_OTHER");
        assert!(on.warning.unwrap().contains("vrrp_rt_priority 20 takes"));
    }

    /// The thread the instance loops run on: named, answering, and
    /// handing processes back to the runtime that started it.
    #[tokio::test]
    async fn the_vrrp_thread_runs_tasks_and_hands_processes_back() {
        let t = VrrpThread::start(None).unwrap();
        assert_eq!(t.scheduling(), &Scheduling::ORDINARY);
        let name = t
            .handle()
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        let main = std::thread::current().id();
        let (tx, rx) = oneshot::channel();
        t.handle().spawn(async move {
            spawn_ordinary(async move {
                let _ = tx.send(std::thread::current().id());
            });
        });
        assert_eq!(rx.await.unwrap(), main, "not run on the vrrp thread");
        drop(t);
    }
}
