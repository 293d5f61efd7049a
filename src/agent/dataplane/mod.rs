//! The director's kernel data plane: what forwards a client's packets for a
//! VIP to a real server by rewriting the destination MAC (Direct Routing).
//!
//! Every back end implements [`Dataplane`], and the director's forwarding
//! loop ([`crate::agent::director::forward`]) knows only that trait; which
//! back end runs is decided once, by `choose`, from the configuration's
//! `dataplane: auto | ipvs | nftables`.
//!
//! * `backend` — what every back end implements ([`Dataplane`],
//!   [`Desired`]) and the rules they share;
//! * [`ipvs`] — the IPVS back end over generic netlink: codec, reconcile
//!   (pure) and client;
//! * [`nft`] — the nftables netdev back end: the table rendered from the
//!   buckets (pure) and installed in one transaction;
//! * [`buckets`] — the real server of every flow bucket (weighted
//!   rendezvous hashing; pure, deterministic), for nftables;
//! * [`neigh`] — the real servers' MACs from the neighbour table, for
//!   nftables;
//! * [`stats`] — how many reconciles, how many failed, how long they
//!   took; what the kernel counted of each real server.
//!
//! Adding a back end is one folder implementing [`Dataplane`], one variant
//! of [`crate::inventory::Dataplane`] and its arm in `choose`, and its
//! tests. Health checks, quorum and VRRP are not the data plane's: the
//! forwarding loop hands their verdicts in as a [`Desired`].

mod backend;
pub mod buckets;
pub mod ipvs;
pub mod neigh;
pub mod nft;
pub mod stats;

pub use backend::{Dataplane, Desired};

use crate::inventory;

/// The back end for the configuration's `dataplane` setting: `ipvs` and
/// `nftables` as they say, `auto` IPVS where the kernel has it (the
/// generic netlink family resolves) and nftables otherwise. Decided once
/// per setting: the forwarding loop chooses again only when a reload
/// changes `dataplane`.
///
/// # Errors
/// With `auto`, when asking the kernel for IPVS failed for another reason
/// than its absence; the loop tries again on the next change.
pub(crate) async fn choose(
    setting: inventory::Dataplane,
) -> anyhow::Result<Box<dyn Dataplane>> {
    Ok(match setting {
        inventory::Dataplane::Ipvs => Box::new(ipvs::Plane::default()),
        inventory::Dataplane::Nftables => Box::new(nft::Plane::default()),
        inventory::Dataplane::Auto => {
            if ipvs::Plane::available().await? {
                Box::new(ipvs::Plane::default())
            } else {
                Box::new(nft::Plane::default())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_explicit_setting_is_taken_without_asking_the_kernel() {
        let nft = choose(inventory::Dataplane::Nftables).await.unwrap();
        assert!(format!("{nft:?}").contains("installer"), "{nft:?}");
        assert!(!nft.forwarding(), "nothing installed yet");
        let ipvs = choose(inventory::Dataplane::Ipvs).await.unwrap();
        assert!(format!("{ipvs:?}").starts_with("Plane { counted"), "{ipvs:?}");
    }
}
