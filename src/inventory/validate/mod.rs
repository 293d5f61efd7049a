//! Semantic validation: the rules that span fields, hosts and protocols.
//!
//! Pure: it sees the typed inventory and an [`Environment`] that answers
//! whether a secret's variable or file exists, and returns findings with
//! field paths. The loader attaches lines and columns. Every rule runs; the
//! operator gets every problem at once.
//!
//! This file owns the entry point (`validate`, which fixes the order of the
//! findings), `service_label` and the notification rules. The rules live
//! by concern: `hosts`, `vrrp` (with `effective_priority`), `track`
//! (scripts and what instances track), `sync_group`, `service`
//! (virtual services, real servers, quorum), `check` (one rules
//! function per check kind), `text` (the rule of every string: no control
//! characters, bounded length) and `notification` (mailboxes, the webhook
//! URL resolved from wherever it comes, the exec hook), `sudo` (the
//! `ssh.become` settings), `metrics` (where agents serve metrics), `bgp`
//! (the `bgp:` block, router ids, services announced over BGP),
//! `ipvs_sync` (the instance that drives IPVS's sync daemon);
//! `environment`
//! holds [`Environment`], [`System`] and the reader of secret files.
//! The children import nothing from this file, so the
//! dependencies run one way.

mod bgp;
mod check;
mod environment;
mod hosts;
mod ipvs_sync;
mod metrics;
mod notification;
mod service;
mod sudo;
mod sync_group;
mod text;
mod track;
mod vrrp;

use std::path::Path;

pub use bgp::peer_password;
pub use environment::{Environment, PasswordProblem, System, secret_file};
pub(crate) use text::forbidden_char;
pub use vrrp::{effective_priority, vrrp_password};

use super::diag::Finding;
use super::schema::Inventory;
use hosts::hosts;
pub(crate) use notification::ca_pem;
pub use notification::{
    NotificationProblem, email_ca, smtp_password, webhook_ca, webhook_url,
};
use notification::{hooks, notification};
pub use service::service_label;
use service::{one_persistent_group, virtual_service};
use sync_group::vrrp_sync_groups;
use track::{track, tracked_objects, vrrp_scripts};
use vrrp::{vrids, vrrp_instance, vrrp_vips};

/// Check every cross-field rule; `base` is the inventory's directory, against
/// which relative secret files are resolved.
pub fn validate(
    inv: &Inventory,
    base: &Path,
    env: &dyn Environment,
) -> Vec<Finding> {
    let mut out = Vec::new();
    text::strings(inv, &mut out);
    hosts(inv, &mut out);
    metrics::metrics(inv, &mut out);
    sudo::become_rules(inv, env, &mut out);
    for (i, vi) in inv.vrrp_instances.iter().enumerate() {
        vrrp_instance(
            inv,
            vi,
            &format!("vrrp_instances[{i}]"),
            base,
            env,
            &mut out,
        );
        track(inv, vi, &format!("vrrp_instances[{i}]"), &mut out);
        if let Some(h) = &vi.notify {
            hooks(h, &format!("vrrp_instances[{i}].notify"), &mut out);
        }
    }
    for (i, g) in inv.vrrp_sync_groups.iter().enumerate() {
        if let Some(h) = &g.notify {
            hooks(h, &format!("vrrp_sync_groups[{i}].notify"), &mut out);
        }
    }
    vrrp_scripts(inv, &mut out);
    tracked_objects(inv, &mut out);
    vrrp_sync_groups(inv, &mut out);
    vrids(inv, &mut out);
    ipvs_sync::ipvs_sync(inv, &mut out);
    let vips = vrrp_vips(inv);
    for (i, vs) in inv.virtual_services.iter().enumerate() {
        let path = format!("virtual_services[{i}]");
        let earlier = &inv.virtual_services[..i];
        let spans = vs.spans();
        let shared = earlier.iter().position(|other| {
            other.vip == vs.vip
                && other.protocol == vs.protocol
                && other
                    .spans()
                    .iter()
                    .any(|a| spans.iter().any(|b| a.overlaps(b)))
        });
        if let Some(first) = shared {
            let other = &earlier[first];
            let what = match other.spans() == spans {
                true => format!(
                    "{} is defined twice (first at virtual_services[{first}]) \
                     — merge the two entries",
                    service_label(vs)
                ),
                false => format!(
                    "{} shares ports with virtual_services[{first}] ({}) — a \
                     port belongs to one service",
                    service_label(vs),
                    service_label(other)
                ),
            };
            out.push(Finding::error(&path, what));
        }
        virtual_service(inv, vs, &path, &vips, &mut out);
        one_persistent_group(vs, earlier, &path, &mut out);
    }
    check::tls_files(inv, base, env, &mut out);
    bgp::bgp(inv, &vips, base, env, &mut out);
    if let Some(n) = &inv.notification {
        notification(n, base, env, &mut out);
    }
    out
}
