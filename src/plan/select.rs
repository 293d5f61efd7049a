//! `--limit`: which inventory hosts a command touches. Pure.
//!
//! A pattern is a host name, a glob over names (`rs*`, `keepalived0?`) or a
//! role (`role:director`, `role:realserver`); several patterns (repeated
//! flags or comma-separated) select the union. A pattern that selects
//! nothing is an error: a typo must not silently turn `apply` into a no-op.

use crate::inventory::Mode;
use crate::util::glob;

/// An inventory host as the selector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    /// Inventory name.
    pub name: &'a str,
    /// `director` or `realserver`.
    pub role: Mode,
}

/// A pattern that matches no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--limit `{pattern}` matches no host — hosts are {known}; roles are \
     role:director and role:realserver"
)]
pub(crate) struct NoMatch {
    /// The pattern as given.
    pub pattern: String,
    /// The inventory's host names, comma-separated.
    pub known: String,
}

/// The names `patterns` select from `hosts`, in inventory order. No
/// patterns select every host.
///
/// # Errors
/// [`NoMatch`] for the first pattern that selects nothing.
pub(crate) fn select<'a>(
    hosts: &[Candidate<'a>],
    patterns: &[String],
) -> Result<Vec<&'a str>, NoMatch> {
    let patterns: Vec<&str> = patterns
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() {
        return Ok(hosts.iter().map(|h| h.name).collect());
    }
    let mut chosen = vec![false; hosts.len()];
    for p in patterns {
        let mut any = false;
        for (i, h) in hosts.iter().enumerate() {
            if matches(p, h) {
                chosen[i] = true;
                any = true;
            }
        }
        if !any {
            return Err(NoMatch {
                pattern: p.to_owned(),
                known: hosts
                    .iter()
                    .map(|h| h.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(hosts
        .iter()
        .zip(chosen)
        .filter(|(_, c)| *c)
        .map(|(h, _)| h.name)
        .collect())
}

fn matches(pattern: &str, host: &Candidate<'_>) -> bool {
    if let Some(role) = pattern.strip_prefix("role:") {
        return role == host.role.as_str();
    }
    if !glob::is_pattern(pattern) {
        return pattern == host.name;
    }
    glob::is_match(pattern, host.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: [Candidate<'static>; 4] = [
        Candidate { name: "keepalived01", role: Mode::Director },
        Candidate { name: "keepalived02", role: Mode::Director },
        Candidate { name: "rs01", role: Mode::Realserver },
        Candidate { name: "rs02", role: Mode::Realserver },
    ];

    fn sel(patterns: &[&str]) -> Result<Vec<&'static str>, NoMatch> {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        select(&HOSTS, &p)
    }

    #[test]
    fn nothing_selects_everything() {
        assert_eq!(sel(&[]).unwrap().len(), 4);
    }

    #[test]
    fn names_globs_roles_and_unions() {
        assert_eq!(sel(&["rs01"]).unwrap(), ["rs01"]);
        assert_eq!(sel(&["rs*"]).unwrap(), ["rs01", "rs02"]);
        assert_eq!(sel(&["keepalived0[2]"]).unwrap(), ["keepalived02"]);
        assert_eq!(
            sel(&["role:director"]).unwrap(),
            ["keepalived01", "keepalived02"]
        );
        assert_eq!(
            sel(&["rs02,keepalived01"]).unwrap(),
            ["keepalived01", "rs02"],
            "inventory order, not pattern order"
        );
    }

    #[test]
    fn a_pattern_matching_nothing_is_an_error() {
        let e = sel(&["rs01", "rs9*"]).unwrap_err();
        assert_eq!(e.pattern, "rs9*");
        assert!(e.to_string().contains("keepalived01, keepalived02, rs01"));
        assert!(sel(&["role:router"]).is_err());
    }

    #[test]
    fn dots_are_literal() {
        let hosts = [Candidate { name: "a.b", role: Mode::Director }];
        let p = vec!["a?b".to_owned()];
        assert!(select(&hosts, &p).is_ok());
        let hosts = [Candidate { name: "axb", role: Mode::Director }];
        let p = vec!["a.*".to_owned()];
        assert!(select(&hosts, &p).is_err());
    }
}
