//! A director's configuration and what is known of its real servers, as
//! the nftables table to install ([`Ruleset`]). Pure. Compiling it into
//! buckets and text is [`super::compile()`]'s; installing it is
//! [`super::installer`]'s; the IPVS back end has its own
//! ([`crate::agent::dataplane::ipvs::desired`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::{Mac, Proto, Ruleset, Service};
use crate::agent::dataplane::backend::{instance_of, sorry_takes_over};
use crate::agent::dataplane::buckets::{self, Backend};
use crate::inventory::Protocol;
use crate::inventory::agent::{DirectorConfig, ServiceConfig};

/// A service the nftables back end cannot forward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "service {service}: the `{scheduler}` scheduler needs connection state, \
     which the nftables data plane does not keep — use `dataplane: ipvs` \
     (on a kernel with IPVS) or one of rr, wrr, sh, mh"
)]
pub struct Unsupported {
    /// The service's name.
    pub service: String,
    /// Its scheduler.
    pub scheduler: String,
}

/// How long a TCP flow keeps its real server after its last packet: the
/// kernel's IPVS keeps an established connection as long (`ipvsadm
/// --set`'s first value, 900 s by default).
const PIN_TCP: Duration = Duration::from_secs(900);

/// The same for a UDP flow: IPVS's UDP timeout, 300 s.
const PIN_UDP: Duration = Duration::from_secs(300);

/// The nftables table for `config`: every service whose VIP a VRRP
/// instance holds (no other can be forwarded: only a master has the VIP),
/// with the real servers whose MAC is known in `macs` (the others cannot
/// be forwarded to and are left out) and for which `up` says yes — or,
/// when `has_quorum` says the service lost its quorum or none of them is
/// left, its sorry server; the services of the instances in `forwarding`
/// are forwarded. Pure.
///
/// # Errors
/// [`Unsupported`] for a scheduler that needs connection state.
pub fn ruleset(
    config: &DirectorConfig,
    mac: Mac,
    macs: &BTreeMap<IpAddr, Mac>,
    up: impl Fn(&ServiceConfig, IpAddr) -> bool,
    has_quorum: impl Fn(&ServiceConfig) -> bool,
    forwarding: BTreeSet<String>,
) -> Result<Ruleset, Unsupported> {
    let mut services = Vec::new();
    for svc in &config.virtual_services {
        let Some(instance) = instance_of(config, svc) else { continue };
        if !svc.scheduler.is_stateless() {
            return Err(Unsupported {
                service: svc.name.clone(),
                scheduler: format!("{:?}", svc.scheduler).to_lowercase(),
            });
        }
        let mut backends: Vec<(Backend, Mac)> = svc
            .real_servers
            .iter()
            .filter(|rs| up(svc, rs.address) && rs.weight > 0)
            .filter_map(|rs| {
                let key = format!("{}:{}", rs.address, rs.port);
                Some((
                    Backend { key, weight: rs.weight },
                    *macs.get(&rs.address)?,
                ))
            })
            .collect();
        let mut live: Vec<Mac> = svc
            .real_servers
            .iter()
            .filter(|rs| up(svc, rs.address))
            .filter_map(|rs| macs.get(&rs.address).copied())
            .collect();
        let weight: u64 =
            backends.iter().map(|(b, _)| u64::from(b.weight)).sum();
        if sorry_takes_over(has_quorum(svc), weight)
            && let Some(sorry) = svc.sorry_server
            && let Some(mac) = macs.get(&sorry.ip())
        {
            let key = sorry.to_string();
            backends = vec![(Backend { key, weight: 1 }, *mac)];
            live.push(*mac);
        }
        let pin_for = match (svc.persistence_timeout, svc.protocol) {
            (Some(t), _) => t.0,
            (None, Protocol::Tcp) => PIN_TCP,
            (None, Protocol::Udp) => PIN_UDP,
        };
        services.push(Service {
            name: svc.name.clone(),
            vip: svc.vip,
            ports: svc.spans(),
            proto: match svc.protocol {
                Protocol::Tcp => Proto::Tcp,
                Protocol::Udp => Proto::Udp,
            },
            persistent: svc.persistence_timeout.is_some()
                || svc.scheduler.is_hashing(),
            buckets: buckets::count(svc.real_servers.len()),
            backends,
            live,
            // At least a second: `timeout 0s` would be no timeout.
            pin_for: u32::try_from(pin_for.as_secs().max(1))
                .unwrap_or(u32::MAX),
            instance: instance.to_owned(),
        });
    }
    Ok(Ruleset {
        interface: config.interface.clone(),
        mac,
        services,
        forwarding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "cluster: c
host: d1
interface: eth0
address: 10.0.0.11/24
dataplane: nftables
vrrp_instances:
- name: VI_1
  virtual_router_id: 51
  version: 2
  advert_int: 1s
  priority: 120
  preempt: true
  virtual_addresses:
  - address: 10.0.0.200/24
virtual_services:
- name: web
  vip: 10.0.0.200
  port: 80
  protocol: tcp
  scheduler: wrr
  delay_loop: 6s
  quorum: 1
  real_servers:
  - { address: 10.0.0.21, port: 80, weight: 2 }
  - { address: 10.0.0.22, port: 80, weight: 1 }
  - { address: 10.0.0.23, port: 80, weight: 1 }
";

    fn master() -> BTreeSet<String> {
        ["VI_1".to_owned()].into()
    }

    fn config(text: &str) -> DirectorConfig {
        serde_yaml::from_str(text).unwrap()
    }

    /// `text`'s ruleset on this director, master of VI_1, with real
    /// servers up as `up` says and the quorum held or not.
    fn rules(
        text: &str,
        macs: &BTreeMap<IpAddr, Mac>,
        up: impl Fn(IpAddr) -> bool,
        quorum: bool,
    ) -> Ruleset {
        let own = Mac([2, 0, 0, 0, 0, 0xaa]);
        ruleset(&config(text), own, macs, |_, ip| up(ip), |_| quorum, master())
            .unwrap()
    }

    fn macs() -> BTreeMap<IpAddr, Mac> {
        [(21, 1), (22, 2)]
            .into_iter()
            .map(|(ip, m)| {
                (
                    format!("10.0.0.{ip}").parse().unwrap(),
                    Mac([2, 0, 0, 0, 0, m]),
                )
            })
            .collect()
    }

    #[test]
    fn unresolved_and_down_real_servers_are_left_out() {
        let r = rules(CONFIG, &macs(), |_| true, true);
        let keys: Vec<&str> = r.services[0]
            .backends
            .iter()
            .map(|(b, _)| b.key.as_str())
            .collect();
        assert_eq!(keys, ["10.0.0.21:80", "10.0.0.22:80"]);
        assert_eq!(r.services[0].backends[0].0.weight, 2);
        assert!(!r.services[0].persistent);
        let down: IpAddr = "10.0.0.21".parse().unwrap();
        let r = rules(CONFIG, &macs(), |ip| ip != down, true);
        assert_eq!(r.services[0].backends.len(), 1);
    }

    #[test]
    fn persistence_and_source_hashing_hash_the_client_only() {
        let text = CONFIG.replace("scheduler: wrr", "scheduler: sh");
        assert!(rules(&text, &macs(), |_| true, true).services[0].persistent);
        let text = CONFIG
            .replace("  quorum: 1", "  quorum: 1\n  persistence_timeout: 50s");
        assert!(rules(&text, &macs(), |_| true, true).services[0].persistent);
    }

    #[test]
    fn the_sorry_server_takes_over_when_every_real_server_is_down() {
        let text = CONFIG.replace(
            "  quorum: 1",
            "  quorum: 1\n  sorry_server: 10.0.0.99:80",
        );
        let mut m = macs();
        m.insert("10.0.0.99".parse().unwrap(), Mac([2, 0, 0, 0, 0, 99]));
        let r = rules(&text, &m, |_| false, false);
        let keys: Vec<&str> = r.services[0]
            .backends
            .iter()
            .map(|(b, _)| b.key.as_str())
            .collect();
        assert_eq!(keys, ["10.0.0.99:80"]);
        let r = rules(&text, &m, |_| true, true);
        assert_eq!(
            r.services[0].backends.len(),
            2,
            "not while a real server is up"
        );
        let r = rules(&text, &m, |_| true, false);
        assert_eq!(
            r.services[0].backends[0].0.key, "10.0.0.99:80",
            "but once the service lost its quorum"
        );
        assert_eq!(r.services[0].backends.len(), 1);
    }

    #[test]
    fn without_a_sorry_server_losing_quorum_keeps_the_live_servers() {
        let r = rules(CONFIG, &macs(), |_| true, false);
        assert_eq!(r.services[0].backends.len(), 2);
    }

    #[test]
    fn services_belong_to_the_instance_of_their_vip_or_are_left_out() {
        let r = rules(CONFIG, &macs(), |_| true, true);
        assert_eq!(r.services[0].instance, "VI_1");
        assert_eq!(r.forwarding, master());
        let text = CONFIG.replace("vip: 10.0.0.200", "vip: 10.0.0.201");
        let r = rules(&text, &macs(), |_| true, true);
        assert!(r.services.is_empty(), "no instance holds 10.0.0.201");
    }

    #[test]
    fn stateful_schedulers_are_refused_naming_ipvs() {
        let text = CONFIG.replace("scheduler: wrr", "scheduler: lc");
        let e = ruleset(
            &config(&text),
            Mac([0; 6]),
            &macs(),
            |_, _| true,
            |_| true,
            master(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("`lc` scheduler")
                && e.to_string().contains("dataplane: ipvs")
        );
    }
}
