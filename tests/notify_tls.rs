//! Issue #21: a director's notifications over TLS, through `apply` and
//! the running agent. The inventory names a private CA (`ca_file` on the
//! controller, shipped in the agent's configuration). A webhook receiver
//! in the lab's controller whose certificate that CA signed gets the
//! events over `https://`, and the same receiver with an expired
//! certificate gets nothing — the agent refuses during the handshake,
//! before a byte of the event is sent, and counts the failure with
//! rustls's reason in its status. An SMTP relay that offers STARTTLS gets
//! the email only after TLS began, with the credentials the controller
//! read from a file arriving intact.

use std::sync::Arc;
use std::time::Duration;

use lbdeploy::lab::demo::kill_here;
use serde_json::Value;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{TempDir, within};
use crate::support::sinks::{Sink, SmtpTls};
use crate::support::subnet::Subnet;
use crate::support::test_ca::TestCa;

/// Where the controller's receivers listen.
const PORT: u16 = 8443;
const SMTP_PORT: u16 = 2587;

/// rs02's check: one retry half a second after a one-second timeout,
/// every second — down within 1 + 2 × 1 + 0.5 s of its responder dying.
const CHECK: &str =
    "{ tcp: { connect_timeout: 1s, retry: 1, delay_before_retry: 500ms } }";

#[test]
fn r21_notifications_go_over_tls_verified_against_the_inventorys_ca() {
    let s = Subnet::allocate();
    let controller = s.addr(10);
    let ca = TestCa::new("lbdeploy test CA");
    let files = TempDir::new("webhook-tls");
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let password_file = files.path().join("smtp.pw");
    std::fs::write(&password_file, "s3cret pass\n").unwrap();
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let inventory = Inventory::example(s)
        .cluster("notify-tls")
        .service_option("delay_loop: 1s")
        .check("rs02", CHECK)
        .top(&format!(
            "notification:
  webhook: {{ url: 'https://{controller}:{PORT}/hook', ca_file: '{ca}' }}
  email:
    to: [ops@example.org]
    from: lb@example.org
    smtp_server: '{controller}:{SMTP_PORT}'
    tls: starttls
    ca_file: '{ca}'
    auth: {{ username: lb, password_file: '{pw}' }}
",
            ca = ca_file.display(),
            pw = password_file.display(),
        ));
    let lab = lab_or_skip!("notify-tls", inventory);
    let netns = lab.netns("controller");
    let hooks =
        Sink::https_webhook(&netns, PORT, ca.server(&controller, false));
    let tls = Arc::new(ca.server(&controller, false));
    let mails = Sink::smtp_tls(&netns, SMTP_PORT, SmtpTls::Starttls(tls));
    lab.apply_until_forwarding(&s.vip());
    let master = hooks
        .next(Duration::from_secs(5), |r| {
            r.contains("\"host\":\"keepalived01\"")
                && r.contains("\"state\":\"master\"")
        })
        .expect("keepalived01's master event over TLS within 5 s");
    assert!(master.starts_with("POST /hook HTTP/1.0\r\n"), "{master}");
    drop(hooks);
    let mail = mails
        .next(Duration::from_secs(5), |d| {
            d.contains("keepalived01: VRRP instance VI_1 is now MASTER")
        })
        .expect("keepalived01's master email within 5 s");
    let tls_at = mail.find("(TLS)").expect("STARTTLS taken");
    let auth_at = mail.find("AUTH PLAIN lb:s3cret pass\r\n").expect("AUTH");
    let mail_at = mail.find("MAIL FROM:<lb@example.org>").expect("MAIL");
    assert!(tls_at < auth_at && auth_at < mail_at, "{mail}");
    assert!(mail[..tls_at].starts_with("EHLO keepalived01\r\nSTARTTLS"));

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
