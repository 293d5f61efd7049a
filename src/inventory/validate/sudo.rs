//! The rules of `ssh.become` and `ssh.become_password_env`, globally and
//! per host: a password variable only where sudo is used, and set in the
//! controller's environment; becoming root as root is pointless.

use crate::inventory::diag::Finding;
use crate::inventory::schema::{Become, Inventory};

use super::environment::Environment;

/// Every `become` rule, at the inventory's `ssh:` and each host's.
pub(crate) fn become_rules(
    inv: &Inventory,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    let d = &inv.ssh;
    one("ssh", d.become_, &d.become_password_env, &d.user, env, out);
    let hosts = inv
        .directors
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("directors[{i}].ssh"), &h.ssh))
        .chain(
            inv.real_servers
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("real_servers[{i}].ssh"), &h.ssh)),
        );
    for (path, ssh) in hosts {
        let Some(h) = ssh else { continue };
        // Only what the host sets is judged here, with what it falls back
        // to; the inventory's own `ssh:` was judged above.
        let method = h.become_.unwrap_or(d.become_);
        if let Some(var) = &h.become_password_env {
            password(&path, method, var, env, out);
        }
        let user = h.user.as_deref().unwrap_or(&d.user);
        let field = match (&h.user, h.become_) {
            (Some(_), _) => "user",
            (None, Some(_)) => "become",
            (None, None) => continue,
        };
        root_with_sudo(&format!("{path}.{field}"), method, user, out);
    }
}

/// The rules for one `ssh:` block: `method` and `password_env` in effect
/// there, as `user`.
fn one(
    path: &str,
    method: Become,
    password_env: &Option<String>,
    user: &str,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    if let Some(var) = password_env {
        password(path, method, var, env, out);
    }
    root_with_sudo(&format!("{path}.become"), method, user, out);
}

/// A password variable set at `path`, where `method` is in effect.
fn password(
    path: &str,
    method: Become,
    var: &str,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    let path = format!("{path}.become_password_env");
    match method {
        Become::None => out.push(Finding::error(
            path,
            "a sudo password without `become: sudo` is never used — set \
             `become: sudo`, or remove it",
        )),
        Become::Sudo if env.var(var).is_none() => out.push(Finding::error(
            path,
            format!(
                "environment variable `{var}` is not set — export the sudo \
                 password in it before running lbdeploy"
            ),
        )),
        Become::Sudo => {}
    }
}

/// `become: sudo` as root: harmless, but says the inventory meant another
/// user.
fn root_with_sudo(
    path: &str,
    method: Become,
    user: &str,
    out: &mut Vec<Finding>,
) {
    if method == Become::Sudo && user == "root" {
        out.push(Finding::warning(
            path,
            "the SSH user is root already: `become: sudo` changes nothing — \
             set `user:` to the user that runs sudo",
        ));
    }
}
