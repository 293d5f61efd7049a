//! Non-root SSH (issue #18, item 4): systemd hosts whose sshd refuses root,
//! reached as `deploy` with `ssh.become: sudo`, as Ansible's become.
//!
//! One lab, three phases, so that the first install happens on hosts that
//! lbdeploy has never touched:
//!
//! 1. sudo wants a password and the inventory gives none: `plan` and
//!    `apply` fail at the facts script, naming each host and the remedy,
//!    and no host has `/etc/lbdeploy` or `/var/lib/lbdeploy`;
//! 2. the password from `ssh.become_password_env`: a wrong one is refused
//!    naming the host; then the first install (the binary streamed after
//!    the password line, byte for byte, or the next plan would see another
//!    hash), traffic through the VIP, an empty second plan;
//! 3. NOPASSWD and no password in the inventory: the plan is still empty,
//!    an apply and a rollback work (the rollback restores the first
//!    generation's inventory, password variable included: sudo never asks,
//!    and the wrapper's password line must not reach the command), and
//!    `unlock` reads each host's lock as root.
//!
//! The lab's controller names every host with `User root` in its
//! `~/.ssh/config`; the inventory's user wins (`ssh -l`), which phase 1
//! proves too: root cannot log in at all.

use std::process::Output;
use std::time::Duration;

use crate::support::inventory::Inventory;
use crate::support::lab::{TestLab, describe, within};
use crate::support::subnet::Subnet;

const HOSTS: [&str; 4] = ["keepalived01", "keepalived02", "rs01", "rs02"];

/// The controller's environment variable with the sudo password.
const PASSWORD_ENV: &str = "LBDEPLOY_TEST_SUDO_PASSWORD";

/// `deploy`'s password on every host (`$` and a quote: it is never shell
/// text).
const PASSWORD: &str = "pa$$ 'w0rd";

/// Make `host` refuse root over SSH and let `deploy` in with the lab's
/// client key, with sudo wanting `deploy`'s password.
///
/// sshd here runs without PAM, so `deploy` needs a password that is not
/// locked to log in at all; the lab's `authorized_keys` is root's only
/// (0600), so `deploy` gets a copy of its own.
fn non_root_host(lab: &TestLab, host: &str) {
    let dir = "/etc/ssh/lbdeploy-lab";
    lab.exec_ok(
        host,
        &format!(
            "useradd -m -s /bin/sh deploy && \
             printf '%s\\n' 'deploy:{pw}' | chpasswd && \
             install -d -m 700 -o deploy -g deploy /home/deploy/.ssh && \
             install -m 600 -o deploy -g deploy {dir}/authorized_keys \
               /home/deploy/.ssh/authorized_keys && \
             sed -i 's/^PermitRootLogin .*/PermitRootLogin no/' {dir}/sshd_config && \
             printf 'Match User deploy\\n    AuthorizedKeysFile .ssh/authorized_keys\\n' \
               >> {dir}/sshd_config && \
             sshd -t && systemctl reload ssh",
            pw = PASSWORD.replace('\'', r"'\''"),
        ),
    );
    sudoers(lab, host, "deploy ALL=(root) ALL");
}

/// Replace `deploy`'s sudoers rule on `host`.
fn sudoers(lab: &TestLab, host: &str, rule: &str) {
    lab.exec_ok(
        host,
        &format!(
            "printf '%s\\n' '{rule}' > /etc/sudoers.d/deploy && \
             chmod 0440 /etc/sudoers.d/deploy && visudo -cq"
        ),
    );
}

/// The example cluster reached as `deploy` through sudo; `extra` more
/// lines under `ssh:`.
fn inventory(s: Subnet, extra: &str) -> Inventory {
    Inventory::example(s)
        .top(&format!("ssh:\n  user: deploy\n  become: sudo\n{extra}"))
}

/// `lbdeploy ARGS` on the controller with `password` in its environment.
fn lbdeploy_with(lab: &TestLab, password: &str, args: &[&str]) -> Output {
    let inv = lab.inventory().to_string_lossy().into_owned();
    let mut all = vec!["exec", "controller", "--", "lbdeploy", "-i", &inv];
    all.extend_from_slice(args);
    lab.lab_cmd(&all).env(PASSWORD_ENV, password).output().unwrap()
}

/// [`lbdeploy_with`] the right password, which must exit with `code`;
/// stdout and stderr.
fn with_password_exit(lab: &TestLab, code: i32, args: &[&str]) -> String {
    let out = lbdeploy_with(lab, PASSWORD, args);
    assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn r18_non_root_ssh_with_sudo_end_to_end() {
    let s = Subnet::allocate();
    let Some(lab) = TestLab::up_with(
        "become",
        &inventory(s, "").to_string(),
        &["--init", "systemd"],
    ) else {
        return;
    };
    for h in HOSTS {
        non_root_host(&lab, h);
    }
    let url = format!("http://{}/", s.vip());
    let root = lab.ssh("controller", "rs01", "true");
    assert!(!root.status.success(), "root still logs in: {}", describe(&root));

    // 1. A password is wanted and none is given: every host fails at its
    // facts, before anything is written.
    for cmd in [&["plan"][..], &["apply", "--yes"]] {
        let out = lab.lbdeploy(cmd);
        assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
        let said = describe(&out);
        for h in HOSTS {
            let want = format!(
                "sudo on {h} wants a password — set ssh.become_password_env, \
                 or allow NOPASSWD for lbdeploy's commands"
            );
            assert!(said.contains(&want), "{want:?} not in\n{said}");
        }
    }
    for h in HOSTS {
        let left = lab.exec_ok(
            h,
            "ls -d /etc/lbdeploy /var/lib/lbdeploy \
               /etc/systemd/system/lbdeploy-agent.service 2>/dev/null; true",
        );
        assert_eq!(left.trim(), "", "{h} was changed");
    }

    // 2. With the password: a wrong one is refused by name (sudo tries
    // it three times), then the first install through the wrapper.
    lab.rewrite_inventory(&inventory(
        s,
        &format!("  become_password_env: {PASSWORD_ENV}\n"),
    ));
    let out = lbdeploy_with(&lab, "wrong", &["plan", "--limit", "rs01"]);
    let said = describe(&out);
    assert!(
        said.contains(
            "sudo on rs01 refused the password from ssh.become_password_env \
             for deploy"
        ),
        "{said}"
    );
    let out = with_password_exit(&lab, 0, &["apply", "--yes"]);
    assert!(!out.contains(PASSWORD), "{out}");
    within(Duration::from_secs(10), "traffic through the VIP", || {
        lab.curl("client", &url).status.success()
    });
    with_password_exit(&lab, 0, &["plan", "--detailed-exitcode"]);
    for h in HOSTS {
        assert_eq!(
            lab.exec_ok(h, "systemctl is-active lbdeploy-agent").trim(),
            "active",
            "{h}"
        );
    }

    // 3. NOPASSWD, no password in the inventory: nothing to do; then a
    // change and its rollback.
    for h in HOSTS {
        sudoers(&lab, h, "deploy ALL=(root) NOPASSWD: ALL");
    }
    lab.rewrite_inventory(&inventory(s, ""));
    lab.lbdeploy_exit(0, &["plan", "--detailed-exitcode"]);
    let first = lab.exec_ok("keepalived01", "cat /etc/lbdeploy/agent.yml");
    lab.rewrite_inventory(&inventory(s, "").weight("rs02", 5));
    let out = lab.lbdeploy_exit(0, &["apply", "--yes"]);
    assert!(out.contains("generation 2 recorded"), "{out}");
    let out = with_password_exit(&lab, 0, &["rollback", "--yes"]);
    assert!(out.contains("generation 3 recorded"), "{out}");
    assert_eq!(
        lab.exec_ok("keepalived01", "cat /etc/lbdeploy/agent.yml"),
        first
    );
    assert!(lab.curl("client", &url).status.success());

    // `unlock` reaches each host's lock as root: under `deploy` the state
    // directory (0700) would be unreadable, not "not locked".
    let out = lab.lbdeploy(&["unlock", "no-such-apply"]);
    let said = describe(&out);
    for h in HOSTS {
        assert!(said.contains(&format!("{h}: host is not locked")), "{said}");
    }
}
