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

/// How many random temporary names [`create_temp`] tries before giving
/// up. A collision with 128 random bits only happens when someone plants
/// names they could not have guessed; a few tries cover an honest clash,
/// and the bound keeps a hostile directory from holding a writer forever.
pub(crate) const TEMP_ATTEMPTS: usize = 8;

/// How many bytes of the target's name a temporary name keeps, so the
/// temporary name stays within `NAME_MAX` (255) with its random part.
const TEMP_NAME_KEEP: usize = 100;

/// 16 random bytes from the kernel, as 32 hex digits.
///
/// From getrandom(2), not `/dev/urandom`: a host's early boot or a
/// minimal root file system may have no `/dev` yet, and the agent writes
/// its state files then. `GRND_INSECURE` never blocks before the kernel's
/// generator is seeded; a name only has to be unguessable to someone
/// planting links, not a key.
///
/// # Errors
/// When the kernel refuses (it never does on Linux ≥ 5.6).
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let flags = rustix::rand::GetRandomFlags::INSECURE;
    let mut filled = 0;
    while filled < bytes.len() {
        filled += rustix::rand::getrandom(&mut bytes[filled..], flags)?;
    }
    Ok(crate::util::hex::hex(&bytes))
}

/// The temporary name for a target named `name` with random part `rand`:
/// hidden (a leading dot), kept short, recognisable in a listing.
fn temp_name(name: &[u8], rand: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    let kept = &name[..name.len().min(TEMP_NAME_KEEP)];
    let mut out = std::ffi::OsString::from(".");
    out.push(std::ffi::OsStr::from_bytes(kept));
    out.push(format!(".{rand}.lbdeploy-tmp"));
    out
}

/// The temporaries [`write_atomic`] left beside `path` when its process
/// was killed between creating one and renaming it over `path`. Only names
/// of exactly the form [`temp_name`] makes (with a 32-digit hex random
/// part) are listed, so nothing else in a shared directory is touched. A
/// missing directory has none.
///
/// # Errors
/// When the directory exists but cannot be listed, with its path.
pub(crate) fn leftover_temps(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let prefix = temp_name(name, "");
    let prefix = prefix.as_bytes();
    let prefix = &prefix[..prefix.len() - ".lbdeploy-tmp".len()];
    let dir = parent_dir(path)?;
    let what = || format!("listing {}", dir.display());
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(what),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(what)?;
        let file = entry.file_name();
        let Some(rand) = file
            .as_bytes()
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(b".lbdeploy-tmp"))
        else {
            continue;
        };
        if rand.len() == 32 && rand.iter().all(u8::is_ascii_hexdigit) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Create a fresh temporary file beside `path`, open for writing, with
/// `mode` already set on it (by `fchmod`, so the umask does not matter
/// and no byte is ever readable under a looser mode).
///
/// The name carries 128 random bits and the file is created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW`: in a shared (world-writable)
/// directory a file or symlink planted under any name is never opened,
/// let alone written through — the open fails and another random name is
/// tried, at most [`TEMP_ATTEMPTS`] times.
fn create_temp(path: &Path, mode: u32) -> io::Result<(File, PathBuf)> {
    create_temp_named(path, mode, random_hex)
}

/// [`create_temp`] with the random part of each try from `random` (tests
/// pass names an attacker planted).
fn create_temp_named(
    path: &Path,
    mode: u32,
    mut random: impl FnMut() -> io::Result<String>,
) -> io::Result<(File, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = path.with_file_name(temp_name(name, &random()?));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nofollow())
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => {
                let guard = TempGuard(Some(tmp));
                f.set_permissions(fs::Permissions::from_mode(mode))?;
                let tmp = guard.keep();
                return Ok((f, tmp));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        ErrorKind::AlreadyExists,
        format!("no free temporary name after {TEMP_ATTEMPTS} random tries"),
    ))
}

/// Removes a temporary file when dropped, unless [`TempGuard::keep`]
/// took it: every early return and `?` cleans up.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    /// The path, no longer removed on drop.
    fn keep(mut self) -> PathBuf {
        self.0.take().expect("taken only here, once")
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// `O_NOFOLLOW`, from rustix so no `libc` dependency is needed.
fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Refuse to replace `path` when it is a symbolic link: whoever planted
/// it meant the write to land elsewhere (renaming over it would not
/// follow it, but silently replacing it would hide the attempt).
///
/// # Errors
/// When `path` is a symlink, or its type cannot be read.
fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => anyhow::bail!(
            "{} is a symbolic link; refusing to write through or over it              (remove it if it is meant to be replaced)",
            path.display()
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => {
            Err(e).with_context(|| format!("inspecting {}", path.display()))
        }
    }
}

/// The directory `path` lives in (`.` for a bare name).
fn parent_dir(path: &Path) -> anyhow::Result<&Path> {
    Ok(match path.parent().context("a file path has a parent")? {
        d if d.as_os_str().is_empty() => Path::new("."),
        d => d,
    })
}

/// Replace `path` with `content` and `mode`, atomically; parents are
/// created (0755) as needed. This is the crate's one rename-into-place,
/// safe in a world-writable directory: a new temporary file beside the
/// target (random name, `O_EXCL | O_NOFOLLOW`), mode set before any data,
/// write, fsync, rename over the target, fsync the directory. A target
/// that is a symlink is refused.
///
/// # Errors
/// Any I/O error (`ENOSPC` included), with the path; the target is then
/// untouched and no temporary file is left behind.
pub(crate) fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let dir = parent_dir(path)?;
    create_dirs(dir)?;
    refuse_symlink(path)?;
    let what = || format!("writing {}", path.display());
    let (mut f, tmp) = create_temp(path, mode).with_context(what)?;
    let guard = TempGuard(Some(tmp));
    f.write_all(content).and_then(|()| f.sync_all()).with_context(what)?;
    drop(f);
    let tmp = guard.0.as_deref().expect("held until renamed");
    fs::rename(tmp, path).with_context(what)?;
    guard.keep();
    sync_dir(dir).with_context(what)
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

/// Give `staged` mode 0755, fsync it and rename it over `target`. Neither
/// may be a symlink (`staged` is opened `O_NOFOLLOW`).
///
/// # Errors
/// Any I/O error, with the paths.
pub(crate) fn install_staged(
    staged: &Path,
    target: &Path,
) -> anyhow::Result<()> {
    let what =
        || format!("installing {} as {}", staged.display(), target.display());
    refuse_symlink(target)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(staged)
        .with_context(what)?;
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

/// The text of `path`, which must be a regular file of at most `max`
/// bytes of UTF-8: hostile input (an inventory, a keepalived.conf and its
/// includes) read without trusting its type or size. The type is checked
/// on the opened descriptor, so `/dev/zero`, a FIFO or a directory is
/// refused before a byte is read (opened non-blocking, so a FIFO with no
/// writer cannot hang the open), and never more than `max + 1` bytes are
/// read.
///
/// # Errors
/// The I/O error; `InvalidData` for a file that is not regular or not
/// UTF-8, `FileTooLarge` past `max`.
pub(crate) fn read_regular(path: &Path, max: u64) -> io::Result<String> {
    use std::io::Read;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        let m = format!("larger than {max} bytes");
        return Err(io::Error::new(ErrorKind::FileTooLarge, m));
    }
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Open `path` for appending, creating it with `mode`; never through a
/// symlink (`O_NOFOLLOW`). For logs and journals, which grow in place.
///
/// # Errors
/// Any I/O error (a symlink gives `ELOOP`).
pub(crate) fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(nofollow())
        .mode(mode)
        .open(path)
}

/// Remove directory `dir` and everything in it at once, as others see it:
/// it is first renamed to a hidden sibling (`.NAME.lbdeploy-removed`),
/// then that is deleted. A reader never finds it half removed, and two
/// removers never trip over each other's deletions. Gone already is fine.
///
/// # Errors
/// Any I/O error but "not found", with the path.
pub(crate) fn remove_dir_whole(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = dir.file_name().context("a directory path has a name")?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(std::ffi::OsStr::from_bytes(name.as_bytes()));
    hidden.push(".lbdeploy-removed");
    let trash = dir.with_file_name(hidden);
    let gone = |r: io::Result<()>| match r {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    let what = || format!("removing {}", dir.display());
    // A crash may have left an earlier one behind.
    gone(fs::remove_dir_all(&trash)).with_context(what)?;
    gone(fs::rename(dir, &trash)).with_context(what)?;
    gone(fs::remove_dir_all(&trash)).with_context(what)?;
    sync_dir(parent_dir(dir)?).with_context(what)
}

/// Append one line to `path` (the journal), creating it, and fsync.
///
/// # Errors
/// Any I/O error, with the path.
pub(crate) fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    let mut f = open_append(path, 0o644)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}")
        .and_then(|()| f.sync_all())
        .with_context(|| format!("appending to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A fresh scratch directory, world-writable and sticky like `/tmp`.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        dir
    }

    /// A shared directory and, outside it, a 0600 file an attacker wants
    /// root to overwrite; both removed on drop.
    struct Attack {
        dir: PathBuf,
        secret: PathBuf,
        victim: PathBuf,
    }

    impl Attack {
        fn new(name: &str) -> Self {
            let secret = scratch(&format!("{name}-victim"));
            let victim = secret.join("victim");
            fs::write(&victim, "secret\n").unwrap();
            fs::set_permissions(&victim, fs::Permissions::from_mode(0o600))
                .unwrap();
            Self { dir: scratch(name), secret, victim }
        }

        fn assert_untouched(&self) {
            assert_eq!(
                read_opt(&self.victim).unwrap(),
                Some(OnDisk { mode: 0o600, content: b"secret\n".to_vec() })
            );
        }
    }

    impl Drop for Attack {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
            let _ = fs::remove_dir_all(&self.secret);
        }
    }

    /// Names in `dir` other than `keep`.
    fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_creates_parents_and_sets_mode() {
        let dir = scratch("parents");
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

    /// The names earlier versions used (`.NAME.tmp`, and PID plus a
    /// counter), planted as symlinks to a 0600 file: none is followed.
    #[test]
    fn planted_symlinks_at_predictable_names_are_not_followed() {
        let attack = Attack::new("predictable");
        let (dir, v) = (&attack.dir, &attack.victim);
        let pid = std::process::id();
        let mut planted = vec![".inv.yml.tmp".to_string()];
        planted.extend(
            (0..1000).map(|n| format!(".inv.yml.lbdeploy-tmp.{pid}.{n}")),
        );
        for name in &planted {
            symlink(v, dir.join(name)).unwrap();
        }
        let target = dir.join("inv.yml");
        write_atomic(&target, b"inventory\n", 0o644).unwrap();
        attack.assert_untouched();
        assert_eq!(fs::read(&target).unwrap(), b"inventory\n");
        let keep: Vec<&str> = planted.iter().map(String::as_str).collect();
        assert_eq!(others(dir, &keep), ["inv.yml"]);
    }

    /// Even a name the attacker did guess (the random part handed in) is
    /// never opened: the next one is tried, and after `TEMP_ATTEMPTS`
    /// planted names the write fails without following any.
    #[test]
    fn guessed_temporary_names_are_skipped_then_bounded() {
        let attack = Attack::new("guessed");
        let (dir, v) = (&attack.dir, &attack.victim);
        let target = dir.join("plan.json");
        let guesses: Vec<String> =
            (0..TEMP_ATTEMPTS).map(|n| format!("guess{n}")).collect();
        for g in &guesses {
            let name = temp_name(b"plan.json", g);
            symlink(v, dir.join(name)).unwrap();
        }
        // All but the last try planted: the last one is used.
        let mut tries = guesses.iter().take(TEMP_ATTEMPTS - 1).cloned();
        let (f, tmp) = create_temp_named(&target, 0o600, || {
            Ok(tries.next().unwrap_or_else(|| "free".to_string()))
        })
        .unwrap();
        assert_eq!(tmp, dir.join(temp_name(b"plan.json", "free")));
        drop(f);
        fs::remove_file(&tmp).unwrap();
        // Every try planted: an error, nothing followed.
        let mut tries = guesses.iter().cloned();
        let err =
            create_temp_named(&target, 0o600, || Ok(tries.next().unwrap()))
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        attack.assert_untouched();
    }

    #[test]
    fn a_symlink_target_is_refused_by_name() {
        let attack = Attack::new("target-link");
        let (dir, v) = (&attack.dir, &attack.victim);
        let target = dir.join("inv.yml");
        symlink(v, &target).unwrap();
        let err = write_atomic(&target, b"x", 0o644).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&target.display().to_string()), "{msg}");
        assert!(msg.contains("symbolic link"), "{msg}");
        attack.assert_untouched();
        assert!(fs::symlink_metadata(&target).unwrap().is_symlink());
        assert_eq!(others(dir, &[]), ["inv.yml"]);
        // A dangling one too (it would create the file it points at).
        let dangling = dir.join("plan.json");
        symlink(attack.secret.join("new"), &dangling).unwrap();
        assert!(write_atomic(&dangling, b"x", 0o644).is_err());
        assert!(!attack.secret.join("new").exists());
    }

    /// The mode asked for, exactly: not the existing file's, and not cut
    /// by the umask (0666 would come out 0644 under the usual 022).
    #[test]
    fn mode_is_exact_even_over_a_file_with_another() {
        let dir = scratch("mode");
        let target = dir.join("plan.json");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644))
            .unwrap();
        write_atomic(&target, b"new", 0o600).unwrap();
        assert_eq!(read_opt(&target).unwrap().unwrap().mode, 0o600);
        write_atomic(&target, b"newer", 0o666).unwrap();
        assert_eq!(
            read_opt(&target).unwrap(),
            Some(OnDisk { mode: 0o666, content: b"newer".to_vec() })
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The temporary file has its final mode before a byte is written.
    #[test]
    fn temporary_file_has_its_mode_before_any_data() {
        let dir = scratch("early-mode");
        let (f, tmp) = create_temp(&dir.join("secret"), 0o600).unwrap();
        let m = f.metadata().unwrap();
        assert_eq!((m.permissions().mode() & 0o7777, m.len()), (0o600, 0));
        let (_g, tmp2) = create_temp(&dir.join("open"), 0o644).unwrap();
        assert_eq!(read_opt(&tmp2).unwrap().unwrap().mode, 0o644);
        assert_ne!(tmp, tmp2);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A failed rename (the target is a directory) leaves no temporary.
    #[test]
    fn no_temporary_is_left_on_error() {
        let dir = scratch("error");
        fs::create_dir(dir.join("taken")).unwrap();
        let err = write_atomic(&dir.join("taken"), b"x", 0o644).unwrap_err();
        assert!(format!("{err:#}").contains("taken"), "{err:#}");
        assert_eq!(others(&dir, &[]), ["taken"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A writer killed before its rename leaves a temporary; only names
    /// of exactly that form, for that target, are found again.
    #[test]
    fn leftover_temporaries_are_found_and_nothing_else() {
        let dir = scratch("leftover");
        let target = dir.join("lab.json");
        let (_f, tmp) = create_temp(&target, 0o644).unwrap();
        let (_g, other) = create_temp(&dir.join("lab.jsonx"), 0o644).unwrap();
        for decoy in [".lab.json.tmp", ".lab.json.zz.lbdeploy-tmp", "lab.json"]
        {
            fs::write(dir.join(decoy), b"").unwrap();
        }
        let short = dir.join(temp_name(b"lab.json", "abc"));
        fs::write(&short, b"").unwrap();
        assert_eq!(leftover_temps(&target).unwrap(), [tmp]);
        assert_eq!(leftover_temps(&dir.join("lab.jsonx")).unwrap(), [other]);
        assert!(leftover_temps(&dir.join("gone/x")).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_names_stay_short_and_hidden() {
        let long = [b'a'; 255];
        let name = temp_name(&long, &"0".repeat(32));
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.to_string_lossy().starts_with(".aaa"));
    }

    #[test]
    fn a_directory_is_removed_whole_and_gone_is_fine() {
        let dir = scratch("whole");
        let pending = dir.join("pending");
        write_atomic(&pending.join("a/b"), b"x", 0o600).unwrap();
        // A leftover of a crashed removal is cleared first.
        write_atomic(&dir.join(".pending.lbdeploy-removed/old"), b"", 0o600)
            .unwrap();
        remove_dir_whole(&pending).unwrap();
        assert_eq!(others(&dir, &[]), Vec::<String>::new());
        remove_dir_whole(&pending).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appending_never_follows_a_symlink() {
        let attack = Attack::new("append");
        let (dir, v) = (&attack.dir, &attack.victim);
        symlink(v, dir.join("journal")).unwrap();
        assert!(append_line(&dir.join("journal"), "x").is_err());
        attack.assert_untouched();
    }
}
