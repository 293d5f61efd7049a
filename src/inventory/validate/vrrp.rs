//! The VRRP instances' rules: version, advert interval, virtual addresses
//! and their labels, one address family, authentication and its secret,
//! priorities (with [`effective_priority`]), and names and VRIDs unique
//! across instances.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use super::environment::{Environment, PasswordProblem, secret_source};
use super::hosts::IFNAME_MAX;
use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Authentication, Director, GARP_DELAY_MAX, GARP_REPEAT_MAX, Garp, Inventory,
    VrrpInstance,
};
use crate::inventory::values::vip_problem;

/// The most of an authentication `password_file` read: far more than
/// PASS's 8 bytes, so that a longer one is told its length.
const PASSWORD_FILE_MAX: u64 = 1024;

/// One instance's rules, in order: version, advert interval, virtual
/// addresses, one family, authentication, priorities.
pub(crate) fn vrrp_instance(
    inv: &Inventory,
    vi: &VrrpInstance,
    path: &str,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    if vi.version != 2 && vi.version != 3 {
        out.push(Finding::error(
            format!("{path}.version"),
            format!(
                "VRRP version {} does not exist — use 2 (RFC 3768, \
                 keepalived's default) or 3 (RFC 5798)",
                vi.version
            ),
        ));
    }
    advert_int(vi, path, out);
    virtual_addresses(inv, vi, path, out);
    one_family(vi, path, out);
    if let Some(auth) = &vi.authentication {
        authentication(
            vi,
            auth,
            &format!("{path}.authentication"),
            base,
            env,
            out,
        );
    }
    priorities(inv, vi, path, out);
    if let Some(g) = &vi.garp {
        garp(g, &format!("{path}.garp"), out);
    }
}

/// Bursts of 1–[`GARP_REPEAT_MAX`] on becoming master (0 would never
/// tell neighbours where the VIP went), 0–`GARP_REPEAT_MAX` for a
/// lower-priority advert, and delays up to [`GARP_DELAY_MAX`].
fn garp(g: &Garp, path: &str, out: &mut Vec<Finding>) {
    let repeats = [
        ("master_repeat", g.master_repeat, 1),
        ("lower_priority_repeat", g.lower_priority_repeat, 0),
    ];
    for (field, n, min) in repeats {
        if !(min..=GARP_REPEAT_MAX).contains(&n) {
            out.push(Finding::error(
                format!("{path}.{field}"),
                format!(
                    "{n} announcements per VIP is out of range — use \
                     {min}–{GARP_REPEAT_MAX}"
                ),
            ));
        }
    }
    let delays = [
        ("master_delay", g.master_delay),
        ("lower_priority_delay", g.lower_priority_delay),
    ];
    for (field, d) in delays {
        if d > GARP_DELAY_MAX {
            out.push(Finding::error(
                format!("{path}.{field}"),
                format!(
                    "{d} is longer than {GARP_DELAY_MAX} — the second burst \
                     is for switches that missed the first; use 0s for none"
                ),
            ));
        }
    }
}

/// At least one VIP; IPv4 only under VRRPv2; labels that fit the
/// directors' interface.
fn virtual_addresses(
    inv: &Inventory,
    vi: &VrrpInstance,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let v2 = vi.version == 2;
    if vi.virtual_addresses.is_empty() {
        out.push(Finding::error(
            format!("{path}.virtual_addresses"),
            "no virtual addresses — list the VIP(s) this instance carries",
        ));
    }
    for (j, va) in vi.virtual_addresses.iter().enumerate() {
        let vpath = format!("{path}.virtual_addresses[{j}]");
        if let Some(what) = vip_problem(va.address.addr) {
            out.push(Finding::error(
                format!("{vpath}.address"),
                format!(
                    "{} is {what} — a VIP is one host's unicast address",
                    va.address.addr
                ),
            ));
        }
        if v2 && va.address.addr.is_ipv6() {
            out.push(Finding::error(
                format!("{vpath}.address"),
                "VRRPv2 carries only IPv4 addresses — use `version: 3` for \
                 an IPv6 VIP",
            ));
        }
        if let Some(label) = &va.label {
            label_matches(inv, label, &format!("{vpath}.label"), out);
        }
    }
}

/// VRRPv2 only; the password given exactly one way, at most 8 bytes, and
/// its variable or file present. `apath` is the `authentication` field.
fn authentication(
    vi: &VrrpInstance,
    auth: &Authentication,
    apath: &str,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    if vi.version == 3 {
        out.push(Finding::error(
            apath,
            "VRRPv3 has no authentication (RFC 5798 §9 removed it) — \
             remove `authentication` or use `version: 2`",
        ));
    }
    let sources = [
        auth.password.is_some(),
        auth.password_env.is_some(),
        auth.password_file.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        out.push(Finding::error(
            apath,
            "give the password exactly one way: `password`, \
             `password_env` or `password_file`",
        ));
    }
    // Both sources given is reported above, as "exactly one way".
    match vrrp_password(auth, base, env) {
        Err(p) if !p.field.is_empty() => {
            out.push(Finding::error(format!("{apath}{}", p.field), p.message));
        }
        _ => {}
    }
}

/// The PASS password of `auth`: inline, or read from its variable of the
/// controller's environment or its file (`base` resolves a relative one;
/// read as every secret file is, at most 1,024 bytes, trailing line ends
/// dropped); at most 8 bytes. The one reading, for validation and the
/// agents' configuration.
///
/// # Errors
/// No source or several (field `""`), a variable unset or empty, a file
/// that cannot be used, or a password longer than PASS carries.
pub fn vrrp_password(
    auth: &Authentication,
    base: &Path,
    env: &dyn Environment,
) -> Result<String, PasswordProblem> {
    let inline = auth.password.clone().map(|p| (".password", p));
    let read = secret_source(
        auth.password_env.as_deref(),
        auth.password_file.as_deref(),
        PASSWORD_FILE_MAX,
        base,
        env,
    );
    let problem = |field, message| PasswordProblem { field, message };
    let (field, password) = match (inline, read) {
        (Some(p), Ok(None)) | (None, Ok(Some(p))) => p,
        (None, Err(p)) => return Err(p),
        _ => {
            return Err(problem(
                "",
                "give the password exactly one way: `password`, \
                 `password_env` or `password_file`"
                    .to_owned(),
            ));
        }
    };
    match password.len() {
        0..=8 => Ok(password),
        n => Err(problem(
            field,
            format!(
                "the password is {n} bytes but VRRPv2 PASS carries at most 8 \
                 — shorten it (keepalived would silently cut it)"
            ),
        )),
    }
}

/// An instance speaks one address family (RFC 5798 §5.2.5: an advert
/// lists addresses of one family, and IPv4 and IPv6 adverts are separate
/// exchanges), set by its first VIP; its VIPs and unicast peers follow it.
fn one_family(vi: &VrrpInstance, path: &str, out: &mut Vec<Finding>) {
    let Some(first) = vi.virtual_addresses.first() else { return };
    let v6 = first.address.addr.is_ipv6();
    let family = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
    for (j, va) in vi.virtual_addresses.iter().enumerate().skip(1) {
        if va.address.addr.is_ipv6() != v6 {
            out.push(Finding::error(
                format!("{path}.virtual_addresses[{j}].address"),
                format!(
                    "{} is {} but the instance's first VIP is {} — an \
                     instance carries one address family; put the {} VIPs \
                     in an instance of their own (another VRID)",
                    va.address.addr,
                    family(!v6),
                    family(v6),
                    family(!v6),
                ),
            ));
        }
    }
    for (k, peer) in vi.unicast_peers.iter().enumerate() {
        if peer.is_ipv6() != v6 {
            out.push(Finding::error(
                format!("{path}.unicast_peers[{k}]"),
                format!(
                    "peer {peer} is {} but the instance's VIPs are {} — \
                     list the peers' {} addresses",
                    family(!v6),
                    family(v6),
                    family(v6),
                ),
            ));
        }
    }
}

fn advert_int(vi: &VrrpInstance, path: &str, out: &mut Vec<Finding>) {
    let d = vi.advert_int.get();
    let centis = d.as_millis() / 10;
    let problem = if vi.version == 2 {
        (d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 255).then(
            || {
                format!(
                    "VRRPv2 advertises in whole seconds, 1s–255s, not {} — \
                     round it, or use `version: 3` for sub-second adverts",
                    vi.advert_int
                )
            },
        )
    } else {
        (d.as_nanos() % 10_000_000 != 0 || centis == 0 || centis > 4095).then(
            || {
                format!(
                    "VRRPv3 advertises in centiseconds, 10ms–40.95s, not {} — \
                     use a multiple of 10ms in that range",
                    vi.advert_int
                )
            },
        )
    };
    out.extend(
        problem.map(|m| Finding::error(format!("{path}.advert_int"), m)),
    );
}

/// A label must start with the interface name (`eth0:1` on `eth0`): the
/// kernel refuses any other label for an IPv4 address.
fn label_matches(
    inv: &Inventory,
    label: &str,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let interfaces: HashSet<&str> =
        inv.directors.iter().map(|d| d.interface.as_str()).collect();
    if !interfaces.iter().any(|i| label.starts_with(i))
        || label.len() > IFNAME_MAX
    {
        let mut names: Vec<_> = interfaces.into_iter().collect();
        names.sort();
        out.push(Finding::error(
            path,
            format!(
                "label `{label}` does not start with the directors' \
                 interface ({}) — the kernel requires e.g. `{}:1`, at most \
                 {IFNAME_MAX} characters",
                names.join(", "),
                names.first().unwrap_or(&"eth0")
            ),
        ));
    }
}

fn priorities(
    inv: &Inventory,
    vi: &VrrpInstance,
    path: &str,
    out: &mut Vec<Finding>,
) {
    for name in vi.priorities.keys() {
        if !inv.directors.iter().any(|d| &d.name == name) {
            out.push(Finding::error(
                format!("{path}.priorities.{name}"),
                format!(
                    "`{name}` is not a director — {}",
                    known_directors(inv)
                ),
            ));
        }
    }
    let mut by_priority: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (i, d) in inv.directors.iter().enumerate() {
        let p = effective_priority(vi, d);
        if p == 255 {
            let field = match vi.priorities.contains_key(&d.name) {
                true => format!("{path}.priorities.{}", d.name),
                false => format!("directors[{i}].priority"),
            };
            out.push(Finding::error(
                field,
                "priority 255 is reserved for the owner of the VIP address, \
                 which an LVS-DR director never is — use 1–254",
            ));
        }
        by_priority.entry(p).or_default().push(&d.name);
    }
    for (p, names) in by_priority.into_iter().filter(|(_, n)| n.len() > 1) {
        out.push(Finding::warning(
            path,
            format!(
                "directors {} share priority {p} in {} — the election falls \
                 to the higher address; give each its own priority",
                names.join(", "),
                vi.name
            ),
        ));
    }
}

/// The priority a director runs an instance with.
pub fn effective_priority(vi: &VrrpInstance, d: &Director) -> u32 {
    vi.priorities.get(&d.name).unwrap_or(&d.priority).get()
}

fn known_directors(inv: &Inventory) -> String {
    let names: Vec<_> = inv.directors.iter().map(|d| d.name.as_str()).collect();
    format!("directors are: {}", names.join(", "))
}

/// VRIDs share one number space per segment and VRRP version; two instances
/// with the same VRID would fight over the same virtual MAC.
pub(crate) fn vrids(inv: &Inventory, out: &mut Vec<Finding>) {
    let mut names = HashSet::new();
    let mut seen = HashMap::new();
    for (i, vi) in inv.vrrp_instances.iter().enumerate() {
        let path = format!("vrrp_instances[{i}]");
        if !names.insert(vi.name.as_str()) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "instance name `{}` is used twice — rename one",
                    vi.name
                ),
            ));
        }
        let family =
            vi.virtual_addresses.first().map(|v| v.address.addr.is_ipv4());
        let key = (vi.virtual_router_id, vi.version, family);
        if let Some(first) = seen.insert(key, i) {
            out.push(Finding::error(
                format!("{path}.virtual_router_id"),
                format!(
                    "virtual_router_id {} is already used by \
                     vrrp_instances[{first}] — each instance on a segment \
                     needs its own VRID",
                    vi.virtual_router_id
                ),
            ));
        }
    }
}

/// Every VIP some VRRP instance carries.
pub(crate) fn vrrp_vips(inv: &Inventory) -> HashSet<IpAddr> {
    inv.vrrp_instances
        .iter()
        .flat_map(|vi| vi.virtual_addresses.iter().map(|va| va.address.addr))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::inventory::validate::environment::Vars;

    /// The password read one way, as the agents get it: 1–8 bytes after
    /// its trailing line ends, from a file only its owner may read; each
    /// refusal names the field, never the password.
    #[test]
    fn a_pass_password_is_read_one_way_and_fits_pass() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-vrrp-pass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            std::fs::write(dir.join(name), text).unwrap();
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(dir.join(name), perms).unwrap();
        };
        write("ok", "s3cret\n", 0o600);
        write("long", "123456789\n", 0o600);
        write("open", "s3cret\n", 0o644);
        let env =
            Vars(HashMap::from([("PW", "fromenv"), ("LONG", "0123456789")]));
        let auth =
            |password: Option<&str>, var: Option<&str>, file: Option<&str>| {
                Authentication {
                    password: password.map(Into::into),
                    password_env: var.map(Into::into),
                    password_file: file.map(Into::into),
                    ..serde_yaml::from_str("type: pass").unwrap()
                }
            };
        let read = |a: &Authentication| vrrp_password(a, &dir, &env);
        assert_eq!(
            read(&auth(Some("inline"), None, None)),
            Ok("inline".into())
        );
        assert_eq!(read(&auth(None, Some("PW"), None)), Ok("fromenv".into()));
        assert_eq!(read(&auth(None, None, Some("ok"))), Ok("s3cret".into()));
        for (a, field, says) in [
            (auth(None, None, Some("long")), ".password_file", "9 bytes"),
            (auth(None, Some("LONG"), None), ".password_env", "10 bytes"),
            (auth(Some("123456789"), None, None), ".password", "9 bytes"),
            (
                auth(None, None, Some("open")),
                ".password_file",
                "others may read",
            ),
            (auth(Some("a"), Some("PW"), None), "", "exactly one way"),
            (auth(None, None, None), "", "exactly one way"),
        ] {
            let p = read(&a).unwrap_err();
            assert_eq!(p.field, field, "{says}");
            assert!(p.message.contains(says), "{says}: {}", p.message);
            assert!(
                !p.message.contains("s3cret") && !p.message.contains("12345")
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
