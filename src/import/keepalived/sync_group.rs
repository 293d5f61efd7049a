//! `vrrp_sync_group NAME { group { VI_1 VI_2 } notify_* … }`: instances
//! that fail together, with the group's own notify hooks.

use super::value::{Fields, Reader};
use super::vrrp::notify_keyword;
use crate::import::parser::Node;
use crate::inventory::SyncGroup;

/// Read a `vrrp_sync_group` block; `None` without a name.
pub fn sync_group(
    block: &Node,
    r: &mut Reader<'_>,
) -> Option<(SyncGroup, Fields)> {
    let Some(name) = block.args.first().cloned() else {
        r.error(block, block, "`vrrp_sync_group` needs a name, e.g. `VG_1`");
        return None;
    };
    let mut fields = Fields::new(&block.pos);
    let mut g = SyncGroup { name, instances: Vec::new(), notify: None };
    for node in block.children() {
        let key = node.keyword.as_str();
        match key {
            // Names one per line or several on a line, as keepalived
            // reads them.
            "group" => g.instances.extend(
                node.children()
                    .iter()
                    .flat_map(|m| std::iter::once(&m.keyword).chain(&m.args))
                    .cloned(),
            ),
            k if notify_keyword(&mut g.notify, k, node, block, r) => {}
            _ => {
                r.not_carried(node, block);
                continue;
            }
        }
        let field = if key == "group" { "instances" } else { "notify" };
        fields.set(field, &node.pos);
    }
    Some((g, fields))
}
