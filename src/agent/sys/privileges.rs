//! The supervised agent's confinement, for hosts without systemd: what
//! the rendered unit's `CapabilityBoundingSet=`/`AmbientCapabilities=`
//! give an agent under systemd, and a tie to the supervisor that
//! `KillMode=` gives it there.
//!
//! The supervisor runs only lbdeploy's own code and keeps root's full
//! capabilities: it removes what a dead agent held (VIPs, the nftables
//! table: `CAP_NET_ADMIN`), and restarting an agent whose privileges it
//! must then reduce needs `CAP_SETPCAP`. The agent — which parses packets
//! from the segment and runs the inventory's scripts and hooks — reduces
//! itself, first thing, before its runtime starts any thread
//! (capabilities belong to threads; threads started later inherit them):
//!
//! * **dies with the supervisor**: `PR_SET_PDEATHSIG` with SIGTERM, so it
//!   stops cleanly (gives up mastership, removes its VIPs) when the
//!   supervisor is killed, even with SIGKILL; then `getppid` is checked
//!   against the PID the supervisor passed, which closes the race of a
//!   supervisor that died before the death signal was armed;
//! * **keeps [`AGENT_CAPABILITIES`] only**: every other capability leaves
//!   the bounding set (so no child, setuid binary or file capability
//!   gets it back), and effective, permitted, inheritable and ambient
//!   are exactly these two — ambient so the `nft` it runs and the
//!   scripts it starts have them as under systemd's
//!   `AmbientCapabilities=`.
//!
//! With a script user in its configuration it also keeps `CAP_SETUID`,
//! `CAP_SETGID` and `CAP_KILL` ([`SWITCH_USER`]), a director configured with
//! `vrrp_rt_priority` keeps [`REALTIME_CAPABILITY`] (`CAP_SYS_NICE`), so
//! that [`super::realtime`] can put its VRRP thread under `SCHED_RR`, and
//! one with `vrrp_no_swap` [`MEMORY_LOCK_CAPABILITY`] (`CAP_IPC_LOCK`),
//! so that [`super::memory`] can lock it whole.
//! Both are the agent's own: neither inheritable nor ambient, and gone
//! from the bounding set like the rest (a permitted capability outlives
//! its bounding bit; a program root executes gets only what the bounding
//! set allows), so no script or hook gets them. A program started as a
//! script user sets its ids in the child before `exec`, with the
//! effective set it inherited, and runs with no capability at all.
//! Raising `RLIMIT_RTPRIO` instead, as the unit's `LimitRTPRIO=` does,
//! would need `CAP_SYS_RESOURCE`, which a host may not give even to root
//! (a container).
//!
//! It stays uid 0: its files (`/run/lbdeploy`, `/etc/lbdeploy`) are
//! root's and need no `CAP_DAC_OVERRIDE` to be read or written by their
//! owner. A file another user keeps private (a `track_file` of mode 0600
//! owned by someone else) is therefore unreadable to the agent, as it is
//! under the unit.
//!
//! This does the same without `unsafe` code and without `pre_exec`: the
//! agent does it to itself, told by [`SUPERVISOR_ENV`].

use anyhow::{Context, bail};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, getppid, set_parent_process_death_signal};
use rustix::thread::{
    CapabilitySet, CapabilitySets, configure_capability_in_ambient_set,
    remove_capability_from_bounding_set, set_capabilities,
};

use crate::inventory::agent::DirectorConfig;

/// Set by the supervisor on the agent it starts, to its own PID: the
/// agent then confines itself ([`confine_if_supervised`]).
pub const SUPERVISOR_ENV: &str = "LBDEPLOY_SUPERVISOR_PID";

/// All the supervised agent keeps, as the unit's bounding set does.
/// `CAP_NET_ADMIN`: VIPs, routes' neighbours, the nftables table, IPVS
/// over generic netlink, writing `/proc/sys/net` (the files are root's,
/// so uid 0 writes them as their owner; the kernel then asks for
/// `CAP_NET_ADMIN` in the network namespace), socket buffers past
/// `rmem_max`, the process connector. `CAP_NET_RAW`: VRRP's raw IP
/// sockets, gratuitous ARP and unsolicited NA on packet sockets, the
/// half-open TCP check and ping.
pub const AGENT_CAPABILITIES: CapabilitySet =
    CapabilitySet::NET_ADMIN.union(CapabilitySet::NET_RAW);

/// What the agent keeps besides [`AGENT_CAPABILITIES`] when its
/// configuration runs a program as a script user: `setgid`,
/// `setgroups` (to drop the supplementary groups) and `setuid` in the
/// child before it runs the program, and `kill` of that user's
/// processes when the program runs past its timeout (a signal to a
/// process of another uid needs `CAP_KILL`; without it a hung script of
/// the script user's would run on, and its successors pile up beside it).
pub const SWITCH_USER: CapabilitySet = CapabilitySet::SETUID
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::KILL);

/// Whether this process may start programs as another user: it has
/// [`SWITCH_USER`] in its effective set (root under the unit, or a
/// supervised agent that kept them).
pub fn can_switch_user() -> bool {
    rustix::thread::capabilities(None)
        .is_ok_and(|sets| sets.effective.contains(SWITCH_USER))
}

/// Kept besides [`AGENT_CAPABILITIES`], in the agent's own sets only, by a
/// director configured with `vrrp_rt_priority`: `sched_setscheduler` to a
/// real-time policy.
pub const REALTIME_CAPABILITY: CapabilitySet = CapabilitySet::SYS_NICE;

/// Kept besides [`AGENT_CAPABILITIES`], in the agent's own sets only, by a
/// director configured with `vrrp_no_swap`: `mlockall` of everything it
/// maps, now and later, past `RLIMIT_MEMLOCK` ([`super::memory`]).
/// Raising the limit to unlimited instead, as the unit's
/// `LimitMEMLOCK=infinity` does, would need `CAP_SYS_RESOURCE`, which a
/// host may not give even to root (a container: the lab's machine has
/// none, and its hard limit is 8 MiB). Memory locks are not inherited
/// over `fork`, so the programs it starts lock nothing.
pub const MEMORY_LOCK_CAPABILITY: CapabilitySet = CapabilitySet::IPC_LOCK;

/// What a director's configuration needs besides [`AGENT_CAPABILITIES`],
/// for the agent alone: [`SWITCH_USER`] when it runs a program as a
/// script user, [`REALTIME_CAPABILITY`] with `vrrp_rt_priority`,
/// [`MEMORY_LOCK_CAPABILITY`] with `vrrp_no_swap`. Derived from the
/// configuration at each start of the agent: a reload cannot add one
/// (`DirectorConfig::restart_settings`).
pub fn own_capabilities(config: &DirectorConfig) -> CapabilitySet {
    let mut own = CapabilitySet::empty();
    if config.switches_user() {
        own |= SWITCH_USER;
    }
    if config.vrrp_rt_priority.is_some() {
        own |= REALTIME_CAPABILITY;
    }
    if config.vrrp_no_swap {
        own |= MEMORY_LOCK_CAPABILITY;
    }
    own
}

/// Kept besides [`AGENT_CAPABILITIES`] by a director with a `bgp:`
/// block, and passed on to its children: BIRD, which the agent runs,
/// listens for its peers on TCP port 179.
pub const BGP_CAPABILITY: CapabilitySet = CapabilitySet::NET_BIND_SERVICE;

/// What a director's configuration needs its children to have besides
/// [`AGENT_CAPABILITIES`]: [`BGP_CAPABILITY`] with a `bgp:` block.
/// Derived at each start, as [`own_capabilities`].
pub fn passed_capabilities(config: &DirectorConfig) -> CapabilitySet {
    if config.bgp.is_some() { BGP_CAPABILITY } else { CapabilitySet::empty() }
}

/// Capabilities are numbered below this; the kernel knows fewer
/// (`/proc/sys/kernel/cap_last_cap`) and answers EINVAL for the rest.
const CAPABILITY_BITS: u32 = 64;

/// When [`SUPERVISOR_ENV`] is set, tie this process to the supervisor and
/// drop every capability but [`AGENT_CAPABILITIES`] (and `own`, for
/// itself alone: [`own_capabilities`]; and `passed`, for it and its
/// children: [`passed_capabilities`]); otherwise (a foreground agent,
/// the systemd unit) do nothing. Call it while the process has one
/// thread.
///
/// # Errors
/// The variable holds no PID, the supervisor is already gone, the
/// process has more than one thread, or the kernel refused a step: the
/// agent must not run with more than it should, nor outlive its
/// supervisor.
pub fn confine_if_supervised(
    own: CapabilitySet,
    passed: CapabilitySet,
) -> anyhow::Result<()> {
    let Some(value) = std::env::var_os(SUPERVISOR_ENV) else {
        return Ok(());
    };
    let supervisor = value
        .to_str()
        .and_then(|t| t.parse().ok())
        .and_then(Pid::from_raw)
        .with_context(|| format!("{SUPERVISOR_ENV}={value:?} is no PID"))?;
    set_parent_process_death_signal(Some(Signal::TERM))
        .context("PR_SET_PDEATHSIG")?;
    if getppid() != Some(supervisor) {
        bail!(
            "the supervisor (pid {}) is gone; not starting",
            supervisor.as_raw_nonzero()
        );
    }
    let threads = std::fs::read_dir("/proc/self/task")
        .context("reading /proc/self/task")?
        .count();
    if threads != 1 {
        bail!("dropping capabilities needs one thread, not {threads}");
    }
    let pass_on = AGENT_CAPABILITIES.union(passed);
    keep_only(pass_on.union(own), pass_on)
}

/// Reduce this thread to `keep`, of which children get `pass_on` (a
/// part of `keep`): the bounding set to `pass_on` first (that needs
/// `CAP_SETPCAP`, about to go), then the three sets, then ambient.
fn keep_only(
    keep: CapabilitySet,
    pass_on: CapabilitySet,
) -> anyhow::Result<()> {
    for cap in outside(pass_on) {
        match remove_capability_from_bounding_set(cap) {
            Ok(()) | Err(Errno::INVAL) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("dropping {cap:?} from the bounding set")
                });
            }
        }
    }
    let sets = CapabilitySets {
        effective: keep,
        permitted: keep,
        inheritable: pass_on,
    };
    set_capabilities(None, sets).context("capset")?;
    for cap in pass_on.iter() {
        configure_capability_in_ambient_set(cap, true)
            .with_context(|| format!("raising {cap:?} in the ambient set"))?;
    }
    Ok(())
}

/// Every capability number but those in `keep`, one set each.
fn outside(keep: CapabilitySet) -> impl Iterator<Item = CapabilitySet> {
    (0..CAPABILITY_BITS)
        .map(|bit| CapabilitySet::from_bits_retain(1 << bit))
        .filter(move |cap| !keep.contains(*cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_but_the_kept_leaves_the_bounding_set() {
        let gone: Vec<u64> =
            outside(AGENT_CAPABILITIES).map(|c| c.bits()).collect();
        assert_eq!(gone.len(), 62);
        assert!(!gone.contains(&(1 << 12)), "CAP_NET_ADMIN is 12");
        assert!(!gone.contains(&(1 << 13)), "CAP_NET_RAW is 13");
        assert!(gone.contains(&(1 << 21)), "CAP_SYS_ADMIN stays in");
        assert_eq!(AGENT_CAPABILITIES.bits(), 0x3000);
        assert_eq!(
            SWITCH_USER.bits(),
            0xe0,
            "CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7"
        );
        assert_eq!(
            AGENT_CAPABILITIES.union(REALTIME_CAPABILITY).bits(),
            0x80_3000,
            "CAP_SYS_NICE is 23"
        );
        assert_eq!(MEMORY_LOCK_CAPABILITY.bits(), 0x4000, "CAP_IPC_LOCK is 14");
    }
}
