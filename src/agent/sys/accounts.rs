//! Who a script user is on this host: the names of a `script_user`
//! looked up in `/etc/passwd` and `/etc/group`, as the uid and gid the
//! agent starts the program with.
//!
//! Only the local files are read — not NSS (LDAP, sssd): the agent has no
//! C library to ask, and a script user that exists only while a
//! directory server answers would stop the director's scripts with it.
//! A user for scripts is a local system account anyway (keepalived's
//! `keepalived_script`).
//!
//! The files are read through `util::files::read_regular` (a regular
//! file, at most [`FILE_MAX`] bytes) and parsed by [`find_user`] and
//! [`find_group`], pure: a line is taken only when its name matches and
//! its numbers are plain decimal ids, so a broken, truncated or hostile
//! line is never a match. The first match wins, as with the C library's
//! `files` service. Nothing of the files is ever repeated in a message.

use std::path::Path;

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

/// `user`'s ids on this host.
///
/// # Errors
/// A file cannot be read (or is too large), or has no such user or group.
pub fn resolve(user: &ScriptUser) -> Result<Ids, String> {
    let read = |path: &str| {
        files::read_regular(Path::new(path), FILE_MAX)
            .map_err(|e| format!("cannot read {path}: {e}"))
    };
    resolve_in(&read(PASSWD)?, || read(GROUP), user)
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

    #[test]
    fn this_hosts_root_and_nobody_resolve() {
        assert_eq!(resolve(&user("root")), Ok(Ids { uid: 0, gid: 0 }));
        let nobody = resolve(&user("nobody")).unwrap();
        assert_ne!(nobody.uid, 0);
        assert!(resolve(&user("no-such-user-here")).is_err());
    }
}
