//! Prometheus metrics (issue #19, item 3): `metrics.listen` reaches each
//! agent's configuration, the shipped alerting rules pass `promtool`, and
//! in the lab a real Prometheus, started in the controller with a
//! generated configuration, scrapes every agent after `apply` and sees
//! through PromQL what the cluster does: one master, the real servers up,
//! one going down, a failover. Every metric the contrib dashboard and
//! rules name is in a live scrape, and `promtool check metrics` accepts
//! each agent's exposition. Bounds come from the scrape, check and VRRP
//! intervals.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lbdeploy::agent::check::health::{Timing, down_within};
use lbdeploy::agent::vrrp::fsm::master_down_interval;
use lbdeploy::agent::vrrp::packet::Version;
use lbdeploy::inventory::agent::{self as agent_config, DirectorConfig};
use serde_json::Value;

use crate::desired::compile_text;
use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, TestLab, within};
use crate::support::subnet::Subnet;

/// The port the lab's agents serve metrics on.
const PORT: u16 = 9105;

/// Prometheus's scrape and rule-evaluation interval in the lab.
const SCRAPE: Duration = Duration::from_secs(1);

/// A value an agent reports is in a query's answer within one scrape
/// interval and the scrape itself (bounded by its timeout, one interval);
/// the rest is the query's own round trip.
const SEEN: Duration = Duration::from_secs(3);

/// From starting Prometheus to its first scrapes: its TSDB opens empty
/// and the first scrape is due within one interval (measured: about 2 s
/// on two busy cores).
const PROMETHEUS_START: Duration = Duration::from_secs(30);

/// The hosts of the example cluster, with their last octets.
const HOSTS: [(&str, u8); 4] =
    [("keepalived01", 11), ("keepalived02", 12), ("rs01", 21), ("rs02", 22)];

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(path)
}

/// Whether `program` runs here; says why the test is skipped when not.
fn have(program: &str, test: &str) -> bool {
    let found = Command::new(program).arg("--version").output().is_ok();
    if !found {
        eprintln!(
            "SKIPPED {test}: `{program}` is not installed — \
             `bash .ci/packages tests` installs it (Debian package prometheus)"
        );
    }
    found
}

#[test]
fn metrics_listen_reaches_each_agent_with_a_host_override() {
    let text = "cluster: t
directors:
  - { name: d1, address: 10.0.0.1/24, interface: eth0, priority: 100 }
  - name: d2
    address: 10.0.0.2/24
    interface: eth0
    priority: 90
    metrics: { listen: '10.9.0.2:9200' }
real_servers:
  - { name: r1, address: 10.0.0.21/24, interface: eth0 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 1, virtual_addresses: [{ address: 10.0.0.100/24 }] }
virtual_services:
  - vip: 10.0.0.100
    port: 80
    scheduler: rr
    real_servers: [{ host: r1, port: 80 }]
metrics:
  listen: '[::]:9105'
";
    let hosts = compile_text("metrics.yml", text);
    let agent_yml = |name: &str| {
        let h = hosts.iter().find(|h| h.name == name).unwrap();
        h.files.iter().find(|f| f.path.ends_with("agent.yml")).unwrap().clone()
    };
    let d1 = agent_yml("d1");
    let parsed: DirectorConfig =
        agent_config::parse(&d1.path, &d1.content).expect("it parses");
    assert_eq!(
        parsed.metrics.map(|m| m.listen.to_string()).as_deref(),
        Some("[::]:9105")
    );
    assert!(
        agent_yml("d2").content.contains("metrics:\n  listen: 10.9.0.2:9200\n"),
        "{}",
        agent_yml("d2").content
    );
    assert!(
        agent_yml("r1").content.contains("metrics:\n  listen: '[::]:9105'\n"),
        "{}",
        agent_yml("r1").content
    );
    let off = compile_text(
        "off.yml",
        &text.replace("metrics:\n  listen: '[::]:9105'\n", ""),
    );
    let r1 = off.iter().find(|h| h.name == "r1").unwrap();
    assert!(
        r1.files.iter().all(|f| !f.content.contains("metrics")),
        "off unless set"
    );
}

/// The agent reads the generation where the host side writes it.
#[test]
fn the_agent_reads_the_generation_file_the_host_side_writes() {
    let layout = lbdeploy::host::layout::Layout::new(None);
    assert_eq!(
        Path::new(lbdeploy::agent::metrics::GENERATION_FILE),
        layout.generation()
    );
}

#[test]
fn the_alerting_rules_pass_promtool() {
    if !have("promtool", "the_alerting_rules_pass_promtool") {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(contrib("prometheus/alerts.yml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned()
        + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 8 rules found"), "{said}");
}

/// The metric names `text` refers to: every `lbdeploy_…` word.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("lbdeploy_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        out.insert(word);
    }
    out
}

/// The sample names of an exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A Prometheus running in the lab's controller, killed on drop.
struct Prometheus<'a> {
    lab: &'a TestLab,
    pid: String,
    log: PathBuf,
}

impl<'a> Prometheus<'a> {
    /// Start Prometheus in the controller, scraping every agent of
    /// subnet `s` every [`SCRAPE`] and evaluating the contrib rules, with
    /// its data and log in `dir`.
    fn start(lab: &'a TestLab, s: Subnet, dir: &Path) -> Self {
        let mut targets = String::new();
        for (host, octet) in HOSTS {
            targets += &format!(
                "      - targets: ['{}:{PORT}']\n        labels: {{ host: {host} }}\n",
                s.addr(octet)
            );
        }
        let config = format!(
            "global:\n  scrape_interval: {s}s\n  scrape_timeout: {s}s\n  \
             evaluation_interval: {s}s\nrule_files: ['{rules}']\n\
             scrape_configs:\n  - job_name: lbdeploy\n    static_configs:\n{targets}",
            s = SCRAPE.as_secs(),
            rules = contrib("prometheus/alerts.yml").display(),
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = dir.join("prometheus.log");
        let pid = lab.exec_ok(
            "controller",
            &format!(
                "setsid prometheus --config.file={d}/prometheus.yml \
                 --storage.tsdb.path={d}/data --web.listen-address=127.0.0.1:9090 \
                 </dev/null >{log} 2>&1 & echo $!",
                d = dir.display(),
                log = log.display()
            ),
        );
        Prometheus { lab, pid: pid.trim().to_owned(), log }
    }

    /// The result vector of the instant query `q`, as (labels, value).
    fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let out = self.lab.exec(
            "controller",
            &format!(
                "curl -sS --max-time 2 http://127.0.0.1:9090/api/v1/query \
                 --data-urlencode 'query={q}'"
            ),
        );
        let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
            return Vec::new();
        };
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap_or("NaN");
                (r["metric"].clone(), value.parse().unwrap_or(f64::NAN))
            })
            .collect()
    }

    /// `GET /api/v1/PATH`'s `data`.
    fn api(&self, path: &str) -> Value {
        let out = self.lab.exec(
            "controller",
            &format!(
                "curl -sS --max-time 2 http://127.0.0.1:9090/api/v1/{path}"
            ),
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .map(|v| v["data"].clone())
            .unwrap_or(Value::Null)
    }

    /// The hosts `q` returns series for, sorted.
    fn hosts(&self, q: &str) -> Vec<String> {
        let mut h: Vec<String> = self
            .query(q)
            .iter()
            .map(|(m, _)| m["host"].as_str().unwrap_or("?").to_owned())
            .collect();
        h.sort();
        h
    }
}

impl Drop for Prometheus<'_> {
    /// Stop it; when the test failed, show how its log ends first.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!(
                "prometheus.log ends (last line first):\n{}",
                tail.join("\n")
            );
        }
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

#[test]
fn prometheus_sees_one_master_the_real_servers_and_a_failover() {
    let test = "prometheus_sees_one_master_the_real_servers_and_a_failover";
    if !have("prometheus", test) || !have("promtool", test) {
        return;
    }
    let s = Subnet::allocate();
    let tcp =
        "{ tcp: { connect_timeout: 1s, retry: 1, delay_before_retry: 500ms } }";
    let inventory = Inventory::example(s)
        .cluster("metrics")
        .virtual_router_id(63)
        .service_option("delay_loop: 1s")
        .check("rs01", tcp)
        .check("rs02", tcp)
        .top(&format!("metrics:\n  listen: 0.0.0.0:{PORT}\n"));
    let lab = lab_or_skip!("metrics", inventory);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    within(mdi + Duration::from_secs(2), "keepalived01 master", || {
        lab.exec_ok("keepalived01", "ip -o -4 addr show eth0")
            .contains(&format!(" {}/", s.vip()))
    });

    let dir = TempDir::new("metrics-prometheus");
    let prom = Prometheus::start(&lab, s, dir.path());
    let took = within(PROMETHEUS_START, "every agent scraped", || {
        prom.query("up{job=\"lbdeploy\"} == 1").len() == HOSTS.len()
    });
    eprintln!("prometheus: every agent scraped {took:?} after its start");

    // One master for the instance, and it is keepalived01.
    within(SEEN, "one master, keepalived01", || {
        prom.hosts("lbdeploy_vrrp_state{state=\"master\"} == 1")
            == ["keepalived01"]
    });
    let masters = prom.query(
        "sum by (vrrp_instance) (lbdeploy_vrrp_state{state=\"master\"})",
    );
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert_eq!(masters[0].0["vrrp_instance"], "VI_1", "{masters:?}");
    assert_eq!(masters[0].1, 1.0, "{masters:?}");
    // Every host at the generation the apply recorded.
    within(SEEN, "every agent at generation 1", || {
        prom.query("lbdeploy_agent_generation == 1").len() == HOSTS.len()
    });
    // Both real servers up, as each director sees them.
    within(SEEN, "both real servers up on both directors", || {
        prom.query("lbdeploy_real_server_up == 1").len() == 4
    });

    // Each agent's exposition passes promtool's lint, and every metric
    // the dashboard and the rules name is in a live scrape.
    let mut live = BTreeSet::new();
    for (host, octet) in HOSTS {
        let url = format!("http://{}:{PORT}/metrics", s.addr(octet));
        let text = lab.exec_ok(
            "controller",
            &format!("curl -sS --fail --max-time 2 {url}"),
        );
        live.extend(exposed(&text));
        let lint = lab.exec(
            "controller",
            &format!(
                "curl -sS --fail --max-time 2 {url} | promtool check metrics"
            ),
        );
        assert!(
            lint.status.success(),
            "promtool check metrics on {host}: {}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
    }
    for file in ["grafana/lbdeploy.json", "prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(contrib(file)).unwrap();
        let names = referenced(&text);
        assert!(names.len() >= 5, "{file}: {names:?}");
        // This cluster has no BGP and no check over TLS:
        // `bgp::r20_three_directors_…` and `checks::an_https_check_…`
        // scrape those families from their directors.
        let missing: Vec<&String> = names
            .difference(&live)
            .filter(|n| !n.starts_with("lbdeploy_bgp_"))
            .filter(|n| !n.starts_with("lbdeploy_check_certificate_"))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics no agent exposes: {missing:?}"
        );
    }

    // rs02's web server stops: within the check's bound and a scrape,
    // both directors report it down, and the rule sees it.
    let http = lab.exec_ok(
        "rs02",
        "me=$(readlink /proc/self/ns/net); for p in $(pgrep -f '[l]bdeploy lab responder'); do \
         [ \"$(readlink /proc/$p/ns/net)\" = \"$me\" ] && echo $p; done; true",
    );
    let http = http.split_whitespace().next().expect("rs02's responder");
    lab.exec_ok("rs02", &format!("kill {http}"));
    let timing = Timing {
        delay_loop: Duration::from_secs(1),
        retry: 1,
        delay_before_retry: Duration::from_millis(500),
        rise: 1,
    };
    let bound =
        down_within(timing, Duration::from_secs(1)) + timing.delay_loop + SEEN;
    let rs02 = s.addr(22);
    let took = within(bound, "rs02 down on both directors", || {
        prom.hosts(&format!(
            "lbdeploy_real_server_up{{address=\"{rs02}\"}} == 0"
        )) == ["keepalived01", "keepalived02"]
    });
    eprintln!(
        "prometheus: rs02 down {took:?} after its web server stopped (bound {bound:?})"
    );
    within(SEEN + 2 * SCRAPE, "LbdeployRealServerDown pending", || {
        prom.api("alerts")["alerts"].as_array().into_iter().flatten().any(|a| {
            a["labels"]["alertname"] == "LbdeployRealServerDown"
                && a["labels"]["address"] == rs02.as_str()
        })
    });
    let rules = prom.api("rules");
    let unhealthy: Vec<&Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["health"] != "ok")
        .collect();
    assert!(unhealthy.is_empty(), "rules failing on live data: {unhealthy:?}");

    // The master's agent dies: keepalived02 takes over, and the query
    // sees its transition within Master_Down_Interval and a scrape.
    let transitions = |host: &str| {
        prom.query(&format!(
            "lbdeploy_vrrp_transitions_total{{host=\"{host}\"}}"
        ))
        .first()
        .map_or(0.0, |(_, v)| *v)
    };
    let before = transitions("keepalived02");
    lab.exec_ok(
        "keepalived01",
        "me=$(readlink /proc/self/ns/net); for p in $(pgrep -f '[l]bdeploy agent'); do \
         [ \"$(readlink /proc/$p/ns/net)\" = \"$me\" ] && kill -9 $p; done; true",
    );
    let backup_mdi =
        master_down_interval(Version::V2, 70, Duration::from_secs(1));
    let bound = backup_mdi + SEEN;
    let took = within(bound, "keepalived02 the one master", || {
        prom.hosts("lbdeploy_vrrp_state{state=\"master\"} == 1")
            == ["keepalived02"]
    });
    eprintln!(
        "prometheus: keepalived02 master {took:?} after the kill -9 returned (bound {bound:?})"
    );
    assert!(transitions("keepalived02") > before, "no transition counted");
    within(SEEN, "keepalived01's agent down", || {
        prom.hosts("up{job=\"lbdeploy\"} == 0") == ["keepalived01"]
    });
}

/// How long each half of the measurement below runs: 20 adverts each.
const WINDOW: Duration = Duration::from_secs(20);

/// The most an advert interval may stray from its 1 s while scraped:
/// 10 %, the bound the flood tests hold the master to.
const JITTER: f64 = 0.1;

/// What `lbdeploy_…` sample `name` (without labels) says in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The master's adverts as the backup's tcpdump saw them for `secs`,
/// while `during` runs: how many, and the worst deviation from 1 s.
fn adverts_while<T>(
    lab: &TestLab,
    s: Subnet,
    secs: u64,
    during: impl FnOnce() -> T + Send,
) -> (usize, f64, T)
where
    T: Send,
{
    let cmd = format!(
        "timeout {secs} tcpdump -i eth0 -nn -tt -l 'ip proto 112 and src host {}' \
         2>/dev/null; true",
        s.addr(11)
    );
    let (dump, out) = std::thread::scope(|scope| {
        let tcpdump = scope.spawn(|| lab.exec_ok("keepalived02", &cmd));
        let out = during();
        (tcpdump.join().unwrap(), out)
    });
    let (adverts, worst) = crate::support::advert_jitter(&dump);
    (adverts, worst, out)
}

/// Scraping the master every second does not disturb its VRRP loop: its
/// adverts keep their interval as well as without scraping. Printed for
/// BENCHMARKS.md: scrape latency (curl's total, from the controller),
/// the worst advert deviation without and with scraping, and the
/// master's agent CPU and resident memory as its own metrics say.
#[test]
fn scraping_every_second_leaves_the_adverts_alone() {
    let s = Subnet::allocate();
    let inventory = Inventory::example(s)
        .cluster("metrics-jitter")
        .virtual_router_id(64)
        .service_option("delay_loop: 1s")
        .check("rs01", "{ tcp: { connect_timeout: 1s } }")
        .check("rs02", "{ tcp: { connect_timeout: 1s } }")
        .top(&format!("metrics:\n  listen: 0.0.0.0:{PORT}\n"));
    let lab = lab_or_skip!("metrics-jitter", inventory);
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let mdi = master_down_interval(Version::V2, 120, Duration::from_secs(1));
    within(mdi + Duration::from_secs(2), "keepalived01 master", || {
        lab.exec_ok("keepalived01", "ip -o -4 addr show eth0")
            .contains(&format!(" {}/", s.vip()))
    });
    let url = format!("http://{}:{PORT}/metrics", s.addr(11));
    let scrape = || {
        lab.exec_ok(
            "controller",
            &format!("curl -sS --fail --max-time 2 {url}"),
        )
    };
    let secs = WINDOW.as_secs();

    let first = scrape();
    let (quiet_n, quiet_worst, ()) =
        adverts_while(&lab, s, secs, || std::thread::sleep(WINDOW));
    let mid = scrape();
    let loop_cmd = format!(
        "for i in $(seq {secs}); do \
         curl -sS --fail --max-time 2 -o /dev/null -w '%{{time_total}}\\n' {url}; \
         sleep 1; done"
    );
    let (busy_n, busy_worst, latencies) =
        adverts_while(&lab, s, secs, || lab.exec_ok("controller", &loop_cmd));
    let last = scrape();

    let mut ms: Vec<f64> = latencies
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    assert!(ms.len() as u64 >= secs - 1, "{latencies}");
    let cpu = |a: &str, b: &str, over: Duration| {
        let name = "lbdeploy_agent_cpu_seconds_total";
        100.0 * (sample(b, name) - sample(a, name)) / over.as_secs_f64()
    };
    let rss = sample(&last, "lbdeploy_agent_resident_memory_bytes") / 1e6;
    eprintln!(
        "scrape latency over {} scrapes: median {:.1} ms, max {:.1} ms; \
         adverts without scraping {quiet_n}, worst deviation {:.1} ms; \
         scraped every 1 s {busy_n}, worst deviation {:.1} ms; \
         master's agent CPU {:.2}% of a core without, {:.2}% with; RSS {rss:.1} MB; \
         exposition {} bytes",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        quiet_worst * 1000.0,
        busy_worst * 1000.0,
        cpu(&first, &mid, WINDOW),
        cpu(&mid, &last, WINDOW),
        last.len(),
    );
    assert!(busy_n as u64 >= secs - 2, "{busy_n} adverts in {secs} s");
    assert!(
        busy_worst <= JITTER,
        "an advert strayed {busy_worst:.3} s while scraped"
    );
    assert!(ms[ms.len() - 1] < 1000.0, "a scrape took {} ms", ms[ms.len() - 1]);
}
