//! `lbdeploy lab demo`: the whole story in one command, for a person to
//! watch — the lab comes up, the controller plans and applies the
//! inventory, the client's requests go through the VIP, a real server dies
//! and leaves the pool, the master director dies and the backup takes
//! over, everything comes back, and the lab goes away (unless `--keep`).
//!
//! Every step runs what an operator would run (`lbdeploy plan/apply` on the
//! controller, `curl` on the client, `kill` or `systemctl` on a host)
//! through `lab exec`, and checks the outcome against a bound from the
//! configuration (check timing, VRRP's Master_Down_Interval); the demo
//! exits 0 only if every step behaved.
//!
//! Hosts act as their init expects ([`Acts`]): on namespace hosts the web
//! server is a process to kill and start, and the master's agent dies with
//! its supervisor, so the backup takes over; on systemd hosts the web
//! server is a unit to stop and start (killed, systemd would restart it),
//! and a killed agent is the unit's business: `ExecStopPost` removes what
//! it held, `Restart=` brings it back, and it resumes as master without a
//! failover when it is back fast (README, "A fast restart is no
//! failover").

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::HostInit;
use super::machine::responder_unit;
use crate::agent::check::health::{Timing, down_within, up_within};
use crate::agent::vrrp::fsm::master_down_interval;
use crate::agent::vrrp::packet::Version;
use crate::inventory::{Inventory, effective_priority};

/// A demo run against one lab.
pub(crate) struct Demo<'a> {
    exe: PathBuf,
    inventory: PathBuf,
    state_dir: PathBuf,
    inv: &'a Inventory,
    talk: &'a mut dyn Write,
    step: usize,
    acts: Acts,
}

/// The steps, for the `[n/N]` counter.
const STEPS: usize = 7;

impl<'a> Demo<'a> {
    /// A demo of `inv` (read from `inventory`) in the lab at `state_dir`,
    /// whose directors and real servers run `init`.
    ///
    /// # Errors
    /// When this executable cannot be found.
    pub fn new(
        inventory: &Path,
        inv: &'a Inventory,
        state_dir: &Path,
        init: HostInit,
        talk: &'a mut dyn Write,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            exe: std::env::current_exe()?,
            inventory: std::path::absolute(inventory)?,
            state_dir: std::path::absolute(state_dir)?,
            inv,
            talk,
            step: 0,
            acts: Acts(init),
        })
    }

    fn say(&mut self, what: &str) {
        self.step += 1;
        let _ = write!(self.talk, "[{}/{STEPS}] {what} ... ", self.step);
        let _ = self.talk.flush();
    }

    fn done(&mut self, result: &str) {
        let _ = writeln!(self.talk, "{result}");
    }

    /// `sh -c cmd` inside lab host `host`.
    fn exec(&self, host: &str, cmd: &str) -> anyhow::Result<Output> {
        Command::new(&self.exe)
            .arg("-q")
            .arg("lab")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["exec", host, "--", "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .context("running lbdeploy lab exec")
    }

    fn exec_ok(&self, host: &str, cmd: &str) -> anyhow::Result<String> {
        let out = self.exec(host, cmd)?;
        if !out.status.success() {
            bail!(
                "on {host}: `{cmd}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn lbdeploy(&self, args: &str) -> anyhow::Result<Output> {
        let inv = self.inventory.display();
        self.exec("controller", &format!("lbdeploy -q -i {inv} {args}"))
    }

    /// Run the demo on a lab that is up: each step below in turn, each
    /// checked against its bound.
    ///
    /// # Errors
    /// The first step that did not behave, saying what was seen.
    pub fn run(&mut self) -> anyhow::Result<()> {
        let svc = self
            .inv
            .virtual_services
            .first()
            .context("the demo needs a virtual service in the inventory")?;
        let port = u32::from(svc.first_port());
        let url = format!("http://{}:{port}/", svc.vip);
        let note = match svc.persistence_timeout {
            Some(_) => {
                " — persistence_timeout keeps one client on one real server"
            }
            None => "",
        };
        self.plan_and_apply()?;
        let (master, backup, victim) = self.traffic(&url, note)?;
        self.status("after the apply", true)?;
        self.real_server_fails(&url, port, &victim)?;
        let mdi = match self.acts.0 {
            HostInit::Namespace => self.master_fails(&url, &master, &backup)?,
            HostInit::Systemd => {
                self.master_restarts(&url, &master, &backup)?
            }
        };
        self.status("after the failover", false)?;
        self.recover(port, &master, &victim, mdi)?;
        self.say("second plan finds nothing to change");
        let plan = self.lbdeploy("plan --detailed-exitcode")?;
        if !plan.status.success() {
            bail!("{}", String::from_utf8_lossy(&plan.stdout));
        }
        self.done("0 changes");
        Ok(())
    }

    /// Steps 1 and 2: a plan with changes, then an apply that makes them.
    fn plan_and_apply(&mut self) -> anyhow::Result<()> {
        self.say("plan on the controller");
        let plan = self.lbdeploy("plan --detailed-exitcode")?;
        let text = String::from_utf8_lossy(&plan.stdout);
        let summary = text.lines().last().unwrap_or("").to_owned();
        if plan.status.code() != Some(2) {
            bail!("expected changes (exit 2), got {}: {text}", plan.status);
        }
        self.done(&summary);

        self.say("apply on the controller (real servers, backup, master)");
        let out = self.lbdeploy("apply --yes")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "apply failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.done(text.lines().last().unwrap_or(""));
        Ok(())
    }

    /// Step 3: the client's requests through the VIP; the master, the
    /// backup and the real server that answered.
    fn traffic(
        &mut self,
        url: &str,
        note: &str,
    ) -> anyhow::Result<(String, String, String)> {
        self.say(&format!("100 requests from the client to {url}"));
        let (master, backup) = self.directors()?;
        self.wait(Duration::from_secs(10), || self.holds_vip(&master))?;
        self.wait(Duration::from_secs(10), || self.answered(url))?;
        let seen = self.spread(url, 40000, 100)?;
        let failed = seen.get("").copied().unwrap_or(0);
        if failed > 0 {
            bail!("{failed} of 100 requests failed: {seen:?}");
        }
        self.done(&format!("{} (via {master}){note}", describe(&seen)));
        let victim = seen.keys().next().cloned().context("nobody answered")?;
        Ok((master, backup, victim))
    }

    /// Step 4: `victim`'s web server stops; its health check takes it out
    /// of the pool within the check's bound.
    fn real_server_fails(
        &mut self,
        url: &str,
        port: u32,
        victim: &str,
    ) -> anyhow::Result<()> {
        self.say(&format!("stop {victim}'s web server"));
        let (bound, _) = self.check_bounds(victim)?;
        self.exec_ok(victim, &self.acts.stop_web(port))?;
        let took = self.wait(bound, || {
            self.spread(url, 41000, 1)
                .is_ok_and(|s| s.keys().all(|k| !k.is_empty() && *k != victim))
        })?;
        let after = self.spread(url, 41100, 50)?;
        if after.contains_key("") || after.contains_key(victim) {
            bail!("after {victim} left the pool: {after:?}");
        }
        self.done(&format!(
            "out of the pool after {:.1} s (bound {:.0} s); then {}",
            took.as_secs_f64(),
            bound.as_secs_f64(),
            describe(&after)
        ));
        Ok(())
    }

    /// Step 5: the master's agent is killed; the backup takes the VIP
    /// within Master_Down_Interval, which is returned.
    fn master_fails(
        &mut self,
        url: &str,
        master: &str,
        backup: &str,
    ) -> anyhow::Result<Duration> {
        self.say(&format!("kill -9 the master's agent ({master})"));
        let mdi = self.master_down_interval(backup);
        self.exec_ok(master, &kill_here("[l]bdeploy agent"))?;
        let start = Instant::now();
        self.wait(mdi + Duration::from_secs(1), || self.holds_vip(backup))?;
        let vip_moved = start.elapsed();
        self.wait(Duration::from_secs(10), || self.answered(url))?;
        let outage = start.elapsed();
        self.done(&format!(
            "VIP on {backup} after {:.2} s (Master_Down_Interval {:.2} s), \
             client answered again after {:.2} s",
            vip_moved.as_secs_f64(),
            mdi.as_secs_f64(),
            outage.as_secs_f64()
        ));
        Ok(mdi)
    }

    /// Step 5 on systemd hosts: the master's agent is killed; the unit's
    /// `ExecStopPost` removes its VIP within [`RELEASED_WITHIN`], systemd
    /// starts it again after `RestartSec=`, and it is master again: at
    /// once when it is back within two advert intervals of the release
    /// (no failover), else after the backup's takeover and a preemption.
    fn master_restarts(
        &mut self,
        url: &str,
        master: &str,
        backup: &str,
    ) -> anyhow::Result<Duration> {
        self.say(&format!(
            "kill -9 the master's agent ({master}); systemd cleans up and \
             restarts it"
        ));
        let mdi = self.master_down_interval(backup);
        let vip = self.inv.virtual_services[0].vip.to_string();
        let out = self.exec_ok(
            master,
            &released_after(&self.acts.crash_agent(), &vip, RELEASED_WITHIN),
        )?;
        let released = out
            .trim()
            .parse()
            .map(Duration::from_micros)
            .with_context(|| format!("reading the release time {out:?}"))?;
        if released > RELEASED_WITHIN {
            bail!(
                "{master} still held the VIP or its data plane {:.2} s after \
                 its agent died",
                released.as_secs_f64()
            );
        }
        let mut backup_held = false;
        let back = released
            + self.wait(RESTART_SEC + mdi + Duration::from_secs(5), || {
                backup_held |= self.holds_vip(backup);
                self.holds_vip(master)
            })?;
        self.wait(Duration::from_secs(10), || self.answered(url))?;
        let resumed = self
            .exec_ok(
                master,
                "journalctl -u lbdeploy-agent -o cat --no-pager | \
                 grep -c 'resuming as master'; true",
            )?
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            > 0;
        let how = match (resumed, backup_held) {
            (true, false) => "resumed at once, no failover",
            (_, true) => "after the backup's takeover",
            (false, false) => "re-elected",
        };
        self.done(&format!(
            "VIP released after {:.2} s (ExecStopPost), {master} master \
             again after {:.2} s ({how}), client answered again",
            released.as_secs_f64(),
            back.as_secs_f64(),
        ));
        Ok(mdi)
    }

    /// The backup's Master_Down_Interval for the first VRRP instance.
    fn master_down_interval(&self, backup: &str) -> Duration {
        let vi = &self.inv.vrrp_instances[0];
        let backup_priority = self
            .inv
            .directors
            .iter()
            .find(|d| d.name == backup)
            .map_or(100, |d| effective_priority(vi, d) as u8);
        master_down_interval(
            if vi.version == 3 { Version::V3 } else { Version::V2 },
            backup_priority,
            vi.advert_int.get(),
        )
    }

    /// Step 6: the web server and the master's agent start again; the
    /// master takes the VIP back and the real server rejoins the pool.
    fn recover(
        &mut self,
        port: u32,
        master: &str,
        victim: &str,
        mdi: Duration,
    ) -> anyhow::Result<()> {
        self.say("bring everything back");
        self.exec_ok(victim, &self.acts.start_web(port, victim))?;
        self.exec_ok(master, &self.acts.start_agent())?;
        self.wait(mdi + Duration::from_secs(5), || self.holds_vip(master))?;
        let (_, bound) = self.check_bounds(victim)?;
        self.wait(bound, || self.pool_has(master, victim))?;
        self.done(&format!(
            "{master} is master again, {victim} back in the pool"
        ));
        Ok(())
    }

    /// Show `lbdeploy status` as an operator sees it `when`. With
    /// `all_well` the cluster has settled (the checks see every real
    /// server) and status must say so (exit 0) within [`STATUS_SETTLES`];
    /// otherwise what it warns of is shown as it is.
    fn status(&mut self, when: &str, all_well: bool) -> anyhow::Result<()> {
        let start = Instant::now();
        let out = loop {
            let out = self.lbdeploy("status")?;
            let settled = out.status.code() == Some(0);
            if settled || !all_well || start.elapsed() > STATUS_SETTLES {
                break out;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if all_well && out.status.code() != Some(0) {
            bail!("`lbdeploy status` {when} is not all well: {text}");
        }
        let _ = writeln!(self.talk, "      lbdeploy status, {when}:");
        for line in text.lines() {
            let _ = writeln!(self.talk, "        {line}");
        }
        Ok(())
    }

    /// The master (highest priority for the first instance) and a backup.
    fn directors(&self) -> anyhow::Result<(String, String)> {
        let vi = self.inv.vrrp_instances.first().context("no VRRP instance")?;
        let mut d: Vec<_> = self.inv.directors.iter().collect();
        d.sort_by_key(|d| std::cmp::Reverse(effective_priority(vi, d)));
        match d.as_slice() {
            [m, b, ..] => Ok((m.name.clone(), b.name.clone())),
            _ => bail!("the demo needs two directors"),
        }
    }

    fn holds_vip(&self, host: &str) -> bool {
        let vip = &self.inv.virtual_services[0].vip;
        self.exec(host, "ip -o addr show").is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains(&format!(" {vip}/"))
        })
    }

    fn answered(&self, url: &str) -> bool {
        self.exec("client", &format!("curl -sf --max-time 1 {url}"))
            .is_ok_and(|o| o.status.success())
    }

    /// Whether the master's agent counts `rs` as up.
    fn pool_has(&self, master: &str, rs: &str) -> bool {
        let Some(addr) = self
            .inv
            .real_servers
            .iter()
            .find(|r| r.name == rs)
            .map(|r| r.address.addr)
        else {
            return false;
        };
        self.exec(master, "lbdeploy agent status --json").is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .contains(&format!("\"{addr}\": true"))
        })
    }

    /// Who answered `count` requests from ports `base…` ("" = failed).
    fn spread(
        &self,
        url: &str,
        base: u16,
        count: u16,
    ) -> anyhow::Result<BTreeMap<String, usize>> {
        let out = self.exec_ok(
            "client",
            &format!(
                "for p in $(seq {base} {}); do curl -s --max-time 1 --local-port $p {url} || echo; done",
                base + count - 1
            ),
        )?;
        let mut seen = BTreeMap::new();
        for line in out.lines() {
            *seen.entry(line.trim().to_owned()).or_default() += 1;
        }
        Ok(seen)
    }

    /// How long the checks of real server `host` may take to notice it
    /// going down, and coming back: the protocol's bounds plus one
    /// `delay_loop` and two seconds of slack.
    fn check_bounds(&self, host: &str) -> anyhow::Result<(Duration, Duration)> {
        let svc = &self.inv.virtual_services[0];
        let rs = svc
            .real_servers
            .iter()
            .find(|r| r.host.as_deref() == Some(host))
            .with_context(|| format!("{host} is not in the first service"))?;
        let Some(check) = rs.checks.first() else {
            bail!("{host} has no health check, so it never leaves the pool")
        };
        let c = check.timing();
        let t = Timing::new(svc.delay_loop.get(), c);
        let slack = t.delay_loop + Duration::from_secs(2);
        Ok((down_within(t, c.timeout.get()) + slack, up_within(t) + slack))
    }

    /// Poll `cond` until it holds; how long that took.
    fn wait(
        &self,
        bound: Duration,
        mut cond: impl FnMut() -> bool,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > bound {
                bail!("not within {:.1} s", bound.as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(start.elapsed())
    }
}

/// How soon a host whose agent died must hold nothing of it: the unit's
/// `ExecStopPost` runs at once and removes a few addresses and one table.
const RELEASED_WITHIN: Duration = Duration::from_secs(1);

/// How long after the traffic flows `lbdeploy status` may take to see the
/// whole cluster well: every director's checks up on every real server
/// (one check round) and every agent's report fresh.
const STATUS_SETTLES: Duration = Duration::from_secs(15);

/// The unit's `RestartSec=` (templates/lbdeploy-agent.service.j2): how
/// long systemd waits before it starts a dead agent again.
const RESTART_SEC: Duration = Duration::from_secs(1);

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
    /// what it says.
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

/// A shell command that runs `crash` and prints how many microseconds
/// later neither `vip` nor `table netdev lbdeploy` was left on the host,
/// measured inside it every 5 ms; it gives up at twice `bound`.
fn released_after(crash: &str, vip: &str, bound: Duration) -> String {
    let give_up = 2 * bound.as_nanos();
    format!(
        "s=$(date +%s%N); {crash}; \
         while ip -o addr show | grep -q ' {vip}/' || \
               nft list tables netdev 2>/dev/null | \
                 grep -q 'table netdev lbdeploy$'; do \
           sleep 0.005; \
           [ $(( $(date +%s%N) - s )) -gt {give_up} ] && break; \
         done; echo $(( ($(date +%s%N) - s) / 1000 ))"
    )
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

fn describe(seen: &BTreeMap<String, usize>) -> String {
    seen.iter()
        .map(|(who, n)| match who.as_str() {
            "" => format!("{n} failed"),
            w => format!("{w} {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
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

    #[test]
    fn the_release_is_timed_inside_the_host_and_gives_up() {
        let cmd = released_after("kill -9 1", "10.0.0.200", RELEASED_WITHIN);
        assert!(cmd.starts_with("s=$(date +%s%N); kill -9 1; "), "{cmd}");
        assert!(cmd.contains("grep -q ' 10.0.0.200/'"), "{cmd}");
        assert!(cmd.contains("-gt 2000000000 ] && break"), "{cmd}");
    }
}
