//! The ARP sysctls a DR real server needs, and reading, writing and
//! checking them under `/proc/sys`.
//!
//! * `arp_ignore=1`: answer ARP only for addresses configured on the
//!   interface the request arrived on, so a request for the VIP (held on
//!   `lo`) coming in on `eth0` goes unanswered;
//! * `arp_announce=2`: always source ARP from the outgoing interface's own
//!   address, never from the VIP.
//!
//! The kernel uses the larger of `all` and the interface's value, so `all`
//! alone would do; the interface's own keys are set as well so that the
//! host reads the same as the sysctl.d file `apply` installs (the role's
//! `sysctls`). What to set is pure ([`desired`]); the I/O takes the
//! `/proc/sys` root as a parameter so it is tested on a plain directory.

use std::io;
use std::path::{Path, PathBuf};

/// Where the kernel exposes sysctls.
pub(crate) const PROC_SYS: &str = "/proc/sys";

/// One per-interface IPv4 sysctl and the value a real server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `all` or an interface name (which may contain dots, so it is kept
    /// apart rather than joined into a dotted key).
    pub scope: String,
    /// `arp_ignore` or `arp_announce`.
    pub name: &'static str,
    /// The value wanted.
    pub value: u8,
}

impl Setting {
    /// The key as `sysctl` prints it (`net.ipv4.conf.eth0.arp_ignore`;
    /// a dot in an interface name becomes `/`, as sysctl(8) writes it).
    pub fn key(&self) -> String {
        format!("net.ipv4.conf.{}.{}", self.scope.replace('.', "/"), self.name)
    }

    /// The file under `root` (normally `PROC_SYS`).
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join("net/ipv4/conf").join(&self.scope).join(self.name)
    }
}

/// The settings for a real server whose director-facing interface is
/// `interface`, `all` first (so the effective value is right as early as
/// possible).
pub fn desired(interface: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    for scope in ["all", interface] {
        out.push(Setting { scope: scope.into(), name: "arp_ignore", value: 1 });
        out.push(Setting {
            scope: scope.into(),
            name: "arp_announce",
            value: 2,
        });
    }
    out
}

/// A setting found with another value and put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The key, as sysctl prints it.
    pub key: String,
    /// What was there (`None` when unreadable or not a number).
    pub was: Option<u8>,
    /// What it is now.
    pub now: u8,
}

/// Why a sysctl could not be made right.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interface has no sysctls: it does not exist.
    #[error(
        "interface {0:?} (the config's `interface`) does not exist on this \
         host; name the interface that faces the directors"
    )]
    NoInterface(String),
    /// Reading or writing the file failed.
    #[error("{key} ({}): {source}", path.display())]
    Io {
        /// The key.
        key: String,
        /// Its file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The write went through but the value read back differs (another
    /// process raced us, or the kernel refused it silently).
    #[error("{key} reads {got:?} after writing {want}")]
    Unverified {
        /// The key.
        key: String,
        /// What was written.
        want: u8,
        /// What was read back.
        got: Option<u8>,
    },
}

/// The current value of `s`, `None` when the file holds no number.
///
/// # Errors
/// When the file cannot be read.
pub fn read(root: &Path, s: &Setting) -> io::Result<Option<u8>> {
    Ok(std::fs::read_to_string(s.path(root))?.trim().parse().ok())
}

/// Make every setting hold its value, write only those that differ, and
/// read each written one back. Returns what was changed.
///
/// # Errors
/// When an interface does not exist, a file cannot be read or written,
/// or a value does not stick.
pub fn ensure(root: &Path, settings: &[Setting]) -> Result<Vec<Fix>, Error> {
    // Every interface first, so a typo changes nothing at all.
    if let Some(s) = settings
        .iter()
        .find(|s| !s.path(root).parent().is_some_and(Path::is_dir))
    {
        return Err(Error::NoInterface(s.scope.clone()));
    }
    let mut fixes = Vec::new();
    for s in settings {
        let path = s.path(root);
        let io =
            |source| Error::Io { key: s.key(), path: path.clone(), source };
        let was = read(root, s).map_err(io)?;
        if was == Some(s.value) {
            continue;
        }
        std::fs::write(&path, format!("{}\n", s.value)).map_err(io)?;
        let got = read(root, s).map_err(io)?;
        if got != Some(s.value) {
            return Err(Error::Unverified { key: s.key(), want: s.value, got });
        }
        fixes.push(Fix { key: s.key(), was, now: s.value });
    }
    Ok(fixes)
}

/// Every setting's key and current value (`None` when unreadable), for the
/// status.
pub(crate) fn snapshot(
    root: &Path,
    settings: &[Setting],
) -> Vec<(String, Option<u8>)> {
    settings.iter().map(|s| (s.key(), read(root, s).ok().flatten())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(name: &str, ifaces: &[&str]) -> PathBuf {
        let root = std::env::temp_dir()
            .join(format!("lbdeploy-sysctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for i in ifaces {
            let dir = root.join("net/ipv4/conf").join(i);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("arp_ignore"), "0\n").unwrap();
            std::fs::write(dir.join("arp_announce"), "0\n").unwrap();
        }
        root
    }

    #[test]
    fn desired_sets_all_then_the_interface() {
        let keys: Vec<_> = desired("eth0.100")
            .iter()
            .map(|s| format!("{}={}", s.key(), s.value))
            .collect();
        assert_eq!(
            keys,
            [
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0/100.arp_ignore=1",
                "net.ipv4.conf.eth0/100.arp_announce=2",
            ]
        );
        assert_eq!(
            desired("eth0.100")[2].path(Path::new("/proc/sys")),
            Path::new("/proc/sys/net/ipv4/conf/eth0.100/arp_ignore")
        );
    }

    #[test]
    fn ensure_writes_what_differs_and_is_then_idempotent() {
        let root = fake_proc("ensure", &["all", "eth0"]);
        let want = desired("eth0");
        std::fs::write(want[1].path(&root), "2\n").unwrap();
        let fixes = ensure(&root, &want).unwrap();
        let keys: Vec<_> = fixes.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "net.ipv4.conf.all.arp_ignore",
                "net.ipv4.conf.eth0.arp_ignore",
                "net.ipv4.conf.eth0.arp_announce",
            ]
        );
        assert_eq!(fixes[0].was, Some(0));
        assert!(ensure(&root, &want).unwrap().is_empty());
        let snap = snapshot(&root, &want);
        assert!(snap.iter().all(|(_, v)| v.is_some()));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn ensure_names_a_missing_interface() {
        let root = fake_proc("missing", &["all"]);
        let err = ensure(&root, &desired("eth9")).unwrap_err().to_string();
        assert!(err.contains("\"eth9\"") && err.contains("interface"), "{err}");
        // Nothing was written: `all` still reads 0.
        assert_eq!(read(&root, &desired("eth9")[0]).unwrap(), Some(0));
        std::fs::remove_dir_all(root).unwrap();
    }
}
