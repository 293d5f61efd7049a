//! `lbdeploy status` against the lab (issue #19): real sshd, real agents.
//! After an apply the cluster is all well; then a real server's agent is
//! stopped, a director's sshd is killed and a director's configuration
//! asks for what its data plane cannot do — each time a warning naming
//! the host, exit 3. And `plan` refuses a stateful scheduler on a kernel
//! without IPVS, from the facts.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, describe};
use crate::support::subnet::Subnet;

/// How long the cluster may take to settle after an apply (a VRRP
/// election is three advert intervals plus skew) or a real server to be
/// seen down (at most two `delay_loop`s of 1 s, two connect timeouts of
/// 1 s and a pause of 500 ms), with a loaded machine's slack.
const SETTLE: Duration = Duration::from_secs(20);

/// `lbdeploy --json status ARGS` on the controller, without persistent
/// SSH masters (a killed sshd must show).
fn status(lab: &TestLab, args: &[&str]) -> (Option<i32>, Value, Output) {
    let inv = lab.inventory().to_string_lossy().into_owned();
    let mut all = vec![
        "exec",
        "controller",
        "--",
        "env",
        "LBDEPLOY_SSH_PERSIST=0",
        "lbdeploy",
        "-i",
        &inv,
        "--json",
        "status",
    ];
    all.extend_from_slice(args);
    let out = lab.lab(&all);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", describe(&out)));
    (out.status.code(), json, out)
}

/// Ask until `cond` holds for the report, within [`SETTLE`].
fn status_until(
    lab: &TestLab,
    what: &str,
    cond: impl Fn(Option<i32>, &Value) -> bool,
) -> Value {
    status_until_or(lab, what, cond, String::new)
}

/// [`status_until`], saying what `explain` finds when it fails.
fn status_until_or(
    lab: &TestLab,
    what: &str,
    cond: impl Fn(Option<i32>, &Value) -> bool,
    explain: impl Fn() -> String,
) -> Value {
    let until = Instant::now() + SETTLE;
    loop {
        let (code, json, out) = status(lab, &[]);
        if cond(code, &json) {
            return json;
        }
        assert!(
            Instant::now() < until,
            "{what} not within {SETTLE:?}: exit {code:?}\n{json:#}\n{}\n{}",
            describe(&out),
            explain()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What each director's table counted and its agent last reported, and
/// where the client sends the VIP's frames — for counts that never came.
fn counting_sets(lab: &TestLab) -> String {
    let mut said = String::new();
    for (host, command) in [
        ("keepalived01", "nft list sets table netdev lbdeploy; ip -o addr"),
        ("keepalived02", "nft list sets table netdev lbdeploy; ip -o addr"),
        ("keepalived01", "lbdeploy agent status --json"),
        ("keepalived02", "lbdeploy agent status --json"),
        ("client", "ip neigh"),
    ] {
        let out = lab.exec(host, command);
        said.push_str(&format!(
            "--- {host}: {command} ---\n{}\n",
            describe(&out)
        ));
    }
    said
}

/// What each director sees of `rs`'s port 80 now: a connection from it,
/// its neighbour entry, its agent's check counters; and what listens on
/// `rs` — for a check that disagrees with the test.
fn port_80_seen(lab: &TestLab, rs: &str, address: &str) -> String {
    let mut said = format!(
        "--- {rs} ---\n{}",
        String::from_utf8_lossy(&lab.exec(rs, "ss -Htanp; ip -o addr").stdout)
    );
    // Twice, 3 s apart: whether the checks run at all (their counts move).
    for round in 1..=2 {
        for d in ["keepalived01", "keepalived02"] {
            let out = lab.exec(
                d,
                &format!(
                    "curl -s -m 2 -o /dev/null -w 'HTTP %{{http_code}}\\n' \
                     http://{address}:80/; echo \"curl exit $?\"; \
                     ip neigh; ss -Htan; \
                     lbdeploy agent status --json | tr ',' '\\n' | \
                     grep -A60 real_server_checks | grep -v '^ *$'; \
                     tail -5 /run/lbdeploy/agent.log"
                ),
            );
            said += &format!(
                "--- {d}, round {round} ---\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if round == 1 {
            std::thread::sleep(std::time::Duration::from_secs(3));
        }
    }
    said
}

fn warnings(json: &Value) -> Vec<String> {
    json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

fn host<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {json:#}"))
}

/// The service's `delay_loop` here. The default is keepalived's 60 s, and
/// a server's first check falls anywhere in its first `delay_loop` (a
/// hash of its address spreads them): with the default, the wait for
/// rs01 seen down passed or failed with the lab's subnet.
const DELAY_LOOP: &str = "delay_loop: 1s";

#[test]
fn status_is_all_well_after_apply_then_warns_of_each_failure() {
    let subnet = Subnet::allocate();
    let checked = Inventory::example(subnet).service_option(DELAY_LOOP).check(
        "rs01",
        "{ tcp: { connect_timeout: 1s, retry: 1, delay_before_retry: 500ms } }",
    );
    let lab = lab_or_skip!("status", checked);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let json = status_until(&lab, "all well", |code, _| code == Some(0));
    assert_eq!(json["format"], 1);
    assert_eq!(json["generation"], 1);
    let masters: Vec<&str> = ["keepalived01", "keepalived02"]
        .into_iter()
        .filter(|d| {
            host(&json, d)["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["state"] == "MASTER")
        })
        .collect();
    assert_eq!(masters.len(), 1, "{json:#}");
    let master = host(&json, masters[0]);
    let last = &master["instances"][0]["last_transition"];
    assert!(last["from"].is_string() && last["at"].is_string(), "{json:#}");
    assert!(
        !master["instances"][0]["vips_held"].as_array().unwrap().is_empty()
    );
    for rs in master["real_servers"].as_array().unwrap() {
        assert_eq!(rs["up"], true, "{json:#}");
    }
    // Ten requests through the VIP: the director that forwarded them
    // counts the frames, by real server, within a reconcile (5 s); each
    // connection is at least three frames of at least 40 bytes. Both
    // directors are summed: just after apply the client may still reach
    // the backup, which forwards through its grace after leaving master.
    for _ in 0..10 {
        assert!(lab.curl_vip().status.success(), "no answer through the VIP");
    }
    let forwarded = |j: &Value| -> (u64, u64) {
        ["keepalived01", "keepalived02"]
            .into_iter()
            .filter_map(|d| host(j, d)["real_servers"].as_array().cloned())
            .flatten()
            .fold((0, 0), |(p, b), rs| {
                let t = &rs["traffic"];
                (
                    p + t["packets"].as_u64().unwrap_or(0),
                    b + t["bytes"].as_u64().unwrap_or(0),
                )
            })
    };
    let json = status_until_or(
        &lab,
        "the requests counted",
        |_, j| forwarded(j).0 >= 30,
        || counting_sets(&lab),
    );
    let (packets, bytes) = forwarded(&json);
    assert!(bytes >= 40 * packets, "{json:#}");
    for rs in ["rs01", "rs02"] {
        let h = host(&json, rs);
        assert_eq!(h["agent"]["health"], "healthy");
        assert_eq!(h["generation"], 1);
        assert!(!h["lo_vips"].as_array().unwrap().is_empty(), "{h:#}");
        assert_eq!(h["arp"]["all.arp_ignore"], "1");
    }
    // The text form: a table per role, all well.
    let text = lab.lbdeploy_exit(0, &["status"]);
    assert!(text.contains("all well") && text.contains("DIRECTOR"), "{text}");
    assert!(text.contains("PACKETS"), "no traffic table:\n{text}");
    let limited = lab.lbdeploy_exit(0, &["--json", "status", "--limit", "rs*"]);
    let limited: Value = serde_json::from_str(&limited).unwrap();
    assert_eq!(limited["hosts"].as_array().unwrap().len(), 2);

    // A real server's web server killed: the directors see it down.
    // Then nothing listens on its port any more (else the wait below
    // would blame the checks for a kill that missed).
    let kill = lbdeploy::lab::demo::kill_here("[l]bdeploy lab responder");
    lab.exec_ok(
        "rs01",
        &format!(
            "{kill}; for i in $(seq 50); do \
             ss -Hltn 'sport = :80' | grep -q . || exit 0; sleep 0.1; done; \
             ss -ltnp; exit 1"
        ),
    );
    let rs01 = subnet.addr(21);
    let json = status_until_or(
        &lab,
        "rs01's web server seen down",
        |code, j| {
            code == Some(3)
                && warnings(j).iter().any(|w| w.contains("is down on"))
        },
        || port_80_seen(&lab, "rs01", &rs01),
    );
    // With why: its tcp check's failure, as each director saw it.
    for d in ["keepalived01", "keepalived02"] {
        let servers = host(&json, d)["real_servers"].as_array().unwrap();
        let rs = servers.iter().find(|rs| rs["address"] == rs01.as_str());
        let reason = rs.and_then(|rs| rs["reason"].as_str());
        let refused = format!("connect to {rs01}:80: Connection refused");
        assert!(reason.is_some_and(|r| r.contains(&refused)), "{json:#}");
    }
    let text =
        String::from_utf8_lossy(&lab.lbdeploy(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!(" {rs01} DOWN on keepalived01: connect to")),
        "{text}"
    );

    // A real server's agent stopped: that host's warning, exit 3.
    lab.exec_ok("rs02", "lbdeploy agent stop");
    let json = status_until(&lab, "rs02's agent missed", |code, j| {
        code == Some(3)
            && warnings(j)
                .iter()
                .any(|w| w.starts_with("rs02: agent not answering"))
    });
    assert!(host(&json, "rs02")["agent_error"].is_string(), "{json:#}");

    // A backup director's sshd gone: that host's error, the others asked.
    let backup = ["keepalived01", "keepalived02"]
        .into_iter()
        .find(|d| *d != masters[0])
        .unwrap();
    let lab_status = lab.status();
    let sshd = lab_status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == backup)
        .and_then(|h| {
            h["processes"].as_array()?.iter().find(|p| p["kind"] == "sshd")
        })
        .and_then(|p| p["pid"].as_i64())
        .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(sshd as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let (code, json, _) = status(&lab, &[]);
    assert_eq!(code, Some(3));
    assert!(host(&json, backup)["error"].is_string(), "{json:#}");
    assert!(
        warnings(&json)
            .iter()
            .any(|w| w
                .starts_with(&format!("{backup}: unreachable or unreadable"))),
        "{json:#}"
    );
    assert_eq!(host(&json, masters[0])["agent"]["health"], "healthy");

    // The master's data plane asked for what it cannot do (a stateful
    // scheduler on nftables; this kernel has no IPVS): degraded, with the
    // reason, in `agent status` and in `lbdeploy status`.
    lab.exec_ok(
        masters[0],
        "sed -i 's/scheduler: .*/scheduler: wlc/' /etc/lbdeploy/agent.yml && \
         lbdeploy agent reload",
    );
    let json = status_until(&lab, "the master degraded", |_, j| {
        host(j, masters[0])["agent"]["health"] == "degraded"
    });
    let why = host(&json, masters[0])["agent"]["degraded"][0].as_str().unwrap();
    assert!(why.contains("`wlc` scheduler needs connection state"), "{why}");
    let out = lab.exec(masters[0], "lbdeploy agent status");
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DEGRADED") && text.contains("degraded: data plane"),
        "{text}"
    );
}

#[test]
fn plan_refuses_a_stateful_scheduler_on_a_kernel_without_ipvs() {
    if std::path::Path::new("/proc/net/ip_vs").exists()
        || std::path::Path::new("/proc/modules").exists()
    {
        // This kernel has IPVS or may load it: nothing to refuse.
        eprintln!("SKIPPED: this kernel has IPVS or may load it");
        return;
    }
    let inventory = Inventory::example(Subnet::allocate());
    let lab = lab_or_skip!("status-ipvs", inventory);
    let text = inventory.to_string();
    lab.rewrite_inventory(&text.replace("scheduler: rr", "scheduler: wlc"));
    let out = lab.lbdeploy(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let all = describe(&out);
    let file = lab.inventory().display().to_string();
    assert!(all.contains(&format!("{file}:")), "{all}");
    assert!(
        all.contains("the `wlc` scheduler needs IPVS")
            && all.contains("the kernel of keepalived01 has none"),
        "{all}"
    );
}
