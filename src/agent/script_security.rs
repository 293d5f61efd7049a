//! keepalived's `enable_script_security`, as `script_security: true`: the
//! agent runs scripts, checks and hooks as root, so a program that anyone
//! but root can replace — the file, or any directory on its path, owned by
//! another user or writable by one — is a way to root. With the setting
//! on, such a configuration is refused when it is loaded (at start: the
//! agent does not start, and `apply` rolls the host back; at reload: the
//! old configuration stays), naming each program and why.
//!
//! What counts as "only root can replace it" is [`verdict`], pure: owned
//! by uid 0, not writable by others, and writable by its group only when
//! that group is root's (gid 0). It is asked of every directory from `/`
//! down to the program as written (a symbolic link can be swapped by
//! whoever may write its directory) and, when symbolic links lead
//! elsewhere, of the real file and every directory above it too.
//!
//! keepalived's `script_user` (running scripts as another user) is not
//! built yet: every program runs as the agent's user.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::inventory::Check;
use crate::inventory::agent::DirectorConfig;

/// What [`verdict`] needs to know of one file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path, for the message.
    pub path: PathBuf,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its permission bits.
    pub mode: u32,
    /// A symbolic link: its own mode means nothing (its directory's does).
    pub symlink: bool,
}

/// Why `entries` (a path's chain) let someone but root replace the
/// program; `None` when only root can.
pub fn verdict(entries: &[Entry]) -> Option<String> {
    entries.iter().find_map(|e| {
        let path = e.path.display();
        if e.uid != 0 {
            Some(format!("{path} is owned by uid {}", e.uid))
        } else if e.symlink {
            None
        } else if e.mode & 0o002 != 0 {
            Some(format!("{path} is writable by everyone"))
        } else if e.mode & 0o020 != 0 && e.gid != 0 {
            Some(format!("{path} is writable by group {}", e.gid))
        } else {
            None
        }
    })
}

/// Every program the configuration runs, with what runs it: tracked
/// scripts, notify hooks (instances and sync groups), the notification's
/// exec hook and exec checks (their command's first word).
pub fn programs(config: &DirectorConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in &config.vrrp_scripts {
        out.extend(
            s.command
                .first()
                .map(|p| (format!("script {}", s.name), p.clone())),
        );
    }
    let hooks = config
        .vrrp_instances
        .iter()
        .map(|vi| (format!("instance {}", vi.name), &vi.notify))
        .chain(
            config
                .vrrp_sync_groups
                .iter()
                .map(|g| (format!("sync group {}", g.name), &g.notify)),
        );
    for (owner, notify) in hooks {
        let Some(n) = notify else { continue };
        for argv in
            [&n.master, &n.backup, &n.fault, &n.any].into_iter().flatten()
        {
            out.extend(
                argv.first()
                    .map(|p| (format!("{owner}'s notify hook"), p.clone())),
            );
        }
    }
    if let Some(exec) =
        config.notification.as_ref().and_then(|n| n.exec.as_ref())
    {
        out.extend(
            exec.first().map(|p| {
                ("the notification's exec hook".to_owned(), p.clone())
            }),
        );
    }
    for vs in &config.virtual_services {
        for rs in &vs.real_servers {
            for check in &rs.checks {
                if let Check::Exec(e) = check
                    && let Some(p) = e.command.split_whitespace().next()
                {
                    out.push((
                        format!("service {}'s exec check", vs.name),
                        p.to_owned(),
                    ));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// With `script_security` on, every program that someone but root could
/// replace, one line each; `Ok` when there is none or the setting is off.
///
/// # Errors
/// The lines, as one message.
pub fn check(config: &DirectorConfig) -> Result<(), String> {
    if !config.script_security {
        return Ok(());
    }
    let problems: Vec<String> = programs(config)
        .into_iter()
        .filter_map(|(what, program)| {
            insecure(&program).map(|why| format!("{what}: {program}: {why}"))
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "script_security refuses programs that someone but root could \
             replace:\n  {}",
            problems.join("\n  ")
        )),
    }
}

/// Why `program` is not safe to run as root, read from the file system.
fn insecure(program: &str) -> Option<String> {
    let Some(path) = resolve(program) else {
        return Some("not found (an absolute path, or a program in /usr/sbin, /usr/bin, /sbin or /bin)".to_owned());
    };
    let mut entries = chain(&path, true)?;
    let real = match std::fs::canonicalize(&path) {
        Ok(real) => real,
        Err(e) => return Some(format!("cannot resolve it: {e}")),
    };
    if real != path {
        entries.extend(chain(&real, false)?);
    }
    verdict(&entries)
}

/// An absolute program as it is; a bare name looked up where a root
/// shell's PATH would find it.
fn resolve(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.is_absolute() {
        return Some(p.to_owned());
    }
    if program.contains('/') {
        return None;
    }
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|c| c.exists())
}

/// Each of `/`, the directories below it and `path`, as [`Entry`]s
/// (`lstat` when `literal`, so links are seen as links).
fn chain(path: &Path, literal: bool) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    for prefix in path.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let meta = match literal {
            true => std::fs::symlink_metadata(prefix),
            false => std::fs::metadata(prefix),
        };
        let meta = meta.ok()?;
        out.push(Entry {
            path: prefix.to_owned(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            symlink: meta.file_type().is_symlink(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(path: &str, uid: u32, gid: u32, mode: u32) -> Entry {
        Entry { path: path.into(), uid, gid, mode, symlink: false }
    }

    #[test]
    fn only_roots_files_and_directories_pass() {
        let root = |p| entry(p, 0, 0, 0o755);
        assert_eq!(
            verdict(&[root("/"), root("/usr"), root("/usr/bin/x")]),
            None
        );
        let group_root = entry("/etc/k", 0, 0, 0o775);
        assert_eq!(verdict(&[root("/"), group_root]), None);
        let cases = [
            (
                entry("/home/u", 1000, 1000, 0o755),
                "/home/u is owned by uid 1000",
            ),
            (entry("/tmp", 0, 0, 0o1777), "/tmp is writable by everyone"),
            (entry("/opt/x", 0, 50, 0o775), "/opt/x is writable by group 50"),
        ];
        for (bad, why) in cases {
            assert_eq!(verdict(&[root("/"), bad]).as_deref(), Some(why));
        }
        let link = Entry { symlink: true, ..entry("/usr/bin/l", 0, 0, 0o777) };
        assert_eq!(
            verdict(&[root("/"), link]),
            None,
            "a link's mode is no matter"
        );
    }

    #[test]
    fn the_file_system_is_read_along_links() {
        let dir =
            crate::agent::sys::process::testing::scratch("script-security");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let ok = dir.join("ok");
        std::fs::write(&ok, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let exposed = open.join("x");
        std::fs::write(&exposed, "#!/bin/sh\n").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&exposed, &link).unwrap();
        // The scratch directory's parents are the machine's (`/tmp` is
        // everyone's), so the verdicts are read below them.
        let below = |p: &Path| {
            let all = chain(p, true).unwrap();
            let mut real =
                chain(&std::fs::canonicalize(p).unwrap(), false).unwrap();
            real.retain(|e| e.path.starts_with(&dir));
            let mut own: Vec<Entry> =
                all.into_iter().filter(|e| e.path.starts_with(&dir)).collect();
            own.extend(real);
            verdict(&own)
        };
        assert_eq!(below(&ok), None);
        assert!(
            below(&exposed).unwrap().ends_with("open is writable by everyone")
        );
        assert!(
            below(&link).unwrap().ends_with("open is writable by everyone")
        );
        assert!(insecure("/tmp").unwrap().contains("writable by everyone"));
        assert_eq!(insecure("true"), None, "found in /usr/bin or /bin");
        assert!(
            insecure("no-such-program-here").unwrap().starts_with("not found")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
