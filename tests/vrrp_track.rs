//! Tracking in the lab (issue #16): keepalived's `track_interface` with
//! its weights, against lbdeploy and keepalived peers. The master's
//! effective priority travels in its adverts, so a peer of either kind
//! makes the same transitions: a weight that takes the master below the
//! backup hands the VIP over after the backup's Master_Down_Interval; a
//! weight-0 object failing is a FAULT (a priority-0 advert: the backup
//! takes over after its Skew_Time).

use std::time::Duration;

use lbdeploy::agent::vrrp::fsm::{master_down_interval, skew_time};
use lbdeploy::agent::vrrp::packet::Version;

use crate::support::lab::{TempDir, TestLab};
use crate::support::subnet::{Subnet, VIP};
use crate::vrrp_lab::{
    DIRECTORS, Keepalived, agent_status, holders, instance, logs,
    start_keepalived, vrrp, wait_sole_holder,
};

const SLACK: Duration = Duration::from_millis(200);
const ADVERT: Duration = Duration::from_secs(1);
const V: Version = Version::V2;

/// The weight that takes keepalived01 (120) below keepalived02 (70).
const WEIGHT: i32 = -60;

/// keepalived01 tracks `trk0` (weight −60) and `trk1` (weight 0), veth
/// interfaces (the lab's kernel has no dummy driver) on every director; `keepalived_on` runs keepalived instead
/// of lbdeploy, with the same tracking.
fn lab(s: Subnet, name: &str, keepalived_on: Option<&str>) -> Option<TestLab> {
    let inventory = vrrp(s, 2).instance_option(&format!(
        "track: {{ interfaces: [{{ name: trk0, weight: {WEIGHT} }}, \
         {{ name: trk1 }}] }}"
    ));
    let lab = TestLab::up(name, &inventory.to_string())?;
    for host in DIRECTORS {
        lab.exec_ok(
            host,
            "for i in trk0 trk1; do ip link add $i type veth peer name \
             ${i}p && ip link set ${i}p up && ip link set $i up; done",
        );
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    if let Some(host) = keepalived_on {
        let cidr = s.cidr(VIP);
        let priority = if host == "keepalived01" { 120 } else { 70 };
        let options =
            format!("track_interface {{\n trk0 weight {WEIGHT}\n trk1\n }}");
        let ka = Keepalived {
            priority,
            version: 2,
            unicast: false,
            vip_cidr: &cidr,
            options: &options,
        };
        start_keepalived(&lab, s, host, &ka);
    }
    let bound = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    wait_sole_holder(&lab, &s.vip(), "keepalived01", bound);
    Some(lab)
}

/// The weight, then the fault, on keepalived01; checks its status when it
/// runs lbdeploy.
fn weight_then_fault(s: Subnet, name: &str, keepalived_on: Option<&str>) {
    let Some(lab) = lab(s, name, keepalived_on) else { return };
    let vip = s.vip();
    let lbdeploy01 = keepalived_on != Some("keepalived01");

    // trk0 down: 120 − 60 = 60 < 70. The backup stops accepting the
    // master's adverts and takes over when its timer, armed at the last
    // accepted one (at most an advert interval before), runs out.
    lab.exec_ok("keepalived01", "ip link set trk0 down");
    let handover = ADVERT + master_down_interval(V, 70, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived02", handover);
    if lbdeploy01 {
        let st = instance(&lab, "keepalived01");
        assert_eq!(st["state"], "BACKUP", "{st}");
        assert_eq!(st["priority"], 120, "{st}");
        assert_eq!(st["effective_priority"], 60, "{st}");
        assert_eq!(st["tracked"][0]["ok"], false, "{st}");
        let text = lab.exec_ok("keepalived01", "lbdeploy agent status");
        assert!(text.contains("BACKUP, priority 120 (effective 60)"), "{text}");
    }

    // trk0 up: 120 again; keepalived01 preempts when the timer it armed
    // at effective priority 60 runs out.
    lab.exec_ok("keepalived01", "ip link set trk0 up");
    let back = ADVERT + master_down_interval(V, 60, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived01", back);

    // trk1 (weight 0) down: FAULT, a priority-0 advert, the backup takes
    // over after its Skew_Time.
    lab.exec_ok("keepalived01", "ip link set trk1 down");
    let fault = skew_time(V, 70, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived02", fault);
    if lbdeploy01 {
        let st = instance(&lab, "keepalived01");
        assert_eq!(st["state"], "FAULT", "{st}");
        assert_eq!(st["fault"], "interface trk1 failed", "{st}");
    }
    lab.exec_ok("keepalived01", "ip link set trk1 up");
    let back = ADVERT + master_down_interval(V, 120, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived01", back);
    if lbdeploy01 {
        let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
        for line in [
            "priority 120 -> 60 (tracking)",
            "priority 60 -> 120 (tracking)",
            "fault: interface trk1 failed",
        ] {
            assert!(log.contains(line), "{line} missing\n{}", logs(&lab));
        }
    }
}

#[test]
fn r16_tracked_interfaces_move_the_priority_and_weight_zero_faults() {
    weight_then_fault(Subnet::allocate(), "vrrp-track", None);
}

/// keepalived as the backup follows lbdeploy's effective priority.
#[test]
fn r16_tracked_interfaces_with_keepalived_as_the_backup() {
    let s = Subnet::allocate();
    weight_then_fault(s, "vrrp-track-ka-backup", Some("keepalived02"));
}

/// lbdeploy as the backup follows keepalived's effective priority.
#[test]
fn r16_tracked_interfaces_with_keepalived_as_the_master() {
    let s = Subnet::allocate();
    weight_then_fault(s, "vrrp-track-ka-master", Some("keepalived01"));
}

/// How often the test's script runs, and how many failures fail it.
const SCRIPT_INTERVAL: Duration = Duration::from_millis(200);
const SCRIPT_FALL: u32 = 2;

/// How the tracked script of [`script_weight`] is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    /// `test -e /run/ok`, weight −60: failing costs 60.
    Plain,
    /// `test -e /run/bad`, weight 60 `reverse` (keepalived's `weight 60
    /// reverse`): succeeding costs 60, so the file's presence is what
    /// fails over.
    Reversed,
}

/// keepalived01 tracks a script that every director runs; making it
/// report trouble on keepalived01 (removing /run/ok, or with `reverse`
/// creating /run/bad) takes 60 off its priority after `fall` runs, and
/// the backup — lbdeploy or keepalived — takes over as for an interface;
/// undoing it gives the VIP back.
fn script_weight(
    s: Subnet,
    name: &str,
    keepalived_on: Option<&str>,
    script: Script,
) {
    let (test, weight, trouble, mend) = match script {
        Script::Plain => {
            ("ok", format!("{WEIGHT}"), "rm /run/ok", "touch /run/ok")
        }
        Script::Reversed => (
            "bad",
            format!("{}\n    reverse: true", -WEIGHT),
            "touch /run/bad",
            "rm /run/bad",
        ),
    };
    let inventory = vrrp(s, 2)
        .instance_option("track: { scripts: [{ name: chk_ok }] }")
        .top(&format!(
            "vrrp_scripts:\n  - name: chk_ok\n    command: [/bin/sh, -c, \
             'test -e /run/{test}']\n    interval: {}ms\n    weight: {weight}\n    \
             fall: {SCRIPT_FALL}\n    rise: 2\n",
            SCRIPT_INTERVAL.as_millis()
        ));
    let Some(lab) = TestLab::up(name, &inventory.to_string()) else { return };
    for host in DIRECTORS {
        lab.exec_ok(host, "touch /run/ok; rm -f /run/bad");
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    if let Some(host) = keepalived_on {
        let cidr = s.cidr(VIP);
        let ka = Keepalived {
            priority: 70,
            version: 2,
            unicast: false,
            vip_cidr: &cidr,
            options: "",
        };
        start_keepalived(&lab, s, host, &ka);
    }
    let vip = s.vip();
    let bound = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    wait_sole_holder(&lab, &vip, "keepalived01", bound);

    lab.exec_ok("keepalived01", trouble);
    // `fall` runs for the plain script to fail; `rise` for the reversed
    // one to succeed (both 2).
    let noticed = SCRIPT_INTERVAL * (SCRIPT_FALL + 1);
    let handover = noticed + ADVERT + master_down_interval(V, 70, ADVERT);
    wait_sole_holder(&lab, &vip, "keepalived02", handover + SLACK);
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["effective_priority"], 60, "{st}");
    assert_eq!(st["tracked"][0]["what"], "script chk_ok", "{st}");
    assert_eq!(st["tracked"][0]["ok"], script == Script::Reversed, "{st}");
    assert_eq!(st["tracked"][0]["reverse"] == true, script == Script::Reversed);

    lab.exec_ok("keepalived01", mend);
    let back = noticed + ADVERT + master_down_interval(V, 60, ADVERT);
    wait_sole_holder(&lab, &vip, "keepalived01", back + SLACK);
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    for line in ["script chk_ok: failed", "script chk_ok: ok again"] {
        assert!(log.contains(line), "{line} missing\n{}", logs(&lab));
    }
}

#[test]
fn r16_a_tracked_script_moves_the_priority() {
    script_weight(Subnet::allocate(), "vrrp-script", None, Script::Plain);
}

/// keepalived's `weight N reverse` on a script (issue #21's import
/// findings): carried, and the priority moves the other way.
#[test]
fn r21_a_reversed_script_costs_priority_while_it_succeeds() {
    let s = Subnet::allocate();
    script_weight(s, "vrrp-script-reverse", None, Script::Reversed);
}

#[test]
fn r16_a_tracked_script_with_keepalived_as_the_backup() {
    let s = Subnet::allocate();
    script_weight(
        s,
        "vrrp-script-ka-backup",
        Some("keepalived02"),
        Script::Plain,
    );
}

/// A sync group (keepalived's `vrrp_sync_group`): VI_1 tracks `trk1`
/// (weight 0), VI_2 tracks nothing; when `trk1` goes down on
/// keepalived01, VI_1 is in fault of itself and VI_2 because of its
/// group, so both VIPs move to keepalived02 (each after the backup's
/// Skew_Time: both resign with a priority-0 advert), and the group's own
/// hook runs once with `GROUP VG_1 FAULT 0`. `trk1` up: both come back.
#[test]
fn r16_a_sync_group_fails_together() {
    let s = Subnet::allocate();
    let hook = "/run/group-hook.sh";
    let vip2 = s.addr(201);
    let inventory = vrrp(s, 2)
        .instance_option("track: { interfaces: [{ name: trk1 }] }")
        .top(&format!(
            "vrrp_sync_groups:\n  - name: VG_1\n    instances: [VI_1, VI_2]\n    \
             notify: {{ fault: [{hook}, fault], master: [{hook}, master] }}\n"
        ))
        .to_string()
        .replacen(
            "virtual_services:\n",
            &format!(
                "  - name: VI_2\n    virtual_router_id: 52\n    version: 2\n    \
                 virtual_addresses: [{{ address: {vip2}/24 }}]\n\
                 virtual_services:\n"
            ),
            1,
        );
    let Some(lab) = TestLab::up("vrrp-sync-group", &inventory) else { return };
    for host in DIRECTORS {
        lab.exec_ok(
            host,
            "ip link add trk1 type veth peer name trk1p && \
             ip link set trk1p up && ip link set trk1 up",
        );
    }
    lab.exec_ok(
        "keepalived01",
        &format!(
            "printf '#!/bin/sh\\necho \"$*\" >> /run/group-hook.log\\n' > {hook}; \
             chmod +x {hook}"
        ),
    );
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vips = [s.vip(), vip2];
    let bound = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    for vip in &vips {
        wait_sole_holder(&lab, vip, "keepalived01", bound);
    }

    lab.exec_ok("keepalived01", "ip link set trk1 down");
    let fault = skew_time(V, 70, ADVERT) + SLACK;
    for vip in &vips {
        wait_sole_holder(&lab, vip, "keepalived02", fault);
    }
    let st = agent_status(&lab, "keepalived01");
    let second = &st["details"]["vrrp_instances"][1];
    assert_eq!(second["state"], "FAULT", "{st}");
    assert_eq!(
        second["fault"],
        "sync group VG_1: VI_1 is in fault (interface trk1 failed)",
        "{st}"
    );

    lab.exec_ok("keepalived01", "ip link set trk1 up");
    let back = ADVERT + master_down_interval(V, 120, ADVERT) + SLACK;
    for vip in &vips {
        wait_sole_holder(&lab, vip, "keepalived01", back);
    }
    let hooks = lab.exec_ok("keepalived01", "cat /run/group-hook.log");
    assert_eq!(
        hooks.lines().collect::<Vec<_>>(),
        [
            "master GROUP VG_1 MASTER 0",
            "fault GROUP VG_1 FAULT 0",
            "master GROUP VG_1 MASTER 0"
        ],
        "{}",
        logs(&lab)
    );
}

/// How many scripts the jitter test runs, each once a second.
const SCRIPTS: usize = 100;

/// A hundred tracked scripts, each run once a second, do not delay the
/// master's adverts: captured on the backup for 15 s, every gap between
/// two adverts stays within 100 ms of the advert interval (the backup
/// waits three intervals, so a gap even a few hundred milliseconds long
/// would still be safe; this bound is there to catch a loop that blocks).
#[test]
fn r16_a_hundred_scripts_do_not_delay_adverts() {
    let s = Subnet::allocate();
    let names: Vec<String> = (0..SCRIPTS).map(|i| format!("chk{i}")).collect();
    let tracked = names
        .iter()
        .map(|n| format!("{{ name: {n} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let scripts: String = names
        .iter()
        .map(|n| format!("  - {{ name: {n}, command: [/bin/true] }}\n"))
        .collect();
    let inventory = vrrp(s, 2)
        .instance_option(&format!("track: {{ scripts: [{tracked}] }}"))
        .top(&format!("vrrp_scripts:\n{scripts}"));
    let Some(lab) = TestLab::up("vrrp-script-jitter", &inventory.to_string())
    else {
        return;
    };
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let bound = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    wait_sole_holder(&lab, &s.vip(), "keepalived01", bound);
    let master = s.addr(11);
    let capture = lab.exec_ok(
        "keepalived02",
        &format!(
            "timeout 15 tcpdump -l -n -tt -i eth0 'ip proto 112 and src \
             {master}' 2>/dev/null || true"
        ),
    );
    let times: Vec<f64> = capture
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    assert!(gaps.len() >= 12, "{} adverts captured", times.len());
    let (p50, max) = (gaps[gaps.len() / 2], gaps[gaps.len() - 1]);
    let min = gaps[0];
    eprintln!(
        "{SCRIPTS} scripts at 1 s: {} advert gaps, min {min:.4} s, median \
         {p50:.4} s, max {max:.4} s",
        gaps.len()
    );
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["state"], "MASTER", "{st}");
    assert_eq!(st["tracked"].as_array().map(Vec::len), Some(SCRIPTS));
    assert!((0.9..=1.1).contains(&min) && max <= 1.1, "{gaps:?}");
}

/// A tracked file (weight −10: its number times −10 is added; the agent
/// gives it its starting number, keepalived's `init_file`) and a
/// tracked process (weight 0: FAULT while it is not running), as
/// keepalived's `vrrp_track_file` and `vrrp_track_process`. The lab's
/// hosts share one PID namespace, so both directors see the same
/// processes: the daemon runs once, and when it dies both directors are
/// in fault and nobody holds the VIP, as keepalived would do here.
#[test]
fn r16_a_tracked_file_and_process_move_the_priority_and_fault() {
    let s = Subnet::allocate();
    let inventory = vrrp(s, 2)
        .instance_option(
            "track: { files: [{ name: prio }], processes: [{ name: daemon }] }",
        )
        .top(
            "vrrp_track_files:\n  - { name: prio, path: /run/lbd-prio, \
             weight: -10, init: { value: 2 } }\nvrrp_track_processes:\n  - { name: daemon, \
             process: lbd-daemon }\n",
        );
    let Some(lab) = TestLab::up("vrrp-track-file", &inventory.to_string())
    else {
        return;
    };
    let daemon = "cp /bin/sleep /run/lbd-daemon && \
                  (setsid /run/lbd-daemon 600 </dev/null >/dev/null 2>&1 & \
                   echo $! > /run/lbd-daemon.pid)";
    lab.exec_ok("keepalived01", daemon);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let vip = s.vip();
    let bound = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    wait_sole_holder(&lab, &vip, "keepalived01", bound);
    // The agent gave the missing file its starting number: 120 − 2 × 10.
    let started = lab.exec_ok("keepalived01", "cat /run/lbd-prio");
    assert_eq!(started, "2\n");
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["effective_priority"], 100, "{st}");
    // keepalived02 (70 − 20) back to 70, to take over below.
    lab.exec_ok("keepalived02", "echo 0 > /run/lbd-prio");

    // 6 × −10: 120 − 60 = 60 < 70. inotify sees the write at once.
    lab.exec_ok("keepalived01", "echo 6 > /run/lbd-prio");
    let handover = ADVERT + master_down_interval(V, 70, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived02", handover);
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["effective_priority"], 60, "{st}");
    assert_eq!(st["tracked"][0]["value"], 6, "{st}");
    lab.exec_ok("keepalived01", "echo 0 > /run/lbd-prio");
    let back = ADVERT + master_down_interval(V, 60, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived01", back);

    // The process gone: FAULT at the next scan (1 s), on both.
    lab.exec_ok("keepalived01", "kill $(cat /run/lbd-daemon.pid)");
    let until = std::time::Instant::now() + ADVERT + SLACK;
    let faulted = |h| instance(&lab, h)["state"] == "FAULT";
    while !DIRECTORS.iter().all(|h| faulted(h)) {
        assert!(std::time::Instant::now() < until, "{}", logs(&lab));
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["fault"], "process daemon failed", "{st}");
    assert!(holders(&lab, &vip).is_empty(), "{}", logs(&lab));
    lab.exec_ok("keepalived01", daemon);
    let back = 2 * ADVERT + master_down_interval(V, 120, ADVERT) + SLACK;
    wait_sole_holder(&lab, &vip, "keepalived01", back);
}

/// `script_security: true` (keepalived's `enable_script_security`): a
/// tracked script that someone but root could replace — here one under
/// `/tmp`, which everyone may write — is refused when the agent loads its
/// configuration, so the first apply rolls the host back naming it; a
/// script from `/bin` is accepted.
#[test]
fn r17_script_security_refuses_a_script_others_could_replace() {
    let s = Subnet::allocate();
    let with = |program: &str| {
        vrrp(s, 2)
            .instance_option("track: { scripts: [{ name: chk }] }")
            .top(&format!(
                "script_security: true\nvrrp_scripts:\n  - {{ name: chk, \
                 command: [{program}] }}\n"
            ))
            .to_string()
    };
    let dir = TempDir::new("script-security-open");
    let exposed = dir.path().join("chk");
    std::fs::write(&exposed, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        &exposed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let exposed = exposed.display().to_string();
    let Some(lab) = TestLab::up("script-security", &with(&exposed)) else {
        return;
    };
    let out = lab.lbdeploy_exit(3, &["apply", "--yes"]);
    let why = format!("script chk: {exposed}: /tmp is writable by everyone");
    assert!(out.contains("keepalived02  failed: activation failed"), "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains(&why), "{why} missing:\n{out}");
    lab.rewrite_inventory(&with("/bin/true"));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["tracked"][0]["what"], "script chk", "{st}");
}

/// `script_user` (keepalived's `script_user`): a tracked script and a
/// notify hook run as `nobody` (lab hosts share the machine's
/// `/etc/passwd`), with its uid and gid, no supplementary group and no
/// capability — read from their own `/proc/self/status` — while the
/// agent keeps running VRRP. A script user the host does not have is
/// refused when the agent loads its configuration: the first apply rolls
/// back naming it.
#[test]
fn r17_scripts_and_hooks_run_as_the_script_user() {
    let s = Subnet::allocate();
    let with = |user: &str| {
        vrrp(s, 2)
            .instance_option("track: { scripts: [{ name: chk }] }")
            .instance_option(
                "notify: { master: [/bin/sh, -c, 'cat /proc/self/status \
                 > /run/lbd-su/notify'] }",
            )
            .top(&format!(
                "script_security: true\nscript_user: {user}\nvrrp_scripts:\n  \
                 - {{ name: chk, interval: 500ms, command: [/bin/sh, -c, \
                 'cat /proc/self/status > /run/lbd-su/script'] }}\n"
            ))
            .to_string()
    };
    let Some(lab) = TestLab::up("script-user", &with("no-such-user")) else {
        return;
    };
    for host in DIRECTORS {
        lab.exec_ok(host, "mkdir -m 1777 /run/lbd-su");
    }
    let out = lab.lbdeploy_exit(3, &["apply", "--yes"]);
    let why = "script chk: user no-such-user: no user `no-such-user` in \
               /etc/passwd";
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains(why), "{why} missing:\n{out}");

    lab.rewrite_inventory(&with("nobody"));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let bound = master_down_interval(V, 120, ADVERT) + Duration::from_secs(4);
    wait_sole_holder(&lab, &s.vip(), "keepalived01", bound);
    let uid = lab.exec_ok("keepalived01", "id -u nobody");
    let gid = lab.exec_ok("keepalived01", "id -g nobody");
    let (uid, gid) = (uid.trim(), gid.trim());
    for file in ["script", "notify"] {
        let status = lab.exec_ok(
            "keepalived01",
            &format!(
                "for i in $(seq 50); do test -s /run/lbd-su/{file} && break; \
                 sleep 0.1; done; cat /run/lbd-su/{file}"
            ),
        );
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| panic!("{file}: no {name} in {status:?}"))
        };
        assert_eq!(field("Uid"), format!("{uid} {uid} {uid} {uid}"), "{file}");
        assert_eq!(field("Gid"), format!("{gid} {gid} {gid} {gid}"), "{file}");
        assert_eq!(field("Groups"), "", "{file}");
        for caps in ["CapEff", "CapPrm", "CapAmb"] {
            assert_eq!(field(caps), "0000000000000000", "{file} {caps}");
        }
    }
    let st = instance(&lab, "keepalived01");
    assert_eq!(st["tracked"][0]["ok"], true, "{st}");
    assert_eq!(st["state"], "MASTER", "{st}");
    // The supervised agent kept CAP_SETUID, CAP_SETGID and CAP_KILL (0xe0)
    // beside CAP_NET_ADMIN and CAP_NET_RAW (0x3000) for itself: never in
    // ambient nor in the bounding set, so a program it runs as root cannot get
    // them either.
    let pid = agent_status(&lab, "keepalived01")["pid"].as_i64().unwrap();
    let agent = lab.exec_ok("keepalived01", &format!("cat /proc/{pid}/status"));
    for (caps, bits) in [
        ("CapEff", "00000000000030e0"),
        ("CapPrm", "00000000000030e0"),
        ("CapBnd", "0000000000003000"),
        ("CapAmb", "0000000000003000"),
    ] {
        let line = format!("{caps}:\t{bits}");
        assert!(agent.lines().any(|l| l == line), "{line} missing:\n{agent}");
    }
}
