//! The VRRP story: one master holds the VIP, the client's requests go
//! through it, a real server dies and leaves the pool, the master's agent
//! dies and the backup takes the VIP within Master_Down_Interval, and
//! everything comes back.
//!
//! On namespace hosts the master's agent dies with its supervisor, so the
//! backup takes over; on systemd hosts a killed agent is the unit's
//! business: `ExecStopPost` removes what it held, `Restart=` brings it
//! back, and it resumes as master without a failover when it is back fast
//! (README, "A fast restart is no failover").

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::acts::kill_here;
use super::steps::{Demo, describe};
use crate::agent::vrrp::fsm::master_down_interval;
use crate::agent::vrrp::packet::Version;
use crate::inventory::effective_priority;
use crate::lab::HostInit;

/// How soon a host whose agent died must hold nothing of it: the unit's
/// `ExecStopPost` runs at once and removes a few addresses and one table.
const RELEASED_WITHIN: Duration = Duration::from_secs(1);

/// The unit's `RestartSec=` (templates/lbdeploy-agent.service.j2): how
/// long systemd waits before it starts a dead agent again.
const RESTART_SEC: Duration = Duration::from_secs(1);

impl Demo<'_> {
    /// The VRRP story, each step checked against its bound.
    ///
    /// # Errors
    /// The first step that did not behave, saying what was seen.
    pub(super) fn vrrp_story(&mut self) -> anyhow::Result<()> {
        let (port, url) = self.target();
        let note = match self.svc.persistence_timeout {
            Some(_) => {
                " — persistence_timeout keeps one client on one real server"
            }
            None => "",
        };
        self.plan_and_apply("real servers, backup, master")?;
        let (master, backup, victim) = self.traffic(&url, note)?;
        self.status("after the apply", true)?;
        self.real_server_fails(&url, port, &victim, &[])?;
        let mdi = match self.acts.0 {
            HostInit::Namespace => self.master_fails(&url, &master, &backup)?,
            HostInit::Systemd => {
                self.master_restarts(&url, &master, &backup)?
            }
        };
        self.status("after the failover", false)?;
        self.recover(port, &master, &victim, mdi)?;
        self.second_plan()
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
        let vip = self.svc.vip.to_string();
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
        self.wait(bound, || self.pool_is(master, victim, true))?;
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

    /// Whether `host` holds the service's VIP as an address.
    fn holds_vip(&self, host: &str) -> bool {
        let vip = &self.svc.vip;
        self.exec(host, "ip -o addr show").is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains(&format!(" {vip}/"))
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_is_timed_inside_the_host_and_gives_up() {
        let cmd = released_after("kill -9 1", "10.0.0.200", RELEASED_WITHIN);
        assert!(cmd.starts_with("s=$(date +%s%N); kill -9 1; "), "{cmd}");
        assert!(cmd.contains("grep -q ' 10.0.0.200/'"), "{cmd}");
        assert!(cmd.contains("-gt 2000000000 ] && break"), "{cmd}");
    }
}
