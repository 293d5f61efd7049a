//! The on-host daemon: the same binary that `apply` installs on every host,
//! run as the agent.
//!
//! Today it holds only the VRRP protocol core ([`vrrp`]). The real-server
//! role (VIP on `lo`, ARP sysctls), the director's data plane (IPVS, nft DSR)
//! and the health checkers join it as `realserver`, `dataplane` and `check`.
//! Each keeps its pure logic apart from the thin I/O loop that drives it.

pub mod vrrp;
