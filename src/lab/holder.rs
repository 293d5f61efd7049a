//! A lab host's own namespaces: mount and UTS, held by one process.
//!
//! Each host has a *holder*: `ip netns exec NS unshare -m -u --propagation
//! private sh -c SETUP`, where the setup script mounts the host's private
//! filesystems, sets its hostname, prints `ready` and becomes `sleep
//! infinity`. Everything else in the host (sshd, the responder, `lab exec`)
//! joins the holder's namespaces with `nsenter -t PID -m -u -n`, and the lab
//! reads and writes the host's files from outside through
//! `/proc/PID/root/...`, which resolves paths in the holder's mount
//! namespace. When the last process in the host exits, its mounts vanish
//! with it: there is nothing to unmount on `down`.
//!
//! What is private, and why:
//!
//! * `/run` — a tmpfs, as on any real host; it also holds the lab's own
//!   plumbing under `/run/lbdeploy-lab` (overlay layers, this binary) and
//!   the directories of the machine a host is shown (the router's
//!   `/run/bird`, its directory in the lab state);
//! * `/etc` and `/var/lib` — overlays on the machine's, with the upper layer
//!   in the host's `/run`: the host sees the machine's files but its writes
//!   stay its own, and the managed directories that do not exist on the
//!   machine (`/etc/lbdeploy`, `/var/lib/lbdeploy`) can be created without
//!   touching the machine (what the machine changes there after `up` may
//!   not show inside: overlayfs does not promise it);
//! * `/root` and every path lbdeploy manages ([`MANAGED_PATHS`]) — empty
//!   tmpfs, a fresh host's state; a private `/root` also keeps the machine's
//!   shell start-up files out of every SSH command (DESIGN.md measured that
//!   at 10× the cost of the command).
//!
//! `/tmp` and the rest stay shared, so an inventory or a binary the user
//! points `lab exec` at is visible inside the host.

use std::io::Read;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};

use super::cmd::Cmd;
use super::procs;
use super::state::{ProcKind, ProcRecord};
use super::topology::LabHost;
use crate::util::{files, shell};

/// The paths lbdeploy manages on a host; each is a private tmpfs.
pub(crate) const MANAGED_PATHS: [&str; 6] = [
    "/etc/lbdeploy",
    "/var/lib/lbdeploy",
    "/usr/local/sbin",
    "/etc/sysctl.d",
    "/etc/systemd/system",
    "/run/lbdeploy",
];

/// Inside every host: the lab's plumbing, on the host's private `/run`.
const LAB_RUN: &str = "/run/lbdeploy-lab";

/// Inside every host: where this very binary is bind-mounted, so the
/// responder runs and `lab exec HOST -- lbdeploy ...` works even when the
/// binary lives under a path the host hides (`/root/.cargo/bin`).
pub(crate) const LAB_BIN: &str = "/run/lbdeploy-lab/bin";

/// The parents the setup makes private before anything is created in them;
/// a managed path elsewhere must already exist on the machine, since
/// creating it would change the machine.
const OVERLAID: [&str; 2] = ["/etc", "/var/lib"];

/// The shell script that turns a fresh `unshare -m -u` into the host.
///
/// `tag` becomes the source of every mount, so the host's mounts can be
/// recognised in `/proc/*/mountinfo`. Each of `binds` (a directory of the
/// machine, and where under `/run` the host sees it) is bound before
/// `/etc` and `/var/lib` are overlaid: through the overlay, a socket the
/// machine's side made there could not be connected to (overlayfs does
/// not pass `connect` through), and a lab's state is often under
/// `/var/lib`. `exe` (this binary) is bind-mounted
/// after `/run` is covered and before `/root` is, so it must not live under
/// `/run` (see [`check_exe`]); a bind rather than a copy, as a debug build
/// is tens of megabytes and a lab has many hosts. (Binding
/// `/proc/self/fd/N` of a file opened outside would avoid the ordering, but
/// the kernel refuses bind sources from another mount namespace.)
pub(crate) fn setup_script(
    host: &LabHost,
    tag: &str,
    exe: &Path,
    binds: &[(&Path, &str)],
) -> String {
    let mut s = String::from("set -eu\n");
    let line = |s: &mut String, l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(&mut s, format!("mount -t tmpfs -o mode=0755 {tag} /run"));
    line(&mut s, format!("mkdir -p {LAB_BIN} /run/sshd"));
    line(&mut s, format!("touch {LAB_BIN}/lbdeploy"));
    let exe = shell::quote(&exe.to_string_lossy());
    line(&mut s, format!("mount --bind {exe} {LAB_BIN}/lbdeploy"));
    for (dir, at) in binds {
        let (dir, at) =
            (shell::quote(&dir.to_string_lossy()), shell::quote(at));
        line(&mut s, format!("mkdir -p {at}"));
        line(&mut s, format!("mount --bind {dir} {at}"));
    }
    for dir in OVERLAID {
        let layer = format!("{LAB_RUN}/overlay{}", dir.replace('/', "-"));
        line(&mut s, format!("mkdir -p {layer}/upper {layer}/work"));
        line(
            &mut s,
            format!(
                "mount -t overlay -o lowerdir={dir},upperdir={layer}/upper,\
                 workdir={layer}/work {tag} {dir}"
            ),
        );
    }
    line(&mut s, format!("mount -t tmpfs -o mode=0700 {tag} /root"));
    for p in MANAGED_PATHS {
        let private_parent = OVERLAID
            .iter()
            .chain(&["/run"])
            .any(|d| p.starts_with(&format!("{d}/")));
        if private_parent {
            line(&mut s, format!("mkdir -p {p}"));
        } else {
            line(
                &mut s,
                format!(
                    "[ -d {p} ] || {{ echo '{p} does not exist on this \
                     machine; the lab hides it per host but will not create \
                     it' >&2; exit 1; }}"
                ),
            );
        }
        line(&mut s, format!("mount -t tmpfs -o mode=0755 {tag} {p}"));
    }
    line(&mut s, format!("hostname {}", shell::quote(&host.name)));
    line(&mut s, "echo ready".into());
    line(&mut s, "exec sleep infinity >/dev/null".into());
    s
}

/// Refuse to run the lab from a binary under `/run`, which every host
/// covers with its own tmpfs before the binary is bound into it.
///
/// # Errors
/// When `exe` is under `/run`.
pub(crate) fn check_exe(exe: &Path) -> anyhow::Result<()> {
    if exe.starts_with("/run") {
        bail!(
            "this lbdeploy runs from {}, under /run, which every lab host \
             replaces with its own — copy it elsewhere (e.g. \
             /usr/local/bin) and run it from there",
            exe.display()
        );
    }
    Ok(())
}

/// Start `host`'s holder in its (existing) network namespace, showing it
/// `binds` as [`setup_script`] says, and wait until its setup has
/// finished.
///
/// # Errors
/// When the holder cannot start or its setup fails; the error carries the
/// setup's stderr (also kept in `log`).
pub(crate) fn start_holder(
    host: &LabHost,
    exe: &Path,
    binds: &[(&Path, &str)],
    log: &Path,
) -> anyhow::Result<ProcRecord> {
    let cmd = Cmd::new("ip")
        .args(["netns", "exec", &host.netns])
        .args(["unshare", "-m", "-u", "--propagation", "private"])
        .args(["sh", "-c", &setup_script(host, &host.netns, exe, binds)]);
    let mut child = daemon(&cmd, log)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| cmd.spawn_error(e))?;
    let record = record(host, ProcKind::Holder, child.id())?;
    // The setup prints `ready` and then points stdout at /dev/null, so EOF
    // comes right after it, or when the setup fails.
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut out)
        .context("reading the host setup's output")?;
    if out.trim() != "ready" {
        let err = std::fs::read_to_string(log).unwrap_or_default();
        bail!(
            "setting up host {} failed (log: {}): {}",
            host.name,
            log.display(),
            err.trim()
        );
    }
    Ok(record)
}

/// `nsenter` into the namespaces of the holder `pid`: everything that runs
/// "on" a lab host goes through this.
pub(crate) fn enter(pid: i32) -> Cmd {
    enter_namespaces(pid).arg("--")
}

/// [`enter`] before its `--`, for callers that add options.
pub(crate) fn enter_namespaces(pid: i32) -> Cmd {
    Cmd::new("nsenter").args(["-t", &pid.to_string(), "-m", "-u", "-n"])
}

/// Start a long-running `program args...` inside the host held by
/// `holder`, detached from this process, output appended to `log`.
///
/// # Errors
/// When it cannot be started.
pub(crate) fn spawn_in(
    host: &LabHost,
    holder: i32,
    kind: ProcKind,
    program_and_args: &[&str],
    log: &Path,
) -> anyhow::Result<ProcRecord> {
    let cmd = enter(holder).args(program_and_args);
    let child = daemon(&cmd, log)?
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| cmd.spawn_error(e))?;
    record(host, kind, child.id())
}

/// A command set up to outlive `lbdeploy lab up`: its own process group (a
/// Ctrl-C at the terminal that ran `up` must not take the lab down) and
/// stdout/stderr in a log file, never the caller's pipes (a test reading
/// `up`'s output would otherwise wait for the lab to exit).
pub(super) fn daemon(
    cmd: &Cmd,
    log: &Path,
) -> anyhow::Result<std::process::Command> {
    let file = files::open_append(log, 0o644)
        .with_context(|| format!("opening log {}", log.display()))?;
    let mut c = cmd.command();
    c.stdout(file.try_clone()?).stderr(file).process_group(0);
    Ok(c)
}

pub(super) fn record(
    host: &LabHost,
    kind: ProcKind,
    pid: u32,
) -> anyhow::Result<ProcRecord> {
    let pid = i32::try_from(pid).context("PID out of range")?;
    // A process that already exited has no start time; it then counts as
    // dead everywhere, which is what it is.
    let start_time = procs::start_time(pid).unwrap_or_default();
    Ok(ProcRecord { host: host.name.clone(), kind, pid, start_time })
}

/// `path` as seen inside the host held by `holder`.
pub(crate) fn path_in(holder: i32, path: &str) -> PathBuf {
    Path::new(&format!("/proc/{holder}/root"))
        .join(path.trim_start_matches('/'))
}

/// Write a file inside the host held by `holder`, with `mode`, atomically.
///
/// # Errors
/// When the file cannot be written.
pub fn install(
    holder: i32,
    path: &str,
    contents: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let target = path_in(holder, path);
    files::write_atomic(&target, contents, mode)
        .with_context(|| format!("writing {path} in a lab host"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::Role;

    #[test]
    fn setup_makes_every_managed_path_private_and_creates_only_inside() {
        let host = LabHost {
            name: "rs01".into(),
            role: Role::RealServer,
            address: "10.0.0.1/24".parse().unwrap(),
            interface: "eth0".into(),
            ssh_port: 22,
            http_ports: vec![80],
            init: crate::lab::topology::HostInit::Namespace,
            netns: "lbd-x-rs01".into(),
            switch_port: "p0-rs01".into(),
            uplink: crate::lab::topology::Uplink::Switch,
            routes: Vec::new(),
        };
        let exe = Path::new("/opt/it's/lbdeploy");
        let state = Path::new("/var/lib/lab/hosts/lbd-x-rs01");
        let s = setup_script(&host, "lbd-x-rs01", exe, &[(state, "/run/x")]);
        for p in MANAGED_PATHS {
            assert!(
                s.contains(&format!(
                    "mount -t tmpfs -o mode=0755 lbd-x-rs01 {p}\n"
                )),
                "{p} not private:\n{s}"
            );
        }
        assert!(s.contains("mkdir -p /etc/lbdeploy\n"));
        assert!(!s.contains("mkdir -p /usr/local/sbin"), "{s}");
        assert!(s.contains("[ -d /usr/local/sbin ] ||"));
        // /run is covered first: the overlay layers and the binary live there.
        assert!(s.find(" /run\n").unwrap() < s.find("lowerdir=/etc").unwrap());
        assert!(s.contains("hostname 'rs01'\n"));
        assert!(s.contains(r"mount --bind '/opt/it'\''s/lbdeploy' "), "{s}");
        assert!(s.find("--bind").unwrap() < s.find(" /root\n").unwrap());
        // The machine's directory, before /var/lib is overlaid.
        let bind = "mount --bind '/var/lib/lab/hosts/lbd-x-rs01' '/run/x'\n";
        assert!(s.contains(&format!("mkdir -p '/run/x'\n{bind}")), "{s}");
        assert!(s.find(bind).unwrap() < s.find("lowerdir=/etc").unwrap());
        assert!(s.ends_with("echo ready\nexec sleep infinity >/dev/null\n"));
    }

    #[test]
    fn paths_inside_resolve_through_proc() {
        assert_eq!(path_in(42, "/etc/x"), Path::new("/proc/42/root/etc/x"));
    }
}
