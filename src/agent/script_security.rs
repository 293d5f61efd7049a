//! keepalived's `enable_script_security`, as `script_security: true`: the
//! agent runs scripts, checks and hooks as root (unless they have a script
//! user), so a program that anyone but root can replace — the file, or any directory on its path, owned by
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
//! A program with a script user (`script_user`, or its own `user`) runs
//! as that user; that user may then not replace it either: a file or
//! directory writable by the user's group counts even when the group is
//! root's. keepalived skips the check for a program that runs as neither
//! uid 0 nor gid 0; lbdeploy does not, since whoever may replace such a
//! program acts as its user. And whatever `script_security` says, every script user must be
//! on the host (`/etc/passwd`, [`accounts`]), must be able to run its
//! program (search on each directory, execute on the file, by owner,
//! group or other as the kernel would judge it: [`runnable`], pure), and
//! the agent must be able to switch to it (`CAP_SETUID`, `CAP_SETGID`,
//! kept only when the agent started with a script user: a reload that
//! brings the first one is refused until a restart).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::agent::sys::accounts::{self, Ids};
use crate::inventory::ScriptUser;
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
/// program run as `runs_as` (root when `None`); `None` when only root
/// can.
pub fn verdict(entries: &[Entry], runs_as: Option<Ids>) -> Option<String> {
    // A script user whose group is root's may write what root's group may.
    let user_gid = runs_as.filter(|r| r.uid != 0).map(|r| r.gid);
    entries.iter().find_map(|e| {
        let path = e.path.display();
        if e.uid != 0 {
            Some(format!("{path} is owned by uid {}", e.uid))
        } else if e.symlink {
            None
        } else if e.mode & 0o002 != 0 {
            Some(format!("{path} is writable by everyone"))
        } else if e.mode & 0o020 != 0 && user_gid == Some(e.gid) {
            Some(format!(
                "{path} is writable by group {}, the script user's",
                e.gid
            ))
        } else if e.mode & 0o020 != 0 && e.gid != 0 {
            Some(format!("{path} is writable by group {}", e.gid))
        } else {
            None
        }
    })
}

/// Why `ids` cannot run the program whose real path's chain is
/// `entries` (`/` first, the file last): a directory it may not search,
/// or a file it may not execute, judged by the owner's, the group's or
/// the others' bits as the kernel picks them (the program runs with no
/// supplementary group). `None` when it can; root always can.
pub fn runnable(entries: &[Entry], ids: Ids) -> Option<String> {
    if ids.uid == 0 {
        return None;
    }
    let last = entries.len().saturating_sub(1);
    entries.iter().enumerate().find_map(|(i, e)| {
        let shift = match (e.uid == ids.uid, e.gid == ids.gid) {
            (true, _) => 6,
            (false, true) => 3,
            (false, false) => 0,
        };
        let allowed = (e.mode >> shift) & 0o1 != 0;
        (!allowed).then(|| {
            format!(
                "uid {} gid {} may not {} {}",
                ids.uid,
                ids.gid,
                if i == last { "execute" } else { "search" },
                e.path.display()
            )
        })
    })
}

/// What a configuration asks of its script users and, with
/// `script_security` on, of every program: one line per problem; `Ok`
/// when there is none.
///
/// # Errors
/// The lines, as one message.
pub fn check(config: &DirectorConfig) -> Result<(), String> {
    let mut users = Vec::new();
    let mut refused = Vec::new();
    for p in config.programs() {
        let runs_as = match p.user.map(switchable).transpose() {
            Ok(ids) => ids,
            Err(e) => {
                users.push(format!("{}: {e}", p.what));
                continue;
            }
        };
        if let Some(ids) = runs_as
            && let Some(why) = not_runnable(p.path, ids)
        {
            users.push(format!("{}: {}: {why}", p.what, p.path));
        }
        if config.script_security
            && let Some(why) = insecure(p.path, runs_as)
        {
            refused.push(format!("{}: {}: {why}", p.what, p.path));
        }
    }
    let mut message = Vec::new();
    if !users.is_empty() {
        message.push(format!(
            "script users that cannot run their programs:\n  {}",
            users.join("\n  ")
        ));
    }
    if !refused.is_empty() {
        message.push(format!(
            "script_security refuses programs that someone but root could \
             replace:\n  {}",
            refused.join("\n  ")
        ));
    }
    match message.is_empty() {
        true => Ok(()),
        false => Err(message.join("\n")),
    }
}

/// `user`'s ids, when this agent can switch to them.
fn switchable(user: &ScriptUser) -> Result<Ids, String> {
    let ids =
        accounts::resolve(user).map_err(|e| format!("user {user}: {e}"))?;
    if ids != accounts::own()
        && !crate::agent::sys::privileges::can_switch_user()
    {
        return Err(format!(
            "user {user}: this agent has no CAP_SETUID, CAP_SETGID and \
             CAP_KILL \
             (it keeps them only when started with a script user): \
             restart it"
        ));
    }
    Ok(ids)
}

/// Why `ids` cannot run `program`, read from the file system. A program
/// that is not found is left to fail when it runs (an exec check's first
/// word may be shell syntax, `!` or `VAR=1`); `script_security` is what
/// refuses it at load.
fn not_runnable(program: &str, ids: Ids) -> Option<String> {
    let real = std::fs::canonicalize(resolve(program)?).ok()?;
    runnable(&chain(&real, false)?, ids)
}

/// Why `program` run as `runs_as` is not safe, read from the file system.
fn insecure(program: &str, runs_as: Option<Ids>) -> Option<String> {
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
    verdict(&entries, runs_as)
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
            verdict(&[root("/"), root("/usr"), root("/usr/bin/x")], None),
            None
        );
        let group_root = entry("/etc/k", 0, 0, 0o775);
        assert_eq!(verdict(&[root("/"), group_root.clone()], None), None);
        // Unless the script runs as a user whose group is root's.
        let wheel = Ids { uid: 998, gid: 0 };
        assert_eq!(
            verdict(&[root("/"), group_root.clone()], Some(wheel)).as_deref(),
            Some("/etc/k is writable by group 0, the script user's")
        );
        let plain = Ids { uid: 998, gid: 997 };
        assert_eq!(verdict(&[root("/"), group_root], Some(plain)), None);
        let own = entry("/opt/k", 998, 997, 0o755);
        assert_eq!(
            verdict(&[root("/"), own], Some(plain)).as_deref(),
            Some("/opt/k is owned by uid 998")
        );
        let cases = [
            (
                entry("/home/u", 1000, 1000, 0o755),
                "/home/u is owned by uid 1000",
            ),
            (entry("/tmp", 0, 0, 0o1777), "/tmp is writable by everyone"),
            (entry("/opt/x", 0, 50, 0o775), "/opt/x is writable by group 50"),
        ];
        for (bad, why) in cases {
            assert_eq!(verdict(&[root("/"), bad], None).as_deref(), Some(why));
        }
        let link = Entry { symlink: true, ..entry("/usr/bin/l", 0, 0, 0o777) };
        assert_eq!(
            verdict(&[root("/"), link], None),
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
            verdict(&own, None)
        };
        assert_eq!(below(&ok), None);
        assert!(
            below(&exposed).unwrap().ends_with("open is writable by everyone")
        );
        assert!(
            below(&link).unwrap().ends_with("open is writable by everyone")
        );
        assert!(
            insecure("/tmp", None).unwrap().contains("writable by everyone")
        );
        assert_eq!(insecure("true", None), None, "found in /usr/bin or /bin");
        assert!(
            insecure("no-such-program-here", None)
                .unwrap()
                .starts_with("not found")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_script_user_needs_search_and_execute_permission() {
        let user = Ids { uid: 998, gid: 997 };
        let root = |p| entry(p, 0, 0, 0o755);
        let file = |mode| entry("/opt/k/x", 0, 0, mode);
        assert_eq!(
            runnable(&[root("/"), root("/opt/k"), file(0o755)], user),
            None
        );
        assert_eq!(
            runnable(&[root("/"), root("/opt/k"), file(0o750)], user)
                .as_deref(),
            Some("uid 998 gid 997 may not execute /opt/k/x")
        );
        let closed = entry("/opt/k", 0, 0, 0o700);
        assert_eq!(
            runnable(&[root("/"), closed, file(0o755)], user).as_deref(),
            Some("uid 998 gid 997 may not search /opt/k")
        );
        // The class the kernel picks: the group's bits for the group.
        let group_only = entry("/opt/k/x", 0, 997, 0o710);
        assert_eq!(runnable(&[root("/"), group_only.clone()], user), None);
        // The owner's bits for the owner, even when the others' allow.
        let owner_denied = entry("/opt/k/x", 998, 0, 0o055);
        assert!(runnable(&[root("/"), owner_denied], user).is_some());
        assert_eq!(
            runnable(
                &[root("/"), entry("/x", 0, 0, 0o700)],
                Ids { uid: 0, gid: 5 }
            ),
            None,
            "root runs anything"
        );
    }

    #[test]
    fn whether_a_script_user_can_run_a_program_is_read_from_the_disk() {
        let dir = crate::agent::sys::process::testing::scratch("runnable");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let closed = dir.join("closed");
        std::fs::write(&closed, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            &closed,
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let nobody = Ids { uid: 65534, gid: 65534 };
        let why = not_runnable(&closed.display().to_string(), nobody).unwrap();
        assert!(
            why.ends_with(&format!("may not execute {}", closed.display())),
            "{why}"
        );
        assert_eq!(not_runnable("sh", nobody), None, "/bin/sh is everyone's");
        assert_eq!(not_runnable("!", nobody), None, "shell syntax: not judged");
        assert_eq!(
            not_runnable(&closed.display().to_string(), Ids { uid: 0, gid: 0 }),
            None
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_script_user_is_refused_at_load() {
        let yaml = "cluster: c\nhost: d1\ninterface: eth0\n\
            address: 10.0.0.1/24\ndataplane: nftables\nvrrp_instances: []\n\
            vrrp_scripts:\n  - {name: chk, command: [/bin/true], \
            user: no-such-user-here}\n  - {name: ok, command: [/bin/true], \
            user: nobody}\n";
        let config: DirectorConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(
            check(&config).unwrap_err(),
            "script users that cannot run their programs:\n  script chk: \
             user no-such-user-here: no user `no-such-user-here` in \
             /etc/passwd nor through NSS (getent)"
        );
    }
}
