//! Who a script user is on this host: the names of a `script_user`
//! looked up as the uid and gid the agent starts the program with.
//!
//! The local files come first: `/etc/passwd` and `/etc/group` are read
//! through `util::files::read_regular` (a regular file, at most
//! [`FILE_MAX`] bytes) and parsed by [`find_user`] and [`find_group`],
//! pure: a line is taken only when its name matches and its numbers are
//! plain decimal ids, so a broken, truncated or hostile line is never a
//! match. The first match wins, as with the C library's `files` service.
//!
//! A name they lack is asked of NSS (LDAP, sssd, whatever
//! `/etc/nsswitch.conf` says) through `getent passwd NAME` and `getent
//! group NAME` — the agent is a static binary with no C library's NSS
//! modules to load — bounded in time ([`NSS_TIMEOUT`]: a directory server
//! that hangs costs a second, not the agent) and in output
//! ([`NSS_OUTPUT_MAX`]), and its answer parsed by the same pure functions,
//! so it is validated field by field as the files are. Unknown everywhere,
//! the error is the files' one, saying NSS was asked too. Nothing of the
//! files or the answers is ever repeated in a message.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::inventory::ScriptUser;
use crate::util::files;

/// The users' file.
pub const PASSWD: &str = "/etc/passwd";
/// The groups' file.
pub const GROUP: &str = "/etc/group";

/// The largest `/etc/passwd` or `/etc/group` read: 4 MiB is tens of
/// thousands of accounts, far past a load balancer's, and a cheap read
/// when it is checked at every load.
pub const FILE_MAX: u64 = 4 << 20;

/// The ids a program runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// Its user id.
    pub uid: u32,
    /// Its group id (its only group: supplementary groups are dropped).
    pub gid: u32,
}

/// An id as the files write it: decimal digits only, and not `u32::MAX`
/// (−1, which `setuid(2)` takes for "leave unchanged").
fn id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok().filter(|&n| n != u32::MAX)
}

/// The fields of the first line of `text` whose first field is `name`,
/// when it has at least `min` fields; comments (`#`) and NIS
/// compatibility lines (`+`, `-`) are never a match.
fn entry<'t>(text: &'t str, name: &str, min: usize) -> Option<Vec<&'t str>> {
    text.lines()
        .filter(|l| !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .filter(|f| f.len() >= min)
}

/// `name`'s uid and primary gid in `passwd` (`/etc/passwd`'s text:
/// `name:password:uid:gid:gecos:home:shell`).
pub fn find_user(passwd: &str, name: &str) -> Option<Ids> {
    let f = entry(passwd, name, 4)?;
    Some(Ids { uid: id(f[2])?, gid: id(f[3])? })
}

/// `name`'s gid in `group` (`/etc/group`'s text:
/// `name:password:gid:members`).
pub fn find_group(group: &str, name: &str) -> Option<u32> {
    id(entry(group, name, 3)?[2])
}

/// `user`'s ids from the two files' texts; `group` is read only when the
/// user names a group.
///
/// # Errors
/// The user or the group is not there (or its line is broken).
pub fn resolve_in(
    passwd: &str,
    group: impl FnOnce() -> Result<String, String>,
    user: &ScriptUser,
) -> Result<Ids, String> {
    let mut ids = find_user(passwd, &user.user)
        .ok_or_else(|| format!("no user `{}` in {PASSWD}", user.user))?;
    if let Some(name) = &user.group {
        ids.gid = find_group(&group()?, name)
            .ok_or_else(|| format!("no group `{name}` in {GROUP}"))?;
    }
    Ok(ids)
}

/// `user`'s ids on this host: from the local files, or else through NSS.
///
/// # Errors
/// A file cannot be read (or is too large), or neither the files nor NSS
/// have such a user or group.
pub fn resolve(user: &ScriptUser) -> Result<Ids, String> {
    let read = |path: &str| {
        files::read_regular(Path::new(path), FILE_MAX)
            .map_err(|e| format!("cannot read {path}: {e}"))
    };
    match resolve_in(&read(PASSWD)?, || read(GROUP), user) {
        Err(unknown) if unknown.starts_with("no ") => nss(GETENT, user)
            .ok_or_else(|| format!("{unknown} nor through NSS (getent)")),
        local => local,
    }
}

/// The program that asks NSS.
const GETENT: &str = "getent";

/// How long one `getent` may take before it is killed and its answer
/// taken for "unknown". NSS answers from files or a cache in
/// milliseconds; a directory server that does not answer within a
/// second is down for the purpose of starting a script.
pub const NSS_TIMEOUT: Duration = Duration::from_secs(1);

/// The most of `getent`'s output read: one entry is one line (a group
/// with thousands of members a few kB). A program that writes more
/// fills its pipe, blocks and is killed at [`NSS_TIMEOUT`].
pub const NSS_OUTPUT_MAX: u64 = 64 << 10;

/// How often a running `getent` is looked at.
const NSS_POLL: Duration = Duration::from_millis(5);

/// `user`'s ids as NSS knows them, asked with `program` (`getent`);
/// `None` when it does not know them, fails, or takes too long.
fn nss(program: &str, user: &ScriptUser) -> Option<Ids> {
    let mut ids =
        find_user(&getent(program, "passwd", &user.user)?, &user.user)?;
    if let Some(name) = &user.group {
        ids.gid = find_group(&getent(program, "group", name)?, name)?;
    }
    Some(ids)
}

/// `program DATABASE NAME`'s output when it exits 0 within
/// [`NSS_TIMEOUT`], at most [`NSS_OUTPUT_MAX`] bytes of it. The name is
/// a validated script user's (no leading `-`, no space): one argument,
/// never an option.
fn getent(program: &str, database: &str, name: &str) -> Option<String> {
    let mut child = Command::new(program)
        .args([database, name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + NSS_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(NSS_POLL)
            }
            _ => break None,
        }
    };
    if !status.is_some_and(|s| s.success()) {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let mut out = Vec::new();
    child.stdout.take()?.take(NSS_OUTPUT_MAX).read_to_end(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// The ids this process runs with: a program whose ids these are needs
/// no switch.
pub fn own() -> Ids {
    Ids {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment:x:5:5
+nisuser:x:7:7::/:/bin/sh
-blocked::8:8::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
ka:x:998:997::/:/bin/false
ka:x:5:5::/:/bin/false
short:x:12
neg:x:-1:5::/:/bin/sh
max:x:4294967295:5::/:/bin/sh
big:x:4294967296:5::/:/bin/sh
plus:x:+9:5::/:/bin/sh
space:x: 9:5::/:/bin/sh
hex:x:0x10:5::/:/bin/sh
";

    fn user(text: &str) -> ScriptUser {
        text.parse().unwrap()
    }

    #[test]
    fn users_and_groups_are_found_by_name_first_match_wins() {
        let ids = |uid, gid| Some(Ids { uid, gid });
        assert_eq!(find_user(PASSWD_TEXT, "root"), ids(0, 0));
        assert_eq!(find_user(PASSWD_TEXT, "nobody"), ids(65534, 65534));
        assert_eq!(find_user(PASSWD_TEXT, "ka"), ids(998, 997));
        let group = "root:x:0:\nnogroup:x:65534:\nadm:x:4:a,b\nbad:x:\n";
        assert_eq!(find_group(group, "nogroup"), Some(65534));
        assert_eq!(find_group(group, "adm"), Some(4));
        assert_eq!(find_group(group, "bad"), None, "an empty gid");
        assert_eq!(find_group(group, "nobody"), None);
    }

    #[test]
    fn broken_and_hostile_lines_never_match() {
        for name in [
            "# a comment",
            "+nisuser",
            "nisuser",
            "-blocked",
            "blocked",
            "short",
            "neg",
            "max",
            "big",
            "plus",
            "space",
            "hex",
            "",
        ] {
            assert_eq!(find_user(PASSWD_TEXT, name), None, "{name:?}");
        }
        // No line, one huge line, a file of separators, binary noise.
        assert_eq!(find_user("", "root"), None);
        assert_eq!(find_user(&"x".repeat(1 << 20), "root"), None);
        assert_eq!(find_user(&":".repeat(1 << 16), ""), None);
        let noise: String = (0..4096u32)
            .filter_map(|i| char::from_u32((i * 7919) % 0x2000))
            .collect();
        assert_eq!(find_user(&noise, "root"), None);
        // A name is never matched by a prefix or a suffix.
        assert_eq!(find_user("rootx:x:0:0::/:/bin/sh\n", "root"), None);
        assert_eq!(find_user("root:x:0:0::/:/bin/sh\n", "roo"), None);
        // An id with anything but digits is broken; CRLF ends a line.
        assert_eq!(find_group("g:x:5 \n", "g"), None);
        assert_eq!(find_group("g:x:5\r\n", "g"), Some(5));
    }

    #[test]
    fn a_script_user_resolves_with_its_own_or_a_named_group() {
        let groups = || Ok("nogroup:x:65534:\nwheel:x:10:\n".to_owned());
        let never = || -> Result<String, String> { panic!("group read") };
        assert_eq!(
            resolve_in(PASSWD_TEXT, never, &user("ka")),
            Ok(Ids { uid: 998, gid: 997 })
        );
        assert_eq!(
            resolve_in(PASSWD_TEXT, groups, &user("ka:wheel")),
            Ok(Ids { uid: 998, gid: 10 })
        );
        assert_eq!(
            resolve_in(PASSWD_TEXT, groups, &user("ghost")).unwrap_err(),
            "no user `ghost` in /etc/passwd"
        );
        assert_eq!(
            resolve_in(PASSWD_TEXT, groups, &user("ka:ghosts")).unwrap_err(),
            "no group `ghosts` in /etc/group"
        );
        let unreadable = || Err("cannot read /etc/group: denied".to_owned());
        assert_eq!(
            resolve_in(PASSWD_TEXT, unreadable, &user("ka:wheel")),
            Err("cannot read /etc/group: denied".to_owned())
        );
    }

    /// A program standing in for `getent`, in a fresh directory.
    fn fake_getent(name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-getent-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("getent");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        path
    }

    /// Issue #17: a user the files lack is asked of NSS; its answer is
    /// checked like a file's line, and a lookup that hangs or floods is
    /// given up within the bound.
    #[test]
    fn r17_nss_answers_are_bounded_and_validated() {
        let ldap = fake_getent(
            "ldap",
            "case $1 in passwd) echo \"$2:*:4242:4343:LDAP:/:/bin/sh\";; \
             group) echo \"$2:*:5151:\";; esac",
        );
        let ldap = ldap.to_str().unwrap();
        assert_eq!(
            nss(ldap, &user("alice")),
            Some(Ids { uid: 4242, gid: 4343 })
        );
        assert_eq!(
            nss(ldap, &user("alice:staff")),
            Some(Ids { uid: 4242, gid: 5151 })
        );
        // An answer for another name, or a broken one, is no answer.
        let wrong = fake_getent("wrong", "echo 'mallory:x:0:0::/:/bin/sh'");
        assert_eq!(nss(wrong.to_str().unwrap(), &user("alice")), None);
        let broken = fake_getent("broken", "echo \"$2:x:-1:0::/:/bin/sh\"");
        assert_eq!(nss(broken.to_str().unwrap(), &user("alice")), None);
        // Not found (getent exits 2), or no getent at all.
        let unknown = fake_getent("unknown", "exit 2");
        assert_eq!(nss(unknown.to_str().unwrap(), &user("alice")), None);
        assert_eq!(nss("/nonexistent/getent", &user("alice")), None);
        // A directory server that hangs, or an endless answer.
        for (name, body) in [("hang", "exec sleep 30"), ("flood", "exec yes")] {
            let slow = fake_getent(name, body);
            let started = Instant::now();
            assert_eq!(nss(slow.to_str().unwrap(), &user("alice")), None);
            let took = started.elapsed();
            assert!(
                took < NSS_TIMEOUT + Duration::from_millis(500),
                "{took:?}"
            );
        }
        for name in ["ldap", "wrong", "broken", "unknown", "hang", "flood"] {
            let dir = fake_getent(name, "").parent().unwrap().to_owned();
            std::fs::remove_dir_all(dir).unwrap();
        }
        // The real getent knows root; the error says NSS was asked.
        assert_eq!(nss(GETENT, &user("root")), Some(Ids { uid: 0, gid: 0 }));
        let err = resolve(&user("no-such-user-here")).unwrap_err();
        assert_eq!(
            err,
            "no user `no-such-user-here` in /etc/passwd nor through NSS \
             (getent)"
        );
    }

    #[test]
    fn this_hosts_root_and_nobody_resolve() {
        assert_eq!(resolve(&user("root")), Ok(Ids { uid: 0, gid: 0 }));
        let nobody = resolve(&user("nobody")).unwrap();
        assert_ne!(nobody.uid, 0);
        assert!(resolve(&user("no-such-user-here")).is_err());
    }
}
