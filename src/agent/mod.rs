//! The on-host daemon: the same `lbdeploy` binary that `apply` installs on
//! every host, run as `lbdeploy agent director|realserver --config FILE`.
//!
//! * `config` — what the agent reads (rendered by `apply` from the
//!   inventory);
//! * [`vrrp`] — the VRRP protocol core: codec and pure state machine.
//!
//! The real-server role (VIP on `lo`, ARP sysctls), the director's data plane
//! (IPVS, nft DSR) and the health checkers join as `realserver`, `dataplane`
//! and `check`. Each keeps its pure logic apart from the thin I/O loop that
//! drives it.

pub mod config;
pub mod vrrp;
