//! The `ping` check in the lab: rs02, checked by ICMP echo only, must be
//! taken out of the pool when it stops answering echoes (an nftables rule
//! in its own namespace drops them, the host otherwise up and serving)
//! and put back when it answers again, each within the bound its check
//! timing gives ([`down_within`], [`up_within`]) plus one `delay_loop` of
//! slack. The lab's subnet is 10.77.110.0/24.

use std::time::{Duration, Instant};

use lbdeploy::agent::check::health::{Timing, down_within, up_within};
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::lab::{TestLab, lab_hosts, within};

const N: u8 = 110;
const DELAY_LOOP: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
const RETRY: u32 = 1;
const PAUSE: Duration = Duration::from_millis(500);

fn timing() -> Timing {
    Timing {
        delay_loop: DELAY_LOOP,
        retry: RETRY,
        delay_before_retry: PAUSE,
        rise: 1,
    }
}

/// The example cluster with rs01 checked by TCP and rs02 by ping.
fn inventory() -> String {
    let t = format!(
        "connect_timeout: {}ms, retry: {RETRY}, delay_before_retry: {}ms",
        TIMEOUT.as_millis(),
        PAUSE.as_millis()
    );
    format!(
        "{}vrrp_instances:
  - {{ name: VI_1, virtual_router_id: 72, virtual_addresses: [{{ address: 10.77.{N}.200/24 }}] }}
virtual_services:
  - name: web
    vip: 10.77.{N}.200
    port: 80
    scheduler: rr
    delay_loop: {}ms
    real_servers:
      - {{ host: rs01, port: 80, checks: [{{ tcp: {{ {t} }} }}] }}
      - {{ host: rs02, port: 80, checks: [{{ ping: {{ {t} }} }}] }}
lab: {{ controller: 10.77.{N}.10/24, client: 10.77.{N}.100/24 }}
",
        lab_hosts("check-ping", N),
        DELAY_LOOP.as_millis()
    )
}

/// What keepalived01's agent says of real server `rip` of `web`.
fn verdict(lab: &TestLab, rip: &str) -> Option<bool> {
    let out = lab.exec_ok("keepalived01", "lbdeploy agent status --json");
    let status: Value = serde_json::from_str(&out).ok()?;
    status["details"]["forwarding"]["real_servers"]["web"][rip].as_bool()
}

/// The rule that makes rs02 deaf to echo requests, in its namespace.
const DROP_ECHO: &str = "nft add table inet lbtest && nft add chain inet \
    lbtest input '{ type filter hook input priority 0; }' && nft add rule \
    inet lbtest input icmp type echo-request drop";

#[test]
fn a_server_that_stops_answering_echoes_is_down_and_comes_back() {
    let lab = lab_or_skip!("check-ping", inventory());
    lab.apply_until_forwarding(&format!("10.77.{N}.200"));
    let rip = format!("10.77.{N}.22");
    within(DELAY_LOOP * 3, "rs02 up by ping", || {
        verdict(&lab, &rip) == Some(true)
    });

    let start = Instant::now();
    lab.exec_ok("rs02", DROP_ECHO);
    let bound = down_within(timing(), TIMEOUT) + DELAY_LOOP;
    within(bound, "rs02 marked down", || verdict(&lab, &rip) == Some(false));
    let down = start.elapsed();
    let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
    let line = format!(
        "real server {rip} of web is down: no echo reply from {rip} within \
         {TIMEOUT:?}"
    );
    assert!(log.contains(&line), "no `{line}` in the agent's log:\n{log}");
    assert_eq!(
        verdict(&lab, &format!("10.77.{N}.21")),
        Some(true),
        "rs01, checked by TCP, stays up"
    );

    let start = Instant::now();
    lab.exec_ok("rs02", "nft delete table inet lbtest");
    let bound = up_within(timing()) + TIMEOUT + DELAY_LOOP;
    within(bound, "rs02 back", || verdict(&lab, &rip) == Some(true));
    eprintln!("ping: down after {down:?}, back after {:?}", start.elapsed());
}
