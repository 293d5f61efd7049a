//! Keep secrets out of the plan: what the terminal, `--json` and saved plans
//! show of a host's changes. The redaction itself is
//! [`util::redact`](crate::util::redact), shared with the agent's logs and
//! the error messages; this applies it to a [`Change`].

use std::borrow::Cow;

use super::diff::Change;

/// `text` with every secret hidden (see [`crate::util::redact::text`]).
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    crate::util::redact::text(text)
}

/// `c` with the secrets of its contents (files, and any URL or secret key
/// elsewhere) hidden: what a plan document records.
pub(crate) fn change(c: &Change) -> Change {
    let r = |s: &str| redact(s).into_owned();
    match c {
        Change::CreateFile { path, mode, content } => Change::CreateFile {
            path: path.clone(),
            mode: *mode,
            content: r(content),
        },
        Change::UpdateFile { path, old_mode, new_mode, old, new } => {
            Change::UpdateFile {
                path: path.clone(),
                old_mode: *old_mode,
                new_mode: *new_mode,
                old: r(old),
                new: r(new),
            }
        }
        Change::Blocker { message } => Change::Blocker { message: r(message) },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_changes_lose_their_secrets_and_keep_the_rest() {
        let c = Change::UpdateFile {
            path: "/etc/lbdeploy/agent.yml".into(),
            old_mode: 0o644,
            new_mode: 0o600,
            old: "password: |-\n  a\n  b\nx: 1\n".into(),
            new: "webhook: http://u:p@h/x?t=1\n".into(),
        };
        let Change::UpdateFile { old, new, new_mode, .. } = change(&c) else {
            panic!()
        };
        assert_eq!(old, "password: (sensitive)\nx: 1\n");
        assert_eq!(new, "webhook: http://(sensitive)@h/(sensitive)\n");
        assert_eq!(new_mode, 0o600);
    }
}
