//! The real-server agent in the lab, against the real kernel (issue #5):
//! the VIP on `lo` and hidden from ARP, served when a frame reaches the
//! real server's MAC (what DR does), restored within 1 s when removed or
//! when a sysctl changes, converged on reload, removed on stop (or kept),
//! and a refusal to start when the VIP sits on a LAN interface.
//!
//! Each test has its own lab, on a subnet of its own. Bounds come from the
//! issue ("within 1 second") and are measured on the host itself, by a
//! shell loop that polls and gives up at the bound, never a fixed sleep.

use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{Remains, TestLab};
use crate::support::subnet::Subnet;

/// The bound for putting back a removed VIP or a changed sysctl.
const RESTORE_BOUND_MS: u32 = 1000;

/// A lab of the example cluster on `subnet` after `apply`, so the agent
/// runs on the real servers; `None` (skip printed) when not root.
fn applied(name: &str, subnet: Subnet) -> Option<TestLab> {
    let lab = TestLab::up(name, &Inventory::example(subnet).to_string())?;
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    Some(lab)
}

/// `lbdeploy agent status --json` on `host`, parsed.
fn status(lab: &TestLab, host: &str) -> Value {
    let out = lab.exec_ok(host, "lbdeploy agent status --json");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("status on {host}: {e}\n{out}"))
}

/// The addresses on `dev` of `host`, as `ip -br addr` prints them.
fn addrs(lab: &TestLab, host: &str, dev: &str) -> String {
    lab.exec_ok(host, &format!("ip -br addr show dev {dev}"))
}

/// Run `action` on `host`, then poll `check` (a shell condition) every
/// 20 ms until it holds; fails past `bound_ms`. Returns the milliseconds
/// it took, measured on the host.
fn holds_again_within(
    lab: &TestLab,
    host: &str,
    action: &str,
    check: &str,
    bound_ms: u32,
) -> u32 {
    let script = format!(
        "{action} || exit 2; start=$(date +%s%N); \
         while :; do \
           now=$(date +%s%N); ms=$(( (now - start) / 1000000 )); \
           if {check}; then echo $ms; exit 0; fi; \
           if [ $ms -gt {bound_ms} ]; then echo $ms; exit 1; fi; \
           sleep 0.02; \
         done"
    );
    let out = lab.exec(host, &script);
    let ms = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let log = lab.exec(host, "tail -20 /run/lbdeploy/agent.log");
    assert!(
        out.status.success(),
        "on {host}: after `{action}`, `{check}` did not hold within \
         {bound_ms} ms (waited {ms} ms)\n--- agent.log ---\n{}",
        String::from_utf8_lossy(&log.stdout)
    );
    ms.parse().expect("the script prints milliseconds")
}

fn mac(lab: &TestLab, host: &str) -> String {
    lab.exec_ok(host, "cat /sys/class/net/eth0/address").trim().to_owned()
}

/// After `apply`: the VIP is on rs01's `lo` as a /32, the ARP sysctls are
/// set, nobody of the real servers answers ARP for the VIP while rs01
/// answers for its RIP, and HTTP to the VIP sent to rs01's MAC is served
/// by rs01. A second `apply` leaves the agent running untouched.
/// No MAC in `hidden` answers ARP for `vip` from the client, while rs01
/// answers for its RIP `rip`; and a frame sent to rs01's MAC with the VIP
/// as destination (Direct Routing) is served by rs01.
fn hidden_but_served_by_rs01(
    lab: &TestLab,
    vip: &str,
    rip: &str,
    hidden: &[String],
) {
    let arp = lab.exec("client", &format!("arping -c 2 -w 3 -I eth0 {vip}"));
    let said = String::from_utf8_lossy(&arp.stdout).to_lowercase();
    assert!(
        !hidden.iter().any(|m| said.contains(m)),
        "a real server answered ARP for the VIP:\n{said}"
    );
    let rs01_mac = mac(lab, "rs01");
    let answer =
        lab.exec_ok("client", &format!("arping -c 2 -w 3 -I eth0 {rip}"));
    assert!(
        answer.to_lowercase().contains(&rs01_mac),
        "RIP unanswered:\n{answer}"
    );
    lab.exec_ok(
        "client",
        &format!("ip neigh replace {vip} lladdr {rs01_mac} dev eth0"),
    );
    let body = lab.exec_ok(
        "client",
        &format!("curl -sS --fail --max-time 5 http://{vip}/"),
    );
    assert_eq!(body.trim(), "rs01");
}

#[test]
fn realserver_hides_the_vip_and_serves_it() {
    let subnet = Subnet::allocate();
    let Some(lab) = applied("rs-hide", subnet) else {
        return;
    };
    let vip = subnet.vip();
    for rs in ["rs01", "rs02"] {
        let lo = addrs(&lab, rs, "lo");
        assert!(lo.contains(&format!("{vip}/32")), "{rs} lo: {lo}");
        let eth0 = addrs(&lab, rs, "eth0");
        assert!(!eth0.contains(&vip), "{rs} eth0: {eth0}");
        let sysctls = lab.exec_ok(
            rs,
            "sysctl -n net.ipv4.conf.all.arp_ignore \
             net.ipv4.conf.all.arp_announce net.ipv4.conf.eth0.arp_ignore \
             net.ipv4.conf.eth0.arp_announce",
        );
        assert_eq!(
            sysctls.split_whitespace().collect::<Vec<_>>(),
            ["1", "2", "1", "2"]
        );
        let s = status(&lab, rs);
        assert_eq!(s["healthy"], true, "{s}");
        assert_eq!(s["details"]["vips"][0]["on_lo"], true, "{s}");
        assert_eq!(s["details"]["vips"][0]["added_by_agent"], true, "{s}");
    }
    // No director holds the VIP until VRRP lands, so today nobody answers;
    // what matters is that no real server does.
    let hidden = [mac(&lab, "rs01"), mac(&lab, "rs02")];
    hidden_but_served_by_rs01(&lab, &vip, &subnet.addr(21), &hidden);

    let pid = status(&lab, "rs01")["pid"].clone();
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    assert_eq!(status(&lab, "rs01")["pid"], pid, "the agent was restarted");
}

/// `ip addr del VIP/32 dev lo` and `sysctl -w …arp_ignore=0` by hand are
/// undone within 1 s, and the status tells what happened.
#[test]
fn realserver_restores_the_vip_and_the_sysctls_within_1s() {
    let subnet = Subnet::allocate();
    let Some(lab) = applied("rs-restore", subnet) else {
        return;
    };
    let vip = subnet.vip();
    let on_lo = format!("ip -br addr show dev lo | grep -qF ' {vip}/32'");
    let ms = holds_again_within(
        &lab,
        "rs01",
        &format!("ip addr del {vip}/32 dev lo"),
        &on_lo,
        RESTORE_BOUND_MS,
    );
    eprintln!("VIP back on lo after {ms} ms");
    let s = status(&lab, "rs01");
    let what = s["details"]["last_event"]["what"].as_str().unwrap_or("");
    assert!(what.contains(&vip), "{s}");

    for key in ["all.arp_ignore", "eth0.arp_ignore", "all.arp_announce"] {
        let key = format!("net.ipv4.conf.{key}");
        let ms = holds_again_within(
            &lab,
            "rs01",
            &format!("sysctl -qw {key}=0"),
            &format!("[ \"$(sysctl -n {key})\" != 0 ]"),
            RESTORE_BOUND_MS,
        );
        eprintln!("{key} back after {ms} ms");
    }
    let s = status(&lab, "rs01");
    assert_eq!(s["details"]["restores"], 4, "{s}");
    assert_eq!(s["healthy"], true, "{s}");
    let log = lab.exec_ok("rs01", "cat /run/lbdeploy/agent.log");
    assert!(
        log.contains("net.ipv4.conf.all.arp_ignore was 0, set back to 1"),
        "{log}"
    );
}

/// A reload with one VIP swapped for another converges (the old one is
/// removed, the new one added, an address the agent never added is left
/// alone); stop removes the agent's VIPs and leaves the RIP; with
/// `keep_vip_on_stop: true` the VIP stays. `lab down` leaves nothing.
#[test]
fn realserver_reload_converges_and_stop_cleans_up() {
    let subnet = Subnet::allocate();
    let Some(mut lab) = applied("rs-reload", subnet) else {
        return;
    };
    let (old, new) = (subnet.vip(), subnet.addr(201));
    let foreign = "192.0.2.9/32";
    lab.exec_ok(
        "rs01",
        &format!(
            "ip addr add {foreign} dev lo && \
             sed -i 's/^- {old}$/- {new}/' /etc/lbdeploy/agent.yml && \
             grep -qx -- '- {new}' /etc/lbdeploy/agent.yml && \
             lbdeploy agent reload"
        ),
    );
    let lo = addrs(&lab, "rs01", "lo");
    assert!(lo.contains(&format!("{new}/32")), "{lo}");
    assert!(!lo.contains(&format!("{old}/")), "{lo}");
    assert!(lo.contains(foreign), "{lo}");
    let s = status(&lab, "rs01");
    assert_eq!(s["reloads"], 1, "{s}");
    assert_eq!(s["last_reload_error"], Value::Null, "{s}");

    lab.exec_ok("rs01", "lbdeploy agent stop");
    let lo = addrs(&lab, "rs01", "lo");
    assert!(!lo.contains(&new) && lo.contains(foreign), "{lo}");
    let eth0 = addrs(&lab, "rs01", "eth0");
    assert!(eth0.contains(&subnet.cidr(21)), "the RIP went: {eth0}");

    lab.exec_ok(
        "rs01",
        "sed -i 's/^keep_vip_on_stop: false$/keep_vip_on_stop: true/' \
         /etc/lbdeploy/agent.yml && \
         grep -qx 'keep_vip_on_stop: true' /etc/lbdeploy/agent.yml && \
         lbdeploy agent start realserver --config /etc/lbdeploy/agent.yml && \
         lbdeploy agent stop",
    );
    let lo = addrs(&lab, "rs01", "lo");
    assert!(lo.contains(&format!("{new}/32")), "kept on stop: {lo}");

    let remains = Remains::of(&lab.status());
    let out = lab.down();
    assert!(out.status.success(), "lab down failed");
    remains.assert_gone();
}

/// With the VIP already on eth0 (the rc.local way), the agent refuses to
/// start with exit 1, says why and how to fix it, and changes nothing.
#[test]
fn realserver_refuses_a_vip_on_a_lan_interface() {
    let subnet = Subnet::allocate();
    let inventory = Inventory::example(subnet);
    let lab = lab_or_skip!("rs-refuse", inventory);
    let vip = subnet.vip();
    let config = format!(
        "cluster: {}\nhost: rs01\ninterface: eth0\n\
         arp_suppression: sysctl\nvips:\n- {vip}\n",
        inventory.cluster_name()
    );
    lab.exec_ok(
        "rs01",
        &format!(
            "printf '{}' > /etc/lbdeploy/agent.yml && \
             ip addr add {vip}/32 dev eth0 && \
             sysctl -qw net.ipv4.conf.all.arp_ignore=0",
            config.replace('\n', "\\n")
        ),
    );
    let out = lab.exec(
        "rs01",
        "lbdeploy agent realserver --config /etc/lbdeploy/agent.yml",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("VIP {vip} is configured on eth0"))
            && err.contains(&format!("ip addr del {vip}/32 dev eth0")),
        "{err}"
    );
    assert!(!addrs(&lab, "rs01", "lo").contains(&vip));
    let ignore = lab.exec_ok("rs01", "sysctl -n net.ipv4.conf.all.arp_ignore");
    assert_eq!(ignore.trim(), "0", "a refused start changed a sysctl");
}

/// `arp_suppression: nftables` (switched to by a reload, with the sysctls
/// put back to the kernel's defaults by hand): the `arp` table alone keeps
/// rs01 from answering ARP for the VIP, HTTP through rs01's MAC is served,
/// a deleted table is loaded again within 1 s, and stop removes the VIP
/// and the table.
#[test]
fn realserver_nftables_hides_the_vip_without_sysctls() {
    let subnet = Subnet::allocate();
    let Some(lab) = applied("rs-nft", subnet) else {
        return;
    };
    let vip = subnet.vip();
    lab.exec_ok(
        "rs01",
        "sed -i 's/^arp_suppression: \"sysctl\"$/arp_suppression: nftables/' \
         /etc/lbdeploy/agent.yml && \
         grep -qx 'arp_suppression: nftables' /etc/lbdeploy/agent.yml && \
         lbdeploy agent reload && \
         for k in all eth0; do \
           sysctl -qw net.ipv4.conf.$k.arp_ignore=0 \
                      net.ipv4.conf.$k.arp_announce=0; \
         done",
    );
    let s = status(&lab, "rs01");
    assert_eq!(s["details"]["nft_table"], true, "{s}");
    assert_eq!(s["healthy"], true, "{s}");
    hidden_but_served_by_rs01(
        &lab,
        &vip,
        &subnet.addr(21),
        &[mac(&lab, "rs01")],
    );

    let table = "arp lbdeploy_realserver";
    holds_again_within(
        &lab,
        "rs01",
        &format!("nft delete table {table}"),
        &format!("nft list table {table} >/dev/null 2>&1"),
        RESTORE_BOUND_MS,
    );
    lab.exec_ok("rs01", "lbdeploy agent stop");
    assert!(!addrs(&lab, "rs01", "lo").contains(&vip));
    let gone = lab.exec("rs01", &format!("nft list table {table}"));
    assert!(!gone.status.success(), "the table outlived the agent");
}
