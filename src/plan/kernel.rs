//! What a director's kernel can do against what its desired state asks.
//! Pure: the facts say whether the kernel has IPVS
//! ([`HostFacts::ipvs`](super::facts::HostFacts)), the rendered agent
//! configuration says which data plane and schedulers the agent will use.
//!
//! Without IPVS, `dataplane: auto` falls back to nftables, which keeps no
//! connection state: a stateful scheduler (`lc`, `wlc`, …) would be
//! silently not applied, and `dataplane: ipvs` would not forward at all.
//! `plan` refuses such a host before anything changes, naming the service.

use super::desired::HostDesired;
use crate::inventory::Mode;
use crate::inventory::agent::DirectorConfig;

/// Why a director's desired state needs a kernel it does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeedsIpvs {
    /// The first service that cannot be carried out.
    pub service: String,
    /// Its VIP and port, which find it in the inventory (where its name
    /// may be implicit).
    pub vip: std::net::IpAddr,
    /// See `vip`.
    pub port: u16,
    /// Its scheduler, as the inventory spells it.
    pub scheduler: String,
    /// The configuration asks for IPVS by name (`dataplane: ipvs`), not
    /// only through a stateful scheduler.
    pub forced: bool,
}

/// What `desired` asks that a kernel without IPVS cannot give, when the
/// host's facts say it has none (`ipvs == Some(false)`); `None` for a real
/// server, a kernel with IPVS or one that could not tell.
pub(crate) fn needs_ipvs(
    desired: &HostDesired,
    ipvs: Option<bool>,
) -> Option<NeedsIpvs> {
    if desired.agent != Mode::Director || ipvs != Some(false) {
        return None;
    }
    let config: DirectorConfig = desired.agent_config()?;
    let forced = config.dataplane == crate::inventory::Dataplane::Ipvs;
    let svc = config
        .virtual_services
        .iter()
        .find(|s| forced || !s.scheduler.is_stateless())?;
    let scheduler = serde_yaml::to_string(&svc.scheduler).ok()?;
    Some(NeedsIpvs {
        service: svc.name.clone(),
        vip: svc.vip,
        port: svc.port.get() as u16,
        scheduler: scheduler.trim().to_owned(),
        forced,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::plan::desired::DesiredFile;

    fn director(dataplane: &str, scheduler: &str) -> HostDesired {
        let config = format!(
            "cluster: c\nhost: d1\ninterface: eth0\naddress: 10.0.0.11/24\n\
             dataplane: {dataplane}\nvrrp_instances: []\n\
             virtual_services:\n- name: web\n  vip: 10.0.0.200\n  port: 80\n  \
             protocol: tcp\n  scheduler: {scheduler}\n  delay_loop: 6s\n  \
             quorum: 1\n  real_servers: []\n"
        );
        with_config(config)
    }

    /// A director's desired state whose `agent.yml` is `config`.
    pub(crate) fn with_config(config: String) -> HostDesired {
        HostDesired {
            name: "d1".into(),
            agent: Mode::Director,
            files: vec![DesiredFile {
                path: "/etc/lbdeploy/agent.yml".into(),
                mode: 0o600,
                content: config,
                on_change: crate::plan::roles::OnChange::Reload,
                only_with: None,
                older_systemd: None,
            }],
            sysctls: BTreeMap::new(),
            binary: "/usr/local/bin/lbdeploy".into(),
            binary_sha256: String::new(),
            service: "lbdeploy-agent".into(),
            config: "/etc/lbdeploy/agent.yml".into(),
            vips: Vec::new(),
            retire: false,
            undrain: false,
        }
    }

    #[test]
    fn r19_a_stateful_scheduler_without_ipvs_is_refused() {
        let d = director("auto", "wlc");
        let want = NeedsIpvs {
            service: "web".into(),
            vip: "10.0.0.200".parse().unwrap(),
            port: 80,
            scheduler: "wlc".into(),
            forced: false,
        };
        assert_eq!(needs_ipvs(&d, Some(false)), Some(want));
        assert_eq!(needs_ipvs(&d, Some(true)), None);
        assert_eq!(needs_ipvs(&d, None), None, "cannot tell: no refusal");
        assert_eq!(needs_ipvs(&director("auto", "wrr"), Some(false)), None);
        let forced = needs_ipvs(&director("ipvs", "rr"), Some(false));
        assert!(forced.is_some_and(|n| n.forced && n.scheduler == "rr"));
        let mut rs = director("auto", "wlc");
        rs.agent = Mode::Realserver;
        assert_eq!(needs_ipvs(&rs, Some(false)), None);
    }
}
