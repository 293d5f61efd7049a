//! `lbdeploy lab` (issue #3): every inventory host a namespace host with
//! its own files, sysctls and sshd; `down` leaves nothing behind.
//!
//! Each lab has a subnet of its own ([`Subnet::allocate`]), so the tests
//! run in parallel.

use std::process::Command;
use std::time::Duration;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{
    LBDEPLOY, Remains, TempDir, describe, is_root, skip,
};
use crate::support::subnet::Subnet;

const MANAGED: [&str; 4] = ["keepalived01", "keepalived02", "rs01", "rs02"];

#[test]
fn controller_reaches_every_host_over_ssh() {
    let lab = lab_or_skip!("ssh", Inventory::example(Subnet::allocate()));
    for host in MANAGED {
        let out = lab.ssh("controller", host, "true");
        assert!(out.status.success(), "ssh {host} true\n{}", describe(&out));
        // By address too: known_hosts names both, checking stays strict.
        let addr = lab.exec_ok(
            "controller",
            &format!("ssh -G {host} | sed -n 's/^hostname //p'"),
        );
        let name = lab.exec_ok(
            "controller",
            &format!("ssh root@{} hostname", addr.trim()),
        );
        assert_eq!(name.trim(), host);
    }
}

#[test]
fn managed_paths_are_private_to_each_host() {
    let lab = lab_or_skip!("files", Inventory::example(Subnet::allocate()));
    let marker = format!("marker-{}", std::process::id());
    for path in [
        "/etc/lbdeploy",
        "/var/lib/lbdeploy",
        "/usr/local/sbin",
        "/etc/sysctl.d",
        "/etc/systemd/system",
        "/run/lbdeploy",
        "/root",
    ] {
        let file = format!("{path}/{marker}");
        lab.exec_ok("keepalived01", &format!("echo here > {file}"));
        assert_eq!(
            lab.exec_ok("keepalived01", &format!("cat {file}")),
            "here\n"
        );
        for other in ["keepalived02", "rs01", "rs02", "controller", "client"] {
            let out = lab.exec(other, &format!("test ! -e {file}"));
            assert!(out.status.success(), "{file} visible on {other}");
        }
        assert!(
            !std::path::Path::new(&file).exists(),
            "{file} visible on the machine"
        );
    }
    // The same through SSH, as lbdeploy will write it.
    let out =
        lab.ssh("controller", "rs01", &format!("touch /etc/lbdeploy/{marker}"));
    assert!(out.status.success(), "{}", describe(&out));
    lab.exec_ok("rs01", &format!("test -e /etc/lbdeploy/{marker}"));
    lab.exec_ok("rs02", &format!("test ! -e /etc/lbdeploy/{marker}"));
}

#[test]
fn sysctls_are_per_host() {
    let lab = lab_or_skip!("sysctl", Inventory::example(Subnet::allocate()));
    let key = "net.ipv4.conf.all.arp_ignore";
    let machine =
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore")
            .unwrap();
    lab.exec_ok("rs01", &format!("sysctl -qw {key}=1"));
    assert_eq!(lab.exec_ok("rs01", &format!("sysctl -n {key}")), "1\n");
    assert_eq!(lab.exec_ok("rs02", &format!("sysctl -n {key}")), "0\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore")
            .unwrap(),
        machine
    );
}

#[test]
fn client_reaches_each_responder_at_its_rip() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("http", Inventory::example(s));
    for (host, rip) in [("rs01", s.addr(21)), ("rs02", s.addr(22))] {
        let out = lab.curl("client", &format!("http://{rip}/"));
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{host}\n"));
        let code = lab.exec_ok(
            "client",
            &format!("curl -s -o /dev/null -w '%{{http_code}}' http://{rip}/lvstest.html"),
        );
        assert_eq!(code, "200");
    }
    // The responder binds the wildcard address, so a VIP on `lo` is served
    // as soon as it is there (what the real-server agent will do). Without
    // ARP suppression rs01 answers ARP for it: the client gets there.
    lab.exec_ok("rs01", &format!("ip addr add {}/32 dev lo", s.vip()));
    let out = lab.curl_vip();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rs01\n",
        "{}",
        describe(&out)
    );
}

#[test]
fn down_leaves_nothing_behind_and_a_second_down_is_a_noop() {
    let mut lab = lab_or_skip!("down", Inventory::example(Subnet::allocate()));
    // An SSH session and a stray process in a host must go as well.
    lab.exec_ok("controller", "ssh rs01 sleep 600 >/dev/null 2>&1 &");
    lab.exec_ok("rs02", "sleep 600 >/dev/null 2>&1 &");
    let remains = Remains::of(&lab.status());
    let out = lab.down();
    assert!(out.status.success(), "{}", describe(&out));
    remains.assert_gone();
    let again = lab.lab(&["down"]);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to do"));
}

#[test]
fn two_labs_run_side_by_side() {
    let (sa, sb) = (Subnet::allocate(), Subnet::allocate());
    let a = lab_or_skip!("two-a", Inventory::example(sa));
    let mut b = lab_or_skip!("two-b", Inventory::example(sb));
    assert_ne!(a.status()["id"], b.status()["id"]);
    assert_eq!(a.exec_ok("controller", "ssh rs01 hostname"), "rs01\n");
    assert_eq!(b.exec_ok("controller", "ssh rs01 hostname"), "rs01\n");
    // Separate segments: a's client cannot reach b's real server.
    let out = a.exec(
        "client",
        &format!("curl -s --max-time 1 http://{}/", sb.addr(21)),
    );
    assert!(!out.status.success(), "lab a reached lab b\n{}", describe(&out));
    let remains = Remains::of(&b.status());
    assert!(b.down().status.success());
    remains.assert_gone();
    assert_eq!(a.exec_ok("controller", "ssh rs02 hostname"), "rs02\n");
}

#[test]
fn up_twice_is_idempotent_and_up_repairs_a_broken_lab() {
    let lab = lab_or_skip!("idem", Inventory::example(Subnet::allocate()));
    let before = lab.status();
    let out = lab.lab(&["up"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already up"));
    assert_eq!(lab.status(), before, "a second up changed the lab");

    // A dead sshd makes the lab not whole: status says so, up rebuilds.
    let sshd = before["hosts"][0]["processes"][1]["pid"].as_i64().unwrap();
    assert_eq!(before["hosts"][0]["processes"][1]["kind"], "sshd");
    let pid = rustix::process::Pid::from_raw(i32::try_from(sshd).unwrap());
    rustix::process::kill_process(pid.unwrap(), rustix::process::Signal::TERM)
        .unwrap();
    let mut status = lab.lab(&["status"]);
    for _ in 0..100 {
        if status.status.code() == Some(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        status = lab.lab(&["status"]);
    }
    assert_eq!(status.status.code(), Some(3), "{}", describe(&status));
    lab.lab_ok(&["up"]);
    assert_eq!(lab.status()["healthy"], true);
    assert_eq!(
        lab.exec_ok("controller", "ssh keepalived01 hostname"),
        "keepalived01\n"
    );
}

/// r3: `down` after an `up` killed half-way removes what it had made,
/// whenever the kill lands.
#[test]
fn r3_down_after_an_interrupted_up_cleans_up() {
    if !is_root() {
        skip("crash");
        return;
    }
    let dir = TempDir::new("crash");
    let inventory = dir.path().join("inventory.yml");
    std::fs::write(
        &inventory,
        Inventory::example(Subnet::allocate()).to_string(),
    )
    .unwrap();
    let state = dir.path().join("state");
    let lab = |sub: &str| {
        let mut c = Command::new(LBDEPLOY);
        c.arg("-i")
            .arg(&inventory)
            .args(["lab", "--state-dir"])
            .arg(&state)
            .arg(sub);
        c
    };
    for delay_ms in [40, 120, 250] {
        let mut up =
            lab("up").stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = up.kill();
        let _ = up.wait();
        let status = lab("status").arg("--json").output().unwrap();
        let remains = serde_json::from_slice(&status.stdout)
            .ok()
            .map(|s| Remains::of(&s));
        // The kill may land inside an atomic write (seen in CI): what
        // that leaves is planted here so every round covers it.
        if state.join("lab.json").exists() {
            let name = format!(".lab.json.{}.lbdeploy-tmp", "0f".repeat(16));
            std::fs::write(state.join(name), b"{").unwrap();
        }
        let down = lab("down").output().unwrap();
        assert!(
            down.status.success(),
            "after {delay_ms} ms: {}",
            describe(&down)
        );
        if let Some(r) = remains {
            r.assert_gone();
        }
    }
}

#[test]
fn refuses_addresses_the_machine_has() {
    let dir = TempDir::new("collide");
    let inventory = dir.path().join("inventory.yml");
    let s = Subnet::allocate();
    let text = Inventory::example(s)
        .to_string()
        .replace(&format!("client: {}", s.cidr(100)), "client: 127.0.0.1/8");
    std::fs::write(&inventory, text).unwrap();
    let out = Command::new(LBDEPLOY)
        .arg("-i")
        .arg(&inventory)
        .args(["lab", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("up")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lab.client has address 127.0.0.1, which this machine already has on lo"),
        "{err}"
    );
    assert!(!dir.path().join("state").exists());
}
