//! What a full data-plane reconcile costs with many services: compute the
//! bucket tables and render the nftables table for S services × R real
//! servers, and (as root, with `--install`) load it into a throwaway network
//! namespace with `nft -f`.
//!
//! ```sh
//! cargo run --release --example dataplane_cost -- 1000 10 --install
//! ```

use std::time::Instant;

use lbdeploy::agent::dataplane::buckets::Backend;
use lbdeploy::agent::dataplane::nft::{Mac, Proto, Ruleset, Service, render};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let services: usize = args.first().map_or(Ok(1000), |a| a.parse())?;
    let per: usize = args.get(1).map_or(Ok(10), |a| a.parse())?;
    let install = args.iter().any(|a| a == "--install");
    let rules = Ruleset {
        interface: "eth0".into(),
        mac: Mac([2, 0, 0, 0, 0, 0xaa]),
        services: (0..services)
            .map(|s| Service {
                vip: format!("10.{}.{}.200", s / 250, s % 250).parse().unwrap(),
                port: 80,
                proto: Proto::Tcp,
                persistent: false,
                backends: (0..per)
                    .map(|r| {
                        let key =
                            format!("10.{}.{}.{}:80", s / 250, s % 250, r + 1);
                        (
                            Backend { key, weight: 1 },
                            Mac([2, 0, 0, 0, (s % 250) as u8, r as u8]),
                        )
                    })
                    .collect(),
            })
            .collect(),
    };
    let start = Instant::now();
    let text = render(&rules);
    let rendered = start.elapsed();
    println!(
        "{services} services × {per} real servers: tables and ruleset rendered in {rendered:?} ({} MB of nft text)",
        text.len() / 1_000_000
    );
    if install {
        let ns = format!("lbd-cost-{}", std::process::id());
        let sh =
            |c: &str| std::process::Command::new("sh").args(["-c", c]).status();
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link add eth0 type veth peer name p0 && ip -n {ns} link set eth0 up"
        ))?;
        let file = std::env::temp_dir().join(format!("{ns}.nft"));
        std::fs::write(&file, &text)?;
        let start = Instant::now();
        let status =
            sh(&format!("ip netns exec {ns} nft -f {}", file.display()))?;
        let loaded = start.elapsed();
        sh(&format!("ip netns del {ns}"))?;
        std::fs::remove_file(&file)?;
        println!("nft -f loaded it in {loaded:?} ({status})");
    }
    Ok(())
}
