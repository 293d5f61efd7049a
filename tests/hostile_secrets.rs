//! Issue #17, findings 6 and 11: secrets never leak and host-controlled
//! bytes never reach the terminal raw.
//!
//! A VRRP password with a newline and non-ASCII characters (from a
//! `password_file`: inline, validation refuses control characters), and a
//! webhook URL with two query secrets, go through every output the controller
//! and the agent have — plan text, `plan --json`, `plan --out`, the
//! generation on the controller, its `meta.json`, a template render error,
//! the agent's log — and none of them holds any line of either. Then a
//! compromised host appends escape sequences to its `agent.yml`, and the
//! plan shows them escaped.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{LBDEPLOY, TempDir, describe};
use crate::support::subnet::Subnet;

/// The VRRP password: 8 bytes (the VRRPv2 limit), two lines, non-ASCII.
const PASSWORD: &str = "é\n€x!";

/// The webhook's two query secrets (validation refuses credentials in the
/// URL's userinfo; nothing listens on the discard port, so every delivery
/// fails and is logged).
const URL_PASSWORD: &str = "hunter2";
const URL_TOKEN: &str = "t0ps3cret";

/// How long the master's failed webhook delivery may take to be logged.
const LOG_BOUND: Duration = Duration::from_secs(20);

/// The file that holds the password: an inline password may not hold a
/// control character, a file may (what an operator's secret store
/// writes is not ours to refuse).
fn password_file() -> std::path::PathBuf {
    let path = std::env::temp_dir()
        .join(format!("lbdeploy-hostile-secrets-{}.pass", std::process::id()));
    std::fs::write(&path, PASSWORD).unwrap();
    path
}

/// The example cluster with the password and the webhook.
fn inventory(subnet: Subnet) -> Inventory {
    Inventory::example(subnet)
        .instance_option(&format!(
            "authentication: {{ type: pass, password_file: {} }}",
            password_file().display()
        ))
        .top(&format!(
            "notification:\n  webhook: \
             \"http://127.0.0.1:9/hook?key={URL_PASSWORD}&token={URL_TOKEN}\"\n"
        ))
}

/// Every piece of secret text that must never show: each line of the
/// password, the URL's password and token.
fn secret_pieces() -> Vec<&'static str> {
    let mut pieces: Vec<&str> = PASSWORD.lines().collect();
    pieces.extend([URL_PASSWORD, URL_TOKEN]);
    pieces
}

/// Fail naming `what` when `text` holds any piece of a secret.
fn assert_clean(what: &str, text: &str) {
    for piece in secret_pieces() {
        assert!(!text.contains(piece), "{what} shows `{piece}`:\n{text}");
    }
}

#[test]
fn secrets_stay_out_of_plans_generations_and_logs() {
    let subnet = Subnet::allocate();
    let lab = lab_or_skip!("hostile-secrets", inventory(subnet));

    let out = lab.lbdeploy(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("password: (sensitive)"), "{text}");
    assert!(
        text.contains(
            "webhook: http://127.0.0.1:9/hook?key=(sensitive)&token=(sensitive)"
        ),
        "{text}"
    );
    assert_clean("plan", &text);
    assert_clean("plan's stderr", &String::from_utf8_lossy(&out.stderr));

    let json = lab.lbdeploy_exit(0, &["--json", "plan"]);
    serde_json::from_str::<Value>(&json).expect("plan --json is JSON");
    assert!(json.contains("password: (sensitive)"), "{json}");
    assert_clean("plan --json", &json);

    let saved = lab.inventory().with_file_name("reviewed.plan");
    lab.lbdeploy_exit(0, &["plan", "--out", &saved.to_string_lossy()]);
    let mode = std::fs::metadata(&saved).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the saved plan's mode");
    assert_clean("plan --out", &std::fs::read_to_string(&saved).unwrap());

    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let state = lab.inventory().with_file_name(".lbdeploy");
    let generation = state.join("generations/1");
    let stored = std::fs::read_to_string(generation.join("inventory.yml"));
    assert_clean("the generation's inventory", &stored.unwrap());
    let meta = std::fs::read_to_string(generation.join("meta.json")).unwrap();
    assert_clean("meta.json", &meta);
    let meta: Value = serde_json::from_str(&meta).unwrap();
    // The password is a file reference, stored as such; the webhook's
    // query secrets are inline, so only their keyed fingerprint is.
    assert!(meta["secrets"].get("VI_1").is_none(), "{meta}");
    let prints = meta["secrets"].as_object().unwrap();
    assert!(!prints.is_empty(), "{meta}");
    let url =
        format!("http://127.0.0.1:9/hook?key={URL_PASSWORD}&token={URL_TOKEN}");
    let plain = Sha256::digest(url.as_bytes());
    let plain: String = plain.iter().map(|b| format!("{b:02x}")).collect();
    for print in prints.values() {
        let print = print.as_str().unwrap();
        assert!(print.starts_with("hmac-sha256:"), "{print}");
        assert!(!print.contains(&plain), "meta.json holds a plain SHA-256");
    }
    let key = std::fs::metadata(state.join("controller.key")).unwrap();
    assert_eq!(key.mode() & 0o7777, 0o600, "the controller key's mode");

    // The keyed fingerprint still lets a rollback check the password.
    lab.rewrite_inventory(&inventory(subnet).weight("rs01", 3));
    lab.lbdeploy_exit(0, &["apply", "--yes"]);
    let back = lab.lbdeploy_exit(0, &["rollback", "--yes", "--to", "1"]);
    assert_clean("rollback", &back);

    // The master's failed webhook delivery, in the agent's log.
    let until = Instant::now() + LOG_BOUND;
    let log = loop {
        let log = lab.exec_ok("keepalived01", "cat /run/lbdeploy/agent.log");
        if log.contains("webhook notification to") {
            break log;
        }
        assert!(Instant::now() < until, "no webhook failure logged:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        log.contains(
            "http://127.0.0.1:9/hook?key=(sensitive)&token=(sensitive)"
        ),
        "{log}"
    );
    assert_clean("agent.log", &log);

    // A compromised host forges and hides plan lines with escapes.
    lab.exec_ok(
        "keepalived01",
        r"printf 'x: 1\033]0;pwned\007\033[1A\033[2K\033[8mhidden\r\n' \
          >> /etc/lbdeploy/agent.yml",
    );
    let out = lab.lbdeploy(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!out.stdout.contains(&0x1b), "a raw ESC in the plan");
    assert!(!out.stdout.contains(&0x07), "a raw BEL in the plan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r"-x: 1\x1b]0;pwned\x07\x1b[1A\x1b[2K\x1b[8mhidden\x0d"),
        "{text}"
    );
    let json = lab.lbdeploy_exit(0, &["--json", "plan"]);
    assert!(!json.as_bytes().contains(&0x1b), "a raw ESC in --json");
    let doc: Value = serde_json::from_str(&json).expect("still JSON");
    assert!(json.contains(r"\u001b]0;pwned\u0007"), "{json}");
    assert!(doc.to_string().contains("hidden"), "{json}");
}

/// A template that puts the password where the agent expects a data-plane
/// name: the parser quotes the value it rejects, and before #17 the error
/// printed the whole rendered file besides.
#[test]
fn a_render_error_names_the_template_and_line_and_echoes_nothing() {
    let dir = TempDir::new("hostile-render");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roles = dir.path().join("roles-dir");
    for sub in ["roles", "templates"] {
        std::fs::create_dir_all(roles.join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let from = entry.unwrap().path();
            let to = roles.join(sub).join(from.file_name().unwrap());
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let template = roles.join("templates/agent-director.yml.j2");
    let text = std::fs::read_to_string(&template).unwrap();
    let broken = text.replace(
        "dataplane: {{ dataplane | tojson }}",
        "dataplane: {{ vrrp_instances[0].password | tojson }}",
    );
    assert_ne!(broken, text, "the template's layout changed");
    std::fs::write(&template, broken).unwrap();
    let path = dir.path().join("inventory.yml");
    std::fs::write(&path, inventory(Subnet::allocate()).to_string()).unwrap();

    for json in [false, true] {
        let mut cmd = Command::new(LBDEPLOY);
        cmd.arg("-i").arg(&path);
        if json {
            cmd.arg("--json");
        }
        cmd.arg("plan").arg("--roles-dir").arg(&roles);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(
                "host keepalived01: /etc/lbdeploy/agent.yml rendered from \
                 template agent-director.yml.j2 does not parse"
            ),
            "{said}"
        );
        assert!(said.contains("line "), "no line number: {said}");
        assert!(said.contains("(sensitive)"), "{said}");
        assert!(!said.contains("vrrp_instances:"), "rendered text: {said}");
        assert_clean("the render error", &said);
        assert_clean("stdout", &String::from_utf8_lossy(&out.stdout));
    }
}

/// `validate` quotes a webhook URL it refuses; the quote hides the URL's
/// password and token, in text and `--json`.
#[test]
fn validate_never_quotes_a_webhook_token() {
    let dir = TempDir::new("hostile-validate");
    let path = dir.path().join("inventory.yml");
    let text =
        inventory(Subnet::allocate()).to_string().replace("http://", "ftp://");
    std::fs::write(&path, text).unwrap();
    for json in [false, true] {
        let mut cmd = Command::new(LBDEPLOY);
        cmd.arg("-i").arg(&path);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.arg("validate").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let said = describe(&out);
        assert!(said.contains("notification.webhook"), "{said}");
        assert!(!said.contains(URL_PASSWORD), "{said}");
        assert!(!said.contains(URL_TOKEN), "{said}");
    }
}
