//! Lab hosts that boot systemd (`lab up --init systemd`): what real hosts
//! are, reboots and power cuts included.
//!
//! Each such host is a `systemd-nspawn` container booting the cached
//! Debian root file system ([`super::rootfs`]) under an overlay whose upper
//! layer is the host's own directory in the lab state: what `apply`
//! installs and enables there survives reboots and never reaches the cache.
//!
//! A *boot loop* runs each host: `unshare -m` (a private mount namespace
//! that holds the overlay, which vanishes with the loop) running a shell
//! loop that boots the container from the switch namespace with
//! `--network-bridge`. nspawn then makes the container a fresh network
//! namespace and a veth on the lab's bridge at every boot, so a reboot
//! really loses addresses, sysctls and nftables tables. Exit code 133
//! (`systemctl reboot` inside) and a killed container (`lab crash`, a power
//! cut) boot it again; exit 0 (a poweroff) ends the loop; a container that
//! dies within [`QUICK_EXIT_SECS`] of its start [`QUICK_EXITS`] times in a
//! row is given up.
//!
//! Inside, units written into the upper layer before the first boot play
//! the parts a real host's own configuration plays: its network (the
//! container's link is `host0` at every boot; the unit renames it to the
//! inventory's interface and adds the address) and, on real servers, the
//! lab's HTTP responder. sshd is Debian's `ssh.service` reading the lab's
//! configuration. How to run systemd-nspawn on a machine without systemd
//! (`--keep-unit --register=no`, `nsenter --net` rather than
//! `ip netns exec`) is recorded in DESIGN.md.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal};

use super::cmd::Cmd;
use super::holder::{self, LAB_BIN};
use super::procs;
use super::sshd::HOST_SSH_DIR;
use super::state::{Layout, ProcKind, ProcRecord};
use super::topology::{BRIDGE, LabHost};
use crate::util::{files, shell};

/// A container that exits this soon after it started counts as a quick
/// exit (a broken boot rather than a reboot).
const QUICK_EXIT_SECS: u32 = 5;

/// Quick exits in a row after which the boot loop gives up, so a host that
/// cannot boot does not spin.
const QUICK_EXITS: u32 = 5;

/// How long a boot may take until sshd and the responders listen. A boot
/// takes about 1 s on an idle machine; this allows for a loaded 2-core CI.
pub(crate) const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The cgroup hierarchies a container's systemd works in, whichever of
/// them this machine has mounted (`systemd` and `unified` under cgroup v1
/// or hybrid, the root under v2).
const CGROUP_ROOTS: [&str; 3] =
    ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// Below each of [`CGROUP_ROOTS`], the directory holding one cgroup per
/// systemd host. Each container needs a cgroup of its own: with
/// `--keep-unit` and no systemd on the machine, nspawn roots the
/// container in its caller's cgroup, and containers sharing one undo each
/// other's `system.slice` (units then fail with status 219/CGROUP, "No
/// such device": seen in one boot of a few before each got its own).
const CGROUP_DIR: &str = "lbdeploy-lab";

/// The unit that configures the host's network at every boot.
const NET_UNIT: &str = "lbdeploy-lab-net.service";

/// Where units the lab adds live in the host (the place a local
/// administrator's units go).
const UNIT_DIR: &str = "/etc/systemd/system";

/// sshd listens on the host's address only, so it must start after the
/// address is there, and come back when it fails at boot all the same
/// (Debian's unit gives up on sshd's exit status 255, which is what a
/// failed bind returns). Without this, one boot in a few left a host
/// without sshd.
const SSH_DROP_IN: &str = "# Written by `lbdeploy lab up`.\n\
                           [Unit]\n\
                           Requires=lbdeploy-lab-net.service\n\
                           After=lbdeploy-lab-net.service\n\
                           \n\
                           [Service]\n\
                           Restart=always\n\
                           RestartSec=200ms\n\
                           RestartPreventExitStatus=\n";

/// The unit that runs the HTTP responder on `port`.
pub(crate) fn responder_unit(port: u16) -> String {
    format!("lbdeploy-lab-responder-{port}.service")
}

/// The files the lab puts into `host` before its first boot, as (path
/// inside, contents, mode), and the units to enable. sshd's own files are
/// written by [`super::sshd::install`].
pub(crate) fn host_files(
    host: &LabHost,
) -> (Vec<(String, String, u32)>, Vec<String>) {
    let mut files = vec![
        ("/etc/hostname".to_owned(), format!("{}\n", host.name), 0o644),
        (
            "/etc/ssh/sshd_config".to_owned(),
            format!(
                "# Written by `lbdeploy lab up`: the lab's sshd settings.\n\
                 Include {HOST_SSH_DIR}/sshd_config\n"
            ),
            0o644,
        ),
        (format!("{UNIT_DIR}/{NET_UNIT}"), net_unit(host), 0o644),
        (
            format!("{UNIT_DIR}/ssh.service.d/lbdeploy-lab.conf"),
            SSH_DROP_IN.to_owned(),
            0o644,
        ),
    ];
    let mut enabled = vec![NET_UNIT.to_owned()];
    for &port in &host.http_ports {
        let unit = responder_unit(port);
        files.push((
            format!("{UNIT_DIR}/{unit}"),
            responder_service(host, port),
            0o644,
        ));
        enabled.push(unit);
    }
    (files, enabled)
}

/// The network unit: what ifupdown or networkd would do on a real host,
/// its routes (to the client behind the lab's router) included.
fn net_unit(host: &LabHost) -> String {
    let nodad = if host.address.addr.is_ipv6() { " nodad" } else { "" };
    let routes: String = host
        .routes
        .iter()
        .map(|r| {
            format!(
                "ExecStart=/sbin/ip {} route add {} via {}\n",
                r.family(),
                r.destination(),
                r.via
            )
        })
        .collect();
    format!(
        "# Written by `lbdeploy lab up`: the network of lab host {name}.\n\
         [Unit]\n\
         Description=lab network: {addr} on {ifname}\n\
         DefaultDependencies=no\n\
         Before=network.target ssh.service\n\
         Wants=network.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/sbin/ip link set lo up\n\
         ExecStart=/sbin/ip link set host0 name {ifname}\n\
         ExecStart=/sbin/ip address add {addr} dev {ifname}{nodad}\n\
         ExecStart=/sbin/ip link set {ifname} up\n\
         {routes}\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = host.name,
        addr = host.address,
        ifname = host.interface,
    )
}

/// The responder as a service of the host, so it comes back after a
/// reboot as a real server's web server does.
fn responder_service(host: &LabHost, port: u16) -> String {
    let listen = if host.address.addr.is_ipv6() { "::" } else { "0.0.0.0" };
    format!(
        "# Written by `lbdeploy lab up`: the lab's web server.\n\
         [Unit]\n\
         Description=lab HTTP responder on port {port}\n\
         After={NET_UNIT}\n\
         \n\
         [Service]\n\
         ExecStart={LAB_BIN}/lbdeploy lab responder --port {port} --name \
         {name} --listen {listen}\n\
         Restart=always\n\
         RestartSec=200ms\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = host.name,
    )
}

/// The boot loop's shell script (see the module documentation).
///
/// `tag` is the overlay mount's source, so the host's mounts can be
/// recognised in `/proc/*/mountinfo`.
pub(crate) fn boot_script(
    host: &LabHost,
    tag: &str,
    rootfs: &Path,
    layers: &Path,
    switch_netns: &str,
    exe: &Path,
) -> String {
    let q = |p: &Path| shell::quote(&p.to_string_lossy());
    let name = shell::quote(&host.name);
    let overlay = format!(
        "lowerdir={},upperdir={},workdir={}",
        rootfs.display(),
        layers.join("upper").display(),
        layers.join("work").display()
    );
    let cgroups = CGROUP_ROOTS
        .map(|r| shell::quote(&format!("{r}/{CGROUP_DIR}/{}", host.netns)))
        .join(" ");
    format!(
        "set -u\n\
         mount -t overlay -o {overlay} {tag} {root} || exit 1\n\
         for cg in {cgroups}; do\n\
         \x20 if [ -f \"${{cg%/*/*}}/cgroup.procs\" ]; then \
         mkdir -p \"$cg\" && echo $$ > \"$cg/cgroup.procs\" || exit 1; fi\n\
         done\n\
         quick=0\n\
         while :; do\n\
         \x20 started=$(date +%s)\n\
         \x20 nsenter --net=/run/netns/{switch_netns} systemd-nspawn --quiet \
         --boot --directory={root} --machine={machine} --hostname={name} \
         --register=no --keep-unit --network-bridge={BRIDGE} \
         --console=pipe --bind-ro={exe}:{LAB_BIN}/lbdeploy </dev/null\n\
         \x20 rc=$?\n\
         \x20 [ \"$rc\" -eq 0 ] && {{ echo \"lab: \"{name}\" powered off\"; \
         exit 0; }}\n\
         \x20 echo \"lab: \"{name}\" stopped ($rc); booting it again\"\n\
         \x20 if [ $(($(date +%s) - started)) -lt {QUICK_EXIT_SECS} ]; then \
         quick=$((quick + 1)); else quick=0; fi\n\
         \x20 [ \"$quick\" -lt {QUICK_EXITS} ] || {{ echo \"lab: \"{name}\" \
         failed to boot {QUICK_EXITS} times in a row; giving up\" >&2; \
         exit 1; }}\n\
         done\n",
        overlay = shell::quote(&overlay),
        root = q(&layers.join("root")),
        machine = host.netns,
        exe = q(exe),
    )
}

/// Prepare `host`'s layers, write the lab's files into it and start its
/// boot loop. sshd's files must be in the upper layer already.
///
/// # Errors
/// When a file cannot be written or the loop cannot start.
pub(crate) fn start(
    layout: &Layout,
    host: &LabHost,
    rootfs: &Path,
    switch_netns: &str,
    exe: &Path,
) -> anyhow::Result<ProcRecord> {
    let exe_text = exe.to_string_lossy();
    if exe_text.contains(':') {
        bail!(
            "this lbdeploy runs from {exe_text}, whose `:` systemd-nspawn's \
             --bind-ro cannot take — run it from another path"
        );
    }
    let layers = layout.host_dir(host);
    for d in ["upper", "work", "root"] {
        files::create_dirs(&layers.join(d))?;
    }
    let upper = layout.upper(host);
    let (wanted, enabled) = host_files(host);
    for (path, contents, mode) in wanted {
        files::write_atomic(
            &upper.join(path.trim_start_matches('/')),
            contents.as_bytes(),
            mode,
        )?;
    }
    let wants = upper.join("etc/systemd/system/multi-user.target.wants");
    files::create_dirs(&wants)?;
    for unit in enabled {
        let link = wants.join(&unit);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("{UNIT_DIR}/{unit}"), &link)
                .with_context(|| format!("enabling {unit} in {}", host.name))?;
        }
    }
    let script =
        boot_script(host, &host.netns, rootfs, &layers, switch_netns, exe);
    let cmd = Cmd::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]);
    let child = holder::daemon(&cmd, &layers.join("boot.log"))?
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| cmd.spawn_error(e))?;
    holder::record(host, ProcKind::Machine, child.id())
}

/// The PID (in this machine's PID namespace) of the init of the container
/// that `boot_loop` is running now, if one runs.
pub(crate) fn init_of(boot_loop: i32) -> Option<i32> {
    procs::children(boot_loop)
        .into_iter()
        .filter(|&p| procs::comm(p).as_deref() == Some("systemd-nspawn"))
        .flat_map(procs::children)
        .find(|&p| procs::comm(p).as_deref() == Some("systemd"))
}

/// `nsenter` into every namespace of the container whose init is `init`,
/// PID namespace included, so `systemctl` and `ps` see the host.
pub(crate) fn enter(init: i32) -> Cmd {
    Cmd::new("nsenter").args([
        "-t",
        &init.to_string(),
        "-m",
        "-u",
        "-n",
        "-i",
        "-p",
    ])
}

/// How to take a systemd host down and up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `systemctl reboot` inside: units stop in order.
    Reboot,
    /// SIGKILL to the container's init: every process in it dies at once,
    /// as in a power cut.
    PowerCut,
}

/// Restart the container whose boot loop is `boot_loop` and wait until a
/// new boot serves again (`ready` says so), at most [`BOOT_TIMEOUT`].
///
/// # Errors
/// When the host does not run, or does not come back in time.
pub(crate) fn restart(
    name: &str,
    boot_loop: i32,
    how: Restart,
    ready: impl Fn(i32) -> bool,
) -> anyhow::Result<Duration> {
    let init = init_of(boot_loop)
        .with_context(|| format!("host {name} is not running"))?;
    let started = Instant::now();
    match how {
        Restart::Reboot => {
            enter(init).args(["systemctl", "reboot"]).run()?;
        }
        Restart::PowerCut => {
            if let Some(pid) = Pid::from_raw(init) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
    loop {
        if let Some(new) = init_of(boot_loop).filter(|&p| p != init)
            && ready(new)
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= BOOT_TIMEOUT {
            bail!(
                "host {name} did not come back within {} s — see its boot \
                 log in the lab's state directory",
                BOOT_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Cut the power of a host for good: the boot loop first, so it does not
/// boot the container again, then the container's init, which takes every
/// process of the container with it (`down` has no use for a clean
/// shutdown).
pub(crate) fn kill(record: &ProcRecord) {
    if !procs::is_alive(record.pid, record.start_time) {
        return;
    }
    let init = init_of(record.pid);
    for pid in std::iter::once(record.pid).chain(init) {
        if let Some(pid) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
}

/// Remove `host`'s cgroups, deepest first, once nothing runs in them;
/// what cannot be removed (not empty yet, already gone) is left.
pub(crate) fn remove_cgroups(host: &LabHost) {
    fn remove(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for root in CGROUP_ROOTS {
        let parent = Path::new(root).join(CGROUP_DIR);
        remove(&parent.join(&host.netns));
        // Shared by every lab: removed only when the last is gone.
        let _ = std::fs::remove_dir(parent);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lab::topology::{HostInit, LabRoute, Role, Uplink};

    /// A systemd real server with web servers on ports 80 and 8080.
    pub(crate) fn host() -> LabHost {
        LabHost {
            name: "rs01".into(),
            role: Role::RealServer,
            address: "10.0.0.21/24".parse().unwrap(),
            interface: "eth0".into(),
            ssh_port: 22,
            http_ports: vec![80, 8080],
            init: HostInit::Systemd,
            netns: "lbd-x-2-rs01".into(),
            switch_port: "p2-rs01".into(),
            uplink: Uplink::Switch,
            routes: Vec::new(),
        }
    }

    #[test]
    fn a_host_gets_its_network_sshd_and_responders_as_units() {
        let (files, enabled) = host_files(&host());
        let paths: Vec<_> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/hostname",
                "/etc/ssh/sshd_config",
                "/etc/systemd/system/lbdeploy-lab-net.service",
                "/etc/systemd/system/ssh.service.d/lbdeploy-lab.conf",
                "/etc/systemd/system/lbdeploy-lab-responder-80.service",
                "/etc/systemd/system/lbdeploy-lab-responder-8080.service",
            ]
        );
        assert_eq!(enabled.len(), 3);
        let net = &files[2].1;
        assert!(net.contains("ip link set host0 name eth0\n"), "{net}");
        assert!(net.contains("address add 10.0.0.21/24 dev eth0\n"), "{net}");
        assert!(net.contains("Before=network.target ssh.service\n"));
        assert!(
            files[1].1.contains("Include /etc/ssh/lbdeploy-lab/sshd_config")
        );
        let web = &files[5].1;
        assert!(web.contains("--port 8080 --name rs01 --listen 0.0.0.0\n"));
    }

    #[test]
    fn a_host_behind_the_lab_router_gets_its_route_at_every_boot() {
        let mut h = host();
        h.routes.push(LabRoute {
            to: Some("10.9.0.0/24".parse().unwrap()),
            via: "10.0.0.1".parse().unwrap(),
        });
        let net = net_unit(&h);
        assert!(
            net.contains(
                "ExecStart=/sbin/ip link set eth0 up\n\
                 ExecStart=/sbin/ip -4 route add 10.9.0.0/24 via 10.0.0.1\n\
                 \n[Install]"
            ),
            "{net}"
        );
    }

    #[test]
    fn an_ipv6_host_skips_duplicate_address_detection() {
        let mut h = host();
        h.address = "fd00::21/64".parse().unwrap();
        let net = net_unit(&h);
        assert!(net.contains("add fd00::21/64 dev eth0 nodad\n"), "{net}");
        assert!(responder_service(&h, 80).contains("--listen ::\n"));
    }

    #[test]
    fn the_boot_loop_reboots_on_133_and_power_cuts_and_stops_on_poweroff() {
        let s = boot_script(
            &host(),
            "lbd-x-2-rs01",
            Path::new("/var/cache/lbdeploy-lab/rootfs-bookworm"),
            Path::new("/var/lib/lab/hosts/lbd-x-2-rs01"),
            "lbd-x",
            Path::new("/opt/it's/lbdeploy"),
        );
        assert!(s.contains(
            "mount -t overlay -o 'lowerdir=/var/cache/lbdeploy-lab/\
             rootfs-bookworm,upperdir=/var/lib/lab/hosts/lbd-x-2-rs01/upper,\
             workdir=/var/lib/lab/hosts/lbd-x-2-rs01/work' lbd-x-2-rs01 \
             '/var/lib/lab/hosts/lbd-x-2-rs01/root' || exit 1\n"
        ));
        assert!(s.contains("nsenter --net=/run/netns/lbd-x systemd-nspawn"));
        assert!(s.contains(
            "for cg in '/sys/fs/cgroup/systemd/lbdeploy-lab/lbd-x-2-rs01' "
        ));
        assert!(
            s.find("echo $$ >").unwrap() < s.find("systemd-nspawn").unwrap()
        );
        assert!(s.contains("--machine=lbd-x-2-rs01 --hostname='rs01'"));
        assert!(s.contains("--network-bridge=br0"));
        assert!(s.contains(
            r"--bind-ro='/opt/it'\''s/lbdeploy':/run/lbdeploy-lab/bin/lbdeploy"
        ));
        assert!(s.contains("[ \"$rc\" -eq 0 ] && {"));
        assert!(s.contains("[ \"$quick\" -lt 5 ] ||"));
        assert!(s.ends_with("done\n"));
    }
}
