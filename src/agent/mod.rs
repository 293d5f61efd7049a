//! The on-host daemon: the same `lbdeploy` binary that `apply` installs on
//! every host, run as `lbdeploy agent director|realserver --config FILE`.
//!
//! * [`paths`] — the runtime directory (`/run/lbdeploy`, or
//!   `$LBDEPLOY_RUN_DIR`): status socket, supervisor PID file, log;
//! * [`status`] — the status protocol: one JSON line on the socket, and the
//!   client ([`status::query`]) other code uses to ask;
//! * [`runtime`] — the foreground agent: configuration, status server,
//!   SIGHUP reload, SIGTERM shutdown;
//! * [`metrics`] — the same status as Prometheus metrics, over a small
//!   bounded HTTP/1.1 endpoint;
//! * [`supervise`] — lbdeploy's own supervisor for hosts without systemd,
//!   and the `start`/`stop`/`restart`/`reload` commands built on it;
//! * `logfile` — its `agent.log`: 0600, fed through a non-blocking pipe,
//!   capped and rotated by the supervisor;
//! * `holdings` — what a director may hold (VIPs, data plane), written
//!   to `RUN/holdings.json` before it takes any of it;
//! * `cleanup` — `agent cleanup`: removes what the holdings file lists
//!   once the agent is gone (the fail-safe rule: a host whose agent is not
//!   running holds nothing of it);
//! * [`command`] — `lbdeploy agent …`: its arguments, and the dispatch
//!   to the modules above;
//! * [`director`] — the director mode's worker: which VRRP instances run
//!   (restarting only those a reload changed), and the forwarding loop
//!   that follows them with health checks and the data plane;
//! * [`vrrp`] — VRRP: codec, pure state machine, the instance's settings
//!   and receive checks, its sockets and its I/O loop;
//! * [`dataplane`] — the kernel data plane behind one trait
//!   ([`dataplane::Dataplane`]): IPVS, or nftables DSR;
//! * [`check`] — health checks of the real servers;
//! * [`drain`] — real servers drained at runtime (`lbdeploy drain`):
//!   the director's list, and their weight 0;
//! * [`track`] — what a VRRP instance tracks besides its peers: scripts
//!   (keepalived's `vrrp_script`), each a task publishing OK or failed;
//! * [`alert`] — email, webhook and exec notifications;
//! * `bgp` — VIPs announced over BGP by BIRD, the agent's child;
//! * [`sys`] — the kernel helpers both modes share: addresses over
//!   rtnetlink, netlink framing, `nft -f`, the Internet checksum;
//! * [`realserver`] — the real-server mode: ARP sysctls and the VIPs kept on
//!   `lo`.
//!
//! Each keeps its pure logic apart from the thin I/O loop that drives it.

pub mod alert;
pub(crate) mod bgp;
pub mod check;
pub(crate) mod cleanup;
pub mod command;
pub mod dataplane;
pub mod director;
pub mod drain;
pub(crate) mod holdings;
pub(crate) mod logfile;
pub mod mastership;
pub mod metrics;
pub mod paths;
pub mod realserver;
pub mod runtime;
pub mod script_security;
pub mod status;
pub mod supervise;
pub mod sys;
pub mod track;
pub mod vrrp;
