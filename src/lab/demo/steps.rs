//! What both of the demo's stories are made of: a [`Demo`] runs commands
//! in lab hosts as an operator would (`lab exec`, `lbdeploy` on the
//! controller, `curl` on the client), waits for conditions within bounds,
//! counts who answered the client, reads the check bounds from the
//! inventory, and tells each step; the steps the stories share (plan and
//! apply, a real server failing, `lbdeploy status`, the second plan) are
//! here too. The stories themselves are `vrrp` and `bgp`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::acts::Acts;
use crate::agent::check::health::{Timing, down_within, up_within};
use crate::inventory::{Announce, Inventory, VirtualService};
use crate::lab::HostInit;

/// A demo run against one lab.
pub(crate) struct Demo<'a> {
    exe: PathBuf,
    inventory: PathBuf,
    state_dir: PathBuf,
    /// The inventory the lab was built from.
    pub(super) inv: &'a Inventory,
    /// Which story this inventory tells.
    pub(super) story: Story,
    /// The service the story sends the client's requests to: the first
    /// one announced the story's way.
    pub(super) svc: &'a VirtualService,
    talk: &'a mut dyn Write,
    step: usize,
    /// How the directors and real servers are acted on.
    pub(super) acts: Acts,
}

/// The steps of either story, for the `[n/N]` counter.
const STEPS: usize = 7;

/// How long after the traffic flows `lbdeploy status` may take to see the
/// whole cluster well: every director's checks up on every real server
/// (one check round) and every agent's report fresh.
const STATUS_SETTLES: Duration = Duration::from_secs(15);

/// The story an inventory tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Story {
    /// One VRRP master holds the VIP and a backup takes it over.
    Vrrp,
    /// Every director announces the VIP over BGP and the router spreads
    /// flows over them; one dies and the router drops it.
    Bgp,
}

impl Story {
    /// The active-active story when every VIP is announced over BGP, else
    /// the VRRP one.
    pub(super) fn of(inv: &Inventory) -> Self {
        let services = &inv.virtual_services;
        match !services.is_empty()
            && services.iter().all(|s| s.announce == Announce::Bgp)
        {
            true => Story::Bgp,
            false => Story::Vrrp,
        }
    }

    /// How the services this story follows are announced.
    fn announce(self) -> Announce {
        match self {
            Story::Vrrp => Announce::Vrrp,
            Story::Bgp => Announce::Bgp,
        }
    }
}

impl<'a> Demo<'a> {
    /// A demo of `inv` (read from `inventory`) in the lab at `state_dir`,
    /// whose directors and real servers run `init`.
    ///
    /// # Errors
    /// When this executable cannot be found, or the inventory has no
    /// service for the story it tells.
    pub fn new(
        inventory: &Path,
        inv: &'a Inventory,
        state_dir: &Path,
        init: HostInit,
        talk: &'a mut dyn Write,
    ) -> anyhow::Result<Self> {
        let story = Story::of(inv);
        let svc = inv
            .virtual_services
            .iter()
            .find(|s| s.announce == story.announce())
            .context("the demo needs a virtual service in the inventory")?;
        Ok(Self {
            exe: std::env::current_exe()?,
            inventory: std::path::absolute(inventory)?,
            state_dir: std::path::absolute(state_dir)?,
            inv,
            story,
            svc,
            talk,
            step: 0,
            acts: Acts(init),
        })
    }

    /// Begin the next step, saying what it does.
    pub(super) fn say(&mut self, what: &str) {
        self.step += 1;
        let _ = write!(self.talk, "[{}/{STEPS}] {what} ... ", self.step);
        let _ = self.talk.flush();
    }

    /// End the step, saying how it went.
    pub(super) fn done(&mut self, result: &str) {
        let _ = writeln!(self.talk, "{result}");
    }

    /// The lab command running `sh -c cmd` inside lab host `host`.
    fn lab_exec(&self, host: &str, cmd: &str) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("-q")
            .arg("lab")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["exec", host, "--", "sh", "-c", cmd])
            .stdin(Stdio::null());
        c
    }

    /// `sh -c cmd` inside lab host `host`.
    pub(super) fn exec(&self, host: &str, cmd: &str) -> anyhow::Result<Output> {
        self.lab_exec(host, cmd).output().context("running lbdeploy lab exec")
    }

    /// [`Demo::exec`], which must succeed; its stdout.
    pub(super) fn exec_ok(
        &self,
        host: &str,
        cmd: &str,
    ) -> anyhow::Result<String> {
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

    /// Start `sh -c cmd` inside `host` and return once it has printed
    /// its first line, `ready`: a probe that runs while the demo acts.
    pub(super) fn start(
        &self,
        host: &str,
        cmd: &str,
    ) -> anyhow::Result<Background> {
        let mut child = self
            .lab_exec(host, cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running lbdeploy lab exec")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut running = Background {
            host: host.to_owned(),
            child,
            out: BufReader::new(stdout),
        };
        let mut first = String::new();
        running.out.read_line(&mut first)?;
        if first.trim() != "ready" {
            let _ = running.child.kill();
            let _ = running.child.wait();
            bail!("on {host}: the probe did not start: {first:?}");
        }
        Ok(running)
    }

    /// `lbdeploy -q -i INVENTORY args` on the controller.
    pub(super) fn lbdeploy(&self, args: &str) -> anyhow::Result<Output> {
        let inv = self.inventory.display();
        self.exec("controller", &format!("lbdeploy -q -i {inv} {args}"))
    }

    /// The story's service's first port, and its URL.
    pub(super) fn target(&self) -> (u32, String) {
        let port = u32::from(self.svc.first_port());
        (port, format!("http://{}:{port}/", self.svc.vip))
    }

    /// Steps 1 and 2: a plan with changes, then an apply that makes them,
    /// in the order `order` says.
    pub(super) fn plan_and_apply(&mut self, order: &str) -> anyhow::Result<()> {
        self.say("plan on the controller");
        let plan = self.lbdeploy("plan --detailed-exitcode")?;
        let text = String::from_utf8_lossy(&plan.stdout);
        let summary = text.lines().last().unwrap_or("").to_owned();
        if plan.status.code() != Some(2) {
            bail!("expected changes (exit 2), got {}: {text}", plan.status);
        }
        self.done(&summary);

        self.say(&format!("apply on the controller ({order})"));
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

    /// Step 4: `victim`'s web server stops; its health check takes it out
    /// of the pool within the check's bound — in the pool of every one of
    /// `directors` (each checks for itself), and for the client.
    pub(super) fn real_server_fails(
        &mut self,
        url: &str,
        port: u32,
        victim: &str,
        directors: &[String],
    ) -> anyhow::Result<()> {
        self.say(&format!("stop {victim}'s web server"));
        let (bound, _) = self.check_bounds(victim)?;
        self.exec_ok(victim, &self.acts.stop_web(port))?;
        let took = self.wait(bound, || {
            directors.iter().all(|d| self.pool_is(d, victim, false))
                && self.spread(url, 41000, 1).is_ok_and(|s| {
                    s.keys().all(|k| !k.is_empty() && *k != victim)
                })
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

    /// Step 7: a second plan finds nothing to change.
    pub(super) fn second_plan(&mut self) -> anyhow::Result<()> {
        self.say("second plan finds nothing to change");
        let plan = self.lbdeploy("plan --detailed-exitcode")?;
        if !plan.status.success() {
            bail!("{}", String::from_utf8_lossy(&plan.stdout));
        }
        self.done("0 changes");
        Ok(())
    }

    /// Show `lbdeploy status` as an operator sees it `when`. With
    /// `all_well` the cluster has settled (the checks see every real
    /// server) and status must say so (exit 0) within [`STATUS_SETTLES`];
    /// otherwise what it warns of is shown as it is.
    pub(super) fn status(
        &mut self,
        when: &str,
        all_well: bool,
    ) -> anyhow::Result<()> {
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

    /// Whether the client gets an answer from `url`.
    pub(super) fn answered(&self, url: &str) -> bool {
        self.exec("client", &format!("curl -sf --max-time 1 {url}"))
            .is_ok_and(|o| o.status.success())
    }

    /// `lbdeploy agent status --json` on `host`, parsed; `None` when the
    /// agent does not answer.
    pub(super) fn agent_status(&self, host: &str) -> Option<serde_json::Value> {
        let out = self.exec(host, "lbdeploy agent status --json").ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Whether director `director`'s agent counts `rs` as up (`up`) or
    /// as down (`!up`).
    pub(super) fn pool_is(&self, director: &str, rs: &str, up: bool) -> bool {
        let Some(addr) = self
            .inv
            .real_servers
            .iter()
            .find(|r| r.name == rs)
            .map(|r| r.address.addr)
        else {
            return false;
        };
        self.exec(director, "lbdeploy agent status --json").is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .contains(&format!("\"{addr}\": {up}"))
        })
    }

    /// Who answered `count` requests from the client's ports `base…`
    /// ("" = failed).
    pub(super) fn spread(
        &self,
        url: &str,
        base: u16,
        count: u16,
    ) -> anyhow::Result<BTreeMap<String, usize>> {
        self.spread_from(None, url, base, count)
    }

    /// [`Demo::spread`], from the client's address `from` when given.
    pub(super) fn spread_from(
        &self,
        from: Option<&str>,
        url: &str,
        base: u16,
        count: u16,
    ) -> anyhow::Result<BTreeMap<String, usize>> {
        let from =
            from.map(|a| format!(" --interface {a}")).unwrap_or_default();
        let out = self.exec_ok(
            "client",
            &format!(
                "for p in $(seq {base} {}); do \
                 curl -s --max-time 1{from} --local-port $p {url} || echo; \
                 done",
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
    pub(super) fn check_bounds(
        &self,
        host: &str,
    ) -> anyhow::Result<(Duration, Duration)> {
        let svc = self.svc;
        let rs = svc
            .real_servers
            .iter()
            .find(|r| r.host.as_deref() == Some(host))
            .with_context(|| format!("{host} is not in the demo's service"))?;
        let Some(check) = rs.checks.first() else {
            bail!("{host} has no health check, so it never leaves the pool")
        };
        let c = check.timing();
        let t = Timing::new(svc.delay_loop.get(), c);
        let slack = t.delay_loop + Duration::from_secs(2);
        Ok((down_within(t, c.timeout.get()) + slack, up_within(t) + slack))
    }

    /// Poll `cond` until it holds; how long that took.
    pub(super) fn wait(
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

/// A command running in a lab host while the demo acts ([`Demo::start`]).
pub(super) struct Background {
    host: String,
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Background {
    /// Wait for it to end; what it printed after `ready`.
    ///
    /// # Errors
    /// When it failed.
    pub(super) fn finish(mut self) -> anyhow::Result<String> {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest)?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("on {}: the probe failed ({status}): {rest}", self.host);
        }
        Ok(rest)
    }
}

impl Drop for Background {
    /// A probe the demo gave up on does not outlive it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Who answered how often, for a person: `rs01 60, rs02 40, 1 failed`.
pub(super) fn describe(seen: &BTreeMap<String, usize>) -> String {
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

    fn inventory(announces: &[&str]) -> Inventory {
        let services: String = announces
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "  - {{ vip: 10.20.0.{}, port: 80, scheduler: mh, \
                     announce: {a}, real_servers: [] }}\n",
                    i + 1
                )
            })
            .collect();
        let yaml = format!(
            "cluster: c\ndirectors: []\nreal_servers: []\n\
             virtual_services:\n{services}"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn the_story_is_bgp_only_when_every_vip_is_announced_over_bgp() {
        assert_eq!(Story::of(&inventory(&["bgp", "bgp"])), Story::Bgp);
        assert_eq!(Story::of(&inventory(&["vrrp", "bgp"])), Story::Vrrp);
        assert_eq!(Story::of(&inventory(&["vrrp"])), Story::Vrrp);
        assert_eq!(Story::of(&inventory(&[])), Story::Vrrp);
    }

    #[test]
    fn who_answered_reads_as_counts_and_failures() {
        let seen = BTreeMap::from([
            (String::new(), 1),
            ("rs01".to_owned(), 60),
            ("rs02".to_owned(), 39),
        ]);
        assert_eq!(describe(&seen), "1 failed, rs01 60, rs02 39");
    }
}
