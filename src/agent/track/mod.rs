//! What a VRRP instance tracks besides its peers, keepalived's `track_*`
//! family: each tracked thing is a task that publishes whether it is OK
//! on a `watch` channel, for the instance to fold into its priority.
//! Nothing here knows about VRRP.
//!
//! * [`script`] — a `vrrp_script`: a command run every `interval`, with
//!   `rise`/`fall` hysteresis.

pub mod script;
