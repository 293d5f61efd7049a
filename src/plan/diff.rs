//! The plan of one host: what `apply` must change to get from its facts to
//! its desired state. Pure.

use std::path::{Path, PathBuf};

use super::desired::HostDesired;
use super::facts::{HostFacts, ServiceState, UnitFacts};
use super::roles::Init;
use super::roles::OnChange;
use crate::inventory::Mode;
use crate::inventory::agent::{self, DirectorConfig};
use crate::inventory::drained::{self, DRAINED_FILE};

/// One change on a host, in the order `apply` performs them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Install or replace the agent binary.
    Binary {
        /// Where it goes.
        path: PathBuf,
        /// The installed binary's SHA-256, if any.
        old: Option<String>,
        /// The new binary's SHA-256.
        new: String,
    },
    /// Write a file that does not exist yet.
    CreateFile {
        /// Where.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
        /// Content.
        content: String,
    },
    /// Rewrite a file whose content or mode differs.
    UpdateFile {
        /// Where.
        path: PathBuf,
        /// Current mode.
        old_mode: u32,
        /// Desired mode.
        new_mode: u32,
        /// Current content (lossy UTF-8 for the diff).
        old: String,
        /// Desired content.
        new: String,
    },
    /// Remove a file an earlier apply created that is no longer wanted.
    RemoveFile {
        /// Where.
        path: PathBuf,
    },
    /// Put back in service the real servers this director drained at
    /// runtime (`apply --undrain`): its drained list is removed, and the
    /// agent reloads. A rollback puts the list back.
    Undrain {
        /// Where the list is.
        path: PathBuf,
        /// What it drains, as `plan` lists it; empty when the list does
        /// not parse (the agent then drains nothing and says why).
        drained: Vec<String>,
    },
    /// Set a kernel parameter live (the sysctl.d file persists it).
    Sysctl {
        /// The key, e.g. `net.ipv4.conf.all.arp_ignore`.
        key: String,
        /// The current value; `None` when the kernel lacks the key.
        old: Option<String>,
        /// The desired value.
        new: String,
    },
    /// Something on the host that lbdeploy will not change by itself and
    /// that stops the agent from working: `apply` leaves the host alone
    /// until the operator has dealt with it.
    Blocker {
        /// What is wrong and what to do.
        message: String,
    },
    /// An activation is unfinished on the host (a failed commit, a crash,
    /// or one awaiting confirmation): the next activation finishes it,
    /// committing it if it was confirmed, rolling it back otherwise.
    Unfinished {
        /// The highest generation the host has seen.
        seen: Option<u64>,
    },
    /// The agent's unit is not as lbdeploy installs it; `apply` repairs
    /// it.
    Unit {
        /// The service.
        name: String,
        /// What is wrong.
        problem: UnitProblem,
    },
    /// A drop-in lbdeploy did not write overrides the agent's unit (it
    /// could change the command, the capabilities, the restart policy):
    /// `apply` removes it, a rollback puts it back.
    RemoveDropIn {
        /// Where.
        path: PathBuf,
        /// Its content (lossy UTF-8 for the diff).
        content: String,
    },
    /// Start, reload or restart the agent.
    Service {
        /// The service.
        name: String,
        /// What to do.
        action: ServiceAction,
        /// Why a restart and not a reload, when the agent's configuration
        /// changed a setting only a start applies: `vrrp_rt_priority
        /// changed`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasons: Vec<String>,
    },
    /// The host has left the inventory: stop and disable its agent (which
    /// takes its VIPs, data plane and ARP tables with it) before its files
    /// go, and put back the sysctls lbdeploy set as they were before it.
    /// The binary and the generation history stay.
    Retire {
        /// The service.
        name: String,
        /// Whether the agent runs now.
        running: bool,
    },
}

/// How the agent's unit differs from what lbdeploy installs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum UnitProblem {
    /// Not enabled (`state` is what `systemctl is-enabled` says): it runs
    /// now, perhaps, but would not start after a reboot. Enabled again.
    Disabled {
        /// `disabled`, `static`, `linked`, …
        state: String,
    },
    /// Masked: it cannot start at all. Unmasked and enabled.
    Masked {
        /// `masked` or `masked-runtime`.
        state: String,
    },
    /// systemd runs an older copy of the unit file: reloaded and
    /// restarted.
    Stale,
}

/// What the agent service needs after the other changes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    /// SIGHUP: configuration changed.
    Reload,
    /// Stop and start: binary or unit changed.
    Restart,
    /// It does not run.
    Start,
}

/// Every change one host needs; empty when it is converged.
pub fn diff(desired: &HostDesired, facts: &HostFacts) -> Vec<Change> {
    if desired.retire {
        return retirement(desired, facts);
    }
    let mut changes: Vec<Change> = blockers(desired, facts).collect();
    if facts.pending {
        changes.push(Change::Unfinished { seen: facts.seen });
    }
    let mut needs = None::<ServiceAction>;
    let mut reasons = Vec::new();
    let mut need = |a: ServiceAction| needs = needs.max(Some(a));
    if let Some(binary) = binary_change(desired, facts) {
        changes.push(binary);
        need(ServiceAction::Restart);
    }
    let wanted: Vec<_> = desired.files_for(facts).collect();
    for &(f, content) in &wanted {
        let changed = match facts.files.get(&f.path) {
            None => {
                changes.push(Change::CreateFile {
                    path: f.path.clone(),
                    mode: f.mode,
                    content: content.to_owned(),
                });
                true
            }
            Some(cur)
                if cur.content != content.as_bytes() || cur.mode != f.mode =>
            {
                changes.push(Change::UpdateFile {
                    path: f.path.clone(),
                    old_mode: cur.mode,
                    new_mode: f.mode,
                    old: String::from_utf8_lossy(&cur.content).into_owned(),
                    new: content.to_owned(),
                });
                true
            }
            Some(_) => false,
        };
        match (changed, f.on_change) {
            (true, OnChange::Reload) => need(ServiceAction::Reload),
            (true, OnChange::Restart) => need(ServiceAction::Restart),
            _ => {}
        }
        if changed && f.path == desired.config {
            let old = facts.files.get(&f.path).map(|c| c.content.as_slice());
            reasons = restart_reasons(desired.agent, old, &f.content);
            if !reasons.is_empty() {
                need(ServiceAction::Restart);
            }
        }
    }
    for path in &facts.managed {
        if !wanted.iter().any(|(f, _)| &f.path == path) {
            changes.push(Change::RemoveFile { path: path.clone() });
        }
    }
    if let Some(undrain) = undrain(desired, facts) {
        changes.push(undrain);
        need(ServiceAction::Reload);
    }
    for (key, value) in &desired.sysctls {
        let old = facts.sysctls.get(key);
        if old != Some(value) {
            changes.push(Change::Sysctl {
                key: key.clone(),
                old: old.cloned(),
                new: value.clone(),
            });
        }
    }
    if facts.init == Init::Systemd
        && let Some(unit) = &facts.unit
    {
        let (repairs, action) = unit_repairs(&desired.service, unit);
        changes.extend(repairs);
        if let Some(a) = action {
            need(a);
        }
    }
    let action = match (facts.service, needs) {
        (ServiceState::Stopped, _) => Some(ServiceAction::Start),
        (ServiceState::Running, a) => a,
    };
    if let Some(action) = action {
        if action != ServiceAction::Restart {
            reasons.clear();
        }
        changes.push(Change::Service {
            name: desired.service.clone(),
            action,
            reasons,
        });
    }
    changes
}

/// The binary to install when the host's is not the desired one.
fn binary_change(desired: &HostDesired, facts: &HostFacts) -> Option<Change> {
    (facts.binary_sha256.as_deref() != Some(desired.binary_sha256.as_str()))
        .then(|| Change::Binary {
            path: desired.binary.clone(),
            old: facts.binary_sha256.clone(),
            new: desired.binary_sha256.clone(),
        })
}

/// The undrain a director needs under `--undrain`: none while its drained
/// list is absent or empty, so that a second `apply --undrain` changes
/// nothing.
fn undrain(desired: &HostDesired, facts: &HostFacts) -> Option<Change> {
    let path = Path::new(DRAINED_FILE);
    let file = facts.files.get(path).filter(|_| desired.undrain)?;
    let drained = match drained::parse(&String::from_utf8_lossy(&file.content))
    {
        Ok(list) if list.is_empty() => return None,
        Ok(list) => list.iter().map(ToString::to_string).collect(),
        Err(_) => Vec::new(),
    };
    Some(Change::Undrain { path: path.to_owned(), drained })
}

/// What a host that has left the inventory needs: nothing once nothing
/// of lbdeploy's runs or is installed there (no managed file, an agent
/// neither running nor enabled); else the retirement, each managed file's
/// removal, and this binary first where the host's differs, so that the
/// host side that retires it is this one. Nothing blocks a retirement.
/// Pure.
fn retirement(desired: &HostDesired, facts: &HostFacts) -> Vec<Change> {
    let mut changes = Vec::new();
    if facts.pending {
        changes.push(Change::Unfinished { seen: facts.seen });
    }
    let running = facts.service == ServiceState::Running;
    let enabled = facts.unit.as_ref().is_some_and(|u| u.enabled == "enabled");
    if !running && !enabled && facts.managed.is_empty() {
        return changes;
    }
    changes.extend(binary_change(desired, facts));
    changes.push(Change::Retire { name: desired.service.clone(), running });
    changes.extend(
        facts.managed.iter().map(|p| Change::RemoveFile { path: p.clone() }),
    );
    changes
}

/// Why a director whose configuration changes from `old` (the host's
/// file, if any) to `new` must be restarted, not reloaded: each setting
/// only a start of the agent applies
/// ([`DirectorConfig::restart_settings`]), as `NAME changed`. The same
/// whatever the host's init system: under systemd the unit changes with
/// these settings and restarts the agent anyway, but a host without
/// systemd has only `agent.yml` to tell. A file that does not parse (hand-
/// edited) names nothing: the running agent's settings are then unknown,
/// and the reload it gets is what it got before. Pure; the host's
/// rollback asks the same of the configuration it puts back.
pub(crate) fn restart_reasons(
    mode: Mode,
    old: Option<&[u8]>,
    new: &str,
) -> Vec<String> {
    let (Mode::Director, Some(old)) = (mode, old) else { return Vec::new() };
    let parse = |text: &str| {
        agent::parse::<DirectorConfig>(Path::new("agent.yml"), text).ok()
    };
    let Some(old) = std::str::from_utf8(old).ok().and_then(parse) else {
        return Vec::new();
    };
    let Some(new) = parse(new) else { return Vec::new() };
    new.restart_settings(&old)
        .into_iter()
        .map(|name| format!("{name} changed"))
        .collect()
}

/// What it takes to bring the agent's unit back to what lbdeploy
/// installs, and the service action that needs. A unit systemd does not
/// know yet (before the first apply) needs nothing here: starting it
/// enables it.
fn unit_repairs(
    name: &str,
    unit: &UnitFacts,
) -> (Vec<Change>, Option<ServiceAction>) {
    let mut changes = Vec::new();
    let mut action = None;
    let state = unit.enabled.as_str();
    let problem = match state {
        "" | "enabled" => None,
        s if s.starts_with("masked") => {
            Some(UnitProblem::Masked { state: s.to_owned() })
        }
        s => Some(UnitProblem::Disabled { state: s.to_owned() }),
    };
    let unit_change = |problem| Change::Unit { name: name.to_owned(), problem };
    changes.extend(problem.map(unit_change));
    if unit.stale {
        changes.push(unit_change(UnitProblem::Stale));
        action = Some(ServiceAction::Restart);
    }
    for (path, file) in &unit.drop_ins {
        changes.push(Change::RemoveDropIn {
            path: path.clone(),
            content: String::from_utf8_lossy(&file.content).into_owned(),
        });
        action = Some(ServiceAction::Restart);
    }
    (changes, action)
}

/// A VIP on any interface but `lo` of a real server: what the old
/// rc.local recipe did (`ifconfig eth0:1 VIP up`). The real server would
/// answer ARP for it and steal the VIP from the director; the agent refuses
/// to start beside it, and lbdeploy never removes an address it did not add.
fn blockers<'a>(
    desired: &'a HostDesired,
    facts: &'a HostFacts,
) -> impl Iterator<Item = Change> + 'a {
    facts
        .addresses
        .iter()
        .filter(|a| a.interface != "lo" && desired.vips.contains(&a.ip))
        .map(|a| {
            let on = match &a.label {
                Some(l) => format!("{} (label {l})", a.interface),
                None => a.interface.clone(),
            };
            Change::Blocker {
                message: format!(
                    "VIP {ip}/{p} is on {on}, left by the old set-up (an \
                     rc.local `ifconfig {label} {ip} up`?): this host would \
                     answer ARP for it and the agent will not start beside it \
                     — remove it (`ip addr del {ip}/{p} dev {dev}`) and the \
                     line that adds it at boot, then apply again",
                    ip = a.ip,
                    p = a.prefix,
                    label = a.label.as_deref().unwrap_or(&a.interface),
                    dev = a.interface,
                ),
            }
        })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::plan::desired::DesiredFile;
    use crate::plan::facts::{FileFact, HostAddress};
    use crate::plan::roles::Init;

    fn desired() -> HostDesired {
        HostDesired {
            name: "rs1".into(),
            agent: crate::inventory::Mode::Realserver,
            files: vec![
                DesiredFile {
                    path: "/etc/lbdeploy/agent.yml".into(),
                    mode: 0o644,
                    content: "a: 1\n".into(),
                    on_change: OnChange::Reload,
                    only_with: None,
                    older_systemd: None,
                },
                DesiredFile {
                    path: "/etc/systemd/system/x.service".into(),
                    mode: 0o644,
                    content: "[Unit]\n".into(),
                    on_change: OnChange::Restart,
                    only_with: Some(Init::Systemd),
                    older_systemd: None,
                },
            ],
            sysctls: BTreeMap::from([(
                "net.ipv4.conf.all.arp_ignore".into(),
                "1".into(),
            )]),
            binary: "/usr/local/sbin/lbdeploy".into(),
            binary_sha256: "new".into(),
            service: "lbdeploy-agent".into(),
            config: "/etc/lbdeploy/agent.yml".into(),
            vips: vec!["10.0.0.200".parse().unwrap()],
            retire: false,
            undrain: false,
        }
    }

    fn converged() -> HostFacts {
        HostFacts {
            arch: "x86_64".into(),
            init: Init::None,
            systemd: None,
            generation: Some(1),
            seen: Some(1),
            pending: false,
            managed: BTreeSet::from(["/etc/lbdeploy/agent.yml".into()]),
            files: BTreeMap::from([(
                "/etc/lbdeploy/agent.yml".into(),
                FileFact { mode: 0o644, content: b"a: 1\n".to_vec() },
            )]),
            sysctls: BTreeMap::from([(
                "net.ipv4.conf.all.arp_ignore".into(),
                "1".into(),
            )]),
            binary_sha256: Some("new".into()),
            binary_stat: None,
            service: ServiceState::Running,
            unit: None,
            ipvs: None,
            bird: None,
            nft: None,
            addresses: vec![HostAddress {
                interface: "lo".into(),
                ip: "10.0.0.200".parse().unwrap(),
                prefix: 32,
                label: None,
            }],
        }
    }

    /// Issue #19: a host that has left the inventory is retired while
    /// anything of lbdeploy runs or is installed there — its managed
    /// files removed, this binary first where the host's differs — and
    /// needs nothing once retired. A foreign VIP blocks nothing.
    #[test]
    fn r19_a_removed_host_is_retired_once() {
        let mut gone = desired();
        gone.files.clear();
        gone.sysctls.clear();
        gone.retire = true;
        let mut facts = converged();
        facts.addresses[0].interface = "eth0".into();
        let retire =
            Change::Retire { name: "lbdeploy-agent".into(), running: true };
        let remove =
            Change::RemoveFile { path: "/etc/lbdeploy/agent.yml".into() };
        assert_eq!(diff(&gone, &facts), [retire.clone(), remove.clone()]);
        facts.binary_sha256 = Some("old".into());
        let binary = Change::Binary {
            path: gone.binary.clone(),
            old: Some("old".into()),
            new: "new".into(),
        };
        assert_eq!(diff(&gone, &facts), [binary, retire, remove]);
        // Stopped, but enabled at boot: still retired.
        facts.managed.clear();
        facts.service = ServiceState::Stopped;
        facts.unit = Some(UnitFacts {
            enabled: "enabled".into(),
            stale: false,
            drop_ins: BTreeMap::new(),
        });
        assert!(diff(&gone, &facts).contains(&Change::Retire {
            name: "lbdeploy-agent".into(),
            running: false
        }));
        facts.unit = None;
        assert_eq!(diff(&gone, &facts), []);
    }

    /// Issue #17, finding 9: a host whose files match but whose
    /// activation never finished is not "no changes".
    /// Issue #19: `--undrain` removes a director's drained list and
    /// reloads its agent, once; without the flag, or with nothing
    /// drained, the list is none of the plan's business.
    #[test]
    fn r19_undrain_clears_a_drained_list_once() {
        let mut d = desired();
        let mut facts = converged();
        let path = PathBuf::from(DRAINED_FILE);
        let list = br#"[{"address":"10.2.0.21","service":"web"},
                        {"address":"10.2.0.22"}]"#;
        facts.files.insert(
            path.clone(),
            FileFact { mode: 0o644, content: list.into() },
        );
        assert_eq!(diff(&d, &facts), []);
        d.undrain = true;
        let undrain = Change::Undrain {
            path: path.clone(),
            drained: vec!["10.2.0.21 (web)".into(), "10.2.0.22".into()],
        };
        let reload = Change::Service {
            name: "lbdeploy-agent".into(),
            action: ServiceAction::Reload,
            reasons: Vec::new(),
        };
        assert_eq!(diff(&d, &facts), [undrain, reload.clone()]);
        facts.files.get_mut(&path).unwrap().content = b"[{".to_vec();
        let broken = Change::Undrain { path: path.clone(), drained: vec![] };
        assert_eq!(diff(&d, &facts), [broken, reload]);
        facts.files.get_mut(&path).unwrap().content = b"[]".to_vec();
        assert_eq!(diff(&d, &facts), []);
        facts.files.remove(&path);
        assert_eq!(diff(&d, &facts), []);
    }

    #[test]
    fn r17_an_unfinished_activation_is_a_change() {
        let mut facts = converged();
        assert_eq!(diff(&desired(), &facts), []);
        facts.pending = true;
        facts.seen = Some(6);
        assert_eq!(
            diff(&desired(), &facts),
            [Change::Unfinished { seen: Some(6) }]
        );
    }

    #[test]
    fn a_vip_left_on_eth0_by_the_old_set_up_blocks_the_host() {
        let mut facts = converged();
        facts.addresses.push(HostAddress {
            interface: "eth0".into(),
            ip: "10.0.0.200".parse().unwrap(),
            prefix: 24,
            label: Some("eth0:1".into()),
        });
        let changes = diff(&desired(), &facts);
        let Change::Blocker { message } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert!(
            message.starts_with("VIP 10.0.0.200/24 is on eth0 (label eth0:1)")
        );
        assert!(message.contains("`ip addr del 10.0.0.200/24 dev eth0`"));
    }

    #[test]
    fn converged_host_has_no_changes() {
        assert_eq!(diff(&desired(), &converged()), vec![]);
    }

    #[test]
    fn systemd_only_files_follow_the_init_system() {
        let mut facts = converged();
        facts.init = Init::Systemd;
        let changes = diff(&desired(), &facts);
        assert!(
            matches!(&changes[0], Change::CreateFile { path, .. } if path.ends_with("x.service"))
        );
        assert!(matches!(
            changes[1],
            Change::Service { action: ServiceAction::Restart, .. }
        ));
    }

    #[test]
    fn config_drift_reloads_and_sysctl_drift_is_set() {
        let mut facts = converged();
        facts
            .files
            .get_mut(&PathBuf::from("/etc/lbdeploy/agent.yml"))
            .unwrap()
            .content = b"a: 2\n".to_vec();
        facts.sysctls.insert("net.ipv4.conf.all.arp_ignore".into(), "0".into());
        let changes = diff(&desired(), &facts);
        assert!(
            matches!(&changes[0], Change::UpdateFile { old, .. } if old == "a: 2\n")
        );
        assert!(
            matches!(&changes[1], Change::Sysctl { old: Some(o), .. } if o == "0")
        );
        assert!(matches!(
            changes[2],
            Change::Service { action: ServiceAction::Reload, .. }
        ));
    }

    #[test]
    fn new_binary_restarts_and_stale_files_are_removed() {
        let mut facts = converged();
        facts.binary_sha256 = Some("old".into());
        facts.managed.insert("/etc/lbdeploy/old.yml".into());
        let changes = diff(&desired(), &facts);
        assert!(
            matches!(&changes[0], Change::Binary { old: Some(o), .. } if o == "old")
        );
        assert!(
            matches!(&changes[1], Change::RemoveFile { path } if path.ends_with("old.yml"))
        );
        assert!(matches!(
            changes[2],
            Change::Service { action: ServiceAction::Restart, .. }
        ));
    }

    /// Issue #18: a disabled, masked, overridden or stale unit is
    /// repaired; a unit systemd does not know yet is only started.
    #[test]
    fn a_unit_is_written_as_the_hosts_systemd_understands_it() {
        let mut d = desired();
        d.files[1].content = "[Service]\nRestartSteps=5\n".into();
        d.files[1].older_systemd = Some("[Service]\n".into());
        let mut facts = converged();
        facts.init = Init::Systemd;
        let created = |facts: &HostFacts| {
            diff(&d, facts).into_iter().find_map(|c| match c {
                Change::CreateFile { content, .. } => Some(content),
                _ => None,
            })
        };
        for (version, content) in [
            (None, "[Service]\n"),
            (Some(252), "[Service]\n"),
            (Some(254), "[Service]\nRestartSteps=5\n"),
        ] {
            facts.systemd = version;
            assert_eq!(
                created(&facts).as_deref(),
                Some(content),
                "{version:?}"
            );
        }
        // Written as the host's systemd wants it, the file is converged.
        facts.systemd = Some(252);
        facts.files.insert(
            "/etc/systemd/system/x.service".into(),
            FileFact { mode: 0o644, content: b"[Service]\n".to_vec() },
        );
        assert_eq!(created(&facts), None);
        assert!(
            !diff(&d, &facts)
                .iter()
                .any(|c| matches!(c, Change::UpdateFile { .. })),
            "{:?}",
            diff(&d, &facts)
        );
    }

    #[test]
    fn the_units_whole_state_is_planned() {
        let mut facts = converged();
        facts.init = Init::Systemd;
        facts.files.insert(
            "/etc/systemd/system/x.service".into(),
            FileFact { mode: 0o644, content: b"[Unit]\n".to_vec() },
        );
        let unit = |enabled: &str| UnitFacts {
            enabled: enabled.into(),
            ..UnitFacts::default()
        };
        facts.unit = Some(unit("enabled"));
        assert_eq!(diff(&desired(), &facts), []);
        facts.unit = Some(unit("disabled"));
        assert_eq!(
            diff(&desired(), &facts),
            [Change::Unit {
                name: "lbdeploy-agent".into(),
                problem: UnitProblem::Disabled { state: "disabled".into() },
            }]
        );
        facts.unit = Some(unit("masked-runtime"));
        assert!(matches!(
            &diff(&desired(), &facts)[..],
            [Change::Unit { problem: UnitProblem::Masked { state }, .. }]
                if state == "masked-runtime"
        ));
        let mut overridden = unit("enabled");
        overridden.stale = true;
        overridden.drop_ins.insert(
            "/etc/systemd/system/lbdeploy-agent.service.d/x.conf".into(),
            FileFact {
                mode: 0o644,
                content: b"[Service]\nUser=nobody\n".to_vec(),
            },
        );
        facts.unit = Some(overridden);
        let changes = diff(&desired(), &facts);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(matches!(
            &changes[0],
            Change::Unit { problem: UnitProblem::Stale, .. }
        ));
        assert!(matches!(
            &changes[1],
            Change::RemoveDropIn { content, .. } if content.contains("User=nobody")
        ));
        assert!(matches!(
            &changes[2],
            Change::Service { action: ServiceAction::Restart, .. }
        ));
        // Before the first apply systemd knows no unit: starting enables.
        facts.unit = Some(unit(""));
        facts.service = ServiceState::Stopped;
        assert!(matches!(
            &diff(&desired(), &facts)[..],
            [Change::Service { action: ServiceAction::Start, .. }]
        ));
        // Without systemd, unit facts (there are none) change nothing.
        facts.init = Init::None;
        facts.unit = Some(unit("disabled"));
        assert!(
            !diff(&desired(), &facts)
                .iter()
                .any(|c| matches!(c, Change::Unit { .. }))
        );
    }

    /// A director's `agent.yml`, with `extra` lines at the top level.
    fn director_yml(extra: &str) -> String {
        format!(
            "cluster: c\nhost: d1\ninterface: eth0\naddress: 10.0.0.11/24\n\
             dataplane: auto\nvrrp_instances:\n- name: VI_1\n  \
             virtual_router_id: 51\n  version: 2\n  advert_int: 1s\n  \
             priority: 100\n  preempt: true\n  virtual_addresses: \
             [{{address: 10.0.0.200/24}}]\n  notify: {{master: [/bin/true]}}\n\
             virtual_services: []\n{extra}"
        )
    }

    /// A director converged on `old`, wanting `new`.
    fn director_change(old: &str, new: &str, init: Init) -> Vec<Change> {
        let mut desired = desired();
        desired.agent = crate::inventory::Mode::Director;
        desired.files[0].content = new.to_owned();
        let mut facts = converged();
        facts.init = init;
        facts.files.insert(
            "/etc/lbdeploy/agent.yml".into(),
            FileFact { mode: 0o644, content: old.as_bytes().to_vec() },
        );
        facts.files.insert(
            "/etc/systemd/system/x.service".into(),
            FileFact { mode: 0o644, content: b"[Unit]\n".to_vec() },
        );
        diff(&desired, &facts)
    }

    fn service(changes: &[Change]) -> (ServiceAction, Vec<String>) {
        match changes.last() {
            Some(Change::Service { action, reasons, .. }) => {
                (*action, reasons.clone())
            }
            other => panic!("no service change: {other:?}"),
        }
    }

    /// Issue #16: a setting only a start applies restarts the agent
    /// instead of reloading it, with or without systemd, and the plan
    /// says which; any other change of `agent.yml` reloads.
    #[test]
    fn r16_settings_only_a_start_applies_restart_the_agent() {
        let base = director_yml("");
        let reload = (ServiceAction::Reload, Vec::<String>::new());
        for init in [Init::None, Init::Systemd] {
            let restart = |new: &str, why: &[&str]| {
                let got = service(&director_change(&base, new, init));
                let why: Vec<String> =
                    why.iter().map(|w| format!("{w} changed")).collect();
                assert_eq!(got, (ServiceAction::Restart, why), "{init:?}");
            };
            restart(
                &director_yml("vrrp_rt_priority: 20\n"),
                &["vrrp_rt_priority"],
            );
            restart(&director_yml("vrrp_no_swap: true\n"), &["vrrp_no_swap"]);
            // The first program run as a script user.
            let hook = "notify: {master: [/bin/true], user: nobody}";
            let user = base.replace("notify: {master: [/bin/true]}", hook);
            restart(&user, &["script_user"]);
            restart(
                &user.replace("virtual_services: []\n", "virtual_services: []\nvrrp_rt_priority: 5\nvrrp_no_swap: true\n"),
                &["vrrp_rt_priority", "vrrp_no_swap", "script_user"],
            );
            // Another change: a reload.
            let other = base.replace("priority: 100", "priority: 90");
            assert_eq!(service(&director_change(&base, &other, init)), reload);
        }
        // Back again is a change too; so is a new priority.
        let rt = director_yml("vrrp_rt_priority: 20\n");
        let rt30 = director_yml("vrrp_rt_priority: 30\n");
        assert_eq!(
            service(&director_change(&rt, &rt30, Init::None)).1,
            ["vrrp_rt_priority changed"]
        );
        assert_eq!(
            service(&director_change(&rt, &base, Init::None)).1,
            ["vrrp_rt_priority changed"]
        );
        // A host file that does not parse names nothing: reloaded as ever.
        assert_eq!(
            service(&director_change("junk: [", &rt, Init::None)),
            reload
        );
    }

    #[test]
    fn a_stopped_agent_is_started() {
        let mut facts = converged();
        facts.service = ServiceState::Stopped;
        let changes = diff(&desired(), &facts);
        assert_eq!(changes.len(), 1);
        assert!(matches!(
            changes[0],
            Change::Service { action: ServiceAction::Start, .. }
        ));
    }
}
