//! Issue #17, findings 6 and 11: secrets never leak and host-controlled
//! bytes never reach the terminal raw.
//!
//! A VRRP password with a newline and non-ASCII characters (from a
//! `password_file`: inline, validation refuses control characters), and a
//! webhook URL with a token in its path (as Slack's) and two in its query,
//! go through every output the controller and the agent have — plan text,
//! `plan --json`, `plan --out`, the generation on the controller, its
//! `meta.json`, a template render error, the agent's log — and none of
//! them holds any line of either, while the URL's host and port show.
//! Then a compromised host appends escape sequences to its `agent.yml`,
//! and the plan shows them escaped. Last, a webhook URL from `url_file`
//! and then from `url_env` reaches the agents whole: a listener in the
//! lab receives the token-bearing request, and the controller's outputs
//! show only references and markers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use lbdeploy::util::redact;

use crate::lab_or_skip;
use crate::support::inventory::Inventory;
use crate::support::lab::{LBDEPLOY, TempDir, TestLab, describe};
use crate::support::sinks::Sink;
use crate::support::subnet::Subnet;

/// The VRRP password: 8 bytes (the VRRPv2 limit), two lines, non-ASCII.
const PASSWORD: &str = "é\n€x!";

/// The webhook's path secret and two query secrets (validation refuses
/// credentials in the URL's userinfo; nothing listens on the discard port,
/// so every delivery fails and is logged).
const PATH_TOKEN: &str = "XXXXPATHSECRET";
const URL_PASSWORD: &str = "hunter2";
const URL_TOKEN: &str = "t0ps3cret";

/// Where the failing webhook goes, tokens and all.
fn secret_url() -> String {
    format!(
        "http://127.0.0.1:9/services/T0/{PATH_TOKEN}?key={URL_PASSWORD}&token={URL_TOKEN}"
    )
}

/// How long the master's failed webhook delivery may take to be logged.
const LOG_BOUND: Duration = Duration::from_secs(20);

/// The file that holds the password: an inline password may not hold a
/// control character, a file may (what an operator's secret store
/// writes is not ours to refuse).
fn password_file() -> std::path::PathBuf {
    let path = std::env::temp_dir()
        .join(format!("lbdeploy-hostile-secrets-{}.pass", std::process::id()));
    std::fs::write(&path, PASSWORD).unwrap();
    // A secret file only its owner may read, as lbdeploy requires.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&path, mode).unwrap();
    path
}

/// The example cluster with the password and the webhook.
fn inventory(subnet: Subnet) -> Inventory {
    Inventory::example(subnet)
        .instance_option(&format!(
            "authentication: {{ type: pass, password_file: {} }}",
            password_file().display()
        ))
        .top(&format!("notification:\n  webhook: \"{}\"\n", secret_url()))
}

/// Every piece of secret text that must never show: each line of the
/// password, the URL's password and token.
fn secret_pieces() -> Vec<&'static str> {
    let mut pieces: Vec<&str> = PASSWORD.lines().collect();
    pieces.extend([PATH_TOKEN, URL_PASSWORD, URL_TOKEN, "/services/T0"]);
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
    // Scheme, host and port show; the rest is a marker with the URL's
    // fingerprint under the controller's key.
    let marker = url_marker(&text, "127.0.0.1:9");
    assert_clean("plan", &text);
    assert_clean("plan's stderr", &String::from_utf8_lossy(&out.stderr));

    let json = lab.lbdeploy_exit(0, &["--json", "plan"]);
    serde_json::from_str::<Value>(&json).expect("plan --json is JSON");
    assert!(json.contains("password: (sensitive)"), "{json}");
    assert!(json.contains(&marker), "{json}");
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
    let stored = stored.unwrap();
    assert_clean("the generation's inventory", &stored);
    assert!(stored.contains(&marker), "the plan's marker:\n{stored}");
    let meta = std::fs::read_to_string(generation.join("meta.json")).unwrap();
    assert_clean("meta.json", &meta);
    let meta: Value = serde_json::from_str(&meta).unwrap();
    // The password is a file reference, stored as such; the webhook's
    // query secrets are inline, so only their keyed fingerprint is.
    assert!(meta["secrets"].get("VI_1").is_none(), "{meta}");
    let prints = meta["secrets"].as_object().unwrap();
    assert!(!prints.is_empty(), "{meta}");
    // The plan's marker is the start of the print meta.json records.
    let print = prints["notification webhook"].as_str().unwrap();
    let hex = print.strip_prefix("hmac-sha256:").unwrap();
    assert!(marker.contains(&format!(":{})", &hex[..12])), "{marker} {print}");
    let plain = Sha256::digest(secret_url().as_bytes());
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
    // The agent has no key: a plain marker.
    assert!(
        log.contains(
            "webhook notification to http://127.0.0.1:9/(sensitive) failed"
        ),
        "{log}"
    );
    assert_clean("agent.log", &log);
    // `agent status` counts the failure and shows it as logged.
    let json = lab.exec_ok("keepalived01", "lbdeploy agent status --json");
    assert_clean("agent status --json", &json);
    let status: Value = serde_json::from_str(&json).unwrap();
    let notified = &status["details"]["notifications"];
    assert!(notified["failed"].as_u64() >= Some(1), "{status}");
    let failure = notified["last_failure"].as_str().unwrap_or_default();
    assert!(
        failure.starts_with(
            "webhook notification to http://127.0.0.1:9/(sensitive) failed"
        ),
        "{status}"
    );
    let human = lab.exec_ok("keepalived01", "lbdeploy agent status");
    assert!(human.contains("http://127.0.0.1:9/(sensitive) failed"), "{human}");
    assert_clean("agent status", &human);

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

/// The marker `text` shows for a webhook URL to `authority`, which it must
/// show: `http://AUTHORITY/(sensitive:HEX)`, HEX the fingerprint.
fn url_marker(text: &str, authority: &str) -> String {
    let start = format!("http://{authority}/(sensitive:");
    let at = text.find(&start).unwrap_or_else(|| panic!("no {start}:\n{text}"));
    let rest = &text[at + start.len()..];
    let print: String =
        rest.chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(print.len(), 12, "a 12-digit fingerprint:\n{text}");
    assert!(rest[print.len()..].starts_with(')'), "{text}");
    format!("{start}{print})")
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
/// path and query tokens, in text and `--json`.
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
        for token in [PATH_TOKEN, URL_PASSWORD, URL_TOKEN] {
            assert!(!said.contains(token), "{said}");
        }
    }
}

/// Where the lab's webhook listener is, in the controller's namespace.
const HOOK_PORT: u16 = 8080;

/// How long a director may take to report a transition it has made: the
/// delivery is queued at once and the listener answers at once.
const DELIVERY_BOUND: Duration = Duration::from_secs(10);

/// The variable `url_env` names in the second half of the test.
const HOOK_VAR: &str = "LBDEPLOY_TEST_HOOK_URL";

/// The example cluster notifying `webhook` (YAML of the field's value).
fn notifying(subnet: Subnet, webhook: &str) -> Inventory {
    Inventory::example(subnet)
        .cluster("websecret")
        .top(&format!("notification:\n  webhook: {webhook}\n"))
}

/// The request line of the next webhook from `host` about becoming
/// master.
fn master_request(sink: &Sink, host: &str) -> String {
    let request = sink
        .next(DELIVERY_BOUND, |r| {
            r.contains(&format!("\"host\":\"{host}\""))
                && r.contains("\"state\":\"master\"")
        })
        .unwrap_or_else(|| {
            panic!("no webhook from {host} within {DELIVERY_BOUND:?}")
        });
    request.lines().next().unwrap_or_default().to_owned()
}

/// `lbdeploy ARGS` on the lab's controller with `HOOK_VAR` set to `url`.
fn lbdeploy_with_url(lab: &TestLab, url: &str, args: &[&str]) -> Output {
    let inv = lab.inventory().to_string_lossy().into_owned();
    let mut all = vec!["exec", "controller", "--", "lbdeploy", "-i", &inv];
    all.extend_from_slice(args);
    lab.lab_cmd(&all).env(HOOK_VAR, url).output().expect("running lbdeploy")
}

#[test]
fn a_webhook_url_from_a_file_or_the_environment_reaches_the_agents_whole() {
    let subnet = Subnet::allocate();
    let controller = subnet.addr(10);
    let secrets = TempDir::new("websecret-url");
    let file_token = "FILETOKEN0xK7";
    let env_token = "ENVTOKEN0xQ9";
    let file_url = format!(
        "http://{controller}:{HOOK_PORT}/services/{file_token}?token={file_token}"
    );
    let url_file = secrets.path().join("hook.url");
    std::fs::write(&url_file, format!("{file_url}\n")).unwrap();
    let private = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(&url_file, private).unwrap();
    let inventory =
        notifying(subnet, &format!("{{ url_file: {} }}", url_file.display()));
    let lab = lab_or_skip!("websecret", inventory);
    let sink = Sink::webhook(&lab.netns("controller"), HOOK_PORT);

    // From the file: the agent posts to the URL whole.
    lab.apply_until_forwarding(&subnet.vip());
    let line = master_request(&sink, "keepalived01");
    assert_eq!(
        line,
        format!("POST /services/{file_token}?token={file_token} HTTP/1.0")
    );
    let agent_yml = lab.exec_ok("keepalived01", "cat /etc/lbdeploy/agent.yml");
    assert!(agent_yml.contains(&file_url), "{agent_yml}");
    // The generation keeps the reference, not the URL.
    let state = lab.inventory().with_file_name(".lbdeploy");
    let generation = state.join("generations/1");
    let stored =
        std::fs::read_to_string(generation.join("inventory.yml")).unwrap();
    assert!(stored.contains("url_file:"), "{stored}");
    assert!(!stored.contains(file_token), "{stored}");
    let meta = std::fs::read_to_string(generation.join("meta.json")).unwrap();
    assert!(!meta.contains("notification webhook"), "{meta}");

    // From the environment: unset, a located error naming the variable.
    lab.rewrite_inventory(&notifying(
        subnet,
        &format!("{{ url_env: {HOOK_VAR} }}"),
    ));
    let out = lab.lbdeploy(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    let error = said
        .lines()
        .find(|l| l.contains("notification.webhook.url_env"))
        .unwrap_or_else(|| panic!("no error at url_env:\n{said}"));
    let inv = lab.inventory().display().to_string();
    let place = error.split_once(&format!("{inv}:")).unwrap_or_default().1;
    let mut place = place.splitn(3, ':');
    let (line, col) = (place.next(), place.next());
    assert!(
        [line, col].iter().all(|n| n.is_some_and(|n| n.parse::<u32>().is_ok())),
        "not FILE:LINE:COL: {error}"
    );
    assert!(
        error
            .contains(&format!("environment variable `{HOOK_VAR}` is not set")),
        "{error}"
    );
    // Set: the plan shows the agents' URL changing, by the URLs' markers
    // under the controller's key, and neither URL.
    let env_url =
        format!("http://{controller}:{HOOK_PORT}/services/{env_token}");
    let out = lbdeploy_with_url(&lab, &env_url, &["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let key = std::fs::read_to_string(state.join("controller.key")).unwrap();
    let key: Vec<u8> = (0..key.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key.trim()[i..i + 2], 16).unwrap())
        .collect();
    for url in [&file_url, &env_url] {
        let marker = redact::keyed(url, Some(&key)).into_owned();
        assert!(marker.contains("/(sensitive:"), "{marker}");
        assert!(
            text.contains(&format!("webhook: {marker}")),
            "{marker}:\n{text}"
        );
    }
    for token in [file_token, env_token] {
        assert!(!text.contains(token), "the plan shows `{token}`:\n{text}");
    }
    let out = lbdeploy_with_url(&lab, &env_url, &["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let said = describe(&out);
    assert!(!said.contains(env_token), "apply shows the token:\n{said}");

    // keepalived01 unplugged: keepalived02 takes over and reports it to
    // the URL from the environment.
    lab.set_switch_port("keepalived01", "down");
    let line = master_request(&sink, "keepalived02");
    assert_eq!(line, format!("POST /services/{env_token} HTTP/1.0"));
    let stored =
        std::fs::read_to_string(state.join("generations/2/inventory.yml"))
            .unwrap();
    assert!(stored.contains(&format!("url_env: {HOOK_VAR}")), "{stored}");
    assert!(!stored.contains(env_token), "{stored}");
}
