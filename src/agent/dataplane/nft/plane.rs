//! The nftables back end as the director's forwarding loop drives it: the
//! [`Dataplane`] over [`super::ruleset()`], [`super::compile()`] and the
//! [`Installer`]. The table is kept on every director too, but made inert:
//! only the services whose VIP belongs to an instance this director is
//! master of are jumped to (see [`super::compile()`]), so becoming master
//! changes one rule instead of loading millions of map elements. During
//! the grace after leaving master the instances forwarded before stay
//! forwarded. What to install is decided by the pure parts; this file
//! gathers what they need from the kernel (the MACs) and logs what
//! changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::counters::{self, Counted};
use super::installer::Applied;
use super::{Compiled, Installer, Mac, TABLE};
use crate::agent::dataplane::backend::{Dataplane, Desired, Job, instance_of};
use crate::agent::dataplane::neigh;
use crate::agent::dataplane::stats::TrafficByService;
use crate::agent::sys::nftables;
use crate::inventory::agent::DirectorConfig;

/// The nftables back end: the table installed, and what the next sync
/// must also do.
#[derive(Debug, Default)]
pub(crate) struct Plane {
    /// The nftables table installed, kept to change only what changes.
    installer: Installer,
    /// The real servers' MACs and what the table counted of each, as the
    /// last sync found them.
    macs: BTreeMap<IpAddr, Mac>,
    counted: Counted,
    /// Whether the next sync also checks the kernel's table.
    recheck_due: bool,
    /// The routing netlink socket for neighbour look-ups, opened once.
    netlink: Option<rtnetlink::Handle>,
}

impl Plane {
    /// Keep the table current: every service's real servers, and the
    /// instances forwarded — those this director is master of, or during
    /// the grace after leaving master, those it forwarded before.
    async fn sync_now(&mut self, d: &Desired<'_>) -> anyhow::Result<()> {
        let config = d.config;
        let forwarding = match (d.leaving, self.installer.installed()) {
            (true, Some(installed)) => installed.forwarding.clone(),
            _ => d.masters.clone(),
        };
        let rips: Vec<IpAddr> = config
            .virtual_services
            .iter()
            .flat_map(|s| {
                let sorry = s.sorry_server.map(|a| a.ip());
                s.real_servers.iter().map(|r| r.address).chain(sorry)
            })
            .collect();
        let handle = match &self.netlink {
            Some(h) => h.clone(),
            None => {
                let (connection, handle, _) = rtnetlink::new_connection()?;
                tokio::spawn(connection);
                self.netlink = Some(handle.clone());
                handle
            }
        };
        let macs = neigh::resolve(&handle, &rips).await?;
        let own = own_mac(&config.interface)?;
        let rules = super::ruleset(
            config,
            own,
            &macs,
            |svc, ip| (d.up)(svc, ip),
            |svc| (d.has_quorum)(svc),
            forwarding,
        )?;
        let desired = super::compile(rules, self.installer.installed());
        let jumps = desired.jumps();
        let before = self.installer.installed().map(Compiled::jumps);
        let applied = self.installer.apply(desired).await?;
        if applied == Applied::Whole || before.as_ref() != Some(&jumps) {
            let forwarded = self.report(config).len();
            tracing::info!(
                "data plane: forwarding {forwarded} of {} service(s) on {}",
                config.virtual_services.len(),
                config.interface
            );
        }
        if std::mem::take(&mut self.recheck_due) {
            self.installer.verify().await?;
        }
        // Counts are for the status: one that cannot be read is missing
        // there, and forwarding goes on.
        let listing =
            nftables::query(&["-j", "list", "sets", "table", "netdev", TABLE]);
        self.counted =
            listing.await.map(|l| counters::parse(&l)).unwrap_or_default();
        self.macs = macs;
        Ok(())
    }
}

impl Dataplane for Plane {
    fn sync<'a>(
        &'a mut self,
        desired: &'a Desired<'a>,
    ) -> Job<'a, anyhow::Result<()>> {
        Box::pin(self.sync_now(desired))
    }

    fn recheck(&mut self) {
        self.recheck_due = true;
    }

    /// Whether any instance's services are jumped to.
    fn forwarding(&self) -> bool {
        self.installer.installed().is_some_and(|t| !t.jumps().is_empty())
    }

    fn withdraw(&mut self) -> Job<'_, anyhow::Result<bool>> {
        Box::pin(async {
            if self.installer.installed().is_none() {
                return Ok(false);
            }
            self.installer.remove().await?;
            Ok(true)
        })
    }

    fn report(&self, config: &DirectorConfig) -> Vec<String> {
        match self.installer.installed() {
            Some(t) => served(config, &t.forwarding),
            None => Vec::new(),
        }
    }

    /// From the counting sets, as the last sync read them.
    fn traffic(&self, config: &DirectorConfig) -> TrafficByService {
        match self.installer.installed() {
            Some(t) => counters::traffic(config, t, &self.macs, &self.counted),
            None => TrafficByService::new(),
        }
    }
}

/// The names of the services of `config` whose VIP belongs to one of the
/// `instances`.
fn served(
    config: &DirectorConfig,
    instances: &BTreeSet<String>,
) -> Vec<String> {
    config
        .virtual_services
        .iter()
        .filter(|s| {
            instance_of(config, s).is_some_and(|i| instances.contains(i))
        })
        .map(|s| s.name.clone())
        .collect()
}

/// This director's MAC on `interface`.
fn own_mac(interface: &str) -> anyhow::Result<Mac> {
    let path = format!("/sys/class/net/{interface}/address");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
    text.parse().map_err(|e: String| anyhow::anyhow!(e))
}
