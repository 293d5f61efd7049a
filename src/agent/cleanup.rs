//! `lbdeploy agent cleanup`: remove what a director agent that is no
//! longer running may have left on its host, as its
//! [`holdings`](super::holdings) file lists it — the fail-safe rule that
//! a host whose agent is not running holds nothing of it.
//!
//! It needs no configuration (the agent may have died of a bad one), and
//! runs where the agent has just gone: in the supervisor before each
//! restart, and as the systemd unit's `ExecStopPost`. Each part is
//! idempotent and only what is there is removed (and logged):
//!
//! * each listed VIP present on its interface (rtnetlink);
//! * the nftables data plane's `table netdev lbdeploy`;
//! * the listed IPVS services, as far as lbdeploy owns them (see
//!   [`ipvs::withdraw`]), after the port groups' mark table
//!   `table inet lbdeploy_marks` ([`ipvs::marks`]) where `nft` is
//!   installed;
//! * IPVS's sync daemons, when the agent ran them (`ipvs_sync`).
//!
//! A failing part does not stop the others: a host should keep as little
//! as possible. The file itself stays, so that a cleanup run again (by
//! hand, after fixing what failed) still knows what to look for; the
//! agent's next start writes it anew.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};

use super::dataplane::{ipvs, nft};
use super::holdings::{self, Holdings, Vip};
use super::paths;
use super::sys::net::{Address, Net};

/// Remove what the holdings file in `run_dir` lists and the host still
/// has. Returns how many things were removed (0: nothing to do, also when
/// there is no file).
///
/// # Errors
/// A refused holdings file, an agent that still answers on its socket
/// (it holds them on purpose), or any part that failed — after every part
/// was tried; the message names each failure.
pub(crate) async fn run(run_dir: &Path) -> anyhow::Result<usize> {
    let file = paths::holdings_file(run_dir);
    let Some(holdings) = holdings::load(&file)? else {
        tracing::info!("cleanup: no {}; nothing to remove", file.display());
        return Ok(0);
    };
    let socket = paths::socket(run_dir);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        bail!(
            "an agent answers on {}: it holds what {} lists; stop it first",
            socket.display(),
            file.display()
        );
    }
    let mut removed = 0;
    let mut failed = Vec::new();
    match vips(&holdings).await {
        Ok(n) => removed += n,
        Err(e) => failed.push(format!("{e:#}")),
    }
    // When the masters among its instances gave their VIPs up, for a
    // fast restart to resume (see `mastership`).
    super::mastership::released(run_dir);
    if holdings.nft_table {
        match nft::installer::delete_table().await {
            Ok(true) => {
                tracing::info!(
                    "cleanup: removed the nft table netdev {}",
                    nft::TABLE
                );
                removed += 1;
            }
            Ok(false) => {}
            Err(e) => failed.push(format!("nft table: {e:#}")),
        }
    }
    if !holdings.ipvs_services.is_empty() {
        match ipvs_services(&holdings, run_dir).await {
            Ok(n) => removed += n,
            Err(e) => failed.push(format!("ipvs: {e:#}")),
        }
    }
    if holdings.ipvs_sync_daemons {
        match sync_daemons().await {
            Ok(n) => removed += n,
            Err(e) => failed.push(format!("ipvs sync daemons: {e:#}")),
        }
    }
    if !holdings.blackholes.is_empty() {
        match blackholes(&holdings).await {
            Ok(n) => removed += n,
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("cleanup incomplete: {}", failed.join("; "));
    }
    if removed == 0 {
        tracing::info!("cleanup: nothing of the agent was left");
    }
    Ok(removed)
}

/// Remove the blackhole routes of the VIPs announced over BGP.
async fn blackholes(holdings: &Holdings) -> anyhow::Result<usize> {
    let net = Net::connect().context("opening rtnetlink")?;
    let mut removed = 0;
    for ip in &holdings.blackholes {
        if net.blackhole(*ip, false).await? {
            tracing::info!("cleanup: removed the blackhole route of {ip}");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Remove the listed VIPs that are on their interface.
async fn vips(holdings: &Holdings) -> anyhow::Result<usize> {
    if holdings.vips.is_empty() {
        return Ok(0);
    }
    let net = Net::connect().context("opening rtnetlink")?;
    let present = net.addresses().await?;
    let mut indexes = BTreeMap::new();
    let mut removed = 0;
    let mut failed = Vec::new();
    for vip in &holdings.vips {
        let key = (vip.interface.as_str(), vip.index);
        let index = match indexes.get(&key) {
            Some(&index) => index,
            None => {
                let index = interface(&net, vip).await;
                indexes.insert(key, index);
                index
            }
        };
        let Some(index) = index else { continue };
        let address =
            Address { index, ip: vip.ip, prefix: vip.prefix, label: None };
        if !present.iter().any(|p| super::sys::net::same(p, &address)) {
            continue;
        }
        match net.remove(&address).await {
            Ok(()) => {
                tracing::info!(interface = %vip.interface, "cleanup: removed VIP {vip}");
                removed += 1;
            }
            Err(e) => failed.push(format!("{vip}: {e}")),
        }
    }
    match failed.is_empty() {
        true => Ok(removed),
        false => Err(anyhow!("VIPs: {}", failed.join("; "))),
    }
}

/// The index `vip`'s interface has now: the recorded one while it still
/// has the recorded name, else the index of that name (the interface was
/// recreated); `None` when no interface has that name any more (its
/// addresses went with it).
async fn interface(net: &Net, vip: &Vip) -> Option<u32> {
    if net.name(vip.index).await.ok().as_deref() == Some(&vip.interface) {
        return Some(vip.index);
    }
    match net.index(&vip.interface).await {
        Ok(index) => Some(index),
        Err(_) => {
            tracing::info!(
                interface = %vip.interface,
                "cleanup: no interface {} any more; nothing to remove there",
                vip.interface
            );
            None
        }
    }
}

/// Stop IPVS's sync daemons (master and backup), as the agent does when
/// it stops; none to stop on a kernel without IPVS.
async fn sync_daemons() -> anyhow::Result<usize> {
    let steps = tokio::task::spawn_blocking(|| {
        let mut conn = match ipvs::Ipvs::connect() {
            Ok(c) => c,
            Err(ipvs::Error::NoIpvs) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        conn.converge_daemons(None)
    })
    .await??;
    for step in &steps {
        tracing::info!("cleanup: ipvs: {step}");
    }
    Ok(steps.len())
}

/// Delete the port groups' mark table, then the listed IPVS services
/// (and those in the IPVS record) as far as lbdeploy owns them. The
/// marks go first, as the agent removes them: a marked packet never
/// looks for a service already gone.
async fn ipvs_services(
    holdings: &Holdings,
    run_dir: &Path,
) -> anyhow::Result<usize> {
    // A failure here still lets the services go; it is reported after.
    let marks = ipvs::marks::delete_table().await;
    if let Ok(true) = marks {
        tracing::info!(
            "cleanup: removed the nft table inet {}",
            ipvs::marks::TABLE
        );
    }
    let listed = holdings.ipvs_services.iter().map(|s| s.key()).collect();
    let record = ipvs::owned_path(run_dir);
    let plan =
        tokio::task::spawn_blocking(move || ipvs::remove(&listed, &record))
            .await??;
    for op in &plan.ops {
        tracing::info!("cleanup: ipvs: {op}");
    }
    for f in &plan.foreign {
        tracing::info!("cleanup: ipvs: left alone (not lbdeploy's): {f}");
    }
    let marks = marks.context("the port groups' mark table")?;
    Ok(plan.ops.len() + usize::from(marks))
}
