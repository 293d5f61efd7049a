//! What a director agent may hold on its host, written down where a
//! cleanup can find it without the configuration: `RUN/holdings.json`.
//!
//! The fail-safe rule (issue #16) is that a host whose agent is not running
//! holds nothing of it: no VIP (or the backup takes it too, and two hosts
//! answer for it) and no data plane. An agent killed with SIGKILL, or one
//! whose configuration has become unreadable, cannot say what it held; this
//! file can. The director worker writes it before it starts any instance
//! or sends the forwarding loop a configuration, and `lbdeploy agent
//! cleanup` (`super::cleanup`) reads it after the agent has gone.
//!
//! Only the director writes one: a real server's VIPs on `lo` are meant to
//! stay while its agent is down (they make it accept the VIP's traffic, and
//! no other host answers ARP for them).
//!
//! The file is read back by root and steers what root removes, so its
//! content is untrusted input: [`decode`] bounds its size and every list,
//! and accepts only what a director could have written (a VIP lbdeploy
//! would add, a TCP or UDP service on a real port). It is pure; the reading
//! and its file checks are [`load`]'s.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::agent::dataplane::ipvs;
use crate::inventory;
use crate::inventory::agent::DirectorConfig;

/// The format written in the file's `format` field; another one is refused
/// rather than guessed at.
const FORMAT: u32 = 1;

/// Files above this size are refused unread. Compact JSON of
/// [`MAX_VIPS`] and [`MAX_SERVICES`] entries stays well below it (a test
/// checks).
pub(crate) const MAX_BYTES: u64 = 2 * 1024 * 1024;

/// The most VIPs a file may list: 255 VRRP instances of a few VIPs each
/// fit, a hostile list of millions does not.
pub(crate) const MAX_VIPS: usize = 4096;

/// The most IPVS services a file may list: ten times the largest cluster
/// the nftables back end is measured with (1,000 services).
pub(crate) const MAX_SERVICES: usize = 16_384;

/// The longest interface name the kernel takes (`IFNAMSIZ` less the NUL).
const MAX_IFNAME: usize = 15;

/// Everything a director agent may hold: its VIPs and its data plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Holdings {
    /// Always [`FORMAT`] when written; checked when read.
    format: u32,
    /// The VIPs of every VRRP instance, each on its interface.
    pub vips: BTreeSet<Vip>,
    /// Whether the agent may hold the nftables data plane's
    /// `table netdev lbdeploy`.
    pub nft_table: bool,
    /// The IPVS virtual services the agent may create.
    pub ipvs_services: BTreeSet<Service>,
    /// The VIPs announced over BGP, whose local blackhole routes the
    /// agent may add (none in files of agents before BGP).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub blackholes: BTreeSet<IpAddr>,
    /// Whether the agent may run IPVS's sync daemons (`ipvs_sync`; false
    /// in files of agents before it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipvs_sync_daemons: bool,
}

/// One VIP on one interface. The index is what the address was added to;
/// the name lets the cleanup notice an index that now names another
/// interface.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub(crate) struct Vip {
    /// The interface's name.
    pub interface: String,
    /// The interface's index when the file was written.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

/// One IPVS virtual service, as lbdeploy creates them: by address and
/// port, or for a port group by a firewall mark of lbdeploy's range
/// ([`ipvs::marks`]), the VIP and first port then naming the group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The VIP.
    pub vip: IpAddr,
    /// The port, never 0.
    pub port: u16,
    /// A port group's mark: the service is the fwmark service, not the
    /// one of `vip:port` (none in files of agents before port groups on
    /// IPVS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
}

/// A service's protocol: the two lbdeploy configures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Service {
    /// The service's identity in the kernel's IPVS table.
    pub(crate) fn key(self) -> ipvs::ServiceKey {
        let proto = match self.protocol {
            Protocol::Tcp => ipvs::Proto::Tcp,
            Protocol::Udp => ipvs::Proto::Udp,
        };
        match self.fwmark {
            Some(mark) => {
                ipvs::ServiceKey::Fwmark { v6: self.vip.is_ipv6(), mark }
            }
            None => ipvs::ServiceKey::Addr {
                proto,
                addr: self.vip,
                port: self.port,
            },
        }
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.ip, self.prefix, self.interface)
    }
}

impl Holdings {
    /// What `config` may make this director hold, with its interface at
    /// `index`: every instance's VIPs, and the data plane its `dataplane`
    /// setting may choose (`auto` may choose either, so both are listed).
    pub(crate) fn of(config: &DirectorConfig, index: u32) -> Self {
        let vips = config
            .vrrp_instances
            .iter()
            .flat_map(|v| &v.virtual_addresses)
            .map(|v| Vip {
                interface: config.interface.clone(),
                index,
                ip: v.address.addr,
                prefix: v.address.prefix,
            })
            .collect();
        let (nft, ipvs) = match config.dataplane {
            inventory::Dataplane::Auto => (true, true),
            inventory::Dataplane::Nftables => (true, false),
            inventory::Dataplane::Ipvs => (false, true),
        };
        // Past the range's groups the agent makes no group's service,
        // so none is listed.
        let marks = ipvs::marks::assign(config).unwrap_or_default();
        let ipvs_services = match ipvs {
            false => BTreeSet::new(),
            true => config
                .virtual_services
                .iter()
                .enumerate()
                .filter(|(i, s)| !s.is_group() || marks.contains_key(i))
                .map(|(i, s)| Service {
                    protocol: match s.protocol {
                        inventory::Protocol::Tcp => Protocol::Tcp,
                        inventory::Protocol::Udp => Protocol::Udp,
                    },
                    vip: s.vip,
                    port: s.port.get() as u16,
                    fwmark: marks.get(&i).copied(),
                })
                .collect(),
        };
        let blackholes = crate::agent::bgp::announce::vips(config);
        Holdings {
            format: FORMAT,
            vips,
            nft_table: nft,
            ipvs_services,
            blackholes,
            ipvs_sync_daemons: ipvs && config.ipvs_sync.is_some(),
        }
    }

    /// Everything either holds: what the file says while the agent moves
    /// from `self` to `other` (a reload), so that a crash half-way still
    /// leaves the old instances' VIPs listed until they are gone.
    pub(crate) fn union(&self, other: &Holdings) -> Holdings {
        Holdings {
            format: FORMAT,
            vips: self.vips.union(&other.vips).cloned().collect(),
            nft_table: self.nft_table || other.nft_table,
            ipvs_services: self
                .ipvs_services
                .union(&other.ipvs_services)
                .copied()
                .collect(),
            blackholes: self
                .blackholes
                .union(&other.blackholes)
                .copied()
                .collect(),
            ipvs_sync_daemons: self.ipvs_sync_daemons
                || other.ipvs_sync_daemons,
        }
    }

    /// What the file lists once a reload from `self` (the
    /// [`union`](Self::union) it wrote first) to `next` has stopped the old
    /// instances: only `next`'s VIPs, since a stopping instance removes
    /// its own, but still every data plane of `self` — the forwarding
    /// drops an old one (or the services a reload removed) later, on a
    /// task of its own, so within one agent's life that part only grows.
    pub(crate) fn settled(&self, next: &Holdings) -> Holdings {
        Holdings { vips: next.vips.clone(), ..self.union(next) }
    }

    /// The file's bytes: compact JSON and a newline.
    ///
    /// # Errors
    /// When the holdings break a limit [`decode`] enforces: a file the
    /// cleanup would refuse is not written.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let mut bytes =
            serde_json::to_vec(self).expect("plain data serializes");
        bytes.push(b'\n');
        if bytes.len() as u64 > MAX_BYTES {
            return Err(Error::TooLarge(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// The rules every file must keep; see [`decode`].
    fn validate(&self) -> Result<(), Error> {
        if self.format != FORMAT {
            return Err(Error::Format(self.format));
        }
        if self.vips.len() > MAX_VIPS {
            return Err(Error::TooMany("vips", self.vips.len(), MAX_VIPS));
        }
        let n = self.ipvs_services.len();
        if n > MAX_SERVICES {
            return Err(Error::TooMany("ipvs_services", n, MAX_SERVICES));
        }
        for v in &self.vips {
            if !valid_ifname(&v.interface) || v.index == 0 {
                return Err(Error::Interface(v.interface.clone(), v.index));
            }
            let max = if v.ip.is_ipv4() { 32 } else { 128 };
            if !usable(v.ip) || v.prefix > max {
                return Err(Error::Vip(format!("{}/{}", v.ip, v.prefix)));
            }
        }
        let marks = ipvs::marks::MARK_BASE
            ..ipvs::marks::MARK_BASE + ipvs::marks::MARK_SLOTS;
        for s in &self.ipvs_services {
            if !usable(s.vip)
                || s.port == 0
                || s.fwmark.is_some_and(|m| !marks.contains(&m))
            {
                return Err(Error::Service(format!("{}:{}", s.vip, s.port)));
            }
        }
        let n = self.blackholes.len();
        if n > MAX_VIPS {
            return Err(Error::TooMany("blackholes", n, MAX_VIPS));
        }
        if let Some(ip) = self.blackholes.iter().find(|ip| !usable(**ip)) {
            return Err(Error::Vip(ip.to_string()));
        }
        Ok(())
    }
}

/// Why a holdings file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// Larger than [`MAX_BYTES`].
    #[error("{0} bytes, more than the {MAX_BYTES} a holdings file may have")]
    TooLarge(u64),
    /// Not the JSON of a [`Holdings`].
    #[error("not a holdings file: {0}")]
    Json(String),
    /// Another format.
    #[error("format {0}, this binary reads format {FORMAT}")]
    Format(u32),
    /// A list longer than its limit.
    #[error("{0}: {1} entries, more than the {2} allowed")]
    TooMany(&'static str, usize, usize),
    /// An interface name or index that no interface can have.
    #[error("no interface can be named {0:?} with index {1}")]
    Interface(String, u32),
    /// An address lbdeploy would never add as a VIP.
    #[error("{0} is not a VIP lbdeploy adds")]
    Vip(String),
    /// A service lbdeploy would never create.
    #[error("{0} is not a virtual service lbdeploy creates")]
    Service(String),
}

/// Read a holdings file's bytes: the JSON of a [`Holdings`] of this
/// format, within every limit. Pure.
///
/// # Errors
/// [`Error`] says what is wrong; nothing of a refused file is used.
pub(crate) fn decode(bytes: &[u8]) -> Result<Holdings, Error> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Error::TooLarge(bytes.len() as u64));
    }
    let holdings: Holdings = serde_json::from_slice(bytes)
        .map_err(|e| Error::Json(e.to_string()))?;
    holdings.validate()?;
    Ok(holdings)
}

/// Whether `ip` can be a VIP, by the inventory's rule.
fn usable(ip: IpAddr) -> bool {
    crate::inventory::vip_problem(ip).is_none()
}

/// Whether the kernel would take `name` for an interface (its
/// `dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// white space.
fn valid_ifname(name: &str) -> bool {
    (1..=MAX_IFNAME).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// Write `holdings` to `path` atomically (mode 0644, as the rest of the
/// runtime directory).
///
/// # Errors
/// A limit broken (see [`Holdings::encode`]) or an I/O error, with the
/// path.
pub(crate) fn save(path: &Path, holdings: &Holdings) -> anyhow::Result<()> {
    let bytes = holdings
        .encode()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    crate::util::files::write_atomic(path, &bytes, 0o644)
}

/// Read the holdings file at `path`; `None` when there is none.
///
/// Besides [`decode`]'s rules, the file must be a regular file (a symlink
/// is not followed), owned by this process's user and writable by nobody
/// else: only the agent, running as the same user, may have written it.
///
/// # Errors
/// An unreadable or refused file; the message names it.
pub(crate) fn load(path: &Path) -> anyhow::Result<Option<Holdings>> {
    let refuse = |why: String| anyhow::anyhow!("{}: {why}", path.display());
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "owned by uid {} with mode {:o}; only uid {me} may write it",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(e.to_string()))?;
    decode(&bytes).map(Some).map_err(|e| refuse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "cluster: c
host: d1
interface: eth0
address: 10.0.0.11/24
dataplane: auto
vrrp_instances:
- name: VI_1
  virtual_router_id: 51
  version: 2
  advert_int: 1s
  priority: 100
  preempt: true
  virtual_addresses: [{address: 10.0.0.200/24}, {address: 10.0.0.201/32}]
virtual_services:
- name: web
  vip: 10.0.0.200
  port: 80
  protocol: tcp
  scheduler: rr
  delay_loop: 6s
  quorum: 1
  real_servers:
  - { address: 10.0.0.21, port: 80, weight: 1 }
";

    fn config() -> DirectorConfig {
        serde_yaml::from_str(CONFIG).unwrap()
    }

    fn vip(ip: &str, prefix: u8) -> Vip {
        Vip {
            interface: "eth0".into(),
            index: 2,
            ip: ip.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn a_configuration_lists_its_vips_and_data_plane() {
        let h = Holdings::of(&config(), 2);
        assert_eq!(
            h.vips.iter().map(Vip::to_string).collect::<Vec<_>>(),
            ["10.0.0.200/24 on eth0", "10.0.0.201/32 on eth0"]
        );
        assert!(h.nft_table, "auto may choose nftables");
        assert_eq!(
            h.ipvs_services
                .iter()
                .map(|s| s.key().to_string())
                .collect::<Vec<_>>(),
            ["TCP 10.0.0.200:80"]
        );
        let mut nft = config();
        nft.dataplane = inventory::Dataplane::Nftables;
        let h = Holdings::of(&nft, 2);
        assert!(h.nft_table && h.ipvs_services.is_empty());
        let mut ipvs = config();
        ipvs.dataplane = inventory::Dataplane::Ipvs;
        let h = Holdings::of(&ipvs, 2);
        assert!(!h.nft_table && h.ipvs_services.len() == 1);
    }

    /// A port group on IPVS is its fwmark service, never the service of
    /// its VIP and first port, which may be someone else's.
    #[test]
    fn a_port_group_is_listed_as_its_fwmark_service() {
        let mut ipvs = config();
        ipvs.dataplane = inventory::Dataplane::Ipvs;
        ipvs.virtual_services[0].ports =
            vec!["80".parse().unwrap(), "443".parse().unwrap()];
        let marks = ipvs::marks::assign(&ipvs).unwrap();
        let h = Holdings::of(&ipvs, 2);
        let keys: Vec<_> = h.ipvs_services.iter().map(|s| s.key()).collect();
        assert_eq!(
            keys,
            [ipvs::ServiceKey::Fwmark { v6: false, mark: marks[&0] }]
        );
        assert_eq!(decode(&h.encode().unwrap()).unwrap(), h);
    }

    /// With `ipvs_sync` on a data plane that may be IPVS the file says
    /// the agent may run the sync daemons, for `agent cleanup` to stop
    /// them; a file without the field (an older agent's) reads as false.
    #[test]
    fn the_sync_daemons_are_listed_with_ipvs_sync() {
        assert!(!Holdings::of(&config(), 2).ipvs_sync_daemons);
        let mut synced = config();
        synced.ipvs_sync = Some(inventory::agent::IpvsSyncConfig {
            instance: "VI_1".into(),
            interface: "eth0".into(),
            sync_id: 51,
        });
        let h = Holdings::of(&synced, 2);
        assert!(h.ipvs_sync_daemons);
        assert_eq!(decode(&h.encode().unwrap()).unwrap(), h);
        synced.dataplane = inventory::Dataplane::Nftables;
        assert!(!Holdings::of(&synced, 2).ipvs_sync_daemons);
        let plain = Holdings::of(&config(), 2);
        let text = String::from_utf8(plain.encode().unwrap()).unwrap();
        assert!(!text.contains("ipvs_sync_daemons"), "{text}");
        assert!(plain.union(&h).ipvs_sync_daemons);
    }

    #[test]
    fn round_trips_and_unions() {
        let h = Holdings::of(&config(), 2);
        let bytes = h.encode().unwrap();
        assert!(bytes.ends_with(b"}\n"));
        assert_eq!(decode(&bytes).unwrap(), h);
        let mut other = config();
        other.interface = "eth1".into();
        other.dataplane = inventory::Dataplane::Nftables;
        let both = Holdings::of(&other, 3).union(&h);
        assert_eq!(both.vips.len(), 4);
        assert!(both.vips.contains(&vip("10.0.0.200", 24)));
        assert_eq!(both.ipvs_services, h.ipvs_services);
        assert!(both.nft_table);
        let settled = both.settled(&Holdings::of(&other, 3));
        assert_eq!(settled.vips, Holdings::of(&other, 3).vips);
        assert_eq!(settled.ipvs_services, h.ipvs_services);
    }

    /// The `i`th IPv6 address after `base`: the longest addresses there
    /// are, for the largest file.
    fn nth_v6(base: u128, i: u32) -> IpAddr {
        IpAddr::V6(std::net::Ipv6Addr::from(base + u128::from(i)))
    }

    #[test]
    fn the_largest_file_allowed_encodes_within_the_size_limit() {
        let mut h = Holdings::of(&config(), 2);
        h.vips = (0..MAX_VIPS as u32)
            .map(|i| Vip {
                interface: "a-long-ifname15".into(),
                index: u32::MAX,
                ip: nth_v6(0x2001_0db8_ffff_ffff_ffff_ffff_0000_0000, i),
                prefix: 128,
            })
            .collect();
        h.ipvs_services = (0..MAX_SERVICES as u32)
            .map(|i| Service {
                protocol: Protocol::Udp,
                vip: nth_v6(0x2001_0db8_ffff_ffff_ffff_ffff_ffff_0000, i),
                port: 65535,
                fwmark: Some(
                    ipvs::marks::MARK_BASE + ipvs::marks::MARK_SLOTS - 1,
                ),
            })
            .collect();
        let bytes = h.encode().unwrap();
        assert!(bytes.len() as u64 <= MAX_BYTES, "{}", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), h);
        h.vips.insert(vip("10.9.9.9", 32));
        assert_eq!(
            h.encode(),
            Err(Error::TooMany("vips", MAX_VIPS + 1, MAX_VIPS))
        );
    }

    /// The file as JSON with one part replaced.
    fn with(part: &str, value: &str) -> Vec<u8> {
        let h = Holdings::of(&config(), 2);
        let mut json: serde_json::Value = serde_json::to_value(&h).unwrap();
        json[part] = serde_json::from_str(value).unwrap();
        serde_json::to_vec(&json).unwrap()
    }

    #[test]
    fn hostile_files_are_refused() {
        let refused = |bytes: &[u8]| decode(bytes).unwrap_err().to_string();
        assert!(refused(b"").starts_with("not a holdings file"));
        assert!(refused(b"\xff\xfe").starts_with("not a holdings file"));
        assert!(refused(b"[]").starts_with("not a holdings file"));
        assert!(refused(&[b'['; 100_000]).starts_with("not a holdings file"));
        let huge = vec![b' '; MAX_BYTES as usize + 1];
        assert!(refused(&huge).contains("more than the"));
        assert_eq!(
            refused(&with("format", "2")),
            "format 2, this binary reads format 1"
        );
        assert!(refused(&with("extra", "1")).contains("unknown field"));
        assert!(refused(&with("nft_table", "\"yes\"")).starts_with("not a"));
        let vips = |v: &str| refused(&with("vips", v));
        let one = |iface: &str, index: u32, ip: &str, prefix: u32| {
            format!(
                "[{{\"interface\":{iface:?},\"index\":{index},\
                 \"ip\":{ip:?},\"prefix\":{prefix}}}]"
            )
        };
        assert!(vips(&one("eth0", 2, "127.0.0.1", 8)).contains("not a VIP"));
        assert!(vips(&one("eth0", 2, "0.0.0.0", 0)).contains("not a VIP"));
        assert!(vips(&one("eth0", 2, "::", 0)).contains("not a VIP"));
        assert!(vips(&one("eth0", 2, "224.0.0.18", 32)).contains("not a VIP"));
        assert!(
            vips(&one("eth0", 2, "255.255.255.255", 32)).contains("not a VIP")
        );
        assert!(vips(&one("eth0", 2, "10.0.0.1", 33)).contains("not a VIP"));
        assert!(vips(&one("eth0", 2, "fd00::1", 129)).contains("not a VIP"));
        assert!(vips(&one("eth0", 2, "10.0.0.1", 256)).starts_with("not a"));
        assert!(vips(&one("eth0", 0, "10.0.0.1", 32)).contains("interface"));
        for bad in ["", ".", "..", "a/b", "eth0:1", "a b", "sixteen-bytes-xx"] {
            assert!(
                vips(&one(bad, 2, "10.0.0.1", 32)).contains("interface"),
                "{bad:?}"
            );
        }
        // A service as lbdeploy never creates one, and what decode says.
        let services = [
            (
                r#"{"protocol":"tcp","vip":"10.0.0.1","port":0}"#,
                "not a virtual",
            ),
            (
                r#"{"protocol":"tcp","vip":"127.0.0.1","port":80}"#,
                "not a virtual",
            ),
            (
                r#"{"protocol":"sctp","vip":"10.0.0.1","port":1}"#,
                "not a holdings",
            ),
            (
                r#"{"protocol":"tcp","vip":"10.0.0.1","port":65536}"#,
                "not a holdings",
            ),
            (r#"{"fwmark":1}"#, "not a holdings"),
            // A mark outside lbdeploy's range: someone else's service.
            (
                r#"{"protocol":"tcp","vip":"10.0.0.1","port":80,"fwmark":1}"#,
                "not a virtual",
            ),
        ];
        for (service, said) in services {
            let e = refused(&with("ipvs_services", &format!("[{service}]")));
            assert!(e.contains(said), "{service}: {e}");
        }
    }

    #[test]
    fn hostile_blackholes_are_refused_and_duplicates_read_once() {
        let blackholes = |v: &str| decode(&with("blackholes", v));
        let refused = |v: &str| blackholes(v).unwrap_err().to_string();
        // Not addresses, or not a list of them.
        for bad in [
            r#"["10.20.0.100/32"]"#,
            r#"["not-an-address"]"#,
            r#"[""]"#,
            r#"["10.20.0.256"]"#,
            r#"[167772260]"#,
            r#"[{"ip":"10.20.0.100"}]"#,
            r#"{"10.20.0.100":true}"#,
            r#""10.20.0.100""#,
            "null",
        ] {
            assert!(refused(bad).starts_with("not a holdings file"), "{bad}");
        }
        let long = format!(r#"["{}"]"#, "1".repeat(100_000));
        assert!(refused(&long).starts_with("not a holdings file"));
        // Addresses lbdeploy never blackholes: cleanup would remove them.
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "::",
            "::1",
            "224.0.0.18",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let e = refused(&format!(r#"["{ip}"]"#));
            assert_eq!(e, format!("{ip} is not a VIP lbdeploy adds"));
        }
        assert!(refused(r#"["255.255.255.255"]"#).contains("not a VIP"));
        // More than a director could announce.
        let many: Vec<String> = (0..=MAX_VIPS as u32)
            .map(|i| nth_v6(0x2001_0db8 << 96, i).to_string())
            .collect();
        assert_eq!(
            blackholes(&serde_json::to_string(&many).unwrap()),
            Err(Error::TooMany("blackholes", MAX_VIPS + 1, MAX_VIPS))
        );
        // The same address many times over is one route to remove.
        let same = vec!["10.20.0.100"; 2 * MAX_VIPS];
        let h = blackholes(&serde_json::to_string(&same).unwrap()).unwrap();
        assert_eq!(h.blackholes.len(), 1);
        // A file from before BGP has none.
        let mut old = serde_json::to_value(Holdings::of(&config(), 2)).unwrap();
        old.as_object_mut().unwrap().remove("blackholes");
        let h = decode(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(h.blackholes.is_empty());
    }

    #[test]
    fn a_seeded_flood_of_random_bytes_is_refused_without_panic() {
        // xorshift: the same bytes on every run, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let valid = Holdings::of(&config(), 2).encode().unwrap();
        for round in 0..2000 {
            let mut bytes = valid.clone();
            for _ in 0..1 + round % 8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % bytes.len();
                bytes[i] = (x >> 32) as u8;
            }
            if let Ok(h) = decode(&bytes) {
                assert!(h.validate().is_ok());
            }
        }
    }

    #[test]
    fn load_refuses_files_others_could_have_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir()
            .join(format!("lbdeploy-holdings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = crate::agent::paths::holdings_file(&dir);
        assert_eq!(load(&file).unwrap(), None);
        let h = Holdings::of(&config(), 2);
        save(&file, &h).unwrap();
        assert_eq!(load(&file).unwrap(), Some(h));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&file.display().to_string()), "{e}");
        assert!(e.contains("only uid"), "{e}");
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &file).unwrap();
        assert!(load(&file).is_err(), "a symlink is not followed");
        std::fs::write(dir.join("garbage"), b"{").unwrap();
        let e = load(&dir.join("garbage")).unwrap_err().to_string();
        assert!(e.contains("garbage: not a holdings file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
