//! Keep secrets out of what lbdeploy shows and stores: plans on a
//! terminal, `--json`, saved plans and generations.
//!
//! The rendered agent configuration carries the VRRP password as a YAML
//! `password:` key; its value is replaced, the rest of the line (and so the
//! diff's shape) kept, so a changed password still shows as a changed line.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a hidden value reads as.
pub(crate) const HIDDEN: &str = "(sensitive)";

static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(\s*(?:-\s+)?password:\s*)\S.*$")
        .expect("the pattern is valid")
});

/// `text` with every `password:` value hidden.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    SECRET.replace_all(text, format!("${{1}}{HIDDEN}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_password_values_only() {
        let text = "auth:\n  type: pass\n  password: '1111'\n  - password: x\nnot_password: y\n";
        assert_eq!(
            redact(text),
            "auth:\n  type: pass\n  password: (sensitive)\n  - password: (sensitive)\nnot_password: y\n"
        );
    }

    #[test]
    fn leaves_empty_values_and_other_text() {
        assert_eq!(redact("password:\n"), "password:\n");
        assert_eq!(redact("a: b\n"), "a: b\n");
    }
}
