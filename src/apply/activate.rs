//! One host's apply: upload the binary if it changed, activate the new
//! generation, check the agent, run the operator's smoke test, and confirm
//! over a fresh SSH connection. A host that is not confirmed in time
//! restores its previous generation by itself (the host side of this lives
//! in `crate::host`); here we only wait to learn that it did.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::agent::status::bgp_session_up;
use crate::host::activation::{Activation, FileSpec, Report};
use crate::plan::diff::{Change, UnitProblem};
use crate::plan::facts::STATE_DIR;
use crate::plan::gather::Planned;
use crate::transport::ssh::fresh;
use crate::util::shell;

/// What every host's apply shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// The apply's id (names the locks).
    pub apply_id: String,
    /// `user@host pid N: command`, for lock messages on hosts.
    pub holder: String,
    /// The generation being applied.
    pub generation: u64,
    /// The binary's bytes, uploaded where it changed.
    pub binary: Arc<Vec<u8>>,
    /// How long a host waits for confirmation.
    pub confirm_timeout: Duration,
    /// A command run on the controller before confirming each host.
    pub smoke_test: Option<String>,
}

/// How one host's apply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do.
    Ok,
    /// Changed and confirmed.
    Changed,
    /// Not confirmed: the host went back to its previous generation.
    RolledBack(String),
    /// Failed; the message says where it stands.
    Failed(String),
}

/// Progress of one host, for the progress display.
pub type Step<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Apply `p`'s changes.
pub async fn apply(p: &Planned, ctx: &Context, step: Step<'_>) -> Outcome {
    if p.changes.is_empty() {
        return Outcome::Ok;
    }
    if let Some(Change::Blocker { message }) =
        p.changes.iter().find(|c| matches!(c, Change::Blocker { .. }))
    {
        return Outcome::Failed(format!("left untouched: {message}"));
    }
    // Its facts may have been gathered long ago (many hosts before it).
    if let Err(e) = p.conn.ensure().await {
        return Outcome::Failed(format!("left untouched: {e}"));
    }
    match activate(p, ctx, step).await {
        Ok(()) => {}
        Err(e) => return Outcome::Failed(e),
    }
    let binary = p.desired.binary.to_string_lossy().into_owned();
    // A retired host's agent is stopped: there is nothing to ask.
    if !p.desired.retire {
        step("checking the agent");
        if let Err(why) = agent_healthy(p, &binary).await {
            let why = format!("the agent is not healthy: {why}");
            return unconfirmed(p, ctx, why, step).await;
        }
    }
    if let Some(cmd) = &ctx.smoke_test {
        step("smoke test");
        if let Err(why) = smoke_test(cmd, p).await {
            return unconfirmed(p, ctx, why, step).await;
        }
    }
    step("confirming over a new connection");
    let generation = ctx.generation.to_string();
    let confirm = ["host", "confirm", generation.as_str()];
    match fresh(p.conn.target(), &binary, &confirm, ctx.confirm_timeout).await {
        Ok(out) if out.success() => Outcome::Changed,
        Ok(out) => {
            unconfirmed(
                p,
                ctx,
                format!("confirmation refused: {}", out.stderr_text()),
                step,
            )
            .await
        }
        Err(e) => {
            unconfirmed(
                p,
                ctx,
                format!("a new SSH connection failed: {}", e.reason),
                step,
            )
            .await
        }
    }
}

/// Upload (when needed) and activate; the host rolls back by itself when
/// activation fails midway.
async fn activate(
    p: &Planned,
    ctx: &Context,
    step: Step<'_>,
) -> Result<(), String> {
    let staged =
        match p.changes.iter().any(|c| matches!(c, Change::Binary { .. })) {
            true => {
                step("uploading the binary");
                Some(upload(p, ctx).await?)
            }
            false => None,
        };
    let activation = Activation {
        apply_id: ctx.apply_id.clone(),
        holder: ctx.holder.clone(),
        generation: ctx.generation,
        agent: p.desired.agent,
        service: p.desired.service.clone(),
        config: p.desired.config.clone(),
        binary: p.desired.binary.clone(),
        staged_binary: staged.clone(),
        files: p
            .desired
            .files_for(&p.facts)
            .map(|(f, content)| FileSpec {
                path: f.path.clone(),
                mode: f.mode,
                content: content.to_owned(),
            })
            .collect(),
        sysctls: p.desired.sysctls.clone(),
        service_action: p.changes.iter().find_map(|c| match c {
            Change::Service { action, .. } => Some(*action),
            _ => None,
        }),
        unmask: p.changes.iter().any(|c| {
            matches!(
                c,
                Change::Unit { problem: UnitProblem::Masked { .. }, .. }
            )
        }),
        enable: p.changes.iter().any(|c| {
            matches!(
                c,
                Change::Unit {
                    problem: UnitProblem::Masked { .. }
                        | UnitProblem::Disabled { .. },
                    ..
                }
            )
        }),
        drop_ins: p
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::RemoveDropIn { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect(),
        undrain: p.changes.iter().any(|c| matches!(c, Change::Undrain { .. })),
        daemon_reload: p.changes.iter().any(|c| {
            matches!(c, Change::Unit { problem: UnitProblem::Stale, .. })
        }),
        retire: p.desired.retire,
        confirm_timeout_ms: ctx.confirm_timeout.as_millis() as u64,
    };
    let json =
        serde_json::to_vec(&activation).expect("an activation serialises");
    let exe = staged.unwrap_or_else(|| p.desired.binary.clone());
    step("activating");
    let out = p
        .conn
        .run(&exe.to_string_lossy(), &["host", "activate"], &json)
        .await
        .map_err(|e| format!("connection lost while activating: {e}"))?;
    if !out.success() {
        return Err(format!(
            "activation failed: {}",
            strip_prefix(&out.stderr_text())
        ));
    }
    serde_json::from_slice::<Report>(&out.stdout).map(|_| ()).map_err(|e| {
        format!("activation gave no report ({e}): {}", out.stderr_text())
    })
}

/// `lbdeploy: error: ` is noise inside our own messages.
fn strip_prefix(s: &str) -> &str {
    s.strip_prefix("lbdeploy: error: ").unwrap_or(s)
}

/// Stream the binary to a temporary file next to where it goes; the
/// activation renames it into place.
async fn upload(p: &Planned, ctx: &Context) -> Result<PathBuf, String> {
    let dest = &p.desired.binary;
    let dir = dest.parent().unwrap_or(Path::new("/"));
    let staged = dir.join(format!(".lbdeploy.{}.new", ctx.apply_id));
    let q = shell::quote(&staged.to_string_lossy());
    // An upload cut off earlier leaves its staged file; remove it first.
    // `set -C` makes the shell's redirect O_EXCL, as the atomic writer's
    // temporary files are: it refuses a name that exists by then, a
    // planted (even dangling) symlink included.
    let d = shell::quote(&dir.to_string_lossy());
    let script = format!(
        "umask 077 && mkdir -p {d} && rm -f {d}/.lbdeploy.*.new && \
         set -C && cat > {q} && chmod 0755 {q}"
    );
    let out =
        p.conn.run("sh", &["-c", &script], &ctx.binary).await.map_err(|e| {
            format!("connection lost while uploading the binary: {e}")
        })?;
    if !out.success() {
        return Err(format!(
            "cannot upload the binary to {}: {}",
            staged.display(),
            out.stderr_text()
        ));
    }
    Ok(staged)
}

/// Ask the agent how it is, for a few seconds: a freshly started agent may
/// take a moment to open its socket, and its data plane a moment more to
/// take the configuration (`settling`). A degraded agent — one that runs
/// but cannot do what its configuration says — fails the check with its
/// reasons, as one that does not answer does.
async fn agent_healthy(p: &Planned, binary: &str) -> Result<(), String> {
    let start = tokio::time::Instant::now();
    loop {
        let mut deadline = start + Duration::from_secs(5);
        let out = p
            .conn
            .run(binary, &["agent", "status", "--json"], b"")
            .await
            .map_err(|e| e.to_string())?;
        // `agent status` prints its answer and exits 3 when the agent is
        // not healthy; exit 1 without an answer when there is no agent.
        let status =
            crate::agent::status::decode(&String::from_utf8_lossy(&out.stdout))
                .ok();
        let verdict = match &status {
            Some(s) if s.settling => Err("its data plane is still taking \
                 the configuration"
                .to_owned()),
            Some(s) if s.healthy => match bgp_ready(&s.details) {
                Ok(()) => return Ok(()),
                Err(why) => {
                    deadline = start + BGP_READY;
                    Err(why)
                }
            },
            Some(s) if !s.degraded.is_empty() => {
                Err(format!("degraded: {}", s.degraded.join("; ")))
            }
            Some(s) => Err(format!("it reports itself {}", s.health())),
            None => Err(strip_prefix(&out.stderr_text()).to_owned()),
        };
        if tokio::time::Instant::now() >= deadline {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a director announcing over BGP has for its sessions to come
/// up after a change: BIRD connects at once, and a router that refused
/// it while it was down accepts within its own retry (a few seconds).
const BGP_READY: Duration = Duration::from_secs(30);

/// Whether a director's BGP is back, from its agent's status details:
/// every session Established and exporting each VIP the agent
/// announces. A director without BGP is ready.
///
/// # Errors
/// What is not yet so.
fn bgp_ready(details: &serde_json::Value) -> Result<(), String> {
    let bgp = &details["forwarding"]["bgp"];
    if bgp.is_null() {
        return Ok(());
    }
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some(s.as_str()?.to_owned()))
            .collect()
    };
    let announced = strings(&bgp["announced"]);
    let sessions = bgp["sessions"].as_array().cloned().unwrap_or_default();
    if sessions.is_empty() {
        return Err("its BGP sessions are not up yet".to_owned());
    }
    for s in &sessions {
        let name = s["name"].as_str().unwrap_or("?");
        let info = s["info"].as_str().unwrap_or("");
        if !bgp_session_up(s["established"].as_bool(), info) {
            return Err(format!("BGP session {name} is {info}"));
        }
        let exported = strings(&s["exported"]);
        if let Some(vip) = announced.iter().find(|vip| {
            !exported.iter().any(|e| e.split('/').next() == Some(vip.as_str()))
        }) {
            return Err(format!(
                "BGP session {name} does not export {vip} yet"
            ));
        }
    }
    Ok(())
}

/// Run the operator's smoke test with the host in its environment.
async fn smoke_test(cmd: &str, p: &Planned) -> Result<(), String> {
    let out = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .env("LBDEPLOY_HOST", &p.desired.name)
        .env("LBDEPLOY_ADDRESS", &p.conn.target().destination)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run the smoke test: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "the smoke test failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The host was not confirmed: wait until its own deadline has passed and
/// learn, over the connection still open, whether it rolled back.
async fn unconfirmed(
    p: &Planned,
    ctx: &Context,
    why: String,
    step: Step<'_>,
) -> Outcome {
    step("not confirmed; waiting for the host to roll back");
    let probe = format!(
        "if [ -d {s}/pending ]; then echo pending; \
         elif grep -qs '\"apply_id\": *\"{id}\"' {s}/last-rollback.json; \
         then echo rolled-back; else echo other; fi",
        s = STATE_DIR,
        id = ctx.apply_id
    );
    let deadline = tokio::time::Instant::now()
        + ctx.confirm_timeout
        + Duration::from_secs(10);
    loop {
        match p.conn.run("sh", &["-c", &probe], b"").await {
            Ok(out) => match String::from_utf8_lossy(&out.stdout).trim() {
                "rolled-back" => return Outcome::RolledBack(why),
                "pending" => {}
                _ => {
                    return Outcome::Failed(format!(
                        "{why}; the host did not roll back generation {}",
                        ctx.generation
                    ));
                }
            },
            Err(_) => {
                return Outcome::Failed(format!(
                    "{why}; the host is unreachable now and rolls back by itself when \
                     generation {} is not confirmed",
                    ctx.generation
                ));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Outcome::Failed(format!(
                "{why}; generation {} is still pending on the host",
                ctx.generation
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn r20_a_bgp_director_is_ready_once_every_session_exports_its_vips() {
        assert_eq!(bgp_ready(&json!({"forwarding": {}})), Ok(()), "no BGP");
        let status = |info: &str, exported: &[&str]| {
            json!({"forwarding": {"bgp": {
                "announced": ["10.20.0.100"],
                "sessions": [{"name": "peer_10_0_0_1", "info": info,
                              "exported": exported}]
            }}})
        };
        assert_eq!(
            bgp_ready(&status("Established", &["10.20.0.100/32"])),
            Ok(())
        );
        assert_eq!(
            bgp_ready(&status("Active        Socket: Connection refused", &[])),
            Err("BGP session peer_10_0_0_1 is Active        Socket: Connection refused".into())
        );
        assert_eq!(
            bgp_ready(&status("Established", &[])),
            Err("BGP session peer_10_0_0_1 does not export 10.20.0.100 yet"
                .into())
        );
        // An agent says whether a session is up; older ones left it to
        // `info`, as above.
        let mut said = status("Established", &["10.20.0.100/32"]);
        said["forwarding"]["bgp"]["sessions"][0]["established"] = json!(false);
        assert_eq!(
            bgp_ready(&said),
            Err("BGP session peer_10_0_0_1 is Established".into())
        );
        let none =
            json!({"forwarding": {"bgp": {"announced": [], "sessions": []}}});
        assert!(bgp_ready(&none).is_err(), "BIRD not polled yet");
    }
}
