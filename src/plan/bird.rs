//! Whether a director's host has the BGP daemon its desired state asks
//! for (pure): a director with a `bgp:` block runs BIRD, and the facts
//! say whether it is installed ([`HostFacts::bird`](super::facts::HostFacts)).
//! `plan` refuses such a host before anything changes rather than start
//! an agent that can announce nothing.

use super::desired::HostDesired;
use crate::inventory::Mode;
use crate::inventory::agent::DirectorConfig;

/// The command that installs what is missing.
pub(crate) const INSTALL: &str = "apt-get install bird2";

/// Whether `desired` runs BIRD and the host, by its facts, has none
/// (`bird == Some(false)`; a host that could not tell is not refused).
pub(crate) fn needs_bird(desired: &HostDesired, bird: Option<bool>) -> bool {
    if desired.agent != Mode::Director || bird != Some(false) {
        return false;
    }
    let Some(file) = desired.files.iter().find(|f| f.path == desired.config)
    else {
        return false;
    };
    // `prepare` parsed the same text already: it parses.
    crate::inventory::agent::parse::<DirectorConfig>(&file.path, &file.content)
        .is_ok_and(|c| c.bgp.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::kernel::tests::with_config;

    #[test]
    fn r20_a_bgp_director_without_bird_is_refused() {
        let plain = "cluster: c\nhost: d1\ninterface: eth0\n\
                     address: 10.0.0.11/24\ndataplane: nftables\n\
                     vrrp_instances: []\nvirtual_services: []\n";
        let bgp = format!(
            "{plain}bgp:\n  local_as: 65001\n  router_id: 10.0.0.11\n  \
             peers: [{{address: 10.0.0.1, remote_as: 65000}}]\n  \
             drain_grace: 2s\n"
        );
        assert!(needs_bird(&with_config(bgp.clone()), Some(false)));
        assert!(!needs_bird(&with_config(bgp.clone()), Some(true)));
        assert!(!needs_bird(&with_config(bgp.clone()), None), "cannot tell");
        assert!(!needs_bird(&with_config(plain.into()), Some(false)));
        let mut rs = with_config(bgp);
        rs.agent = Mode::Realserver;
        assert!(!needs_bird(&rs, Some(false)));
    }
}
