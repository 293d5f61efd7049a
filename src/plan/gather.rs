//! Facts from every host at once: one SSH connection each, one round trip
//! for the facts script, then the diff. The connections stay open for
//! `apply`.
//!
//! A host that cannot be reached or answers nonsense is reported with its
//! reason; the other hosts are still planned.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use tokio::sync::Semaphore;

use super::binary::Binary;
use super::desired::HostDesired;
use super::diff::{Change, diff};
use super::facts::{self, HostFacts, Query};
use super::stamps::{Stamp, Stamps};
use crate::inventory::Mode;
use crate::inventory::drained::DRAINED_FILE;
use crate::transport::{ConnectError, Connection, Target};
use crate::util::hex::hex;

/// One host, planned.
#[derive(Debug)]
pub struct Planned {
    /// What it should be.
    pub desired: HostDesired,
    /// What it is.
    pub facts: HostFacts,
    /// SHA-256 of the facts as the host printed them: a saved plan is
    /// stale when a host's fingerprint has moved.
    pub fingerprint: String,
    /// What `apply` would do.
    pub changes: Vec<Change>,
    /// The open connection.
    pub conn: Connection,
}

/// What planning one host gave.
#[derive(Debug)]
pub enum Gathered {
    /// Facts and changes.
    Planned(Box<Planned>),
    /// No connection.
    Unreachable(ConnectError),
    /// Connected, but the host cannot be planned (its facts are garbled,
    /// its architecture does not fit the binary).
    Failed(String),
}

/// The facts query for a host's desired state, with what the controller
/// remembers of its binary; a director's also asks for its drained real
/// servers, which `plan` shows as an override of the inventory.
pub fn query(desired: &HostDesired, stamp: Option<Stamp>) -> Query {
    let mut files: Vec<PathBuf> =
        desired.files.iter().map(|f| f.path.clone()).collect();
    if desired.agent == Mode::Director && !desired.retire {
        files.push(PathBuf::from(DRAINED_FILE));
    }
    Query {
        files,
        sysctls: desired.sysctls.keys().cloned().collect(),
        binary: desired.binary.clone(),
        service: desired.service.clone(),
        stamp,
    }
}

/// Plan every host, at most `forks` at a time, in the order given;
/// `stamps` spare hashing binaries that have not changed.
pub(crate) async fn gather(
    hosts: Vec<(HostDesired, Target)>,
    binary: &Binary,
    forks: usize,
    stamps: &Stamps,
) -> Vec<(String, Gathered)> {
    let gate = Arc::new(Semaphore::new(forks.max(1)));
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|(desired, target)| {
            let gate = gate.clone();
            let binary = binary.clone();
            let stamp = stamps.get(&desired.name).cloned();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                let name = desired.name.clone();
                (name, one(desired, &target, &binary, stamp).await)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("planning a host does not panic"));
    }
    out
}

async fn one(
    desired: HostDesired,
    target: &Target,
    binary: &Binary,
    stamp: Option<Stamp>,
) -> Gathered {
    let conn = match Connection::open(target).await {
        Ok(c) => c,
        Err(e) => return Gathered::Unreachable(e),
    };
    match read_facts(&conn, &desired, stamp).await {
        Ok((facts, fingerprint)) => {
            if let Err(e) = binary.check_arch(&desired.name, &facts.arch) {
                conn.close().await;
                return Gathered::Failed(e.to_string());
            }
            let changes = diff(&desired, &facts);
            Gathered::Planned(Box::new(Planned {
                desired,
                facts,
                fingerprint,
                changes,
                conn,
            }))
        }
        Err(e) => {
            conn.close().await;
            Gathered::Failed(e)
        }
    }
}

/// Run the facts script over `conn`, with the binary's `stamp` when the
/// controller has one; the facts and their fingerprint.
///
/// # Errors
/// A message naming what went wrong (connection lost, shell error,
/// unreadable output).
pub(crate) async fn read_facts(
    conn: &Connection,
    desired: &HostDesired,
    stamp: Option<Stamp>,
) -> Result<(HostFacts, String), String> {
    let script = facts::script(&query(desired, stamp));
    let out = conn
        .run("sh", &["-s"], script.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "the facts script failed (exit {:?}): {}",
            out.code,
            out.stderr_text()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let facts = facts::parse(&text)
        .map_err(|e| format!("cannot read the facts the host printed: {e}"))?;
    Ok((facts, fingerprint(&text)))
}

/// The facts' fingerprint for saved plans: everything but the addresses,
/// which move on their own (VRRP puts the VIP on the master at any time)
/// and matter to the plan only through the changes they cause, which a
/// saved plan compares anyway.
fn fingerprint(facts: &str) -> String {
    let mut h = Sha256::new();
    for line in facts.lines().filter(|l| !l.starts_with("ipaddr ")) {
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_do_not_move_the_fingerprint() {
        let a =
            "lbdeploy-facts 1\narch x86_64\nipaddr 2: eth0 inet 10.0.0.11/24\n";
        let b = "lbdeploy-facts 1\narch x86_64\nipaddr 2: eth0 inet 10.0.0.200/24\n";
        assert_eq!(fingerprint(a), fingerprint(b));
        assert_ne!(
            fingerprint(a),
            fingerprint("lbdeploy-facts 1\narch aarch64\n")
        );
    }
}
