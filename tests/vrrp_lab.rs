//! VRRP in the lab (issue #6): lbdeploy's director agents against each
//! other and against Debian's keepalived, on real raw sockets, with the
//! VIPs on real interfaces. Each test has its own subnet.
//!
//! Every bound comes from the protocol: a backup takes over within
//! Master_Down_Interval (the state machine's own `master_down_interval`)
//! after the master's last advert, so after `kill -9` the VIP must appear
//! on the backup within that plus 100 ms of measurement slack. Takeover
//! times are measured inside the backup's namespace (a shell polling
//! `ip -o addr` every 5 ms), not slept for, and printed.

use std::time::{Duration, Instant};

use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::{
    Addrs, Advert, AdvertV2, AdvertV3, Auth, PseudoHeader, V3Checksum, Version,
};
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::TestLab;
use crate::support::subnet::{Subnet, VIP};

pub(crate) const DIRECTORS: [&str; 2] = ["keepalived01", "keepalived02"];
pub(crate) const PASSWORD: &str = "lbd-pass";
const SLACK: Duration = Duration::from_millis(100);

/// The example cluster with its instance on VRRP `version`, which for v2
/// authenticates with [`PASSWORD`] (as keepalived does in these tests).
pub(crate) fn vrrp(s: Subnet, version: u8) -> Inventory {
    let inventory = Inventory::example(s).version(version);
    if version == 2 {
        inventory.instance_option(&format!(
            "authentication: {{ type: pass, password: {PASSWORD} }}"
        ))
    } else {
        inventory
    }
}

/// The directors that hold `vip` (either family) now.
pub(crate) fn holders(lab: &TestLab, vip: &str) -> Vec<&'static str> {
    DIRECTORS
        .into_iter()
        .filter(|h| {
            lab.exec_ok(h, "ip -o addr show dev eth0")
                .contains(&format!(" {vip}/"))
        })
        .collect()
}

/// Wait until exactly `host` holds `vip`, at most `bound`.
pub(crate) fn wait_sole_holder(
    lab: &TestLab,
    vip: &str,
    host: &str,
    bound: Duration,
) {
    let until = Instant::now() + bound;
    loop {
        let h = holders(lab, vip);
        if h == [host] {
            return;
        }
        assert!(
            Instant::now() < until,
            "the VIP is on {h:?}, not on {host} alone, after {bound:?}\n{}",
            logs(lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Both directors' agent logs and keepalived logs, for failure messages.
pub(crate) fn logs(lab: &TestLab) -> String {
    DIRECTORS
        .iter()
        .map(|h| {
            let out = lab.exec(
                h,
                "tail -20 /run/lbdeploy/agent.log; tail -20 /run/ka/log; \
                 journalctl -u lbdeploy-agent -n 20 -o cat 2>/dev/null",
            );
            format!("--- {h} ---\n{}", String::from_utf8_lossy(&out.stdout))
        })
        .collect()
}

/// PIDs to `kill -9` to crash lbdeploy on `host`: the supervisor first
/// (or it would restart the agent), then the agent.
pub(crate) fn agent_pids(lab: &TestLab, host: &str) -> String {
    let status = agent_status(lab, host);
    let sup = lab.exec_ok(host, "cat /run/lbdeploy/agent.pid");
    format!("{} {}", sup.trim(), status["pid"])
}

/// PIDs of keepalived's VRRP child and parent on `host`, child first: the
/// child gets SIGTERM when its parent dies (`PR_SET_PDEATHSIG`) and would
/// resign with priority 0, which is not the crash under test.
pub(crate) fn keepalived_pids(lab: &TestLab, host: &str) -> String {
    lab.exec_ok(host, "cat /run/ka/vrrp.pid /run/ka/ka.pid")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn agent_status(lab: &TestLab, host: &str) -> Value {
    serde_json::from_str(&lab.exec_ok(host, "lbdeploy agent status --json"))
        .unwrap()
}

/// The first instance's part of `host`'s agent status.
pub(crate) fn instance(lab: &TestLab, host: &str) -> Value {
    agent_status(lab, host)["details"]["vrrp_instances"][0].clone()
}

/// `kill -9 PIDS` and measure, inside `taker`, until `vip` is there.
pub(crate) fn failover(
    lab: &TestLab,
    vip: &str,
    pids: &str,
    taker: &str,
) -> Duration {
    let out = lab.exec_ok(
        taker,
        &format!(
            "kill -9 {pids}; s=$(date +%s%N); \
             until ip -o addr show dev eth0 | grep -q ' {vip}/'; do \
               sleep 0.005; \
               [ $(( $(date +%s%N) - s )) -gt 20000000000 ] && break; \
             done; echo $(( ($(date +%s%N) - s) / 1000 ))"
        ),
    );
    Duration::from_micros(out.trim().parse().unwrap())
}

/// keepalived's side of a lab test: its instance's settings.
pub(crate) struct Keepalived<'a> {
    pub priority: u8,
    pub version: u8,
    /// Unicast to the other director instead of multicast.
    pub unicast: bool,
    /// The VIP with its prefix.
    pub vip_cidr: &'a str,
    /// More lines for the instance, such as `nopreempt`.
    pub options: &'a str,
}

/// Replace lbdeploy's agent on `host` by keepalived with the instance
/// `ka` (auth for v2 as lbdeploy's, peers the other director).
pub(crate) fn start_keepalived(
    lab: &TestLab,
    s: Subnet,
    host: &str,
    ka: &Keepalived<'_>,
) {
    let Keepalived { priority, version, unicast, vip_cidr, options } = *ka;
    lab.exec_ok(host, "lbdeploy agent stop");
    let me = if host == "keepalived01" { 11 } else { 12 };
    let peer = if me == 11 { 12 } else { 11 };
    let auth = if version == 2 {
        format!("authentication {{ auth_type PASS\n auth_pass {PASSWORD} }}")
    } else {
        String::new()
    };
    // The directors' unicast addresses: .11/.12, or with IPv6 VIPs
    // fd77:N::11/::12 (which the IPv6 test adds to eth0).
    let addr = |host: u8| {
        if vip_cidr.contains(':') { s.addr6(host) } else { s.addr(host) }
    };
    let unicast = if unicast {
        format!(
            "unicast_src_ip {}\nunicast_peer {{ {} }}",
            addr(me),
            addr(peer)
        )
    } else {
        String::new()
    };
    let conf = format!(
        "global_defs {{ router_id ka-{host}\n vrrp_version {version} }}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int 1
  {options}
  {auth}
  {unicast}
  virtual_ipaddress {{ {vip_cidr} dev eth0 }}
}}
"
    );
    lab.exec_ok(
        host,
        &format!(
            "mkdir -p /run/ka && rm -f /run/ka/*.pid && cat > /run/ka/keepalived.conf <<'EOF'\n{conf}EOF\n\
             setsid keepalived -n -l -D -P -f /run/ka/keepalived.conf \
               -p /run/ka/ka.pid -r /run/ka/vrrp.pid \
               </dev/null >>/run/ka/log 2>&1 &\n\
             for i in $(seq 100); do [ -s /run/ka/vrrp.pid ] && exit 0; \
               sleep 0.05; done; cat /run/ka/log; exit 1"
        ),
    );
}

/// The bound for the backup (priority 70) to take over: its
/// Master_Down_Interval plus measurement slack.
pub(crate) fn takeover_bound(version: Version) -> Duration {
    master_down_interval(version, 70, Duration::from_secs(1)) + SLACK
}

/// Long enough for the first election after a start: the higher
/// priority's Master_Down_Interval, an advert, and process start-up.
pub(crate) fn election_bound(version: Version) -> Duration {
    master_down_interval(version, 120, Duration::from_secs(1))
        + Duration::from_secs(4)
}

#[test]
fn lbdeploy_pair_fails_over_preempts_reloads_and_resigns() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("vrrp-lbdeploy-pair", vrrp(s, 2));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(
        &lab,
        &s.vip(),
        "keepalived01",
        election_bound(Version::V2),
    );
    assert_eq!(instance(&lab, "keepalived01")["state"], "MASTER");
    assert_eq!(instance(&lab, "keepalived02")["state"], "BACKUP");
    assert!(
        instance(&lab, "keepalived02")["counters"]["adverts_received"]
            .as_u64()
            .is_some_and(|c| c > 0)
    );

    // SIGHUP with an unchanged instance: the VIP stays, no transition.
    let before =
        instance(&lab, "keepalived01")["counters"]["transitions"].clone();
    lab.exec_ok("keepalived01", "lbdeploy agent reload");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(holders(&lab, &s.vip()), ["keepalived01"]);
    assert_eq!(
        instance(&lab, "keepalived01")["counters"]["transitions"],
        before
    );

    // SIGHUP with the master's priority changed: its instance is replaced
    // in place, as master, without resigning; the backup, which would
    // take over within its Skew_Time after a priority-0 advert, never
    // does (watched for its whole Master_Down_Interval).
    let backup_before =
        instance(&lab, "keepalived02")["counters"]["transitions"].clone();
    lab.exec_ok(
        "keepalived01",
        "sed -i 's/priority: 120/priority: 110/' /etc/lbdeploy/agent.yml && \
         lbdeploy agent reload",
    );
    stays_sole_holder(
        &lab,
        &s.vip(),
        "keepalived01",
        takeover_bound(Version::V2),
    );
    let master = instance(&lab, "keepalived01");
    assert_eq!(master["state"], "MASTER");
    assert_eq!(master["priority"], 110);
    assert_eq!(
        instance(&lab, "keepalived02")["counters"]["transitions"],
        backup_before,
        "{}",
        logs(&lab)
    );
    assert!(
        lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log")
            .contains("handing over to its successor")
    );

    // Crash the master: the backup takes over within its
    // Master_Down_Interval.
    let pids = agent_pids(&lab, "keepalived01");
    let took = failover(&lab, &s.vip(), &pids, "keepalived02");
    eprintln!("lbdeploy -> lbdeploy v2 failover after kill -9: {took:?}");
    assert!(took <= takeover_bound(Version::V2), "{took:?}\n{}", logs(&lab));

    // Restart it: it drops the VIP the crash left, then preempts.
    lab.exec_ok(
        "keepalived01",
        "lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
    );
    wait_sole_holder(
        &lab,
        &s.vip(),
        "keepalived01",
        election_bound(Version::V2),
    );

    // SIGTERM resigns with priority 0: the backup takes over after its
    // Skew_Time, well before a Master_Down_Interval.
    let t = Instant::now();
    lab.exec_ok("keepalived01", "lbdeploy agent stop");
    wait_sole_holder(
        &lab,
        &s.vip(),
        "keepalived02",
        takeover_bound(Version::V2),
    );
    eprintln!("lbdeploy v2 takeover after SIGTERM: {:?}", t.elapsed());
    assert!(
        t.elapsed()
            < master_down_interval(Version::V2, 70, Duration::from_secs(1))
    );
}

/// Run keepalived on `keepalived_on`, lbdeploy on the other director; the
/// priority-120 director wins, loses its VIP to the other on `kill -9`
/// within Master_Down_Interval, and takes it back on restart.
fn interop(version: u8, unicast: bool, keepalived_on: &str) {
    let s = Subnet::allocate();
    let name = format!("vrrp-interop-{}", s.octet());
    let inventory = vrrp(s, version);
    let inventory = if unicast { inventory.unicast() } else { inventory };
    let lab = lab_or_skip!(&name, inventory);
    let v = if version == 2 { Version::V2 } else { Version::V3 };
    let cidr = s.cidr(VIP);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let prio = if keepalived_on == "keepalived01" { 120 } else { 70 };
    let ka = |priority| Keepalived {
        priority,
        version,
        unicast,
        vip_cidr: &cidr,
        options: "",
    };
    start_keepalived(&lab, s, keepalived_on, &ka(prio));
    wait_sole_holder(&lab, &s.vip(), "keepalived01", election_bound(v));
    let pids = if keepalived_on == "keepalived01" {
        keepalived_pids(&lab, "keepalived01")
    } else {
        assert_eq!(instance(&lab, "keepalived01")["state"], "MASTER");
        agent_pids(&lab, "keepalived01")
    };
    let took = failover(&lab, &s.vip(), &pids, "keepalived02");
    let who = if keepalived_on == "keepalived01" {
        "keepalived -> lbdeploy"
    } else {
        "lbdeploy -> keepalived"
    };
    let mode = if unicast { "unicast" } else { "multicast" };
    eprintln!("{who} v{version} {mode} failover after kill -9: {took:?}");
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));
    if keepalived_on == "keepalived02" {
        // The crashed lbdeploy left its VIP (as keepalived would); a
        // restart removes it and preempts.
        lab.exec_ok(
            "keepalived01",
            "lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
        );
    } else {
        // keepalived leaves its VIP behind when killed, and does not
        // remove it on start: clear it as an operator would.
        let del = format!("ip addr del {cidr} dev eth0 || true");
        lab.exec_ok("keepalived01", &del);
        start_keepalived(&lab, s, "keepalived01", &ka(120));
    }
    wait_sole_holder(&lab, &s.vip(), "keepalived01", election_bound(v));
    let lbd = if keepalived_on == "keepalived01" {
        "keepalived02"
    } else {
        "keepalived01"
    };
    let c = &instance(&lab, lbd)["counters"];
    assert!(c["adverts_received"].as_u64() > Some(0), "{c}");
    assert_eq!(c["auth_failures"], 0, "{c}");
    assert_eq!(c["bad_checksum"], 0, "{c}");
}

#[test]
fn interop_v2_pass_multicast_keepalived_master() {
    interop(2, false, "keepalived01");
}

#[test]
fn interop_v2_pass_multicast_lbdeploy_master() {
    interop(2, false, "keepalived02");
}

#[test]
fn interop_v3_multicast_keepalived_master() {
    interop(3, false, "keepalived01");
}

#[test]
fn interop_v3_multicast_lbdeploy_master() {
    interop(3, false, "keepalived02");
}

#[test]
fn interop_v3_unicast_keepalived_master() {
    interop(3, true, "keepalived01");
}

#[test]
fn interop_v2_pass_unicast_lbdeploy_master() {
    interop(2, true, "keepalived02");
}

/// Send `msg` from the backup director to `dst` on a raw socket with
/// `ttl`: from a peer's address, or the master's socket filter would drop
/// it in the kernel before any check (`tests/hostile_vrrp.rs`).
fn send_raw(lab: &TestLab, msg: &[u8], dst: &str, ttl: u8) {
    let hex: String = msg.iter().map(|b| format!("{b:02x}")).collect();
    lab.exec_ok(
        "keepalived02",
        &format!(
            "python3 -c 'import socket,sys; \
             s=socket.socket(socket.AF_INET, socket.SOCK_RAW, 112); \
             s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, {ttl}); \
             s.sendto(bytes.fromhex(\"{hex}\"), (\"{dst}\", 0))'"
        ),
    );
}

#[test]
fn bad_packets_are_counted_and_change_nothing() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("vrrp-bad-packets", vrrp(s, 2));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(
        &lab,
        &s.vip(),
        "keepalived01",
        election_bound(Version::V2),
    );
    let before = instance(&lab, "keepalived01");
    let src = s.addr(12).parse().unwrap();
    let dst = s.addr(11);
    let ip = PseudoHeader::V4 { src, dst: dst.parse().unwrap() };
    // Priority 250 would make the master step down, were it accepted.
    let advert = |password: &str| {
        Advert::V2(AdvertV2 {
            vrid: 51,
            priority: 250,
            adver_int: 1,
            auth: Auth::pass(password.as_bytes()).unwrap(),
            addrs: vec![s.vip().parse().unwrap()],
        })
        .encode(&ip, V3Checksum::Rfc5798)
        .unwrap()
    };
    let good = advert(PASSWORD);
    send_raw(&lab, &good, &dst, 64); // wrong TTL
    send_raw(&lab, &advert("wrong"), &dst, 255); // wrong auth
    let mut bad_sum = good.clone();
    bad_sum[6] ^= 0x55;
    send_raw(&lab, &bad_sum, &dst, 255); // wrong checksum
    send_raw(&lab, &good[..6], &dst, 255); // truncated
    let v3 = Advert::V3(AdvertV3 {
        vrid: 51,
        priority: 250,
        max_adver_int: 100,
        addrs: Addrs::V4(vec![s.vip().parse().unwrap()]),
    })
    .encode(&ip, V3Checksum::Rfc5798)
    .unwrap();
    send_raw(&lab, &v3, &dst, 255); // wrong version (no PASS in v3)
    std::thread::sleep(Duration::from_millis(500));
    let after = instance(&lab, "keepalived01");
    let c = |v: &Value, k: &str| v["counters"][k].as_u64().unwrap();
    assert_eq!(c(&after, "bad_ttl"), c(&before, "bad_ttl") + 1, "{after}");
    assert_eq!(c(&after, "bad_checksum"), c(&before, "bad_checksum") + 1);
    assert_eq!(c(&after, "auth_failures"), c(&before, "auth_failures") + 2);
    assert_eq!(c(&after, "other_errors"), c(&before, "other_errors") + 1);
    assert_eq!(after["state"], "MASTER");
    assert_eq!(c(&after, "transitions"), c(&before, "transitions"));
    assert_eq!(holders(&lab, &s.vip()), ["keepalived01"]);
}

/// Make the backup deaf and mute to VRRP (an nftables table in its
/// namespace drops protocol 112 both ways): it takes the VIP too (split
/// brain, as VRRP must) and the client follows its announcements. Lift
/// the block: the master hears the backup's lower-priority advert and
/// answers at once with its own advert and its announcements (issue #16),
/// so within the backup's next advert interval one master remains and the
/// client's neighbour entry points at it again.
#[test]
fn split_brain_heals_to_one_master_and_the_client_follows() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("vrrp-split-brain", vrrp(s, 2));
    let vip = s.vip();
    lab.apply_until_forwarding(&vip);
    let mac = |host| {
        lab.exec_ok(host, "cat /sys/class/net/eth0/address").trim().to_owned()
    };
    let (mac01, mac02) = (mac("keepalived01"), mac("keepalived02"));
    let client_mac = || {
        lab.exec_ok("client", &format!("ip neigh show {vip} dev eth0"))
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    lab.exec_ok(
        "keepalived02",
        "nft -f - <<'EOF'\n\
         table inet splitbrain {\n\
           chain in { type filter hook input priority 0; ip protocol vrrp drop; }\n\
           chain out { type filter hook output priority 0; ip protocol vrrp drop; }\n\
         }\nEOF",
    );
    let both = takeover_bound(Version::V2);
    let until = Instant::now() + both;
    while holders(&lab, &vip).len() < 2 {
        assert!(Instant::now() < until, "no split brain within {both:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let until = Instant::now() + SLACK * 10;
    while client_mac() != mac02 {
        assert!(
            Instant::now() < until,
            "the client did not follow the backup ({mac02}): {}\n{}",
            lab.exec_ok("client", "ip neigh"),
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    lab.exec_ok("keepalived02", "nft delete table inet splitbrain");
    let t = Instant::now();
    let heal = Duration::from_secs(1) + SLACK;
    while holders(&lab, &vip) != ["keepalived01"] || client_mac() != mac01 {
        assert!(
            t.elapsed() < heal,
            "holders {:?}, client at {} ({mac01} is keepalived01) after \
             {heal:?}\n{}",
            holders(&lab, &vip),
            client_mac(),
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("split brain healed, client following, in {:?}", t.elapsed());
    assert_eq!(instance(&lab, "keepalived02")["state"], "BACKUP");
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    assert!(log.contains("lower priority"), "{log}");
}

/// Watch for `period` that `host` alone holds the VIP the whole time.
fn stays_sole_holder(lab: &TestLab, vip: &str, host: &str, period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert_eq!(holders(lab, vip), [host], "{}", logs(lab));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nopreempt on lbdeploy's side (`preempt: false`): restarted after a
/// crash, the higher-priority lbdeploy director stays backup to
/// keepalived's master for good, and takes over within its Skew_Time when
/// keepalived resigns.
#[test]
fn lbdeploy_nopreempt_leaves_keepalived_master() {
    let s = Subnet::allocate();
    let v = Version::V3;
    let cidr = s.cidr(VIP);
    let inv = vrrp(s, 3).instance_option("preempt: false");
    let lab = lab_or_skip!("vrrp-nopreempt-lbdeploy", inv);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    start_keepalived(&lab, s, "keepalived02", &v3_keepalived(&cidr, 70, ""));
    wait_sole_holder(&lab, &s.vip(), "keepalived01", election_bound(v));
    let pids = agent_pids(&lab, "keepalived01");
    let took = failover(&lab, &s.vip(), &pids, "keepalived02");
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));

    lab.exec_ok(
        "keepalived01",
        "lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
    );
    // The restart removes the VIP the crash left; then, hearing a
    // lower-priority master, it must not preempt: two of its own
    // Master_Down_Intervals are more than enough to see it if it did.
    wait_sole_holder(&lab, &s.vip(), "keepalived02", SLACK * 20);
    let advert = Duration::from_secs(1);
    let mdi = master_down_interval(v, 120, advert);
    stays_sole_holder(&lab, &s.vip(), "keepalived02", mdi * 2);
    let me = instance(&lab, "keepalived01");
    assert_eq!(me["state"], "BACKUP", "{me}");
    assert!(me["counters"]["adverts_received"].as_u64() > Some(0), "{me}");

    // keepalived resigns (SIGTERM: priority 0): a backup takes over after
    // its Skew_Time, nopreempt or not.
    lab.exec_ok("keepalived02", "kill -TERM $(cat /run/ka/ka.pid)");
    let skew = lbdeploy::agent::vrrp::fsm::skew_time(v, 120, advert);
    wait_sole_holder(&lab, &s.vip(), "keepalived01", skew + SLACK * 3);
}

/// keepalived's `nopreempt` honours lbdeploy's adverts: started on the
/// higher-priority director while lbdeploy is master, keepalived stays
/// backup, and takes over within its Master_Down_Interval when lbdeploy
/// crashes.
#[test]
fn keepalived_nopreempt_leaves_lbdeploy_master() {
    let s = Subnet::allocate();
    let v = Version::V3;
    let cidr = s.cidr(VIP);
    let lab = lab_or_skip!("vrrp-nopreempt-keepalived", vrrp(s, 3));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    wait_sole_holder(&lab, &s.vip(), "keepalived01", election_bound(v));
    // Stopping lbdeploy on keepalived01 resigns: keepalived02 takes over.
    start_keepalived(
        &lab,
        s,
        "keepalived01",
        &v3_keepalived(&cidr, 120, "nopreempt"),
    );
    wait_sole_holder(&lab, &s.vip(), "keepalived02", takeover_bound(v));
    let advert = Duration::from_secs(1);
    let mdi = master_down_interval(v, 120, advert);
    stays_sole_holder(&lab, &s.vip(), "keepalived02", mdi * 2);

    let pids = agent_pids(&lab, "keepalived02");
    let took = failover(&lab, &s.vip(), &pids, "keepalived01");
    eprintln!("lbdeploy -> keepalived (nopreempt) failover: {took:?}");
    assert!(took <= mdi + SLACK, "{took:?}\n{}", logs(&lab));
}

/// `preempt_delay` against keepalived, and the notify hooks: restarted
/// after a crash, the higher-priority lbdeploy director tolerates
/// keepalived's lower-priority master for exactly the delay, then takes
/// the VIP back; every transition ran the state's hook and `any`, with
/// instance, state and priority as arguments.
#[test]
fn lbdeploy_preempt_delay_and_notify_hooks() {
    let s = Subnet::allocate();
    let v = Version::V3;
    let cidr = s.cidr(VIP);
    let delay = Duration::from_secs(3);
    let hook = "/run/hook.sh";
    let inventory = vrrp(s, 3)
        .instance_option(&format!("preempt_delay: {}s", delay.as_secs()))
        .instance_option(&format!(
            "notify: {{ master: [{hook}, master], backup: [{hook}, backup], \
             any: [{hook}, any] }}"
        ));
    let lab = lab_or_skip!("vrrp-preempt-delay", inventory);
    lab.exec_ok(
        "keepalived01",
        &format!(
            "printf '#!/bin/sh\\necho \"$*\" >> /run/hook.log\\n' > {hook}; \
             chmod +x {hook}"
        ),
    );
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    start_keepalived(&lab, s, "keepalived02", &v3_keepalived(&cidr, 70, ""));
    wait_sole_holder(&lab, &s.vip(), "keepalived01", election_bound(v));
    let hooks = hook_counts(&lab, 2);
    let took = failover(
        &lab,
        &s.vip(),
        &agent_pids(&lab, "keepalived01"),
        "keepalived02",
    );
    assert!(took <= takeover_bound(v), "{took:?}\n{}", logs(&lab));

    // Restart in one shell that then polls for the VIP: `s` is before the
    // start (the delay cannot have passed earlier), `a` after it returned
    // (the delay must have passed by then plus slack).
    let out = lab.exec_ok(
        "keepalived01",
        &format!(
            "ip addr del {cidr} dev eth0; s=$(date +%s%N); \
             lbdeploy agent start director --config /etc/lbdeploy/agent.yml \
               >/dev/null; a=$(date +%s%N); \
             until ip -o addr show dev eth0 | grep -q ' {vip}/'; do \
               sleep 0.005; \
               [ $(( $(date +%s%N) - s )) -gt 20000000000 ] && break; \
             done; e=$(date +%s%N); \
             echo $(( (e - s) / 1000 )) $(( (e - a) / 1000 ))",
            vip = s.vip()
        ),
    );
    let us: Vec<u64> =
        out.split_whitespace().map(|t| t.parse().unwrap()).collect();
    let (since_start, since_started) =
        (Duration::from_micros(us[0]), Duration::from_micros(us[1]));
    eprintln!("preempted {since_start:?} after the restart (delay {delay:?})");
    assert!(since_start >= delay, "{since_start:?}\n{}", logs(&lab));
    assert!(
        since_started <= delay + SLACK,
        "{since_started:?}\n{}",
        logs(&lab)
    );
    wait_sole_holder(&lab, &s.vip(), "keepalived01", SLACK * 10);

    // One more BACKUP (the restart) and one more MASTER (the preemption),
    // each through its own hook and `any`.
    let after = hook_counts(&lab, 4);
    for (line, count) in &after {
        let expected = hooks.get(line).copied().unwrap_or(0) + 1;
        assert_eq!(*count, expected, "{line}: {after:?} after {hooks:?}");
    }
    let lines = ["master", "backup", "any"].map(|h| {
        let state = if h == "backup" { "BACKUP" } else { "MASTER" };
        format!("{h} INSTANCE VI_1 {state} 120")
    });
    for line in lines {
        assert!(after.contains_key(&line), "{line} missing: {after:?}");
    }
    assert_eq!(after.len(), 4, "{after:?}");
}

/// The notify hooks' lines on keepalived01 (`master INSTANCE VI_1 MASTER
/// 120`, …) counted, once at least `masters` MASTER lines are there (hooks
/// run asynchronously; one second is far more than a fork and exec take).
fn hook_counts(
    lab: &TestLab,
    masters: usize,
) -> std::collections::BTreeMap<String, usize> {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        let log = lab.exec_ok("keepalived01", "cat /run/hook.log || true");
        let mut counts = std::collections::BTreeMap::new();
        // `kill -9` of supervisor and agent is two signals: when the
        // supervisor dies first, its death reaches the agent as SIGTERM
        // (PDEATHSIG), and on a loaded machine the agent may stop cleanly,
        // running its STOP hooks, before its own SIGKILL lands. Either way
        // is right; the transitions counted here are the elections'.
        for line in log.lines().filter(|l| !l.contains(" STOP ")) {
            *counts.entry(line.to_owned()).or_insert(0) += 1;
        }
        let m = log.lines().filter(|l| l.ends_with(" MASTER 120")).count();
        if m >= masters || Instant::now() > until {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// keepalived with VRRPv3 multicast.
pub(crate) fn v3_keepalived<'a>(
    vip_cidr: &'a str,
    priority: u8,
    options: &'a str,
) -> Keepalived<'a> {
    Keepalived { priority, version: 3, unicast: false, vip_cidr, options }
}

/// The master keeps its VIP (issue #16): one deleted by hand (as `ip addr
/// flush` or a network manager would) is back within 1 s, measured inside
/// the master, counted and logged; a VIP added by hand on the backup is
/// reported and left alone, since it is not the backup's to remove.
#[test]
fn r16_the_master_puts_back_a_deleted_vip_and_the_backup_leaves_one_alone() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("vrrp-keeps-vip", vrrp(s, 3));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    wait_sole_holder(&lab, &vip, "keepalived01", election_bound(Version::V3));

    let cidr = format!("{vip}/24");
    let back = lab.exec_ok(
        "keepalived01",
        &format!(
            "ip addr del {cidr} dev eth0; s=$(date +%s%N); \
             until ip -o addr show dev eth0 | grep -q ' {vip}/'; do \
               sleep 0.005; \
               [ $(( $(date +%s%N) - s )) -gt 5000000000 ] && break; \
             done; echo $(( ($(date +%s%N) - s) / 1000 ))"
        ),
    );
    let back = Duration::from_micros(back.trim().parse().unwrap());
    eprintln!("deleted VIP back after {back:?}");
    assert!(
        back <= Duration::from_secs(1),
        "back after {back:?}\n{}",
        logs(&lab)
    );
    assert_eq!(instance(&lab, "keepalived01")["counters"]["vip_restores"], 1);
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    assert!(
        log.contains(&format!("VIP {cidr} was removed while master; put back")),
        "{log}"
    );

    lab.exec_ok("keepalived02", &format!("ip addr add {cidr} dev eth0"));
    let until = Instant::now() + Duration::from_secs(1);
    while instance(&lab, "keepalived02")["counters"]["foreign_vips"] != 1 {
        assert!(Instant::now() < until, "not reported\n{}", logs(&lab));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(holders(&lab, &vip), DIRECTORS, "left alone on the backup");
    let log = lab.exec_ok("keepalived02", "cat /run/lbdeploy/agent.log");
    assert!(
        log.contains(
            "was added by someone else on this BACKUP director; left alone"
        ),
        "{log}"
    );
    lab.exec_ok("keepalived02", &format!("ip addr del {cidr} dev eth0"));
    stays_sole_holder(&lab, &vip, "keepalived01", Duration::from_secs(1));
}
