//! What the nftables data plane's reconcile costs with many services:
//! compute every service's bucket table and render the whole table for
//! S services × R real servers; and (as root, with `--install`) in a
//! throwaway network namespace, through the agent's own
//! [`Installer`]: load the whole table (as a backup does at start), then
//! the reconciles that follow becoming master, a real server going down,
//! coming back, and a weight change, and the periodic tamper check when
//! nothing changed and when something did; and the kernel memory the
//! whole table takes.
//!
//! ```sh
//! cargo run --release --example dataplane_cost -- 1000 10 --install
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use lbdeploy::agent::dataplane::buckets::{self, Backend};
use lbdeploy::agent::dataplane::nft::installer::Applied;
use lbdeploy::agent::dataplane::nft::verify::{elements_match, map_elements};
use lbdeploy::agent::dataplane::nft::{
    Compiled, Installer, Mac, Proto, Ruleset, Service, compile, render,
};

/// A state of the example's director: backup or master of the one VRRP
/// instance, `(service, real server)` down, and a weight for one.
#[derive(Default, Clone, Copy)]
struct Change {
    master: bool,
    down: Option<(usize, usize)>,
    weight: Option<(usize, usize, u32)>,
}

/// The example's services: real server `r` of service `s` is
/// `10.S.S.r+1:80`, all of weight 1 unless `change` says otherwise.
fn ruleset(services: usize, per: usize, change: Change) -> Ruleset {
    let service = |s: usize| Service {
        name: format!("web{s}"),
        vip: format!("10.{}.{}.200", s / 250, s % 250).parse().unwrap(),
        ports: vec![lbdeploy::inventory::PortSpan::one(80)],
        proto: Proto::Tcp,
        persistent: false,
        buckets: buckets::count(per),
        instance: "VI_1".into(),
        live: Vec::new(),
        pin_for: 900,
        backends: (0..per)
            .filter(|&r| change.down != Some((s, r)))
            .map(|r| {
                let key = format!("10.{}.{}.{}:80", s / 250, s % 250, r + 1);
                let weight = match change.weight {
                    Some((ws, wr, w)) if (ws, wr) == (s, r) => w,
                    _ => 1,
                };
                let mac =
                    Mac([2, 0, (s / 250) as u8, (s % 250) as u8, 0, r as u8]);
                (Backend { key, weight }, mac)
            })
            .collect(),
    };
    Ruleset {
        interface: "eth0".into(),
        mac: Mac([2, 0, 0, 0, 0, 0xaa]),
        services: (0..services).map(service).collect(),
        forwarding: match change.master {
            true => ["VI_1".to_owned()].into(),
            false => Default::default(),
        },
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let services: usize = args.first().map_or(Ok(1000), |a| a.parse())?;
    let per: usize = args.get(1).map_or(Ok(10), |a| a.parse())?;
    if args.iter().any(|a| a == "--inside") {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(install(services, per));
    }

    let rules = ruleset(services, per, Change::default());
    let start = Instant::now();
    let table = compile(rules, None);
    let compiled = start.elapsed();
    let start = Instant::now();
    let text = render(&table);
    let rendered = start.elapsed();
    println!(
        "{services} services × {per} real servers: bucket tables in {compiled:?}, \
         whole table rendered in {rendered:?} ({} MB of nft text)",
        text.len() / 1_000_000
    );
    if args.iter().any(|a| a == "--install") {
        in_namespace(&args)?;
    }
    Ok(())
}

/// Run this example again, with `--inside`, in a throwaway network
/// namespace with an `eth0`; the namespace goes whatever happens.
fn in_namespace(args: &[String]) -> anyhow::Result<()> {
    let ns = format!("lbd-cost-{}", std::process::id());
    let sh = |c: &str| Command::new("sh").args(["-c", c]).status();
    let made = sh(&format!(
        "ip netns add {ns} && ip -n {ns} link add eth0 type veth peer name p0 \
         && ip -n {ns} link set eth0 up"
    ))?;
    let status = match made.success() {
        true => Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(std::env::current_exe()?)
            .args(&args[..2.min(args.len())])
            .arg("--inside")
            .status(),
        false => Ok(made),
    };
    sh(&format!("ip netns del {ns}"))?;
    ensure!(status?.success(), "the run in namespace {ns} failed");
    Ok(())
}

/// Inside the namespace: the agent's installer at work.
async fn install(services: usize, per: usize) -> anyhow::Result<()> {
    let mut installer = Installer::default();
    let mid = services / 2;
    let master = Change { master: true, ..Change::default() };
    let steps = [
        ("whole table at start, as backup", Change::default(), Applied::Whole),
        ("becoming master", master, Applied::Changes),
        (
            "one real server down",
            Change { down: Some((mid, 3)), ..master },
            Applied::Changes,
        ),
        ("it comes back", master, Applied::Changes),
        (
            "a weight 1 → 3",
            Change { weight: Some((mid, 0, 3)), ..master },
            Applied::Changes,
        ),
    ];
    let memory_before = settled_kernel_memory()?;
    for (what, change, expected) in steps {
        let start = Instant::now();
        let desired =
            compile(ruleset(services, per, change), installer.installed());
        let computed = start.elapsed();
        let applied = installer.apply(desired).await?;
        let took = start.elapsed();
        ensure!(applied == expected, "{what}: {applied:?}, not {expected:?}");
        println!(
            "{what}: {took:?} wall ({computed:?} to compute, the rest nft) — {applied:?}"
        );
        if expected == Applied::Whole {
            let grew = settled_kernel_memory()?.saturating_sub(memory_before);
            println!(
                "kernel memory of the table: {} MB (slab, vmalloc and per-cpu \
                 of the whole machine, before and after the load)",
                grew / 1_000_000
            );
        }
    }
    let table = installer.installed().context("installed")?.clone();
    ensure!(map_matches(&table, mid)?, "map s{mid} is not the desired one");

    let start = Instant::now();
    installer.verify().await?;
    println!("tamper check, nothing changed: {:?}", start.elapsed());
    nft("add table inet someone_else")?;
    let start = Instant::now();
    installer.verify().await?;
    println!(
        "tamper check after someone else's change: {:?} (structure and 8 maps)",
        start.elapsed()
    );
    nft(&format!("delete element netdev lbdeploy s{mid} {{ 0 }}"))?;
    let start = Instant::now();
    let mut checks = 0;
    while !map_matches(&table, mid)? {
        installer.verify().await?;
        checks += 1;
        ensure!(checks <= services, "map s{mid} never refilled");
    }
    let took: Duration = start.elapsed();
    println!(
        "an element deleted by hand in map s{mid}: refilled by check {checks} ({took:?} of checking)"
    );
    Ok(())
}

/// [`kernel_memory`] once it stops moving (two readings a second apart
/// within 2 MB, for at most 20 s): the kernel frees a deleted namespace's
/// tables, an earlier run's, some time after.
fn settled_kernel_memory() -> anyhow::Result<u64> {
    let mut last = kernel_memory()?;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        let now = kernel_memory()?;
        if now.abs_diff(last) < 2_000_000 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// The kernel memory that nftables' maps and rules take, in bytes, as
/// `/proc/meminfo` counts it for the whole machine: slab (map elements),
/// vmalloc (hash tables) and per-cpu (counters).
fn kernel_memory() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let kb = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/meminfo"))?;
        let n = line.split_whitespace().nth(1).context("no number")?;
        Ok(n.parse::<u64>()? * 1024)
    };
    Ok(kb("Slab:")? + kb("VmallocUsed:")? + kb("Percpu:")?)
}

/// Whether the kernel's map `s{i}` holds exactly the buckets of `table`.
fn map_matches(table: &Compiled, i: usize) -> anyhow::Result<bool> {
    let out = Command::new("nft")
        .args(["-j", "list", "map", "netdev", "lbdeploy", &format!("s{i}")])
        .output()?;
    let elements = map_elements(&String::from_utf8_lossy(&out.stdout))
        .map_err(anyhow::Error::msg)?
        .remove(&format!("s{i}"))
        .unwrap_or_default();
    Ok(elements_match(&table.services[i], &elements))
}

/// Someone else's `nft` command.
fn nft(command: &str) -> anyhow::Result<()> {
    let status =
        Command::new("sh").args(["-c", &format!("nft {command}")]).status()?;
    if !status.success() {
        bail!("nft {command} failed");
    }
    Ok(())
}
