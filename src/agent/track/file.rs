//! One tracked file, keepalived's `vrrp_track_file` (`track_file` in
//! newer keepalived): a number that someone else writes into a file —
//! a deploy script, a maintenance switch — folded into an instance's
//! priority. What the number means is [`contribution`], pure; reading
//! it is [`read`]; noticing that it changed is this module's task.
//!
//! The semantics are keepalived's (`keepalived/trackers/track_file.c`,
//! `process_track_file` and `update_track_file_status`;
//! `initialise_vrrp_file_tracking_priorities` in
//! `keepalived/vrrp/vrrp_track.c`; "Track files" in keepalived.conf(5)):
//!
//! * the file holds an integer in text, read as C's `strtol` with base 0
//!   reads it: leading white space, a sign, `0x` for hex, a leading `0`
//!   for octal, anything after the digits ignored. Only the first
//!   [`READ_MAX`] bytes are read;
//! * a missing or unreadable file, an empty one or one that does not
//!   start with a number counts as 0;
//! * a number outside −2³¹–2³¹ is ignored: the previous value stands;
//! * weight 0: any value but 0 is a FAULT (`reverse`: 0 is the FAULT);
//! * another weight: value × weight (× −1 with `reverse`) is added to
//!   the priority, at most 253; −254 or less is a FAULT.
//!
//! # Noticing changes: inotify, not polling
//!
//! The task watches the file's *directory* with inotify (rustix's
//! `fs::inotify`, already a dependency) for a file of that name being
//! closed after writing, created, moved in or out, or deleted, and
//! rereads the file on each. Watching the directory rather than the file
//! is what makes replacement work: an editor's or `write_atomic`'s
//! rename puts a new inode under the name, which a watch on the old
//! inode would never hear of; and a deleted file may come back. If the
//! directory itself goes (deleted, moved) or cannot be watched yet, the
//! task rereads the file and retries the watch every [`RETRY`]. A queue
//! overflow also triggers a reread, so no change is lost for good.
//!
//! Cost, measured with `cargo run --release --example track_cost --
//! 5` on the 2-core development VM: one read (open, read, close) of a
//! small file takes 3.3 µs. Polling every 100 ms would cost 33 µs of CPU
//! a second per file — negligible too, but it would be 100 ms late on
//! average 50, where inotify reports within a millisecond and costs
//! nothing while the file stays unchanged. keepalived makes the same
//! choice.

use std::ffi::OsStr;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Tracker;
use crate::inventory::FileInit;
use crate::util::files;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// The most of a file that is read: a number needs a dozen characters,
/// and a file that is anything else must not cost more to read.
/// keepalived reads 127 bytes.
pub const READ_MAX: u64 = 128;

/// How often a directory that cannot be watched is tried again.
pub const RETRY: Duration = Duration::from_secs(1);

/// The range keepalived accepts from a file: what fits in a 32-bit `int`
/// and one more, so that `-2147483648` reversed still fits.
const ACCEPTED: std::ops::RangeInclusive<i64> = -(1 << 31)..=(1 << 31);

/// A file to track, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Its name (`maintenance`), in log lines and status.
    pub name: String,
    /// The file. Its directory is watched, so a symbolic link to a file
    /// in another directory is read through but changes made there
    /// are not noticed.
    pub path: PathBuf,
}

/// What a tracked file says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// The value that counts: the file's number, 0 when it has none, or
    /// the previous value when the number was out of range.
    pub value: i64,
    /// Why `value` is not simply the number in the file: the file is
    /// missing or unreadable, empty, not a number, or out of range.
    pub error: Option<String>,
}

/// What a tracked file's value does to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contribution {
    /// Add this to the priority (negative: subtract), −253–253.
    Priority(i32),
    /// Put the instance in FAULT, for this reason.
    Fault(String),
}

/// What `value` means to an instance that tracks the file with `weight`
/// (keepalived accepts −254–254) and `reverse`.
pub fn contribution(value: i64, weight: i32, reverse: bool) -> Contribution {
    if weight == 0 {
        // Reversed, only 0 is a failure.
        return if (value != 0) != reverse {
            Contribution::Fault(format!("value {value}"))
        } else {
            Contribution::Priority(0)
        };
    }
    let sign = if reverse { -1 } else { 1 };
    let moved = value.saturating_mul(i64::from(weight) * sign);
    if moved <= -254 {
        let rev = if reverse { " reversed" } else { "" };
        return Contribution::Fault(format!(
            "value {value} × weight {weight}{rev} is {moved}, −254 or less"
        ));
    }
    // Within −253..=253 after the bound, so the cast is exact.
    Contribution::Priority(moved.min(253) as i32)
}

/// What a file's content says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A number, in keepalived's range.
    Number(i64),
    /// Nothing that starts like a number (empty, text): counts as 0.
    NotANumber,
    /// A number outside keepalived's range: ignored.
    OutOfRange,
}

/// Read `text` as `strtol(text, NULL, 0)` does, then check keepalived's
/// range. Bytes after the number, UTF-8 or not, are ignored.
pub fn parse(text: &[u8]) -> Reading {
    let start = text.iter().position(|b| !is_c_space(*b));
    let mut rest = &text[start.unwrap_or(text.len())..];
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let radix = match rest {
        [b'0', b'x' | b'X', h, ..] if h.is_ascii_hexdigit() => {
            rest = &rest[2..];
            16
        }
        [b'0', ..] => 8,
        _ => 10,
    };
    let digits: Vec<u32> =
        rest.iter().map_while(|&b| char::from(b).to_digit(radix)).collect();
    if digits.is_empty() {
        return Reading::NotANumber;
    }
    // Accumulate negatively so that the most negative value fits; an
    // overflow is strtol's ERANGE, which keepalived ignores.
    let magnitude = digits.iter().try_fold(0i64, |n, &d| {
        n.checked_mul(i64::from(radix))?.checked_sub(i64::from(d))
    });
    let value = match magnitude {
        Some(n) if negative => Some(n),
        Some(n) => n.checked_neg(),
        None => None,
    };
    match value {
        Some(v) if ACCEPTED.contains(&v) => Reading::Number(v),
        _ => Reading::OutOfRange,
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Whether a starting number is written (keepalived's `init_file`): when
/// nothing is at the path, or always with `overwrite`.
pub fn needs_init(exists: bool, overwrite: bool) -> bool {
    overwrite || !exists
}

/// Give the file `init`'s number when [`needs_init`] says so, before its
/// tracker starts; `Ok(true)` when it was written. The write is atomic,
/// so a reader (this tracker, or a script) never sees half a number.
///
/// # Errors
/// The file's existence cannot be learned, or the write failed.
pub fn initialise(path: &Path, init: FileInit) -> anyhow::Result<bool> {
    let exists = path.try_exists()?;
    if !needs_init(exists, init.overwrite) {
        return Ok(false);
    }
    let text = format!("{}\n", init.value);
    files::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// Read `path` now, given the value that stood before.
///
/// Opens without blocking (a FIFO with no writer must not hang the
/// agent) and reads at most [`READ_MAX`] bytes.
pub fn read(path: &Path, previous: i64) -> FileState {
    let mut text = Vec::with_capacity(READ_MAX as usize);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    if let Err(e) = opened.and_then(|f| f.take(READ_MAX).read_to_end(&mut text))
    {
        let error = format!("cannot read it ({e}), so it counts as 0");
        return FileState { value: 0, error: Some(error) };
    }
    match parse(&text) {
        Reading::Number(value) => FileState { value, error: None },
        Reading::NotANumber => {
            let what = if text.is_empty() { "empty" } else { "not a number" };
            let error = format!("{what}, so it counts as 0");
            FileState { value: 0, error: Some(error) }
        }
        Reading::OutOfRange => FileState {
            value: previous,
            error: Some(format!(
                "out of range {}..={}: {previous} stands",
                ACCEPTED.start(),
                ACCEPTED.end()
            )),
        },
    }
}

/// Start tracking `spec`: the file is read at once, as keepalived reads
/// it at start, and again whenever it changes.
pub fn spawn(spec: FileSpec) -> Tracker<FileState> {
    let (tx, state) = watch::channel(read(&spec.path, 0));
    Tracker::new(state, tokio::spawn(track(spec, tx)))
}

/// Watch `spec`'s file for ever, publishing its state on `tx`.
async fn track(spec: FileSpec, tx: watch::Sender<FileState>) {
    let dir = match spec.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file = spec.path.file_name().unwrap_or(OsStr::new("")).to_owned();
    loop {
        match DirWatch::new(&dir) {
            Ok(mut w) => {
                // Read after the watch is set, so no change falls
                // between the two.
                publish(&spec, &tx);
                while w.touched(&file).await {
                    publish(&spec, &tx);
                }
            }
            Err(e) => tracing::debug!(
                file = %spec.name,
                "file {}: cannot watch {}: {e}", spec.name, dir.display()
            ),
        }
        publish(&spec, &tx);
        tokio::time::sleep(RETRY).await;
    }
}

/// Reread `spec`'s file and publish its state if it changed.
fn publish(spec: &FileSpec, tx: &watch::Sender<FileState>) {
    let name = &spec.name;
    let now = read(&spec.path, tx.borrow().value);
    tx.send_if_modified(|state| {
        if *state == now {
            return false;
        }
        match &now.error {
            Some(e) if state.error.as_ref() != Some(e) => {
                tracing::warn!(file = %name, "file {name}: {e}");
            }
            _ => {}
        }
        if state.value != now.value {
            let value = now.value;
            tracing::info!(file = %name, value, "file {name}: now {value}");
        }
        *state = now;
        true
    });
}

/// An inotify watch on one directory.
struct DirWatch {
    fd: AsyncFd<OwnedFd>,
}

impl DirWatch {
    /// What in the directory makes a file of interest worth rereading.
    const EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
        .union(WatchFlags::CREATE)
        .union(WatchFlags::DELETE)
        .union(WatchFlags::MOVED_FROM)
        .union(WatchFlags::MOVED_TO)
        .union(WatchFlags::DELETE_SELF)
        .union(WatchFlags::MOVE_SELF)
        .union(WatchFlags::ONLYDIR);

    fn new(dir: &Path) -> std::io::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(&fd, dir, Self::EVENTS)?;
        // tokio 1.54 deprecates its safe constructors for the `unsafe`
        // `AsyncFd::register`, which `unsafe_code = "forbid"` rules out.
        // What the deprecation guards against — a descriptor closed or
        // swapped under the reactor — an `OwnedFd` moved in cannot do.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Self { fd })
    }

    /// Wait until something happens to `file` in the directory: `true`;
    /// or until the watch ends (the directory deleted or moved, an
    /// error): `false`.
    async fn touched(&mut self, file: &OsStr) -> bool {
        let mut buf = [MaybeUninit::uninit(); 4096];
        loop {
            let Ok(mut ready) = self.fd.readable().await else { return false };
            let mut events = inotify::Reader::new(ready.get_inner(), &mut buf);
            let mut hit = false;
            loop {
                match events.next() {
                    Ok(e) => {
                        let flags = e.events();
                        if flags.intersects(
                            ReadFlags::DELETE_SELF
                                | ReadFlags::MOVE_SELF
                                | ReadFlags::IGNORED,
                        ) {
                            return false;
                        }
                        let name = e.file_name().map(|n| n.to_bytes());
                        hit |= flags.contains(ReadFlags::QUEUE_OVERFLOW)
                            || name == Some(file.as_bytes());
                    }
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(_) => return false,
                }
            }
            ready.clear_ready();
            if hit {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_missing_file_and_overwrites_only_when_told() {
        assert!(needs_init(false, false));
        assert!(!needs_init(true, false));
        assert!(needs_init(true, true));
        let dir = scratch("track-file-init");
        let path = dir.join("prio");
        let init = FileInit { value: -7, overwrite: false };
        assert!(initialise(&path, init).unwrap());
        assert_eq!(read(&path, 0), FileState { value: -7, error: None });
        std::fs::write(&path, "3\n").unwrap();
        assert!(!initialise(&path, init).unwrap());
        assert_eq!(read(&path, 0).value, 3, "kept without overwrite");
        let init = FileInit { value: 5, overwrite: true };
        assert!(initialise(&path, init).unwrap());
        assert_eq!(read(&path, 0).value, 5);
    }
    use crate::agent::sys::process::testing::scratch;

    #[test]
    fn weight_zero_faults_on_any_value_but_zero() {
        assert_eq!(contribution(0, 0, false), Contribution::Priority(0));
        for v in [1, -1, 7, 1 << 31] {
            let c = contribution(v, 0, false);
            assert!(matches!(c, Contribution::Fault(_)), "{v}: {c:?}");
            assert_eq!(contribution(v, 0, true), Contribution::Priority(0));
        }
        let c = contribution(0, 0, true);
        assert_eq!(c, Contribution::Fault("value 0".into()));
    }

    #[test]
    fn weights_multiply_and_clamp_and_fault_at_minus_254() {
        assert_eq!(contribution(3, 10, false), Contribution::Priority(30));
        assert_eq!(contribution(3, 10, true), Contribution::Priority(-30));
        assert_eq!(contribution(-3, -10, false), Contribution::Priority(30));
        assert_eq!(contribution(0, -10, true), Contribution::Priority(0));
        assert_eq!(contribution(1, 254, false), Contribution::Priority(253));
        assert_eq!(
            contribution(1 << 31, 254, false),
            Contribution::Priority(253)
        );
        assert_eq!(contribution(-1, 253, false), Contribution::Priority(-253));
        for (v, w, r) in
            [(-1, 254, false), (1, 254, true), (-(1 << 31), 254, false)]
        {
            let c = contribution(v, w, r);
            assert!(matches!(c, Contribution::Fault(_)), "{v} {w} {r}: {c:?}");
        }
        // keepalived's `reverse` of the most negative value still fits.
        assert_eq!(
            contribution(-(1 << 31), 1, true),
            Contribution::Priority(253)
        );
    }

    #[test]
    fn parses_as_strtol_with_base_zero() {
        use Reading::*;
        let cases: &[(&[u8], Reading)] = &[
            (b"42", Number(42)),
            (b"42\n", Number(42)),
            (b" \t\n-7 trailing words", Number(-7)),
            (b"+5", Number(5)),
            (b"0x1f", Number(31)),
            (b"0X1F\n", Number(31)),
            (b"010", Number(8)),
            (b"08", Number(0)),
            (b"0x", Number(0)),
            (b"0xg", Number(0)),
            (b"12abc", Number(12)),
            (b"3\xff\xfe", Number(3)),
            (b"", NotANumber),
            (b"   \n", NotANumber),
            (b"abc", NotANumber),
            (b"-", NotANumber),
            (b"\xff1", NotANumber),
            (b"- 1", NotANumber),
            (b"2147483648", Number(1 << 31)),
            (b"-2147483648", Number(-(1 << 31))),
            (b"2147483649", OutOfRange),
            (b"-2147483649", OutOfRange),
            (b"99999999999999999999999999", OutOfRange),
            (b"-9223372036854775808", OutOfRange),
        ];
        for (text, want) in cases {
            let text_s = String::from_utf8_lossy(text);
            assert_eq!(parse(text), *want, "{text_s:?}");
        }
    }

    #[test]
    fn reads_a_bounded_prefix_and_says_why_a_value_is_not_the_files() {
        let dir = scratch("track-file-read");
        let path = dir.join("f");
        assert_eq!(read(&path, 5).value, 0, "missing");
        assert!(read(&path, 5).error.unwrap().contains("cannot read"));
        std::fs::write(&path, "17\n").unwrap();
        assert_eq!(read(&path, 5), FileState { value: 17, error: None });
        std::fs::write(&path, "").unwrap();
        let empty = read(&path, 5);
        assert_eq!(empty.value, 0);
        assert_eq!(empty.error.as_deref(), Some("empty, so it counts as 0"));
        std::fs::write(&path, "1e99999999999").unwrap();
        assert_eq!(read(&path, 5).value, 1, "strtol stops at the e");
        std::fs::write(&path, "77777777777777").unwrap();
        let big = read(&path, 5);
        assert_eq!(big.value, 5, "out of range keeps the previous value");
        // A number beyond the first READ_MAX bytes is not read.
        let far = format!("{}9", " ".repeat(READ_MAX as usize));
        std::fs::write(&path, far).unwrap();
        assert_eq!(read(&path, 5).value, 0);
        // A megabyte of digits: only READ_MAX of them are read.
        std::fs::write(&path, "9".repeat(1 << 20)).unwrap();
        assert_eq!(read(&path, 5).value, 5);
        assert_eq!(read(&dir, 5).value, 0, "a directory");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The state once it satisfies `want`, within 5 s.
    async fn until(
        t: &mut Tracker<FileState>,
        what: &str,
        want: impl Fn(&FileState) -> bool,
    ) -> FileState {
        let wait = t.state.wait_for(|s| want(s));
        let got = tokio::time::timeout(Duration::from_secs(5), wait).await;
        got.unwrap_or_else(|_| panic!("not within 5 s: {what}"))
            .expect("task gone")
            .clone()
    }

    #[tokio::test]
    async fn follows_writes_renames_deletes_and_recreation() {
        let dir = scratch("track-file-watch");
        let path = dir.join("weight");
        std::fs::write(&path, "3\n").unwrap();
        let mut t = spawn(FileSpec { name: "w".into(), path: path.clone() });
        assert_eq!(t.state.borrow().value, 3, "read at spawn");

        // In place, as `echo 4 > file` does.
        std::fs::write(&path, "4\n").unwrap();
        until(&mut t, "an overwrite", |s| s.value == 4).await;
        // Replaced by rename, as editors and atomic writers do.
        let tmp = dir.join(".weight.tmp");
        std::fs::write(&tmp, "5\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        until(&mut t, "a rename over it", |s| s.value == 5).await;
        // Deleted: 0, with the reason.
        std::fs::remove_file(&path).unwrap();
        let gone = until(&mut t, "a delete", |s| s.value == 0).await;
        assert!(gone.error.unwrap().contains("cannot read"));
        // Re-created.
        std::fs::write(&path, "-6").unwrap();
        let back = until(&mut t, "re-creation", |s| s.value == -6).await;
        assert_eq!(back.error, None);
        // Moved away.
        std::fs::rename(&path, &tmp).unwrap();
        until(&mut t, "a move away", |s| s.value == 0).await;
        // Other files in the directory are not the tracked one.
        std::fs::write(dir.join("other"), "9").unwrap();
        std::fs::write(&path, "garbage").unwrap();
        let junk = until(&mut t, "garbage", |s| s.error.is_some()).await;
        assert_eq!(junk.value, 0);
        drop(t);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn survives_its_directory_going_and_coming_back() {
        let base = scratch("track-file-dir");
        let dir = base.join("d");
        let path = dir.join("f");
        let mut t = spawn(FileSpec { name: "f".into(), path: path.clone() });
        assert!(t.state.borrow().error.is_some(), "no directory yet");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&path, "2").unwrap();
        until(&mut t, "the directory created", |s| s.value == 2).await;
        std::fs::remove_dir_all(&dir).unwrap();
        until(&mut t, "the directory deleted", |s| s.value == 0).await;
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&path, "8").unwrap();
        until(&mut t, "the directory re-created", |s| s.value == 8).await;
        // Once the retry has watched it again, a change is noticed well
        // within the retry's period.
        tokio::time::sleep(RETRY + RETRY / 4).await;
        std::fs::write(&path, "9").unwrap();
        let started = std::time::Instant::now();
        until(&mut t, "a write after", |s| s.value == 9).await;
        assert!(started.elapsed() < RETRY / 2, "{:?}", started.elapsed());
        drop(t);
        let _ = std::fs::remove_dir_all(base);
    }
}
