//! `ipvs_sync`: IPVS's connection sync daemon, driven by one VRRP
//! instance on a data plane that may be IPVS.

use super::hosts::interface_name;
use crate::inventory::diag::Finding;
use crate::inventory::schema::{Dataplane, Inventory};

/// The instance exists, the interface is a Linux interface name, and
/// the data plane may be IPVS (nftables keeps no connection entries to
/// copy). The sync id is 0–255 by its type.
pub(super) fn ipvs_sync(inv: &Inventory, out: &mut Vec<Finding>) {
    let Some(s) = &inv.ipvs_sync else { return };
    if inv.dataplane == Dataplane::Nftables {
        out.push(Finding::error(
            "ipvs_sync",
            "the sync daemon copies IPVS's connection entries, which the \
             nftables data plane does not have — use `dataplane: ipvs` (or \
             `auto`), or remove `ipvs_sync`",
        ));
    }
    if !inv.vrrp_instances.iter().any(|v| v.name == s.instance) {
        let known: Vec<&str> =
            inv.vrrp_instances.iter().map(|v| v.name.as_str()).collect();
        out.push(Finding::error(
            "ipvs_sync.instance",
            match known.is_empty() {
                true => format!(
                    "no VRRP instance `{}` — the sync daemon follows a \
                     VRRP instance's state, and there is none",
                    s.instance
                ),
                false => format!(
                    "no VRRP instance `{}` — use one of {}",
                    s.instance,
                    known.join(", ")
                ),
            },
        ));
    }
    if let Some(i) = &s.interface {
        interface_name(i, "ipvs_sync.interface", out);
    }
}
