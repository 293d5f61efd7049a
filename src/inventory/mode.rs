//! The agent's mode: the one spelling of "director or real server" that
//! the command line (`lbdeploy agent director`), the role files, the
//! activation sent to a host, the agent's status and the lab all use.

use serde::{Deserialize, Serialize};

/// Which part a host's agent plays.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// VRRP, VIPs, health checks and the data plane.
    Director,
    /// ARP suppression and the VIPs on `lo`.
    Realserver,
}

impl Mode {
    /// The word on the command line, in role files and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Director => "director",
            Mode::Realserver => "realserver",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn one_word_everywhere() {
        for mode in [Mode::Director, Mode::Realserver] {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            let clap = clap::ValueEnum::to_possible_value(&mode).unwrap();
            assert_eq!(clap.get_name(), mode.as_str());
        }
    }
}
