//! The adapter between the pure table and the kernel: it remembers what it
//! installed, carries out each [`delta`] as one `nft -f` transaction, and
//! checks periodically that nobody changed the table behind its back
//! ([`super::verify`] says how, and how fast).

use anyhow::anyhow;

use super::compile::{
    self, Compiled, incarnation_map_name, mac_map_name, map_name,
};
use super::delta::{self, Delta};
use super::verify::{self, Watch};
use super::{TABLE, generation};
use crate::agent::sys::nftables;

/// What one [`Installer::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The kernel's table was already the desired one.
    Nothing,
    /// Only map elements or the jumps to forwarded instances changed.
    Changes,
    /// The whole table was loaded.
    Whole,
}

/// The kernel's table as lbdeploy installed it.
#[derive(Debug, Default)]
pub struct Installer {
    /// The table installed; `None` when there is none or its state is not
    /// known (a transaction failed), which makes the next one whole.
    installed: Option<Compiled>,
    /// Our table's structure as `nft -t list ruleset` showed it right
    /// after the last whole load or change of jumps.
    structure: String,
    /// What is known of the kernel's table since.
    watch: Watch,
}

impl Installer {
    /// The table installed, if any.
    pub fn installed(&self) -> Option<&Compiled> {
        self.installed.as_ref()
    }

    /// Make the kernel's table `desired`: nothing, the changes only, or
    /// the whole table — and the whole table after all when the kernel
    /// refuses the changes (someone deleted or added elements or rules, so
    /// ours no longer apply).
    ///
    /// # Errors
    /// When `nft` refuses the whole table.
    pub async fn apply(
        &mut self,
        desired: Compiled,
    ) -> anyhow::Result<Applied> {
        let applied = match delta::delta(self.installed.as_ref(), &desired) {
            Delta::Nothing => Applied::Nothing,
            Delta::Changes { text, gate } => {
                match self.commit(&text, false).await {
                    Ok(()) if gate => {
                        self.structure = self.listed_structure().await?;
                        Applied::Changes
                    }
                    Ok(()) => Applied::Changes,
                    Err(e) => {
                        tracing::warn!(
                            "data plane: {e:#}; loading the whole table"
                        );
                        self.load_whole(&compile::render(&desired)).await?;
                        Applied::Whole
                    }
                }
            }
            Delta::Whole(text) => {
                if let Err(e) = self.load_whole(&text).await {
                    // Over a table that is not the one installed: anew,
                    // its pins lost.
                    tracing::warn!("data plane: {e:#}; loading the table anew");
                    self.load_whole(&compile::render(&desired)).await?;
                }
                Applied::Whole
            }
        };
        self.installed = Some(desired);
        Ok(applied)
    }

    /// Check the kernel's table against the installed one and repair it:
    /// the periodic check of [`super::verify`].
    ///
    /// # Errors
    /// When `nft` or the netlink socket fails.
    pub async fn verify(&mut self) -> anyhow::Result<()> {
        let Some(table) = &self.installed else { return Ok(()) };
        let now = generation::current()?;
        if self.watch.trusted(now) {
            return Ok(());
        }
        if self.listed_structure().await? != self.structure {
            tracing::warn!(
                "data plane: the table was changed by hand; loading it again"
            );
            let text = compile::render(table);
            return self.load_whole(&text).await;
        }
        let maps = table.services.len();
        let range = self.watch.next_maps(now, maps);
        let mut refill = String::new();
        for i in range.clone() {
            let map = map_name(i);
            let json =
                nftables::query(&["-j", "list", "map", "netdev", TABLE, &map])
                    .await?;
            let elements = verify::map_elements(&json)
                .map_err(|e| anyhow!(e))?
                .remove(&map)
                .unwrap_or_default();
            if !verify::elements_match(&table.services[i], &elements) {
                tracing::warn!(
                    "data plane: map {map} was edited by hand; refilling it"
                );
                refill += &delta::refill(table, i);
            }
            let mut listed = Vec::new();
            for name in [incarnation_map_name(i), mac_map_name(i)] {
                let json = nftables::query(&[
                    "-j", "list", "map", "netdev", TABLE, &name,
                ])
                .await?;
                listed.push(verify::pairs(&json).map_err(|e| anyhow!(e))?);
            }
            if !verify::incarnations_match(
                &table.services[i],
                &listed[0],
                &listed[1],
            ) {
                tracing::warn!(
                    "data plane: the incarnation maps of {map} were edited \
                     by hand; refilling them"
                );
                refill += &delta::refill_incarnations(table, i);
            }
        }
        if !refill.is_empty() {
            self.commit(&refill, false).await?;
        }
        self.watch.swept(range, maps, generation::current()?);
        Ok(())
    }

    /// Delete the table (nothing is forwarded any more); absent is fine.
    ///
    /// # Errors
    /// When `nft` is missing or fails.
    pub async fn remove(&mut self) -> anyhow::Result<()> {
        self.installed = None;
        self.watch = Watch::default();
        nftables::load(&delete_script(), "the data plane's table").await
    }

    /// Load the whole table from `text` and remember its structure.
    async fn load_whole(&mut self, text: &str) -> anyhow::Result<()> {
        self.commit(text, true).await?;
        self.structure = self.listed_structure().await?;
        Ok(())
    }

    /// The kernel's structure of our table (empty when there is none):
    /// what the terse listing of the ruleset shows of it.
    async fn listed_structure(&self) -> anyhow::Result<String> {
        let listing = nftables::query(&["-t", "list", "ruleset"]).await?;
        Ok(verify::our_table(&listing).unwrap_or_default())
    }

    /// One transaction, with the generation read around it so that the
    /// watch knows whether anyone else committed in between.
    async fn commit(&mut self, text: &str, whole: bool) -> anyhow::Result<()> {
        let before = generation::current().ok();
        let result = nftables::load(text, "the data plane's table").await;
        let after = generation::current().ok();
        self.watch.committed(before, after, whole && result.is_ok());
        if result.is_err() {
            self.installed = None;
        }
        result
    }
}

/// Delete our table if the kernel has it, knowing nothing of what it
/// holds: the cleanup after an agent that is gone and could not withdraw
/// (`lbdeploy agent cleanup`). Only the table names are listed, never the
/// table, whose millions of elements would take `nft` seconds to print.
/// Whether there was a table to delete.
///
/// # Errors
/// When `nft` is missing or fails.
pub(crate) async fn delete_table() -> anyhow::Result<bool> {
    let listing = nftables::query(&["list", "tables", "netdev"]).await?;
    if !lists_our_table(&listing) {
        return Ok(false);
    }
    nftables::load(&delete_script(), "the data plane's table").await?;
    Ok(true)
}

/// Whether `nft list tables netdev` printed our table.
fn lists_our_table(listing: &str) -> bool {
    listing.lines().any(|l| {
        l.split_whitespace().eq(["table", "netdev", TABLE].iter().copied())
    })
}

/// One transaction that deletes our table, and succeeds when there is
/// none (declaring a table that exists changes nothing).
fn delete_script() -> String {
    format!("table netdev {TABLE}\ndelete table netdev {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_table_is_found_among_the_table_names() {
        let listing = "table netdev other\ntable netdev lbdeploy\n";
        assert!(lists_our_table(listing));
        assert!(!lists_our_table("table netdev lbdeploy_x\n"));
        assert!(!lists_our_table("table arp lbdeploy\n"));
        assert!(!lists_our_table(""));
    }
}
