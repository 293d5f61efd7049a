//! What the controller remembers of each host's agent binary, so that a
//! plan need not hash it again.
//!
//! Hashing the installed binary (17 MB) was most of a no-op plan's cost:
//! about 55 ms of a host's CPU each time, 5.5 CPU-seconds for 100 hosts
//! (BENCHMARKS.md, "Apply at 100 hosts"). The facts script now prints the
//! binary's `stat` (inode, size, modification and change time, to the
//! nanosecond) beside its hash; the controller keeps both per host in
//! `.lbdeploy/binary-stamps`, and the next facts script prints the
//! remembered hash only when `stat` prints exactly the same line — else it
//! hashes. Any write to the file, a rename over it or a `chmod` moves its
//! change time, which no one can set back without setting the clock, so a
//! binary that changed is hashed again (the same test git's index and
//! rsync rely on). A stamp that is missing, garbled or too big only costs
//! a hash: this file is a cache, never a source of truth, and the hosts
//! are never written to for it.
//!
//! Parsing and rendering are pure; `apply::survey` reads and writes the
//! file.

use std::collections::BTreeMap;

/// The most bytes of stamps read: about 5,000 hosts' worth. A larger
/// file is ignored (every host is hashed) rather than read.
pub const MAX_BYTES: u64 = 1 << 20;

/// The file's first line; any other first line means "no stamps".
const HEADER: &str = "lbdeploy-binary-stamps 1";

/// One host's binary as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The line `stat` printed for it (see `facts::script`).
    pub stat: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// Every host's stamp, by host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamps(BTreeMap<String, Stamp>);

impl Stamps {
    /// Read the file's text; lines that do not hold a host name, a hash of
    /// 64 hex digits and a stat line are skipped.
    pub fn parse(text: &str) -> Self {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Self::default();
        }
        let stamps = lines.filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let (host, sha256, stat) =
                (parts.next()?, parts.next()?, parts.next()?);
            let hex = sha256.len() == 64
                && sha256.bytes().all(|b| b.is_ascii_hexdigit());
            (hex && !host.is_empty() && !stat.is_empty()).then(|| {
                let stamp =
                    Stamp { stat: stat.to_owned(), sha256: sha256.to_owned() };
                (host.to_owned(), stamp)
            })
        });
        Self(stamps.collect())
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = format!("{HEADER}\n");
        for (host, st) in &self.0 {
            s += &format!("{host}\t{}\t{}\n", st.sha256, st.stat);
        }
        s
    }

    /// `host`'s stamp.
    pub fn get(&self, host: &str) -> Option<&Stamp> {
        self.0.get(host)
    }

    /// Remember what `host` showed. Stat lines and host names holding a
    /// tab or a newline (which the file could not carry) are not kept.
    pub fn learn(&mut self, host: &str, stamp: Stamp) {
        let bad = |s: &str| s.is_empty() || s.contains(['\t', '\n', '\r']);
        if bad(host) || bad(&stamp.stat) || bad(&stamp.sha256) {
            return;
        }
        self.0.insert(host.to_owned(), stamp);
    }

    /// Forget hosts that are not in `hosts` (gone from the inventory), so
    /// the file never outgrows it.
    pub fn retain(&mut self, hosts: &[String]) {
        self.0.retain(|h, _| hosts.contains(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(stat: &str) -> Stamp {
        Stamp { stat: stat.into(), sha256: "ab".repeat(32) }
    }

    #[test]
    fn round_trips_and_skips_garbage() {
        let mut s = Stamps::default();
        s.learn("rs1", stamp("12 345 2026-12-05 13:00:00.1 +0000 x"));
        s.learn("dir01", stamp("13 345 y"));
        let text = s.render();
        assert_eq!(Stamps::parse(&text), s);
        let garbled = format!(
            "{text}rs2\tnot-hex\t1 2\nrs3\t{}\t\nrs4\n",
            "cd".repeat(32)
        );
        assert_eq!(Stamps::parse(&garbled), s);
        assert_eq!(Stamps::parse("other 1\nrs1\tx\ty\n"), Stamps::default());
        assert_eq!(Stamps::parse(""), Stamps::default());
    }

    #[test]
    fn what_the_file_cannot_carry_is_not_kept() {
        let mut s = Stamps::default();
        s.learn("rs\t1", stamp("1 2"));
        s.learn("rs1", stamp("1\n2"));
        s.learn("rs2", stamp(""));
        assert_eq!(s, Stamps::default());
    }

    #[test]
    fn hosts_gone_from_the_inventory_are_forgotten() {
        let mut s = Stamps::default();
        s.learn("rs1", stamp("1"));
        s.learn("rs2", stamp("2"));
        s.retain(&["rs2".to_owned()]);
        assert!(s.get("rs1").is_none());
        assert_eq!(s.get("rs2"), Some(&stamp("2")));
    }
}
