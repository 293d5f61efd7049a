//! Whether a host has the programs its desired state runs (pure): a
//! director with a `bgp:` block runs BIRD; whoever owns an nftables table
//! runs `nft` — a director forwarding by nftables, one with a port group
//! on IPVS (its marks), a real server suppressing ARP by nftables. The
//! facts say what is installed ([`HostFacts`](super::facts::HostFacts)).
//! `plan` refuses such a host before anything changes rather than start
//! an agent that can announce or forward nothing.

use super::desired::HostDesired;
use crate::inventory::agent::{DirectorConfig, RealserverConfig};
use crate::inventory::{ArpSuppression, Dataplane, Mode};

/// The command that installs BIRD.
pub(crate) const INSTALL_BIRD: &str = "apt-get install bird2";

/// The command that installs `nft`.
pub(crate) const INSTALL_NFT: &str = "apt-get install nftables";

/// Whether `desired` runs BIRD and the host, by its facts, has none
/// (`bird == Some(false)`; a host that could not tell is not refused).
pub(crate) fn needs_bird(desired: &HostDesired, bird: Option<bool>) -> bool {
    bird == Some(false) && director(desired).is_some_and(|c| c.bgp.is_some())
}

/// Why `desired` runs `nft` when the host, by its facts, has none
/// (`nft == Some(false)`); `ipvs` is the kernel's, which decides what
/// `dataplane: auto` chooses.
pub(crate) fn needs_nft(
    desired: &HostDesired,
    nft: Option<bool>,
    ipvs: Option<bool>,
) -> Option<&'static str> {
    if nft != Some(false) {
        return None;
    }
    if desired.agent == Mode::Realserver {
        let c: RealserverConfig = desired.agent_config()?;
        return (c.arp_suppression == ArpSuppression::Nftables)
            .then_some("it suppresses ARP by nftables");
    }
    let c = director(desired)?;
    let groups = c.virtual_services.iter().any(|s| s.is_group());
    let nftables = match c.dataplane {
        Dataplane::Nftables => true,
        Dataplane::Auto => ipvs != Some(true),
        Dataplane::Ipvs => false,
    };
    match (c.virtual_services.is_empty(), nftables, groups) {
        (true, _, _) => None,
        (false, true, _) => Some("it forwards by nftables"),
        (false, false, true) => {
            Some("its port groups on IPVS are marked by nftables")
        }
        (false, false, false) => None,
    }
}

/// A director's agent configuration from its desired state.
fn director(desired: &HostDesired) -> Option<DirectorConfig> {
    if desired.agent != Mode::Director {
        return None;
    }
    desired.agent_config()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::kernel::tests::with_config;

    const PLAIN: &str = "cluster: c\nhost: d1\ninterface: eth0\n\
                         address: 10.0.0.11/24\ndataplane: nftables\n\
                         vrrp_instances: []\nvirtual_services: []\n";

    #[test]
    fn r20_a_bgp_director_without_bird_is_refused() {
        let bgp = format!(
            "{PLAIN}bgp:\n  local_as: 65001\n  router_id: 10.0.0.11\n  \
             peers: [{{address: 10.0.0.1, remote_as: 65000}}]\n  \
             drain_grace: 2s\n"
        );
        assert!(needs_bird(&with_config(bgp.clone()), Some(false)));
        assert!(!needs_bird(&with_config(bgp.clone()), Some(true)));
        assert!(!needs_bird(&with_config(bgp.clone()), None), "cannot tell");
        assert!(!needs_bird(&with_config(PLAIN.into()), Some(false)));
        let mut rs = with_config(bgp);
        rs.agent = Mode::Realserver;
        assert!(!needs_bird(&rs, Some(false)));
    }

    /// A director's `nft`: for the nftables data plane (also `auto` on a
    /// kernel without IPVS) and for port groups on IPVS; not for plain
    /// IPVS services, nor without services.
    #[test]
    fn a_director_that_runs_nft_without_it_is_refused() {
        let service = |dataplane: &str, port: &str| {
            PLAIN.replace("dataplane: nftables", dataplane).replace(
                "virtual_services: []\n",
                &format!(
                    "virtual_services:\n- name: web\n  vip: 10.0.0.200\n  \
                     {port}\n  protocol: tcp\n  scheduler: rr\n  \
                     delay_loop: 6s\n  quorum: 1\n  real_servers: []\n"
                ),
            )
        };
        let needs = |config: String, ipvs| {
            needs_nft(&with_config(config), Some(false), ipvs)
        };
        let one = "port: 80";
        let group = "port: 80\n  ports: [80, 443]";
        assert!(
            needs(service("dataplane: nftables", one), Some(true)).is_some()
        );
        assert!(needs(service("dataplane: auto", one), Some(false)).is_some());
        assert!(needs(service("dataplane: auto", one), None).is_some());
        assert_eq!(needs(service("dataplane: auto", one), Some(true)), None);
        assert_eq!(needs(service("dataplane: ipvs", one), Some(true)), None);
        assert_eq!(
            needs(service("dataplane: ipvs", group), Some(true)),
            Some("its port groups on IPVS are marked by nftables")
        );
        assert_eq!(needs(PLAIN.into(), None), None, "no service, no table");
        let rs = "cluster: c\nhost: rs01\ninterface: eth0\n\
                  arp_suppression: nftables\nvips: [10.0.0.200]\n";
        let mut desired = with_config(rs.into());
        desired.agent = Mode::Realserver;
        assert_eq!(
            needs_nft(&desired, Some(false), None),
            Some("it suppresses ARP by nftables")
        );
        let config = service("dataplane: nftables", one);
        assert_eq!(
            needs_nft(&with_config(config.clone()), Some(true), None),
            None
        );
        assert_eq!(
            needs_nft(&with_config(config), None, None),
            None,
            "cannot tell"
        );
    }
}
