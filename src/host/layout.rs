//! Where the host side keeps things: every host path, rooted.
//!
//! Tests run the real binary against a scratch directory instead of `/`:
//! the hidden `LBDEPLOY_HOST_ROOT` variable prefixes every absolute host
//! path (managed files, the binary, the state directory, `/proc/sys`, the
//! agent's PID file). With a root set, service control is skipped: there is
//! no service manager inside a scratch directory. This module owns that
//! mapping so that no other module builds a host path by hand.

use std::path::{Component, Path, PathBuf};

use crate::inventory::agent::RETIRING_MARK;
use crate::plan::facts::{PID_FILE, STATE_DIR};

/// The environment variable that roots every host path (tests only).
pub(crate) const ROOT_ENV: &str = "LBDEPLOY_HOST_ROOT";

/// Why a path from an activation cannot be used on the host.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: host paths must be absolute and free of `..`")]
pub struct BadPath {
    /// The offending path, as given.
    pub path: String,
}

/// The host's paths, under an optional root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: Option<PathBuf>,
}

impl Layout {
    /// The layout of the real host (`root` `None`) or of a scratch root.
    pub fn new(root: Option<PathBuf>) -> Self {
        Self { root }
    }

    /// The layout the environment asks for: rooted when `LBDEPLOY_HOST_ROOT`
    /// is set and not empty.
    pub(crate) fn from_env() -> Self {
        Self::new(
            std::env::var_os(ROOT_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        )
    }

    /// Whether this is a scratch root, where services are not touched.
    pub(crate) fn is_rooted(&self) -> bool {
        self.root.is_some()
    }

    /// Where the host path `path` really is.
    ///
    /// # Errors
    /// When `path` is relative or climbs with `..`, which would let an
    /// activation escape the root (or mean nothing on a real host).
    pub fn host(&self, path: &Path) -> Result<PathBuf, BadPath> {
        let bad = || BadPath { path: path.display().to_string() };
        if !path.is_absolute()
            || path.components().any(|c| c == Component::ParentDir)
        {
            return Err(bad());
        }
        Ok(match &self.root {
            None => path.to_path_buf(),
            Some(root) => root.join(path.strip_prefix("/").map_err(|_| bad())?),
        })
    }

    /// A fixed absolute path of ours (never fails: they are constants).
    fn fixed(&self, path: &str) -> PathBuf {
        self.host(Path::new(path)).expect("lbdeploy's own paths are absolute")
    }

    /// `/var/lib/lbdeploy`, rooted.
    pub fn state(&self) -> PathBuf {
        self.fixed(STATE_DIR)
    }

    /// The host lock, held by one activation at a time.
    pub fn lock(&self) -> PathBuf {
        self.state().join("lock")
    }

    /// The mark a retirement leaves for the stopping agent
    /// ([`crate::inventory::agent::RETIRING_MARK`]), beside its PID file.
    pub(crate) fn retiring_mark(&self) -> PathBuf {
        let run = Path::new(PID_FILE)
            .parent()
            .expect("the PID file is in a directory");
        self.fixed(&run.join(RETIRING_MARK).to_string_lossy())
    }

    /// Each sysctl lbdeploy set, as it was before its first change here.
    pub(crate) fn original_sysctls(&self) -> PathBuf {
        self.state().join("original-sysctls.json")
    }

    /// The activation awaiting confirmation, with its before-image.
    pub fn pending(&self) -> PathBuf {
        self.state().join("pending")
    }

    /// The before-image and the activation, written before any change.
    pub(crate) fn pending_state(&self) -> PathBuf {
        self.pending().join("state.json")
    }

    /// The previous binary, when the activation replaces it.
    pub(crate) fn pending_binary(&self) -> PathBuf {
        self.pending().join("binary")
    }

    /// When an unconfirmed activation rolls back (boot-time milliseconds).
    pub(crate) fn pending_deadline(&self) -> PathBuf {
        self.pending().join("deadline")
    }

    /// Created by `host confirm`; the watchdog then commits.
    pub(crate) fn pending_confirmed(&self) -> PathBuf {
        self.pending().join("confirmed")
    }

    /// The watchdog's PID, to tell a live watchdog from a crashed one.
    pub(crate) fn pending_watchdog(&self) -> PathBuf {
        self.pending().join("watchdog.pid")
    }

    /// The confirmed generation number (read by the facts script).
    pub fn generation(&self) -> PathBuf {
        self.state().join("generation")
    }

    /// The highest generation number any activation ever brought to this
    /// host (read by facts): the controller numbers the next apply above
    /// it, so a number is never handed to two applies, even when the
    /// first never got committed.
    pub fn generation_seen(&self) -> PathBuf {
        self.state().join("generation-seen")
    }

    /// The managed files, one absolute path a line (read by facts).
    pub fn manifest(&self) -> PathBuf {
        self.state().join("manifest")
    }

    /// The copy of confirmed generation `n`'s files.
    pub(crate) fn generation_dir(&self, n: u64) -> PathBuf {
        self.state().join("generations").join(n.to_string())
    }

    /// One line per confirmation or rollback.
    pub fn journal(&self) -> PathBuf {
        self.state().join("journal")
    }

    /// Why the last activation was rolled back, for `host confirm`.
    pub(crate) fn last_rollback(&self) -> PathBuf {
        self.state().join("last-rollback.json")
    }

    /// The watchdog's stdout and stderr.
    pub(crate) fn watchdog_log(&self) -> PathBuf {
        self.state().join("watchdog.log")
    }

    /// The agent's PID file on hosts without systemd.
    pub(crate) fn agent_pid_file(&self) -> PathBuf {
        self.fixed(PID_FILE)
    }

    /// Present when systemd is PID 1 (as the facts script decides).
    pub(crate) fn systemd_marker(&self) -> PathBuf {
        self.fixed("/run/systemd/system")
    }

    /// The `/proc/sys` file of sysctl `key` (`net.ipv4.ip_forward`).
    ///
    /// # Errors
    /// When the key is empty or would climb out of `/proc/sys`.
    pub fn sysctl(&self, key: &str) -> Result<PathBuf, BadPath> {
        if key.is_empty()
            || key.split('.').any(|p| p.is_empty() || p == "..")
            || key.contains('/')
        {
            return Err(BadPath { path: key.to_string() });
        }
        self.host(&Path::new("/proc/sys").join(key.replace('.', "/")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrooted_paths_are_themselves() {
        let l = Layout::new(None);
        assert_eq!(
            l.host(Path::new("/etc/lbdeploy/agent.yml")).unwrap(),
            Path::new("/etc/lbdeploy/agent.yml")
        );
        assert_eq!(l.state(), Path::new("/var/lib/lbdeploy"));
        assert_eq!(
            l.sysctl("net.ipv4.conf.all.arp_ignore").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/all/arp_ignore")
        );
        assert!(!l.is_rooted());
    }

    #[test]
    fn rooted_paths_are_prefixed() {
        let l = Layout::new(Some("/tmp/r".into()));
        assert_eq!(
            l.host(Path::new("/etc/x")).unwrap(),
            Path::new("/tmp/r/etc/x")
        );
        assert_eq!(l.lock(), Path::new("/tmp/r/var/lib/lbdeploy/lock"));
        assert_eq!(
            l.sysctl("net.ipv4.ip_forward").unwrap(),
            Path::new("/tmp/r/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            l.generation_dir(3),
            Path::new("/tmp/r/var/lib/lbdeploy/generations/3")
        );
    }

    #[test]
    fn escaping_paths_are_refused() {
        let l = Layout::new(Some("/tmp/r".into()));
        assert!(l.host(Path::new("etc/x")).is_err());
        assert!(l.host(Path::new("/etc/../../x")).is_err());
        assert!(l.sysctl("net..x").is_err());
        assert!(l.sysctl("net/../x").is_err());
        assert!(l.sysctl("").is_err());
    }
}
