//! `lbdeploy agent realserver`: ARP suppression and the VIPs on `lo` — what
//! the rc.local `ifconfig` line and the arptables rules used to do, kept
//! true while the agent runs (issue #5).
//!
//! * [`sysctl`] — the ARP sysctls (pure desired values; read, write,
//!   verify);
//! * [`arp_nft`] — the `arp_suppression: nftables` alternative: an `arp`
//!   table loaded with `nft -f -`;
//! * [`vips`] — which addresses belong on `lo` and which ones elsewhere
//!   make running unsafe (pure);
//! * this file — the [`Worker`] the runtime drives, and the watcher task
//!   that restores a removed VIP or a changed sysctl.
//!
//! ```text
//! runtime ──apply/stop──▶ Worker ──lock──▶ State ◀──lock── watcher task
//!                           │                         ▲   (netlink address
//!                           └── report ◀── Snapshot ◀─┘    events + a tick)
//! ```
//!
//! Start and reload ([`Worker::apply`](crate::agent::runtime::Worker::apply)) refuse a VIP held on another
//! interface, set the sysctls (or load the nft table) **before** any VIP
//! appears, remove the VIPs
//! this agent added that are no longer configured, add the missing ones and
//! start the watcher once. The watcher wakes on every address event and on
//! a [`POLL_INTERVAL`] tick (sysctls have no change notification, and a
//! netlink overrun can lose events) and converges again. Only addresses
//! this agent added are ever removed.

pub mod arp_nft;
pub mod sysctl;
pub mod vips;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::paths;
use super::runtime::{self, ModeConfig, Report};
use crate::agent::sys::net::{self, Address, Event, Net};
use crate::inventory::ArpSuppression;
use crate::inventory::Mode;
use crate::inventory::agent::{RETIRING_MARK, RealserverConfig};

/// How often the watcher re-checks the sysctls and the addresses without
/// an event. The issue allows 1 s to restore a change; a 250 ms tick leaves
/// room for the write and the reader's own polling, and costs one small
/// netlink dump and four `/proc` reads per tick.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The real-server mode's worker (see the module docs).
#[derive(Debug, Default)]
pub struct Worker {
    running: Option<Running>,
    snapshot: Arc<std::sync::Mutex<Snapshot>>,
}

/// What exists once the first apply succeeded.
#[derive(Debug)]
struct Running {
    net: Net,
    state: Arc<Mutex<State>>,
    watcher: JoinHandle<()>,
}

/// What the worker and the watcher share; whoever converges holds the lock
/// for the whole pass, so a reload and a restore never interleave.
#[derive(Debug)]
struct State {
    lo: u32,
    vips: Vec<std::net::IpAddr>,
    wanted: Vec<Address>,
    /// Addresses this agent added and has not removed since: the only ones
    /// it will ever remove.
    ours: Vec<Address>,
    /// Empty with `arp_suppression: nftables`.
    sysctls: Vec<sysctl::Setting>,
    /// The `nft -f` script with `arp_suppression: nftables`.
    nft: Option<String>,
    keep_vip_on_stop: bool,
    /// The last watcher error, so a persisting one is logged once.
    last_error: Option<String>,
}

/// What the status reports, refreshed after every pass.
#[derive(Debug, Clone, Default, Serialize)]
struct Snapshot {
    interface: String,
    arp_suppression: Option<ArpSuppression>,
    /// Whether the nft table is loaded (`null` with sysctls).
    nft_table: Option<bool>,
    vips: Vec<VipStatus>,
    sysctls: BTreeMap<String, Option<u8>>,
    /// VIPs found on another interface (the agent refuses to start with
    /// one; one appearing later makes it unhealthy).
    conflicts: Vec<String>,
    /// How many times the agent put something back.
    restores: u64,
    last_event: Option<EventRecord>,
    last_error: Option<String>,
    #[serde(skip)]
    sysctls_ok: bool,
}

#[derive(Debug, Clone, Serialize)]
struct VipStatus {
    address: String,
    on_lo: bool,
    added_by_agent: bool,
}

#[derive(Debug, Clone, Serialize)]
struct EventRecord {
    at: String,
    what: String,
}

/// A real server's configuration runs this mode's [`Worker`]; the impl
/// sits here, beside the worker, so the runtime needs no mode.
impl ModeConfig for RealserverConfig {
    const MODE: Mode = Mode::Realserver;
    type Worker = Worker;

    fn host(&self) -> &str {
        &self.host
    }

    fn metrics(&self) -> Option<std::net::SocketAddr> {
        self.metrics.map(|m| m.listen)
    }
}

impl runtime::Worker<RealserverConfig> for Worker {
    async fn apply(&mut self, config: &RealserverConfig) -> anyhow::Result<()> {
        if self.running.is_none() {
            let net = Net::connect().context("opening rtnetlink")?;
            let lo = net.index("lo").await?;
            let state = Arc::new(Mutex::new(State {
                lo,
                vips: Vec::new(),
                wanted: Vec::new(),
                ours: Vec::new(),
                sysctls: Vec::new(),
                nft: None,
                keep_vip_on_stop: false,
                last_error: None,
            }));
            // Converge once before the watcher exists, so a refusal leaves
            // no task behind.
            converge_config(&net, &state, config, &self.snapshot).await?;
            let watcher = tokio::spawn(
                watch(net.clone(), state.clone(), self.snapshot.clone())
                    .in_current_span(),
            );
            self.running = Some(Running { net, state, watcher });
            return Ok(());
        }
        let r = self.running.as_ref().expect("checked above");
        converge_config(&r.net, &r.state, config, &self.snapshot).await
    }

    async fn stop(&mut self) {
        let Some(r) = self.running.take() else { return };
        // The watcher first, or it would put the VIPs back.
        r.watcher.abort();
        let mut state = r.state.lock().await;
        let retiring = paths::run_dir().join(RETIRING_MARK).exists();
        if state.keep_vip_on_stop && !retiring {
            for a in &state.ours {
                tracing::info!(
                    "realserver: keeping {}/{} on lo (keep_vip_on_stop)",
                    a.ip,
                    a.prefix
                );
            }
            // The nft table stays too: a kept VIP must stay hidden.
            return;
        }
        for a in std::mem::take(&mut state.ours) {
            match r.net.remove(&a).await {
                Ok(()) => tracing::info!(
                    "realserver: removed {}/{} from lo (stopping)",
                    a.ip,
                    a.prefix
                ),
                Err(e) => tracing::warn!("realserver: {e}"),
            }
        }
        // After the VIPs: never a moment where one is there unhidden.
        if state.nft.is_some() {
            match arp_nft::remove().await {
                Ok(()) => tracing::info!(
                    "realserver: removed the nft table arp {}",
                    arp_nft::TABLE
                ),
                Err(e) => tracing::warn!("realserver: {e:#}"),
            }
        }
    }

    fn report(&self) -> Report {
        let s = self.snapshot.lock().expect("never poisoned: no panics held");
        let healthy = self.running.is_some()
            && s.vips.iter().all(|v| v.on_lo)
            && s.sysctls_ok
            && s.conflicts.is_empty()
            && s.nft_table != Some(false)
            && s.last_error.is_none();
        Report {
            healthy,
            details: serde_json::to_value(&*s).unwrap_or_default(),
            degraded: degraded(&s),
            settling: false,
        }
    }
}

/// Why a real server does not do what its configuration says, one
/// reason per problem, for the status. Pure.
fn degraded(s: &Snapshot) -> Vec<String> {
    let mut why = Vec::new();
    for v in s.vips.iter().filter(|v| !v.on_lo) {
        why.push(format!("VIP {} is not on lo", v.address));
    }
    if !s.sysctls_ok {
        why.push("the ARP sysctls are not as configured".to_owned());
    }
    if s.nft_table == Some(false) {
        why.push("the ARP nftables table is missing".to_owned());
    }
    for c in &s.conflicts {
        why.push(format!("conflict: {c}"));
    }
    if let Some(e) = &s.last_error {
        why.push(e.clone());
    }
    why
}

/// Start or reload: check, set the sysctls, then the VIPs.
async fn converge_config(
    net: &Net,
    state: &Mutex<State>,
    config: &RealserverConfig,
    snapshot: &std::sync::Mutex<Snapshot>,
) -> anyhow::Result<()> {
    let mut st = state.lock().await;
    let present = net.addresses().await?;
    refuse_conflicts(net, st.lo, config, &present).await?;
    // ARP suppression before any VIP is on lo: never a moment where the
    // host would answer for it.
    let (settings, nft) = suppress_arp(net, config, &present).await?;
    if nft.is_none() && st.nft.take().is_some() {
        // Switched to sysctls on reload: the table is ours to remove.
        arp_nft::remove().await?;
    }
    let wanted = vips::wanted(st.lo, &config.vips);
    for a in net::unwanted(&st.ours, &wanted) {
        net.remove(a).await?;
        tracing::info!(
            "realserver: removed {}/{} from lo (no longer configured)",
            a.ip,
            a.prefix
        );
    }
    st.ours.retain(|o| wanted.iter().any(|w| net::same(o, w)));
    for a in net::missing(&wanted, &present) {
        net.add(a).await?;
        st.ours.push(a.clone());
        tracing::info!("realserver: added {}/{} to lo", a.ip, a.prefix);
    }
    for a in &wanted {
        if !st.ours.iter().any(|o| net::same(o, a)) {
            tracing::info!(
                "realserver: {}/{} was already on lo; kept, and left there \
                 on stop (not added by this agent)",
                a.ip,
                a.prefix
            );
        }
    }
    st.vips = config.vips.clone();
    st.wanted = wanted;
    st.sysctls = settings;
    st.nft = nft;
    st.keep_vip_on_stop = config.keep_vip_on_stop;
    {
        let mut s = snapshot.lock().expect("never poisoned: no panics held");
        s.interface = config.interface.clone();
        s.arp_suppression = Some(config.arp_suppression);
    }
    refresh(net, &st, snapshot).await;
    Ok(())
}

/// Refuse a VIP held on another interface than `lo` (index `lo`): the
/// host would answer ARP for it.
async fn refuse_conflicts(
    net: &Net,
    lo: u32,
    config: &RealserverConfig,
    present: &[Address],
) -> anyhow::Result<()> {
    let clash = vips::conflicts(lo, &config.vips, present);
    if !clash.is_empty() {
        let mut lines = Vec::new();
        for a in clash {
            let name = net.name(a.index).await.unwrap_or_default();
            lines.push(format!(
                "VIP {} is configured on {name} ({}/{}); a real server must \
                 hold its VIPs on lo only, or it answers ARP for them — \
                 remove it (`ip addr del {}/{} dev {name}`) and start again",
                a.ip, a.ip, a.prefix, a.ip, a.prefix
            ));
        }
        bail!("{}", lines.join("\n"));
    }
    Ok(())
}

/// Set up the configured ARP suppression: the sysctls set (returned, for
/// the watcher to keep), or the nft table loaded (its script returned).
async fn suppress_arp(
    net: &Net,
    config: &RealserverConfig,
    present: &[Address],
) -> anyhow::Result<(Vec<sysctl::Setting>, Option<String>)> {
    Ok(match config.arp_suppression {
        ArpSuppression::Sysctl => {
            let settings = sysctl::desired(&config.interface);
            for f in sysctl::ensure(Path::new(sysctl::PROC_SYS), &settings)? {
                tracing::info!(
                    "realserver: set {}={} (was {:?})",
                    f.key,
                    f.now,
                    f.was
                );
            }
            (settings, None)
        }
        ArpSuppression::Nftables => {
            let index = net.index(&config.interface).await?;
            let rip = present
                .iter()
                .find_map(|a| match a.ip {
                    std::net::IpAddr::V4(ip) if a.index == index => Some(ip),
                    _ => None,
                })
                .with_context(|| {
                    format!(
                        "arp_suppression: nftables needs an IPv4 address on \
                         {} to send ARP from; it has none",
                        config.interface
                    )
                })?;
            let script = arp_nft::ruleset(&config.vips, rip);
            arp_nft::load(&script).await?;
            tracing::info!(
                "realserver: loaded the nft table arp {} (ARP from the VIPs \
                 sent as {rip})",
                arp_nft::TABLE
            );
            (Vec::new(), Some(script))
        }
    })
}

/// One watcher pass: put back what changed. Returns what was restored, as
/// log lines.
async fn restore(net: &Net, st: &mut State) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    for f in sysctl::ensure(Path::new(sysctl::PROC_SYS), &st.sysctls)? {
        done.push(format!(
            "{} was {}, set back to {}",
            f.key,
            f.was.map_or("unreadable".into(), |v| v.to_string()),
            f.now
        ));
    }
    let gone = match &st.nft {
        Some(_) => !arp_nft::present().await,
        None => false,
    };
    if let (true, Some(script)) = (gone, &st.nft) {
        arp_nft::load(script).await?;
        done.push(format!(
            "the nft table arp {} was removed, loaded again",
            arp_nft::TABLE
        ));
    }
    let present = net.addresses().await?;
    for a in net::missing(&st.wanted, &present) {
        net.add(a).await?;
        if !st.ours.iter().any(|o| net::same(o, a)) {
            st.ours.push(a.clone());
        }
        done.push(format!(
            "VIP {}/{} was removed from lo, added back",
            a.ip, a.prefix
        ));
    }
    Ok(done)
}

/// Refresh the status snapshot from the kernel.
async fn refresh(net: &Net, st: &State, snapshot: &std::sync::Mutex<Snapshot>) {
    let present = net.addresses().await;
    let values = sysctl::snapshot(Path::new(sysctl::PROC_SYS), &st.sysctls);
    let nft_table = match st.nft {
        Some(_) => Some(arp_nft::present().await),
        None => None,
    };
    let mut s = snapshot.lock().expect("never poisoned: no panics held");
    match &present {
        Ok(present) => {
            s.vips = st
                .wanted
                .iter()
                .map(|w| VipStatus {
                    address: format!("{}/{}", w.ip, w.prefix),
                    on_lo: present.iter().any(|p| net::same(p, w)),
                    added_by_agent: st.ours.iter().any(|o| net::same(o, w)),
                })
                .collect();
            s.conflicts = vips::conflicts(st.lo, &st.vips, present)
                .iter()
                .map(|a| {
                    format!("{}/{} on interface #{}", a.ip, a.prefix, a.index)
                })
                .collect();
        }
        Err(e) => s.last_error = Some(e.to_string()),
    }
    s.sysctls_ok = st
        .sysctls
        .iter()
        .zip(&values)
        .all(|(want, (_, got))| *got == Some(want.value));
    s.sysctls = values.into_iter().collect();
    s.nft_table = nft_table;
    s.last_error = st.last_error.clone();
}

/// Keep the host as configured until aborted (by [`Worker::stop`]).
async fn watch(
    net: Net,
    state: Arc<Mutex<State>>,
    snapshot: Arc<std::sync::Mutex<Snapshot>>,
) {
    let mut events = net::subscribe("realserver");
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `None`: the tick.
        let event = tokio::select! {
            ev = net::next_event(&mut events) => match ev {
                Some(ev) => Some(ev),
                None => {
                    tracing::warn!("realserver: the netlink address watch ended; \
                         re-subscribing (polling meanwhile)");
                    events = net::subscribe("realserver");
                    continue;
                }
            },
            _ = tick.tick() => None,
        };
        let mut st = state.lock().await;
        // Other addresses on the host are none of this agent's business.
        if event.is_some_and(|e| !concerns(&st, &e)) {
            continue;
        }
        match restore(&net, &mut st).await {
            Ok(done) => {
                st.last_error = None;
                if !done.is_empty() {
                    let at =
                        humantime::format_rfc3339_millis(SystemTime::now())
                            .to_string();
                    let mut s = snapshot.lock().expect("never poisoned");
                    for what in &done {
                        tracing::warn!("realserver: {what}");
                        s.restores += 1;
                        s.last_event = Some(EventRecord {
                            at: at.clone(),
                            what: what.clone(),
                        });
                    }
                }
            }
            Err(e) => {
                let e = format!("{e:#}");
                if st.last_error.as_deref() != Some(&e) {
                    tracing::warn!("realserver: cannot restore: {e}");
                }
                st.last_error = Some(e);
            }
        }
        refresh(&net, &st, &snapshot).await;
    }
}

/// Whether an address event names one of the VIPs.
fn concerns(st: &State, event: &Event) -> bool {
    let (Event::Added(a) | Event::Removed(a)) = event;
    st.vips.contains(&a.ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #19: each way a real server falls short of its configuration
    /// is a reason of its own; none when it is as configured.
    #[test]
    fn r19_each_shortfall_is_a_degraded_reason() {
        let vip = |on_lo| VipStatus {
            address: "10.0.0.200".into(),
            on_lo,
            added_by_agent: true,
        };
        let mut s = Snapshot {
            vips: vec![vip(true)],
            sysctls_ok: true,
            ..Snapshot::default()
        };
        assert!(degraded(&s).is_empty());
        s.vips = vec![vip(false)];
        s.nft_table = Some(false);
        s.last_error = Some("netlink: EPERM".into());
        assert_eq!(
            degraded(&s),
            [
                "VIP 10.0.0.200 is not on lo",
                "the ARP nftables table is missing",
                "netlink: EPERM"
            ]
        );
        s.sysctls_ok = false;
        assert!(
            degraded(&s)
                .contains(&"the ARP sysctls are not as configured".to_owned())
        );
    }
}
