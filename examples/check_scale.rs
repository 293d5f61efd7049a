//! What checking many real servers costs one agent: N TCP checks every
//! second (keepalived's `delay_loop 1`) against N listeners on the
//! loopback, for a while; prints the agent's CPU share and RSS.
//!
//! ```sh
//! cargo run --release --example check_scale -- 5000 30
//! ```
//!
//! With `--half-open` (root: a raw socket) the checks are half-open
//! (`tcp: { half_open: true }`): a SYN out, the SYN-ACK back, the kernel's
//! RST; "answers/s" then counts those RSTs. `--no-floor` skips the floor.
//!
//! With `--https` the checks are `http_get` over TLS without verification
//! (keepalived's `SSL_GET`), and `--listen-only --https` serves them: a
//! TLS handshake with a self-signed ECDSA certificate, then `200 OK` to
//! the GET. The servers run in a process of their own, so that only the
//! checker's CPU is measured (`--addr 127.0.0.1` points the checks at
//! them); there is no floor for HTTPS.
//!
//! With `--listen-only` it only binds the listeners, on 127.0.0.1 ports
//! 20000…, for SECS: bench/check_scale_vm.sh points keepalived's checker
//! at them, for the same measurement of the reference tool. `--addr IP`
//! puts them on IP instead, and, without `--listen-only`, checks
//! listeners there rather than binding its own: bench/check_scale_lab.sh
//! runs the two in two network namespaces, as a director and a real
//! server.
//!
//! The listeners never accept: the kernel completes each handshake in the
//! listen backlog. On the loopback, though, the kernel runs the listener's
//! half of every handshake (SYN, ACK, FIN received) in the connecting
//! process's softirq, so the CPU measured here includes work that a real
//! server would do. To show what is the checker's own, the example then
//! measures the floor: the same connects and closes, blocking, one after
//! another, with no runtime, timers or epoll at all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Context;
use lbdeploy::agent::check::runner::{Checks, Target};
use lbdeploy::inventory::{
    Check, Duration as Dur, HttpCheck, HttpTls, TcpCheck,
};

/// First port of `--listen-only`: N listeners on 127.0.0.1:20000…
const LISTEN_BASE: u16 = 20000;

fn cpu_seconds() -> f64 {
    // utime + stime, fields 14 and 15 of /proc/self/stat, in clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    // `rest` starts at field 3 (state): utime is its 12th word, stime 13th.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field =
        |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    ticks as f64 / 100.0
}

/// Softirq time of the whole machine (`/proc/stat`), in seconds. With
/// tick-based accounting a tick that lands in a softirq run on a task's
/// behalf counts both to the task and here, so this shows how much of the
/// checker's CPU was the network's receive path (the loopback's, for both
/// ends of every handshake), not its own system calls.
fn softirq_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // "cpu  user nice system idle iowait irq softirq ...".
    let ticks = stat
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(7))
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// A TCP counter of `/proc/net/snmp`: `ActiveOpens`, the connections
/// this machine opened (full checks made, whoever made them), or
/// `OutRsts`, the resets it sent (each answered half-open check's).
fn tcp_counter(name: &str) -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Counters read at the start of a measurement.
struct Meter {
    cpu: f64,
    softirq: f64,
    opens: u64,
    resets: u64,
    at: Instant,
}

/// What a measurement found, per second of wall time.
struct Rates {
    wall: f64,
    /// This process's CPU, in % of one core.
    cpu: f64,
    /// The machine's softirq time, in % of one core.
    softirq: f64,
    /// TCP connections opened per second.
    connects: f64,
    /// TCP resets sent per second.
    resets: f64,
}

impl Meter {
    fn start() -> Self {
        Self {
            cpu: cpu_seconds(),
            softirq: softirq_seconds(),
            opens: tcp_counter("ActiveOpens"),
            resets: tcp_counter("OutRsts"),
            at: Instant::now(),
        }
    }

    fn rates(&self) -> Rates {
        let wall = self.at.elapsed().as_secs_f64();
        Rates {
            wall,
            cpu: 100.0 * (cpu_seconds() - self.cpu) / wall,
            softirq: 100.0 * (softirq_seconds() - self.softirq) / wall,
            connects: (tcp_counter("ActiveOpens") - self.opens) as f64 / wall,
            resets: (tcp_counter("OutRsts") - self.resets) as f64 / wall,
        }
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(5000), |a| a.parse())?;
    let secs: u64 = args.get(1).map_or(Ok(30), |a| a.parse())?;
    let half_open = args.iter().any(|a| a == "--half-open");
    let https = args.iter().any(|a| a == "--https");
    let remote: Option<IpAddr> = match args.iter().position(|a| a == "--addr") {
        Some(i) => {
            Some(args.get(i + 1).context("--addr needs an IP")?.parse()?)
        }
        None => None,
    };
    let known = |ip: IpAddr| -> Vec<SocketAddr> {
        (0..n).map(|i| SocketAddr::new(ip, LISTEN_BASE + i as u16)).collect()
    };
    if args.iter().any(|a| a == "--listen-only") {
        // For another checker (bench/check_scale_vm.sh: keepalived's), or
        // this one in another network namespace (check_scale_lab.sh): the
        // same listeners on known ports, for SECS.
        let ip = remote.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if https {
            return serve_https(&known(ip), secs);
        }
        let _listeners: Vec<TcpListener> = known(ip)
            .iter()
            .map(TcpListener::bind)
            .collect::<Result<_, _>>()?;
        std::thread::sleep(Duration::from_secs(secs));
        return Ok(());
    }
    // Listeners of our own on the loopback, or `--listen-only` ones at
    // `--addr`.
    let (listeners, addrs): (Vec<TcpListener>, Vec<SocketAddr>) = match remote {
        Some(ip) => (Vec::new(), known(ip)),
        None => {
            let own: Vec<TcpListener> = (0..n)
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<_, _>>()?;
            let addrs = own.iter().map(TcpListener::local_addr);
            let addrs = addrs.collect::<Result<_, _>>()?;
            (own, addrs)
        }
    };
    let targets: Vec<Target> = addrs
        .iter()
        .map(|&addr| Target {
            service: "scale".into(),
            address: addr.ip(),
            port: addr.port(),
            delay_loop: Duration::from_secs(1),
            checks: vec![match https {
                false => Check::Tcp(TcpCheck {
                    connect_timeout: Dur::from_secs(1),
                    retry: 1,
                    delay_before_retry: Dur::from_secs(1),
                    rise: 1,
                    connect_port: None,
                    half_open,
                }),
                true => Check::HttpGet(HttpCheck {
                    tls: Some(HttpTls::default()),
                    ..serde_yaml::from_str(
                        "{ path: /, connect_timeout: 1s, retry: 1, \
                         delay_before_retry: 1s }",
                    )
                    .expect("an http_get check")
                }),
            }],
            weight: 1,
        })
        .collect();
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let mut checks = Checks::spawn(targets, tx, 256);
        // Skip the first delay_loop, in which the start spread ramps up.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let meter = Meter::start();
        let mut downs = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(secs);
        while let Ok(Some(t)) = tokio::time::timeout_at(until, rx.recv()).await
        {
            downs += usize::from(!t.up);
        }
        let r = meter.rates();
        checks.stop();
        let (kind, done) = match (half_open, https) {
            (true, _) => ("half-open", format!("{:.0} answers/s", r.resets)),
            (_, true) => ("HTTPS", format!("{:.0} connects/s", r.connects)),
            _ => ("TCP", format!("{:.0} connects/s", r.connects)),
        };
        println!(
            "{n} {kind} checks every 1 s for {:.0} s: {:.1}% of one core \
             (softirq {:.1}%), {done}, RSS {} MB, {downs} false downs",
            r.wall,
            r.cpu,
            r.softirq,
            rss_kb() / 1024
        );
    });
    if https || args.iter().any(|a| a == "--no-floor") {
        return Ok(());
    }
    let r = floor(&addrs, secs);
    println!(
        "floor, {n} blocking connect+close every 1 s for {secs} s: \
         {:.1}% of one core (softirq {:.1}%)",
        r.cpu, r.softirq
    );
    drop(listeners);
    Ok(())
}

/// What connecting to and closing every address once a second, blocking,
/// for `secs` costs: the kernel's cost of a TCP check on the loopback.
fn floor(addrs: &[SocketAddr], secs: u64) -> Rates {
    let meter = Meter::start();
    for round in 1..=secs {
        for a in addrs {
            drop(std::net::TcpStream::connect(a));
        }
        let elapsed = meter.at.elapsed();
        if let Some(rest) = Duration::from_secs(round).checked_sub(elapsed) {
            std::thread::sleep(rest);
        }
    }
    meter.rates()
}

/// Serve HTTPS on every address in `addrs` for `secs`: a handshake with
/// one self-signed certificate, then `200 OK` to whatever was asked, and
/// close with close_notify. Each connection is a task of one thread.
fn serve_https(addrs: &[SocketAddr], secs: u64) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["scale.test".into()])?
        .self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow::anyhow!(e))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        for addr in addrs {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut buf = [0u8; 1024];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls
                            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                            .await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok(())
    })
}
