//! The nftables DSR data plane in the lab, real kernel: the table lbdeploy
//! renders, installed on a director holding the VIP, forwards the client's
//! connections to the real servers by MAC. The director's and real servers'
//! VIP set-up is done by hand here so that only the data plane is under
//! test (the agents do it in the end-to-end tests). The incremental
//! transactions are tried on a large table in a namespace of their own.
//! A UDP service goes end to end instead, agents and all: DNS queries
//! through the VIP are spread over both real servers by flow.

use std::collections::BTreeMap;
use std::time::Duration;

use lbdeploy::agent::dataplane::buckets::{self, Backend};
use lbdeploy::agent::dataplane::nft::delta::{Delta, delta};
use lbdeploy::agent::dataplane::nft::verify::{
    Elements, elements_match, map_elements,
};
use lbdeploy::agent::dataplane::nft::{
    Compiled, Mac, Proto, Ruleset, Service, compile, render,
};
use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab, is_root, skip, within};
use crate::support::subnet::Subnet;

fn mac(lab: &TestLab, host: &str) -> Mac {
    lab.exec_ok(host, "cat /sys/class/net/eth0/address").parse().unwrap()
}

/// The VIP on the director's eth0 and on the real servers' lo, with ARP
/// suppressed on the real servers — what VRRP and the real-server agent do.
fn hold_vip(lab: &TestLab, s: Subnet) {
    lab.exec_ok(
        "keepalived01",
        &format!("ip addr add {}/24 dev eth0", s.vip()),
    );
    for rs in ["rs01", "rs02"] {
        lab.exec_ok(
            rs,
            &format!(
                "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                 && ip addr add {}/32 dev lo",
                s.vip()
            ),
        );
    }
}

fn install(
    lab: &TestLab,
    s: Subnet,
    dir: &TempDir,
    weights: [u32; 2],
    persistent: bool,
) {
    let backends: Vec<_> = [("rs01", 21), ("rs02", 22)]
        .into_iter()
        .zip(weights)
        .map(|((host, rip), weight)| {
            let key = format!("{}:80", s.addr(rip));
            (Backend { key, weight }, mac(lab, host))
        })
        .collect();
    let rules = Ruleset {
        interface: "eth0".into(),
        mac: mac(lab, "keepalived01"),
        services: vec![Service {
            name: "web".into(),
            vip: s.vip().parse().unwrap(),
            ports: vec![lbdeploy::inventory::PortSpan::one(80)],
            proto: Proto::Tcp,
            persistent,
            buckets: buckets::count(backends.len()),
            backends,
            live: Vec::new(),
            pin_for: 900,
            instance: "VI_1".into(),
        }],
        forwarding: ["VI_1".to_owned()].into(),
    };
    let file = dir.path().join("table.nft");
    std::fs::write(&file, render(&compile(rules, None))).unwrap();
    lab.exec_ok("keepalived01", &format!("nft -f {}", file.display()));
}

/// Who answered `count` requests from the client, each from its own source
/// port from `base` on (a port is not reused while its last connection
/// lingers in TIME_WAIT).
fn spread(
    lab: &TestLab,
    s: Subnet,
    base: u16,
    count: u16,
) -> BTreeMap<String, usize> {
    let out = lab.exec_ok(
        "client",
        &format!(
            "for p in $(seq {base} {}); do curl -s --max-time 2 --local-port $p {}; done",
            base + count - 1,
            s.url()
        ),
    );
    let mut seen = BTreeMap::new();
    // The responder ends its answer with a newline; a failed request
    // prints nothing and shows up as a missing count.
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        *seen.entry(line.trim().to_owned()).or_default() += 1;
    }
    seen
}

#[test]
fn nft_dsr_spreads_flows_by_weight_and_keeps_connections_whole() {
    let s = Subnet::allocate();
    let lab = lab_or_skip!("dataplane-nft", Inventory::example(s));
    let dir = TempDir::new("dataplane-nft-rules");
    hold_vip(&lab, s);

    install(&lab, s, &dir, [1, 1], false);
    let seen = spread(&lab, s, 40000, 200);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["rs01", "rs02"], "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 200, "every request answered");
    for (host, n) in &seen {
        assert!((70..=130).contains(n), "{host} served {n} of 200: {seen:?}");
    }
    // A request sent in pieces is several packets of one connection; had
    // any of them reached the other real server, it would have reset the
    // connection instead of answering.
    let mut answered = BTreeMap::<String, usize>::new();
    for p in 41000..41008 {
        let out = lab.exec_ok(
            "client",
            &format!(
                "(printf 'GET / HTTP/1.0\\r\\n'; sleep 0.2; printf 'X-Slow: 1\\r\\n'; \
                 sleep 0.2; printf '\\r\\n') | busybox nc -p {p} {} 80",
                s.vip()
            ),
        );
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out}"
        );
        let name = out.lines().last().unwrap().trim().to_owned();
        *answered.entry(name).or_default() += 1;
    }
    assert_eq!(
        answered.len(),
        2,
        "8 slow connections all on one server: {answered:?}"
    );

    install(&lab, s, &dir, [3, 1], false);
    let seen = spread(&lab, s, 42000, 200);
    let rs01 = seen.get("rs01").copied().unwrap_or(0) as f64 / 200.0;
    assert!((0.65..=0.85).contains(&rs01), "3:1 gave {seen:?}");

    install(&lab, s, &dir, [1, 1], true);
    let seen = spread(&lab, s, 44000, 50);
    assert_eq!(
        seen.len(),
        1,
        "persistence: one client, one real server: {seen:?}"
    );
}

/// A network namespace with an `eth0` for one test, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Self {
        let ns = format!("lbd-{name}-{}", std::process::id());
        let ns = Netns(ns);
        assert!(
            ns.sh(&format!(
                "ip netns add {0} && ip -n {0} link add eth0 type veth peer \
                 name p0 && ip -n {0} link set eth0 up",
                ns.0
            )),
            "making the namespace"
        );
        ns
    }

    /// Run `cmd` in a shell on this machine; whether it succeeded.
    fn sh(&self, cmd: &str) -> bool {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Load `text` with `nft -f` in the namespace; whether nft took it.
    fn nft_f(&self, dir: &TempDir, text: &str) -> bool {
        let file = dir.path().join("change.nft");
        std::fs::write(&file, text).unwrap();
        self.sh(&format!("ip netns exec {} nft -f {}", self.0, file.display()))
    }

    /// Every map of the table, as the kernel lists it.
    fn maps(&self) -> BTreeMap<String, Elements> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "-j", "list", "table"])
            .args(["netdev", "lbdeploy"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        map_elements(&String::from_utf8_lossy(&out.stdout)).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.sh(&format!("ip netns del {}", self.0));
    }
}

/// `services` services of ten real servers; `(service, real server)` in
/// `down` left out.
fn many(services: usize, down: &[(usize, usize)]) -> Ruleset {
    Ruleset {
        interface: "eth0".into(),
        mac: Mac([2, 0, 0, 0, 0, 0xaa]),
        services: (0..services)
            .map(|s| Service {
                name: format!("web{s}"),
                vip: format!("10.0.{s}.200").parse().unwrap(),
                ports: vec![lbdeploy::inventory::PortSpan::one(80)],
                proto: Proto::Tcp,
                persistent: false,
                buckets: buckets::count(10),
                live: Vec::new(),
                pin_for: 900,
                instance: "VI_1".into(),
                backends: (0..10)
                    .filter(|r| !down.contains(&(s, *r)))
                    .map(|r| {
                        let key = format!("10.0.{s}.{}:80", r + 1);
                        let mac = Mac([2, 0, 0, 0, s as u8, r as u8]);
                        (Backend { key, weight: 1 }, mac)
                    })
                    .collect(),
            })
            .collect(),
        forwarding: ["VI_1".to_owned()].into(),
    }
}

/// The kernel's maps hold exactly the buckets of `table`.
fn assert_installed(ns: &Netns, table: &Compiled) {
    let maps = ns.maps();
    assert_eq!(maps.len(), table.services.len());
    for (i, f) in table.services.iter().enumerate() {
        let map = &maps[&format!("s{i}")];
        assert!(elements_match(f, map), "map s{i}: {} elements", map.len());
    }
}

/// The incremental transactions of the data plane, in a real kernel: after
/// a real server goes down, comes back, and the last one of a service goes,
/// the kernel's maps hold exactly the desired elements; and a change of
/// elements is refused when someone edited them by hand, which is what
/// makes the agent fall back to the whole table.
#[test]
fn nft_incremental_changes_leave_exactly_the_desired_elements() {
    if !is_root() {
        return skip(
            "nft_incremental_changes_leave_exactly_the_desired_elements",
        );
    }
    let ns = Netns::new("delta");
    let dir = TempDir::new("dataplane-delta");
    let mut installed = compile(many(40, &[]), None);
    assert!(ns.nft_f(&dir, &render(&installed)), "the whole table");
    assert_installed(&ns, &installed);
    let all_down: Vec<(usize, usize)> = (0..10).map(|r| (7, r)).collect();
    for down in [&[(20, 3)][..], &[], &[(20, 3), (21, 0)], &all_down] {
        let desired = compile(many(40, down), Some(&installed));
        let Delta::Changes { text, .. } = delta(Some(&installed), &desired)
        else {
            panic!("{down:?}: not a change of elements");
        };
        assert!(ns.nft_f(&dir, &text), "{down:?}: nft refused\n{text}");
        assert_installed(&ns, &desired);
        installed = desired;
    }
    // By hand, bucket 0 of s20 goes; the change that takes its real
    // server out deletes that very element, and is refused whole.
    let owner = installed.services[20].mac(0).unwrap().0[5] as usize;
    let desired = compile(many(40, &[(20, owner)]), Some(&installed));
    let Delta::Changes { text, .. } = delta(Some(&installed), &desired) else {
        panic!("not a change of elements");
    };
    assert!(ns.sh(&format!(
        "ip netns exec {} nft delete element netdev lbdeploy s20 {{ 0 }}",
        ns.0
    )));
    assert!(!ns.nft_f(&dir, &text), "a change of edited elements is refused");
    let maps = ns.maps();
    assert_eq!(
        maps["s20"].len(),
        buckets::count(10) - 1,
        "nothing of it was applied"
    );
    assert!(elements_match(&installed.services[21], &maps["s21"]));
}

/// The DNS client the lab's client runs: for each source port of
/// `PORTS` (`[(port, queries)]`), a UDP socket of the VIP's family bound
/// to it and connected to the VIP's port 53 (so only a reply from the VIP counts), sending
/// `queries` TXT queries of `lab.test` one after the other; one line per
/// query, `PORT NAME` with the TXT answer (the real server's name) or
/// `PORT -` when none came within `WAIT` seconds.
const DNS_CLIENT: &str = r#"
import socket, struct
def txt(sock, qid):
    q = struct.pack(">6H", qid, 0x0100, 1, 0, 0, 0)
    q += b"\x03lab\x04test\x00" + struct.pack(">2H", 16, 1)
    sock.send(q)
    while True:
        r = sock.recv(512)
        if r[:2] == q[:2]:
            break
    i = len(q)  # the question, repeated; then the answer's owner
    i += 2 if r[i] >= 0xC0 else r.index(0, i) + 1 - i
    i += 10  # type, class, TTL, data length
    return r[i + 1:i + 1 + r[i]].decode()
qid = 0
for port, queries in PORTS:
    s = socket.socket(socket.AF_INET6 if ":" in VIP else socket.AF_INET,
                      socket.SOCK_DGRAM)
    s.bind(("", port))
    s.connect((VIP, 53))
    s.settimeout(WAIT)
    for _ in range(queries):
        qid += 1
        try:
            print(port, txt(s, qid))
        except (OSError, IndexError, UnicodeDecodeError):
            print(port, "-")
    s.close()
"#;

/// Ask `vip` for `lab.test` TXT from each source port of `ports`
/// (`(port, queries)`), waiting at most `wait` per reply: the real
/// server's name (or `-`) per query, grouped by source port.
pub(crate) fn dns_answers(
    lab: &TestLab,
    vip: &str,
    ports: &[(u16, usize)],
    wait: Duration,
) -> BTreeMap<u16, Vec<String>> {
    let list: Vec<String> =
        ports.iter().map(|(p, n)| format!("({p}, {n})")).collect();
    let script = format!(
        "VIP = '{vip}'\nWAIT = {}\nPORTS = [{}]\n{DNS_CLIENT}",
        wait.as_secs_f64(),
        list.join(", ")
    );
    let out = lab.exec_ok("client", &format!("python3 - <<'EOF'\n{script}EOF"));
    let mut seen = BTreeMap::<u16, Vec<String>>::new();
    for line in out.lines() {
        if let Some((port, name)) = line.split_once(' ')
            && let Ok(port) = port.parse()
        {
            seen.entry(port).or_default().push(name.to_owned());
        }
    }
    seen
}

/// A UDP service (DNS, port 53) on the nftables data plane, end to end:
/// each real server's responder answers TXT queries with its own name,
/// checked by a `dns` check. Queries from 200 distinct source ports of the
/// client are answered by both real servers, about evenly (round robin's
/// weights, by the bucket hash of each flow); queries repeated from one
/// source port are all answered by the same real server (one flow, one
/// bucket, one pin), for each of eight ports. The only wait is for the
/// first answer through the VIP, bounded as `apply_until_forwarding`
/// bounds it: the master's election plus start-up.
#[test]
fn nft_udp_service_spreads_flows_and_keeps_each_on_one_server() {
    let s = Subnet::allocate();
    let check = "{ dns: { name: lab.test, type: TXT, connect_timeout: 1s, \
                 retry: 1, delay_before_retry: 500ms } }";
    let inventory = Inventory::example(s)
        .cluster("dataplane-udp")
        .virtual_router_id(75)
        .service_option("name: dns")
        .service_option("protocol: udp")
        .service_option("delay_loop: 1s")
        .check("rs01", check)
        .check("rs02", check)
        .top("dataplane: nftables\n")
        .to_string()
        // The example's service is on port 80, its real servers too.
        .replace("    port: 80\n", "    port: 53\n")
        .replace("port: 80,", "port: 53,");
    let lab = lab_or_skip!("dataplane-udp", inventory);
    for rs in ["rs01", "rs02"] {
        lab.swap_responder(rs, &format!("--name {rs} --dns-port 53"));
    }
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let wait = Duration::from_secs(1);
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    within(mdi + Duration::from_secs(5), "DNS through the VIP", || {
        dns_answers(&lab, &s.vip(), &[(39999, 1)], wait)
            .get(&39999)
            .is_some_and(|names| names[0] != "-")
    });
    let table = lab.exec_ok("keepalived01", "nft list table netdev lbdeploy");
    assert!(table.contains("udp dport 53"), "no UDP rule:\n{table}");

    let ports: Vec<(u16, usize)> = (40000..40200).map(|p| (p, 1)).collect();
    let mut spread = BTreeMap::<String, usize>::new();
    for names in dns_answers(&lab, &s.vip(), &ports, wait).into_values() {
        for name in names {
            *spread.entry(name).or_default() += 1;
        }
    }
    assert_eq!(
        spread.keys().collect::<Vec<_>>(),
        ["rs01", "rs02"],
        "{spread:?}"
    );
    for (host, n) in &spread {
        assert!(
            (70..=130).contains(n),
            "{host} answered {n} of 200: {spread:?}"
        );
    }

    let ports: Vec<(u16, usize)> = (41000..41008).map(|p| (p, 25)).collect();
    let flows = dns_answers(&lab, &s.vip(), &ports, wait);
    assert_eq!(flows.len(), 8, "{flows:?}");
    for (port, names) in &flows {
        assert_eq!(names.len(), 25, "port {port}: {names:?}");
        assert!(
            names.iter().all(|n| n == &names[0] && n != "-"),
            "port {port} was answered by several real servers (or none): \
             {names:?}"
        );
    }
    eprintln!(
        "udp: 200 flows answered {spread:?}; 8 flows of 25 queries each \
         stayed on {:?}",
        flows.values().map(|n| n[0].as_str()).collect::<Vec<_>>()
    );
}
