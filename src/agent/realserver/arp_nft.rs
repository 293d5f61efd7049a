//! ARP suppression with nftables (`arp_suppression: nftables`), the
//! arptables rules of old in today's tool, for hosts where the ARP sysctls
//! are not wanted or not enough: one `arp` family table that drops ARP
//! requests for a VIP arriving at the host, and rewrites the sender address
//! of outgoing ARP from a VIP to the interface's own address, so the host
//! never announces the VIP (arptables' `--mangle-ip-s`).
//!
//! The ruleset is pure ([`ruleset`]) and loaded with `nft -f -`, which
//! replaces the table atomically; only IPv4 VIPs take part (ARP is IPv4).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;

use tokio::process::Command;

/// The table this agent owns; nothing else in the ruleset is touched.
pub(crate) const TABLE: &str = "lbdeploy_realserver";

/// The `nft -f` script that makes the table hold exactly the rules for
/// `vips`, with `rip` as the sender address of the host's own ARP. The
/// `table` line before `delete table` makes the delete succeed when the
/// table does not exist yet; the whole script is one transaction.
pub fn ruleset(vips: &[IpAddr], rip: Ipv4Addr) -> String {
    let v4: Vec<String> = vips
        .iter()
        .filter_map(|v| match v {
            IpAddr::V4(v) => Some(v.to_string()),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut out = format!(
        "# Managed by the lbdeploy realserver agent.\n\
         table arp {TABLE}\ndelete table arp {TABLE}\n"
    );
    if v4.is_empty() {
        return out;
    }
    let set = v4.join(", ");
    out.push_str(&format!(
        "table arp {TABLE} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tarp operation request arp daddr ip {{ {set} }} drop\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\tarp saddr ip {{ {set} }} arp saddr ip set {rip}\n\
         \t}}\n\
         }}\n"
    ));
    out
}

/// Load `script` with `nft -f -`.
///
/// # Errors
/// When `nft` is missing or rejects the script; the error has its stderr.
pub async fn load(script: &str) -> anyhow::Result<()> {
    crate::agent::sys::nftables::load(script, "the ARP table").await
}

/// Whether the table exists (someone may `nft flush ruleset`).
pub async fn present() -> bool {
    Command::new("nft")
        .args(["list", "table", "arp", TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Remove the table; one already gone is not an error.
///
/// # Errors
/// When `nft` cannot run or refuses.
pub async fn remove() -> anyhow::Result<()> {
    load(&format!("table arp {TABLE}\ndelete table arp {TABLE}\n")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_hides_ipv4_vips_and_rewrites_their_arp() {
        let vips =
            ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let got = ruleset(&vips, "10.0.0.21".parse().unwrap());
        assert!(got.contains("arp daddr ip { 192.0.2.1 } drop"), "{got}");
        assert!(
            got.contains(
                "arp saddr ip { 192.0.2.1 } arp saddr ip set 10.0.0.21"
            ),
            "{got}"
        );
        assert!(!got.contains("2001:db8"), "{got}");
        let empty = ruleset(&vips[1..], "10.0.0.21".parse().unwrap());
        assert!(empty.ends_with("delete table arp lbdeploy_realserver\n"));
    }
}
