//! The agent's kernel helpers: thin adapters to the kernel interfaces that
//! more than one part of the agent shares. Nothing here decides what the
//! host should look like — the modes ([`super::director`],
//! [`super::realserver`]) and the data plane ([`super::dataplane`]) do —
//! and nothing here owns a task or a life cycle ([`super::runtime`],
//! [`super::supervise`] do).
//!
//! * [`net`] — addresses on interfaces over rtnetlink, shared by both
//!   modes;
//! * [`netlink`] — netlink message framing for what rtnetlink does not
//!   cover (IPVS, the nftables generation counter); pure;
//! * [`nftables`] — loading a table with `nft -f`, shared by both modes;
//! * [`checksum`] — the Internet checksum of VRRP adverts, Neighbour
//!   Advertisements and half-open checks' SYNs; pure;
//! * [`process`] — running an external command (`exec` checks, tracking
//!   scripts, notify and alert hooks) in its own process group, killed
//!   whole on timeout;
//! * [`cgroup`] — under systemd, a cgroup of its own for each such
//!   command, which `setsid` cannot leave;
//! * [`privileges`] — the supervised agent's capabilities and its tie to
//!   the supervisor;
//! * [`accounts`] — a script user's uid and gid, from `/etc/passwd` and
//!   `/etc/group` (the parsing pure).
//! * [`realtime`] — the director's VRRP thread, under `SCHED_RR` when the
//!   configuration asks (`vrrp_rt_priority`).
//! * [`memory`] — the director agent's memory locked when the
//!   configuration asks (`vrrp_no_swap`).

pub mod accounts;
pub mod cgroup;
pub mod checksum;
pub mod memory;
pub mod net;
pub mod netlink;
pub mod nftables;
pub mod privileges;
pub mod process;
pub mod realtime;
