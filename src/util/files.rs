//! Atomic file operations: every file lbdeploy writes, on a host or on the
//! controller, goes through here, so a crash or a lost SSH session leaves either the old or the new
//! file, never half of one.
//!
//! The recipe: a temporary file in the same directory (so the rename stays
//! on one file system), write, fsync, chmod, rename over the target, fsync
//! the directory (so the rename itself survives a crash).

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

/// A file as found on disk: permission bits and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OnDisk {
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// The bytes.
    pub content: Vec<u8>,
}

/// Read `path` if it is there.
///
/// # Errors
/// Any error other than "not found".
pub(crate) fn read_opt(path: &Path) -> io::Result<Option<OnDisk>> {
    match fs::read(path) {
        Ok(content) => {
            let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
            Ok(Some(OnDisk { mode, content }))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read `path` as text if it is there.
///
/// # Errors
/// Any error other than "not found".
pub(crate) fn read_text_opt(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// fsync a directory, making renames and removals in it durable.
///
/// # Errors
/// When the directory cannot be opened or synced.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` and its missing parents with mode 0755.
///
/// # Errors
/// When a directory cannot be created.
pub(crate) fn create_dirs(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Create a fresh temporary file beside `path`, open for writing.
///
/// The name is new (process id and a per-process counter) and the file is
/// created with `O_EXCL | O_NOFOLLOW`: a file or symlink planted under a
/// guessed name in a shared directory is never opened, let alone written
/// through; the next name is tried instead.
fn create_temp(path: &Path) -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    let pid = std::process::id();
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp =
            path.with_file_name(format!(".{name}.lbdeploy-tmp.{pid}.{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nofollow())
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        ErrorKind::AlreadyExists,
        "no free temporary name after 100 tries",
    ))
}

/// `O_NOFOLLOW`, from rustix so no `libc` dependency is needed.
fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Replace `path` with `content` and `mode`, atomically; parents are
/// created (0755) as needed. This is the crate's one rename-into-place:
/// temporary file beside the target, write, fsync, chmod, rename, fsync
/// the directory.
///
/// # Errors
/// Any I/O error, with the path; the target is then untouched.
pub(crate) fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let dir = match path.parent().context("a file path has a parent")? {
        d if d.as_os_str().is_empty() => Path::new("."),
        d => d,
    };
    create_dirs(dir)?;
    let (mut f, tmp) = create_temp(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let result = (|| -> io::Result<()> {
        f.write_all(content)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Copy `from` over `to` atomically with `mode` (used for binaries, which
/// are too big to want in memory twice but small enough to copy).
///
/// # Errors
/// Any I/O error, with both paths.
pub(crate) fn copy_atomic(
    from: &Path,
    to: &Path,
    mode: u32,
) -> anyhow::Result<()> {
    let content = fs::read(from)
        .with_context(|| format!("reading {}", from.display()))?;
    write_atomic(to, &content, mode)
}

/// Give `staged` mode 0755, fsync it and rename it over `target`.
///
/// # Errors
/// Any I/O error, with the paths.
pub(crate) fn install_staged(
    staged: &Path,
    target: &Path,
) -> anyhow::Result<()> {
    let what =
        || format!("installing {} as {}", staged.display(), target.display());
    let f = File::open(staged).with_context(what)?;
    f.set_permissions(fs::Permissions::from_mode(0o755)).with_context(what)?;
    f.sync_all().with_context(what)?;
    fs::rename(staged, target).with_context(what)?;
    if let Some(dir) = target.parent() {
        sync_dir(dir).with_context(what)?;
    }
    Ok(())
}

/// Remove `path` if it is there; whether it was.
///
/// # Errors
/// Any error other than "not found".
pub(crate) fn remove_opt(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir)
                    .with_context(|| format!("syncing {}", dir.display()))?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
    }
}

/// Append one line to `path` (the journal), creating it, and fsync.
///
/// # Errors
/// Any I/O error, with the path.
pub(crate) fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}")
        .and_then(|()| f.sync_all())
        .with_context(|| format!("appending to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_parents_and_sets_mode() {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-files-{}", std::process::id()));
        let path = dir.join("a/b/file");
        write_atomic(&path, b"one", 0o640).unwrap();
        assert_eq!(
            read_opt(&path).unwrap(),
            Some(OnDisk { mode: 0o640, content: b"one".to_vec() })
        );
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.join("a/b")).unwrap().count(), 1);
        assert!(remove_opt(&path).unwrap());
        assert!(!remove_opt(&path).unwrap());
        assert_eq!(read_opt(&path).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
