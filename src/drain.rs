//! `lbdeploy drain HOST` and `lbdeploy undrain HOST`: a real server taken
//! out of service (or put back) on every director at once, at runtime,
//! without editing the inventory. Each director runs `lbdeploy agent
//! drain ADDRESS` (or `undrain`) over the same SSH transport as `status`,
//! which records it in the director's own drained list and has its agent
//! reload ([`crate::agent::drain`] says what weight 0 means on each data
//! plane). Which address and services HOST names is decided here, from
//! the inventory, before any director is asked ([`target`], pure).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Args;

use crate::apply::prepare::{Inputs, prepare};
use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::inventory::{Inventory, Mode, System, service_label};
use crate::status::report::HostView;
use crate::transport::{Connection, Target};

/// Which real server `drain` and `undrain` take.
#[derive(Debug, Args)]
pub struct Which {
    /// The real server: its inventory name, or the address of an
    /// unmanaged one.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Only in this service (by default every service it is in).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
}

/// Options of `drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The real server.
    #[command(flatten)]
    pub which: Which,
    /// Then wait until no director has an active connection to it (IPVS;
    /// nftables counts none to wait for).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: the longest wait.
    #[arg(long, value_name = "DURATION", default_value = "5m",
          value_parser = humantime::parse_duration, requires = "wait")]
    pub timeout: Duration,
}

/// How often `--wait` asks the directors again.
const WAIT_EVERY: Duration = Duration::from_secs(1);

/// The address `host` names in `inv`, and the services it is in: a
/// managed real server by name, or an unmanaged one by address; with
/// `service`, that service only, which must have it. Pure.
///
/// # Errors
/// A host that is no real server of any service, or a service that does
/// not have it, named as the inventory spells them.
pub fn target(
    inv: &Inventory,
    host: &str,
    service: Option<&str>,
) -> Result<(IpAddr, Vec<String>), String> {
    let managed = inv.real_servers.iter().find(|r| r.name == host);
    let address = match (managed, host.parse::<IpAddr>()) {
        (Some(r), _) => r.address.addr,
        (None, Ok(address)) => address,
        (None, Err(_)) => {
            return Err(format!(
                "`{host}` is not a real server of the inventory (a name \
                 under `real_servers:` or an address under a service's \
                 `real_servers:`)"
            ));
        }
    };
    let has_it = |vs: &crate::inventory::VirtualService| {
        vs.real_servers.iter().any(|rs| {
            rs.host.as_deref() == Some(host) || rs.address == Some(address)
        })
    };
    // Named as the agents name them.
    let services: Vec<String> = inv
        .virtual_services
        .iter()
        .filter(|vs| has_it(vs))
        .map(|vs| vs.name.clone().unwrap_or_else(|| service_label(vs)))
        .filter(|name| service.is_none_or(|s| name == s))
        .collect();
    if services.is_empty() {
        return Err(match service {
            Some(s) => format!("service `{s}` has no real server `{host}`"),
            None => format!("no service has real server `{host}`"),
        });
    }
    Ok((address, services))
}

/// `lbdeploy drain`: every director asked at once, one line each; with
/// `--wait`, then until no active connection is left.
///
/// # Errors
/// An inventory that does not load, or a HOST or service it does not
/// have: before any director is asked.
pub fn drain(
    global: &GlobalArgs,
    args: &DrainArgs,
) -> anyhow::Result<ExitStatus> {
    let wait = args.wait.then_some(args.timeout);
    run(global, &args.which, true, wait)
}

/// `lbdeploy undrain`: every director asked at once, one line each.
///
/// # Errors
/// As [`drain`]'s.
pub fn undrain(
    global: &GlobalArgs,
    which: &Which,
) -> anyhow::Result<ExitStatus> {
    run(global, which, false, None)
}

/// Drain (`drain` true) or undrain on every director, then wait up to
/// `wait` for the active connections to end.
fn run(
    global: &GlobalArgs,
    args: &Which,
    drain: bool,
    wait: Option<Duration>,
) -> anyhow::Result<ExitStatus> {
    let inputs = Inputs {
        inventory: global.inventory.clone(),
        limit: vec!["role:director".to_owned()],
        ..Inputs::default()
    };
    let prepared = prepare(&inputs, &System)?;
    let (address, services) =
        target(&prepared.inventory, &args.host, args.service.as_deref())
            .map_err(|e| {
                anyhow::anyhow!("{}: {e}", global.inventory.display())
            })?;
    let mut argv = vec![
        "agent".to_owned(),
        if drain { "drain" } else { "undrain" }.to_owned(),
        address.to_string(),
    ];
    if let Some(s) = &args.service {
        argv.extend(["--service".to_owned(), s.clone()]);
    }
    let directors: Vec<_> = prepared
        .hosts
        .iter()
        .filter(|(d, _)| d.agent == Mode::Director)
        .map(|(d, t)| (d.name.clone(), d.binary.clone(), t.clone()))
        .collect();
    let rt = crate::apply::survey::runtime()?;
    let answers = rt.block_on(async {
        let asked = directors.iter().map(|(name, binary, target)| {
            let argv = &argv;
            async move {
                let program = binary.to_string_lossy();
                (name.clone(), ask(target, &program, argv).await)
            }
        });
        futures_util::future::join_all(asked).await
    });
    let verb = if drain { "draining" } else { "undraining" };
    println!("{verb} {} ({address}) in {}", args.host, services.join(", "));
    let mut failed = false;
    for (name, answer) in answers {
        let line = match answer {
            Ok(said) => format!("  {name}: {said}"),
            Err(e) => {
                failed = true;
                format!("  {name}: FAILED: {e}")
            }
        };
        println!("{}", crate::util::terminal::escape_lines(&line));
    }
    if failed {
        return Ok(ExitStatus::Partial);
    }
    let Some(timeout) = wait else { return Ok(ExitStatus::Ok) };
    let hosts = crate::status::askable(&prepared);
    let started = Instant::now();
    loop {
        let views = rt.block_on(crate::status::ask_all(
            &hosts,
            &BTreeMap::new(),
            hosts.len(),
        ));
        let active = active(&views, address, &services);
        let waited = humantime::format_duration(Duration::from_secs(
            started.elapsed().as_secs(),
        ));
        match active {
            None => {
                println!(
                    "nothing to wait for: nftables counts no connections \
                     (established flows stay on the drained server, \
                     pinned, until they end)"
                );
                return Ok(ExitStatus::Ok);
            }
            Some(0) => {
                println!("no active connection left ({waited})");
                return Ok(ExitStatus::Ok);
            }
            Some(n) if started.elapsed() >= timeout => {
                println!("{n} active connection(s) left after {waited}");
                return Ok(ExitStatus::Partial);
            }
            Some(_) => std::thread::sleep(WAIT_EVERY),
        }
    }
}

/// The active connections every director reports to `address` in
/// `services`; `None` when none counts connections. Pure.
fn active(
    views: &[HostView],
    address: IpAddr,
    services: &[String],
) -> Option<u64> {
    let counts = views.iter().flat_map(|h| &h.real_servers).filter_map(|rs| {
        let ours = rs.address == address && services.contains(&rs.service);
        ours.then_some(rs.traffic?.active_connections?)
    });
    counts.map(u64::from).reduce(|a, b| a + b)
}

/// Run `program argv…` on one director: what it printed, or why not.
async fn ask(
    target: &Target,
    program: &str,
    argv: &[String],
) -> Result<String, String> {
    let conn = Connection::open(target).await.map_err(|e| e.to_string())?;
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = conn.run(program, &args, b"").await;
    conn.close().await;
    let out = out.map_err(|e| e.to_string())?;
    let said = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    match out.success() {
        true => Ok(said(&out.stdout)),
        false => Err(said(&out.stderr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        serde_yaml::from_str(
            "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
real_servers:
  - { name: r1, address: 10.0.0.21/24, interface: eth0 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 1, virtual_addresses: [{ address: 10.0.0.100/24 }] }
virtual_services:
  - name: web
    vip: 10.0.0.100
    port: 80
    scheduler: rr
    real_servers: [{ host: r1, port: 80 }, { address: 10.0.0.31, port: 80 }]
  - name: api
    vip: 10.0.0.100
    port: 8080
    scheduler: rr
    real_servers: [{ host: r1, port: 8080 }]
",
        )
        .unwrap()
    }

    #[test]
    fn a_managed_host_by_name_an_unmanaged_one_by_address() {
        let inv = inventory();
        let r1: IpAddr = "10.0.0.21".parse().unwrap();
        assert_eq!(
            target(&inv, "r1", None),
            Ok((r1, vec!["web".into(), "api".into()]))
        );
        assert_eq!(
            target(&inv, "r1", Some("api")),
            Ok((r1, vec!["api".into()]))
        );
        let other: IpAddr = "10.0.0.31".parse().unwrap();
        assert_eq!(
            target(&inv, "10.0.0.31", None),
            Ok((other, vec!["web".into()]))
        );
    }

    #[test]
    fn active_connections_are_summed_over_the_directors_that_count_them() {
        use crate::agent::dataplane::stats::Traffic;
        use crate::status::report::RealServerView;
        let r1: IpAddr = "10.0.0.21".parse().unwrap();
        let view = |name: &str, active: Option<u32>, service: &str| {
            let mut h = HostView::failed(name, Mode::Director, String::new());
            h.real_servers.push(RealServerView {
                service: service.into(),
                address: r1,
                up: true,
                weight: None,
                reason: None,
                traffic: Some(Traffic {
                    active_connections: active,
                    ..Traffic::default()
                }),
                drained: true,
            });
            h
        };
        let web = ["web".to_owned()];
        let ipvs = [view("d1", Some(3), "web"), view("d2", Some(0), "web")];
        assert_eq!(active(&ipvs, r1, &web), Some(3));
        // Another service's connections are not this drain's.
        let other = [view("d1", Some(3), "api")];
        assert_eq!(active(&other, r1, &web), None);
        let nft = [view("d1", None, "web")];
        assert_eq!(active(&nft, r1, &web), None, "nothing to wait for");
    }

    #[test]
    fn what_the_inventory_does_not_have_is_refused() {
        let inv = inventory();
        let e = target(&inv, "r9", None).unwrap_err();
        assert!(e.starts_with("`r9` is not a real server"), "{e}");
        assert_eq!(
            target(&inv, "10.0.0.31", Some("api")).unwrap_err(),
            "service `api` has no real server `10.0.0.31`"
        );
        assert_eq!(
            target(&inv, "10.0.0.99", None).unwrap_err(),
            "no service has real server `10.0.0.99`"
        );
        // A director is no real server.
        assert!(target(&inv, "d1", None).is_err());
    }
}
