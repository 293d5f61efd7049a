//! The sync-group rules: named once, at least two instances that exist,
//! each in one group at most, and priorities that rank the directors
//! alike in every member — else each director would win one member, and
//! a group that moves as one could settle nowhere.

use std::collections::HashMap;

use super::vrrp::effective_priority;
use crate::inventory::diag::Finding;
use crate::inventory::schema::{Inventory, SyncGroup, VrrpInstance};

/// Every group's rules.
pub(crate) fn vrrp_sync_groups(inv: &Inventory, out: &mut Vec<Finding>) {
    let mut names = HashMap::new();
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for (i, g) in inv.vrrp_sync_groups.iter().enumerate() {
        let path = format!("vrrp_sync_groups[{i}]");
        if let Some(first) = names.insert(g.name.as_str(), i) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "sync group `{}` is defined twice (first at \
                     vrrp_sync_groups[{first}]) — merge them",
                    g.name
                ),
            ));
        }
        if g.instances.len() < 2 {
            out.push(Finding::error(
                format!("{path}.instances"),
                "a sync group needs at least two instances",
            ));
        }
        let mut members = Vec::new();
        for (j, name) in g.instances.iter().enumerate() {
            let p = format!("{path}.instances[{j}]");
            match inv.vrrp_instances.iter().find(|vi| &vi.name == name) {
                Some(vi) => members.push(vi),
                None => out.push(Finding::error(
                    &p,
                    format!("no vrrp instance `{name}`"),
                )),
            }
            if let Some(other) = member_of.insert(name, &g.name) {
                out.push(Finding::error(
                    &p,
                    format!(
                        "`{name}` is already in sync group `{other}` — an \
                         instance belongs to one group at most"
                    ),
                ));
            }
        }
        same_ranking(inv, g, &members, &path, out);
    }
}

/// Every member must order the directors as the first member does; and
/// members that track different objects get a warning, since tracking
/// can then reorder them.
fn same_ranking(
    inv: &Inventory,
    g: &SyncGroup,
    members: &[&VrrpInstance],
    path: &str,
    out: &mut Vec<Finding>,
) {
    let Some((first, rest)) = members.split_first() else { return };
    let rank = |vi: &VrrpInstance| {
        let mut ds: Vec<(u32, &str)> = inv
            .directors
            .iter()
            .map(|d| (effective_priority(vi, d), d.name.as_str()))
            .collect();
        ds.sort_by(|a, b| b.cmp(a));
        ds
    };
    let order = |r: &[(u32, &str)]| -> Vec<String> {
        r.iter().map(|(_, n)| (*n).to_owned()).collect()
    };
    let show = |r: &[(u32, &str)]| {
        r.iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect::<Vec<_>>()
            .join(" > ")
    };
    let expected = rank(first);
    for vi in rest {
        let got = rank(vi);
        if order(&got) != order(&expected) {
            out.push(Finding::error(
                format!("{path}.instances"),
                format!(
                    "sync group `{}`: {} ranks the directors {} but {} ranks \
                     them {} — a group that moves as one needs one winner; \
                     give its instances the same order",
                    g.name,
                    first.name,
                    show(&expected),
                    vi.name,
                    show(&got)
                ),
            ));
        }
        if vi.track != first.track {
            out.push(Finding::warning(
                format!("{path}.instances"),
                format!(
                    "sync group `{}`: {} and {} track different objects, \
                     which can rank the directors differently at run time — \
                     track the same in every member",
                    g.name, first.name, vi.name
                ),
            ));
        }
    }
}
