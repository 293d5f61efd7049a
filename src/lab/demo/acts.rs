//! What the demo does to a lab host, as the host's init expects: on
//! namespace hosts the web server is a process to kill and start, and a
//! killed agent takes its supervisor with it; on systemd hosts the web
//! server is a unit (killed, systemd would restart it) and a killed agent
//! is the unit's business. Also used by the lab tests, which crash
//! processes the same way ([`kill_here`]).

use crate::lab::HostInit;
use crate::lab::machine::responder_unit;

/// What the demo does to a host, as its init expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acts(pub HostInit);

impl Acts {
    /// Stop the web server on `port`, for good until [`Acts::start_web`]:
    /// killed on a namespace host; stopped as a unit on a systemd host,
    /// where a killed one would be restarted.
    pub fn stop_web(self, port: u32) -> String {
        match self.0 {
            HostInit::Namespace => kill_here("[l]bdeploy lab responder"),
            HostInit::Systemd => {
                format!("systemctl stop {}", web_unit(port))
            }
        }
    }

    /// Start the web server on `port` again, answering as `name`.
    pub fn start_web(self, port: u32, name: &str) -> String {
        match self.0 {
            HostInit::Namespace => format!(
                "setsid lbdeploy lab responder --port {port} --name {name} \
                 </dev/null >/dev/null 2>&1 &"
            ),
            HostInit::Systemd => {
                format!("systemctl start {}", web_unit(port))
            }
        }
    }

    /// Crash the agent: `kill -9`. On a namespace host its supervisor
    /// dies with it, so it stays down; on a systemd host only the agent
    /// (the unit's main process) dies, as in a crash, and the unit does
    /// what it says. Either way a BIRD the agent ran dies with it.
    pub fn crash_agent(self) -> String {
        match self.0 {
            HostInit::Namespace => kill_here("[l]bdeploy agent"),
            HostInit::Systemd => "systemctl kill --signal=KILL \
                                  --kill-who=main lbdeploy-agent"
                .to_owned(),
        }
    }

    /// Have the director's agent run again: started by hand on a
    /// namespace host; on a systemd host systemd has restarted it, and
    /// this checks that it did.
    pub fn start_agent(self) -> String {
        match self.0 {
            HostInit::Namespace => "lbdeploy agent start director --config \
                                    /etc/lbdeploy/agent.yml"
                .to_owned(),
            HostInit::Systemd => {
                "systemctl is-active --quiet lbdeploy-agent".to_owned()
            }
        }
    }
}

/// The lab's web-server unit for `port` (a port the inventory's services
/// use, so within `u16`).
fn web_unit(port: u32) -> String {
    responder_unit(u16::try_from(port).unwrap_or(u16::MAX))
}

/// `kill -9` the processes matching `pattern` in this host only, as a
/// crash would: the lab's hosts share one PID namespace, so a plain
/// `pkill` would reach every host.
pub fn kill_here(pattern: &str) -> String {
    format!(
        "me=$(readlink /proc/self/ns/net); for p in $(pgrep -f '{pattern}'); do \
         [ \"$(readlink /proc/$p/ns/net)\" = \"$me\" ] && kill -9 $p; done; true"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::machine::host_files;
    use crate::lab::machine::tests::host;

    #[test]
    fn on_systemd_hosts_the_web_server_is_the_unit_the_lab_enables() {
        let (_, enabled) = host_files(&host());
        let acts = Acts(HostInit::Systemd);
        assert_eq!(
            acts.stop_web(8080),
            format!("systemctl stop {}", enabled[2])
        );
        assert_eq!(
            acts.start_web(8080, "rs01"),
            format!("systemctl start {}", enabled[2])
        );
        assert!(acts.crash_agent().contains("--kill-who=main"));
    }

    #[test]
    fn on_namespace_hosts_processes_are_killed_in_this_host_only() {
        let acts = Acts(HostInit::Namespace);
        assert!(
            acts.stop_web(80).contains("pgrep -f '[l]bdeploy lab responder'")
        );
        assert!(acts.crash_agent().contains("pgrep -f '[l]bdeploy agent'"));
        assert!(acts.start_web(80, "rs01").starts_with(
            "setsid lbdeploy lab responder --port 80 --name rs01 "
        ));
    }
}
