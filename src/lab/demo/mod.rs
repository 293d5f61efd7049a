//! `lbdeploy lab demo`: the whole story in one command, for a person to
//! watch. The lab comes up, the controller plans and applies the
//! inventory, the client's requests go through the VIP, a real server dies
//! and leaves the pool, a director dies and the cluster carries on without
//! it, everything comes back, a second plan is empty, and the lab goes
//! away (unless `--keep`).
//!
//! The inventory picks the story: when every VIP is announced over BGP,
//! the active-active one (`bgp`: every director announces the VIP to the
//! lab's router, one is killed and the router drops it within the BFD or
//! hold-time bound); otherwise the VRRP one (`vrrp`: the master is killed
//! and the backup takes the VIP within Master_Down_Interval). Both are
//! seven steps.
//!
//! Every step runs what an operator would run (`lbdeploy plan/apply` on the
//! controller, `curl` on the client, `kill` or `systemctl` on a host,
//! `ip route` on the router) through `lab exec` (`steps`), and checks the
//! outcome against a bound from the configuration (check timing, VRRP's
//! Master_Down_Interval, BFD's detection time); the demo exits 0 only if
//! every step behaved. Hosts are acted on as their init expects
//! ([`Acts`]).

mod acts;
mod bgp;
mod steps;
mod vrrp;

pub use acts::{Acts, kill_here};
pub(crate) use steps::Demo;
use steps::Story;

impl Demo<'_> {
    /// Run the demo on a lab that is up: the inventory's story, each step
    /// checked against its bound.
    ///
    /// # Errors
    /// The first step that did not behave, saying what was seen.
    pub fn run(&mut self) -> anyhow::Result<()> {
        match self.story {
            Story::Vrrp => self.vrrp_story(),
            Story::Bgp => self.bgp_story(),
        }
    }
}
