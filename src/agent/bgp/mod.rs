//! Active-active directors: the VIPs of `announce: bgp` services announced
//! to the routers by BIRD, which the agent runs as its child and steers
//! (an existing, well-kept BGP daemon; lbdeploy implements no BGP).
//!
//! * `announce` — which VIPs a director announces now (pure);
//! * `conf` — `bird.conf` from the configuration and that set (pure);
//! * `speaker` — BIRD as the agent's child: started, reconfigured when the
//!   file changes, restarted after a backoff, polled for its sessions;
//! * `birdc` — BIRD's control socket: the reply grammar (pure, bounded)
//!   and the few requests the agent makes.

pub(crate) mod announce;
pub(crate) mod birdc;
pub(crate) mod conf;
pub(crate) mod speaker;
