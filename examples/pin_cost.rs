//! The nftables table the agent installs for one TCP service on `IFACE`
//! (VIP 10.77.0.200:80, two real servers), printed for `bench/pin_cost.py`,
//! which measures what the flow pins cost per packet in a real kernel.
//!
//! ```sh
//! cargo run --release --example pin_cost -- IFACE DIRECTOR_MAC
//! ```

use lbdeploy::agent::dataplane::buckets::{self, Backend};
use lbdeploy::agent::dataplane::nft::{
    Mac, Proto, Ruleset, Service, compile, render,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [iface, mac] = args.as_slice() else {
        anyhow::bail!("usage: pin_cost IFACE DIRECTOR_MAC");
    };
    let server = |n: u8| {
        let key = format!("10.77.0.{}:80", 20 + n);
        (Backend { key, weight: 1 }, Mac([2, 0, 0, 0, 0x77, n]))
    };
    let rules = Ruleset {
        interface: iface.clone(),
        mac: mac.parse().map_err(anyhow::Error::msg)?,
        services: vec![Service {
            name: "web".into(),
            vip: "10.77.0.200".parse()?,
            ports: vec![lbdeploy::inventory::PortSpan::one(80)],
            proto: Proto::Tcp,
            persistent: false,
            buckets: buckets::count(2),
            backends: vec![server(1), server(2)],
            live: Vec::new(),
            pin_for: 900,
            instance: "VI_1".into(),
        }],
        forwarding: ["VI_1".to_owned()].into(),
    };
    print!("{}", render(&compile(rules, None)));
    Ok(())
}
