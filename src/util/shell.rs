//! Quoting for `sh`: the facts script, the activation commands sent over
//! SSH and the lab's host scripts all splice names and paths into shell
//! text, and all of them go through `quote`.

/// `s` as one `sh` word: in single quotes, each `'` written as `'\''`, so
/// no character of `s` is special.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn single_quotes_survive_as_one_word() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(quote("$(x) ;"), "'$(x) ;'");
    }
}
