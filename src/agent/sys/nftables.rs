//! Running `nft`: both agent modes own an nftables table (the director's
//! DSR table, the real server's ARP table) and load it whole with
//! `nft -f -`, so that each change is one transaction.

use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Load `script` with `nft -f -`; `what` names the table in errors.
///
/// # Errors
/// When `nft` is missing or refuses the script, with its message.
pub async fn load(script: &str, what: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (is the nftables package installed?)")?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    stdin.write_all(script.as_bytes()).await.context("writing to nft")?;
    drop(stdin);
    let out = child.wait_with_output().await.context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft refused {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The output of `nft ARGS…`: a listing of the kernel's tables, to
/// notice one removed or edited by hand.
///
/// # Errors
/// When `nft` fails (e.g. no such table), with its message.
pub async fn query(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("nft")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running nft (is the nftables package installed?)")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
