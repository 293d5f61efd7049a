//! A host's current state, gathered in one SSH round trip.
//!
//! [`script`] writes a POSIX `sh` script that prints one record per line;
//! [`parse`] reads them back. The script needs only coreutils (`stat`,
//! `base64`, `sha256sum`), so it works on a host where lbdeploy has never
//! been installed. Both halves are pure text functions, tested by running
//! the script under the local `sh` against a temporary directory.
//!
//! # Format
//! ```text
//! lbdeploy-facts 1
//! arch x86_64
//! init systemd|none
//! systemd VERSION         (systemd: the first line of `systemctl --version`)
//! generation N            (absent before the first apply)
//! seen N                  (the highest generation ever activated there)
//! pending                 (an activation not yet committed or rolled back)
//! managed PATH            (files an earlier apply created)
//! file MODE BASE64 PATH   (octal mode, content)
//! nofile PATH
//! sysctl KEY VALUE
//! nosysctl KEY
//! binary-stat LINE       (`stat -c '%i %s %y %z'` of the binary)
//! binary SHA256 | nobinary
//! service running|stopped
//! unit-enabled STATE      (systemd: `systemctl is-enabled`; empty if unknown)
//! unit-stale yes|no       (systemd: `NeedDaemonReload`)
//! dropin MODE BASE64 PATH (systemd: a drop-in in the unit's own `.d`
//!                          directory under /etc or /run)
//! ipaddr N: IFACE inet ADDR/PREFIX ... [LABEL]\ ...   (`ip -o addr show`)
//! ipvs yes|no|unknown     (whether the kernel has or can load IPVS)
//! bird yes|no             (whether BIRD is installed where the agent
//!                          looks for it)
//! nft yes|no              (whether `nft` is)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use base64::Engine;

use super::roles::{self, Init};
use super::stamps::Stamp;
use crate::util::shell;

/// Where a host records what lbdeploy manages on it.
pub(crate) const STATE_DIR: &str = "/var/lib/lbdeploy";
/// The agent's PID file on hosts without systemd.
pub(crate) const PID_FILE: &str = "/run/lbdeploy/agent.pid";

/// What the facts script is asked about.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Files whose mode and content are wanted.
    pub files: Vec<PathBuf>,
    /// Sysctl keys whose values are wanted.
    pub sysctls: Vec<String>,
    /// The agent binary's path.
    pub binary: PathBuf,
    /// The agent's service name.
    pub service: String,
    /// What the controller remembers of the binary there: its hash is
    /// printed without hashing when `stat` still prints the same line
    /// (`plan::stamps`).
    pub stamp: Option<Stamp>,
}

/// A file as it is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFact {
    /// Permission bits.
    pub mode: u32,
    /// Content (managed files are small text files).
    pub content: Vec<u8>,
}

/// Whether the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// The service is active.
    Running,
    /// Installed or not, it does not run.
    Stopped,
}

/// One host's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `uname -m`.
    pub arch: String,
    /// The init system.
    pub init: Init,
    /// systemd's version where it is the init system and says it (`252`
    /// on Debian bookworm): which unit settings it understands.
    pub systemd: Option<u32>,
    /// The last generation applied to this host.
    pub generation: Option<u64>,
    /// The highest generation number ever activated on it, committed or
    /// not: the next apply is numbered above it.
    pub seen: Option<u64>,
    /// An activation is pending there (awaiting confirmation, or left by
    /// a failed commit or a crash): the host is not converged.
    pub pending: bool,
    /// Files an earlier apply created (for removals).
    pub managed: BTreeSet<PathBuf>,
    /// Queried files; absent ones are missing from the map.
    pub files: BTreeMap<PathBuf, FileFact>,
    /// Queried sysctls; keys the kernel does not have are missing.
    pub sysctls: BTreeMap<String, String>,
    /// SHA-256 of the installed agent binary.
    pub binary_sha256: Option<String>,
    /// The binary's `stat` line, to remember with its hash.
    pub binary_stat: Option<String>,
    /// The agent service.
    pub service: ServiceState,
    /// The agent's unit as systemd sees it; `None` without systemd.
    pub unit: Option<UnitFacts>,
    /// Every address on every interface (empty where `ip` is missing).
    pub addresses: Vec<HostAddress>,
    /// Whether the kernel has IPVS or can load it; `None` when the host
    /// cannot tell (see `IPVS_PROBE`).
    pub ipvs: Option<bool>,
    /// Whether BIRD is installed (`BIRD_PROBE`); `None` from an older
    /// script that did not say.
    pub bird: Option<bool>,
    /// Whether `nft` is installed (`NFT_PROBE`); `None` from an older
    /// script that did not say.
    pub nft: Option<bool>,
}

/// Whether BIRD is installed where a director's agent looks for it
/// (`agent::bgp::speaker`): root's sbin directories, then `PATH`.
pub(crate) const BIRD_PROBE: &str = "if [ -x /usr/sbin/bird ] || [ -x /usr/local/sbin/bird ] \
     || [ -x /sbin/bird ] || command -v bird >/dev/null 2>&1; \
     then echo 'bird yes'; else echo 'bird no'; fi\n";

/// Whether `nft` is installed where the agent runs it from (`PATH`, which
/// holds root's sbin directories under the unit and the supervisor).
pub(crate) const NFT_PROBE: &str = "if [ -x /usr/sbin/nft ] || [ -x /sbin/nft ] \
     || [ -x /usr/local/sbin/nft ] || command -v nft >/dev/null 2>&1; \
     then echo 'nft yes'; else echo 'nft no'; fi\n";

/// How the facts script tells whether the kernel has IPVS, without
/// loading anything: `/proc/net/ip_vs` exists once it is there; a kernel
/// without `/proc/modules` has no module support, so what is not built in
/// never will be; otherwise the module index of the running kernel says
/// whether `ip_vs` is a module or built in. A host without that index (a
/// container, whose modules the outer host loads) is `unknown`, and
/// `plan` refuses nothing on it.
pub(crate) const IPVS_PROBE: &str = "if [ -e /proc/net/ip_vs ]; then echo 'ipvs yes'; \
     elif [ ! -e /proc/modules ]; then echo 'ipvs no'; \
     else m=/lib/modules/$(uname -r); \
       if grep -qs '/ip_vs\\.ko' \"$m/modules.dep\" \"$m/modules.builtin\"; \
       then echo 'ipvs yes'; \
       elif [ -d \"$m\" ]; then echo 'ipvs no'; \
       else echo 'ipvs unknown'; fi; \
     fi\n";

/// The agent's unit as systemd sees it: what decides whether it comes
/// back after a reboot and runs with the settings lbdeploy installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFacts {
    /// `systemctl is-enabled`: `enabled`, `disabled`, `masked`, … —
    /// empty when systemd does not know the unit (before the first
    /// apply).
    pub enabled: String,
    /// systemd runs an older copy of the unit file than the one on disk
    /// (`NeedDaemonReload`).
    pub stale: bool,
    /// Drop-ins in the unit's own `.d` directories under `/etc` and
    /// `/run`: settings lbdeploy did not write that override its unit.
    pub drop_ins: BTreeMap<PathBuf, FileFact>,
}

/// An address as `ip -o addr show` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// The interface.
    pub interface: String,
    /// The address.
    pub ip: std::net::IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The IPv4 label when it is not the interface's name (`eth0:1`).
    pub label: Option<String>,
}

/// The facts script's `r FILE`: `v` set to the file's first line, as
/// `$(cat FILE)` would give a one-line file (a last line without its
/// newline included), without a process.
const READ_LINE: &str = "r() { v=; IFS= read -r v < \"$1\" || :; }";

/// The facts script for `query`.
pub fn script(query: &Query) -> String {
    // Small files are read with the shell's own `read` (`r FILE` sets
    // `v` to its first line): each `cat`, `sed` or `$(…)` forks and
    // execs, a few ms of the host's CPU each, which at 100 hosts was a
    // second of wall time on two cores (BENCHMARKS.md, "Apply at 100
    // hosts"). Every file read this way holds one line.
    let mut s = format!("set -u\n{READ_LINE}\n");
    s.push_str(
        "echo 'lbdeploy-facts 1'\n\
         echo \"arch $(uname -m)\"\n\
         if [ -d /run/systemd/system ]; then echo 'init systemd'; \
         echo \"systemd $(systemctl --version 2>/dev/null | head -n1)\"; \
         else echo 'init none'; fi\n",
    );
    let state = STATE_DIR;
    s += &format!(
        "if [ -r {state}/generation ]; then r {state}/generation; echo \"generation $v\"; fi\n\
         if [ -r {state}/generation-seen ]; then r {state}/generation-seen; echo \"seen $v\"; fi\n\
         if [ -e {state}/pending ]; then echo pending; fi\n\
         if [ -r {state}/manifest ]; then \
           while IFS= read -r m || [ -n \"$m\" ]; do echo \"managed $m\"; done < {state}/manifest; fi\n"
    );
    for f in &query.files {
        let p = shell::quote(&f.to_string_lossy());
        s += &format!(
            "if [ -f {p} ]; then echo \"file $(stat -c %a {p}) $(base64 -w0 < {p}) \"{p}; \
             else echo nofile {p}; fi\n"
        );
    }
    for key in &query.sysctls {
        let k = shell::quote(key);
        let proc =
            shell::quote(&format!("/proc/sys/{}", key.replace('.', "/")));
        s += &format!(
            "if [ -r {proc} ]; then r {proc}; echo \"sysctl \"{k}\" $v\"; \
             else echo nosysctl {k}; fi\n"
        );
    }
    let b = shell::quote(&query.binary.to_string_lossy());
    // Hash only when the stamp does not vouch for the file (`stamps`).
    let (stat, sha) = match &query.stamp {
        Some(st) => (shell::quote(&st.stat), shell::quote(&st.sha256)),
        None => ("''".into(), "''".into()),
    };
    s += &format!(
        "if [ -f {b} ]; then st=$(stat -c '%i %s %y %z' {b}); \
           echo \"binary-stat $st\"; \
           if [ -n \"$st\" ] && [ \"$st\" = {stat} ]; then echo \"binary \"{sha}; \
           else echo \"binary $(sha256sum < {b} | cut -d' ' -f1)\"; fi; \
         else echo nobinary; fi\n"
    );
    let unit = shell::quote(&query.service);
    let drop_in_dirs = roles::drop_in_dirs(&query.service)
        .map(|d| shell::quote(&d.to_string_lossy()))
        .join(" ");
    s += &format!(
        "if [ -d /run/systemd/system ]; then \
           echo \"unit-enabled $(systemctl is-enabled {unit} 2>/dev/null)\"; \
           echo \"unit-stale $(systemctl show -p NeedDaemonReload --value {unit} 2>/dev/null)\"; \
           for d in {drop_in_dirs}; do for p in \"$d\"/*.conf; do \
             if [ -f \"$p\" ]; then echo \"dropin $(stat -c %a \"$p\") $(base64 -w0 < \"$p\") $p\"; fi; \
           done; done; \
         fi\n"
    );
    s += &format!(
        "if [ -d /run/systemd/system ]; then \
           if systemctl is-active --quiet {unit}; then echo 'service running'; \
           else echo 'service stopped'; fi; \
         elif [ -r {PID_FILE} ] && r {PID_FILE} && kill -0 \"$v\" 2>/dev/null; then \
           echo 'service running'; \
         else echo 'service stopped'; fi\n"
    );
    s += "if command -v ip >/dev/null; then ip -o addr show | \
          while IFS= read -r l; do echo \"ipaddr $l\"; done; fi\n";
    s += IPVS_PROBE;
    s += BIRD_PROBE;
    s += NFT_PROBE;
    s
}

/// Why facts output could not be read.
#[derive(Debug, thiserror::Error)]
#[error("facts line {line}: {message}")]
pub struct ParseError {
    /// 1-based line of the output.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// Parse the script's output.
///
/// # Errors
/// When the output is not what [`script`] prints (a host whose shell
/// misbehaves, or output mixed with a login banner).
pub fn parse(output: &str) -> Result<HostFacts, ParseError> {
    let mut lines = output.lines().enumerate().map(|(i, l)| (i + 1, l));
    let err =
        |line, message: &str| ParseError { line, message: message.to_owned() };
    match lines.next() {
        Some((_, "lbdeploy-facts 1")) => {}
        _ => return Err(err(1, "missing `lbdeploy-facts 1` header")),
    }
    let mut facts = HostFacts {
        arch: String::new(),
        init: Init::None,
        systemd: None,
        generation: None,
        seen: None,
        pending: false,
        managed: BTreeSet::new(),
        files: BTreeMap::new(),
        sysctls: BTreeMap::new(),
        binary_sha256: None,
        binary_stat: None,
        service: ServiceState::Stopped,
        unit: None,
        addresses: Vec::new(),
        ipvs: None,
        bird: None,
        nft: None,
    };
    for (n, line) in lines {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "arch" => facts.arch = rest.to_owned(),
            "init" => {
                facts.init = match rest {
                    "systemd" => Init::Systemd,
                    _ => Init::None,
                }
            }
            "systemd" => facts.systemd = systemd_version(rest),
            "generation" => {
                let g = rest
                    .trim()
                    .parse()
                    .map_err(|_| err(n, "bad generation"))?;
                facts.generation = Some(g);
            }
            "seen" => {
                let g = rest.trim().parse().map_err(|_| err(n, "bad seen"))?;
                facts.seen = Some(g);
            }
            "pending" => facts.pending = true,
            "managed" => {
                facts.managed.insert(PathBuf::from(rest));
            }
            "file" => {
                let (path, file) = file_record(rest).map_err(|m| err(n, m))?;
                facts.files.insert(path, file);
            }
            "dropin" => {
                let (path, file) = file_record(rest).map_err(|m| err(n, m))?;
                facts.unit.get_or_insert_default().drop_ins.insert(path, file);
            }
            "unit-enabled" => {
                facts.unit.get_or_insert_default().enabled = rest.to_owned();
            }
            "unit-stale" => {
                facts.unit.get_or_insert_default().stale = rest == "yes";
            }
            "sysctl" => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                facts.sysctls.insert(key.to_owned(), value.to_owned());
            }
            "binary" => facts.binary_sha256 = Some(rest.to_owned()),
            "binary-stat" => facts.binary_stat = Some(rest.to_owned()),
            "service" => {
                facts.service = match rest {
                    "running" => ServiceState::Running,
                    _ => ServiceState::Stopped,
                }
            }
            "ipaddr" => facts.addresses.extend(ip_addr_line(rest)),
            "ipvs" => {
                facts.ipvs = match rest {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                }
            }
            "bird" => facts.bird = Some(rest == "yes"),
            "nft" => facts.nft = Some(rest == "yes"),
            "nofile" | "nosysctl" | "nobinary" => {}
            _ => return Err(err(n, &format!("unknown record `{kind}`"))),
        }
    }
    if facts.arch.is_empty() {
        return Err(err(0, "no `arch` record"));
    }
    Ok(facts)
}

/// The version in the first line of `systemctl --version`, `systemd 252
/// (252.30-1~deb12u2)`; `None` when it says something else (a systemd
/// too broken to answer plans as one of unknown version).
fn systemd_version(line: &str) -> Option<u32> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("systemd"), Some(v)) => v.parse().ok(),
        _ => None,
    }
}

/// `MODE BASE64 PATH` of a `file` or `dropin` record.
fn file_record(rest: &str) -> Result<(PathBuf, FileFact), &'static str> {
    let mut parts = rest.splitn(3, ' ');
    let (Some(mode), Some(data), Some(path)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err("file record needs mode, content and path");
    };
    let mode = u32::from_str_radix(mode, 8).map_err(|_| "bad mode")?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "bad base64 content")?;
    Ok((PathBuf::from(path), FileFact { mode, content }))
}

/// One line of `ip -o addr show`: `3: eth0    inet 10.0.0.200/24 scope
/// global secondary eth0:1\ valid_lft ...`. Lines it cannot read are
/// skipped: addresses only inform the plan, they never block reading it.
pub(crate) fn ip_addr_line(line: &str) -> Option<HostAddress> {
    let main = line.split('\\').next()?;
    let words: Vec<&str> = main.split_whitespace().collect();
    let interface = words.get(1)?.trim_end_matches(':').split('@').next()?;
    if !matches!(*words.get(2)?, "inet" | "inet6") {
        return None;
    }
    let (ip, prefix) = words.get(3)?.split_once('/')?;
    let last = *words.last()?;
    let label = (words[2] == "inet"
        && last != interface
        && last.starts_with(interface))
    .then(|| last.to_owned());
    Some(HostAddress {
        interface: interface.to_owned(),
        ip: ip.parse().ok()?,
        prefix: prefix.parse().ok()?,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_addr_lines_with_labels() {
        let line = "3: eth0    inet 10.9.0.200/24 scope global secondary eth0:1\\       valid_lft forever";
        let a = ip_addr_line(line).unwrap();
        assert_eq!(a.interface, "eth0");
        assert_eq!((a.ip.to_string(), a.prefix), ("10.9.0.200".into(), 24));
        assert_eq!(a.label.as_deref(), Some("eth0:1"));
        let lo =
            ip_addr_line("1: lo    inet 10.9.0.201/32 scope global lo\\  x")
                .unwrap();
        assert_eq!((lo.interface.as_str(), lo.label), ("lo", None));
        let v6 =
            ip_addr_line("1: lo    inet6 ::1/128 scope host \\  x").unwrap();
        assert_eq!(v6.label, None);
        assert!(ip_addr_line("garbage").is_none());
    }

    #[test]
    fn script_runs_under_sh_and_parses() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-facts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let present = dir.join("agent.yml");
        std::fs::write(&present, "a: 'b'\n").unwrap();
        let query = Query {
            files: vec![present.clone(), dir.join("absent")],
            sysctls: vec!["kernel.ostype".into(), "no.such.key".into()],
            binary: present.clone(),
            service: "lbdeploy-agent".into(),
            stamp: None,
        };
        let run = |query: &Query| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script(query))
                .output()
                .unwrap();
            parse(&String::from_utf8(out.stdout).unwrap()).unwrap()
        };
        let facts = run(&query);
        assert_eq!(facts.files[&present].content, b"a: 'b'\n");
        assert_eq!(facts.files.len(), 1);
        assert_eq!(facts.sysctls["kernel.ostype"], "Linux");
        assert!(!facts.sysctls.contains_key("no.such.key"));
        assert_eq!(
            facts.binary_sha256.as_deref(),
            Some(crate::util::hex::hex(
                &<sha2::Sha256 as sha2::Digest>::digest(b"a: 'b'\n")
            ))
            .as_deref()
        );
        assert!(!facts.arch.is_empty());
        // The probe's first two rules, judged from the same files here.
        let proc = std::path::Path::new("/proc");
        if proc.join("net/ip_vs").exists() {
            assert_eq!(facts.ipvs, Some(true));
        } else if !proc.join("modules").exists() {
            assert_eq!(facts.ipvs, Some(false));
        }
        // A stamp whose stat line matches is believed without hashing…
        let stat = facts.binary_stat.clone().unwrap();
        let remembered = "0".repeat(64);
        let stamp = Stamp { stat: stat.clone(), sha256: remembered.clone() };
        let stamped = Query { stamp: Some(stamp), ..query.clone() };
        assert_eq!(run(&stamped).binary_sha256, Some(remembered.clone()));
        // …and any write moves the stat line, so the file is hashed again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&present, "a: 'c'\n").unwrap();
        let again = run(&stamped);
        assert_ne!(again.binary_stat.as_deref(), Some(stat.as_str()));
        assert_ne!(again.binary_sha256, Some(remembered));
        assert_eq!(again.binary_sha256.unwrap().len(), 64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shells_read_gives_what_cat_gave() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-facts-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, &[u8]); 4] = [
            ("nl", b"42\n"),
            ("bare", b"42"),
            ("empty", b""),
            ("tabs", b" 32768\t60999 \n"),
        ];
        for (name, content) in cases {
            let f = dir.join(name);
            std::fs::write(&f, content).unwrap();
            let script = format!(
                "set -u\n{READ_LINE}\nr {f}; printf '%s|' \"$v\"; \
                 printf '%s|' \"$(cat {f})\"",
                f = f.display()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let (read, cat) = text.split_once('|').unwrap();
            assert_eq!(read, cat.trim_end_matches('|'), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn r20_bird_is_yes_or_no_and_unsaid_by_older_scripts() {
        let facts = |line: &str| {
            parse(&format!("lbdeploy-facts 1\narch x\n{line}")).unwrap()
        };
        assert_eq!(facts("bird yes\n").bird, Some(true));
        assert_eq!(facts("bird no\n").bird, Some(false));
        assert_eq!(facts("").bird, None);
        assert_eq!(facts("nft yes\n").nft, Some(true));
        assert_eq!(facts("nft no\n").nft, Some(false));
        assert_eq!(facts("").nft, None);
    }

    #[test]
    fn r19_ipvs_is_yes_no_or_unknown() {
        let ipvs = |word| {
            parse(&format!("lbdeploy-facts 1\narch x\nipvs {word}\n"))
                .unwrap()
                .ipvs
        };
        assert_eq!(ipvs("yes"), Some(true));
        assert_eq!(ipvs("no"), Some(false));
        assert_eq!(ipvs("unknown"), None);
        assert_eq!(parse("lbdeploy-facts 1\narch x\n").unwrap().ipvs, None);
    }

    #[test]
    fn seen_and_pending_are_read() {
        let f =
            parse("lbdeploy-facts 1\narch x\ngeneration 5\nseen 6\npending\n")
                .unwrap();
        assert_eq!((f.generation, f.seen, f.pending), (Some(5), Some(6), true));
        let f = parse("lbdeploy-facts 1\narch x\n").unwrap();
        assert_eq!((f.seen, f.pending), (None, false));
        assert!(parse("lbdeploy-facts 1\narch x\nseen x\n").is_err());
    }

    #[test]
    fn the_units_state_is_read() {
        let f = parse(
            "lbdeploy-facts 1\narch x\nunit-enabled masked-runtime\n\
             unit-stale yes\ndropin 644 W1NlcnZpY2VdCg== \
             /etc/systemd/system/a.service.d/o.conf\n",
        )
        .unwrap();
        let unit = f.unit.unwrap();
        assert_eq!(
            (unit.enabled.as_str(), unit.stale),
            ("masked-runtime", true)
        );
        let (path, file) = unit.drop_ins.iter().next().unwrap();
        assert_eq!(
            path,
            std::path::Path::new("/etc/systemd/system/a.service.d/o.conf")
        );
        assert_eq!(file.content, b"[Service]\n");
        let f = parse("lbdeploy-facts 1\narch x\nunit-enabled \n").unwrap();
        assert_eq!(f.unit.unwrap().enabled, "", "systemd knows no such unit");
        assert_eq!(parse("lbdeploy-facts 1\narch x\n").unwrap().unit, None);
    }

    #[test]
    fn systemds_version_is_read_from_its_first_line() {
        let f = |line: &str| {
            parse(&format!("lbdeploy-facts 1\narch x\n{line}\n"))
                .unwrap()
                .systemd
        };
        assert_eq!(f("systemd systemd 252 (252.30-1~deb12u2)"), Some(252));
        assert_eq!(f("systemd systemd 257 (257.4-1)"), Some(257));
        assert_eq!(f("systemd "), None, "systemctl printed nothing");
        assert_eq!(f("systemd Failed to connect to bus"), None);
        assert_eq!(f("arch y"), None, "no systemd record");
        assert!(parse("lbdeploy-facts 1\narch x\ndropin 644 /x\n").is_err());
    }

    #[test]
    fn rejects_foreign_output() {
        assert!(parse("Welcome to host\n").is_err());
        assert!(parse("lbdeploy-facts 1\narch x\nbogus 1\n").is_err());
        assert!(parse("lbdeploy-facts 1\nfile 644 !!! /x\n").is_err());
    }
}
