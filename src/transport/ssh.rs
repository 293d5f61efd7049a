//! SSH through the system OpenSSH client.
//!
//! [`Connection`] keeps one master connection per host (the `openssh`
//! crate's process multiplexer): the facts script, the upload and the
//! activation each cost one round trip over it instead of a handshake.
//! [`fresh`] deliberately bypasses every multiplexer: the confirmation after
//! an activation must prove that a *new* connection still gets through.
//!
//! Master connections persist for `PERSIST` after the command that opened
//! them (OpenSSH's `ControlPersist`, as Ansible does), under a directory of
//! this user's only (`~/.cache/lbdeploy/cp`, 0700): the next `plan` or
//! `apply` within that time reuses them and pays no handshake. Set
//! `LBDEPLOY_SSH_PERSIST=0` to close every connection at the end instead.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use openssh::{KnownHosts as Check, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::Target;
use super::remote::{self, Remote};
use crate::inventory::KnownHosts;

/// How long a handshake may take before the host counts as unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle master connection stays for the next command.
pub(crate) const PERSIST: Duration = Duration::from_secs(60);

/// How long a master that failed [`Connection::ensure`]'s probe may take
/// to close its socket before a new one is started in its place.
const MASTER_EXIT: Duration = Duration::from_secs(2);

/// Why a host could not be reached; each kind has its own remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectErrorKind {
    /// No TCP connection: down, firewalled, wrong address or port.
    Unreachable,
    /// The server refused every key.
    Authentication,
    /// The host key is unknown or changed.
    HostKey,
    /// Anything else `ssh` said.
    Other,
}

/// A failed connection to one host.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{target}: {reason} — {}", self.hint())]
pub struct ConnectError {
    /// What kind of failure.
    pub kind: ConnectErrorKind,
    /// `user@host[:port]`.
    pub target: String,
    /// What `ssh` said, one line.
    pub reason: String,
}

impl ConnectError {
    /// What the operator can do about it.
    pub(crate) fn hint(&self) -> &'static str {
        match self.kind {
            ConnectErrorKind::Unreachable => {
                "check that the host is up and that sshd listens on that \
                 address and port (`ssh.host`/`ssh.port` in the inventory)"
            }
            ConnectErrorKind::Authentication => {
                "check `ssh.user` and `ssh.identity_file`, and that the key is \
                 in the host's authorized_keys"
            }
            ConnectErrorKind::HostKey => {
                "the host key is not in known_hosts or has changed: verify the \
                 key out of band, then add it (or set `ssh.known_hosts: \
                 accept-new` for a first contact)"
            }
            ConnectErrorKind::Other => "run `ssh -v` to the host to see more",
        }
    }

    /// Sort what `ssh` printed into a kind.
    pub(crate) fn classify(target: &Target, ssh_said: &str) -> Self {
        let said = ssh_said.trim();
        let has = |needle: &str| said.contains(needle);
        let kind = if has("Host key verification failed")
            || has("IDENTIFICATION HAS CHANGED")
            || has("No ED25519 host key is known")
            || has("host key is known")
        {
            ConnectErrorKind::HostKey
        } else if has("Permission denied") || has("Too many authentication") {
            ConnectErrorKind::Authentication
        } else if has("Connection refused")
            || has("timed out")
            || has("No route to host")
            || has("Network is unreachable")
            || has("Could not resolve")
            || has("Connection closed")
            || has("Connection reset")
        {
            ConnectErrorKind::Unreachable
        } else {
            ConnectErrorKind::Other
        };
        let reason = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("Warning:"))
            .unwrap_or("ssh failed without a message")
            .trim_start_matches("failed to connect to the remote host: ")
            .trim_start_matches("ssh: ")
            .to_owned();
        Self { kind, target: target.display(), reason }
    }
}

/// What a remote command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard error as text, trimmed, for messages.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

/// A remote command could not be run (the connection broke).
#[derive(Debug, thiserror::Error)]
#[error("{target}: {what}: {source}")]
pub struct RunError {
    /// `user@host`.
    pub target: String,
    /// What was being run.
    pub what: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// A multiplexed SSH connection to one host.
#[derive(Debug)]
pub struct Connection {
    /// Replaced when a persistent master has gone ([`Connection::ensure`]).
    session: tokio::sync::RwLock<Session>,
    target: Target,
    /// Its master outlives this process (see [`PERSIST`]).
    persistent: bool,
}

impl Connection {
    /// Open the master connection.
    ///
    /// # Errors
    /// When `ssh` cannot connect, sorted by [`ConnectErrorKind`].
    pub async fn open(target: &Target) -> Result<Self, ConnectError> {
        not_an_option(target)?;
        match persist_dir() {
            Some(dir) => Self::open_persistent(target, &dir).await,
            None => Self::open_private(target).await,
        }
    }

    /// Reuse the persistent master for `target`, or start it.
    async fn open_persistent(
        target: &Target,
        dir: &Path,
    ) -> Result<Self, ConnectError> {
        let ctl = control_path(dir, target);
        // A live master accepts on its socket; a dead one (host rebooted,
        // connection cut) leaves the file behind, refusing. Connecting is
        // the whole check: `Session::check` would start an `ssh -O check`
        // process per host, about 6 ms of the controller's CPU each.
        let resume = async |ctl: &Path| {
            tokio::net::UnixStream::connect(ctl).await.ok()?;
            Some(Session::resume(ctl.into(), None))
        };
        if ctl.exists() {
            if let Some(session) = resume(&ctl).await {
                return Ok(Self::of(session, target, true));
            }
            // A master that died.
            let _ = std::fs::remove_file(&ctl);
        }
        let log = ctl.with_extension("log");
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-E").arg(&log).arg("-S").arg(&ctl).args(["-M", "-f", "-N"]);
        cmd.arg("-o").arg(format!("ControlPersist={}s", PERSIST.as_secs()));
        cmd.args(master_options(target));
        // `--`: ssh(1) reads options up to the destination; after `--` a
        // destination such as `-oProxyCommand=…` is only a (bad) host name.
        cmd.arg("--").arg(&target.destination);
        cmd.stdin(std::process::Stdio::null());
        let status = cmd.status().await.map_err(|e| ConnectError {
            kind: ConnectErrorKind::Other,
            target: target.display(),
            reason: format!("cannot run ssh: {e}"),
        })?;
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        match (status.success(), resume(&ctl).await) {
            (_, Some(session)) => Ok(Self::of(session, target, true)),
            // Another lbdeploy may have started the same master meanwhile;
            // `resume` above would then have found it.
            (_, None) => Err(ConnectError::classify(target, &said)),
        }
    }

    /// A master of this process's own, closed at the end.
    async fn open_private(target: &Target) -> Result<Self, ConnectError> {
        let mut b = SessionBuilder::default();
        b.user(target.user.clone())
            .port(target.port)
            .known_hosts_check(check(target.known_hosts))
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(std::env::temp_dir());
        if let Some(key) = &target.identity_file {
            b.keyfile(key);
        }
        if let Some(file) = &target.known_hosts_file {
            b.user_known_hosts_file(file);
        }
        match b.connect(&target.destination).await {
            Ok(session) => Ok(Self::of(session, target, false)),
            Err(e) => Err(ConnectError::classify(target, &error_text(&e))),
        }
    }

    fn of(session: Session, target: &Target, persistent: bool) -> Self {
        let session = tokio::sync::RwLock::new(session);
        Self { session, target: target.clone(), persistent }
    }

    /// The host this connection reaches.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Make sure the master answers before a host's changes begin. A
    /// persistent master exits once it has been idle for `PERSIST`:
    /// during an apply of many hosts, a host's turn may come longer than
    /// that after its facts were gathered, and a command that meets its
    /// master exiting dies with it ("the remote process has terminated",
    /// seen at 300 hosts). So `true` is run first; it restarts the idle
    /// time, and when it fails the master is gone or going: once its
    /// socket refuses (at most `MASTER_EXIT`), a new one is started.
    ///
    /// # Errors
    /// When the new master cannot connect.
    pub async fn ensure(&self) -> Result<(), ConnectError> {
        if !self.persistent {
            return Ok(()); // this process's own: it lives until `close`
        }
        let mut session = self.session.write().await;
        let alive = session.command("true").status().await;
        if alive.is_ok_and(|s| s.success()) {
            return Ok(());
        }
        let dir = persist_dir().ok_or_else(|| ConnectError {
            kind: ConnectErrorKind::Other,
            target: self.target.display(),
            reason: "the master connection is gone, and so is the \
                     directory for a new one"
                .into(),
        })?;
        let ctl = control_path(&dir, &self.target);
        let until = tokio::time::Instant::now() + MASTER_EXIT;
        while tokio::time::Instant::now() < until
            && tokio::net::UnixStream::connect(&ctl).await.is_ok()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(&ctl);
        let new = Self::open_persistent(&self.target, &dir).await?;
        *session = new.session.into_inner();
        Ok(())
    }

    /// Run `program args…` as root (through `ssh.become` when the SSH user
    /// is not root) with `stdin` as its standard input.
    ///
    /// # Errors
    /// When the connection breaks, or sudo refuses the command (a message
    /// naming the host and the remedy); a command that runs and fails is an
    /// `Ok` [`Output`] with its exit code.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: &[u8],
    ) -> Result<Output, RunError> {
        let fail = |source| RunError {
            target: self.target.display(),
            what: format!("running `{program}`"),
            source,
        };
        let remote = remote::build(&self.target, program, args, &|v| {
            std::env::var(v).ok()
        })
        .map_err(|e| fail(std::io::Error::other(e)))?;
        let session = self.session.read().await;
        let mut child = session
            .command(&remote.argv[0])
            .args(&remote.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| fail(io_error(e)))?;
        if let Some(mut input) = child.stdin().take() {
            // A command that exits without reading all of its input closes
            // the pipe; its exit status tells what happened.
            if let Some(line) = &remote.stdin_prefix {
                let _ = input.write_all(line.bytes()).await;
            }
            let _ = input.write_all(stdin).await;
            let _ = input.shutdown().await;
        }
        let out =
            child.wait_with_output().await.map_err(|e| fail(io_error(e)))?;
        settle(&self.target, &remote, out.status.code(), out.stdout, out.stderr)
            .map_err(|why| fail(std::io::Error::other(why)))
    }

    /// Close the master connection, or leave a persistent one for the
    /// next command.
    pub async fn close(self) {
        match self.persistent {
            true => drop(self.session.into_inner().detach()),
            false => drop(self.session.into_inner().close().await),
        }
    }
}

/// Run `program args…` as root (as [`Connection::run`] does) over a
/// connection of its own, with every multiplexer switched off.
///
/// # Errors
/// When the connection fails ([`ConnectError`], carried as the error's
/// source chain), `ssh` cannot be run, or the command cannot be built
/// (the sudo password is missing) or is refused by sudo (kind `Other`).
pub async fn fresh(
    target: &Target,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Output, ConnectError> {
    not_an_option(target)?;
    let other = |reason: String| ConnectError {
        kind: ConnectErrorKind::Other,
        target: target.display(),
        reason,
    };
    let remote =
        remote::build(target, program, args, &|v| std::env::var(v).ok())
            .map_err(other)?;
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
        // ssh keeps the first value of an option: this one wins over the
        // master's default below.
        .arg("-o")
        .arg(format!("ConnectTimeout={}", timeout.as_secs().max(1)))
        .args(master_options(target));
    cmd.arg("--").arg(&target.destination).arg(remote.line());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let run = async {
        let mut child = cmd.spawn()?;
        if let Some(mut input) = child.stdin.take() {
            if let Some(line) = &remote.stdin_prefix {
                let _ = input.write_all(line.bytes()).await;
            }
            drop(input);
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ConnectError {
            kind: ConnectErrorKind::Unreachable,
            target: target.display(),
            reason: format!("no answer within {}s", timeout.as_secs()),
        })?
        .map_err(|e| ConnectError {
            kind: ConnectErrorKind::Other,
            target: target.display(),
            reason: format!("cannot run ssh: {e}"),
        })?;
    // 255 is ssh's own failure; anything else is the remote command's.
    if out.status.code() == Some(255) {
        return Err(ConnectError::classify(
            target,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    settle(target, &remote, out.status.code(), out.stdout, out.stderr)
        .map_err(other)
}

/// The output of `remote` on `target`, its error output as
/// `remote::stderr` cleans it; `Err` with the message of [`remote::refusal`] when
/// sudo refused to run it.
fn settle(
    target: &Target,
    remote: &Remote,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
) -> Result<Output, String> {
    let said = String::from_utf8_lossy(&stderr);
    if let Some(why) = remote::refusal(target, code, &said) {
        return Err(why);
    }
    let stderr = match remote::stderr(target, remote, &said) {
        Cow::Borrowed(_) => stderr,
        Cow::Owned(hidden) => hidden.into_bytes(),
    };
    Ok(Output { code, stdout, stderr })
}

/// Refuse a destination or user that ssh could read as an option. The
/// `openssh` crate's builder (the private master) passes the destination
/// without `--`, so this is its only guard; validation refuses the same
/// inventories earlier, with the line.
fn not_an_option(target: &Target) -> Result<(), ConnectError> {
    let bad = |s: &str| s.is_empty() || s.starts_with('-');
    if bad(&target.destination) || bad(&target.user) {
        return Err(ConnectError {
            kind: ConnectErrorKind::Other,
            target: target.name.clone(),
            reason: "the SSH destination or user is empty or starts with \
                     `-`, which ssh would read as an option"
                .into(),
        });
    }
    Ok(())
}

/// The options of a master connection to `target` (besides the socket).
fn master_options(target: &Target) -> Vec<String> {
    let mut o: Vec<String> = [
        "-o",
        "BatchMode=yes",
        "-o",
        check(target.known_hosts).as_option(),
        "-o",
        "ServerAliveInterval=5",
    ]
    .map(String::from)
    .to_vec();
    o.push("-o".into());
    o.push(format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()));
    o.extend([
        "-p".into(),
        target.port.to_string(),
        "-l".into(),
        target.user.clone(),
    ]);
    if let Some(key) = &target.identity_file {
        o.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
        o.push(key.display().to_string());
    }
    if let Some(file) = &target.known_hosts_file {
        o.extend(["-o".into(), known_hosts_option(file)]);
    }
    o
}

/// Where persistent masters live: a directory only this user can enter;
/// `None` (no persistence) when it cannot be made so, or when
/// `LBDEPLOY_SSH_PERSIST=0`.
fn persist_dir() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::env::var("LBDEPLOY_SSH_PERSIST").is_ok_and(|v| v == "0") {
        return None;
    }
    let dir = std::path::PathBuf::from(std::env::var_os("HOME")?)
        .join(".cache/lbdeploy/cp");
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir);
    let meta = std::fs::metadata(&dir).ok()?;
    let mine = meta.uid() == rustix::process::geteuid().as_raw();
    (mine && meta.mode() & 0o077 == 0).then_some(dir)
}

/// The control socket of `target`'s persistent master in `dir`.
fn control_path(dir: &Path, target: &Target) -> std::path::PathBuf {
    dir.join(format!("c-{}", control_key(target)))
}

/// A short name for a master: the same destination, user, port, key and
/// host-key policy share one; anything different gets its own.
fn control_key(t: &Target) -> String {
    let text = format!(
        "{}\0{}\0{}\0{:?}\0{:?}\0{:?}",
        t.user,
        t.destination,
        t.port,
        t.identity_file,
        t.known_hosts,
        t.known_hosts_file
    );
    let h = crate::util::fnv::fnv1a(text.as_bytes());
    format!("{h:016x}")
}

fn known_hosts_option(file: &Path) -> String {
    format!("UserKnownHostsFile={}", file.display())
}

fn check(k: KnownHosts) -> Check {
    match k {
        KnownHosts::Strict => Check::Strict,
        KnownHosts::AcceptNew => Check::Add,
    }
}

trait AsOption {
    fn as_option(&self) -> &'static str;
}

impl AsOption for Check {
    fn as_option(&self) -> &'static str {
        match self {
            Check::Strict => "StrictHostKeyChecking=yes",
            Check::Add => "StrictHostKeyChecking=accept-new",
            Check::Accept => "StrictHostKeyChecking=no",
        }
    }
}

/// The whole message chain of an `openssh` error: the crate puts what `ssh`
/// printed in the source.
fn error_text(e: &openssh::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn io_error(e: openssh::Error) -> std::io::Error {
    std::io::Error::other(error_text(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            name: "rs01".into(),
            destination: "10.0.0.21".into(),
            user: "root".into(),
            port: 22,
            identity_file: None,
            known_hosts: KnownHosts::Strict,
            known_hosts_file: None,
            become_: crate::inventory::Become::None,
            become_password_env: None,
        }
    }

    #[test]
    fn classifies_what_ssh_says() {
        let cases = [
            (
                "ssh: connect to host 10.0.0.21 port 22: Connection refused",
                ConnectErrorKind::Unreachable,
            ),
            (
                "ssh: connect to host 10.0.0.21 port 22: Connection timed out",
                ConnectErrorKind::Unreachable,
            ),
            (
                "root@10.0.0.21: Permission denied (publickey).",
                ConnectErrorKind::Authentication,
            ),
            (
                "No ED25519 host key is known for 10.0.0.21 and you have \
                 requested strict checking.\nHost key verification failed.",
                ConnectErrorKind::HostKey,
            ),
            ("something new", ConnectErrorKind::Other),
        ];
        for (said, kind) in cases {
            let e = ConnectError::classify(&target(), said);
            assert_eq!(e.kind, kind, "{said}");
        }
    }

    #[test]
    fn masters_are_shared_only_by_identical_targets() {
        let a = target();
        let mut b = target();
        assert_eq!(control_key(&a), control_key(&b));
        b.port = 2222;
        assert_ne!(control_key(&a), control_key(&b));
        let mut c = target();
        c.user = "deploy".into();
        assert_ne!(control_key(&a), control_key(&c));
        assert_eq!(control_key(&a).len(), 16);
    }

    /// The real ssh, no server needed: an option-like destination is
    /// refused before ssh runs, and where ssh does run, `--` makes it a
    /// host name (this command line without `--` runs the ProxyCommand).
    #[tokio::test]
    async fn an_option_like_destination_never_reaches_ssh_as_an_option() {
        let mark = std::env::temp_dir()
            .join(format!("lbd-ssh-dash-{}", std::process::id()));
        let mut t = target();
        t.destination = format!("-oProxyCommand=touch {}", mark.display());
        let e =
            fresh(&t, "true", &[], Duration::from_secs(5)).await.unwrap_err();
        assert!(e.reason.contains("starts with `-`"), "{e}");
        assert!(Connection::open(&t).await.is_err());
        let out = tokio::process::Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "--"])
            .arg(&t.destination)
            .arg("true")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(255));
        assert!(!mark.exists(), "ssh ran the ProxyCommand");
        t.destination = "10.0.0.21".into();
        t.user = "-lroot".into();
        assert!(fresh(&t, "true", &[], Duration::from_secs(5)).await.is_err());
    }

    #[test]
    fn message_names_host_reason_and_hint() {
        let e = ConnectError::classify(
            &target(),
            "Warning: something\nroot@10.0.0.21: Permission denied (publickey).",
        );
        assert_eq!(
            e.to_string(),
            format!(
                "root@10.0.0.21: root@10.0.0.21: Permission denied \
                 (publickey). — {}",
                e.hint()
            )
        );
    }
}
