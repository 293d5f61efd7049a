//! The agent's life cycle without systemd (issue #4): the foreground agent
//! and its status socket, SIGHUP reload, SIGTERM shutdown, and the
//! supervisor behind `agent start|stop|restart|reload`.
//!
//! No root needed: every test points `LBDEPLOY_RUN_DIR` at a temporary
//! directory of its own, so tests run in parallel, and runs `lbdeploy` in
//! a network namespace of its own ([`ISOLATED`]), because the real-server
//! agent sets ARP sysctls and puts its VIPs on `lo` (issue #5). [`AgentHost`] kills
//! every process that mentions that directory when dropped, also when the
//! test panics. Waits poll against bounds derived from the supervisor's
//! constants, never fixed sleeps.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lbdeploy::agent::paths::RUN_DIR_ENV;
use lbdeploy::agent::status::{self, Status};
use lbdeploy::agent::supervise::{
    POLL_INTERVAL, RESTART_DELAY, START_TIMEOUT, STOP_TIMEOUT,
};
use lbdeploy::inventory::Mode;
use rustix::process::{Pid, Signal, kill_process};
use sha2::{Digest, Sha256};

use crate::support::lab::{LBDEPLOY, TempDir, describe};

/// rs01's agent.yml as `apply` renders it (tests/golden/desired/example).
const REALSERVER: &str = "cluster: \"lvs-dr-demo\"\nhost: \"rs01\"\n\
                          interface: \"eth0\"\narp_suppression: \"sysctl\"\n\
                          vips:\n- 192.168.1.200\nkeep_vip_on_stop: false\n";

/// Valid YAML, invalid agent configuration.
const INVALID: &str = "cluster: c\nvips: not-a-list\n";

/// keepalived01's agent.yml, cut from the golden desired state so it stays
/// what `apply` renders.
fn director_config() -> String {
    let golden = std::fs::read_to_string(
        "tests/golden/desired/example/keepalived01.txt",
    )
    .expect("reading the golden desired state");
    let start = golden
        .find("=== /etc/lbdeploy/agent.yml")
        .expect("the golden file has an agent.yml");
    let body = &golden[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("\n=== ").unwrap_or(body.len())].to_owned()
}

/// `sh -c` text that runs `"$0" "$@"` in a new user and network namespace
/// (`unshare -rn`: root inside, without root outside) holding the `eth0`
/// the configurations name (a veth, as in the lab; the `dummy` module is
/// not always there). `exec` keeps the PID, so tests signal what they
/// spawned. Commands that only talk to the agent (status, stop, reload)
/// get a namespace of their own too: the socket and the PID file are in
/// the file system, which is shared.
const ISOLATED: &str =
    "ip link add eth0 type veth peer name eth0p && exec \"$0\" \"$@\"";

/// `unshare -rn sh -c ISOLATED PROGRAM ARGS...`.
fn isolated(program: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", "sh", "-c", ISOLATED, program]);
    cmd
}

fn sha256(text: &str) -> String {
    format!("{:x}", Sha256::digest(text))
}

/// Poll `f` every [`POLL_INTERVAL`] until it gives `Some`, for at most
/// `bound`.
fn wait_until<T>(
    bound: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Wait for a foreground agent to exit, within `STOP_TIMEOUT` (a bad
/// configuration fails at once; SIGTERM ends it promptly).
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    wait_until(STOP_TIMEOUT, "the agent exits", || {
        child.try_wait().expect("waiting for the agent")
    })
}

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig)
        .unwrap_or_else(|e| panic!("signalling {pid}: {e}"));
}

/// Whether `pid` is a live, non-zombie process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// One simulated host: a runtime directory and configuration files in a
/// temporary directory, and every process started for it.
struct AgentHost {
    // Dropped after `Drop for AgentHost` has killed the processes.
    dir: TempDir,
    foreground: Vec<Child>,
}

impl AgentHost {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(&format!("agent-{name}"));
        AgentHost { dir, foreground: Vec::new() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run_dir(&self) -> PathBuf {
        self.path().join("run")
    }

    fn config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("writing a config");
        path
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = isolated(LBDEPLOY);
        cmd.args(args).env(RUN_DIR_ENV, self.run_dir());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running lbdeploy")
    }

    fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}\n{}", self.dump(&out));
        out
    }

    /// A command's output plus the agent log, for panic messages.
    fn dump(&self, out: &Output) -> String {
        let log = std::fs::read_to_string(self.run_dir().join("agent.log"))
            .unwrap_or_default();
        format!("{}--- agent.log ---\n{log}", describe(out))
    }

    /// Start `lbdeploy agent MODE --config FILE` in the foreground, as a
    /// child of the test; its output goes to a file in the temp dir.
    ///
    /// A director runs VRRP for real (raw sockets, the VIP on `eth0` as
    /// master), so it runs in a network namespace of its own with a veth
    /// `eth0` (this kernel has no `dummy`) carrying the golden config's
    /// address, never on this machine's interfaces. The namespace goes
    /// with the process; `exec` keeps the PID the test checks.
    fn spawn(&mut self, mode: &str, config: &Path) -> &mut Child {
        let out = File::create(self.path().join(format!("{mode}.out")))
            .expect("creating the output file");
        let args = ["agent", mode, "--config", config.to_str().unwrap()];
        let mut cmd = self.cmd(&args);
        if mode == "director" {
            cmd = Command::new("unshare");
            cmd.args(["--net", "sh", "-c"])
                .arg(
                    "ip link add eth0 type veth peer name eth0p && \
                     ip link set eth0p up && ip link set eth0 up && \
                     ip addr add 192.168.1.11/24 dev eth0 && exec \"$0\" \"$@\"",
                )
                .arg(LBDEPLOY)
                .args(args)
                .env(RUN_DIR_ENV, self.run_dir());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawning the agent");
        self.foreground.push(child);
        self.foreground.last_mut().unwrap()
    }

    fn query(&self) -> Option<Status> {
        status::query(&self.run_dir()).ok()
    }

    /// The status once the agent answers, within `START_TIMEOUT`.
    fn answering(&self) -> Status {
        wait_until(START_TIMEOUT, "the agent answers", || self.query())
    }

    fn supervisor(&self) -> Option<u32> {
        std::fs::read_to_string(self.run_dir().join("agent.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// Live processes whose command line mentions this host's directory.
    fn processes(&self) -> Vec<(u32, String)> {
        let needle = self.path().to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>()
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && alive(pid) {
                found.push((pid, cmdline));
            }
        }
        found
    }

    /// Nothing runs for this host and `stop` left nothing behind.
    fn assert_nothing_left(&self) {
        let left = wait_until(STOP_TIMEOUT, "processes exit", || {
            let p = self.processes();
            p.is_empty().then_some(p)
        });
        assert!(left.is_empty());
        assert!(!self.run_dir().join("agent.pid").exists(), "pid file left");
        assert!(!self.run_dir().join("agent.sock").exists(), "socket left");
    }
}

impl Drop for AgentHost {
    fn drop(&mut self) {
        let _ = self.cmd(&["agent", "stop"]).output();
        for child in &mut self.foreground {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (pid, _) in self.processes() {
            let _ =
                kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL);
        }
    }
}

#[test]
fn bad_config_exits_1_naming_the_file_and_starts_nothing() {
    let mut host = AgentHost::new("bad");
    let missing = host.path().join("missing.yml");
    let invalid = host.config("invalid.yml", INVALID);
    let realserver = host.config("rs.yml", REALSERVER);
    let cases: [(&str, &Path); 3] = [
        ("realserver", &missing),
        ("realserver", &invalid),
        // A real server's file is no director's configuration.
        ("director", &realserver),
    ];
    for (mode, file) in cases {
        let out = wait_exit(host.spawn(mode, file));
        assert_eq!(out.code(), Some(1), "{mode} {}", file.display());
        let text =
            std::fs::read_to_string(host.path().join(format!("{mode}.out")))
                .unwrap();
        assert!(text.starts_with("lbdeploy: error: "), "{text}");
        assert!(text.contains(&file.display().to_string()), "{text}");
        let start = host.run(&[
            "agent",
            "start",
            mode,
            "--config",
            file.to_str().unwrap(),
        ]);
        assert_eq!(start.status.code(), Some(1), "{}", describe(&start));
        let stderr = String::from_utf8_lossy(&start.stderr);
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
    assert!(!host.run_dir().exists(), "created before the config was valid");
    assert!(host.processes().is_empty(), "{:?}", host.processes());
}

#[test]
fn foreground_agent_serves_status_reloads_and_stops_on_sigterm() {
    let mut host = AgentHost::new("fg");
    let text = director_config();
    let config = host.config("agent.yml", &text);
    let pid = host.spawn("director", &config).id();

    let s = host.answering();
    assert_eq!(s.mode, Mode::Director);
    assert_eq!(s.pid, pid);
    assert_eq!(s.config, config);
    assert_eq!(s.config_sha256, sha256(&text));
    assert_eq!((s.reloads, s.last_reload_error.as_deref()), (0, None));
    assert!(s.healthy);
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));

    let out = host.run_ok(&["agent", "status"]);
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.starts_with("agent director running"), "{human}");
    let out = host.run_ok(&["--json", "agent", "status"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", describe(&out)));
    assert_eq!(json["mode"], "director");
    assert_eq!(json["last_reload_error"], serde_json::Value::Null);

    // A changed, valid file, by a plain SIGHUP as systemd's ExecReload.
    let changed = text.replace("priority: 120", "priority: 110");
    assert_ne!(changed, text);
    std::fs::write(&config, &changed).unwrap();
    signal(pid, Signal::HUP);
    let s = wait_until(Duration::from_secs(5), "the reload", || {
        host.query().filter(|s| s.reloads == 1)
    });
    assert_eq!(s.config_sha256, sha256(&changed));
    assert_eq!(s.last_reload_error, None);

    // An invalid file, by `agent reload` (no supervisor: it signals the
    // agent): rejected, the agent keeps the previous configuration.
    std::fs::write(&config, INVALID).unwrap();
    let out = host.run(&["agent", "reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", host.dump(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rejected the new configuration"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    let s = host.query().expect("still answering");
    assert_eq!(s.reloads, 2);
    assert_eq!(s.config_sha256, sha256(&changed));
    assert!(s.healthy);
    assert!(s.last_reload_error.is_some());
    host.run_ok(&["agent", "status"]);

    // The socket belongs to this agent: neither a second one nor `start`
    // takes it over.
    std::fs::write(&config, &changed).unwrap();
    let status = wait_exit(host.spawn("director", &config));
    assert_eq!(status.code(), Some(1));
    let out = host.run(&[
        "agent",
        "start",
        "director",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("already runs without lbdeploy's supervisor"),
        "{}",
        describe(&out)
    );
    assert_eq!(host.query().map(|s| s.pid), Some(pid));

    signal(pid, Signal::TERM);
    let status = wait_exit(&mut host.foreground[0]);
    assert_eq!(status.code(), Some(0));
    assert!(!host.run_dir().join("agent.sock").exists());
    let out = host.run(&["agent", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "lbdeploy: error: the agent is not running: cannot connect to {}",
            host.run_dir().join("agent.sock").display()
        )),
        "{stderr}"
    );
    host.assert_nothing_left();
}

#[test]
fn start_survives_the_session_that_ran_it() {
    let host = AgentHost::new("session");
    let config = host.config("rs.yml", REALSERVER);
    // Run `start` in a session of its own, as sshd does, and end that
    // session's process group with SIGHUP once `start` returns.
    let script = format!(
        "'{LBDEPLOY}' agent start realserver --config '{}'; \
         echo $? > '{}'; kill -HUP 0",
        config.display(),
        host.path().join("rc").display()
    );
    let out = Command::new("setsid")
        .args(["unshare", "-rn", "sh", "-c", ISOLATED, "sh", "-c", &script])
        .env(RUN_DIR_ENV, host.run_dir())
        .stdin(Stdio::null())
        .output()
        .expect("running setsid");
    let rc =
        std::fs::read_to_string(host.path().join("rc")).unwrap_or_default();
    assert_eq!(rc.trim(), "0", "{}", host.dump(&out));

    let supervisor = host.supervisor().expect("a pid file");
    assert!(alive(supervisor), "the supervisor died with the session");
    let sid = rustix::process::getsid(Pid::from_raw(supervisor as i32))
        .unwrap()
        .as_raw_nonzero()
        .get() as u32;
    assert_eq!(sid, supervisor, "the supervisor leads its own session");
    let s = host.answering();
    assert_eq!(s.mode, Mode::Realserver);
    assert_eq!(s.reloads, 0, "the session's SIGHUP reached the agent");

    // Starting again changes nothing.
    host.run_ok(&[
        "agent",
        "start",
        "realserver",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(host.supervisor(), Some(supervisor));
    assert_eq!(host.query().map(|s| s.pid), Some(s.pid));

    host.run_ok(&["agent", "stop"]);
    host.assert_nothing_left();
    // Stopping again is a no-op.
    host.run_ok(&["agent", "stop"]);
}

#[test]
fn supervisor_restarts_a_killed_agent() {
    let host = AgentHost::new("restart-killed");
    let config = host.config("rs.yml", REALSERVER);
    let cfg = config.to_str().unwrap();
    host.run_ok(&["agent", "start", "realserver", "--config", cfg]);
    let supervisor = host.supervisor().unwrap();
    let first = host.answering().pid;
    signal(first, Signal::KILL);
    // The restart delay, then as long as `start` allows an agent to come up.
    let second =
        wait_until(RESTART_DELAY + START_TIMEOUT, "a new agent", || {
            host.query().map(|s| s.pid).filter(|&p| p != first)
        });
    assert!(alive(second));
    assert_eq!(host.supervisor(), Some(supervisor));

    // Reload through the supervisor, which forwards SIGHUP.
    std::fs::write(&config, format!("{REALSERVER}# changed\n")).unwrap();
    host.run_ok(&["agent", "reload"]);
    let s = host.query().unwrap();
    assert_eq!((s.pid, s.reloads), (second, 1));
    assert_eq!(s.config_sha256, sha256(&format!("{REALSERVER}# changed\n")));

    host.run_ok(&["agent", "stop"]);
    host.assert_nothing_left();
}

/// Issue #16: an agent that keeps failing is retried forever, each wait
/// twice the last, and comes back by itself once its configuration is
/// good again.
#[test]
fn supervisor_backs_off_and_never_gives_up() {
    let host = AgentHost::new("backoff");
    let config = host.config("rs.yml", REALSERVER);
    let cfg = config.to_str().unwrap();
    host.run_ok(&["agent", "start", "realserver", "--config", cfg]);
    let supervisor = host.supervisor().unwrap();
    // Every restart now fails at once.
    std::fs::write(&config, INVALID).unwrap();
    let first = host.answering().pid;
    signal(first, Signal::KILL);
    let log =
        || std::fs::read_to_string(host.run_dir().join("agent.log")).unwrap();
    // Waits of 1, 2 and 4 s, and the start of each restart.
    let waits = RESTART_DELAY * (1 + 2 + 4) + START_TIMEOUT;
    wait_until(waits, "three restarts, each waiting longer", || {
        log().contains("restarting the agent in 4s").then_some(())
    });
    let text = log();
    let one = text.find("restarting the agent in 1s").expect("1 s first");
    let two = text.find("restarting the agent in 2s").expect("then 2 s");
    assert!(one < two, "{text}");
    assert!(!text.contains("giving up"), "{text}");
    assert_eq!(host.supervisor(), Some(supervisor));
    // Good again: the agent is back within the current wait (8 s) and a
    // start.
    std::fs::write(&config, REALSERVER).unwrap();
    let back =
        wait_until(RESTART_DELAY * 8 + START_TIMEOUT, "the agent", || {
            host.query().map(|s| s.pid)
        });
    assert_ne!(back, first);
    assert_eq!(host.supervisor(), Some(supervisor));
    host.run_ok(&["agent", "stop"]);
    host.assert_nothing_left();
}

#[test]
fn restart_gives_a_new_pid() {
    let host = AgentHost::new("restart");
    let config = host.config("rs.yml", REALSERVER);
    let cfg = config.to_str().unwrap();
    host.run_ok(&["agent", "start", "realserver", "--config", cfg]);
    let (supervisor, agent) = (host.supervisor().unwrap(), host.answering());
    host.run_ok(&["agent", "restart", "realserver", "--config", cfg]);
    let (supervisor2, agent2) = (host.supervisor().unwrap(), host.answering());
    assert_ne!(supervisor2, supervisor);
    assert_ne!(agent2.pid, agent.pid);
    assert!(!alive(supervisor) && !alive(agent.pid));
    host.run_ok(&["agent", "stop"]);
    host.assert_nothing_left();
}

#[test]
fn stop_removes_a_stale_pid_file_and_reload_needs_an_agent() {
    let host = AgentHost::new("stale");
    std::fs::create_dir_all(host.run_dir()).unwrap();
    // A PID that was a process and is gone now.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let pid_file = host.run_dir().join("agent.pid");
    std::fs::write(&pid_file, format!("{}\n", gone.id())).unwrap();
    host.run_ok(&["agent", "stop"]);
    assert!(!pid_file.exists());
    // A live process that is no supervisor (this test) is not signalled.
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    host.run_ok(&["agent", "stop"]);
    assert!(!pid_file.exists());

    let out = host.run(&["agent", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the agent is not running"),
        "{}",
        describe(&out)
    );
}

/// `--log-format json` reaches the agent through its supervisor: every
/// line of `agent.log`, the supervisor's and the agent's, is one JSON
/// object with a level and a message; by default every line is logfmt.
#[test]
fn agent_log_lines_are_json_or_logfmt_throughout() {
    for (format, json) in [("json", true), ("logfmt", false)] {
        let host = AgentHost::new(&format!("log-{format}"));
        let config = host.config("rs.yml", REALSERVER);
        let cfg = config.to_str().unwrap();
        let start = ["agent", "start", "realserver", "--config", cfg];
        host.run_ok(&[&start[..], &["--log-format", format]].concat());
        host.answering();
        host.run_ok(&["agent", "stop"]);
        let log = std::fs::read_to_string(host.run_dir().join("agent.log"))
            .expect("an agent.log");
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines.len() >= 2, "supervisor and agent both log:\n{log}");
        for line in lines {
            if json {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
                assert!(v["level"].is_string(), "{line}");
                assert!(v["message"].is_string(), "{line}");
            } else {
                assert!(line.starts_with("ts="), "{line}");
                assert!(line.contains(" level=") && line.contains(" msg="));
            }
        }
    }
}
