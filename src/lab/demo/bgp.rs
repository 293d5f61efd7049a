//! The active-active story (`announce: bgp` on every service): every
//! director announces the VIP to the lab's router, which spreads the
//! client's flows over all of them (ECMP); every director sends a client
//! to the same real server, since they all compute the same bucket table.
//! A real server dies and leaves every director's pool; a director's
//! agent is killed, BIRD dies with it and the router drops that next hop
//! within the bound the inventory's `bgp:` block gives (BFD's
//! `interval × multiplier`, else the hold time) while the client's
//! long-lived streams and requests go on unbroken through the others;
//! everything comes back and the director announces again.
//!
//! What the router routes is read where it forwards: `ip route show VIP`
//! in the router, one `nexthop via` per announcing director. Which
//! director carried how much is each agent's own count of the frames it
//! forwarded (`lbdeploy agent status`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use super::steps::{Demo, describe};
use crate::agent::director::forward::RECHECK;
use crate::inventory::{Bgp, IfAddr, service_label};

/// How long a director's BGP session may take to come up and carry its
/// announcement to the router: BIRD's connect retry is 5 s and its start
/// delay 5 s after an error; two rounds and the agent's first reconcile.
const SESSION_UP: Duration = Duration::from_secs(25);

/// What measuring a withdrawal adds to the protocol's bound: the kill
/// reaching the host through `lab exec`, the router's BIRD moving the
/// route into the kernel, and the router's poll (a fork every 5 ms).
const WITHDRAW_SLACK: Duration = Duration::from_secs(1);

/// How many addresses the client sends from (its own and more on its
/// segment): a hashing scheduler sends one address to one real server,
/// so the spread over real servers needs several.
const CLIENTS: usize = 10;

/// Requests from each client address, each from a port of its own (the
/// router hashes addresses and ports, so they cross every director).
const PER_CLIENT: u16 = 10;

/// Long-lived connections open across the kill of a director, through
/// each director.
const STREAMS_EACH: usize = 4;

/// How long the client's probe runs before the kill and after the bound.
const PROBE_MARGIN: Duration = Duration::from_secs(1);

impl Demo<'_> {
    /// The active-active story, each step checked against its bound.
    ///
    /// # Errors
    /// The first step that did not behave, saying what was seen.
    pub(super) fn bgp_story(&mut self) -> anyhow::Result<()> {
        let bgp = self.inv.bgp.as_ref().context(
            "every service is announced over BGP, but there is no `bgp:` \
             block",
        )?;
        let (bound, why) = withdraw_bound(bgp);
        let directors: Vec<String> =
            self.inv.directors.iter().map(|d| d.name.clone()).collect();
        let Some(killed) = directors.first().cloned() else {
            bail!("the demo needs a director");
        };
        let (port, url) = self.target();
        self.plan_and_apply("real servers, then the directors one at a time")?;
        let victim = self.ecmp_traffic(&url, &directors)?;
        self.status("after the apply", true)?;
        self.real_server_fails(&url, port, &victim, &directors)?;
        self.director_dies(&url, &killed, bound, &why)?;
        self.status("after the kill", false)?;
        self.announces_again(port, &killed, &victim, &directors)?;
        self.second_plan()
    }

    /// Step 3: every director a next hop at the router; requests from
    /// several client addresses answered, spread over the real servers
    /// and carried by every director. Returns the real server that
    /// answered the client's own address.
    fn ecmp_traffic(
        &mut self,
        url: &str,
        directors: &[String],
    ) -> anyhow::Result<String> {
        let clients = self.client_addresses()?;
        let total = clients.len() * usize::from(PER_CLIENT);
        self.say(&format!(
            "{total} requests from {} client addresses to {url}",
            clients.len()
        ));
        let all: BTreeSet<String> = directors.iter().cloned().collect();
        self.wait(SESSION_UP, || self.next_hops().is_ok_and(|h| h == all))
            .context("the router does not route the VIP over every director")?;
        self.wait(Duration::from_secs(10), || self.answered(url))?;
        let before = self.counts(directors)?;
        let mut seen = BTreeMap::new();
        let mut by_client = Vec::new();
        for (i, from) in clients.iter().enumerate() {
            let base = 40000 + u16::try_from(i)? * PER_CLIENT;
            let from = from.to_string();
            let got = self.spread_from(Some(&from), url, base, PER_CLIENT)?;
            for (who, n) in &got {
                *seen.entry(who.clone()).or_insert(0) += n;
            }
            by_client.push((from, got));
        }
        if let Some(failed) = seen.get("") {
            bail!("{failed} of {total} requests failed: {seen:?}");
        }
        let hashing = self.svc.scheduler.is_hashing()
            || self.svc.persistence_timeout.is_some();
        if hashing
            && let Some((from, got)) =
                by_client.iter().find(|(_, g)| g.len() > 1)
        {
            bail!(
                "the directors sent client address {from} to several real \
                 servers ({}): their tables differ",
                describe(got)
            );
        }
        let servers = self.svc.real_servers.len().min(2);
        if seen.len() < servers {
            bail!(
                "the requests did not spread over the real servers: {seen:?}"
            );
        }
        // The agents' counts are as of their last reconcile (at most
        // RECHECK old): once every director has reconciled since the
        // requests, its count has them all. Each request is at least three
        // frames from the client (its SYN, its request, its ACKs).
        let sent = self.counts(directors)?;
        self.wait(RECHECK + Duration::from_secs(2), || {
            let now = self.counts(directors).unwrap_or_default();
            sent.iter().all(|(d, (_, r))| now.get(d).is_some_and(|n| n.1 > *r))
        })
        .context("the directors did not reconcile")?;
        let now = self.counts(directors)?;
        let carried: BTreeMap<String, u64> = now
            .iter()
            .map(|(d, (n, _))| {
                (d.clone(), n.saturating_sub(before.get(d).map_or(0, |b| b.0)))
            })
            .collect();
        if carried.values().sum::<u64>() < 3 * total as u64 {
            bail!("the directors counted fewer frames than sent: {carried:?}");
        }
        if let Some((idle, _)) = carried.iter().find(|(_, n)| **n == 0) {
            bail!("{idle} carried none of the requests: {carried:?}");
        }
        let sum: u64 = carried.values().sum();
        let shares: Vec<String> = carried
            .iter()
            .map(|(d, n)| format!("{d} {}%", (n * 100 + sum / 2) / sum))
            .collect();
        let note = match hashing {
            true => {
                " (each client address on one real server, whichever \
                     director carried it)"
            }
            false => "",
        };
        self.done(&format!(
            "{}{note}; the router's route has {} next hops ({}); the \
             directors carried {} of {sum} frames",
            describe(&seen),
            all.len(),
            directors.join(", "),
            shares.join(", "),
        ));
        let (_, own) = &by_client[0];
        own.keys().next().cloned().context("nobody answered")
    }

    /// Step 5: `killed`'s agent is killed with `kill -9`; its BIRD dies
    /// with it and the router drops `killed` as a next hop within
    /// `bound`, while the client's streams and requests through the VIP
    /// go on unbroken.
    fn director_dies(
        &mut self,
        url: &str,
        killed: &str,
        bound: Duration,
        why: &str,
    ) -> anyhow::Result<()> {
        let streams = self.stream_ports()?;
        self.say(&format!(
            "kill -9 {killed}'s agent (BIRD dies with it) under {} streams \
             ({STREAMS_EACH} through each director) and a request loop from \
             the client",
            streams.len()
        ));
        let hop = self
            .inv
            .directors
            .iter()
            .find(|d| d.name == killed)
            .map(|d| d.address.addr)
            .context("no such director")?;
        let run_for = PROBE_MARGIN + bound + 2 * PROBE_MARGIN;
        let probe = self.start("client", &probe(url, &streams, run_for))?;
        let vip = self.svc.vip;
        let watch = self.start("router", &withdrawn(vip, hop, 2 * bound))?;
        std::thread::sleep(PROBE_MARGIN);
        let start = since_epoch();
        self.exec_ok(killed, &self.acts.crash_agent())?;
        let end = watch.finish()?;
        let took = end
            .trim()
            .parse::<u128>()
            .map(|end| Duration::from_nanos(end.saturating_sub(start) as u64))
            .map_err(|_| {
                anyhow::anyhow!(
                    "{killed} was still a next hop of {vip} {:.1} s after \
                     its agent was killed",
                    (2 * bound).as_secs_f64()
                )
            })?;
        if took > bound {
            bail!(
                "the router dropped {killed} after {:.2} s, beyond the bound \
                 of {:.2} s ({why})",
                took.as_secs_f64(),
                bound.as_secs_f64()
            );
        }
        let hops = self.next_hops()?;
        let report = Probe::read(&probe.finish()?);
        if !report.broken.is_empty() || report.failed > 0 {
            bail!(
                "the client saw {} of {} streams break ({}) and {} of {} \
                 requests fail",
                report.broken.len(),
                streams.len(),
                report.broken.join("; "),
                report.failed,
                report.requests
            );
        }
        self.done(&format!(
            "the router dropped {killed} after {:.2} s (bound {:.2} s: \
             {why}), next hops now {}; {} streams unbroken, {} requests \
             answered, 0 failed, slowest {:.3} s",
            took.as_secs_f64(),
            bound.as_secs_f64(),
            hops.into_iter().collect::<Vec<_>>().join(", "),
            streams.len(),
            report.requests,
            report.slowest,
        ));
        Ok(())
    }

    /// Step 6: the web server and the killed agent start again; the
    /// director announces again (every director a next hop) and the real
    /// server is back in every director's pool.
    fn announces_again(
        &mut self,
        port: u32,
        killed: &str,
        victim: &str,
        directors: &[String],
    ) -> anyhow::Result<()> {
        self.say("bring everything back");
        self.exec_ok(victim, &self.acts.start_web(port, victim))?;
        self.exec_ok(killed, &self.acts.start_agent())?;
        let all: BTreeSet<String> = directors.iter().cloned().collect();
        let back = self
            .wait(SESSION_UP, || self.next_hops().is_ok_and(|h| h == all))
            .with_context(|| format!("{killed} does not announce again"))?;
        let (_, bound) = self.check_bounds(victim)?;
        self.wait(bound, || {
            directors.iter().all(|d| self.pool_is(d, victim, true))
        })
        .with_context(|| format!("{victim} not back in every pool"))?;
        self.done(&format!(
            "{killed} announces again: {} next hops after {:.1} s (bound \
             {:.0} s); {victim} back in the pool of {}",
            all.len(),
            back.as_secs_f64(),
            SESSION_UP.as_secs_f64(),
            directors.join(", ")
        ));
        Ok(())
    }

    /// Client ports whose flows the router sends through each director,
    /// [`STREAMS_EACH`] per director, as the router hashes them now.
    fn stream_ports(&self) -> anyhow::Result<Vec<u16>> {
        let lab = self.inv.lab.as_ref().context("no `lab:` section")?;
        let router = lab.router.context("no `lab.router`")?;
        let out = self.exec_ok(
            "router",
            &routes_of_ports(
                self.svc.vip,
                self.svc.first_port(),
                lab.client.addr,
                router.client_side.addr,
            ),
        )?;
        let mut by_hop: BTreeMap<IpAddr, Vec<u16>> = BTreeMap::new();
        for line in out.lines() {
            if let [p, "via", hop] =
                line.split_whitespace().collect::<Vec<_>>().as_slice()
                && let (Ok(p), Ok(hop)) = (p.parse(), hop.parse())
            {
                by_hop.entry(hop).or_default().push(p);
            }
        }
        let mut ports = Vec::new();
        for d in &self.inv.directors {
            let mine = by_hop.remove(&d.address.addr).unwrap_or_default();
            if mine.len() < STREAMS_EACH {
                bail!(
                    "the router sends too few client ports through {}: \
                       {mine:?}",
                    d.name
                );
            }
            ports.extend_from_slice(&mine[..STREAMS_EACH]);
        }
        Ok(ports)
    }

    /// The directors the router sends the VIP to now: the next hops of
    /// its route, by name (an address no director has, as it is).
    fn next_hops(&self) -> anyhow::Result<BTreeSet<String>> {
        let vip = self.svc.vip;
        let family = if vip.is_ipv6() { "-6" } else { "-4" };
        let route =
            self.exec_ok("router", &format!("ip {family} route show {vip}"))?;
        Ok(vias(&route)
            .into_iter()
            .map(|hop| {
                self.inv
                    .directors
                    .iter()
                    .find(|d| d.address.addr == hop)
                    .map_or_else(|| hop.to_string(), |d| d.name.clone())
            })
            .collect())
    }

    /// For each of `directors`, by its agent: the frames it has forwarded
    /// to the service's real servers, as of its last reconcile, and how
    /// many reconciles it has made.
    fn counts(
        &self,
        directors: &[String],
    ) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
        let name =
            self.svc.name.clone().unwrap_or_else(|| service_label(self.svc));
        directors
            .iter()
            .map(|d| {
                let status = self
                    .agent_status(d)
                    .with_context(|| format!("{d}'s agent does not answer"))?;
                let details = &status["details"];
                let traffic = &details["forwarding"]["traffic"][name.as_str()];
                let frames = traffic
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, t)| t["packets"].as_u64())
                    .sum();
                let reconciles =
                    details["dataplane_reconciles"]["duration"]["count"]
                        .as_u64()
                        .unwrap_or(0);
                Ok((d.clone(), (frames, reconciles)))
            })
            .collect()
    }

    /// The client's own address and [`CLIENTS`]` - 1` more on its
    /// segment, added to it (an address it has already is kept).
    fn client_addresses(&self) -> anyhow::Result<Vec<IpAddr>> {
        let lab = self.inv.lab.as_ref().context("no `lab:` section")?;
        let mut avoid = vec![lab.controller.addr];
        avoid.extend(lab.router.map(|r| r.client_side.addr));
        let clients = more_addresses(lab.client, &avoid, CLIENTS);
        let own = lab.client.addr;
        let add: String = clients[1..]
            .iter()
            .map(|a| {
                format!("ip addr replace {a}/{} dev $dev; ", lab.client.prefix)
            })
            .collect();
        self.exec_ok(
            "client",
            &format!(
                "dev=$(ip -o addr show to {own} | awk '{{print $2; exit}}'); \
                 {add}true"
            ),
        )?;
        Ok(clients)
    }
}

/// How soon the router must drop a director whose agent (and so BIRD) was
/// killed, from the inventory's `bgp:` block: BFD's detection time
/// (`interval × multiplier`) when BFD is on, else the hold time (BIRD's
/// default, 240 s, when not set), plus [`WITHDRAW_SLACK`]; and why, for a
/// person. BIRD dying tells the router at once (a Cease), so this is the
/// bound for a director that dies without a word, too.
fn withdraw_bound(bgp: &Bgp) -> (Duration, String) {
    let (detect, why) = match (bgp.bfd, bgp.hold_time) {
        (Some(bfd), _) => {
            let interval = bfd.interval.get();
            let m = bfd.multiplier.get();
            (interval * m, format!("BFD {} ms × {m}", interval.as_millis()))
        }
        (None, Some(hold)) => {
            (hold.get(), format!("hold time {} s", hold.get().as_secs_f64()))
        }
        (None, None) => (
            Duration::from_secs(240),
            "BIRD's default hold time 240 s".to_owned(),
        ),
    };
    let slack = WITHDRAW_SLACK.as_secs_f64();
    (detect + WITHDRAW_SLACK, format!("{why} + {slack} s"))
}

/// The next hops in `ip route show` output: one route `via` an address,
/// or a multipath route with a `nexthop via` per director.
fn vias(route: &str) -> BTreeSet<IpAddr> {
    route
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .collect()
}

/// `client`'s address, then the addresses after it in its subnet, `n` in
/// all at most: none of `avoid`, nor the subnet's broadcast address.
fn more_addresses(client: IfAddr, avoid: &[IpAddr], n: usize) -> Vec<IpAddr> {
    let mut out = vec![client.addr];
    let IpAddr::V4(v4) = client.addr else { return out };
    let broadcast = match client.prefix {
        p @ 0..32 => u32::from(v4) | (u32::MAX >> p),
        _ => return out,
    };
    let mut next = u32::from(v4);
    while out.len() < n && next < broadcast - 1 {
        next += 1;
        let a = IpAddr::V4(next.into());
        if !avoid.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Nanoseconds since the epoch: the lab's hosts share this machine's
/// clock, so times taken in them compare with it.
fn since_epoch() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// A shell command for the router that prints `ready`, then, once `hop`
/// is no next hop of `vip` (tried every 5 ms), the time in nanoseconds
/// since the epoch; `never` when it still is after `give_up`.
fn withdrawn(vip: IpAddr, hop: IpAddr, give_up: Duration) -> String {
    let family = if vip.is_ipv6() { "-6" } else { "-4" };
    format!(
        "echo ready; s=$(date +%s%N); \
         while ip {family} route show {vip} | grep -q 'via {hop} '; do \
           sleep 0.005; \
           [ $(( $(date +%s%N) - s )) -gt {} ] && {{ echo never; exit 0; }}; \
         done; date +%s%N",
        give_up.as_nanos()
    )
}

/// A shell command for the client that opens a long-lived connection to
/// `url`'s `/stream` (a line every 50 ms) from each of `ports`, prints
/// `ready`, sends one request after another from ports 42000… until
/// `run_for` is over, and prints a line per stream (`stream PORT
/// CURL_EXIT LINES NAMES…`; curl's 28 is the time limit: it lasted) and
/// per request (`request PORT CURL_EXIT HTTP_CODE SECONDS`).
fn probe(url: &str, ports: &[u16], run_for: Duration) -> String {
    let secs = run_for.as_secs_f64();
    let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
    format!(
        "end=$(( $(date +%s%N) + {} )); \
         for p in {}; do \
           ( out=$(curl -sN --max-time {secs} --local-port $p {url}stream); \
             c=$?; \
             echo \"stream $p $c $(printf '%s\\n' \"$out\" | grep -c .) \
             $(printf '%s\\n' \"$out\" | sort -u | tr '\\n' ' ')\" ) & \
         done; \
         sleep 0.5; echo ready; p=42000; \
         while [ $(date +%s%N) -lt $end ]; do \
           t=$(curl -s -o /dev/null -w '%{{http_code}} %{{time_total}}' \
               --max-time 2 --local-port $p {url}); \
           echo \"request $p $? $t\"; p=$((p + 1)); \
         done; wait",
        run_for.as_nanos(),
        ports.join(" "),
    )
}

/// A shell command for the router that prints, for each client port
/// 31000…31199, `PORT via HOP`: where the router sends the client's flow
/// from that port to `vip`'s `port` (`ip route get` hashes a flow as
/// forwarding does).
fn routes_of_ports(
    vip: IpAddr,
    port: u16,
    client: IpAddr,
    client_side: IpAddr,
) -> String {
    let family = if vip.is_ipv6() { "-6" } else { "-4" };
    format!(
        "dev=$(ip -o addr show to {client_side} | awk '{{print $2; exit}}'); \
         for p in $(seq 31000 31199); do \
           echo \"$p $(ip {family} route get {vip} from {client} iif $dev \
             ipproto tcp sport $p dport {port} | grep -o 'via [^ ]*')\"; \
         done"
    )
}

/// What the client's [`probe`] saw.
#[derive(Debug, Default, PartialEq)]
struct Probe {
    /// The streams that broke: ended before their time, with an error,
    /// with no line, or from more than one real server.
    broken: Vec<String>,
    /// How many requests were sent.
    requests: usize,
    /// How many got no 200.
    failed: usize,
    /// The longest a request took, in seconds.
    slowest: f64,
}

impl Probe {
    /// Read the probe's lines.
    fn read(out: &str) -> Self {
        let mut p = Probe::default();
        for line in out.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["stream", port, code, lines, names @ ..] => {
                    let lasted = *code == "28" && *lines != "0";
                    if !lasted || names.len() != 1 {
                        p.broken.push(format!(
                            "port {port}: curl exit {code}, {lines} lines \
                             from {names:?}"
                        ));
                    }
                }
                ["request", _, code, http, secs] => {
                    p.requests += 1;
                    if *code != "0" || *http != "200" {
                        p.failed += 1;
                    }
                    p.slowest = p.slowest.max(secs.parse().unwrap_or(0.0));
                }
                ["request", ..] => {
                    p.requests += 1;
                    p.failed += 1;
                }
                _ => {}
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bgp(yaml: &str) -> Bgp {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_withdrawal_bound_is_bfd_else_the_hold_time_plus_slack() {
        let peers = "local_as: 65001, peers: [{address: 10.0.0.1, as: 1}]";
        let (b, why) = withdraw_bound(&bgp(&format!(
            "{{{peers}, bfd: {{interval: 100ms, multiplier: 3}}, \
             hold_time: 3s}}"
        )));
        assert_eq!(b, Duration::from_millis(1300));
        assert_eq!(why, "BFD 100 ms × 3 + 1 s");
        let (b, why) =
            withdraw_bound(&bgp(&format!("{{{peers}, hold_time: 3s}}")));
        assert_eq!(b, Duration::from_secs(4));
        assert_eq!(why, "hold time 3 s + 1 s");
        let (b, _) = withdraw_bound(&bgp(&format!("{{{peers}}}")));
        assert_eq!(b, Duration::from_secs(241));
    }

    #[test]
    fn next_hops_are_read_from_one_route_or_many() {
        let multi = "10.20.0.100 proto bird metric 32 \n\
                     \tnexthop via 192.168.1.11 dev eth0 weight 1 \n\
                     \tnexthop via 192.168.1.12 dev eth0 weight 1 \n";
        let hops: Vec<String> =
            vias(multi).iter().map(ToString::to_string).collect();
        assert_eq!(hops, ["192.168.1.11", "192.168.1.12"]);
        let one = "10.20.0.100 via 192.168.1.13 dev eth0 proto bird metric 32";
        assert_eq!(vias(one).len(), 1);
        assert!(vias("").is_empty());
    }

    #[test]
    fn more_client_addresses_follow_it_in_its_subnet() {
        let client: IfAddr = "10.9.0.252/24".parse().unwrap();
        let avoid = ["10.9.0.253".parse().unwrap()];
        let got: Vec<String> = more_addresses(client, &avoid, 10)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.9.0.252", "10.9.0.254"]);
        let v6: IfAddr = "fd00::100/64".parse().unwrap();
        assert_eq!(more_addresses(v6, &[], 10).len(), 1);
    }

    #[test]
    fn the_probe_counts_broken_streams_and_failed_requests() {
        let out = "stream 31000 28 40 rs02\n\
                   stream 31001 56 7 rs02\n\
                   stream 31002 28 40 rs01 rs02\n\
                   request 42000 0 200 0.010\n\
                   request 42001 28 000 2.001\n\
                   request 42002 0 200 0.250\n";
        let p = Probe::read(out);
        assert_eq!(p.broken.len(), 2, "{p:?}");
        assert!(p.broken[0].starts_with("port 31001: curl exit 56"));
        assert_eq!((p.requests, p.failed), (3, 1));
        assert!((p.slowest - 2.001).abs() < 1e-9);
    }

    #[test]
    fn the_router_watch_gives_up_and_the_probe_ends_on_time() {
        let w = withdrawn(
            "10.20.0.100".parse().unwrap(),
            "192.168.1.11".parse().unwrap(),
            Duration::from_secs(2),
        );
        assert!(w.starts_with("echo ready; "), "{w}");
        assert!(w.contains("grep -q 'via 192.168.1.11 '"), "{w}");
        assert!(w.contains("-gt 2000000000 ]"), "{w}");
        let p = probe(
            "http://10.20.0.100:80/",
            &[31000, 31004],
            Duration::from_millis(3500),
        );
        assert!(p.contains("--max-time 3.5 "), "{p}");
        assert!(p.contains("http://10.20.0.100:80/stream"), "{p}");
        assert!(p.contains("for p in 31000 31004; do"), "{p}");
    }
}
