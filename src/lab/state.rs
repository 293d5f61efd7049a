//! The state file: everything a lab created, so `down` removes exactly that.
//!
//! `up` records each namespace *before* it creates it and each process right
//! after it starts, and rewrites the file atomically every time. If `up`
//! dies half-way, the file still names everything that may exist, and
//! `down` (which tolerates things already gone) cleans up from it. Processes
//! are recorded with their start time, so a PID reused by an unrelated
//! process after a reboot is never signalled.
//!
//! # Format
//! `<state-dir>/lab.json`, JSON, versioned by [`FORMAT_VERSION`]:
//! the [`Topology`], the directories created for the state directory, the
//! namespaces and the processes. Everything else in the state directory
//! (keys, logs) sits in the entries listed by [`Layout::owned_entries`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::topology::{DEFAULT_STATE_ROOT, HostInit, LabHost, Role, Topology};
use crate::util::files;

/// Bumped when the format changes incompatibly; an older lab must then be
/// taken down with the lbdeploy that built it.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The state file's name in the state directory.
pub(crate) const STATE_FILE: &str = "lab.json";

/// What a recorded process is, so `status` can say which one died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ProcKind {
    /// The process that keeps a host's mount and UTS namespaces alive.
    Holder,
    /// The boot loop of a systemd host (see `machine`): the container, and
    /// every process of the host, run under it.
    Machine,
    /// The host's sshd.
    Sshd,
    /// The HTTP responder on `port`.
    Responder {
        /// The port it answers on.
        port: u16,
    },
    /// BIRD on the router.
    Bird,
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcRecord {
    /// The host it runs in.
    pub host: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: ProcKind,
    /// Its PID.
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field
    /// 22); with the PID it identifies the process uniquely.
    pub start_time: u64,
}

/// The contents of `lab.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LabState {
    /// [`FORMAT_VERSION`] when written.
    pub version: u32,
    /// The lab as planned from the inventory.
    #[serde(rename = "plan")]
    pub topology: Topology,
    /// Directories `up` created to hold the state (the state directory and
    /// any missing parents), deepest first; `down` removes them if empty.
    pub created_dirs: Vec<PathBuf>,
    /// Network namespaces, recorded before each was created.
    pub namespaces: Vec<String>,
    /// Processes, recorded after each was started.
    pub processes: Vec<ProcRecord>,
}

impl LabState {
    /// A state with nothing created yet.
    pub fn new(topology: Topology, created_dirs: Vec<PathBuf>) -> Self {
        Self {
            version: FORMAT_VERSION,
            topology,
            created_dirs,
            namespaces: Vec::new(),
            processes: Vec::new(),
        }
    }

    /// The recorded process of `kind` on `host`, if any.
    pub fn process(&self, host: &str, kind: ProcKind) -> Option<&ProcRecord> {
        self.processes.iter().find(|p| p.host == host && p.kind == kind)
    }

    /// The PID of `host`'s holder, the process whose namespaces are the
    /// host.
    ///
    /// # Errors
    /// When none was recorded (the host was never started).
    pub fn holder(&self, host: &str) -> anyhow::Result<i32> {
        self.process(host, ProcKind::Holder).map(|p| p.pid).with_context(|| {
            format!("host {host} has no holder process recorded")
        })
    }

    /// Every process expected on `host` once the lab is up (on a systemd
    /// host, sshd and the responders are its own services, not recorded).
    pub(crate) fn expected_kinds(host: &LabHost) -> Vec<ProcKind> {
        let mut kinds = vec![match host.init {
            HostInit::Namespace => ProcKind::Holder,
            HostInit::Systemd => ProcKind::Machine,
        }];
        if host.role.has_sshd() {
            kinds.push(ProcKind::Sshd);
        }
        if host.role == Role::Router {
            kinds.push(ProcKind::Bird);
        }
        kinds.extend(
            host.http_ports.iter().map(|&port| ProcKind::Responder { port }),
        );
        kinds
    }
}

/// Where things live in a state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the state directory `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `lab.json`.
    pub(crate) fn state_file(&self) -> PathBuf {
        self.root.join(STATE_FILE)
    }

    /// The lab's SSH client key (authorised on every host with sshd).
    pub(crate) fn client_key(&self) -> PathBuf {
        self.root.join("id_ed25519")
    }

    /// A host's own directory: its host key and logs.
    pub(crate) fn host_dir(&self, host: &LabHost) -> PathBuf {
        self.root.join("hosts").join(&host.netns)
    }

    /// The upper layer of systemd host `host`'s root file system: its
    /// own files, kept across reboots.
    pub(crate) fn upper(&self, host: &LabHost) -> PathBuf {
        self.host_dir(host).join("upper")
    }

    /// Everything `up` puts in the state directory, `lab.json` last so it
    /// is removed last: a `down` interrupted half-way can run again.
    pub(crate) fn owned_entries(&self) -> Vec<PathBuf> {
        ["hosts", "id_ed25519", "id_ed25519.pub", "lab.json"]
            .iter()
            .map(|e| self.root.join(e))
            .collect()
    }

    /// Read `lab.json`; `None` when there is no lab here.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed, or was written by
    /// an incompatible lbdeploy.
    pub fn load(&self) -> anyhow::Result<Option<LabState>> {
        let path = self.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("reading lab state {}", path.display())
                });
            }
        };
        let state: LabState = serde_json::from_str(&text)
            .with_context(|| format!("parsing lab state {}", path.display()))?;
        if state.version != FORMAT_VERSION {
            bail!(
                "lab state {} has format {} but this lbdeploy reads {} — take \
                 the lab down with the lbdeploy that built it",
                path.display(),
                state.version,
                FORMAT_VERSION
            );
        }
        Ok(Some(state))
    }

    /// Write `lab.json` atomically (temp file, fsync, rename), so a crash
    /// leaves either the previous record or the new one.
    ///
    /// # Errors
    /// When the state directory is not writable.
    pub(crate) fn save(&self, state: &LabState) -> anyhow::Result<()> {
        let path = self.state_file();
        let mut text = serde_json::to_vec_pretty(state)?;
        text.push(b'\n');
        files::write_atomic(&path, &text, 0o644)
            .with_context(|| format!("writing lab state {}", path.display()))
    }
}

/// The state directory of the one lab under `DEFAULT_STATE_ROOT`, if
/// there is exactly one: then `lab exec`, `status` and `down` need neither
/// an inventory nor `--state-dir`, as on a machine where someone just ran
/// `lab up -i inventory.example.yml`.
pub(crate) fn sole_default_lab() -> Option<PathBuf> {
    let mut labs = std::fs::read_dir(DEFAULT_STATE_ROOT)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|d| d.join(STATE_FILE).is_file());
    let only = labs.next()?;
    labs.next().is_none().then_some(only)
}

/// Create `dir` and its missing parents, returning the ones created, deepest
/// first, so that exactly those can be removed again.
///
/// # Errors
/// When a directory cannot be created.
pub(crate) fn create_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.exists()) {
        missing.push(d.to_owned());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        std::fs::create_dir(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::Uplink;

    fn topology() -> Topology {
        Topology {
            cluster: "c".into(),
            id: "abcdef".into(),
            switch_netns: "lbd-abcdef".into(),
            hosts: vec![LabHost {
                name: "rs01".into(),
                role: Role::RealServer,
                address: "10.0.0.1/24".parse().unwrap(),
                interface: "eth0".into(),
                ssh_port: 22,
                http_ports: vec![80, 8080],
                init: HostInit::Namespace,
                netns: "lbd-abcdef-rs01".into(),
                switch_port: "p0-rs01".into(),
                uplink: Uplink::Switch,
                routes: Vec::new(),
            }],
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir()
            .join(format!("lbdeploy-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trips_and_missing_is_none() {
        let dir = scratch("rt");
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout::new(dir.clone());
        assert!(layout.load().unwrap().is_none());
        let mut s = LabState::new(topology(), vec![dir.clone()]);
        s.namespaces.push("lbd-abcdef".into());
        s.processes.push(ProcRecord {
            host: "rs01".into(),
            kind: ProcKind::Responder { port: 80 },
            pid: 42,
            start_time: 7,
        });
        layout.save(&s).unwrap();
        assert_eq!(layout.load().unwrap(), Some(s));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn process_records_are_flat_json() {
        let p = ProcRecord {
            host: "rs01".into(),
            kind: ProcKind::Responder { port: 80 },
            pid: 42,
            start_time: 7,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"host":"rs01","kind":"responder","port":80,"pid":42,"start_time":7}"#
        );
    }

    #[test]
    fn refuses_another_format() {
        let dir = scratch("ver");
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout::new(dir.clone());
        let mut s = LabState::new(topology(), vec![]);
        s.version = FORMAT_VERSION + 1;
        layout.save(&s).unwrap();
        let e = layout.load().unwrap_err().to_string();
        assert!(e.contains("take the lab down"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expected_processes_follow_the_role() {
        let kinds = LabState::expected_kinds(&topology().hosts[0]);
        assert_eq!(
            kinds,
            [
                ProcKind::Holder,
                ProcKind::Sshd,
                ProcKind::Responder { port: 80 },
                ProcKind::Responder { port: 8080 }
            ]
        );
    }

    #[test]
    fn a_router_runs_bird() {
        let mut router = topology().hosts.remove(0);
        router.role = Role::Router;
        router.http_ports.clear();
        assert_eq!(
            LabState::expected_kinds(&router),
            [ProcKind::Holder, ProcKind::Bird]
        );
    }

    #[test]
    fn a_lab_state_without_router_fields_still_loads() {
        let mut json = serde_json::to_value(topology()).unwrap();
        let host = &mut json["hosts"][0];
        assert!(host.get("uplink").is_none() && host.get("routes").is_none());
        host.as_object_mut().unwrap().remove("uplink");
        let back: Topology = serde_json::from_value(json).unwrap();
        assert_eq!(back, topology());
    }

    #[test]
    fn create_dirs_reports_only_what_it_made() {
        let base = scratch("dirs");
        let deep = base.join("a/b");
        let made = create_dirs(&deep).unwrap();
        assert_eq!(made, [deep.clone(), base.join("a"), base.clone()]);
        assert!(create_dirs(&deep).unwrap().is_empty());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
