//! The one place where a remote command is built: what the SSH user runs
//! so that lbdeploy's program runs as root, and what goes on its standard
//! input first.
//!
//! Without `become` the program runs as it is (the SSH user is root). With
//! `become: sudo`:
//!
//! * no password: `sudo -n -- PROGRAM ARGS…`. `-n` never prompts, so a
//!   sudo rule that wants a password fails at once, with sudo's own
//!   message, which [`refusal`] turns into one naming the host and the two
//!   remedies; the facts script is every plan's first command, so that
//!   happens before anything changes.
//! * a password (`ssh.become_password_env`): a small `sh` wrapper reads the
//!   first line of its standard input (the password, which the controller
//!   writes there before the command's own input), and runs
//!   `sudo -A -- PROGRAM ARGS…` with `printenv` as the askpass program and
//!   the password in the environment of sudo alone. Why not `sudo -S`,
//!   which reads the password from standard input itself: sudo reads it
//!   only when it wants one (a NOPASSWD rule, a cached credential), and
//!   otherwise the password line would reach the command — the facts
//!   script's `sh` would run it, the uploaded binary would start with it.
//!   The wrapper always consumes exactly that line (`read` stops at the
//!   newline), so the binary upload and the activation's JSON reach the
//!   program byte for byte whether sudo asks or not. The password is never
//!   on a command line (neither ssh's nor the remote one) and never in a
//!   file.
//!
//! `--` stays before the program in every form, so a program name can
//! never be read as an option of sudo.

use std::borrow::Cow;

use super::Target;
use crate::inventory::Become;
use crate::util::shell;

/// The environment variable that carries the sudo password from the
/// wrapper to sudo, and the prompt sudo passes to its askpass program:
/// `printenv` given that name prints the password.
const PASSWORD_VAR: &str = "LBDEPLOY_BECOME_PASSWORD";

/// The password wrapper's script; its arguments are the program and its
/// arguments. A missing password line (no input at all) exits 125 rather
/// than run sudo without one. The password is a shell variable until sudo's
/// environment gets it; `command -v` finds `printenv` wherever the host
/// keeps it (sudo wants a full path).
fn wrapper() -> String {
    format!(
        "IFS= read -r p || exit 125; {PASSWORD_VAR}=\"$p\" \
         SUDO_ASKPASS=\"$(command -v printenv)\" \
         exec sudo -A -p {PASSWORD_VAR} -- \"$@\""
    )
}

/// The wrapper's `$0`, which `sh` shows in its own messages.
const WRAPPER_NAME: &str = "lbdeploy-become";

/// A remote command ready to run: the words the remote user runs, and what
/// goes on its standard input before the program's own input.
#[derive(Debug)]
pub(crate) struct Remote {
    /// Program and arguments, each one word.
    pub argv: Vec<String>,
    /// The password line, when the wrapper reads one.
    pub stdin_prefix: Option<Secret>,
}

/// The sudo password and its newline: its `Debug` shows nothing.
pub(crate) struct Secret(Vec<u8>);

impl Secret {
    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::util::redact::HIDDEN)
    }
}

impl Remote {
    /// The command as one line for a remote shell (what `ssh HOST LINE`
    /// sends): every word quoted.
    pub fn line(&self) -> String {
        let words: Vec<String> =
            self.argv.iter().map(|w| shell::quote(w)).collect();
        words.join(" ")
    }
}

/// `program args…` as `target`'s user must run it to be root, with the
/// password read from the controller's environment through `var`.
///
/// # Errors
/// When the password's variable is unset, empty or holds a newline (the
/// wrapper reads one line).
pub(crate) fn build(
    target: &Target,
    program: &str,
    args: &[&str],
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Remote, String> {
    let words = || {
        std::iter::once(program).chain(args.iter().copied()).map(String::from)
    };
    let (argv, stdin_prefix) =
        match (target.become_, &target.become_password_env) {
            (Become::None, _) => (words().collect(), None),
            (Become::Sudo, None) => {
                let argv = ["sudo", "-n", "--"].map(String::from);
                (argv.into_iter().chain(words()).collect(), None)
            }
            (Become::Sudo, Some(name)) => {
                let password = password(name, var)?;
                let argv =
                    ["sh".into(), "-c".into(), wrapper(), WRAPPER_NAME.into()];
                (argv.into_iter().chain(words()).collect(), Some(password))
            }
        };
    Ok(Remote { argv, stdin_prefix })
}

/// The password line from the variable `name`.
fn password(
    name: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, String> {
    let value = var(name).unwrap_or_default();
    if value.is_empty() {
        return Err(format!(
            "ssh.become_password_env names `{name}`, which is not set or \
             empty in lbdeploy's environment — export the sudo password \
             there"
        ));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "the sudo password in `{name}` holds a line break or NUL, which \
             no sudo password can hold"
        ));
    }
    let mut line = value.into_bytes();
    line.push(b'\n');
    Ok(Secret(line))
}

/// When a command failed because sudo refused to run it: a message naming
/// the host and what to do, instead of sudo's own line.
pub(crate) fn refusal(
    target: &Target,
    code: Option<i32>,
    stderr: &str,
) -> Option<String> {
    if target.become_ == Become::None || code != Some(1) {
        return None;
    }
    let host = &target.name;
    let user = &target.user;
    // sudo's phrases are distinctive; lbdeploy's own commands never print
    // them, and only an exit of 1 (sudo's) is looked at.
    let said = |needle: &str| stderr.contains(needle);
    if said("a password is required") {
        // A dash, not a colon: "password: …" reads as a secret to the
        // redaction every message passes through.
        Some(format!(
            "sudo on {host} wants a password — set ssh.become_password_env, \
             or allow NOPASSWD for lbdeploy's commands"
        ))
    } else if said("incorrect password attempt")
        || said("no password was provided")
    {
        Some(format!(
            "sudo on {host} refused the password from \
             ssh.become_password_env for {user}"
        ))
    } else if said("is not in the sudoers file")
        || said("is not allowed to execute")
        || said("may not run sudo")
    {
        Some(format!(
            "sudo on {host} does not let {user} run lbdeploy's commands as \
             root — add a sudoers rule (see SECURITY.md)"
        ))
    } else if said("must have a tty") {
        Some(format!(
            "sudo on {host} requires a tty for {user} (`Defaults \
             requiretty`) — exempt {user} from it"
        ))
    } else {
        None
    }
}

/// The error output of a command run through `remote` as lbdeploy shows
/// it: the password, if any, hidden, and sudo's own noise about the host
/// dropped — a host whose name is not in its `/etc/hosts` gets `sudo:
/// unable to resolve host NAME` before every command's output, which says
/// nothing about the command and would garble each message quoting it.
pub(crate) fn stderr<'a>(
    target: &Target,
    remote: &Remote,
    text: &'a str,
) -> Cow<'a, str> {
    let noise = |l: &str| l.starts_with("sudo: unable to resolve host ");
    let text: Cow<'a, str> = match target.become_ == Become::Sudo
        && text.lines().any(noise)
    {
        false => Cow::Borrowed(text),
        true => {
            let kept: Vec<&str> = text.lines().filter(|l| !noise(l)).collect();
            Cow::Owned(kept.join("\n"))
        }
    };
    match &remote.stdin_prefix {
        None => text,
        Some(s) => {
            let pw = String::from_utf8_lossy(s.bytes());
            crate::util::redact::known(&text, &[pw.trim_end()])
                .into_owned()
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::KnownHosts;

    fn target(become_: Become, env: Option<&str>) -> Target {
        Target {
            name: "rs01".into(),
            destination: "10.0.0.21".into(),
            user: "deploy".into(),
            port: 22,
            identity_file: None,
            known_hosts: KnownHosts::Strict,
            known_hosts_file: None,
            become_,
            become_password_env: env.map(String::from),
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "PW").then(|| "s3cr'et $x".to_owned())
    }

    #[test]
    fn without_become_the_program_runs_as_it_is() {
        let r = build(&target(Become::None, None), "sh", &["-s"], &env);
        let r = r.unwrap();
        assert_eq!(r.argv, ["sh", "-s"]);
        assert!(r.stdin_prefix.is_none());
        assert_eq!(r.line(), "'sh' '-s'");
    }

    #[test]
    fn sudo_never_prompts_and_keeps_dashes_before_the_program() {
        let t = target(Become::Sudo, None);
        let r =
            build(&t, "/usr/local/sbin/lbdeploy", &["host", "activate"], &env)
                .unwrap();
        assert_eq!(
            r.argv,
            [
                "sudo",
                "-n",
                "--",
                "/usr/local/sbin/lbdeploy",
                "host",
                "activate"
            ]
        );
        assert!(r.stdin_prefix.is_none());
    }

    #[test]
    fn a_password_goes_on_stdin_never_on_a_command_line() {
        let t = target(Become::Sudo, Some("PW"));
        let r = build(&t, "sh", &["-c", "cat > f"], &env).unwrap();
        assert_eq!(r.argv[..4], ["sh", "-c", &wrapper(), WRAPPER_NAME]);
        assert_eq!(&r.argv[4..], ["sh", "-c", "cat > f"]);
        assert!(!r.line().contains("s3cr"), "{}", r.line());
        assert_eq!(r.stdin_prefix.as_ref().unwrap().bytes(), b"s3cr'et $x\n");
        assert_eq!(format!("{:?}", r.stdin_prefix), "Some((sensitive))");
        assert!(wrapper().contains("LBDEPLOY_BECOME_PASSWORD=\"$p\""));
        assert_eq!(stderr(&t, &r, "no s3cr'et $x here"), "no (sensitive) here");
    }

    #[test]
    fn a_missing_or_unusable_password_is_refused_naming_the_variable() {
        let t = target(Become::Sudo, Some("UNSET"));
        let e = build(&t, "sh", &[], &env).unwrap_err();
        assert!(e.contains("`UNSET`") && e.contains("not set"), "{e}");
        let bad = |_: &str| Some("a\nb".to_owned());
        let e = build(&target(Become::Sudo, Some("PW")), "sh", &[], &bad);
        assert!(e.unwrap_err().contains("line break"));
        let empty = |_: &str| Some(String::new());
        assert!(
            build(&target(Become::Sudo, Some("PW")), "sh", &[], &empty)
                .is_err()
        );
    }

    #[test]
    fn sudo_noise_about_the_host_name_is_dropped_under_sudo_only() {
        let said = "sudo: unable to resolve host rs01: Temporary failure in \
                    name resolution\nlbdeploy: error: host is not locked";
        for (become_, want) in [
            (Become::Sudo, "lbdeploy: error: host is not locked"),
            (Become::None, said),
        ] {
            let t = target(become_, None);
            let r = build(&t, "lbdeploy", &[], &env).unwrap();
            assert_eq!(stderr(&t, &r, said), want);
        }
    }

    /// The messages of sudo 1.9 (Debian bookworm) and of RHEL's sudo.
    #[test]
    fn sudo_refusals_name_the_host_and_the_remedy() {
        let t = target(Become::Sudo, None);
        let cases = [
            ("sudo: a password is required", "wants a password"),
            ("sudo: 3 incorrect password attempts", "refused the password"),
            (
                "deploy is not in the sudoers file.  This incident will be reported.",
                "does not let deploy",
            ),
            ("sh: 1: cannot create f: Permission denied", ""),
            ("sudo: deploy is not in the sudoers file.", "does not let deploy"),
            (
                "Sorry, user deploy is not allowed to execute '/bin/sh -s' as root on rs01.\nsudo: user deploy is not allowed to execute '/bin/sh -s' as root",
                "does not let deploy",
            ),
            ("sudo: sorry, you must have a tty to run sudo", "requires a tty"),
        ];
        for (said, want) in cases {
            let m = refusal(&t, Some(1), said);
            match want {
                "" => assert_eq!(m, None, "{said}"),
                want => {
                    let m = m.unwrap();
                    assert!(m.contains(want) && m.contains("rs01"), "{m}");
                }
            }
        }
        let m = refusal(&t, Some(1), "sudo: a password is required").unwrap();
        assert_eq!(
            m,
            "sudo on rs01 wants a password — set ssh.become_password_env, or \
             allow NOPASSWD for lbdeploy's commands"
        );
        // The command's own failure, or no become at all: no refusal.
        assert_eq!(refusal(&t, Some(2), "sudo: a password is required"), None);
        let root = target(Become::None, None);
        assert_eq!(
            refusal(&root, Some(1), "sudo: a password is required"),
            None
        );
    }
}
