//! Real servers taken out for maintenance at runtime (`lbdeploy drain`),
//! without editing the inventory: each director keeps the list in
//! [`DRAINED_FILE`], so it outlives the agent's restarts and the host's
//! reboots, and its agent forwards to a drained real server with weight 0
//! — under IPVS a destination of weight 0 takes no new connection while
//! the established ones go on; under nftables its buckets go to the
//! others, and the flows already on it stay, pinned to it (see
//! `dataplane::nft::compile`), until they end.
//!
//! The file's place and shape are [`crate::inventory::drained`]'s.
//! `lbdeploy agent drain` and `undrain` edit it and have the agent
//! reload; the agent reads it at each start and reload. One it cannot read (corrupt, not a regular
//! file, too big) drains nothing and makes the agent `degraded` with the
//! reason until it is fixed, and `agent drain` refuses to write over it.
//! The parsing and the weights are pure.

use std::collections::BTreeSet;
use std::path::Path;

use crate::inventory::agent::DirectorConfig;
pub use crate::inventory::drained::{DRAINED_FILE, Drained, parse};
use crate::util::files;

/// The largest drained file read: thousands of entries.
const FILE_MAX: u64 = 1 << 20;

/// The drained set in `path`; empty when there is no such file.
///
/// # Errors
/// A file that cannot be read or parsed, naming it.
pub fn load(path: &Path) -> Result<BTreeSet<Drained>, String> {
    match files::read_regular(path, FILE_MAX) {
        Ok(text) => {
            parse(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(BTreeSet::new())
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Write `drained` to `path`, atomically.
///
/// # Errors
/// The write's, with the path.
pub fn save(path: &Path, drained: &BTreeSet<Drained>) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(drained)?;
    text.push('\n');
    files::write_atomic(path, text.as_bytes(), 0o644)
}

/// `config` with every drained real server at weight 0. Pure.
pub fn apply(config: &mut DirectorConfig, drained: &BTreeSet<Drained>) {
    for svc in &mut config.virtual_services {
        for rs in &mut svc.real_servers {
            if drained.iter().any(|d| d.covers(&svc.name, rs.address)) {
                rs.weight = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DirectorConfig {
        serde_yaml::from_str(
            "{ cluster: c, host: d1, interface: eth0, address: 10.2.0.11/24,
               dataplane: ipvs, vrrp_instances: [],
               virtual_services: [
                 { name: web, vip: 10.2.0.200, port: 80, protocol: tcp,
                   scheduler: rr, delay_loop: 6s, quorum: 1,
                   real_servers: [{ address: 10.2.0.21, port: 80, weight: 3 },
                                  { address: 10.2.0.22, port: 80, weight: 1 }] },
                 { name: api, vip: 10.2.0.200, port: 8080, protocol: tcp,
                   scheduler: rr, delay_loop: 6s, quorum: 1,
                   real_servers: [{ address: 10.2.0.21, port: 8080, weight: 2 }] }] }",
        )
        .unwrap()
    }

    fn weights(c: &DirectorConfig) -> Vec<u32> {
        let servers = c.virtual_services.iter().flat_map(|s| &s.real_servers);
        servers.map(|r| r.weight).collect()
    }

    #[test]
    fn a_drained_server_weighs_nothing_in_its_services_only() {
        let mut c = config();
        let everywhere = parse(r#"[{"address": "10.2.0.21"}]"#).unwrap();
        apply(&mut c, &everywhere);
        assert_eq!(weights(&c), [0, 1, 0]);
        let mut c = config();
        let web = parse(r#"[{"address": "10.2.0.21", "service": "web"}]"#);
        apply(&mut c, &web.unwrap());
        assert_eq!(weights(&c), [0, 1, 2]);
    }

    #[test]
    fn no_file_drains_nothing_and_a_written_one_reads_back() {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-drain-{}", std::process::id()));
        let path = dir.join("drained.json");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&path).unwrap(), BTreeSet::new());
        let set = parse(r#"[{"address": "10.2.0.22", "service": "web"}]"#);
        save(&path, &set.clone().unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), set.unwrap());
        std::fs::write(&path, "[oops").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
