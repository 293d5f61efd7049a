//! The real servers a director has drained at runtime (`lbdeploy
//! drain`): the list's place on the host and its shape, shared by the
//! agent, which keeps and applies it (`agent::drain`), and the
//! controller, which shows it in `plan` and `status`. A JSON list of
//! `{ "address": …, "service": … }`; `service` absent means every
//! service that real server is in. Pure.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where a director keeps its drained real servers.
pub const DRAINED_FILE: &str = "/var/lib/lbdeploy/drained.json";

/// One drained real server: `address` in `service`, or in every service
/// when `service` is `None`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct Drained {
    /// The real server's address.
    pub address: IpAddr,
    /// The service it is drained from; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Drained {
    /// Whether this takes real server `address` of `service` out.
    pub fn covers(&self, service: &str, address: IpAddr) -> bool {
        self.address == address
            && self.service.as_deref().is_none_or(|s| s == service)
    }
}

/// As `plan` lists it: `10.2.0.21 (web)`, or the address alone when it is
/// drained from every service.
impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.service {
            Some(s) => write!(f, "{} ({s})", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

/// The drained set written in `text`.
///
/// # Errors
/// Text that is not such a list.
pub fn parse(text: &str) -> Result<BTreeSet<Drained>, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_drained_list_is_an_error() {
        for bad in [
            "",
            "{}",
            r#"[{"address": "not an address"}]"#,
            r#"[{"address": "10.2.0.21", "extra": 1}]"#,
            r#"[{"service": "web"}]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("[]").unwrap(), BTreeSet::new());
        let one = parse(r#"[{"address": "10.2.0.21", "service": "web"}]"#);
        let one = one.unwrap().pop_first().unwrap();
        assert!(one.covers("web", "10.2.0.21".parse().unwrap()));
        assert!(!one.covers("api", "10.2.0.21".parse().unwrap()));
    }
}
