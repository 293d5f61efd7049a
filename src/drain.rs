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
    /// Then wait until no director has an active connection to it
    /// (IPVS), or has forwarded a packet to it for 15 s (nftables, which
    /// counts packets, not connections).
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
/// `--wait`, then until no active connection is left and no packet has
/// been forwarded to it for 15 s (nftables).
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
/// `wait` for its connections (IPVS) or packets (nftables) to end.
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
    let mut quiet = Quiet::default();
    loop {
        let views = rt.block_on(crate::status::ask_all(
            &hosts,
            &BTreeMap::new(),
            hosts.len(),
        ));
        let left = left(&views, address, &services);
        let waited = humantime::format_duration(Duration::from_secs(
            started.elapsed().as_secs(),
        ));
        if left.connections.is_none() && left.packets.is_none() {
            println!(
                "nothing to wait for: no director counts its connections \
                 or packets"
            );
            return Ok(ExitStatus::Ok);
        }
        let connections = left.connections.unwrap_or(0);
        let silent = left.packets.map(|p| quiet.observe(p, Instant::now()));
        match (connections, silent) {
            (0, None) => {
                println!("no active connection left ({waited})");
                return Ok(ExitStatus::Ok);
            }
            (0, Some(s)) if s >= QUIET => {
                println!(
                    "no packet forwarded to it for {}: its flows have ended \
                     ({waited})",
                    humantime::format_duration(QUIET)
                );
                return Ok(ExitStatus::Ok);
            }
            (n, _) if started.elapsed() >= timeout => {
                match n {
                    0 => println!("still forwarded to after {waited}"),
                    n => {
                        println!("{n} active connection(s) left after {waited}")
                    }
                }
                return Ok(ExitStatus::Partial);
            }
            _ => std::thread::sleep(WAIT_EVERY),
        }
    }
}

/// How long no director may have forwarded a packet to a drained real
/// server before `--wait` takes its flows as ended, where the data plane
/// counts packets but not connections (nftables, whose established flows
/// stay pinned to the drained server): three of the agents' count
/// refreshes (`agent::director::forward::RECHECK`).
const QUIET: Duration = Duration::from_secs(15);

/// What the directors still send a drained real server.
#[derive(Debug, Default, PartialEq, Eq)]
struct Left {
    /// Active connections, summed over the directors that count them
    /// (IPVS).
    connections: Option<u64>,
    /// Packets forwarded to it so far, summed over the directors that
    /// count packets but not connections (nftables).
    packets: Option<u64>,
}

/// What every director reports for `address` in `services`. Pure.
fn left(views: &[HostView], address: IpAddr, services: &[String]) -> Left {
    let mut left = Left::default();
    let ours = views
        .iter()
        .flat_map(|h| &h.real_servers)
        .filter(|rs| rs.address == address && services.contains(&rs.service));
    for traffic in ours.filter_map(|rs| rs.traffic) {
        match traffic.active_connections {
            Some(n) => {
                *left.connections.get_or_insert(0) += u64::from(n);
            }
            None => *left.packets.get_or_insert(0) += traffic.packets,
        }
    }
    left
}

/// How long a packet count has stood still. Pure.
#[derive(Debug, Default)]
struct Quiet {
    /// The count last seen, and since when it has been that.
    last: Option<(u64, Instant)>,
}

impl Quiet {
    /// The count is `packets` at `now`: how long it has not moved.
    fn observe(&mut self, packets: u64, now: Instant) -> Duration {
        let since = match self.last {
            Some((p, since)) if p == packets => since,
            _ => now,
        };
        self.last = Some((packets, since));
        now.duration_since(since)
    }
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
    fn connections_and_packets_are_summed_over_the_directors_that_count_them() {
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
                    packets: 7,
                    active_connections: active,
                    ..Traffic::default()
                }),
                drained: true,
                certificate_expiry: None,
            });
            h
        };
        let web = ["web".to_owned()];
        let ipvs = [view("d1", Some(3), "web"), view("d2", Some(0), "web")];
        let counted = |connections, packets| Left { connections, packets };
        assert_eq!(left(&ipvs, r1, &web), counted(Some(3), None));
        // Another service's connections are not this drain's.
        let other = [view("d1", Some(3), "api")];
        assert_eq!(left(&other, r1, &web), counted(None, None));
        // nftables counts packets only: those are what --wait watches.
        let nft = [view("d1", None, "web"), view("d2", None, "web")];
        assert_eq!(left(&nft, r1, &web), counted(None, Some(14)));
        let mixed = [view("d1", Some(2), "web"), view("d2", None, "web")];
        assert_eq!(left(&mixed, r1, &web), counted(Some(2), Some(7)));
    }

    /// `--wait` on nftables: the flows have ended once the count stood
    /// still for [`QUIET`]; any packet starts the wait again.
    #[test]
    fn a_packet_count_is_quiet_once_it_stands_still() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut q = Quiet::default();
        assert_eq!(q.observe(10, at(0)), Duration::ZERO);
        assert_eq!(q.observe(10, at(9)), Duration::from_secs(9));
        assert_eq!(q.observe(11, at(10)), Duration::ZERO);
        assert_eq!(q.observe(11, at(25)), QUIET);
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
