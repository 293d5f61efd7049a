//! A cgroup of its own for every command the agent runs, where systemd
//! has delegated the agent's cgroup to it.
//!
//! A process group ([`super::process`]) holds what a script starts until
//! something in it calls `setsid` or `setpgid` — a daemonising helper,
//! `setsid sleep`, a pipeline run under another shell's job control. A
//! cgroup holds it whatever it does: a process cannot leave it without
//! write access to the cgroup files, which the sandboxed scripts do not
//! have. So under systemd, whose unit delegates the agent's cgroup
//! (`Delegate=yes`, made writable by `ReadWritePaths=` under
//! `ProtectControlGroups=`) and says so with [`DELEGATED_ENV`], each
//! command runs in `run-N` below the agent's own cgroup, and a timeout
//! kills the cgroup whole: `cgroup.kill` (Linux 5.14), or on older kernels
//! and the v1 hierarchy every PID `cgroup.procs` lists, again until none
//! is left. Killing through the cgroup needs no `CAP_KILL`, so a script
//! user's processes are killed as surely as root's.
//!
//! The command enters its cgroup before it runs: the agent starts its own
//! executable ([`TRAMPOLINE`], `lbdeploy agent exec-in`), which writes
//! itself into `run-N/cgroup.procs`, becomes the script user, and only
//! then executes the command — nothing the command forks can start
//! outside. (Moving the child from the parent after `spawn` would leave
//! a window in which it forks outside; `CLONE_INTO_CGROUP` would need
//! `unsafe` code, which this crate forbids.)
//!
//! Without systemd (the namespace lab, hosts the supervisor runs) the
//! agent shares its cgroup with whatever else runs there and creates
//! none: the process group, and the supervisor's tie, are all there is.
//!
//! A command that ends on its own leaves its cgroup to be removed; one
//! whose leftovers still run there keeps it until they end, and each new
//! cgroup first tries again to remove those ([`Tree::scope`]). systemd
//! removes whatever is left, processes and cgroups, when the unit stops.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rustix::process::{Pid, Signal, kill_process};

/// Set to [`DELEGATED`] by the unit (`Environment=`): the agent's cgroup
/// is its own to divide.
pub const DELEGATED_ENV: &str = "LBDEPLOY_CGROUP";

/// [`DELEGATED_ENV`]'s value that means delegated.
pub const DELEGATED: &str = "delegated";

/// The hidden `lbdeploy agent` subcommand that enters a cgroup, then
/// executes the command (`agent exec-in --cgroup DIR -- PROGRAM ARGS…`).
pub const TRAMPOLINE: &str = "exec-in";

/// Where cgroup file systems are mounted.
const MOUNTS: &str = "/sys/fs/cgroup";

/// Rounds of reading `cgroup.procs` and killing what it lists, without
/// `cgroup.kill`: a process forking as fast as it can makes a few more
/// rounds necessary, and none can fork once its SIGKILL is pending.
const KILL_ROUNDS: usize = 50;

/// The directories where the agent's cgroup may be, best first, from
/// the text of `/proc/self/cgroup`: the unified (v2) hierarchy, mounted
/// alone at `/sys/fs/cgroup` or beside the v1 ones at
/// `/sys/fs/cgroup/unified`; then systemd's own v1 hierarchy. None for a
/// process in a hierarchy's root, which is never the agent's to divide.
/// Pure.
pub fn candidates(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut legacy = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(relative) = path.strip_prefix('/') else { continue };
        if relative.is_empty()
            || relative.split('/').any(|c| matches!(c, "" | "." | ".."))
        {
            continue;
        }
        let mounts = Path::new(MOUNTS);
        match controllers {
            "" => {
                found.push(mounts.join(relative));
                found.push(mounts.join("unified").join(relative));
            }
            "name=systemd" => {
                legacy.push(mounts.join("systemd").join(relative))
            }
            _ => {}
        }
    }
    found.extend(legacy);
    found
}

/// The agent's delegated cgroup: where its commands' cgroups go.
#[derive(Debug)]
pub struct Tree {
    dir: PathBuf,
}

/// This agent's [`Tree`], when systemd delegated its cgroup and a
/// cgroup can be made there; found at the first command and kept. A
/// delegation that does not work is logged once, and commands run in
/// process groups only.
pub fn delegated() -> Option<&'static Tree> {
    static TREE: OnceLock<Option<Tree>> = OnceLock::new();
    TREE.get_or_init(|| {
        if std::env::var(DELEGATED_ENV).ok()? != DELEGATED {
            return None;
        }
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let Some(dir) = candidates(&text)
            .into_iter()
            .find(|d| d.join("cgroup.procs").is_file())
        else {
            tracing::warn!(
                "the unit delegates a cgroup, but this process's is not \
                 found under {MOUNTS}: commands run in process groups only"
            );
            return None;
        };
        let tree = Tree { dir };
        match tree.scope() {
            Ok(probe) => {
                probe.remove();
                Some(tree)
            }
            Err(e) => {
                tracing::warn!(
                    "cannot create cgroups under {}: {e}; commands run in \
                     process groups only",
                    tree.dir.display()
                );
                None
            }
        }
    })
    .as_ref()
}

/// Cgroups whose command ended but whose leftovers did not yet.
static LINGERING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

impl Tree {
    /// A new, empty cgroup for one command. Cgroups left by commands
    /// whose processes have since ended are removed first.
    ///
    /// # Errors
    /// The cgroup cannot be created.
    pub fn scope(&self) -> io::Result<Scope> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut lingering = LINGERING.lock().unwrap_or_else(|p| p.into_inner());
        lingering.retain(|dir| !removed(dir));
        drop(lingering);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = self.dir.join(format!("run-{n}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Scope { dir }),
                // Left by an earlier agent of the same unit.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether `dir` is gone: removed now, or already.
fn removed(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// One command's cgroup.
#[derive(Debug)]
pub struct Scope {
    dir: PathBuf,
}

impl Scope {
    /// The cgroup's directory, for [`enter`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL every process in the cgroup.
    pub fn kill(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for _ in 0..KILL_ROUNDS {
            let pids = std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .unwrap_or_default();
            let mut any = false;
            for pid in pids.lines().filter_map(|l| l.trim().parse().ok()) {
                if let Some(pid) = Pid::from_raw(pid) {
                    any = true;
                    // ESRCH only: it ended meanwhile.
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Remove the cgroup once its command has been reaped; while
    /// something it left still runs there, later.
    pub fn remove(self) {
        if !removed(&self.dir) {
            LINGERING.lock().unwrap_or_else(|p| p.into_inner()).push(self.dir);
        }
    }
}

/// Move the calling process into the cgroup at `dir` (what
/// [`TRAMPOLINE`] does before it executes the command).
///
/// # Errors
/// The cgroup cannot be written: the error names it.
pub fn enter(dir: &Path) -> io::Result<()> {
    let procs = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        // "0": the writing process itself.
        .and_then(|mut file| file.write_all(b"0"))
        .map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e}", procs.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_hybrid_host_offers_the_unified_hierarchy_before_systemds_v1_one() {
        let text = "9:name=systemd:/system.slice/lbdeploy-agent.service\n\
                    4:memory:/\n\
                    0::/system.slice/lbdeploy-agent.service\n";
        assert_eq!(
            candidates(text),
            paths(&[
                "/sys/fs/cgroup/system.slice/lbdeploy-agent.service",
                "/sys/fs/cgroup/unified/system.slice/lbdeploy-agent.service",
                "/sys/fs/cgroup/systemd/system.slice/lbdeploy-agent.service",
            ])
        );
    }

    #[test]
    fn a_root_cgroup_or_a_path_that_climbs_is_never_offered() {
        assert!(candidates("0::/\n9:name=systemd:/\n").is_empty());
        assert!(candidates("0::/a/../../etc\n").is_empty());
        assert!(candidates("0::relative\n0::/a//b\n").is_empty());
        assert!(candidates("garbage\n\n:::\n").is_empty());
        // A v1 controller's hierarchy is not where systemd delegates.
        assert!(candidates("4:memory:/system.slice/x.service\n").is_empty());
    }

    #[test]
    fn a_pure_v2_host_has_one_line() {
        assert_eq!(
            candidates("0::/system.slice/lbdeploy-agent.service\n")[0],
            PathBuf::from("/sys/fs/cgroup/system.slice/lbdeploy-agent.service")
        );
    }
}
