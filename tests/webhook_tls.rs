//! Issue #21: a director's webhook over `https://`, through `apply` and
//! the running agent. The inventory names a private CA (`ca_file` on the
//! controller, shipped in the agent's configuration); a receiver in the
//! lab's controller whose certificate that CA signed gets the events, and
//! the same receiver with an expired certificate gets nothing — the agent
//! refuses during the handshake, before a byte of the event is sent, and
//! counts the failure with rustls's reason in its status.

use std::time::Duration;

use lbdeploy::lab::demo::kill_here;
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, within};
use crate::support::sinks::Sink;
use crate::support::subnet::Subnet;
use crate::support::test_ca::TestCa;

/// Where the controller's receiver listens.
const PORT: u16 = 8443;

/// rs02's check: one retry half a second after a one-second timeout,
/// every second — down within 1 + 2 × 1 + 0.5 s of its responder dying.
const CHECK: &str =
    "{ tcp: { connect_timeout: 1s, retry: 1, delay_before_retry: 500ms } }";

#[test]
fn r21_an_https_webhook_is_verified_against_the_inventorys_ca() {
    let s = Subnet::allocate();
    let controller = s.addr(10);
    let ca = TestCa::new("lbdeploy test CA");
    let files = TempDir::new("webhook-tls");
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let inventory = Inventory::example(s)
        .cluster("webhook-tls")
        .service_option("delay_loop: 1s")
        .check("rs02", CHECK)
        .top(&format!(
            "notification:\n  webhook: {{ url: 'https://{controller}:{PORT}/hook', \
             ca_file: '{}' }}\n",
            ca_file.display()
        ));
    let lab = lab_or_skip!("webhook-tls", inventory);
    let netns = lab.netns("controller");
    let hooks =
        Sink::https_webhook(&netns, PORT, ca.server(&controller, false));
    lab.apply_until_forwarding(&s.vip());
    let master = hooks
        .next(Duration::from_secs(5), |r| {
            r.contains("\"host\":\"keepalived01\"")
                && r.contains("\"state\":\"master\"")
        })
        .expect("keepalived01's master event over TLS within 5 s");
    assert!(master.starts_with("POST /hook HTTP/1.0\r\n"), "{master}");
    drop(hooks);

    // The receiver's certificate expired: rs02's fall is not delivered.
    let expired =
        Sink::https_webhook(&netns, PORT, ca.server(&controller, true));
    lab.exec_ok("rs02", &kill_here("[l]bdeploy lab responder"));
    let failure = || -> Option<String> {
        let out = lab.exec_ok("keepalived01", "lbdeploy agent status --json");
        let status: Value = serde_json::from_str(&out).ok()?;
        let notified = &status["details"]["notifications"];
        Some(notified["last_failure"].as_str()?.to_owned())
    };
    // Down within 3.5 s, the event's delivery attempt within the hook's
    // 10 s timeout at most; a handshake refusal is immediate.
    within(Duration::from_secs(15), "the expired certificate refused", || {
        failure().is_some_and(|f| f.contains("certificate expired"))
    });
    let got = failure().unwrap();
    assert!(got.starts_with("webhook notification to https://"), "{got}");
    assert_eq!(
        expired.next(Duration::from_secs(1), |_| true),
        None,
        "a request reached the receiver whose certificate expired"
    );
}
