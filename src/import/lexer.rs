//! keepalived.conf tokens: words, `{` and `}`, each with its line.
//!
//! The rules follow keepalived's own reader: tokens are separated by
//! whitespace; `{` and `}` are tokens of their own even when glued to a word;
//! `!` or `#` outside quotes comments out the rest of the line wherever it
//! starts (keepalived.conf(5): "can start anywhere in a line", so
//! `priority 100#main` is `priority 100`); a token that starts with `"` runs
//! to the next `"` and may hold spaces, `#` and braces. Lines matter to the parser
//! (a statement is a keyword and its values on one line), so every token
//! keeps its line number.

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or a value; quotes are removed.
    Word(String),
    /// `{`.
    Open,
    /// `}`.
    Close,
}

/// A token and where it starts: line and column (in characters), from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// What it is.
    pub kind: Kind,
    /// Its line.
    pub line: u32,
    /// Its first character's column.
    pub col: u32,
}

/// A token that cannot be read: an unterminated quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    /// The line the quote opens on.
    pub line: u32,
    /// The quote's column.
    pub col: u32,
    /// What is wrong — what to do.
    pub message: String,
}

/// Split `text` into tokens.
///
/// # Errors
/// Every line with an unterminated quote; the other lines' tokens are still
/// returned alongside, so later stages can report their own problems.
pub(crate) fn lex(text: &str) -> (Vec<Token>, Vec<LexError>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let mut rest = line;
        // The characters before `rest`, counted as it advances: counting
        // from the line's start at each token was quadratic in a long line.
        let mut before = 0;
        loop {
            let trimmed = rest.trim_start();
            before += chars(&rest[..rest.len() - trimmed.len()]);
            rest = trimmed;
            let Some(c) = rest.chars().next() else { break };
            let col = u32::try_from(before + 1).unwrap_or(u32::MAX);
            let (kind, len) = match c {
                '!' | '#' => break,
                '{' => (Kind::Open, 1),
                '}' => (Kind::Close, 1),
                '"' => match rest[1..].find('"') {
                    Some(end) => {
                        (Kind::Word(rest[1..=end].to_owned()), end + 2)
                    }
                    None => {
                        errors.push(LexError {
                            line: line_no,
                            col,
                            message: "unterminated quote — close the string \
                                      with `\"` on the same line"
                                .to_owned(),
                        });
                        break;
                    }
                },
                _ => {
                    let end = rest
                        .find(|c: char| c.is_whitespace() || "{}!#".contains(c))
                        .unwrap_or(rest.len());
                    (Kind::Word(rest[..end].to_owned()), end)
                }
            };
            tokens.push(Token { kind, line: line_no, col });
            before += chars(&rest[..len]);
            rest = &rest[len..];
        }
    }
    (tokens, errors)
}

/// How many characters `s` holds: columns count characters, as editors
/// do, not bytes.
fn chars(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        lex(text)
            .0
            .into_iter()
            .map(|t| match t.kind {
                Kind::Word(w) => w,
                Kind::Open => "{".into(),
                Kind::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn columns_count_characters_from_one() {
        let cols: Vec<u32> =
            lex("é  {\n\t\"ü x\" y").0.iter().map(|t| t.col).collect();
        assert_eq!(cols, [1, 4, 2, 8]);
    }

    #[test]
    fn empty_and_comment_only_input_has_no_tokens() {
        assert_eq!(lex(""), (vec![], vec![]));
        assert!(words("! Configuration File\n# more\n   \n").is_empty());
    }

    #[test]
    fn comments_after_values_are_dropped() {
        assert_eq!(
            words("priority 120 # master\nweight 1 !x"),
            ["priority", "120", "weight", "1"]
        );
        assert_eq!(words("path /a#b"), ["path", "/a"]);
    }

    #[test]
    fn braces_split_glued_words() {
        assert_eq!(
            words("virtual_ipaddress {10.0.0.1}"),
            ["virtual_ipaddress", "{", "10.0.0.1", "}"]
        );
    }

    #[test]
    fn quoted_strings_keep_spaces_and_braces() {
        assert_eq!(
            words(r#"notify_master "/bin/x.sh a {b}" # c"#),
            ["notify_master", "/bin/x.sh a {b}"]
        );
        let (tokens, errors) = lex("a 1\nnotify \"/bin/x.sh\n b 2");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert_eq!(tokens.last().unwrap().line, 3);
    }
}
