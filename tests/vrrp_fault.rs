//! Director failure semantics in the lab (issue #16): a master that loses
//! its link goes to FAULT (no VIP, no adverts, `notify.fault`), comes
//! back through BACKUP, preempts and announces itself, so clients follow
//! it at once — against lbdeploy and against keepalived on either side.
//!
//! Clients are measured, not assumed: a probe in the client namespace
//! tries the VIP every 10 ms and records when each try started, on the
//! clock every namespace shares, so its results line up with instants
//! measured inside the directors. Every bound is the protocol's.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;

use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab};
use crate::support::subnet::{Subnet, VIP};
use crate::vrrp_lab::{
    DIRECTORS, Keepalived, agent_status, instance, logs, start_keepalived,
    takeover_bound, vrrp, wait_sole_holder,
};

const SLACK: Duration = Duration::from_millis(100);
const ADVERT: Duration = Duration::from_secs(1);

/// The most probes one run makes (a minute at 10 ms): a probe nobody
/// stops ends by itself.
const PROBES_MAX: u32 = 6000;

/// A client trying `check` every 10 ms in the background.
struct Probe {
    child: Child,
    stop: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

/// One try: when it started (ns since the epoch) and whether it worked.
type Try = (u128, bool);

impl Probe {
    fn start(lab: &TestLab, name: &str, check: &str) -> Self {
        // Not the lab's own name: that directory holds the lab's state.
        let dir = TempDir::new(&format!("{name}-probe"));
        let stop = dir.path().join("stop");
        let log = dir.path().join("log");
        let script = format!(
            "i=0; while [ ! -e {stop} ] && [ $i -lt {PROBES_MAX} ]; do \
               i=$((i+1)); s=$(date +%s%N); \
               if {check} >/dev/null 2>&1; then echo $s ok; \
               else echo $s fail; fi; sleep 0.01; \
             done > {log}",
            stop = stop.display(),
            log = log.display(),
        );
        let child = lab
            .lab_cmd(&["exec", "client", "--", "sh", "-c"])
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the probe");
        Self { child, stop, log, _dir: dir }
    }

    /// Stop it and read every try.
    fn finish(mut self) -> Vec<Try> {
        std::fs::write(&self.stop, b"").unwrap();
        self.child.wait().unwrap();
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (t, r) = l.split_once(' ')?;
                Some((t.parse().ok()?, r == "ok"))
            })
            .collect()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, b"");
        let _ = self.child.wait();
    }
}

/// Run `action` in `host`, then poll (every 5 ms, up to 20 s) until
/// `cond` holds there; both instants in ns since the epoch.
fn timed(lab: &TestLab, host: &str, action: &str, cond: &str) -> (u128, u128) {
    let out = lab.exec_ok(
        host,
        &format!(
            "{action}; s=$(date +%s%N); \
             until {cond}; do sleep 0.005; \
               [ $(( $(date +%s%N) - s )) -gt 20000000000 ] && break; \
             done; echo $s $(date +%s%N)"
        ),
    );
    let mut t = out.split_whitespace().map(|t| t.parse().unwrap());
    (t.next().unwrap(), t.next().unwrap())
}

fn between(from: u128, to: u128) -> Duration {
    Duration::from_nanos(to.saturating_sub(from) as u64)
}

/// The shell condition "`host` holds the VIP" (or, with `!`, does not).
fn has_vip(vip: &str) -> String {
    format!("ip -o addr show dev eth0 | grep -q ' {vip}/'")
}

/// Who runs what in one link-flap test.
struct Flap<'a> {
    /// The lab's name.
    name: &'a str,
    /// Which director runs keepalived instead of lbdeploy, if any.
    keepalived_on: Option<&'a str>,
    /// How the client tries the VIP.
    check: &'a str,
    /// Start a responder on port [`DIRECT_PORT`] of both directors, for a
    /// check that reaches whichever holds the VIP itself.
    responders: bool,
    /// VRRPv3 over IPv6 with the IPv6 VIP ([`Inventory::ipv6`]) instead
    /// of VRRPv2 with the IPv4 one.
    ipv6: bool,
}

/// The longest duplicate address detection of the link-local address
/// that a link coming up takes with the kernel's defaults: a random delay
/// of up to 1 s (`rtr_solicit_delay`), then one probe unanswered for 1 s
/// (`dad_transmits`, `retrans_time_ms`). An IPv6 instance speaks from that
/// address, so its return waits for it.
const DAD_MAX: Duration = Duration::from_secs(2);

/// The port of [`Flap::responders`].
const DIRECT_PORT: u16 = 8080;

/// keepalived01 (priority 120) is master, keepalived02 (70) backup.
/// `ip link set eth0 down` on the master: it holds no VIP within one
/// advert interval, and the backup takes over within its
/// Master_Down_Interval. `up` again: the old master comes back as backup,
/// preempts after its own Master_Down_Interval and announces itself;
/// every client try that starts 1 s after the preemption succeeds. An
/// lbdeploy master is also checked while in fault ([`check_faulted`]).
/// Over IPv6 the link-local address adverts are sent from is in
/// duplicate address detection after link-up, which the return may wait
/// out ([`DAD_MAX`]), and the announcements are Neighbour Advertisements.
/// Returns the lab for further checks.
fn link_flap(s: Subnet, flap: &Flap<'_>) -> Option<TestLab> {
    let (v, vip, inventory) = if flap.ipv6 {
        (Version::V3, s.vip6(), Inventory::example(s).ipv6())
    } else {
        (Version::V2, s.vip(), vrrp(s, 2))
    };
    let hook = "/run/hook.sh";
    let inventory = inventory
        .instance_option(&format!("notify: {{ fault: [{hook}, fault] }}"));
    let lab = TestLab::up(flap.name, &inventory.to_string())?;
    lab.exec_ok(
        "keepalived01",
        &format!(
            "printf '#!/bin/sh\\necho \"$*\" >> /run/hook.log\\n' > {hook}; \
             chmod +x {hook}"
        ),
    );
    if flap.ipv6 {
        // No IPv6 data plane yet: the directors answer for the VIP
        // themselves, and the client needs an address on its prefix.
        lab.lbdeploy_exit(0, &["apply", "--yes"]);
        lab.exec_ok(
            "client",
            &format!("ip addr add {}/64 dev eth0 nodad", s.addr6(100)),
        );
    } else {
        lab.apply_until_forwarding(&vip);
    }
    let any = if flap.ipv6 { "::" } else { "0.0.0.0" };
    for host in DIRECTORS.iter().filter(|_| flap.responders) {
        lab.exec_ok(
            host,
            &format!(
                "setsid lbdeploy lab responder --port {DIRECT_PORT} \
                   --name {host} --listen {any} </dev/null >/dev/null 2>&1 &"
            ),
        );
    }
    if let Some(host) = flap.keepalived_on {
        let (cidr, version) =
            if flap.ipv6 { (format!("{vip}/64"), 3) } else { (s.cidr(VIP), 2) };
        let priority = if host == "keepalived01" { 120 } else { 70 };
        let ka = Keepalived {
            priority,
            version,
            unicast: false,
            vip_cidr: &cidr,
            options: "",
        };
        start_keepalived(&lab, s, host, &ka);
    }
    let bound = master_down_interval(v, 120, ADVERT) + 4 * SLACK;
    wait_sole_holder(&lab, &vip, "keepalived01", bound);
    let probe = Probe::start(&lab, flap.name, flap.check);
    std::thread::sleep(Duration::from_millis(300));

    let (down, gone) = timed(
        &lab,
        "keepalived01",
        "ip link set eth0 down",
        &format!("! {}", has_vip(&vip)),
    );
    let gone = between(down, gone);
    eprintln!("the VIP left the faulted master after {gone:?}");
    assert!(gone <= ADVERT, "{gone:?}\n{}", logs(&lab));
    wait_sole_holder(&lab, &vip, "keepalived02", takeover_bound(v));
    if flap.keepalived_on != Some("keepalived01") {
        check_faulted(&lab);
    }

    let (up, preempted) =
        timed(&lab, "keepalived01", "ip link set eth0 up", &has_vip(&vip));
    let preempt = between(up, preempted);
    eprintln!("the old master preempted {preempt:?} after link-up");
    let mdi = master_down_interval(v, 120, ADVERT);
    let dad = if flap.ipv6 { DAD_MAX } else { Duration::ZERO };
    assert!(preempt <= dad + mdi + 2 * SLACK, "{preempt:?}\n{}", logs(&lab));
    wait_sole_holder(&lab, &vip, "keepalived01", ADVERT + SLACK);
    if flap.ipv6 {
        // The client's entry for the VIP moved back without it asking.
        let mac =
            lab.exec_ok("keepalived01", "cat /sys/class/net/eth0/address");
        let neigh =
            lab.exec_ok("client", &format!("ip -6 neigh show {vip} dev eth0"));
        assert!(neigh.contains(mac.trim()), "{neigh} is not {mac}");
    }
    std::thread::sleep(Duration::from_secs(2));

    let tries = probe.finish();
    let settled = preempted + Duration::from_secs(1).as_nanos();
    let after: Vec<&Try> = tries.iter().filter(|t| t.0 >= settled).collect();
    let failed = after.iter().filter(|t| !t.1).count();
    let last_fail = tries.iter().filter(|t| !t.1).map(|t| t.0).max();
    eprintln!(
        "{} tries; the last failure {:?} after the preemption; {failed} of \
         {} failed 1 s after it",
        tries.len(),
        last_fail.map(|f| f as i128 - preempted as i128).map(|d| d / 1_000_000),
        after.len()
    );
    assert!(after.len() >= 10, "{} tries after the preemption", after.len());
    assert_eq!(failed, 0, "tries failed 1 s after the preemption");
    Some(lab)
}

/// Both directors lbdeploy, the client fetching through the VIP.
#[test]
fn r16_link_loss_faults_the_master_and_clients_follow_it_back() {
    let s = Subnet::allocate();
    let url = format!("http://{}/", s.vip());
    let check = format!("curl -sf -o /dev/null --max-time 0.3 {url}");
    let flap = Flap {
        name: "vrrp-flap",
        keepalived_on: None,
        check: &check,
        responders: false,
        ipv6: false,
    };
    let Some(lab) = link_flap(s, &flap) else { return };
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    for line in ["fault: eth0 is down", "MASTER -> FAULT", "FAULT -> BACKUP"] {
        assert!(log.contains(line), "{line} missing:\n{log}");
    }
}

/// The same over IPv6 (VRRPv3 on ff02::12, both directors lbdeploy): the
/// master faults on link loss, the backup takes over, and on link-up the
/// old master comes back through BACKUP once duplicate address detection
/// lets it speak, preempts and sends unsolicited Neighbour Advertisements:
/// the client, whose neighbour entry for the VIP points at the backup's
/// MAC meanwhile, reaches the VIP (a responder on each director) again
/// within 1 s of the preemption.
#[test]
fn r16_ipv6_link_loss_faults_the_master_and_clients_follow_it_back() {
    let s = Subnet::allocate();
    let check = ipv6_check(s);
    let flap = Flap {
        name: "vrrp6-flap",
        keepalived_on: None,
        check: &check,
        responders: true,
        ipv6: true,
    };
    let Some(lab) = link_flap(s, &flap) else { return };
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    for line in ["fault: eth0 is down", "MASTER -> FAULT", "FAULT -> BACKUP"] {
        assert!(log.contains(line), "{line} missing:\n{log}");
    }
}

/// The client's try over IPv6: the responder of whichever director holds
/// the VIP (no IPv6 data plane yet).
fn ipv6_check(s: Subnet) -> String {
    let url = format!("http://[{}]:{DIRECT_PORT}/", s.vip6());
    format!("curl -g -sf -o /dev/null --max-time 0.3 {url}")
}

/// IPv6 with keepalived as the backup: it takes over from the faulted
/// lbdeploy master and yields when lbdeploy preempts; the client follows
/// lbdeploy's Neighbour Advertisements within 1 s.
#[test]
fn r16_ipv6_link_loss_with_keepalived_as_the_backup() {
    let s = Subnet::allocate();
    let check = ipv6_check(s);
    let flap = Flap {
        name: "vrrp6-flap-ka-backup",
        keepalived_on: Some("keepalived02"),
        check: &check,
        responders: true,
        ipv6: true,
    };
    link_flap(s, &flap);
}

/// IPv6 with keepalived as the master, lbdeploy the backup: lbdeploy
/// takes over from the faulted keepalived and yields when it preempts.
#[test]
fn r16_ipv6_link_loss_with_keepalived_as_the_master() {
    let s = Subnet::allocate();
    let check = ipv6_check(s);
    let flap = Flap {
        name: "vrrp6-flap-ka-master",
        keepalived_on: Some("keepalived01"),
        check: &check,
        responders: true,
        ipv6: true,
    };
    link_flap(s, &flap);
}

/// While lbdeploy's master is in fault: its status shows FAULT and why
/// (JSON and text), it sends no advert, and `notify.fault` ran once.
fn check_faulted(lab: &TestLab) {
    let st = instance(lab, "keepalived01");
    assert_eq!(st["state"], "FAULT", "{st}");
    assert_eq!(st["fault"], "eth0 is down", "{st}");
    let text = lab.exec_ok("keepalived01", "lbdeploy agent status");
    assert!(
        text.contains("VI_1 (vrid 51): FAULT, priority 120 (eth0 is down)"),
        "{text}"
    );
    assert_eq!(agent_status(lab, "keepalived01")["healthy"], true);
    let sent = st["counters"]["adverts_sent"].clone();
    std::thread::sleep(ADVERT + SLACK);
    let st = instance(lab, "keepalived01");
    assert_eq!(st["counters"]["adverts_sent"], sent, "adverts in fault");
    let hooks = lab.exec_ok("keepalived01", "cat /run/hook.log");
    assert_eq!(hooks.trim(), "fault INSTANCE VI_1 FAULT 120", "{hooks}");
}

/// keepalived as the backup: it takes over from the faulted lbdeploy
/// master and yields when lbdeploy preempts; clients fetch through the
/// VIP again within 1 s of the preemption (lbdeploy's announcements).
#[test]
fn r16_link_loss_with_keepalived_as_the_backup() {
    let s = Subnet::allocate();
    let url = format!("http://{}/", s.vip());
    let check = format!("curl -sf -o /dev/null --max-time 0.3 {url}");
    let flap = Flap {
        name: "vrrp-flap-ka-backup",
        keepalived_on: Some("keepalived02"),
        check: &check,
        responders: false,
        ipv6: false,
    };
    link_flap(s, &flap);
}

/// keepalived as the master, lbdeploy the backup: lbdeploy takes over
/// from the faulted keepalived and yields when it preempts. keepalived has
/// no data plane in the lab, so clients fetch from a responder on the
/// director that holds the VIP.
#[test]
fn r16_link_loss_with_keepalived_as_the_master() {
    let s = Subnet::allocate();
    let url = format!("http://{}:{DIRECT_PORT}/", s.vip());
    let check = format!("curl -sf -o /dev/null --max-time 0.3 {url}");
    let flap = Flap {
        name: "vrrp-flap-ka-master",
        keepalived_on: Some("keepalived01"),
        check: &check,
        responders: true,
        ipv6: false,
    };
    link_flap(s, &flap);
}
