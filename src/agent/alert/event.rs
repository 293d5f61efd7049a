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

/// The two kinds of transition keepalived reports too.
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
        }
    }

    /// The email body.
    pub fn body(&self) -> String {
        let detail = match &self.what {
            What::Vrrp { priority, .. } => format!("priority {priority}"),
            What::RealServer { reason, .. } => reason.clone(),
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
}
