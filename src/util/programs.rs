//! Finding an installed program by name, as both halves need it: the lab
//! the tools it runs, a director's agent BIRD.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Root's sbin directories, in the order a root shell's `PATH` lists
/// them: where `ip`, `nft`, `sshd` and `bird` are installed, and what a
/// `PATH` often lacks (sudo's and cron's, a service's, a user's).
const SBIN: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Where `program` is: the first executable file of that name in `PATH`'s
/// directories, then in root's sbin directories.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = SBIN.iter().map(PathBuf::from);
    first_in(program, std::env::split_paths(&path).chain(sbin))
}

/// Where `program` is among root's sbin directories alone: what the
/// system installed, whatever a `PATH` would put first.
pub fn in_sbin(program: &str) -> Option<PathBuf> {
    first_in(program, SBIN.iter().map(PathBuf::from))
}

fn first_in(
    program: &str,
    dirs: impl Iterator<Item = PathBuf>,
) -> Option<PathBuf> {
    dirs.map(|d| d.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_installed_programs_only() {
        assert!(which("sh").is_some());
        assert!(which("lbdeploy-no-such-tool").is_none());
        assert!(in_sbin("lbdeploy-no-such-tool").is_none());
    }

    #[test]
    fn a_file_that_cannot_be_run_is_not_a_program() {
        assert!(!is_executable(Path::new("/etc/passwd")));
        assert!(!is_executable(Path::new("/")));
        assert!(is_executable(&which("sh").unwrap()));
    }
}
