//! The file patterns of keepalived's `include`: `*`, `?` and `[...]` in
//! any path component, matched the way glob(3) matches them (a leading `.`
//! is matched only by a pattern that starts with one).
//!
//! A few lines over `regex` instead of another dependency; matches are
//! returned sorted, as glob(3) returns them, so included files are read in
//! a stable order.

use std::path::{Component, Path, PathBuf};

use regex::Regex;

/// Whether a path holds glob metacharacters.
pub(crate) fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The existing files matching `pattern`, sorted; an unreadable directory
/// simply matches nothing.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        let glob = match component {
            Component::Normal(_) if is_pattern(&part) => Some(&*part),
            _ => None,
        };
        found = match glob {
            Some(glob) => {
                found.iter().flat_map(|dir| matches(dir, glob)).collect()
            }
            None => found.into_iter().map(|dir| dir.join(&*part)).collect(),
        };
    }
    found.retain(|p| p.is_file());
    found.sort();
    found
}

fn matches(dir: &Path, glob: &str) -> Vec<PathBuf> {
    let Ok(re) = Regex::new(&to_regex(glob)) else { return Vec::new() };
    let listing = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(listing) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') || glob.starts_with('.'))
        .filter(|name| re.is_match(name))
        .map(|name| dir.join(name))
        .collect()
}

/// Whether `name` matches `glob` as a whole (`*`, `?`, `[...]`, `[!...]`);
/// also what `--limit` uses to select hosts by name.
pub(crate) fn is_match(glob: &str, name: &str) -> bool {
    Regex::new(&to_regex(glob)).is_ok_and(|re| re.is_match(name))
}

/// `*.conf` → `^.*\.conf$`; a bracket expression is passed through, with
/// glob's `[!...]` negation spelled `[^...]`.
fn to_regex(glob: &str) -> String {
    let mut re = String::from("^");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                re.push('[');
                let mut class: String =
                    chars.by_ref().take_while(|&c| c != ']').collect();
                if let Some(rest) = class.strip_prefix('!') {
                    class = format!("^{rest}");
                }
                re.push_str(&class.replace('\\', "\\\\"));
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_the_three_metacharacters() {
        let re = Regex::new(&to_regex("vs-[0-9]?.conf")).unwrap();
        assert!(re.is_match("vs-1a.conf"));
        assert!(!re.is_match("vs-a1.conf"));
        assert!(Regex::new(&to_regex("[!a]*")).unwrap().is_match("b"));
        assert!(!is_pattern("/etc/keepalived/keepalived.conf"));
    }
}
