//! Hostile VRRP input and a hostile disk in the lab (issue #17, findings 1
//! and 2): adverts from a host that is not a director — with the right
//! password and priority 254, or a flood with the wrong one — change
//! nothing, because the master's socket filter drops them in the kernel;
//! a flood from a peer's address is counted and logged a few lines a
//! minute; a full log file system costs log lines, counted, and never an
//! advert or a status answer.
//!
//! Over IPv6 the same holds with unicast peers (the filter reads the
//! IPv6 source through `SKF_NET_OFF`); over multicast, where the peers'
//! link-local addresses are not configured, a stranger reaches the checks
//! in user space — shown, not hidden.
//!
//! The client is the stranger (it is on the segment, not a director);
//! keepalived02, the backup, is the peer. Packets are built with the
//! crate's own codec and sent by a small bounded Python program on a raw
//! socket.

use std::time::{Duration, Instant};

use lbdeploy::agent::vrrp::packet::{
    Addrs, Advert, AdvertV2, AdvertV3, Auth, PseudoHeader, V3Checksum, Version,
};
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::TestLab;
use crate::support::subnet::Subnet;
use crate::vrrp_lab::{
    PASSWORD, agent_status, election_bound, holders, instance, logs,
    takeover_bound, vrrp, wait_sole_holder,
};

/// The flood's rate: what the audit sent (~39k/s).
const FLOOD_RATE: u32 = 40_000;
/// How long each flood lasts by default. The issue asks 60 s; in CI each
/// flood (one from a stranger, one from a peer, under the shared lab lock
/// on a 2-core machine) lasts 20 s, which still spans 20 adverts and two
/// of the reject log's 10 s intervals. `LBDEPLOY_FLOOD_SECS=60` runs the
/// issue's length (SECURITY.md records that run).
const FLOOD_FOR: Duration = Duration::from_secs(20);
/// The longest flood `LBDEPLOY_FLOOD_SECS` may ask for.
const FLOOD_MAX: Duration = Duration::from_secs(300);

/// [`FLOOD_FOR`], or what `LBDEPLOY_FLOOD_SECS` asks (at most
/// [`FLOOD_MAX`]).
fn flood_for() -> Duration {
    let Ok(v) = std::env::var("LBDEPLOY_FLOOD_SECS") else {
        return FLOOD_FOR;
    };
    let secs: u64 = v
        .parse()
        .unwrap_or_else(|_| panic!("LBDEPLOY_FLOOD_SECS={v:?}: not seconds"));
    Duration::from_secs(secs).clamp(Duration::from_secs(1), FLOOD_MAX)
}
/// The most an advert interval may stray from the configured 1 s: 10%.
const JITTER: f64 = 0.1;
/// `LOG_CAP` of `agent::logfile`: `agent.log` never grows past it.
const LOG_CAP: u64 = 10 * 1024 * 1024;

/// The counter `key` of an instance's status.
fn counter(v: &Value, key: &str) -> u64 {
    v["counters"][key].as_u64().unwrap_or_else(|| panic!("{key}: {v}"))
}

/// A v2 advert for VRID 51 with `priority`, `password` and the lab's VIP.
fn advert(s: Subnet, priority: u8, password: &str) -> Vec<u8> {
    let ip = PseudoHeader::V4 {
        src: s.addr(100).parse().unwrap(),
        dst: s.addr(11).parse().unwrap(),
    };
    Advert::V2(AdvertV2 {
        vrid: 51,
        priority,
        adver_int: 1,
        auth: Auth::pass(password.as_bytes()).unwrap(),
        addrs: vec![s.vip().parse().unwrap()],
    })
    .encode(&ip, V3Checksum::Rfc5798)
    .unwrap()
}

/// Send `msg` from `host` to `dst` (unicast, 224.0.0.18, or an IPv6
/// address on eth0: the kernel picks the source the checksum must name)
/// with TTL / hop limit 255, `rate` a second for `secs` seconds at most,
/// paced every millisecond; prints how many went out. Bounded in count
/// and in time.
fn send(
    lab: &TestLab,
    host: &str,
    msg: &[u8],
    dst: &str,
    rate: u32,
    secs: f64,
) -> u64 {
    let hex: String = msg.iter().map(|b| format!("{b:02x}")).collect();
    let open = if dst.contains(':') {
        "s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,112)\n\
         s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_UNICAST_HOPS,255)\n\
         s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_HOPS,255)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'eth0')\n"
    } else {
        "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,112)\n\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_TTL,255)\n\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,255)\n"
    };
    let script = format!(
        "import socket,time\n\
         p=bytes.fromhex('{hex}')\n\
         {open}\
         rate,secs,n={rate},{secs},0\n\
         t0=time.monotonic()\n\
         while n<rate*secs:\n\
         \x20   now=time.monotonic()-t0\n\
         \x20   if now>=secs+1: break\n\
         \x20   while n<min(int(now*rate)+1,rate*secs):\n\
         \x20       try: s.sendto(p,('{dst}',0))\n\
         \x20       except OSError: pass\n\
         \x20       n+=1\n\
         \x20   time.sleep(0.001)\n\
         print(n)\n"
    );
    lab.exec_ok(host, &format!("python3 - <<'EOF'\n{script}EOF"))
        .trim()
        .parse()
        .unwrap()
}

/// Valid-password adverts with priority 254 from the client, unicast and
/// multicast: before the filter both directors dropped the VIP (the
/// master stepped down to the "better" stranger). Now nothing changes,
/// and nothing reached the agent at all: not even the stranger counter
/// moves. The control: the same kind of packet (wrong password) from the
/// backup's address does reach the master's checks and is counted.
#[test]
fn a_stranger_with_the_password_and_priority_254_changes_nothing() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("hostile-vrrp-254", vrrp(s, 2));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V2));
    let before =
        [instance(&lab, "keepalived01"), instance(&lab, "keepalived02")];
    let evil = advert(s, 254, PASSWORD);
    send(&lab, "client", &evil, &s.addr(11), 20, 1.0);
    send(&lab, "client", &evil, "224.0.0.18", 20, 1.0);
    // Past the backup's Master_Down_Interval (3.7 s at priority 70): a
    // priority-254 master would have silenced it by now.
    std::thread::sleep(Duration::from_secs(4));
    let after =
        [instance(&lab, "keepalived01"), instance(&lab, "keepalived02")];
    assert_eq!(after[0]["state"], "MASTER", "{}", logs(&lab));
    assert_eq!(after[1]["state"], "BACKUP");
    assert_eq!(holders(&lab, &vip), ["keepalived01"]);
    for (b, a) in before.iter().zip(&after) {
        for key in ["transitions", "strangers", "auth_failures"] {
            assert_eq!(counter(a, key), counter(b, key), "{key}: {a}");
        }
    }
    // The backup received the master's adverts only, all the while.
    let heard = counter(&after[1], "adverts_received")
        - counter(&before[1], "adverts_received");
    assert!((4..=8).contains(&heard), "{heard} adverts heard in ~6 s");

    let wrong = advert(s, 254, "wrong");
    reach_the_checks(
        &lab,
        "keepalived02",
        &wrong,
        &s.addr(11),
        "auth_failures",
    );
}

/// Send five copies of `msg` from `from` to `dst` and wait, two seconds
/// at most, until keepalived01 has counted all five under `key`: proof
/// they passed its socket filter and met the checks in user space.
/// Returns the instance's status then.
fn reach_the_checks(
    lab: &TestLab,
    from: &str,
    msg: &[u8],
    dst: &str,
    key: &str,
) -> Value {
    let before = counter(&instance(lab, "keepalived01"), key);
    send(lab, from, msg, dst, 5, 1.0);
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let now = instance(lab, "keepalived01");
        if counter(&now, key) == before + 5 {
            return now;
        }
        assert!(Instant::now() < until, "{key}: 5 sent, not counted: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU seconds (user + system) `host`'s agent has used.
fn agent_cpu(lab: &TestLab, host: &str) -> f64 {
    let pid = agent_status(lab, host)["pid"].as_u64().unwrap();
    let stat = lab.exec_ok(host, &format!("cat /proc/{pid}/stat"));
    // Fields after the command's closing parenthesis: utime and stime
    // are the 12th and 13th (14 and 15 of proc(5)), in clock ticks.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// What one flood did to the master.
#[derive(Debug)]
struct Flooded {
    sent: u64,
    cpu_percent: f64,
    worst_deviation: Duration,
    adverts_seen: usize,
}

/// Flood the master from `from` with bad-password adverts for
/// [`flood_for`] while the backup records the master's adverts with
/// tcpdump and we ask the master's status every 500 ms: the master stays
/// MASTER and sole holder, answers every time, and its adverts keep their
/// 1 s within [`JITTER`].
fn flood(lab: &TestLab, s: Subnet, from: &str) -> Flooded {
    let master = s.addr(11);
    let vip = s.vip();
    let secs = flood_for().as_secs_f64();
    let dump = {
        let cmd = format!(
            "timeout {} tcpdump -i eth0 -nn -tt -l 'ip proto 112 and src host \
             {master}' 2>/dev/null; true",
            secs + 1.0
        );
        let bad = advert(s, 254, "wrong");
        std::thread::scope(|scope| {
            let tcpdump = scope.spawn(|| lab.exec_ok("keepalived02", &cmd));
            std::thread::sleep(Duration::from_millis(500));
            let cpu0 = agent_cpu(lab, "keepalived01");
            let t0 = Instant::now();
            let flooder = scope
                .spawn(|| send(lab, from, &bad, &master, FLOOD_RATE, secs));
            while !flooder.is_finished() {
                let i = instance(lab, "keepalived01");
                assert_eq!(i["state"], "MASTER", "{i}");
                assert_eq!(holders(lab, &vip), ["keepalived01"]);
                std::thread::sleep(Duration::from_millis(500));
            }
            let sent = flooder.join().unwrap();
            let cpu = agent_cpu(lab, "keepalived01") - cpu0;
            let took = t0.elapsed().as_secs_f64();
            (tcpdump.join().unwrap(), sent, 100.0 * cpu / took)
        })
    };
    let (out, sent, cpu_percent) = dump;
    let (adverts, worst) = crate::support::advert_jitter(&out);
    assert!(adverts as f64 >= secs - 1.0, "{adverts} adverts: {out}");
    assert!(worst <= JITTER, "an advert interval strayed {worst:.3} s: {out}");
    Flooded {
        sent,
        cpu_percent,
        worst_deviation: Duration::from_secs_f64(worst),
        adverts_seen: adverts,
    }
}

/// 40 000 bad-password adverts a second at the master, first from the
/// client (a stranger: dropped by the socket filter in the kernel), then
/// from the backup's address (a peer: read, checked, counted, and logged
/// once per 10 s). Either way the master stays the only holder, keeps its
/// advert interval and answers its status; the log stays small. The CPU
/// the master's agent spends on each flood is printed for BENCHMARKS.md.
#[test]
fn a_flood_of_bad_adverts_changes_nothing_and_logs_a_few_lines() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("hostile-vrrp-flood", vrrp(s, 2));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(
        &lab,
        &s.vip(),
        "keepalived01",
        election_bound(Version::V2),
    );
    let before = instance(&lab, "keepalived01");
    let stranger = flood(&lab, s, "client");
    let mid = instance(&lab, "keepalived01");
    assert_eq!(
        counter(&mid, "auth_failures"),
        counter(&before, "auth_failures")
    );
    assert_eq!(counter(&mid, "transitions"), counter(&before, "transitions"));
    let peer = flood(&lab, s, "keepalived02");
    let after = instance(&lab, "keepalived01");
    let refused =
        counter(&after, "auth_failures") - counter(&mid, "auth_failures");
    // What the socket's receive queue could not hold the kernel dropped
    // (on the lab's two shared cores, about a third): the rest was read,
    // checked and counted, one by one.
    assert!(refused * 4 >= peer.sent, "{refused} of {} counted", peer.sent);
    assert_eq!(counter(&after, "transitions"), counter(&before, "transitions"));
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let lines = log.lines().filter(|l| l.contains("dropped:")).count();
    // The first, then one per 10 s (and slack for one more).
    let bound = flood_for().as_secs() as usize / 10 + 2;
    assert!(lines <= bound, "{lines} lines for {refused} refusals:\n{log}");
    assert!(log.contains("more auth_failures unlogged"), "{log}");
    let size =
        lab.exec_ok("keepalived01", "stat -c %s /run/lbdeploy/agent.log");
    assert!(size.trim().parse::<u64>().unwrap() < LOG_CAP);
    for (who, f) in [("stranger", &stranger), ("peer", &peer)] {
        eprintln!(
            "flood from a {who}, {FLOOD_RATE}/s for {:?}: {} sent, \
             master's agent {:.1}% of a core, {} adverts seen, worst deviation \
             from 1 s {:?}",
            flood_for(),
            f.sent,
            f.cpu_percent,
            f.adverts_seen,
            f.worst_deviation
        );
    }
}

/// The master's log file system full (its `/run/lbdeploy` tmpfs shrunk
/// and filled), and more than a pipe's worth of log lines caused
/// (reloads): the agent keeps sending adverts at its interval, answers
/// its status, counts the lines it dropped, and stays the sole holder.
/// Space back, the log resumes.
#[test]
fn a_full_log_file_system_drops_lines_and_nothing_else() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("hostile-vrrp-full-log", vrrp(s, 2));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V2));
    let host = "keepalived01";
    lab.exec_ok(
        host,
        "mount -o remount,size=1m /run/lbdeploy && \
         (dd if=/dev/zero of=/run/lbdeploy/fill bs=4k 2>/dev/null; true) && \
         test \"$(df --output=avail /run/lbdeploy | tail -1)\" -eq 0",
    );
    let before = agent_status(&lab, host);
    let sent =
        |v: &Value| counter(&v["details"]["vrrp_instances"][0], "adverts_sent");
    let pid = before["pid"].as_u64().unwrap();
    // Each reload logs a line of ~200 bytes: 1 000 of them are three times
    // the pipe's 64 KiB. Bounded: 1 000 signals, 5 ms apart.
    let t0 = Instant::now();
    lab.exec_ok(
        host,
        &format!("for i in $(seq 1000); do kill -HUP {pid}; sleep 0.005; done"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = agent_status(&lab, host);
    let took = t0.elapsed().as_secs();
    assert!(after["log_lines_dropped"].as_u64().unwrap() > 0, "{after}");
    assert_eq!(after["pid"], before["pid"], "the agent restarted");
    assert_eq!(after["healthy"], true, "{after}");
    let adverts = sent(&after) - sent(&before);
    assert!(adverts + 1 >= took, "{adverts} adverts in {took} s");
    assert_eq!(after["details"]["vrrp_instances"][0]["state"], "MASTER");
    assert_eq!(holders(&lab, &vip), ["keepalived01"]);

    lab.exec_ok(host, "rm /run/lbdeploy/fill");
    lab.exec_ok(host, &format!("kill -HUP {pid}"));
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let tail = lab.exec_ok(host, "tail -3 /run/lbdeploy/agent.log");
        if tail.contains("reloaded") {
            break;
        }
        assert!(Instant::now() < until, "the log did not resume: {tail}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stranger's flood over IPv6: how many a second, and for how long.
/// Enough to swamp an agent that read them (the IPv4 flood's rate), short
/// enough to leave the lab lock soon.
const FLOOD6_RATE: u32 = 40_000;
const FLOOD6_FOR: Duration = Duration::from_secs(5);

/// A v3 advert for VRID 51 with `priority` and the IPv6 VIP, its checksum
/// over the pseudo-header from `src` to `dst`.
fn advert6(s: Subnet, priority: u8, src: &str, dst: &str) -> Vec<u8> {
    let ip = PseudoHeader::V6 {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
    };
    Advert::V3(AdvertV3 {
        vrid: 51,
        priority,
        max_adver_int: 100,
        addrs: Addrs::V6(vec![s.vip6().parse().unwrap()]),
    })
    .encode(&ip, V3Checksum::Rfc5798)
    .unwrap()
}

/// How many VRRP packets from `src` `host`'s eth0 sees while `during`
/// runs: tcpdump, given half a second to start before it and stopped
/// `listen` after it began (bounded; no signal to any process by name).
fn seen_on_wire<T: Send>(
    lab: &TestLab,
    host: &str,
    src: &str,
    listen: Duration,
    during: impl FnOnce() -> T + Send,
) -> (u64, T) {
    let cmd = format!(
        "timeout {} tcpdump -i eth0 -nn -l 'ip6 and src host {src} and \
         ip6 proto 112' 2>/dev/null | wc -l",
        listen.as_secs_f64()
    );
    std::thread::scope(|scope| {
        let tcpdump = scope.spawn(|| lab.exec_ok(host, &cmd));
        std::thread::sleep(Duration::from_millis(500));
        let result = during();
        let seen = tcpdump.join().unwrap();
        (seen.trim().parse().unwrap(), result)
    })
}

/// VRRPv3 over IPv6 with unicast peers: the master's socket filter reads
/// the 16-byte IPv6 source through `SKF_NET_OFF` (an IPv6 raw socket's
/// data starts past the IPv6 header) and admits its peer only. The
/// client — on the segment, not a director — floods the master with
/// valid priority-254 adverts and sends the backup a few: tcpdump sees
/// them arrive, yet nothing changes and no counter moves, not even
/// `strangers` (the check in user space behind the filter): the kernel
/// dropped them all. The control: the backup's packets (a broken
/// checksum) reach the master's checks and are counted, and the backup
/// hears the master's adverts all along.
#[test]
fn r17_ipv6_strangers_are_dropped_in_the_kernel() {
    let s = Subnet::allocate();
    let lab =
        lab_or_skip!("hostile-vrrp6", Inventory::example(s).ipv6().unicast());
    for (host, me) in
        [("keepalived01", 11), ("keepalived02", 12), ("client", 100)]
    {
        lab.exec_ok(
            host,
            &format!("ip -6 addr add {}/64 dev eth0 nodad", s.addr6(me)),
        );
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip6();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    let (master, backup, stranger) = (s.addr6(11), s.addr6(12), s.addr6(100));
    let before =
        [instance(&lab, "keepalived01"), instance(&lab, "keepalived02")];
    let cpu0 = agent_cpu(&lab, "keepalived01");
    let secs = FLOOD6_FOR.as_secs_f64();
    let evil = advert6(s, 254, &stranger, &master);
    let t0 = Instant::now();
    let listen = FLOOD6_FOR + Duration::from_secs(3);
    let (seen, sent) =
        seen_on_wire(&lab, "keepalived01", &stranger, listen, || {
            send(&lab, "client", &evil, &master, FLOOD6_RATE, secs)
        });
    let took = t0.elapsed().as_secs_f64();
    let cpu = agent_cpu(&lab, "keepalived01") - cpu0;
    eprintln!(
        "IPv6 flood from a stranger, {FLOOD6_RATE}/s for {FLOOD6_FOR:?}: \
         {sent} sent, {seen} seen on the master's wire, master's agent \
         {:.1}% of a core, before any check",
        100.0 * cpu / took
    );
    let to_backup = advert6(s, 254, &stranger, &backup);
    send(&lab, "client", &to_backup, &backup, 20, 1.0);
    // Past the backup's Master_Down_Interval: a priority-254 master
    // heard by either would have changed something by now.
    std::thread::sleep(takeover_bound(Version::V3));
    let after =
        [instance(&lab, "keepalived01"), instance(&lab, "keepalived02")];
    assert_eq!(after[0]["state"], "MASTER", "{}", logs(&lab));
    assert_eq!(after[1]["state"], "BACKUP");
    assert_eq!(holders(&lab, &vip), ["keepalived01"]);
    // The flood reached the master's interface (tcpdump's own socket may
    // miss some at this rate); none of it reached the agent.
    assert!(seen * 2 >= sent, "{seen} of {sent} seen on the wire");
    for (b, a) in before.iter().zip(&after) {
        for key in [
            "transitions",
            "strangers",
            "auth_failures",
            "bad_ttl",
            "bad_checksum",
            "other_errors",
        ] {
            assert_eq!(counter(a, key), counter(b, key), "{key}: {a}");
        }
    }
    let heard = counter(&after[1], "adverts_received")
        - counter(&before[1], "adverts_received");
    let span = t0.elapsed().as_secs_f64();
    assert!(heard as f64 + 2.0 >= span, "{heard} adverts heard in {span:.1} s");

    let mut broken = advert6(s, 254, &backup, &master);
    broken[6] ^= 0x55;
    reach_the_checks(&lab, "keepalived02", &broken, &master, "bad_checksum");
}

/// `host`'s link-local address on eth0.
fn link_local(lab: &TestLab, host: &str) -> String {
    let out = lab.exec_ok(host, "ip -6 -o addr show dev eth0 scope link");
    let addr = out.split_whitespace().nth(3).and_then(|a| a.split('/').next());
    addr.unwrap_or_else(|| panic!("no link-local address: {out}")).to_owned()
}

/// What is not filtered, shown: an IPv6 instance over multicast lists
/// nobody to accept from (its peers' link-local addresses are not in the
/// inventory), says so once in its log, and a stranger's packets reach
/// its checks in user space — here five with a broken checksum, each
/// counted, nothing changed. Unicast peers are what give IPv6 the
/// kernel's filter (the test above).
#[test]
fn r17_ipv6_multicast_is_checked_in_user_space_only() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("hostile-vrrp6-mcast", Inventory::example(s).ipv6());
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip6();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    assert!(log.contains("adverts are not filtered by source"), "{log}");
    let before = instance(&lab, "keepalived01");
    let group = "ff02::12";
    let mut broken = advert6(s, 254, &link_local(&lab, "client"), group);
    broken[6] ^= 0x55;
    let after =
        reach_the_checks(&lab, "client", &broken, group, "bad_checksum");
    assert_eq!(counter(&after, "strangers"), counter(&before, "strangers"));
    assert_eq!(after["state"], "MASTER");
    assert_eq!(holders(&lab, &vip), ["keepalived01"]);
}
