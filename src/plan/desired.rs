//! The desired state of every host, compiled from the inventory.
//!
//! For each director and real server: the files its role owns, rendered from
//! the templates; the sysctls to apply live; the agent binary and service.
//! Pure apart from reading secrets through an [`Environment`]: the same
//! inventory, roles and binary always give the same bytes, which is what
//! makes a second `apply` a no-op.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::inventory::agent::{
    BgpConfig, DirectorConfig, IpvsSyncConfig, NotificationConfig, PeerConfig,
    RealServerConfig, RealserverConfig, ServiceConfig, VrrpConfig,
};
use crate::inventory::{
    Authentication, Check, Director, Environment, HttpCheck, Inventory, Mode,
    NotificationProblem, Port, RealServerHost, Track, TrackRef, VrrpInstance,
    ca_pem, effective_priority, email_ca, peer_password, service_label,
    smtp_password, vrrp_password, webhook_ca, webhook_url,
};

use super::facts::HostFacts;
use super::roles::{self, Init, OnChange, Role, Roles};
use crate::util::redact;

/// What one host should look like.
#[derive(Debug, Clone, PartialEq)]
pub struct HostDesired {
    /// Inventory name.
    pub name: String,
    /// The role's agent mode: `director` or `realserver`.
    pub agent: Mode,
    /// Files the role owns, rendered.
    pub files: Vec<DesiredFile>,
    /// Kernel settings, key → value, applied live and persisted.
    pub sysctls: BTreeMap<String, String>,
    /// Where the agent binary goes, and its SHA-256.
    pub binary: PathBuf,
    /// SHA-256 of the binary to install, hex.
    pub binary_sha256: String,
    /// The agent's service name.
    pub service: String,
    /// The agent's configuration file.
    pub config: PathBuf,
    /// The VIPs the agent keeps on `lo` (real servers); the plan warns
    /// when an old set-up left one on another interface.
    pub vips: Vec<IpAddr>,
    /// The host has left the inventory and is retired (`apply::removed`):
    /// no files, no sysctls, the agent stopped and disabled.
    pub retire: bool,
    /// A director's runtime drains are cleared (`apply --undrain`): its
    /// drained list ([`DRAINED_FILE`]) goes and the agent reloads.
    ///
    /// [`DRAINED_FILE`]: crate::inventory::drained::DRAINED_FILE
    pub undrain: bool,
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredFile {
    /// Absolute path on the host.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// The rendered content.
    pub content: String,
    /// What the service needs when this file changes.
    pub on_change: OnChange,
    /// Only on hosts with this init system.
    pub only_with: Option<Init>,
    /// For a host whose systemd is older than [`SYSTEMD_RESTART_STEPS`]
    /// (or says no version): the content rendered for it, where that
    /// differs (a unit without the settings such a systemd does not
    /// know). Only files for systemd hosts alone have one.
    pub older_systemd: Option<String>,
}

/// The first systemd that knows `RestartSteps=` and `RestartMaxDelaySec=`
/// (the unit's restart backoff); older ones log "Unknown key" for each
/// and restart every `RestartSec=`. Templates see whether the host's
/// systemd has them as `systemd_restart_steps`.
pub const SYSTEMD_RESTART_STEPS: u32 = 254;

impl DesiredFile {
    /// The content for the host of `facts`.
    pub fn content_for(&self, facts: &HostFacts) -> &str {
        match &self.older_systemd {
            Some(older)
                if facts.systemd.is_none_or(|v| v < SYSTEMD_RESTART_STEPS) =>
            {
                older
            }
            _ => &self.content,
        }
    }
}

impl HostDesired {
    /// The files the host of `facts` gets: those for its init system,
    /// each with its content for that host.
    pub fn files_for<'a>(
        &'a self,
        facts: &'a HostFacts,
    ) -> impl Iterator<Item = (&'a DesiredFile, &'a str)> {
        self.files
            .iter()
            .filter(|f| f.only_with.is_none_or(|i| i == facts.init))
            .map(|f| (f, f.content_for(facts)))
    }

    /// Its rendered agent configuration read back as the agent's type
    /// `T` (`DirectorConfig`, `RealserverConfig`); `None` without one.
    /// Computing the desired state parsed the same text already
    /// (`check_agent_config`), so for the host's own mode it parses.
    pub(crate) fn agent_config<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Option<T> {
        let file = self.files.iter().find(|f| f.path == self.config)?;
        crate::inventory::agent::parse(&file.path, &file.content).ok()
    }
}

/// Why the desired state could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A role or template problem.
    #[error(transparent)]
    Roles(#[from] roles::Error),
    /// A role file's mode is not octal.
    #[error("role `{role}`: mode `{mode}` of {} is not octal such as \"0644\"", path.display())]
    Mode {
        /// The role.
        role: String,
        /// The file.
        path: PathBuf,
        /// What was written.
        mode: String,
    },
    /// A BGP peer's password could not be had.
    #[error("bgp peer {peer}: {message}")]
    PeerPassword {
        /// The peer.
        peer: IpAddr,
        /// Why, as [`peer_password`] says it.
        message: String,
    },
    /// A director has no IPv4 address for its BGP router id.
    #[error(
        "director {director}: BGP needs an IPv4 router id and its address \
         is IPv6 — set `bgp.router_id`"
    )]
    RouterId {
        /// The director.
        director: String,
    },
    /// An instance's password could not be had (from the environment or
    /// a file that changed since validation).
    #[error("vrrp instance {instance}: authentication{field}: {message}")]
    Secret {
        /// The instance.
        instance: String,
        /// Where it was looked for: `.password_env`, `.password_file`.
        field: &'static str,
        /// What is wrong, naming the variable or file, never the password.
        message: String,
    },
    /// A value the inventory names by reference — a webhook's URL, a CA
    /// file, an SMTP password — could not be had (from the environment or
    /// a file that changed since validation): the field and why, never
    /// the value.
    #[error("{field}: {message}")]
    Reference {
        /// `notification.webhook…`, `notification.email…`, a check's.
        field: String,
        /// What is wrong, naming the variable or file.
        message: String,
    },
    /// A rendered agent configuration does not parse: the template and the
    /// agent disagree. The rendered text is never part of the message: it
    /// holds the VRRP password.
    #[error(
        "host {host}: {} rendered from template {template} does not parse: \
         {message}",
        path.display()
    )]
    AgentConfig {
        /// The host.
        host: String,
        /// The rendered file.
        path: PathBuf,
        /// The role's template it was rendered from.
        template: String,
        /// The parser's problem and where (line, column), secrets hidden.
        message: String,
    },
}

/// Compile the inventory into every host's desired state, directors first,
/// in inventory order. `base` is the inventory's directory (for secret
/// files); `binary_sha256` identifies the agent binary to install.
///
/// # Errors
/// When a secret cannot be read, or a template or role is broken.
pub fn compile(
    inv: &Inventory,
    roles: &Roles,
    env: &dyn Environment,
    base: &Path,
    binary_sha256: &str,
) -> Result<Vec<HostDesired>, Error> {
    let mut hosts = Vec::new();
    // Every secret a rendered file holds, kept out of a parse error's text.
    let mut secrets = Vec::new();
    for d in &inv.directors {
        let config = director_config(inv, d, env, base)?;
        secrets.extend(
            config.vrrp_instances.iter().filter_map(|v| v.password.clone()),
        );
        if let Some(n) = &config.notification {
            secrets.extend(n.webhook.iter().chain(&n.email_password).cloned());
        }
        secrets.extend(
            config
                .bgp
                .iter()
                .flat_map(|b| &b.peers)
                .filter_map(|p| p.password.clone()),
        );
        let ctx = minijinja::context! {
            // The unit keeps CAP_SETUID, CAP_SETGID and CAP_KILL for it.
            switches_user => config.switches_user(),
            // ... and CAP_NET_BIND_SERVICE for BIRD.
            speaks_bgp => config.bgp.is_some(),
            ..minijinja::Value::from(minijinja::value::Serde(&config))
        };
        hosts.push(host(
            roles.role("director")?,
            roles,
            &d.name,
            &d.interface,
            ctx,
            binary_sha256,
        )?);
    }
    for r in &inv.real_servers {
        let config = realserver_config(inv, r);
        let ctx = minijinja::Value::from(minijinja::value::Serde(&config));
        let mut h = host(
            roles.role("realserver")?,
            roles,
            &r.name,
            &r.interface,
            ctx,
            binary_sha256,
        )?;
        h.vips = config.vips.clone();
        hosts.push(h);
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    for h in &hosts {
        check_agent_config(h, roles, &secrets)?;
    }
    Ok(hosts)
}

/// The desired state of host `name`, which has left the inventory: its
/// role's binary, service and configuration paths (where the agent the
/// host runs was installed), no files, no sysctls — retired
/// ([`HostDesired::retire`]).
///
/// # Errors
/// When the roles have no role for `agent`.
pub fn retired(
    name: &str,
    agent: Mode,
    roles: &Roles,
    binary_sha256: &str,
) -> Result<HostDesired, Error> {
    let role = roles.role(agent.as_str())?;
    Ok(HostDesired {
        name: name.to_owned(),
        agent,
        files: Vec::new(),
        sysctls: BTreeMap::new(),
        binary: role.binary.clone(),
        binary_sha256: binary_sha256.to_owned(),
        service: role.service.clone(),
        config: role.config.clone(),
        vips: Vec::new(),
        retire: true,
        undrain: false,
    })
}

/// Render one host's role with `config` (the agent configuration, which is
/// also the template context) extended by what every template may use.
fn host(
    role: &Role,
    roles: &Roles,
    name: &str,
    interface: &str,
    config: minijinja::Value,
    binary_sha256: &str,
) -> Result<HostDesired, Error> {
    let key_ctx = minijinja::context! { interface => interface };
    let sysctls = role
        .sysctls
        .iter()
        .map(|(k, v)| Ok((roles.render_str(k, &key_ctx)?, v.clone())))
        .collect::<Result<BTreeMap<_, _>, roles::Error>>()?;
    let ctx = minijinja::context! {
        agent => role.agent.as_str(),
        binary => role.binary.display().to_string(),
        config => role.config.display().to_string(),
        sysctls => &sysctls,
        ..config
    };
    let new_systemd = minijinja::context! {
        systemd_restart_steps => true, ..ctx.clone()
    };
    let old_systemd = minijinja::context! {
        systemd_restart_steps => false, ..ctx
    };
    let files = role
        .files
        .iter()
        .map(|f| {
            let mode =
                u32::from_str_radix(&f.mode, 8).map_err(|_| Error::Mode {
                    role: role.agent.to_string(),
                    path: f.path.clone(),
                    mode: f.mode.clone(),
                })?;
            let content = roles.render(&f.template, &new_systemd)?;
            // Only a file for systemd hosts alone may depend on systemd.
            let older_systemd = match f.only_with {
                Some(Init::Systemd) => {
                    Some(roles.render(&f.template, &old_systemd)?)
                        .filter(|older| *older != content)
                }
                _ => None,
            };
            Ok(DesiredFile {
                path: f.path.clone(),
                mode,
                content,
                on_change: f.on_change,
                only_with: f.only_with,
                older_systemd,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(HostDesired {
        name: name.to_owned(),
        agent: role.agent,
        files,
        sysctls,
        binary: role.binary.clone(),
        binary_sha256: binary_sha256.to_owned(),
        service: role.service.clone(),
        config: role.config.clone(),
        vips: Vec::new(),
        retire: false,
        undrain: false,
    })
}

/// Parse the rendered agent file back with the agent's own types, so a
/// template that drifts from the agent fails here, before any host. The
/// error names the file, its template and the parser's line and column;
/// any of `secrets` the parser quotes is hidden.
fn check_agent_config(
    h: &HostDesired,
    roles: &Roles,
    secrets: &[&str],
) -> Result<(), Error> {
    let Some(file) = h.files.iter().find(|f| f.path == h.config) else {
        return Ok(());
    };
    let result = match h.agent {
        Mode::Director => crate::inventory::agent::parse::<DirectorConfig>(
            &file.path,
            &file.content,
        )
        .map(drop),
        Mode::Realserver => crate::inventory::agent::parse::<RealserverConfig>(
            &file.path,
            &file.content,
        )
        .map(drop),
    };
    result.map_err(|e| {
        let message = match e {
            crate::inventory::agent::Error::Invalid { message, .. } => message,
            other => other.to_string(),
        };
        let template = roles
            .role(h.agent.as_str())
            .ok()
            .and_then(|r| r.files.iter().find(|f| f.path == file.path))
            .map_or_else(|| "?".to_owned(), |f| f.template.clone());
        Error::AgentConfig {
            host: h.name.clone(),
            path: file.path.clone(),
            template,
            message: redact::text(&redact::known(&message, secrets))
                .into_owned(),
        }
    })
}

// ===== director =====

fn director_config(
    inv: &Inventory,
    d: &Director,
    env: &dyn Environment,
    base: &Path,
) -> Result<DirectorConfig, Error> {
    let vrrp_instances = inv
        .vrrp_instances
        .iter()
        .map(|vi| vrrp_config(inv, vi, d, env, base))
        .collect::<Result<_, _>>()?;
    let mut config = DirectorConfig {
        cluster: inv.cluster.clone(),
        host: d.name.clone(),
        interface: d.interface.clone(),
        address: d.address,
        dataplane: inv.dataplane,
        ipvs_sync: inv.ipvs_sync.as_ref().map(|s| IpvsSyncConfig {
            instance: s.instance.clone(),
            interface: s
                .interface
                .clone()
                .unwrap_or_else(|| d.interface.clone()),
            // 0–255 by their types.
            sync_id: s.sync_id.map_or_else(
                || {
                    inv.vrrp_instances
                        .iter()
                        .find(|v| v.name == s.instance)
                        .map_or(0, |v| v.virtual_router_id.get() as u8)
                },
                |id| id.get() as u8,
            ),
        }),
        vrrp_instances,
        vrrp_scripts: inv.vrrp_scripts.clone(),
        vrrp_sync_groups: inv.vrrp_sync_groups.clone(),
        vrrp_track_files: inv.vrrp_track_files.clone(),
        vrrp_track_processes: inv.vrrp_track_processes.clone(),
        script_security: inv.script_security,
        vrrp_rt_priority: inv.vrrp_rt_priority,
        vrrp_no_swap: inv.vrrp_no_swap,
        metrics: d.metrics.or(inv.metrics),
        virtual_services: inv
            .virtual_services
            .iter()
            .map(|vs| ServiceConfig {
                name: vs.name.clone().unwrap_or_else(|| service_label(vs)),
                vip: vs.vip,
                announce: vs.announce,
                // A u16 of at least 1 is a Port; validation wants `port`
                // or `ports`, so the 1 is never used.
                port: Port::new(u32::from(vs.first_port().max(1)))
                    .expect("1–65535 is a port"),
                ports: vs.ports.clone(),
                protocol: vs.protocol,
                scheduler: vs.scheduler,
                persistence_timeout: vs.persistence_timeout,
                delay_loop: vs.delay_loop,
                quorum: vs.quorum,
                hysteresis: vs.hysteresis,
                sorry_server: vs.sorry_server,
                inhibit_on_failure: vs.inhibit_on_failure,
                real_servers: vs
                    .real_servers
                    .iter()
                    .filter_map(|rs| {
                        let address = rs.address.or_else(|| {
                            let name = rs.host.as_ref()?;
                            let host = inv
                                .real_servers
                                .iter()
                                .find(|h| &h.name == name)?;
                            Some(host.address.addr)
                        })?;
                        Some(RealServerConfig {
                            address,
                            port: rs.port,
                            weight: rs.weight.get(),
                            checks: rs.checks.clone(),
                        })
                    })
                    .collect(),
            })
            .collect(),
        notification: notification(inv, env, base)?,
        bgp: bgp_config(inv, d, env, base)?,
    };
    config.default_script_user(inv.script_user.as_ref());
    check_cas(&mut config, env, base)?;
    Ok(config)
}

/// Each HTTP check's `tls.ca_file`, read into `tls.ca`: the agent gets the
/// CAs, not the controller's path.
fn check_cas(
    config: &mut DirectorConfig,
    env: &dyn Environment,
    base: &Path,
) -> Result<(), Error> {
    let checks = config
        .virtual_services
        .iter_mut()
        .flat_map(|vs| &mut vs.real_servers)
        .flat_map(|rs| &mut rs.checks);
    for check in checks {
        let Check::HttpGet(HttpCheck { tls: Some(tls), .. }) = check else {
            continue;
        };
        if let Some(file) = tls.ca_file.take() {
            let pem = ca_pem(&file, base, env).map_err(|message| {
                Error::Reference {
                    field: "an http_get check's tls.ca_file".into(),
                    message,
                }
            })?;
            tls.ca = Some(pem);
        }
    }
    Ok(())
}

/// Director `d`'s BGP speaker: the inventory's `bgp:` block as it
/// applies to `d` ([`Bgp::for_director`]), each peer's password read.
/// Validation saw a router id exist and each password usable.
///
/// [`Bgp::for_director`]: crate::inventory::Bgp::for_director
fn bgp_config(
    inv: &Inventory,
    d: &Director,
    env: &dyn Environment,
    base: &Path,
) -> Result<Option<BgpConfig>, Error> {
    let Some(bgp) = &inv.bgp else { return Ok(None) };
    let own = bgp.for_director(d);
    let router_id = own
        .router_id
        .ok_or_else(|| Error::RouterId { director: d.name.clone() })?;
    let peers = own
        .peers
        .iter()
        .map(|p| {
            let password = peer_password(p, base, env).map_err(|e| {
                Error::PeerPassword { peer: p.address, message: e.message }
            })?;
            Ok(PeerConfig {
                address: p.address,
                remote_as: p.remote_as.get(),
                password,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Some(BgpConfig {
        local_as: own.local_as.get(),
        router_id,
        peers,
        bfd: bgp.bfd,
        hold_time: bgp.hold_time,
        keepalive_time: bgp.keepalive_time,
        drain_grace: bgp.drain_grace,
    }))
}

/// The inventory's notification for the agent: the webhook's URL
/// resolved from wherever the inventory takes it.
fn notification(
    inv: &Inventory,
    env: &dyn Environment,
    base: &Path,
) -> Result<Option<NotificationConfig>, Error> {
    let Some(n) = &inv.notification else { return Ok(None) };
    let problem = |p: NotificationProblem| Error::Reference {
        field: p.field,
        message: p.message,
    };
    let resolved = n.webhook.as_ref().map(|w| {
        let url = webhook_url(w, base, env)?;
        let ca = webhook_ca(w, &url, base, env)?;
        Ok((url, ca))
    });
    let (webhook, webhook_ca) = resolved.transpose().map_err(problem)?.unzip();
    let mut email = n.email.clone();
    let (mut ca, mut password) = (None, None);
    if let Some(e) = &mut email {
        ca = email_ca(e, base, env).map_err(problem)?;
        password = smtp_password(e, base, env).map_err(problem)?;
        // The agent gets what was read, not where from.
        e.ca_file = None;
        if let Some(a) = &mut e.auth {
            (a.password_env, a.password_file) = (None, None);
        }
    }
    Ok(Some(NotificationConfig {
        email,
        email_ca: ca,
        email_password: password,
        exec: n.exec.clone(),
        exec_user: n.exec_user.clone(),
        webhook,
        webhook_ca: webhook_ca.flatten(),
    }))
}

fn vrrp_config(
    inv: &Inventory,
    vi: &VrrpInstance,
    d: &Director,
    env: &dyn Environment,
    base: &Path,
) -> Result<VrrpConfig, Error> {
    let password = vi
        .authentication
        .as_ref()
        .map(|a| password(vi, a, env, base))
        .transpose()?;
    Ok(VrrpConfig {
        name: vi.name.clone(),
        virtual_router_id: narrow(vi.virtual_router_id.get()),
        version: vi.version,
        advert_int: vi.advert_int,
        priority: narrow(effective_priority(vi, d)),
        preempt: vi.preempt,
        preempt_delay: vi.preempt_delay,
        password,
        unicast_peers: vi
            .unicast_peers
            .iter()
            .copied()
            .filter(|p| *p != d.address.addr)
            .collect(),
        accept_from: accept_from(inv, vi, d),
        v3_checksum_as_v2: vi.v3_checksum_as_v2,
        virtual_addresses: vi.virtual_addresses.clone(),
        notify: vi.notify.clone(),
        smtp_alert: vi.smtp_alert,
        garp: vi.garp.unwrap_or_default(),
        track: track(inv, &vi.track),
    })
}

/// Where director `d` takes `vi`'s adverts from: its unicast peers, or
/// over multicast the other directors' addresses (every director runs
/// every instance, from its inventory address). Nobody is listed for an
/// IPv6 instance over multicast: its adverts come from link-local
/// addresses the inventory does not know, so the agent cannot filter them
/// by source.
fn accept_from(
    inv: &Inventory,
    vi: &VrrpInstance,
    d: &Director,
) -> Vec<IpAddr> {
    let own = d.address.addr;
    if !vi.unicast_peers.is_empty() {
        return vi
            .unicast_peers
            .iter()
            .copied()
            .filter(|p| *p != own)
            .collect();
    }
    if vi.virtual_addresses.iter().any(|v| v.address.addr.is_ipv6()) {
        return Vec::new();
    }
    inv.directors
        .iter()
        .map(|o| o.address.addr)
        .filter(|a| a.is_ipv4() && *a != own)
        .collect()
}

/// An instance's tracking with every script's, file's and process's
/// weight and `reverse` resolved: its own unless the instance overrides
/// them (a weight given in the instance comes with its own `reverse`).
/// Validation saw every name exist.
fn track(inv: &Inventory, track: &Track) -> Track {
    let resolve =
        |refs: &[TrackRef], own: &dyn Fn(&str) -> Option<(i32, bool)>| {
            refs.iter()
                .map(|t| {
                    let (weight, reverse) = match t.weight {
                        Some(w) => (Some(w), t.reverse),
                        None => own(&t.name)
                            .map_or((None, false), |(w, r)| (Some(w), r)),
                    };
                    TrackRef { name: t.name.clone(), weight, reverse }
                })
                .collect()
        };
    Track {
        interfaces: track.interfaces.clone(),
        scripts: resolve(&track.scripts, &|n| {
            let s = inv.vrrp_scripts.iter().find(|s| s.name == n);
            s.map(|s| (s.weight, s.reverse))
        }),
        files: resolve(&track.files, &|n| {
            let f = inv.vrrp_track_files.iter().find(|f| f.name == n);
            f.map(|f| (f.weight, f.reverse))
        }),
        processes: resolve(&track.processes, &|n| {
            let p = inv.vrrp_track_processes.iter().find(|p| p.name == n);
            p.map(|p| (p.weight, p.reverse))
        }),
    }
}

/// VRIDs and priorities are bounded to 1–255 by their inventory types.
fn narrow(v: u32) -> u8 {
    u8::try_from(v).expect("bounded to 1–255 by the inventory type")
}

fn password(
    vi: &VrrpInstance,
    auth: &Authentication,
    env: &dyn Environment,
    base: &Path,
) -> Result<String, Error> {
    vrrp_password(auth, base, env).map_err(|p| Error::Secret {
        instance: vi.name.clone(),
        field: p.field,
        message: p.message,
    })
}

// ===== real server =====

fn realserver_config(inv: &Inventory, r: &RealServerHost) -> RealserverConfig {
    let vips: BTreeSet<IpAddr> = inv
        .virtual_services
        .iter()
        .filter(|vs| {
            vs.real_servers.iter().any(|rs| rs.host.as_ref() == Some(&r.name))
                // A sorry server takes the VIP's traffic by DR too.
                || vs.sorry_server.is_some_and(|s| s.ip() == r.address.addr)
        })
        .map(|vs| vs.vip)
        .collect();
    RealserverConfig {
        cluster: inv.cluster.clone(),
        host: r.name.clone(),
        interface: r.interface.clone(),
        arp_suppression: r.arp_suppression,
        vips: vips.into_iter().collect(),
        keep_vip_on_stop: r.keep_vip_on_stop,
        metrics: r.metrics.or(inv.metrics),
    }
}
