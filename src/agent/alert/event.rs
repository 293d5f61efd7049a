//! What is worth telling someone about, and how it reads in each medium:
//! an email's subject and body, a webhook's JSON, an exec hook's
//! arguments. Pure.

use std::net::IpAddr;

use serde::Serialize;

/// One event of a director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The cluster.
    pub cluster: String,
    /// The director that saw it.
    pub host: String,
    /// RFC 3339.
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
}

/// The kinds of transition keepalived reports too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    /// A VRRP instance changed state.
    Vrrp {
        /// The instance.
        instance: String,
        /// `master`, `backup` or `fault`.
        state: String,
        /// This director's priority in it.
        priority: u8,
    },
    /// A real server went up or down.
    RealServer {
        /// The service.
        service: String,
        /// The real server.
        address: IpAddr,
        /// Up now.
        up: bool,
        /// The check result that decided it.
        reason: String,
    },
    /// A virtual service gained or lost quorum (keepalived's `quorum_up`
    /// and `quorum_down`).
    Quorum {
        /// The service.
        service: String,
        /// Quorum held now.
        up: bool,
        /// The live weight that decided it.
        weight: u64,
        /// The threshold it crossed: quorum + hysteresis when gained,
        /// quorum − hysteresis when lost.
        threshold: u64,
    },
}

impl Event {
    /// One line, for email subjects and logs.
    pub fn subject(&self) -> String {
        match &self.what {
            What::Vrrp { instance, state, .. } => format!(
                "[{}] {}: VRRP instance {instance} is now {}",
                self.cluster,
                self.host,
                state.to_uppercase()
            ),
            What::RealServer { service, address, up, .. } => format!(
                "[{}] {}: real server {address} of {service} is {}",
                self.cluster,
                self.host,
                if *up { "UP" } else { "DOWN" }
            ),
            What::Quorum { service, up, .. } => format!(
                "[{}] {}: service {service} {} quorum",
                self.cluster,
                self.host,
                if *up { "gained" } else { "lost" }
            ),
        }
    }

    /// The email body.
    pub fn body(&self) -> String {
        let detail = match &self.what {
            What::Vrrp { priority, .. } => format!("priority {priority}"),
            What::RealServer { reason, .. } => reason.clone(),
            What::Quorum { up: true, weight, threshold, .. } => {
                format!("live weight {weight}, at least {threshold}")
            }
            What::Quorum { up: false, weight, threshold, .. } => {
                format!("live weight {weight}, below {threshold}")
            }
        };
        format!("{}\n\n{detail}\nat {}\n", self.subject(), self.time)
    }

    /// The exec hook's arguments, keepalived-like: kind, then the subject
    /// of the event, then its new state.
    pub fn args(&self) -> Vec<String> {
        match &self.what {
            What::Vrrp { instance, state, priority } => vec![
                "vrrp".into(),
                instance.clone(),
                state.clone(),
                priority.to_string(),
            ],
            What::RealServer { service, address, up, .. } => vec![
                "real_server".into(),
                service.clone(),
                address.to_string(),
                if *up { "up" } else { "down" }.into(),
            ],
            What::Quorum { service, up, weight, .. } => vec![
                "quorum".into(),
                service.clone(),
                if *up { "up" } else { "down" }.into(),
                weight.to_string(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Event {
        Event {
            cluster: "c".into(),
            host: "d1".into(),
            time: "2026-11-26T00:00:00Z".into(),
            what: What::RealServer {
                service: "web".into(),
                address: "10.0.0.21".parse().unwrap(),
                up: false,
                reason: "connect refused".into(),
            },
        }
    }

    #[test]
    fn reads_in_every_medium() {
        let e = down();
        assert_eq!(e.subject(), "[c] d1: real server 10.0.0.21 of web is DOWN");
        assert!(e.body().contains("connect refused\nat 2026-11-26T00:00:00Z"));
        assert_eq!(e.args(), ["real_server", "web", "10.0.0.21", "down"]);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "real_server");
        assert_eq!(json["up"], false);
        assert_eq!(json["host"], "d1");
    }

    #[test]
    fn quorum_changes_read_in_every_medium() {
        let lost = Event {
            what: What::Quorum {
                service: "web".into(),
                up: false,
                weight: 1,
                threshold: 2,
            },
            ..down()
        };
        assert_eq!(lost.subject(), "[c] d1: service web lost quorum");
        assert!(lost.body().contains("live weight 1, below 2\n"));
        assert_eq!(lost.args(), ["quorum", "web", "down", "1"]);
        let json = serde_json::to_value(&lost).unwrap();
        assert_eq!(json["event"], "quorum");
        assert_eq!(json["threshold"], 2);
    }
}
