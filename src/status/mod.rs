//! `lbdeploy status`: every selected host asked at once over SSH, one
//! round trip each (its agent's status, its addresses, its ARP sysctls and
//! its generation in one script), and one report of them — warnings up
//! top, a table per role — or `--json`. `--watch` asks again every
//! interval. The script, the parsing, the warnings and the table are pure
//! ([`report`]); this module only connects.

pub mod report;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::Semaphore;

use self::report::{HostView, Report};
use crate::apply::generations::Store;
use crate::apply::prepare::{Inputs, Prepared, prepare};
use crate::exit::ExitStatus;
use crate::global::GlobalArgs;
use crate::inventory::{Mode, System};
use crate::transport::{Connection, Target};

/// The shortest `--watch` interval: each round is an SSH round trip to
/// every host, and faster than once a second only loads them.
pub const WATCH_MIN: Duration = Duration::from_secs(1);

/// How long one host may take to answer before it counts as unreachable:
/// the agent answers from memory within its own 2 s bound, the rest is a
/// few reads.
const HOST_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these hosts: names, globs (`rs*`) or `role:director`,
    /// `role:realserver`; repeat or separate with commas.
    #[arg(long, value_name = "PATTERN")]
    pub limit: Vec<String>,
    /// Ask again every INTERVAL (2s by default, at least 1s), redrawing
    /// in place on a terminal; until interrupted.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1,
          default_missing_value = "2s",
          value_parser = humantime::parse_duration)]
    pub watch: Option<Duration>,
    /// How many hosts to ask at once.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub forks: u16,
}

/// `lbdeploy status`.
///
/// # Errors
/// An inventory that does not load, a `--limit` that matches nothing, a
/// `--watch` interval below [`WATCH_MIN`]: before any host is asked.
pub fn run(
    global: &GlobalArgs,
    args: &StatusArgs,
) -> anyhow::Result<ExitStatus> {
    if let Some(every) = args.watch
        && every < WATCH_MIN
    {
        anyhow::bail!(
            "--watch {}: at least {} — every round asks every host over SSH",
            humantime::format_duration(every),
            humantime::format_duration(WATCH_MIN)
        );
    }
    let inputs = Inputs {
        inventory: global.inventory.clone(),
        limit: args.limit.clone(),
        ..Inputs::default()
    };
    let prepared = prepare(&inputs, &System)?;
    let store = Store::new(&inputs.state_dir());
    let vips: BTreeMap<String, Vec<IpAddr>> = prepared
        .inventory
        .vrrp_instances
        .iter()
        .map(|v| {
            let a = v.virtual_addresses.iter().map(|a| a.address.addr);
            (v.name.clone(), a.collect())
        })
        .collect();
    let instances: Vec<String> = vips.keys().cloned().collect();
    let hosts = askable(&prepared);
    let rt = crate::apply::survey::runtime()?;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let views = rt.block_on(ask_all(&hosts, &vips, args.forks.into()));
        let latest = store.last()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let warnings = report::warnings(&views, latest, &instances, now);
        let r = Report {
            format: 1,
            cluster: prepared.inventory.cluster.clone(),
            generation: latest,
            warnings,
            hosts: views,
        };
        let mut out = std::io::stdout().lock();
        if args.watch.is_some() && terminal && !global.json {
            // Home and clear: the next round draws over this one.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        if global.json {
            crate::util::terminal::write_json(&mut out, &r)?;
            writeln!(out)?;
        } else {
            report::write_text(&mut out, &r)?;
        }
        out.flush()?;
        let Some(every) = args.watch else {
            return Ok(if r.ok() {
                ExitStatus::Ok
            } else {
                ExitStatus::Partial
            });
        };
        if !terminal && !global.json {
            writeln!(out)?;
        }
        drop(out);
        std::thread::sleep(every);
    }
}

/// Each prepared host as [`ask_all`] takes it: name, role, the agent's
/// binary and where to reach it.
pub(crate) fn askable(
    prepared: &Prepared,
) -> Vec<(String, Mode, String, Target)> {
    prepared
        .hosts
        .iter()
        .map(|(d, t)| {
            let bin = d.binary.to_string_lossy().into_owned();
            (d.name.clone(), d.agent, bin, t.clone())
        })
        .collect()
}

/// Ask every host, at most `forks` at a time; inventory order.
pub(crate) async fn ask_all(
    hosts: &[(String, Mode, String, Target)],
    vips: &BTreeMap<String, Vec<IpAddr>>,
    forks: usize,
) -> Vec<HostView> {
    let gate = Arc::new(Semaphore::new(forks.max(1)));
    let vips = Arc::new(vips.clone());
    let tasks: Vec<_> = hosts
        .iter()
        .cloned()
        .map(|(name, role, bin, target)| {
            let (gate, vips) = (gate.clone(), vips.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                let asked = ask(&name, role, &bin, &target, &vips);
                match tokio::time::timeout(HOST_TIMEOUT, asked).await {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => HostView::failed(&name, role, e),
                    Err(_) => HostView::failed(
                        &name,
                        role,
                        format!(
                            "no answer within {}",
                            humantime::format_duration(HOST_TIMEOUT)
                        ),
                    ),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("asking a host does not panic"));
    }
    out
}

/// One host: connect, run the script, read the answer.
async fn ask(
    name: &str,
    role: Mode,
    binary: &str,
    target: &Target,
    vips: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<HostView, String> {
    let conn = Connection::open(target).await.map_err(|e| e.to_string())?;
    let nonce = nonce();
    let script = report::script(binary, &nonce);
    let out = conn.run("sh", &["-s"], script.as_bytes()).await;
    conn.close().await;
    let out = out.map_err(|e| e.to_string())?;
    report::parse(name, role, &out.stdout, &nonce, vips)
}

/// A token no host can guess before it is asked: 16 random bytes, hex.
/// The kernel's generator; should it ever refuse, the clock's nanoseconds
/// still make a token the host's output is most unlikely to contain.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(
            &mut bytes[filled..],
            rustix::rand::GetRandomFlags::empty(),
        ) {
            Ok(n) => filled += n,
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                bytes = t.as_nanos().to_le_bytes();
                break;
            }
        }
    }
    crate::util::hex::hex(&bytes)
}
