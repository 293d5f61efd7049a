//! The lab's router (`lab.router`): a host between the client and the
//! cluster running BIRD 2, so that directors announcing a VIP over BGP
//! can be tested as they run in production — behind a router that peers
//! with every one of them and spreads the client's flows over those that
//! announce it (ECMP).
//!
//! [`config`] renders BIRD's configuration from the inventory alone
//! (pure, but for the peers' passwords, read through an
//! [`Environment`]): one eBGP session per director that imports only the
//! VIP host routes of the `announce: bgp` services and exports nothing,
//! and a kernel protocol that merges the directors' equal routes into one
//! multipath route. [`start`] runs BIRD in the router's network namespace
//! with its configuration, control socket, pid file and log in the
//! router's directory of the lab state; `status` asks it for its sessions.
//!
//! BIRD enters only the router's network and UTS namespaces, not its
//! mount namespace: the router's `/var/lib` is an overlay whose writes
//! stay inside it, and the control socket must be where the lab (and
//! `birdc` on the machine) can reach it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use serde::Serialize;

use super::cmd::{Cmd, CmdError};
use super::holder;
use super::netns;
use super::state::{Layout, ProcKind, ProcRecord};
use super::topology::{LabHost, Role};
use crate::inventory::{
    Announce, Bgp, Director, EffectiveBgp, Environment, Inventory, LabRouter,
    peer_password,
};
use crate::util::files;

/// The most next hops BIRD merges into one kernel route: more than any
/// lab has directors.
const MERGE_LIMIT: u32 = 16;

/// The longest protocol name written: BIRD refuses symbols of 64
/// characters and more.
const NAME_MAX: usize = 48;

/// BIRD's log in the router's directory: its stdout and stderr.
pub(crate) const BIRD_LOG: &str = "bird.log";

/// Where the router shows its directory of the lab state: the directory
/// of `birdc`'s default socket, `/run/bird/bird.ctl`.
const RUN_DIR: &str = "/run/bird";

/// The longest path a Unix socket can bind (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

/// The router's forwarding and multipath sysctls for IPv4. Policy 3 with
/// these fields (source and destination address, protocol, ports) hashes
/// a flow the way a real router does; policy 1, the usual choice, takes a
/// locally made flow's own socket hash in a veth lab and rolls it again
/// on every retransmission, so one flow would wander between directors.
const SYSCTLS_V4: [(&str, &str); 3] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.fib_multipath_hash_policy", "3"),
    ("net.ipv4.fib_multipath_hash_fields", "0x0037"),
];

/// The same for IPv6.
const SYSCTLS_V6: [(&str, &str); 3] = [
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.fib_multipath_hash_policy", "3"),
    ("net.ipv6.fib_multipath_hash_fields", "0x0037"),
];

/// Why the router's configuration cannot be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfError {
    /// `lab.router` without the inventory's `bgp:` block (validation
    /// refuses it; a hand-made inventory may still have it).
    #[error(
        "the lab's router peers with the directors over BGP, but the \
         inventory has no `bgp:` block — add one listing the router under \
         `peers`, or remove `lab.router`"
    )]
    NoBgp,
    /// A session's password could not be had.
    #[error(
        "director {director}: the BGP password for the lab's router: \
         {message}"
    )]
    Password {
        /// The director whose session it is.
        director: String,
        /// Why, as [`peer_password`] says it.
        message: String,
    },
}

/// BIRD's configuration for the lab's router; `None` without
/// `lab.router`. `base` is the inventory's directory, against which a
/// relative `password_file` is read.
///
/// # Errors
/// When there is no `bgp:` block, or a session's password cannot be had
/// (unset, unreadable, or a value bird.conf cannot quote).
pub(crate) fn config(
    inv: &Inventory,
    env: &dyn Environment,
    base: &Path,
) -> Result<Option<String>, ConfError> {
    let Some(router) = inv.lab.as_ref().and_then(|l| l.router) else {
        return Ok(None);
    };
    let bgp = inv.bgp.as_ref().ok_or(ConfError::NoBgp)?;
    let family = Family::of(router.address.addr);
    let mut s = format!(
        "# Written by `lbdeploy lab up`: BIRD on the lab's router of \
         cluster {}.\n\
         log stderr all;\n\
         router id {};\n\
         protocol device {{}}\n\
         protocol kernel {{ {family} {{ import none; export all; }}; merge \
         paths on limit {MERGE_LIMIT}; }}\n",
        inv.cluster,
        router_id(router.address.addr),
    );
    if let Some(bfd) = &bgp.bfd {
        let ms = bfd.interval.get().as_millis();
        let _ = writeln!(
            s,
            "protocol bfd {{ interface \"*\" {{ min rx interval {ms} ms; \
             min tx interval {ms} ms; multiplier {}; }}; }}",
            bfd.multiplier
        );
    }
    let import = import_filter(&vips(inv, family));
    let mut names = HashSet::new();
    for (i, d) in inv.directors.iter().enumerate() {
        let mut name = protocol_name(&d.name);
        if !names.insert(name.clone()) {
            name = format!("{name}_{i}");
            names.insert(name.clone());
        }
        let own = bgp.for_director(d);
        let password = password(d, &own, &router, env, base)?;
        session(&mut s, &name, d, &own, bgp, &router, password.as_deref());
        let _ =
            writeln!(s, "  {family} {{ import {import}; export none; }};\n}}");
    }
    Ok(Some(s))
}

/// The address family BIRD's channels speak: the router's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// A host route's prefix length.
    fn host_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        })
    }
}

/// BIRD's router id, always in IPv4 form: the router's address, or for an
/// IPv6 router its low 32 bits (the lab's router has no IPv4 address to
/// take, and its id needs only differ from the directors').
fn router_id(addr: IpAddr) -> Ipv4Addr {
    match addr {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => Ipv4Addr::from(a.to_bits() as u32),
    }
}

/// The VIPs of the services announced over BGP, of the router's family,
/// each once, in the inventory's order.
fn vips(inv: &Inventory, family: Family) -> Vec<IpAddr> {
    let mut seen = HashSet::new();
    inv.virtual_services
        .iter()
        .filter(|vs| vs.announce == Announce::Bgp)
        .map(|vs| vs.vip)
        .filter(|vip| Family::of(*vip) == family && seen.insert(*vip))
        .collect()
}

/// What a session imports: the VIPs' host routes and nothing else. A
/// BIRD prefix set needs an element, so no VIP imports nothing.
fn import_filter(vips: &[IpAddr]) -> String {
    if vips.is_empty() {
        return "none".to_owned();
    }
    let set: Vec<String> = vips
        .iter()
        .map(|v| format!("{v}/{}", Family::of(*v).host_prefix()))
        .collect();
    format!("filter {{ if net ~ [ {} ] then accept; reject; }}", set.join(", "))
}

/// `d_` and the director's name in BIRD's symbol alphabet: lower case,
/// anything but letters, digits and `_` as `_`, cut to [`NAME_MAX`].
fn protocol_name(director: &str) -> String {
    let body: String = director
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .take(NAME_MAX - 2)
        .collect();
    format!("d_{body}")
}

/// The password of director `d`'s session with `router`: that of the
/// router's entry among the peers `d` speaks to (`own`), read as the
/// directors' own configuration reads it.
fn password(
    d: &Director,
    own: &EffectiveBgp<'_>,
    router: &LabRouter,
    env: &dyn Environment,
    base: &Path,
) -> Result<Option<String>, ConfError> {
    let entry = own.peers.iter().find(|p| p.address == router.address.addr);
    let Some(peer) = entry else { return Ok(None) };
    peer_password(peer, base, env).map_err(|e| ConfError::Password {
        director: d.name.clone(),
        message: e.message,
    })
}

/// The opening of director `d`'s session, up to its channel: `own` is
/// what `d` speaks, `bgp` the block whose timers every session shares.
fn session(
    s: &mut String,
    name: &str,
    d: &Director,
    own: &EffectiveBgp<'_>,
    bgp: &Bgp,
    router: &LabRouter,
    password: Option<&str>,
) {
    let _ = write!(
        s,
        "protocol bgp {name} {{\n  local {} as {};\n  neighbor {} as {};\n",
        router.address.addr, router.asn, d.address.addr, own.local_as,
    );
    if let Some(p) = password {
        let _ = writeln!(s, "  password \"{p}\";");
    }
    if let Some(hold) = bgp.hold_time {
        let _ = writeln!(s, "  hold time {};", secs(hold.get()));
    }
    if let Some(keepalive) = bgp.keepalive_time {
        let _ = writeln!(s, "  keepalive time {};", secs(keepalive.get()));
    }
    if bgp.bfd.is_some() {
        s.push_str("  bfd on;\n");
    }
}

/// Whole seconds, rounded up: BIRD's timers take seconds, and a hold time
/// rounded down could fall under BGP's minimum of 3 s.
fn secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

// ===== the running router =====

/// Where BIRD's files are, in the router's directory of the lab state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BirdFiles {
    /// Its configuration ([`config`]), mode 0600: it holds passwords.
    pub conf: PathBuf,
    /// Its control socket, for `birdc -s`.
    pub socket: PathBuf,
    /// Its pid file.
    pub pid: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl BirdFiles {
    /// The files of BIRD on `router`.
    pub fn of(layout: &Layout, router: &LabHost) -> Self {
        let dir = layout.host_dir(router);
        Self {
            conf: dir.join("bird.conf"),
            socket: dir.join("bird.ctl"),
            pid: dir.join("bird.pid"),
            log: dir.join(BIRD_LOG),
        }
    }
}

/// What `host` is shown of the machine: on the router, its directory
/// in the lab state at [`RUN_DIR`], so that `birdc` inside it reaches BIRD
/// without `-s`, as on a real router.
pub(crate) fn binds<'a>(
    host: &LabHost,
    host_dir: &'a Path,
) -> Vec<(&'a Path, &'static str)> {
    if host.role == Role::Router { vec![(host_dir, RUN_DIR)] } else { vec![] }
}

/// Make `router` forward, and choose its multipath next hops by flow.
///
/// # Errors
/// When a sysctl cannot be set (a kernel before 5.12 lacks the hash
/// fields).
pub(crate) fn enable_forwarding(router: &LabHost) -> anyhow::Result<()> {
    let sysctls = match Family::of(router.address.addr) {
        Family::V4 => SYSCTLS_V4,
        Family::V6 => SYSCTLS_V6,
    };
    for (key, value) in sysctls {
        netns::sysctl(&router.netns, key, value)
            .with_context(|| format!("making host {} a router", router.name))?;
    }
    Ok(())
}

/// Write `conf` and start BIRD (at `bird`, an absolute path) in the
/// network of `router`, held by `holder`, in the foreground of its own
/// process.
///
/// # Errors
/// When the control socket's path is too long, the configuration cannot
/// be written or BIRD cannot be started.
pub(crate) fn start(
    layout: &Layout,
    router: &LabHost,
    holder: i32,
    bird: &Path,
    conf: &str,
) -> anyhow::Result<ProcRecord> {
    let files = BirdFiles::of(layout, router);
    let len = files.socket.as_os_str().len();
    if len > SUN_PATH_MAX {
        bail!(
            "BIRD's control socket {} would be {len} bytes long, over the \
             {SUN_PATH_MAX} a socket's path may have — use a shorter \
             --state-dir",
            files.socket.display()
        );
    }
    files::write_atomic(&files.conf, conf.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", files.conf.display()))?;
    let cmd = Cmd::new("nsenter")
        .args(["-t", &holder.to_string(), "-n", "-u", "--"])
        .arg(bird)
        .arg("-f")
        .arg("-c")
        .arg(&files.conf)
        .arg("-s")
        .arg(&files.socket)
        .arg("-P")
        .arg(&files.pid);
    let child = holder::daemon(&cmd, &files.log)?
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| cmd.spawn_error(e))?;
    holder::record(router, ProcKind::Bird, child.id())
}

/// Whether the configuration BIRD on `router` was started with is
/// `conf`: a lab whose router would now be configured otherwise was
/// built from another inventory.
pub(crate) fn runs_with(layout: &Layout, router: &LabHost, conf: &str) -> bool {
    let path = BirdFiles::of(layout, router).conf;
    std::fs::read_to_string(path).is_ok_and(|c| c == conf)
}

/// Whether BIRD accepts connections on its control socket: it is ready.
pub(crate) fn answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// One BGP session of the router, as `birdc show protocols` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BgpSession {
    /// The protocol's name: `d_` and the director's name.
    pub name: String,
    /// BIRD's protocol state: `up` once established, else `start`,
    /// `down`…
    pub state: String,
    /// The BGP state and last error (`Established`, `Active  Socket:
    /// Connection refused`…).
    pub info: String,
}

/// The BGP sessions of BIRD listening on `socket`.
///
/// # Errors
/// When `birdc` fails (BIRD is not running, or does not answer).
pub(crate) fn sessions(socket: &Path) -> Result<Vec<BgpSession>, CmdError> {
    let out = Cmd::new("birdc")
        .arg("-s")
        .arg(socket)
        .args(["show", "protocols"])
        .stdout()?;
    Ok(parse_protocols(&out))
}

/// The BGP rows of `show protocols`.
///
/// # Format
/// After BIRD's greeting, a header (`Name Proto Table State Since Info`)
/// and one row per protocol in those columns, blank-separated; `Since` is
/// one word in the default time format, `Info` the rest of the line.
fn parse_protocols(text: &str) -> Vec<BgpSession> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 4 && f[1] == "BGP").then(|| BgpSession {
                name: f[0].to_owned(),
                state: f[3].to_owned(),
                info: f.get(5..).unwrap_or_default().join(" "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A controller where `LAB_BGP` holds `pw`, `BAD` a quote, and the
    /// secret file `secrets/bgp` holds `from-file\n`.
    struct Env;

    impl Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "LAB_BGP" => Some("pw".into()),
                "BAD" => Some("a\"b".into()),
                _ => None,
            }
        }

        fn read_file(&self, _: &Path) -> Option<String> {
            None
        }

        fn read_secret(&self, path: &Path, _: u64) -> Result<String, String> {
            match path == Path::new("/inv/secrets/bgp") {
                true => Ok("from-file\n".into()),
                false => Err("there is no such file".into()),
            }
        }
    }

    fn inventory(extra: &str) -> Inventory {
        let yaml = format!(
            "cluster: c\n\
             directors:\n\
             \x20 - {{name: d1, address: 192.168.1.11/24, interface: eth0, priority: 100}}\n\
             \x20 - {{name: D-2, address: 192.168.1.12/24, interface: eth0, priority: 100,\n\
             \x20     bgp: {{local_as: 65002, peers: [{{address: 192.168.1.1, as: 65000, password_file: secrets/bgp}}]}}}}\n\
             virtual_services:\n\
             \x20 - {{vip: 10.20.0.100, port: 80, scheduler: mh, announce: bgp, real_servers: []}}\n\
             \x20 - {{vip: 10.20.0.100, port: 443, scheduler: mh, announce: bgp, real_servers: []}}\n\
             \x20 - {{vip: 10.20.0.101, port: 80, scheduler: mh, announce: bgp, real_servers: []}}\n\
             lab:\n\
             \x20 controller: 192.168.1.10/24\n\
             \x20 client: 10.9.0.100/24\n\
             \x20 router: {{address: 192.168.1.1/24, client_side: 10.9.0.1/24, as: 65000}}\n\
             {extra}"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn render(inv: &Inventory) -> Result<Option<String>, ConfError> {
        config(inv, &Env, Path::new("/inv"))
    }

    const BGP: &str = "bgp:\n\
        \x20 local_as: 65001\n\
        \x20 peers: [{address: 192.168.1.1, as: 65000, password_env: LAB_BGP}]\n";

    #[test]
    fn one_session_per_director_importing_only_the_vips() {
        let conf = render(&inventory(BGP)).unwrap().unwrap();
        assert_eq!(
            conf,
            "# Written by `lbdeploy lab up`: BIRD on the lab's router of \
             cluster c.\n\
             log stderr all;\n\
             router id 192.168.1.1;\n\
             protocol device {}\n\
             protocol kernel { ipv4 { import none; export all; }; merge \
             paths on limit 16; }\n\
             protocol bgp d_d1 {\n\
             \x20 local 192.168.1.1 as 65000;\n\
             \x20 neighbor 192.168.1.11 as 65001;\n\
             \x20 password \"pw\";\n\
             \x20 ipv4 { import filter { if net ~ [ 10.20.0.100/32, \
             10.20.0.101/32 ] then accept; reject; }; export none; };\n\
             }\n\
             protocol bgp d_d_2 {\n\
             \x20 local 192.168.1.1 as 65000;\n\
             \x20 neighbor 192.168.1.12 as 65002;\n\
             \x20 password \"from-file\";\n\
             \x20 ipv4 { import filter { if net ~ [ 10.20.0.100/32, \
             10.20.0.101/32 ] then accept; reject; }; export none; };\n\
             }\n"
        );
    }

    #[test]
    fn timers_and_bfd_when_the_inventory_sets_them() {
        let bgp = "bgp:\n\
            \x20 local_as: 65001\n\
            \x20 peers: [{address: 192.168.1.1, as: 65000}]\n\
            \x20 bfd: {interval: 100ms, multiplier: 3}\n\
            \x20 hold_time: 3s\n\
            \x20 keepalive_time: 1500ms\n";
        let conf = render(&inventory(bgp)).unwrap().unwrap();
        assert!(
            conf.contains(
                "protocol bfd { interface \"*\" { min rx interval 100 ms; \
                 min tx interval 100 ms; multiplier 3; }; }\n"
            ),
            "{conf}"
        );
        assert!(conf.contains(
            "  neighbor 192.168.1.11 as 65001;\n  hold time 3;\n  \
             keepalive time 2;\n  bfd on;\n  ipv4 {"
        ));
        assert_eq!(conf.matches("password").count(), 1, "D-2's own: {conf}");
    }

    #[test]
    fn without_a_bgp_service_sessions_import_nothing() {
        let mut inv = inventory(BGP);
        for vs in &mut inv.virtual_services {
            vs.announce = Announce::Vrrp;
        }
        let conf = render(&inv).unwrap().unwrap();
        assert!(conf.contains("  ipv4 { import none; export none; };\n"));
    }

    #[test]
    fn no_router_no_config_and_no_bgp_is_an_error() {
        let mut inv = inventory(BGP);
        inv.lab.as_mut().unwrap().router = None;
        assert!(render(&inv).unwrap().is_none());
        let inv = inventory("");
        assert!(matches!(render(&inv), Err(ConfError::NoBgp)));
    }

    #[test]
    fn unreadable_and_unquotable_passwords_name_the_director() {
        let missing = BGP.replace("LAB_BGP", "NOPE");
        let e = render(&inventory(&missing)).unwrap_err().to_string();
        assert_eq!(
            e,
            "director d1: the BGP password for the lab's router: environment \
             variable `NOPE` is not set or empty — export it before running lbdeploy"
        );
        let bad = BGP.replace("LAB_BGP", "BAD");
        let e = render(&inventory(&bad)).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "director d1: the BGP password for the lab's router: the \
                 password holds a character other than printable ASCII"
            ),
            "{e}"
        );
        assert!(!e.contains("a\"b"), "the password stays out: {e}");
    }

    #[test]
    fn protocol_names_are_bird_symbols() {
        assert_eq!(protocol_name("lb-01.example"), "d_lb_01_example");
        assert_eq!(protocol_name(&"x".repeat(80)).len(), NAME_MAX);
    }

    #[test]
    fn names_that_sanitise_alike_stay_apart() {
        let mut inv = inventory(BGP);
        inv.directors[1].name = "D1".into();
        inv.directors[1].bgp = None;
        let conf = render(&inv).unwrap().unwrap();
        assert!(conf.contains("protocol bgp d_d1 {"), "{conf}");
        assert!(conf.contains("protocol bgp d_d1_1 {"), "{conf}");
    }

    #[test]
    fn an_ipv6_router_speaks_ipv6() {
        let mut inv = inventory(BGP);
        let lab = inv.lab.as_mut().unwrap();
        let router = lab.router.as_mut().unwrap();
        router.address = "fd00::1/64".parse().unwrap();
        inv.virtual_services[2].vip = "fd00:20::100".parse().unwrap();
        let conf = render(&inv).unwrap().unwrap();
        assert!(conf.contains("router id 0.0.0.1;\n"), "{conf}");
        assert!(conf.contains("protocol kernel { ipv6 {"), "{conf}");
        assert!(conf.contains(
            "  ipv6 { import filter { if net ~ [ fd00:20::100/128 ] then \
             accept; reject; }; export none; };\n"
        ));
    }

    #[test]
    fn bird_parses_what_is_rendered() {
        let Some(bird) = crate::util::programs::which("bird") else {
            return;
        };
        let bgp = format!("{BGP}  bfd: {{}}\n  hold_time: 3s\n");
        let conf = render(&inventory(&bgp)).unwrap().unwrap();
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bird.conf");
        std::fs::write(&path, conf).unwrap();
        let out = Cmd::new(bird).arg("-p").arg("-c").arg(&path).run();
        std::fs::remove_dir_all(&dir).unwrap();
        out.unwrap();
    }

    #[test]
    fn only_the_router_sees_its_state_directory() {
        let topology = crate::lab::topology::Topology::new(
            &inventory(BGP),
            Path::new("/tmp/x"),
            crate::lab::HostInit::Namespace,
        )
        .unwrap();
        let dir = Path::new("/tmp/x/hosts/r");
        let router = topology.router().unwrap();
        assert_eq!(binds(router, dir), [(dir, "/run/bird")]);
        assert!(binds(topology.host("d1").unwrap(), dir).is_empty());
        let layout = Layout::new("/tmp/x".into());
        let files = BirdFiles::of(&layout, router);
        assert_eq!(
            files.socket.parent(),
            Some(layout.host_dir(router).as_path())
        );
        assert_eq!(
            files.socket.file_name().unwrap(),
            "bird.ctl",
            "birdc's default"
        );
    }

    #[test]
    fn reads_the_bgp_rows_of_show_protocols() {
        let text = "BIRD 2.0.12 ready.\n\
            Name       Proto      Table      State  Since         Info\n\
            device1    Device     ---        up     10:43:11.263  \n\
            kernel1    Kernel     master4    up     10:43:11.263  \n\
            d_d1       BGP        ---        up     10:43:14.012  Established   \n\
            d_d2       BGP        ---        start  10:43:11.263  Active        Socket: Connection refused\n";
        assert_eq!(
            parse_protocols(text),
            [
                BgpSession {
                    name: "d_d1".into(),
                    state: "up".into(),
                    info: "Established".into()
                },
                BgpSession {
                    name: "d_d2".into(),
                    state: "start".into(),
                    info: "Active Socket: Connection refused".into()
                },
            ]
        );
    }
}
