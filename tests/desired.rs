//! The desired state of the example cluster: every rendered file of every
//! host is a golden file, so a template change shows up in review as the
//! exact bytes that will land on hosts.

use std::fmt::Write;
use std::path::Path;

use lbdeploy::inventory::agent::{self as agent_config, DirectorConfig};
use lbdeploy::inventory::{self, Environment};
use lbdeploy::plan::desired::{
    self, DesiredFile, HostDesired, SYSTEMD_RESTART_STEPS,
};
use lbdeploy::plan::roles::Roles;

use crate::golden;

/// An environment with no variables and no files: secrets stay
/// unresolved. Shared with `hostile_input`.
pub(crate) struct NoSecrets;

impl Environment for NoSecrets {
    fn var(&self, _: &str) -> Option<String> {
        None
    }

    fn read_file(&self, _: &Path) -> Option<String> {
        None
    }
}

const FAKE_SHA: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

fn example() -> Vec<HostDesired> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded =
        inventory::load(&root.join("inventory.example.yml"), &NoSecrets)
            .expect("example loads");
    let roles = Roles::embedded().expect("embedded roles");
    desired::compile(&loaded.inventory, &roles, &NoSecrets, root, FAKE_SHA)
        .expect("example compiles")
}

/// The first host's file whose path ends with `name`.
fn file_of<'a>(hosts: &'a [HostDesired], name: &str) -> &'a DesiredFile {
    hosts[0]
        .files
        .iter()
        .find(|f| f.path.ends_with(name))
        .unwrap_or_else(|| panic!("no {name}"))
}

/// The first host's director agent configuration, parsed back.
fn director_config(hosts: &[HostDesired]) -> DirectorConfig {
    let f = file_of(hosts, "agent.yml");
    agent_config::parse(&f.path, &f.content).expect("it parses")
}

/// The hosts of the inventory `text` (named `name` in errors), compiled
/// with the embedded roles.
pub(crate) fn compile_text(name: &str, text: &str) -> Vec<HostDesired> {
    let loaded =
        inventory::load_str(Path::new(name), text, Path::new("."), &NoSecrets)
            .expect("the inventory is valid");
    let roles = Roles::embedded().expect("embedded roles");
    desired::compile(
        &loaded.inventory,
        &roles,
        &NoSecrets,
        Path::new("."),
        FAKE_SHA,
    )
    .expect("it compiles")
}

fn show(host: &HostDesired) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "host {} (agent {}, service {})",
        host.name, host.agent, host.service
    )
    .unwrap();
    for (k, v) in &host.sysctls {
        writeln!(out, "sysctl {k} = {v}").unwrap();
    }
    for f in &host.files {
        let only = f
            .only_with
            .map(|i| format!(", only with {i:?}"))
            .unwrap_or_default();
        writeln!(
            out,
            "=== {} (mode {:04o}, on change {:?}{only})\n{}",
            f.path.display(),
            f.mode,
            f.on_change,
            f.content
        )
        .unwrap();
        if let Some(older) = &f.older_systemd {
            writeln!(out, "=== before systemd 254, the differences:").unwrap();
            let diff = similar::TextDiff::from_lines(&f.content, older);
            for change in diff.iter_all_changes() {
                if change.tag() != similar::ChangeTag::Equal {
                    write!(out, "{}{change}", change.tag()).unwrap();
                }
            }
        }
    }
    out
}

#[test]
fn example_hosts_render_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/desired/example");
    let failures: Vec<String> = example()
        .iter()
        .filter_map(|h| {
            golden::check(&dir.join(format!("{}.txt", h.name)), &show(h)).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn real_servers_get_no_vrrp_password() {
    for h in example()
        .iter()
        .filter(|h| h.agent == lbdeploy::inventory::Mode::Realserver)
    {
        for f in &h.files {
            assert!(
                !f.content.contains("1111"),
                "{} {}",
                h.name,
                f.path.display()
            );
        }
    }
    let lb = example().into_iter().find(|h| h.name == "keepalived01").unwrap();
    let agent = lb.files.iter().find(|f| f.path == lb.config).unwrap();
    assert!(agent.content.contains("password: '1111'"), "{}", agent.content);
    assert_eq!(agent.mode, 0o600);
}

#[test]
fn compiling_twice_gives_the_same_bytes() {
    assert_eq!(example(), example());
}

/// One director with one instance: the least an inventory can say.
const MINIMAL: &str = "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 1, virtual_addresses: [{ address: 10.0.0.100/24 }] }
";

/// The least an inventory can say: no notification, no virtual service, no
/// real server. Every template must still render a configuration the agent
/// reads (`compile` parses each one back).
#[test]
fn a_minimal_inventory_compiles() {
    let text = MINIMAL;
    let hosts = compile_text("min.yml", text);
    let config = &hosts[0].files[0].content;
    assert!(config.contains("virtual_services: []\n"), "{config}");
    assert!(!config.contains("notification"), "{config}");
}

/// `vrrp_rt_priority` reaches the director's agent configuration, and its
/// unit lets the agent use it (`LimitRTPRIO=`, no `RestrictRealtime=`);
/// without it the unit keeps refusing real-time scheduling.
#[test]
fn vrrp_rt_priority_reaches_the_agent_and_its_unit() {
    let base = MINIMAL;
    let hosts =
        compile_text("rt.yml", &format!("{base}vrrp_rt_priority: 10\n"));
    let parsed = director_config(&hosts);
    assert_eq!(parsed.vrrp_rt_priority.map(|p| p.get()), Some(10));
    let unit = &file_of(&hosts, "lbdeploy-agent.service").content;
    assert!(unit.contains("\nLimitRTPRIO=10\n"), "{unit}");
    assert!(!unit.contains("RestrictRealtime="), "{unit}");

    let hosts = compile_text("plain.yml", base);
    let config = &file_of(&hosts, "agent.yml").content;
    assert!(!config.contains("vrrp_rt_priority"), "{config}");
    let unit = &file_of(&hosts, "lbdeploy-agent.service").content;
    assert!(unit.contains("\nRestrictRealtime=yes\n"), "{unit}");
    assert!(!unit.contains("LimitRTPRIO"), "{unit}");
}

/// `ipvs_sync` reaches the director's agent configuration with its
/// interface and sync id resolved: the director's own interface and the
/// instance's VRID when left out, as keepalived's `lvs_sync_daemon`.
#[test]
fn ipvs_sync_reaches_the_agent_resolved() {
    let parse = director_config;
    let hosts = compile_text(
        "sync.yml",
        &format!("{MINIMAL}ipvs_sync: {{ instance: VI_1 }}\n"),
    );
    let sync = parse(&hosts).ipvs_sync.expect("ipvs_sync");
    assert_eq!(
        (sync.instance.as_str(), sync.interface.as_str(), sync.sync_id),
        ("VI_1", "eth0", 1)
    );
    let hosts = compile_text(
        "sync-set.yml",
        &format!(
            "{MINIMAL}ipvs_sync: {{ instance: VI_1, interface: eth1, \
             sync_id: 0 }}\n"
        ),
    );
    let sync = parse(&hosts).ipvs_sync.expect("ipvs_sync");
    assert_eq!((sync.interface.as_str(), sync.sync_id), ("eth1", 0));
    assert_eq!(parse(&compile_text("plain.yml", MINIMAL)).ipvs_sync, None);
}

/// `vrrp_no_swap` reaches the director's agent configuration, and its
/// unit lifts the memory-lock limit (`LimitMEMLOCK=infinity`) with it
/// only.
#[test]
fn vrrp_no_swap_reaches_the_agent_and_its_unit() {
    let hosts =
        compile_text("no-swap.yml", &format!("{MINIMAL}vrrp_no_swap: true\n"));
    assert!(director_config(&hosts).vrrp_no_swap);
    let unit = &file_of(&hosts, "lbdeploy-agent.service").content;
    assert!(unit.contains("\nLimitMEMLOCK=infinity\n"), "{unit}");

    let hosts = compile_text("swap.yml", MINIMAL);
    let config = &file_of(&hosts, "agent.yml").content;
    assert!(!config.contains("vrrp_no_swap"), "{config}");
    let unit = &file_of(&hosts, "lbdeploy-agent.service").content;
    assert!(!unit.contains("LimitMEMLOCK"), "{unit}");
}

/// `rise`, `quorum` and `hysteresis` reach the director's agent
/// configuration as written, for the checks and the data plane to use.
#[test]
fn check_rise_and_quorum_reach_the_agent() {
    let text = "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 1, virtual_addresses: [{ address: 10.0.0.100/24 }] }
virtual_services:
  - vip: 10.0.0.100
    port: 80
    scheduler: rr
    quorum: 3
    hysteresis: 1
    real_servers:
      - { address: 10.0.0.21, port: 80, weight: 2, checks: [{ tcp: { rise: 3 } }] }
      - { address: 10.0.0.22, port: 80, weight: 2, checks: [{ http_get: { path: /, rise: 2 } }] }
";
    let hosts = compile_text("rise.yml", text);
    let file = &hosts[0].files[0];
    let config: DirectorConfig =
        agent_config::parse(&file.path, &file.content).expect("it parses");
    let svc = &config.virtual_services[0];
    assert_eq!((svc.quorum, svc.hysteresis), (3, 1));
    let rises: Vec<u32> =
        svc.real_servers.iter().map(|rs| rs.checks[0].timing().rise).collect();
    assert_eq!(rises, [3, 2], "{}", file.content);
}

/// `script_user` reaches every program in `agent.yml` that names no user
/// of its own, and the unit keeps CAP_SETUID, CAP_SETGID and CAP_KILL
/// for it —
/// only then.
#[test]
fn script_user_reaches_each_program_and_the_units_capabilities() {
    let text = |top: &str| {
        format!(
            "cluster: t
directors:
  - {{ name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }}
vrrp_instances:
  - name: VI_1
    virtual_router_id: 1
    virtual_addresses: [{{ address: 10.0.0.100/24 }}]
    notify: {{ master: [/bin/m] }}
    track: {{ scripts: [{{ name: a }}, {{ name: b }}] }}
vrrp_scripts:
  - {{ name: a, command: [/bin/a] }}
  - {{ name: b, command: [/bin/b], user: own:grp }}
notification: {{ exec: [/bin/n] }}
{top}"
        )
    };
    let unit_and_config = |top: &str| {
        let hosts = compile_text("su.yml", &text(top));
        let unit = file_of(&hosts, "lbdeploy-agent.service").content.clone();
        (unit, director_config(&hosts))
    };
    let (unit, config) = unit_and_config("script_user: nobody:nogroup\n");
    let users: Vec<String> = config
        .programs()
        .iter()
        .map(|p| format!("{} {}", p.path, p.user.unwrap()))
        .collect();
    assert_eq!(
        users,
        [
            "/bin/m nobody:nogroup",
            "/bin/a nobody:nogroup",
            "/bin/b own:grp",
            "/bin/n nobody:nogroup",
        ]
    );
    assert!(
        unit.contains(
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID \
             CAP_SETGID CAP_KILL\n"
        ),
        "{unit}"
    );
    assert!(unit.contains("AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n"));
    let (unit, config) = unit_and_config("");
    assert!(config.switches_user(), "b has its own user");
    assert!(unit.contains("CAP_SETUID"), "{unit}");
    let root_only = text("").replace(", user: own:grp", "");
    let hosts = compile_text("root.yml", &root_only);
    let unit = hosts[0]
        .files
        .iter()
        .find(|f| f.path.ends_with("lbdeploy-agent.service"))
        .unwrap();
    assert!(
        unit.content
            .contains("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n"),
        "{}",
        unit.content
    );
}

/// The example with `vrrp_rt_priority`: its unit drops
/// `RestrictRealtime=` for `LimitRTPRIO=`.
fn example_realtime() -> Vec<HostDesired> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("inventory.example.yml"))
        .expect("the example is readable");
    compile_text("example-rt.yml", &format!("{text}\nvrrp_rt_priority: 10\n"))
}

/// A director's unit delegates its cgroup and tells the agent so, in the
/// words the agent looks for (`agent::sys::cgroup`); a real server's
/// agent runs no command and gets no delegation.
#[test]
fn a_directors_unit_delegates_its_cgroup_to_the_agent() {
    use lbdeploy::agent::sys::cgroup::{DELEGATED, DELEGATED_ENV};
    let hosts = example();
    let unit = |name: &str| {
        let host = hosts.iter().find(|h| h.name == name).unwrap();
        let unit = host
            .files
            .iter()
            .find(|f| f.path.ends_with("lbdeploy-agent.service"));
        unit.unwrap().content.clone()
    };
    let told = format!("\nEnvironment={DELEGATED_ENV}={DELEGATED}\n");
    let director = unit("keepalived01");
    assert!(director.contains("\nDelegate=yes\n"), "{director}");
    assert!(director.contains(&told), "{director}");
    let real_server = unit("rs01");
    assert!(!real_server.contains("Delegate="), "{real_server}");
    assert!(!real_server.contains(&told), "{real_server}");
}

/// The first director's unit of `hosts`, with its binary path pointed at
/// the binary under test so that checks that ExecStart exists pass on
/// this machine; `None` (the test skipped) where systemd-analyze is not
/// installed.
fn director_unit(hosts: &[HostDesired]) -> Option<String> {
    let Ok(which) =
        std::process::Command::new("systemd-analyze").arg("--version").output()
    else {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return None;
    };
    assert!(which.status.success());
    // The unit as this machine's systemd gets it (`systemd 252 (…)`).
    let version: u32 = String::from_utf8_lossy(&which.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("systemd-analyze says its version");
    let host = &hosts[0];
    let unit = host
        .files
        .iter()
        .find(|f| f.path.ends_with("lbdeploy-agent.service"))
        .expect("the director has a unit");
    let content = match &unit.older_systemd {
        Some(older) if version < SYSTEMD_RESTART_STEPS => older,
        _ => &unit.content,
    };
    Some(content.replace(
        &host.binary.to_string_lossy().into_owned(),
        env!("CARGO_BIN_EXE_lbdeploy"),
    ))
}

/// The unit passes `systemd-analyze verify` (where systemd is installed),
/// with and without `vrrp_rt_priority`.
#[test]
fn the_systemd_unit_verifies() {
    for hosts in [example(), example_realtime()] {
        verifies(&hosts);
    }
}

fn verifies(hosts: &[HostDesired]) {
    let Some(content) = director_unit(hosts) else { return };
    let dir = crate::support::lab::TempDir::new("unit-verify");
    let path = dir.path().join("lbdeploy-agent.service");
    std::fs::write(&path, content).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    // Anything it says is a finding: the unit this systemd gets has no key
    // it does not know.
    let said: Vec<&str> =
        said.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(out.status.success() && said.is_empty(), "{said:#?}");
}

/// The most `systemd-analyze security` may rate the unit's exposure:
/// "OK" ends at 3.9, and issue #17 asks for 3.0 at most (it was 6.7
/// MEDIUM before the sandboxing directives).
const MAX_EXPOSURE: f64 = 3.0;

/// The unit's exposure, as `systemd-analyze security --offline=true`
/// rates the file (systemd 250 and later; skipped where it is missing),
/// with and without `vrrp_rt_priority`.
#[test]
fn the_systemd_unit_is_exposed_at_most_3_0() {
    for hosts in [example(), example_realtime()] {
        exposed_at_most_3_0(&hosts);
    }
}

fn exposed_at_most_3_0(hosts: &[HostDesired]) {
    let Some(content) = director_unit(hosts) else { return };
    let dir = crate::support::lab::TempDir::new("unit-security");
    let path = dir.path().join("lbdeploy-agent.service");
    std::fs::write(&path, content).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "→ Overall exposure level for lbdeploy-agent.service: 2.6 OK 🙂"
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for "))
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in\n{text}\n{}",
                crate::support::lab::describe(&out)
            )
        });
    eprintln!("systemd-analyze security: exposure {score}");
    assert!(score <= MAX_EXPOSURE, "exposure {score}\n{text}");
}

/// keepalived's `weight N reverse`: each tracked object's weight and
/// `reverse` reach `agent.yml` resolved per instance — the object's own,
/// or the instance's override, whose `reverse` comes with its weight.
#[test]
fn tracked_weights_reach_the_agent_with_their_reverse() {
    let text = "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
vrrp_instances:
  - name: VI_1
    virtual_router_id: 1
    virtual_addresses: [{ address: 10.0.0.100/24 }]
    track:
      scripts: [{ name: a }, { name: b, weight: -10, reverse: true }, { name: c, weight: 5 }]
      files: [{ name: f }]
vrrp_scripts:
  - { name: a, command: [/bin/a], weight: 20, reverse: true }
  - { name: b, command: [/bin/b], weight: 30 }
  - { name: c, command: [/bin/c], weight: 40, reverse: true }
vrrp_track_files:
  - { name: f, path: /run/f, weight: 2, reverse: true }
";
    let parsed = director_config(&compile_text("reverse.yml", text));
    let track = &parsed.vrrp_instances[0].track;
    let resolved = |refs: &[lbdeploy::inventory::TrackRef]| {
        refs.iter()
            .map(|r| (r.name.clone(), r.weight, r.reverse))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        resolved(&track.scripts),
        [
            ("a".to_owned(), Some(20), true),
            ("b".to_owned(), Some(-10), true),
            ("c".to_owned(), Some(5), false),
        ]
    );
    assert_eq!(resolved(&track.files), [("f".to_owned(), Some(2), true)]);
}
