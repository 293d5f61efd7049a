//! The file patterns of keepalived's `include`: `*`, `?` and `[...]` in
//! any path component, matched the way glob(3) matches them (a leading `.`
//! is matched only by a pattern that starts with one).
//!
//! A few lines over `regex` instead of another dependency; matches are
//! returned sorted, as glob(3) returns them, so included files are read in
//! a stable order.
//!
//! The pattern comes from a file someone else may have written, and
//! `/*/*/*/*` walks the whole file system, `/proc` included: expansions
//! list at most [`ENTRIES_MAX`] directory entries in all — the caller's
//! budget, which one import shares between all its includes — and one
//! past it is refused whole rather than cut.

use std::path::{Component, Path, PathBuf};

use regex::Regex;

/// The most directory entries the expansions of one import list, over
/// every directory they read: a configuration directory holds a few
/// dozen.
pub const ENTRIES_MAX: usize = 10_000;

/// An expansion that would list more entries than its budget has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "with the includes before it, it lists more than {ENTRIES_MAX} \
     directory entries"
)]
pub struct TooWide;

/// Whether a path holds glob metacharacters.
pub(crate) fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The existing files matching `pattern`, sorted; an unreadable directory
/// simply matches nothing. Each directory entry listed is taken from
/// `budget` (start it at [`ENTRIES_MAX`]).
///
/// # Errors
/// [`TooWide`]: listing the directories would take more entries than
/// `budget` has left.
pub fn expand(
    pattern: &Path,
    budget: &mut usize,
) -> Result<Vec<PathBuf>, TooWide> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        let glob = match component {
            Component::Normal(_) if is_pattern(&part) => Some(&*part),
            _ => None,
        };
        found = match glob {
            Some(glob) => {
                let mut next = Vec::new();
                for dir in &found {
                    next.extend(matches(dir, glob, budget)?);
                }
                next
            }
            None => found.into_iter().map(|dir| dir.join(&*part)).collect(),
        };
    }
    found.retain(|p| p.is_file());
    found.sort();
    Ok(found)
}

/// The entries of `dir` that `glob` matches, each listed entry taken
/// from `budget`.
fn matches(
    dir: &Path,
    glob: &str,
    budget: &mut usize,
) -> Result<Vec<PathBuf>, TooWide> {
    let Ok(re) = Regex::new(&to_regex(glob)) else { return Ok(Vec::new()) };
    let listing = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(listing) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in entries {
        *budget = budget.checked_sub(1).ok_or(TooWide)?;
        let Some(name) =
            entry.ok().and_then(|e| e.file_name().into_string().ok())
        else {
            continue;
        };
        if (!name.starts_with('.') || glob.starts_with('.'))
            && re.is_match(&name)
        {
            out.push(dir.join(name));
        }
    }
    Ok(out)
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

    #[test]
    fn an_expansion_lists_at_most_its_bound_of_entries() {
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            std::fs::write(dir.join(format!("vs-{i}.conf")), "").unwrap();
        }
        let mut budget = ENTRIES_MAX;
        let found = expand(&dir.join("vs-*.conf"), &mut budget).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(budget, ENTRIES_MAX - 3, "three entries listed");
        // The budget is shared: what is left is all the next may list.
        let mut little = 2;
        assert_eq!(expand(&dir.join("*"), &mut little), Err(TooWide));
        // A tree wider than the bound: refused, not cut.
        for i in 0..ENTRIES_MAX {
            std::fs::write(dir.join(format!("x{i}")), "").unwrap();
        }
        let mut budget = ENTRIES_MAX;
        assert_eq!(expand(&dir.join("*"), &mut budget), Err(TooWide));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
