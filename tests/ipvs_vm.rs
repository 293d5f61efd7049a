//! The IPVS back end against a real IPVS: this machine's kernel has none,
//! so Debian's kernel boots in `qemu-system-x86_64 -accel tcg` with an
//! initramfs (tests/vm/build.sh) whose /init (tests/vm/init) runs the
//! scenario and prints each result after an `@@ NAME` marker.
//!
//! Scenario: `ipvs-sync` of tests/vm/scenario/one.yml into an empty table;
//! `ipvsadm -Ln` and lbdeploy's dump must both show exactly that table.
//! Then a service and a destination are added by hand with ipvsadm, and
//! two.yml (a changed weight, a removed destination, a removed service, a
//! changed scheduler and persistence) is reconciled: the result is two.yml
//! plus what was added by hand, which is reported, not removed. A third
//! sync of two.yml changes nothing.
//!
//! Then real traffic (tests/vm/scenario/three.yml): inside the VM, client,
//! rs1 and rs2 are network namespaces on a bridge whose other end is the
//! VM's root namespace, the director. Synced with `ipvs-sync`, 20 HTTP
//! requests through the VIP split 10/10 (rr) and IPVS counts packets in
//! but none out (Direct Routing: the answers bypass it). Then the director
//! agent itself runs on the same configuration: it becomes VRRP master
//! alone and adds the VIP, traffic splits again, rs1's web server stops
//! and the health check takes it out within the bound (then every
//! request goes to rs2), and it comes back within `delay_loop` + slack;
//! its status counts each real server's connections, packets and bytes;
//! `agent drain` keeps rs1 at weight 0 (every new request to rs2) and
//! `agent undrain` gives its weight back.
//! Last, the fail-safe (issue #16): the agent under its own supervisor
//! (`agent start`, as on a host without systemd), `kill -9` of the agent:
//! within 1 s the VIP is gone, then its IPVS services, both before the
//! supervisor restarts it, and traffic through the VIP works again.
//! Then continuity across a failover (issue #20): a second director in
//! namespace d2 (tests/vm/scenario/five.yml beside four.yml), both with
//! `mh` on port 8080; a stream from the client through the first goes on
//! through d2 after the first stops, to the same real server. The same
//! with `rr` and IPVS's sync daemon (`ipvs_sync`, nine.yml and ten.yml):
//! d2 holds the stream's entry before the failover and the stream goes
//! on; without the setting it stalls (see [`sync_daemon`]).
//! Then IPv6 (issue #21, six.yml): the agent holds an IPv6 VIP by VRRPv3
//! and IPVS forwards 20 requests to the real servers' IPv6 addresses.
//! Last, a persistent port group (issue #21, seven.yml): ports 8080 and
//! 8443 as one fwmark service and the agent's mark table; one client stays
//! on one real server on both ports where two services of their own
//! (eight.yml, the control) spread it; see [`port_groups`].
//!
//! Needs root (apt-get download, and the static binary's build) and qemu;
//! skips with a message without them. The kernel package is cached under
//! the target directory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole VM run: boot (~10 s under TCG) plus the scenario, with a wide
/// margin for a loaded machine. The VM is killed past it.
const VM_BOUND: Duration = Duration::from_secs(120);

/// The table after one.yml, in `ipvs-dump`'s words.
const ONE: &str = "\
TCP 10.0.0.100:80 wrr
  -> 10.0.1.1:80 Route 1
  -> 10.0.1.2:80 Route 3
  -> 10.0.1.3:80 Route 1
TCP [2001:db8::100]:443 sh
  -> [2001:db8::1]:443 Route 2
  -> [2001:db8::2]:443 Route 1
UDP 10.0.0.100:53 rr persistent 60
  -> 10.0.1.1:53 Route 1
  -> 10.0.1.2:53 Route 1
";

/// The table after two.yml, with the service and destination added by
/// hand still there.
const TWO: &str = "\
TCP 10.0.0.100:80 wrr
  -> 10.0.1.1:80 Route 1
  -> 10.0.1.2:80 Route 5
  -> 10.0.1.99:80 Route 1
TCP 10.9.9.9:8080 wlc
  -> 10.9.9.10:8080 Route 2
TCP [2001:db8::100]:443 rr persistent 300
  -> [2001:db8::1]:443 Route 2
  -> [2001:db8::2]:443 Route 1
";

/// Health-check bound of three.yml's TCP checks (issue #8): `delay_loop +
/// (retry + 1) × connect_timeout + retry × delay_before_retry`, plus one
/// delay_loop of slack; retry 0, 1 s each.
const CHECK_BOUND_S: f64 = 1.0 + 1.0 + 0.0 + 1.0;

/// How soon after the supervisor sees its agent die (`kill -9`) the VM
/// has no VIP of it (issue #16: within 1 s), from the supervisor's own
/// log: the exit's timestamp to the VIP's cleanup line. The in-VM poll
/// (`wait_for`) also sees it all released, but each of its rounds spawns
/// `ip`, `ipvsadm`, `awk` and `sleep`, which under TCG on a loaded
/// machine cost hundreds of milliseconds: too coarse a clock for 1 s.
/// The IPVS services go next, and must be gone before the restart (the
/// supervisor cleans up, then waits); their time is reported, not bound:
/// under TCG sharing two cores with the rest of the suite, one
/// generic-netlink round trip alone has taken hundreds of milliseconds.
const VIP_RELEASE_BOUND_S: f64 = 1.0;

/// Say why the test did not run, on the stderr handle (libtest captures
/// `eprintln!` of passing tests; a skip must be visible).
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED ipvs_vm: {why}");
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join(program).is_file())
    })
}

/// Boot the VM and return its serial output.
fn run_vm(dir: &Path) -> String {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "768", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(dir.join("vmlinuz"))
        .arg("-initrd")
        .arg(dir.join("initrd"))
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        String::from_utf8_lossy(&out).replace('\r', "")
    });
    let deadline = Instant::now() + VM_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = reader.join().unwrap();
    assert!(
        status.is_some(),
        "the VM did not power off within {VM_BOUND:?}; its console:\n{out}"
    );
    out
}

/// The `@@ NAME` sections of the console.
fn sections(console: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in console.lines() {
        if line.starts_with("## ") {
            continue; // a timing line of /init
        }
        if let Some(name) = line.strip_prefix("@@ ") {
            if let Some((n, body)) = current.take() {
                out.insert(n, body);
            }
            current = Some((name.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((n, body)) = current {
        out.insert(n, body);
    }
    out
}

/// A listing as a sorted list of lines, each destination prefixed by its
/// service, whitespace collapsed: the same for lbdeploy's dump and for
/// `ipvsadm -Ln` (whose destination lines also carry connection counts
/// and whose headers are skipped).
fn flatten(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut service = String::new();
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["->", "RemoteAddress:Port", ..] => {}
            ["->", addr, fwd, weight, ..] => {
                out.push(format!("{service} -> {addr} {fwd} {weight}"));
            }
            [proto, rest @ ..]
                if ["TCP", "UDP", "SCTP", "FWM"].contains(proto) =>
            {
                service = format!("{proto} {}", rest.join(" "));
                out.push(service.clone());
            }
            _ => {}
        }
    }
    out.sort();
    out
}

#[test]
fn ipvs_in_a_vm() {
    if !rustix::process::geteuid().is_root() {
        return skip("needs root (apt-get download)");
    }
    if !on_path("qemu-system-x86_64") {
        return skip(
            "qemu-system-x86_64 is not installed (.ci/run installs it)",
        );
    }
    let started = Instant::now();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ipvs-vm");
    let build = Command::new("tests/vm/build.sh")
        .arg(&dir)
        .arg(env!("CARGO_BIN_EXE_lbdeploy"))
        .status()
        .expect("running tests/vm/build.sh");
    assert!(build.success(), "tests/vm/build.sh failed");
    let built = started.elapsed();
    let console = run_vm(&dir);
    // Kept for a failure's post-mortem: the whole serial console.
    let _ = std::fs::write(dir.join("console.txt"), &console);
    {
        let _ = writeln!(
            std::io::stderr(),
            "ipvs_vm: initramfs built in {built:.1?}, whole test {:.1?}",
            started.elapsed()
        );
    }
    for line in console.lines().filter(|l| l.starts_with("## ")) {
        let _ = writeln!(std::io::stderr(), "ipvs_vm: {line}");
    }
    let s = sections(&console);
    let get = |name: &str| -> &str {
        s.get(name).map(String::as_str).unwrap_or_else(|| {
            panic!("no `@@ {name}` in the VM's console:\n{console}")
        })
    };
    assert!(s.contains_key("end"), "the scenario did not finish:\n{console}");
    assert!(
        get("modules").contains("IP Virtual Server version"),
        "IPVS did not load:\n{}",
        get("modules")
    );
    for step in ["one", "two", "again"] {
        assert_eq!(
            get(&format!("{step}.rc")).trim(),
            "0",
            "ipvs-sync ({step}) failed:\n{}",
            get(&format!("{step}.log"))
        );
    }
    // The first table, as lbdeploy and ipvsadm each see it.
    assert_eq!(get("one.dump"), ONE);
    assert_eq!(get("one.ipvs-dump"), ONE);
    assert_eq!(flatten(get("one.ipvsadm")), flatten(ONE));
    // The second: every kind of change made, the hand-made entries kept
    // and reported.
    assert_eq!(get("two.dump"), TWO);
    assert_eq!(flatten(get("two.ipvsadm")), flatten(TWO));
    let log = get("two.log");
    for line in [
        "ipvs: update service TCP [2001:db8::100]:443 rr",
        "ipvs: delete TCP 10.0.0.100:80 -> 10.0.1.3:80",
        "ipvs: update TCP 10.0.0.100:80 -> 10.0.1.2:80 Route 5",
        "ipvs: delete service UDP 10.0.0.100:53",
        "ipvs: left alone (not lbdeploy's): destination TCP 10.0.0.100:80 -> 10.0.1.99:80",
        "ipvs: left alone (not lbdeploy's): service TCP 10.9.9.9:8080",
    ] {
        assert!(log.contains(line), "`{line}` not in the log:\n{log}");
    }
    assert_eq!(log.lines().count(), 6, "unexpected changes:\n{log}");
    // In sync: nothing to do the second time.
    assert_eq!(get("again.dump"), TWO);
    assert!(
        !get("again.log").contains("ipvs: add")
            && !get("again.log").contains("ipvs: update")
            && !get("again.log").contains("ipvs: delete"),
        "a second reconcile changed something:\n{}",
        get("again.log")
    );
    traffic(&get);
}

/// `uniq -c` output as (answer, count) pairs.
fn answers(counted: &str) -> BTreeMap<String, u32> {
    counted
        .lines()
        .filter_map(|l| {
            let (n, who) = l.trim().split_once(' ')?;
            Some((who.trim().to_owned(), n.parse().ok()?))
        })
        .collect()
}

/// A `wait_for` result: seconds, or "timeout".
fn waited(out: &str) -> f64 {
    out.trim().parse().unwrap_or(f64::INFINITY)
}

/// The traffic part of the scenario (see the module's doc).
fn traffic<'a>(get: &impl Fn(&str) -> &'a str) {
    let split =
        BTreeMap::from([("rs1".to_owned(), 10), ("rs2".to_owned(), 10)]);
    assert_eq!(get("three.rc").trim(), "0", "{}", get("three.log"));
    assert_eq!(answers(get("three.traffic")), split, "via ipvs-sync");
    // `ipvsadm -Ln --stats`: Conns InPkts OutPkts InBytes OutBytes.
    let stats = get("three.stats");
    let service = stats
        .lines()
        .find(|l| l.starts_with("TCP") && l.contains("10.0.5.100:80"))
        .unwrap_or_else(|| panic!("no VIP service in:\n{stats}"));
    let n: Vec<&str> = service.split_whitespace().collect();
    // The kernel folds its per-CPU counters in every 2 s; /init waits for
    // them. What is there is a lower bound, but never an answer counted.
    assert!(
        waited(get("three.counted")) <= 5.0,
        "no counters: {}",
        get("three.stats")
    );
    assert!(n[2] != "0" && n[3] != "0", "nothing in: {service}");
    assert_eq!(
        (n[4], n[6]),
        ("0", "0"),
        "DR sends no answer back through the director: {service}"
    );

    let log = get("agent.log");
    assert!(waited(get("agent.master")) < 10.0, "no VIP from VRRP:\n{log}");
    assert_eq!(answers(get("agent.traffic")), split, "via the agent\n{log}");
    counted_by_the_agent(get);
    let down = waited(get("agent.down"));
    let _ = writeln!(
        std::io::stderr(),
        "ipvs_vm: rs1 out of IPVS {down} s after its web server stopped"
    );
    assert!(down <= CHECK_BOUND_S, "rs1 out after {down} s:\n{log}");
    assert_eq!(
        answers(get("agent.down.traffic")),
        BTreeMap::from([("rs2".to_owned(), 10)]),
        "with rs1 down\n{log}"
    );
    // Back after rise (1) successes, the next delay_loop, plus slack.
    let up = waited(get("agent.up"));
    assert!(up <= 2.0, "rs1 back after {up} s:\n{log}");
    assert_eq!(answers(get("agent.up.traffic")), split, "rs1 back\n{log}");
    drained(get);
    failsafe(get);
    continuity(get);
    sync_daemon(get);
    ipv6(get);
    port_groups(get);
}

/// What the agent's status says IPVS counted of each real server (issue
/// #19), read again after its own requests: each took `ipvs-sync`'s 10
/// connections and the agent's 10 (the agent kept the destinations it
/// found), each with at least three packets in of at least 40 bytes, none
/// open any more and their entries still there (closing ones linger for
/// minutes).
fn counted_by_the_agent<'a>(get: &impl Fn(&str) -> &'a str) {
    let status = get("agent.status");
    assert!(waited(get("agent.counted")) <= 10.0, "nothing counted: {status}");
    let status: serde_json::Value = serde_json::from_str(status.trim())
        .unwrap_or_else(|e| panic!("{e}: {status}"));
    let web = &status["details"]["forwarding"]["traffic"]["web"];
    for rs in ["10.0.5.11", "10.0.5.12"] {
        let t = &web[rs];
        let n = |field: &str| {
            t[field].as_u64().unwrap_or_else(|| panic!("no {field}: {t}"))
        };
        assert!(n("connections") >= 20, "{rs}: {t}");
        assert!(n("packets") >= 3 * n("connections"), "{rs}: {t}");
        assert!(n("bytes") >= 40 * n("packets"), "{rs}: {t}");
        assert_eq!(n("active_connections"), 0, "{rs}: {t}");
        assert!(n("inactive_connections") >= 10, "{rs}: {t}");
    }
}

/// `agent drain` of rs1 (issue #19): kept in IPVS at weight 0, every new
/// connection to rs2; `agent undrain` gives its weight back, each within
/// a reconcile of the agent's reload.
fn drained<'a>(get: &impl Fn(&str) -> &'a str) {
    assert!(
        get("agent.drain").contains("10.0.5.11: drained"),
        "{}",
        get("agent.drain")
    );
    assert!(waited(get("agent.drain.applied")) <= 5.0, "not drained");
    let table = get("agent.drain.ipvsadm");
    assert!(
        table.contains("-> 10.0.5.11:80")
            && table.lines().any(|l| {
                l.contains("10.0.5.11:80")
                    && l.split_whitespace().nth(3) == Some("0")
            }),
        "rs1 not kept at weight 0:\n{table}"
    );
    assert_eq!(
        answers(get("agent.drain.traffic")),
        BTreeMap::from([("rs2".to_owned(), 10)]),
        "with rs1 drained"
    );
    assert!(
        get("agent.undrain").contains("back in service"),
        "{}",
        get("agent.undrain")
    );
    assert!(waited(get("agent.undrain.applied")) <= 5.0, "not back");
    let table = get("agent.undrain.ipvsadm");
    assert!(
        table.lines().any(|l| {
            l.contains("10.0.5.11:80")
                && l.split_whitespace().nth(3) == Some("1")
        }),
        "rs1's weight not back:\n{table}"
    );
}

/// Seconds from the supervisor's first "the agent exited" line to the
/// first line after it that contains `what`, by their `ts=` stamps.
fn after_exit(log: &str, what: &str) -> Option<f64> {
    let stamp = |line: &str| {
        let ts = line.strip_prefix("ts=")?.split(' ').next()?;
        humantime::parse_rfc3339(ts).ok()
    };
    let mut lines = log.lines().skip_while(|l| !l.contains("the agent exited"));
    let exited = stamp(lines.next()?)?;
    let then = stamp(lines.find(|l| l.contains(what))?)?;
    Some(then.duration_since(exited).ok()?.as_secs_f64())
}

/// The fail-safe part (issue #16): the supervised agent, killed with
/// `kill -9`, leaves no VIP within [`VIP_RELEASE_BOUND_S`] and none of
/// the IPVS services its record lists by the supervisor's restart, and
/// is back, forwarding, after it.
fn failsafe<'a>(get: &impl Fn(&str) -> &'a str) {
    let log = get("failsafe.log");
    assert_eq!(
        get("failsafe.start").lines().next(),
        Some("0"),
        "agent start failed:\n{}",
        get("failsafe.start")
    );
    assert!(waited(get("failsafe.master")) < 10.0, "no VIP:\n{log}");
    let four = BTreeMap::from([("rs1".to_owned(), 2), ("rs2".to_owned(), 2)]);
    assert_eq!(answers(get("failsafe.traffic")), four, "supervised\n{log}");
    let owned = get("failsafe.owned");
    assert!(owned.contains("10.0.5.100"), "the record: {owned}");
    let polled = waited(get("failsafe.released"));
    assert!(polled.is_finite(), "still held 5 s after kill -9:\n{log}");
    let since_exit = |what: &str| {
        after_exit(log, what)
            .unwrap_or_else(|| panic!("no `{what}` after the exit:\n{log}"))
    };
    let vip = since_exit("cleanup: removed VIP 10.0.5.100");
    let ipvs = since_exit("cleanup: ipvs: delete service TCP 10.0.5.100:80");
    let restart = since_exit("started the agent");
    let _ = writeln!(
        std::io::stderr(),
        "ipvs_vm: after the agent's death, its VIP gone in {vip:.3} s, its \
         IPVS service in {ipvs:.3} s, restarted at {restart:.3} s (the \
         supervisor's log; the in-VM poll saw all gone after {polled} s)"
    );
    assert!(
        vip <= VIP_RELEASE_BOUND_S,
        "the VIP still held {vip} s after the agent's death:\n{log}"
    );
    assert!(ipvs < restart, "IPVS service left at the restart:\n{log}");
    let table = get("failsafe.ipvsadm");
    assert!(!table.contains("10.0.5.100"), "IPVS after kill -9:\n{table}");
    let back = waited(get("failsafe.back"));
    let _ = writeln!(std::io::stderr(), "ipvs_vm: the VIP back after {back} s");
    assert!(back < 15.0, "the agent did not come back:\n{log}");
    let split = BTreeMap::from([("rs1".to_owned(), 5), ("rs2".to_owned(), 5)]);
    assert_eq!(answers(get("failsafe.back.traffic")), split, "back\n{log}");
}

/// Continuity across a failover (issue #20): a stream that began through
/// d1 goes on through d2, which never saw its SYN: both schedule with
/// `mh`, so d2 picks the same real server, and with `sloppy_tcp` (set by
/// each agent) IPVS schedules the stream's next packet, an ACK. Without
/// it d2's own stack, which holds the VIP, answers that ACK with a reset;
/// without any forwarding the real server stalls after its congestion
/// window (ten segments), so more than 20 lines in 2 s is the proof.
fn continuity<'a>(get: &impl Fn(&str) -> &'a str) {
    let log = get("continuity.log");
    assert!(waited(get("continuity.master")) < 10.0, "no VIP on d1:\n{log}");
    // rs1, then rs2 in d1's table (its health checks passed).
    let checked = get("continuity.checked");
    assert!(checked.lines().all(|l| waited(l).is_finite()), "{log}");
    assert_eq!(
        get("continuity.sloppy").split_whitespace().collect::<Vec<_>>(),
        ["1", "1"],
        "sloppy_tcp on d1 and d2:\n{log}"
    );
    assert!(waited(get("continuity.streaming")).is_finite(), "{log}");
    // d1 resigns with priority 0: d2 is master after its skew time (under
    // 0.1 s at these adverts), well inside the wait.
    let takeover = waited(get("continuity.takeover"));
    assert!(takeover < 5.0, "d2 did not take the VIP:\n{log}");
    let counts: Vec<u32> = get("continuity.after")
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [before, after] = counts[..] else {
        panic!("continuity.after: {}", get("continuity.after"))
    };
    let _ = writeln!(
        std::io::stderr(),
        "ipvs_vm: continuity: d2 took the VIP after {takeover} s; the \
         stream had {before} lines, 2 s later {after}"
    );
    assert!(
        after >= before + 20,
        "the stream stalled after the failover ({before} -> {after} \
         lines):\n{}\n{log}",
        get("continuity.d2conns")
    );
    let later: u32 = get("continuity.later").trim().parse().unwrap_or(0);
    assert!(later > after, "the stream ended after {after} lines:\n{log}");
    // One real server from the first line to the last.
    assert_eq!(
        get("continuity.servers").lines().count(),
        1,
        "the stream changed real server:\n{}",
        get("continuity.servers")
    );
    let conns = get("continuity.d2conns");
    assert!(
        conns.lines().any(|l| {
            l.contains("ESTABLISHED") && l.contains("10.0.5.100:8080")
        }),
        "d2 forwards no established connection:\n{conns}"
    );
}

/// One failover run of the sync daemon's part: whether d2 took the VIP,
/// and the stream's lines when it did and 2 s later.
fn failover_counts<'a>(
    get: &impl Fn(&str) -> &'a str,
    name: &str,
) -> (u32, u32) {
    let log = get(&format!("{name}.log"));
    assert!(waited(get(&format!("{name}.master"))) < 10.0, "no VIP:\n{log}");
    let checked = get(&format!("{name}.checked"));
    assert!(checked.lines().all(|l| waited(l).is_finite()), "{log}");
    assert!(waited(get(&format!("{name}.streaming"))).is_finite(), "{log}");
    let takeover = waited(get(&format!("{name}.takeover")));
    assert!(takeover < 5.0, "{name}: d2 did not take the VIP:\n{log}");
    let counts: Vec<u32> = get(&format!("{name}.after"))
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [before, after] = counts[..] else {
        panic!("{name}.after: {}", get(&format!("{name}.after")))
    };
    (before, after)
}

/// IPVS's sync daemon (issue #20, `ipvs_sync`): with `rr`, which picks
/// afresh on d2, and `sloppy_tcp` off, a stream through d1 goes on through
/// d2 only because d2 holds its connection entry, copied by d1's master
/// daemon to d2's backup daemon before the failover; the same run without
/// `ipvs_sync` (the control) stalls. The daemons follow VRRP (d1 master
/// and d2 backup, then d2 master), stop with d1's agent, and `agent
/// cleanup` stops d2's after its agent was killed.
fn sync_daemon<'a>(get: &impl Fn(&str) -> &'a str) {
    let (before, after) = failover_counts(get, "nosync");
    assert!(
        after < before + 5,
        "without ipvs_sync the stream went on ({before} -> {after} lines): \
         the control cannot tell\n{}",
        get("nosync.log")
    );
    let log = get("sync.log");
    let copied = waited(get("sync.copied"));
    assert!(
        copied.is_finite(),
        "d2 never held the stream's entry:\n{}\n{log}",
        get("sync.d2conns.before")
    );
    let daemons = get("sync.daemons");
    assert!(
        daemons.contains("d1: master sync daemon (mcast=br0, syncid=52")
            && daemons
                .contains("d2: backup sync daemon (mcast=eth0, syncid=52"),
        "{daemons}\n{log}"
    );
    let (s_before, s_after) = failover_counts(get, "sync");
    let _ = writeln!(
        std::io::stderr(),
        "ipvs_vm: sync daemon: d2 held the entry {copied} s after the \
         stream began flowing; the stream had {s_before} lines at the \
         takeover, 2 s later {s_after} (without ipvs_sync: {before} -> \
         {after})"
    );
    assert!(
        s_after >= s_before + 20,
        "the stream stalled after the failover with ipvs_sync ({s_before} \
         -> {s_after} lines):\n{}\n{log}",
        get("sync.d2conns.before")
    );
    assert_eq!(
        get("sync.servers").lines().count(),
        1,
        "the stream changed real server:\n{}",
        get("sync.servers")
    );
    let d2 = get("sync.daemons.d2");
    assert!(
        d2.contains("d2: master sync daemon (mcast=eth0, syncid=52")
            && !d2.contains("d2: backup"),
        "d2 took over: its master daemon, not its backup one:\n{d2}\n{log}"
    );
    assert!(
        !d2.contains("d1: master") && !d2.contains("d1: backup"),
        "d1's agent stopped, its daemon did not:\n{d2}\n{log}"
    );
    let stopped = get("sync.daemons.stopped");
    assert!(
        !stopped.contains("sync daemon"),
        "d2's agent died and `agent cleanup` ran, its daemon is still \
         there:\n{stopped}"
    );
}

/// IPv6 through IPVS (issue #21): the agent holds an IPv6 VIP by VRRPv3
/// and forwards to real servers by their IPv6 addresses, round robin.
fn ipv6<'a>(get: &impl Fn(&str) -> &'a str) {
    let log = get("six.log");
    // The service added by hand is logged when first seen, not at every
    // sync (the agent syncs at least each time a check changes its mind).
    let hand_made = "left alone (not lbdeploy's): service TCP 10.9.9.9:8080";
    assert_eq!(log.matches(hand_made).count(), 1, "{log}");
    assert!(waited(get("six.master")) < 15.0, "no IPv6 VIP:\n{log}");
    let checked = get("six.checked");
    assert!(
        checked.lines().all(|l| waited(l).is_finite()),
        "{}\n{log}",
        get("six.ipvsadm")
    );
    let split =
        BTreeMap::from([("rs1".to_owned(), 10), ("rs2".to_owned(), 10)]);
    assert_eq!(
        answers(get("six.traffic")),
        split,
        "{}\n{log}",
        get("six.ipvsadm")
    );
}

/// `uniq -c` output of `ask` in /init ("N PORT NAME") as
/// (port, name) → count.
fn answers_by_port(counted: &str) -> BTreeMap<(String, String), u32> {
    counted
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            let port = words.next()?.to_owned();
            let who = words.next()?.to_owned();
            Some(((port, who), n))
        })
        .collect()
}

/// A persistent port group on IPVS (issue #21): seven.yml's ports 8080
/// and 8443 are one fwmark service (in lbdeploy's mark range, with both
/// real servers), and the agent's `table inet lbdeploy_marks` gives
/// their packets that mark. One client's 10 requests, alternating
/// ports, all reach one real server: one persistence template for both
/// ports. The control (eight.yml: two services of their own, round
/// robin, no persistence) sends the same requests to both real servers
/// on each port, so the assertion can fail. The table deleted by hand is
/// back within a reconcile; the status counts the group's connections
/// per real server; after `agent stop` neither the service nor the table
/// is left.
fn port_groups<'a>(get: &impl Fn(&str) -> &'a str) {
    let log = get("groups.log");
    let serving = get("groups.serving");
    assert!(serving.lines().all(|l| waited(l).is_finite()), "no 8443");
    // The control: each port's requests on both real servers.
    assert_eq!(
        get("groups.control.rc").trim(),
        "0",
        "{}",
        get("groups.control.log")
    );
    let control = answers_by_port(get("groups.control.traffic"));
    assert_eq!(control.values().sum::<u32>(), 10, "control: {control:?}");
    for port in ["8080", "8443"] {
        for rs in ["rs1", "rs2"] {
            let n = control.get(&(port.to_owned(), rs.to_owned()));
            assert!(
                n.is_some_and(|&n| n >= 2),
                "control: {rs} not answering {port}: {control:?}"
            );
            assert!(!control.contains_key(&(port.to_owned(), "failed".into())));
        }
    }
    assert_eq!(
        get("groups.start").lines().next(),
        Some("0"),
        "agent start failed:\n{}",
        get("groups.start")
    );
    assert!(waited(get("groups.master")) < 10.0, "no VIP:\n{log}");
    let table = get("groups.ipvsadm");
    assert!(
        waited(get("groups.ready")).is_finite(),
        "no FWM service with both real servers:\n{table}\n{log}"
    );
    // (1) One fwmark service with both real servers, persistent, its
    // mark in lbdeploy's range; the table marks the group's packets with
    // the same number.
    let flat = flatten(table);
    let fwm = flat
        .iter()
        .find(|l| l.starts_with("FWM ") && !l.contains("->"))
        .unwrap_or_else(|| panic!("no FWM service:\n{table}"));
    let mark: u32 = fwm.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (0x6c62_0000..0x6c62_1000).contains(&mark),
        "mark {mark:#x} outside lbdeploy's range"
    );
    assert_eq!(*fwm, format!("FWM {mark} rr persistent 300"), "{table}");
    for rs in ["10.0.5.11", "10.0.5.12"] {
        let dest = format!("{fwm} -> {rs}:8080 Route 1");
        assert!(flat.contains(&dest), "no `{dest}`:\n{table}");
    }
    assert!(
        !table.contains("TCP  10.0.5.100"),
        "a per-port service besides the group:\n{table}"
    );
    let nft = get("groups.nft");
    let rule = format!(
        "ip daddr 10.0.5.100 tcp dport {{ 8080, 8443 }} meta mark set \
         {mark:#x}"
    );
    assert!(nft.contains(&rule), "no `{rule}` in the table:\n{nft}");
    assert!(nft.contains("hook prerouting priority mangle"), "{nft}");
    // (2) One real server for the client on both ports, 5 answers each.
    let seen = answers_by_port(get("groups.traffic"));
    assert_eq!(seen.values().sum::<u32>(), 10, "{seen:?}");
    let servers: std::collections::BTreeSet<&str> =
        seen.keys().map(|(_, who)| who.as_str()).collect();
    assert_eq!(servers.len(), 1, "the client moved: {seen:?}\n{log}");
    let server = *servers.first().unwrap();
    assert!(server.starts_with("rs"), "{seen:?}");
    for port in ["8080", "8443"] {
        assert_eq!(
            seen.get(&(port.to_owned(), server.to_owned())),
            Some(&5),
            "{seen:?}"
        );
    }
    // Deleted by hand, the table is loaded again at the next reconcile.
    let repaired = waited(get("groups.repaired"));
    assert!(repaired <= 10.0, "the table not repaired:\n{log}");
    assert!(log.contains("was changed by hand; loading it again"), "{log}");
    // What the kernel counted of the group, per real server.
    let status = get("groups.status");
    assert!(waited(get("groups.counted")) <= 10.0, "nothing counted: {status}");
    let status: serde_json::Value = serde_json::from_str(status.trim())
        .unwrap_or_else(|e| panic!("{e}: {status}"));
    let address = format!("10.0.5.1{}", &server[2..]);
    let t = &status["details"]["forwarding"]["traffic"]["web"][&address];
    assert!(
        t["connections"].as_u64().is_some_and(|n| n >= 10),
        "{address}: {t}"
    );
    // (3) Stopped: the supervisor's cleanup removed both.
    assert_eq!(get("groups.stopped").trim(), "0", "agent stop failed");
    let after = get("groups.after.ipvsadm");
    assert!(!after.contains("FWM"), "the fwmark service is left:\n{after}");
    let tables = get("groups.after.nft");
    assert!(!tables.contains("lbdeploy_marks"), "the table is left:\n{tables}");
    for line in [
        "cleanup: removed the nft table inet lbdeploy_marks",
        &format!("cleanup: ipvs: delete service FWM {mark}"),
    ] {
        assert!(log.contains(line), "`{line}` not in the log:\n{log}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "ipvs_vm: port group: FWM {mark:#x}, the client on {server} on both \
         ports (the control spread it: {control:?}); the table back {repaired} \
         s after its deletion"
    );
}
