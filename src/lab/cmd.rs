//! Running the system tools the lab is built from (`ip`, `ssh-keygen`, ...).
//!
//! The lab shells out rather than speaking netlink itself: these are the
//! commands an operator would type to inspect or repair a lab by hand, and
//! DESIGN.md records that they were verified on these machines. The one thing
//! this module adds is errors worth reading: the full command line, its exit
//! status and its stderr, so a failed `ip link add` says why.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::process::{Command, Output, Stdio};

/// A command that failed, with everything needed to reproduce it by hand.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CmdError {
    /// The program could not be started (usually: not installed).
    #[error("cannot run `{line}`: {source}")]
    Spawn {
        /// The command line.
        line: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{line}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        line: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr, trimmed; `(no output)` when empty.
        stderr: String,
    },
}

/// A program and its arguments, kept apart from `std::process::Command` so
/// the line can be printed in errors and tests can look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cmd {
    program: OsString,
    args: Vec<OsString>,
}

impl Cmd {
    /// A command running `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self { program: program.as_ref().to_owned(), args: Vec::new() }
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Append several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The `std` command, for callers that need to set stdio themselves
    /// (daemons) or replace this process (`lab exec`).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }

    /// Run to completion with no stdin and captured output.
    ///
    /// # Errors
    /// [`CmdError::Spawn`] when it cannot start, [`CmdError::Failed`] when it
    /// exits non-zero.
    pub fn run(&self) -> Result<Output, CmdError> {
        let out = self
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|source| self.spawn_error(source))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(out.status, &out.stderr))
        }
    }

    /// Run and return stdout as text.
    ///
    /// # Errors
    /// As [`Cmd::run`].
    pub fn stdout(&self) -> Result<String, CmdError> {
        self.run().map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The error for a command that could not start.
    pub(crate) fn spawn_error(&self, source: std::io::Error) -> CmdError {
        CmdError::Spawn { line: self.to_string(), source }
    }

    /// The error for a command that ran and failed with `stderr`.
    pub fn failed(
        &self,
        status: std::process::ExitStatus,
        stderr: &[u8],
    ) -> CmdError {
        let text = String::from_utf8_lossy(stderr).trim().to_owned();
        CmdError::Failed {
            line: self.to_string(),
            status,
            stderr: if text.is_empty() { "(no output)".into() } else { text },
        }
    }
}

/// The command line as a user would type it, arguments with spaces quoted.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.to_string_lossy())?;
        for a in &self.args {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(char::is_whitespace) {
                write!(f, " '{a}'")?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_shell_line() {
        let c = Cmd::new("ip").args(["-n", "lbd-1"]).arg("a b").arg("");
        assert_eq!(c.to_string(), "ip -n lbd-1 'a b' ''");
    }

    #[test]
    fn failure_carries_command_and_stderr() {
        let e = Cmd::new("sh").args(["-c", "echo nope >&2; exit 3"]).run();
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("`sh -c 'echo nope >&2; exit 3'` failed"),
            "{msg}"
        );
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with("nope"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = Cmd::new("/nonexistent/lbdeploy-test").run().unwrap_err();
        assert!(matches!(e, CmdError::Spawn { .. }), "{e}");
    }
}
