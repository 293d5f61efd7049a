//! One tracked process, keepalived's `vrrp_track_process`: how many
//! running processes match a name or a command line, and whether that
//! count is a quorum — `haproxy` is running, exactly one `nginx:
//! master` is. What matches is [`Matcher`], pure over [`Proc`] records;
//! [`scan`] is the thin adapter that reads them from /proc; [`Debounce`]
//! holds back a change of verdict for keepalived's delays.
//!
//! The semantics are keepalived's (`keepalived/core/track_process.c`:
//! `check_params`, `read_procs`, `check_process`, the quorum timers;
//! the `vrrp_tprocess_*` handlers in `keepalived/vrrp/vrrp_parser.c`;
//! "VRRP track processes" in keepalived.conf(5)):
//!
//! * `process NAME` alone matches the process name, `/proc/PID/comm`
//!   (at most 15 bytes: a longer NAME never matches), exactly;
//! * with `full_command`, parameters or `param_match`, NAME must equal
//!   the command line's first word (argv\[0\]) and the parameters the
//!   rest ([`Params`]);
//! * zombies are not running, so they never count;
//! * OK while `quorum` ≤ count ≤ `quorum_max` (defaults 1 and
//!   unlimited);
//! * a change to OK stands only after `fork_delay`, a change to failed
//!   only after `terminate_delay`; one that is undone within its delay
//!   is never published (keepalived cancels the timer). The first
//!   verdict, at start, is not delayed.
//!
//! # /proc every `interval`, not the process connector
//!
//! keepalived scans /proc once and then follows the kernel's process
//! events (the netlink process connector). That needs `CAP_NET_ADMIN`,
//! a netlink socket kept in step with every fork, exec, exit and rename
//! on the host, and a rescan whenever events are lost; a scan every
//! `interval` needs none of it and is cheap enough: see "Tracked
//! processes" in BENCHMARKS.md (0.6–1 ms for one scan of 88 processes,
//! 1.5 % of a core for 10 tracked processes at 1 s on a 2-core VM). The price is latency — a
//! process that dies is noticed up to `interval` later — and a process
//! that lives less than `interval` may go unseen, which a quorum of
//! long-running daemons does not care about. (A process caught in
//! the middle of an exec shows an empty command line for a moment and
//! is counted at the next scan.) Each scan runs on tokio's
//! blocking pool: on a host with thousands of processes it takes
//! milliseconds that must not stall the VRRP loop.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::Tracker;
use tokio::sync::watch;
use tokio::time::Instant;

/// How much of `/proc/PID/stat` is read: enough for `PID (COMM) S`.
const STAT_MAX: u64 = 128;

/// A process to track, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Its name (`chk_haproxy`), in log lines and status.
    pub name: String,
    /// Which processes count.
    pub matcher: Matcher,
    /// The fewest matching processes that are OK (keepalived: 1).
    pub quorum: u32,
    /// The most matching processes that are OK (keepalived: unlimited,
    /// `u32::MAX`; 0 means OK only when none runs).
    pub quorum_max: u32,
    /// How long a change to OK must hold before it is published.
    pub fork_delay: Duration,
    /// How long a change to failed must hold before it is published.
    pub terminate_delay: Duration,
    /// From one scan of /proc to the next.
    pub interval: Duration,
}

impl ProcessSpec {
    /// Whether `count` matching processes are a quorum.
    pub fn has_quorum(&self, count: usize) -> bool {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        (self.quorum..=self.quorum_max).contains(&count)
    }
}

/// Which processes a tracked process counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The process name (`/proc/PID/comm`) is exactly this.
    Comm(String),
    /// The command line's first word is exactly `program`, and the
    /// rest matches `params`.
    Command {
        /// argv\[0\], as the process has it (`/usr/sbin/haproxy`).
        program: String,
        /// What the rest of the command line must be.
        params: Params,
    },
}

/// keepalived's `param_match`: how a command line's parameters (its
/// words after argv\[0\]) are compared with the configured ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Params {
    /// Any parameters: `full_command` without parameters.
    Any,
    /// Exactly these (none, for `param_match` without parameters): the
    /// default once parameters are given.
    Exact(Vec<String>),
    /// These first, anything after: `param_match partial`.
    Partial(Vec<String>),
    /// These first, except that the last may continue (`-f /etc/ha`
    /// matches `-f /etc/haproxy.cfg`), anything after:
    /// `param_match initial`.
    Initial(Vec<String>),
}

/// One process, as far as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Its PID.
    pub pid: u32,
    /// Its name, `/proc/PID/comm` (empty when not read).
    pub comm: Vec<u8>,
    /// Its command line, `/proc/PID/cmdline`: NUL-terminated words,
    /// perhaps cut short (empty when not read, and for kernel threads).
    pub cmdline: Vec<u8>,
}

impl Matcher {
    /// Whether `p` counts.
    pub fn matches(&self, p: &Proc) -> bool {
        match self {
            Matcher::Comm(name) => p.comm == name.as_bytes(),
            Matcher::Command { program, params } => {
                let mut words = p.cmdline.split(|&b| b == 0);
                if words.next() != Some(program.as_bytes()) {
                    return false;
                }
                // The last NUL terminates the last word; it starts none.
                let end = usize::from(p.cmdline.last() == Some(&0));
                let mut args: Vec<&[u8]> = words.collect();
                args.truncate(args.len() - end);
                params.match_args(&args)
            }
        }
    }

    /// How much of a command line [`Matcher::matches`] needs: all the
    /// configured words and one byte more, to tell an exact match from
    /// a longer command line; 0 when it matches the name instead.
    pub fn cmdline_bytes(&self) -> usize {
        match self {
            Matcher::Comm(_) => 0,
            Matcher::Command { program, params } => {
                let words = match params {
                    Params::Any => &[][..],
                    Params::Exact(w)
                    | Params::Partial(w)
                    | Params::Initial(w) => w,
                };
                program.len()
                    + 1
                    + words.iter().map(|w| w.len() + 1).sum::<usize>()
                    + 1
            }
        }
    }
}

impl Params {
    fn match_args(&self, args: &[&[u8]]) -> bool {
        let starts = |want: &[String]| {
            args.len() >= want.len()
                && want.iter().zip(args).all(|(w, a)| w.as_bytes() == *a)
        };
        match self {
            Params::Any => true,
            Params::Exact(want) => args.len() == want.len() && starts(want),
            Params::Partial(want) => starts(want),
            Params::Initial(want) => match want.split_last() {
                None => true,
                Some((last, before)) => {
                    starts(before)
                        && args
                            .get(before.len())
                            .is_some_and(|a| a.starts_with(last.as_bytes()))
                }
            },
        }
    }
}

/// How many of `procs` `matcher` counts.
pub fn count(matcher: &Matcher, procs: &[Proc]) -> usize {
    procs.iter().filter(|p| matcher.matches(p)).count()
}

/// Read the running processes from `proc` (`/proc`): each one's name,
/// unless `cmdline_bytes` is set, when it is the first that many bytes
/// of its command line instead — `matcher` needs one or the other, and
/// reading a command line may page in a swapped-out process's memory.
/// Zombies are left out. A process that exits during the scan is left
/// out too: that is normal, not an error.
pub fn scan(proc: &Path, cmdline_bytes: usize) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut procs = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let at = entry.path();
        let read = |file: &str, max: usize| {
            let mut buf = Vec::with_capacity(max);
            File::open(at.join(file))
                .and_then(|f| f.take(max as u64).read_to_end(&mut buf))
                .map(|_| buf)
                .ok()
        };
        let p = if cmdline_bytes > 0 {
            // A zombie's command line is empty, so it matches nothing.
            read("cmdline", cmdline_bytes).map(|cmdline| Proc {
                pid,
                comm: Vec::new(),
                cmdline,
            })
        } else {
            read("stat", STAT_MAX as usize)
                .and_then(|stat| running_comm(&stat))
                .map(|comm| Proc { pid, comm, cmdline: Vec::new() })
        };
        procs.extend(p);
    }
    procs
}

/// The name in `/proc/PID/stat`'s `PID (NAME) STATE …`, unless the
/// process is a zombie. The name may itself hold parentheses, so it
/// ends at the *last* `)`.
fn running_comm(stat: &[u8]) -> Option<Vec<u8>> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let state = *stat.get(close + 2)?;
    (state != b'Z' && close > open).then(|| stat[open + 1..close].to_vec())
}

/// keepalived's quorum timers as a pure machine: the published verdict,
/// and a change waiting for its delay to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    ok: bool,
    pending: Option<Instant>,
}

impl Debounce {
    /// Starting from `ok`, published at once.
    pub fn new(ok: bool) -> Self {
        Self { ok, pending: None }
    }

    /// The published verdict.
    pub fn ok(&self) -> bool {
        self.ok
    }

    /// When a change waits: the moment to look again.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
    }

    /// The verdict at `now` given the raw one (`quorum` now), a change
    /// to OK held back for `fork_delay` and to failed for
    /// `terminate_delay`. Returns the new verdict when it changed.
    pub fn observe(
        &mut self,
        now: Instant,
        quorum: bool,
        fork_delay: Duration,
        terminate_delay: Duration,
    ) -> Option<bool> {
        if quorum == self.ok {
            // The change, if one waited, was undone in time.
            self.pending = None;
            return None;
        }
        let delay = if quorum { fork_delay } else { terminate_delay };
        let due = *self.pending.get_or_insert(now + delay);
        if now < due {
            return None;
        }
        self.pending = None;
        self.ok = quorum;
        Some(quorum)
    }
}

/// What a tracked process says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    /// Whether the matching processes are a quorum, after the delays.
    pub ok: bool,
    /// How many processes matched at the last scan.
    pub count: usize,
}

/// Start tracking `spec`. /proc is scanned once before this returns,
/// as keepalived does at start, so the first state is already the
/// truth, without delay; then every `interval`.
pub fn spawn(spec: ProcessSpec) -> Tracker<ProcessState> {
    let count = count(
        &spec.matcher,
        &scan(Path::new("/proc"), spec.matcher.cmdline_bytes()),
    );
    let first = ProcessState { ok: spec.has_quorum(count), count };
    let (tx, state) = watch::channel(first.clone());
    let verdict = Debounce::new(first.ok);
    Tracker::new(state, tokio::spawn(track(spec, verdict, tx)))
}

/// Scan for `spec` for ever, publishing its state on `tx`.
async fn track(
    spec: ProcessSpec,
    mut verdict: Debounce,
    tx: watch::Sender<ProcessState>,
) {
    let name = &spec.name;
    let bytes = spec.matcher.cmdline_bytes();
    let mut next = Instant::now() + spec.interval;
    loop {
        let wake = verdict.deadline().map_or(next, |d| d.min(next));
        tokio::time::sleep_until(wake).await;
        let scanned = tokio::task::spawn_blocking(move || {
            scan(Path::new("/proc"), bytes)
        });
        // A scan cannot panic but by a bug; then there is nothing to count.
        let procs = scanned.await.unwrap_or_default();
        let now = Instant::now();
        if now >= next {
            next = now + spec.interval;
        }
        let count = count(&spec.matcher, &procs);
        let quorum = spec.has_quorum(count);
        match verdict.observe(
            now,
            quorum,
            spec.fork_delay,
            spec.terminate_delay,
        ) {
            Some(true) => tracing::info!(
                process = %name, count,
                "process {name}: quorum gained ({count} running)"
            ),
            Some(false) => tracing::warn!(
                process = %name, count,
                "process {name}: quorum lost ({count} running)"
            ),
            None => {}
        }
        let now = ProcessState { ok: verdict.ok(), count };
        tx.send_if_modified(|state| {
            let changed = *state != now;
            *state = now;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, comm: &str, argv: &[&str]) -> Proc {
        let mut cmdline = Vec::new();
        for w in argv {
            cmdline.extend_from_slice(w.as_bytes());
            cmdline.push(0);
        }
        Proc { pid, comm: comm.into(), cmdline }
    }

    fn command(program: &str, params: Params) -> Matcher {
        Matcher::Command { program: program.into(), params }
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|&s| s.to_owned()).collect()
    }

    /// A few processes, as a scan would read them (with both fields).
    fn table() -> Vec<Proc> {
        vec![
            proc(1, "systemd", &["/sbin/init", "splash"]),
            proc(2, "kthreadd", &[]),
            proc(
                10,
                "haproxy",
                &["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg"],
            ),
            proc(
                11,
                "haproxy",
                &["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg", "-D"],
            ),
            proc(12, "haproxy", &["haproxy"]),
            proc(20, "sshd", &["sshd: root@pts/0"]),
        ]
    }

    #[test]
    fn the_name_matches_comm_exactly() {
        let t = table();
        assert_eq!(count(&Matcher::Comm("haproxy".into()), &t), 3);
        assert_eq!(count(&Matcher::Comm("haprox".into()), &t), 0);
        assert_eq!(count(&Matcher::Comm("ssh".into()), &t), 0, "not pgrep");
        assert_eq!(count(&Matcher::Comm("kthreadd".into()), &t), 1);
        // argv[0] is not the name.
        assert_eq!(count(&Matcher::Comm("/usr/sbin/haproxy".into()), &t), 0);
    }

    #[test]
    fn a_command_matches_argv0_and_its_parameters() {
        let t = table();
        let any = command("/usr/sbin/haproxy", Params::Any);
        assert_eq!(count(&any, &t), 2);
        assert_eq!(count(&command("haproxy", Params::Any), &t), 1);
        let exact =
            |w: &[&str]| command("/usr/sbin/haproxy", Params::Exact(words(w)));
        assert_eq!(count(&exact(&["-f", "/etc/haproxy.cfg"]), &t), 1);
        assert_eq!(count(&exact(&["-f"]), &t), 0);
        assert_eq!(count(&exact(&[]), &t), 0);
        assert_eq!(count(&command("haproxy", Params::Exact(vec![])), &t), 1);
        let partial = |w: &[&str]| {
            command("/usr/sbin/haproxy", Params::Partial(words(w)))
        };
        assert_eq!(count(&partial(&["-f"]), &t), 2);
        assert_eq!(count(&partial(&["-f", "/etc/haproxy"]), &t), 0);
        assert_eq!(count(&partial(&[]), &t), 2);
        let initial = |w: &[&str]| {
            command("/usr/sbin/haproxy", Params::Initial(words(w)))
        };
        assert_eq!(count(&initial(&["-f", "/etc/haproxy"]), &t), 2);
        assert_eq!(count(&initial(&["-", "/etc"]), &t), 0);
        assert_eq!(count(&initial(&["-f", "/etc/haproxy.cfg", "-"]), &t), 1);
        // A rewritten command line is one word, spaces and all.
        assert_eq!(count(&command("sshd: root@pts/0", Params::Any), &t), 1);
        assert_eq!(count(&command("sshd:", Params::Any), &t), 0);
    }

    #[test]
    fn a_command_line_cut_at_its_bound_still_decides() {
        let exact = command("/bin/x", Params::Exact(words(&["a"])));
        let n = exact.cmdline_bytes();
        assert_eq!(n, "/bin/x\0a\0".len() + 1);
        let cut = |argv: &[&str]| {
            let mut p = proc(1, "x", argv);
            p.cmdline.truncate(n);
            p
        };
        assert!(exact.matches(&cut(&["/bin/x", "a"])));
        assert!(!exact.matches(&cut(&["/bin/x", "a", "b"])));
        assert!(!exact.matches(&cut(&["/bin/x", "ab"])));
        let partial = command("/bin/x", Params::Partial(words(&["a"])));
        assert!(partial.matches(&cut(&["/bin/x", "a", "bcdefgh"])));
        assert_eq!(Matcher::Comm("x".into()).cmdline_bytes(), 0);
    }

    #[test]
    fn quorum_is_a_range() {
        let spec = |quorum, quorum_max| ProcessSpec {
            name: "p".into(),
            matcher: Matcher::Comm("p".into()),
            quorum,
            quorum_max,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
            interval: Duration::from_secs(1),
        };
        let default = spec(1, u32::MAX);
        assert!(!default.has_quorum(0));
        assert!(default.has_quorum(1) && default.has_quorum(1000));
        let two_to_three = spec(2, 3);
        let ok: Vec<bool> =
            (0..5).map(|n| two_to_three.has_quorum(n)).collect();
        assert_eq!(ok, [false, false, true, true, false]);
        let none = spec(0, 0);
        assert!(none.has_quorum(0) && !none.has_quorum(1));
    }

    #[test]
    fn zombies_and_odd_names_in_stat() {
        assert_eq!(running_comm(b"12 (sleep) S 1 12"), Some(b"sleep".to_vec()));
        assert_eq!(running_comm(b"12 (a) b) R 1"), Some(b"a) b".to_vec()));
        assert_eq!(running_comm(b"12 (sleep) Z 1 12"), None);
        assert_eq!(running_comm(b"12 (sleep"), None);
        assert_eq!(running_comm(b""), None);
    }

    #[test]
    fn changes_wait_for_their_delay_and_undone_ones_never_show() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (fork, term) =
            (Duration::from_millis(100), Duration::from_millis(300));
        let mut d = Debounce::new(false);
        assert_eq!(d.observe(at(0), true, fork, term), None);
        assert_eq!(d.deadline(), Some(at(100)));
        assert_eq!(d.observe(at(50), true, fork, term), None);
        assert_eq!(d.observe(at(100), true, fork, term), Some(true));
        assert!(d.ok() && d.deadline().is_none());
        // Lost, then back within terminate_delay: never published.
        assert_eq!(d.observe(at(200), false, fork, term), None);
        assert_eq!(d.observe(at(400), true, fork, term), None);
        assert_eq!(d.deadline(), None);
        // Lost for good: after terminate_delay from when it was lost.
        assert_eq!(d.observe(at(500), false, fork, term), None);
        assert_eq!(d.observe(at(799), false, fork, term), None);
        assert_eq!(d.observe(at(800), false, fork, term), Some(false));
        // No delay: at once.
        let zero = Duration::ZERO;
        assert_eq!(d.observe(at(900), true, zero, zero), Some(true));
    }

    /// A `sleep 30` whose argv[0] no other process has, once its
    /// command line shows.
    fn distinctive_sleep(tag: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg0(tag)
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        // spawn() returns once the exec is under way, but the new
        // command line is set a moment later: until then it is empty.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..500 {
            if std::fs::read(&cmdline).is_ok_and(|c| !c.is_empty()) {
                return child;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmdline} still empty after 5 s");
    }

    /// The state once it satisfies `want`, within 5 s.
    async fn until(
        t: &mut Tracker<ProcessState>,
        what: &str,
        want: impl Fn(&ProcessState) -> bool,
    ) -> ProcessState {
        let wait = t.state.wait_for(|s| want(s));
        let got = tokio::time::timeout(Duration::from_secs(5), wait).await;
        got.unwrap_or_else(|_| panic!("not within 5 s: {what}"))
            .expect("task gone")
            .clone()
    }

    #[tokio::test]
    async fn counts_real_processes_as_they_come_and_go() {
        let tag = format!("lbdeploy-track-{}", std::process::id());
        let mut first = distinctive_sleep(&tag);
        let spec = ProcessSpec {
            name: "sleeper".into(),
            matcher: command(&tag, Params::Exact(words(&["30"]))),
            quorum: 2,
            quorum_max: 2,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::from_millis(300),
            interval: Duration::from_millis(50),
        };
        // The first scan, before spawn() returns, sees it.
        let mut t = spawn(spec);
        let first_state = t.state.borrow().clone();
        assert_eq!(first_state, ProcessState { ok: false, count: 1 });
        let mut second = distinctive_sleep(&tag);
        let both = until(&mut t, "two sleepers", |s| s.count == 2).await;
        assert!(both.ok, "{both:?}");
        second.kill().unwrap();
        second.wait().unwrap();
        let lost = std::time::Instant::now();
        let one = until(&mut t, "one left", |s| s.count == 1).await;
        assert!(one.ok, "terminate_delay holds the verdict: {one:?}");
        until(&mut t, "quorum lost", |s| !s.ok).await;
        let took = lost.elapsed();
        assert!(took >= Duration::from_millis(250), "lost after {took:?}");
        first.kill().unwrap();
        first.wait().unwrap();
        until(&mut t, "none", |s| s.count == 0).await;
    }
}
