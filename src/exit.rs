//! How a command ends. Every command returns an [`ExitStatus`]; `main`
//! turns it into the process's exit code, so the codes are defined once
//! and no command calls `exit` itself.

/// How a command ended; `main` turns it into the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done, or nothing to do.
    Ok = 0,
    /// An error; nothing or everything was done, never half.
    Error = 1,
    /// `plan --detailed-exitcode` found changes.
    Changes = 2,
    /// Some hosts failed or rolled back.
    Partial = 3,
    /// `agent exec-in` could not start its command (a shell's 127).
    NotStarted = 127,
}
