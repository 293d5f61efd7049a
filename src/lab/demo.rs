//! `lbdeploy lab demo`: the whole story in one command, for a person to
//! watch — the lab comes up, the controller plans and applies the
//! inventory, the client's requests go through the VIP, a real server dies
//! and leaves the pool, the master director dies and the backup takes
//! over, everything comes back, and the lab goes away (unless `--keep`).
//!
//! Every step runs what an operator would run (`lbdeploy plan/apply` on the
//! controller, `curl` on the client, `kill` on a host) through `lab exec`,
//! and checks the outcome against a bound from the configuration (check
//! timing, VRRP's Master_Down_Interval); the demo exits 0 only if every
//! step behaved.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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
}

/// The steps, for the `[n/N]` counter.
const STEPS: usize = 7;

impl<'a> Demo<'a> {
    /// A demo of `inv` (read from `inventory`) in the lab at `state_dir`.
    ///
    /// # Errors
    /// When this executable cannot be found.
    pub fn new(
        inventory: &Path,
        inv: &'a Inventory,
        state_dir: &Path,
        talk: &'a mut dyn Write,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            exe: std::env::current_exe()?,
            inventory: std::path::absolute(inventory)?,
            state_dir: std::path::absolute(state_dir)?,
            inv,
            talk,
            step: 0,
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
        let url = format!("http://{}:{}/", svc.vip, svc.port.get());
        let port = svc.port.get();
        let note = match svc.persistence_timeout {
            Some(_) => {
                " — persistence_timeout keeps one client on one real server"
            }
            None => "",
        };
        self.plan_and_apply()?;
        let (master, backup, victim) = self.traffic(&url, note)?;
        self.real_server_fails(&url, &victim)?;
        let mdi = self.master_fails(&url, &master, &backup)?;
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
        victim: &str,
    ) -> anyhow::Result<()> {
        self.say(&format!("stop {victim}'s web server"));
        let (bound, _) = self.check_bounds(victim)?;
        self.exec_ok(victim, &kill_here("[l]bdeploy lab responder"))?;
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
        let vi = &self.inv.vrrp_instances[0];
        let backup_priority = self
            .inv
            .directors
            .iter()
            .find(|d| d.name == backup)
            .map_or(100, |d| effective_priority(vi, d) as u8);
        let mdi = master_down_interval(
            if vi.version == 3 { Version::V3 } else { Version::V2 },
            backup_priority,
            vi.advert_int.get(),
        );
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
        self.exec_ok(
            victim,
            &format!(
                "setsid lbdeploy lab responder --port {port} --name {victim} \
                 </dev/null >/dev/null 2>&1 &"
            ),
        )?;
        self.exec_ok(
            master,
            "lbdeploy agent start director --config /etc/lbdeploy/agent.yml",
        )?;
        self.wait(mdi + Duration::from_secs(5), || self.holds_vip(master))?;
        let (_, bound) = self.check_bounds(victim)?;
        self.wait(bound, || self.pool_has(master, victim))?;
        self.done(&format!(
            "{master} is master again, {victim} back in the pool"
        ));
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
