//! `agent.log` without systemd: the supervisor owns the file, the agent
//! and the supervisor write their lines into a pipe, and one thread of the
//! supervisor copies the pipe into the file, capped at [`LOG_CAP`] and
//! rotated to `agent.log.1` (one old file: at most twice the cap on the
//! host's `/run`).
//!
//! Nothing here may stop the agent. The pipe's writing end is
//! non-blocking: when the file cannot take a line (a full file system)
//! the thread keeps the line and tries again every [`RETRY`], the pipe
//! fills, and further lines fail at once with `EAGAIN` in the writer,
//! which drops and counts them (`util::log::Lossy`: `log_lines_dropped` in
//! the agent's status). Lines are single `write`s under `PIPE_BUF`, so
//! the pipe never interleaves two of them.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// The most bytes `agent.log` grows to before it is moved to
/// `agent.log.1`.
pub(crate) const LOG_CAP: u64 = 10 * 1024 * 1024;

/// How long the copying thread waits before it tries a failed write
/// again.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// How long an exiting supervisor waits for the lines still in the pipe
/// to reach the file (a hook's process that still holds the pipe, or a
/// full disk, must not keep it from exiting).
pub(crate) const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// The log file and the size it has reached.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    cap: u64,
}

impl LogFile {
    /// Open (or create) `path` 0600 for appending, rotating at `cap`.
    ///
    /// # Errors
    /// The file cannot be opened (a symbolic link is refused).
    pub(crate) fn open(path: &Path, cap: u64) -> io::Result<Self> {
        let file = open_log(path)?;
        let size = file.metadata()?.len();
        Ok(Self { path: path.to_owned(), file, size, cap })
    }

    /// Append `chunk` from `*done` on, rotating first when it would take
    /// the file past the cap. `*done` says how much is written, so a
    /// failed write is resumed, never repeated.
    ///
    /// # Errors
    /// A write or the rotation failed; what is left is `chunk[*done..]`.
    pub(crate) fn append(
        &mut self,
        chunk: &[u8],
        done: &mut usize,
    ) -> io::Result<()> {
        if *done == 0
            && self.size > 0
            && self.size + chunk.len() as u64 > self.cap
        {
            self.rotate()?;
        }
        while *done < chunk.len() {
            let n = self.file.write(&chunk[*done..])?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            *done += n;
            self.size += n as u64;
        }
        Ok(())
    }

    /// `agent.log` → `agent.log.1` (replacing the older one), and a new
    /// `agent.log`. The one `rename` outside `util::files`: the file is
    /// moved aside, not replaced by new content.
    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, old)?;
        self.file = open_log(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Open `agent.log` for appending, readable by root alone: the agent's
/// lines name addresses, hooks and failed deliveries. Created 0600, and an
/// existing file (from a version that made it 0644) is set to 0600. Never
/// through a symbolic link.
pub(crate) fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// The pipe the agent and the supervisor log into: (reading end, writing
/// end), the writing end non-blocking, both close-on-exec (a child gets
/// the writing end as its stdout and stderr, which `Command` duplicates).
///
/// # Errors
/// The kernel's.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, write))
}

/// This process's stdout and stderr are the pipe into the log file from
/// [`Copier::start`] on, until [`Copier::finish`] puts the old ones back.
#[derive(Debug)]
pub(crate) struct Copier {
    thread: std::thread::JoinHandle<()>,
    /// The stderr from before (the file `agent start` opened), for what
    /// is said after the end: the supervisor's own exit error.
    saved: OwnedFd,
}

impl Copier {
    /// Make a [`pipe`], copy it into `log` on a thread of its own and
    /// point this process's stdout and stderr (which children inherit) at
    /// it.
    ///
    /// # Errors
    /// The pipe, the thread or the redirection cannot be made.
    pub(crate) fn start(log: LogFile) -> io::Result<Self> {
        let (read, write) = pipe()?;
        let saved = nix::unistd::dup(io::stderr())?;
        let thread = copy_on_thread(read, log)?;
        nix::unistd::dup2_stdout(&write)?;
        nix::unistd::dup2_stderr(&write)?;
        Ok(Self { thread, saved })
    }

    /// Close our ends of the pipe (stdout and stderr back to what they
    /// were) and give the thread [`FLUSH_WAIT`] to copy what is left.
    pub(crate) fn finish(self) {
        let _ = nix::unistd::dup2_stdout(&self.saved);
        let _ = nix::unistd::dup2_stderr(&self.saved);
        let until = std::time::Instant::now() + FLUSH_WAIT;
        while !self.thread.is_finished() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Copy the pipe into `log` until every writing end is closed, on a
/// thread of its own: a write that fails is tried again every [`RETRY`]
/// meanwhile the pipe fills and the writers drop their lines.
fn copy_on_thread(
    read: OwnedFd,
    mut log: LogFile,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("agent.log".into()).spawn(move || {
        let mut pipe = File::from(read);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match io::Read::read(&mut pipe, &mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let mut done = 0;
            while log.append(&buf[..n], &mut done).is_err() {
                std::thread::sleep(RETRY);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_log_is_created_and_kept_0600_and_no_link_is_followed() {
        let dir = dir("log-mode");
        let path = dir.join("agent.log");
        drop(open_log(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o644))
            .unwrap();
        drop(open_log(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        let link = dir.join("link.log");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(open_log(&link).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_log_rotates_at_its_cap_keeping_one_old_file() {
        let dir = dir("log-rotate");
        let path = dir.join("agent.log");
        let old = dir.join("agent.log.1");
        let line = b"ts=1 level=warn msg=\"dropped: bad auth\"\n";
        let cap = 10 * line.len() as u64;
        let mut log = LogFile::open(&path, cap).unwrap();
        for _ in 0..35 {
            log.append(line, &mut 0).unwrap();
        }
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        // 35 lines, 10 a file: 30 moved aside three times, 5 left.
        assert_eq!(size(&path), 5 * line.len() as u64);
        assert_eq!(size(&old), cap);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        assert_eq!((mode(&path), mode(&old)), (0o600, 0o600));
        // Reopened, it counts what is there already.
        let mut log = LogFile::open(&path, cap).unwrap();
        for _ in 0..5 {
            log.append(line, &mut 0).unwrap();
        }
        assert_eq!(size(&path), cap);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_device_fails_the_append_and_keeps_the_line() {
        // /dev/full fails every write with ENOSPC, as a full tmpfs does.
        // Not through `open`, which would chmod the shared device.
        let file = std::fs::OpenOptions::new().write(true).open("/dev/full");
        let mut log = LogFile {
            path: "/dev/full".into(),
            file: file.unwrap(),
            size: 0,
            cap: LOG_CAP,
        };
        let mut done = 0;
        assert!(log.append(b"a line\n", &mut done).is_err());
        assert_eq!(done, 0, "nothing written, all to retry");
    }

    #[test]
    fn the_pipe_drops_rather_than_blocks_when_full() {
        let (read, write) = pipe().unwrap();
        let mut w = crate::util::log::Lossy(File::from(write));
        let before = crate::util::log::dropped_lines();
        // Nobody reads: at most a pipe's capacity (64 KiB by default, 1 MiB
        // at most) goes in; the rest is dropped at once.
        for _ in 0..20_000 {
            w.write_all(&[b'x'; 99]).unwrap();
            w.write_all(b"\n").unwrap();
        }
        assert!(crate::util::log::dropped_lines() > before);
        drop(read);
    }
}
