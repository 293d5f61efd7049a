//! The bytes of IPVS's generic-netlink messages: pure encode and decode, no
//! socket.
//!
//! The framing (netlink header, flags, attributes) is
//! [`crate::agent::sys::netlink`]'s; here are the generic-netlink controller
//! (`linux/genetlink.h`: the family lookup, `CTRL_CMD_GETFAMILY`) and IPVS
//! itself (`linux/ip_vs.h`: commands, attributes, flags, forwarding
//! methods), every number from the kernel's uapi headers so a reader can
//! check them line by line.
//!
//! ```text
//!  0               1               2               3
//! +---------------------------------------------------------------+
//! |                     nlmsg_len (whole message)                 |  netlink
//! |          nlmsg_type          |          nlmsg_flags           |  header
//! |                           nlmsg_seq                           |  (16 bytes,
//! |                           nlmsg_pid                           |  host order)
//! +---------------+---------------+-------------------------------+
//! |      cmd      |    version    |            reserved           |  genl header
//! +---------------+---------------+-------------------------------+
//! |        nla_len               |        nla_type                |  attributes,
//! |                  payload, padded to 4 bytes ...               |  each padded
//! +---------------------------------------------------------------+
//! ```
//!
//! Decoding checks every length before it reads and returns a
//! [`DecodeError`]; nothing here panics on what the kernel sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::syncd::{Daemon, Role};
use super::{Dest, DestKey, Forward, Proto, ServiceKey, Settings};
use crate::agent::dataplane::stats::Traffic;
use crate::agent::sys::netlink::{
    DecodeError, GENL_HDRLEN, NLA_F_NESTED, attributes, find, need, put,
};

/// `GENL_ID_CTRL` (`linux/genetlink.h`): the controller's fixed family id.
pub(crate) const GENL_ID_CTRL: u16 = 0x10;
/// `CTRL_CMD_GETFAMILY`.
pub(crate) const CTRL_CMD_GETFAMILY: u8 = 3;
/// `CTRL_ATTR_FAMILY_ID` (u16).
const CTRL_ATTR_FAMILY_ID: u16 = 1;
/// `CTRL_ATTR_FAMILY_NAME` (NUL-terminated string).
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// `IPVS_GENL_NAME` (`linux/ip_vs.h`).
pub(crate) const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub(crate) const IPVS_GENL_VERSION: u8 = 1;

/// IPVS commands (`enum { IPVS_CMD_UNSPEC = 0, ... }` in `linux/ip_vs.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Cmd {
    /// `IPVS_CMD_NEW_SERVICE` (also the command of every dumped service).
    NewService = 1,
    /// `IPVS_CMD_SET_SERVICE`.
    SetService = 2,
    /// `IPVS_CMD_DEL_SERVICE`.
    DelService = 3,
    /// `IPVS_CMD_GET_SERVICE`.
    GetService = 4,
    /// `IPVS_CMD_NEW_DEST` (also the command of every dumped destination).
    NewDest = 5,
    /// `IPVS_CMD_SET_DEST`.
    SetDest = 6,
    /// `IPVS_CMD_DEL_DEST`.
    DelDest = 7,
    /// `IPVS_CMD_GET_DEST`.
    GetDest = 8,
    /// `IPVS_CMD_NEW_DAEMON`: start a sync daemon (also the command of
    /// every dumped one).
    NewDaemon = 9,
    /// `IPVS_CMD_DEL_DAEMON`: stop one.
    DelDaemon = 10,
    /// `IPVS_CMD_GET_DAEMON`: the running ones (a dump).
    GetDaemon = 11,
}

// `IPVS_CMD_ATTR_*`: the top-level attributes of an IPVS command.
const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
const CMD_ATTR_DAEMON: u16 = 3;

// `IPVS_DAEMON_ATTR_*`, nested in `IPVS_CMD_ATTR_DAEMON`.
const DAEMON_ATTR_STATE: u16 = 1; // u32, IP_VS_STATE_MASTER / _BACKUP
const DAEMON_ATTR_MCAST_IFN: u16 = 2; // string, IP_VS_IFNAME_MAXLEN
const DAEMON_ATTR_SYNC_ID: u16 = 3; // u32 (the kernel keeps a u8)

/// `IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`.
const IP_VS_STATE_MASTER: u32 = 1;
const IP_VS_STATE_BACKUP: u32 = 2;
/// `IP_VS_IFNAME_MAXLEN`, including the NUL.
const IP_VS_IFNAME_MAXLEN: usize = 16;

// `IPVS_SVC_ATTR_*`, nested in `IPVS_CMD_ATTR_SERVICE`.
const SVC_ATTR_AF: u16 = 1; // u16
const SVC_ATTR_PROTOCOL: u16 = 2; // u16
const SVC_ATTR_ADDR: u16 = 3; // union nf_inet_addr, 16 bytes
const SVC_ATTR_PORT: u16 = 4; // __be16
const SVC_ATTR_FWMARK: u16 = 5; // u32
const SVC_ATTR_SCHED_NAME: u16 = 6; // string, IP_VS_SCHEDNAME_MAXLEN
const SVC_ATTR_FLAGS: u16 = 7; // struct ip_vs_flags { u32 flags, mask }
const SVC_ATTR_TIMEOUT: u16 = 8; // u32, seconds
const SVC_ATTR_NETMASK: u16 = 9; // u32 (IPv4 mask, or IPv6 prefix length)

// `IPVS_DEST_ATTR_*`, nested in `IPVS_CMD_ATTR_DEST`.
const DEST_ATTR_ADDR: u16 = 1; // union nf_inet_addr
const DEST_ATTR_PORT: u16 = 2; // __be16
const DEST_ATTR_FWD_METHOD: u16 = 3; // u32, IP_VS_CONN_F_FWD_MASK bits
const DEST_ATTR_WEIGHT: u16 = 4; // u32
const DEST_ATTR_U_THRESH: u16 = 5; // u32
const DEST_ATTR_L_THRESH: u16 = 6; // u32
const DEST_ATTR_ACTIVE_CONNS: u16 = 7; // u32
const DEST_ATTR_INACT_CONNS: u16 = 8; // u32
const DEST_ATTR_STATS: u16 = 10; // nested IPVS_STATS_ATTR_*, 32-bit counts
const DEST_ATTR_ADDR_FAMILY: u16 = 11; // u16, since Linux 4.x
const DEST_ATTR_STATS64: u16 = 12; // nested IPVS_STATS_ATTR_*, u64, Linux 4.1

// `IPVS_STATS_ATTR_*`, nested in `IPVS_DEST_ATTR_STATS{,64}`: u64 in the
// 64-bit set; in the older one u32 but for the byte counts.
const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_INBYTES: u16 = 4;

/// `IP_VS_SVC_F_HASHED`: set by the kernel on every installed service; not
/// a setting, so decoding clears it.
pub(crate) const IP_VS_SVC_F_HASHED: u32 = 0x2;
/// `IP_VS_CONN_F_FWD_MASK`.
const IP_VS_CONN_F_FWD_MASK: u32 = 0x7;
/// `IP_VS_SCHEDNAME_MAXLEN`, including the NUL.
const IP_VS_SCHEDNAME_MAXLEN: usize = 16;

/// `AF_INET` / `AF_INET6`.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The attributes of `CTRL_CMD_GETFAMILY` for `name`.
pub(crate) fn get_family(name: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    put(&mut buf, CTRL_ATTR_FAMILY_NAME, &cstring(name));
    buf
}

/// The family id in a `CTRL_CMD_GETFAMILY` reply's genl payload.
///
/// # Errors
/// No `CTRL_ATTR_FAMILY_ID`, or a bad one.
pub(crate) fn family_id(genl: &[u8]) -> Result<u16, DecodeError> {
    let attrs = attributes(skip_genl(genl)?)?;
    let id = find(&attrs, CTRL_ATTR_FAMILY_ID)
        .ok_or(DecodeError::Missing("CTRL_ATTR_FAMILY_ID"))?;
    u16_of("CTRL_ATTR_FAMILY_ID", id)
}

/// `IPVS_CMD_ATTR_SERVICE` for a service: only the key when `settings` is
/// `None` (deletions, destination commands, destination dumps), the key
/// and every setting the kernel requires of NEW/SET_SERVICE otherwise
/// (scheduler name, flags with a full mask, timeout, netmask — see
/// `ip_vs_genl_parse_service()`'s `full_entry`).
pub fn service(key: &ServiceKey, settings: Option<&Settings>) -> Vec<u8> {
    let mut inner = Vec::new();
    put(&mut inner, SVC_ATTR_AF, &af(key.is_ipv6()).to_ne_bytes());
    match *key {
        ServiceKey::Addr { proto, addr, port } => {
            put(&mut inner, SVC_ATTR_PROTOCOL, &proto.number().to_ne_bytes());
            put(&mut inner, SVC_ATTR_ADDR, &inet_addr(addr));
            put(&mut inner, SVC_ATTR_PORT, &port.to_be_bytes());
        }
        ServiceKey::Fwmark { mark, .. } => {
            put(&mut inner, SVC_ATTR_FWMARK, &mark.to_ne_bytes());
        }
    }
    if let Some(s) = settings {
        put(&mut inner, SVC_ATTR_SCHED_NAME, &cstring(&s.scheduler));
        let mut flags = s.flags.to_ne_bytes().to_vec();
        flags.extend_from_slice(&u32::MAX.to_ne_bytes()); // mask: all
        put(&mut inner, SVC_ATTR_FLAGS, &flags);
        put(&mut inner, SVC_ATTR_TIMEOUT, &s.timeout.to_ne_bytes());
        put(&mut inner, SVC_ATTR_NETMASK, &s.netmask.to_ne_bytes());
    }
    let mut buf = Vec::new();
    put(&mut buf, CMD_ATTR_SERVICE | NLA_F_NESTED, &inner);
    buf
}

/// `IPVS_CMD_ATTR_DEST` for a destination: only the key (address, port,
/// address family) when `dest` is `None` (deletion), and forwarding
/// method, weight and both thresholds — all required of NEW/SET_DEST —
/// otherwise.
pub(crate) fn dest(key: &DestKey, dest: Option<&Dest>) -> Vec<u8> {
    let mut inner = Vec::new();
    put(&mut inner, DEST_ATTR_ADDR, &inet_addr(key.addr));
    put(&mut inner, DEST_ATTR_PORT, &key.port.to_be_bytes());
    put(
        &mut inner,
        DEST_ATTR_ADDR_FAMILY,
        &af(key.addr.is_ipv6()).to_ne_bytes(),
    );
    if let Some(d) = dest {
        put(&mut inner, DEST_ATTR_FWD_METHOD, &d.forward.bits().to_ne_bytes());
        put(&mut inner, DEST_ATTR_WEIGHT, &d.weight.to_ne_bytes());
        put(&mut inner, DEST_ATTR_U_THRESH, &d.upper.to_ne_bytes());
        put(&mut inner, DEST_ATTR_L_THRESH, &d.lower.to_ne_bytes());
    }
    let mut buf = Vec::new();
    put(&mut buf, CMD_ATTR_DEST | NLA_F_NESTED, &inner);
    buf
}

/// `IPVS_CMD_ATTR_DAEMON` for a sync daemon: its state alone when `start`
/// is false (`DEL_DAEMON` names a daemon by it), with the multicast
/// interface and the sync id otherwise (all three required of
/// `NEW_DAEMON`, see `ip_vs_genl_new_daemon()`).
pub(crate) fn daemon(d: &Daemon, start: bool) -> Vec<u8> {
    let mut inner = Vec::new();
    put(&mut inner, DAEMON_ATTR_STATE, &state(d.role).to_ne_bytes());
    if start {
        put(&mut inner, DAEMON_ATTR_MCAST_IFN, &cstring(&d.interface));
        put(
            &mut inner,
            DAEMON_ATTR_SYNC_ID,
            &u32::from(d.sync_id).to_ne_bytes(),
        );
    }
    let mut buf = Vec::new();
    put(&mut buf, CMD_ATTR_DAEMON | NLA_F_NESTED, &inner);
    buf
}

const fn state(role: Role) -> u32 {
    match role {
        Role::Master => IP_VS_STATE_MASTER,
        Role::Backup => IP_VS_STATE_BACKUP,
    }
}

/// A sync daemon from one message of an `IPVS_CMD_GET_DAEMON` dump (its
/// genl payload; `ip_vs_genl_dump_daemon()` sends one per running
/// daemon, with more attributes than these three, which are ignored).
///
/// # Errors
/// A missing or malformed attribute, an unknown state, a sync id above
/// 255 or an interface name too long.
pub(crate) fn decode_daemon(genl: &[u8]) -> Result<Daemon, DecodeError> {
    let top = attributes(skip_genl(genl)?)?;
    let nested = find(&top, CMD_ATTR_DAEMON)
        .ok_or(DecodeError::Missing("IPVS_CMD_ATTR_DAEMON"))?;
    let a = attributes(nested)?;
    let get = |ty, name| find(&a, ty).ok_or(DecodeError::Missing(name));
    let what = "IPVS_DAEMON_ATTR_STATE";
    let role = match u32_of(what, get(DAEMON_ATTR_STATE, what)?)? {
        IP_VS_STATE_MASTER => Role::Master,
        IP_VS_STATE_BACKUP => Role::Backup,
        other => {
            return Err(DecodeError::Bad {
                what,
                detail: format!("state {other}"),
            });
        }
    };
    let what = "IPVS_DAEMON_ATTR_SYNC_ID";
    let id = u32_of(what, get(DAEMON_ATTR_SYNC_ID, what)?)?;
    let sync_id = u8::try_from(id)
        .map_err(|_| DecodeError::Bad { what, detail: format!("id {id}") })?;
    let what = "IPVS_DAEMON_ATTR_MCAST_IFN";
    let interface = bounded_string(
        what,
        get(DAEMON_ATTR_MCAST_IFN, what)?,
        IP_VS_IFNAME_MAXLEN,
    )?;
    Ok(Daemon { role, interface, sync_id })
}

/// A service from one message of an `IPVS_CMD_GET_SERVICE` dump (its genl
/// payload). The kernel's own `IP_VS_SVC_F_HASHED` is cleared.
///
/// # Errors
/// A missing or malformed attribute.
pub(crate) fn decode_service(
    genl: &[u8],
) -> Result<(ServiceKey, Settings), DecodeError> {
    let top = attributes(skip_genl(genl)?)?;
    let nested = find(&top, CMD_ATTR_SERVICE)
        .ok_or(DecodeError::Missing("IPVS_CMD_ATTR_SERVICE"))?;
    let a = attributes(nested)?;
    let get = |ty, name| find(&a, ty).ok_or(DecodeError::Missing(name));
    let v6 = family_is_v6("IPVS_SVC_ATTR_AF", get(SVC_ATTR_AF, "AF")?)?;
    let key = match find(&a, SVC_ATTR_FWMARK) {
        Some(m) if u32_of("IPVS_SVC_ATTR_FWMARK", m)? != 0 => {
            ServiceKey::Fwmark { v6, mark: u32_of("IPVS_SVC_ATTR_FWMARK", m)? }
        }
        _ => ServiceKey::Addr {
            proto: Proto::from_number(u16_of(
                "IPVS_SVC_ATTR_PROTOCOL",
                get(SVC_ATTR_PROTOCOL, "IPVS_SVC_ATTR_PROTOCOL")?,
            )?),
            addr: addr_of(
                "IPVS_SVC_ATTR_ADDR",
                get(SVC_ATTR_ADDR, "IPVS_SVC_ATTR_ADDR")?,
                v6,
            )?,
            port: be16_of(
                "IPVS_SVC_ATTR_PORT",
                get(SVC_ATTR_PORT, "IPVS_SVC_ATTR_PORT")?,
            )?,
        },
    };
    let flags = get(SVC_ATTR_FLAGS, "IPVS_SVC_ATTR_FLAGS")?;
    need("IPVS_SVC_ATTR_FLAGS", flags, 8)?;
    let settings = Settings {
        scheduler: string_of(
            "IPVS_SVC_ATTR_SCHED_NAME",
            get(SVC_ATTR_SCHED_NAME, "IPVS_SVC_ATTR_SCHED_NAME")?,
        )?,
        flags: u32_of("IPVS_SVC_ATTR_FLAGS", &flags[..4])?
            & !IP_VS_SVC_F_HASHED,
        timeout: u32_of(
            "IPVS_SVC_ATTR_TIMEOUT",
            get(SVC_ATTR_TIMEOUT, "IPVS_SVC_ATTR_TIMEOUT")?,
        )?,
        netmask: u32_of(
            "IPVS_SVC_ATTR_NETMASK",
            get(SVC_ATTR_NETMASK, "IPVS_SVC_ATTR_NETMASK")?,
        )?,
    };
    Ok((key, settings))
}

/// A destination from one message of an `IPVS_CMD_GET_DEST` dump, with
/// what the kernel counted of it ([`traffic`]). Its address family is
/// `IPVS_DEST_ATTR_ADDR_FAMILY` when the kernel sends it, else the
/// service's (`service_v6`), as on kernels before 4.x.
///
/// # Errors
/// A missing or malformed attribute.
pub(crate) fn decode_dest(
    genl: &[u8],
    service_v6: bool,
) -> Result<(DestKey, Dest, Traffic), DecodeError> {
    let top = attributes(skip_genl(genl)?)?;
    let nested = find(&top, CMD_ATTR_DEST)
        .ok_or(DecodeError::Missing("IPVS_CMD_ATTR_DEST"))?;
    let a = attributes(nested)?;
    let get = |ty, name| find(&a, ty).ok_or(DecodeError::Missing(name));
    let v6 = match find(&a, DEST_ATTR_ADDR_FAMILY) {
        Some(f) => family_is_v6("IPVS_DEST_ATTR_ADDR_FAMILY", f)?,
        None => service_v6,
    };
    let key = DestKey {
        addr: addr_of(
            "IPVS_DEST_ATTR_ADDR",
            get(DEST_ATTR_ADDR, "IPVS_DEST_ATTR_ADDR")?,
            v6,
        )?,
        port: be16_of(
            "IPVS_DEST_ATTR_PORT",
            get(DEST_ATTR_PORT, "IPVS_DEST_ATTR_PORT")?,
        )?,
    };
    let u32_attr =
        |ty, name| -> Result<u32, DecodeError> { u32_of(name, get(ty, name)?) };
    let fwd = u32_attr(DEST_ATTR_FWD_METHOD, "IPVS_DEST_ATTR_FWD_METHOD")?;
    let dest = Dest {
        forward: Forward::from_bits(fwd & IP_VS_CONN_F_FWD_MASK),
        weight: u32_attr(DEST_ATTR_WEIGHT, "IPVS_DEST_ATTR_WEIGHT")?,
        upper: u32_attr(DEST_ATTR_U_THRESH, "IPVS_DEST_ATTR_U_THRESH")?,
        lower: u32_attr(DEST_ATTR_L_THRESH, "IPVS_DEST_ATTR_L_THRESH")?,
    };
    Ok((key, dest, traffic(&a)?))
}

/// A destination's counts: the 64-bit statistics where the kernel sends
/// them, else the older ones; the connection entries. What a kernel does
/// not send counts zero.
///
/// # Errors
/// A counter of the wrong size, or a malformed nested attribute.
fn traffic(dest: &[(u16, &[u8])]) -> Result<Traffic, DecodeError> {
    let conns = |ty, name| match find(dest, ty) {
        Some(b) => u32_of(name, b),
        None => Ok(0),
    };
    let mut t = Traffic {
        active_connections: Some(conns(
            DEST_ATTR_ACTIVE_CONNS,
            "IPVS_DEST_ATTR_ACTIVE_CONNS",
        )?),
        inactive_connections: Some(conns(
            DEST_ATTR_INACT_CONNS,
            "IPVS_DEST_ATTR_INACT_CONNS",
        )?),
        ..Traffic::default()
    };
    let stats =
        find(dest, DEST_ATTR_STATS64).or_else(|| find(dest, DEST_ATTR_STATS));
    let Some(stats) = stats else {
        t.connections = Some(0);
        return Ok(t);
    };
    let s = attributes(stats)?;
    let count = |ty, name| match find(&s, ty) {
        Some(b) => count_of(name, b),
        None => Ok(0),
    };
    t.connections = Some(count(STATS_ATTR_CONNS, "IPVS_STATS_ATTR_CONNS")?);
    t.packets = count(STATS_ATTR_INPKTS, "IPVS_STATS_ATTR_INPKTS")?;
    t.bytes = count(STATS_ATTR_INBYTES, "IPVS_STATS_ATTR_INBYTES")?;
    Ok(t)
}

/// A counter as the statistics carry it: 4 or 8 bytes, host order.
fn count_of(what: &'static str, b: &[u8]) -> Result<u64, DecodeError> {
    match b.len() {
        4 => Ok(u64::from(u32_of(what, b)?)),
        8 => Ok(u64::from_ne_bytes(b.try_into().unwrap())),
        n => Err(DecodeError::Bad { what, detail: format!("{n} bytes") }),
    }
}

/// The genl payload's attributes, past the genl header.
fn skip_genl(genl: &[u8]) -> Result<&[u8], DecodeError> {
    need("genl header", genl, GENL_HDRLEN)?;
    Ok(&genl[GENL_HDRLEN..])
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

const fn af(v6: bool) -> u16 {
    if v6 { AF_INET6 } else { AF_INET }
}

/// `union nf_inet_addr`: 16 bytes, an IPv4 address in the first four (as
/// libipvs sends it).
fn inet_addr(addr: IpAddr) -> [u8; 16] {
    let mut out = [0; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

fn u16_of(what: &'static str, b: &[u8]) -> Result<u16, DecodeError> {
    need(what, b, 2)?;
    Ok(u16::from_ne_bytes([b[0], b[1]]))
}

fn be16_of(what: &'static str, b: &[u8]) -> Result<u16, DecodeError> {
    need(what, b, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_of(what: &'static str, b: &[u8]) -> Result<u32, DecodeError> {
    need(what, b, 4)?;
    Ok(u32::from_ne_bytes(b[0..4].try_into().unwrap()))
}

fn family_is_v6(what: &'static str, b: &[u8]) -> Result<bool, DecodeError> {
    match u16_of(what, b)? {
        AF_INET => Ok(false),
        AF_INET6 => Ok(true),
        other => {
            Err(DecodeError::Bad { what, detail: format!("family {other}") })
        }
    }
}

fn addr_of(
    what: &'static str,
    b: &[u8],
    v6: bool,
) -> Result<IpAddr, DecodeError> {
    if v6 {
        need(what, b, 16)?;
        let o: [u8; 16] = b[..16].try_into().unwrap();
        Ok(IpAddr::V6(Ipv6Addr::from(o)))
    } else {
        need(what, b, 4)?;
        Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
    }
}

fn string_of(what: &'static str, b: &[u8]) -> Result<String, DecodeError> {
    bounded_string(what, b, IP_VS_SCHEDNAME_MAXLEN)
}

/// A NUL-terminated string of fewer than `max` bytes (`max` counts the
/// NUL, as the kernel's `*_MAXLEN`).
fn bounded_string(
    what: &'static str,
    b: &[u8],
    max: usize,
) -> Result<String, DecodeError> {
    let b = b.split(|c| *c == 0).next().unwrap_or_default();
    if b.len() >= max {
        return Err(DecodeError::Bad {
            what,
            detail: format!("{} bytes, at most {}", b.len(), max - 1),
        });
    }
    String::from_utf8(b.to_vec())
        .map_err(|e| DecodeError::Bad { what, detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dataplane::ipvs::IP_VS_SVC_F_PERSISTENT;
    use crate::agent::sys::netlink::{error_code, messages, request};
    use crate::util::hex::hex;

    fn v4_web() -> ServiceKey {
        ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: "10.0.0.100".parse().unwrap(),
            port: 80,
        }
    }

    /// A dumped message: genl header (`NEW_SERVICE`) then `attrs`, as the
    /// kernel's `ip_vs_genl_fill_service()` lays it out, stats omitted.
    fn dumped(cmd: Cmd, attrs: &[u8]) -> Vec<u8> {
        let mut b = vec![cmd as u8, IPVS_GENL_VERSION, 0, 0];
        b.extend_from_slice(attrs);
        b
    }

    #[test]
    fn service_key_only_encodes_af_protocol_addr_port() {
        let b = service(&v4_web(), None);
        // Nested header (type 1 | NLA_F_NESTED), AF=2, PROTOCOL=6, ADDR in
        // 16 bytes, PORT 80 big-endian; each padded to 4 bytes.
        assert_eq!(
            hex(&b),
            concat!(
                "30000180",
                "0600010002000000",
                "0600020006000000",
                "14000300",
                "0a000064000000000000000000000000",
                "0600040000500000",
            )
        );
    }

    #[test]
    fn new_service_carries_every_required_setting() {
        let s = Settings {
            scheduler: "wrr".into(),
            flags: IP_VS_SVC_F_PERSISTENT,
            timeout: 60,
            netmask: u32::MAX,
        };
        let b = service(&v4_web(), Some(&s));
        let top = attributes(&b).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, CMD_ATTR_SERVICE);
        let a = attributes(top[0].1).unwrap();
        let types: Vec<u16> = a.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, [1, 2, 3, 4, 6, 7, 8, 9]);
        assert_eq!(find(&a, SVC_ATTR_SCHED_NAME), Some(&b"wrr\0"[..]));
        assert_eq!(hex(find(&a, SVC_ATTR_FLAGS).unwrap()), "01000000ffffffff");
        assert_eq!(hex(find(&a, SVC_ATTR_TIMEOUT).unwrap()), "3c000000");
        // And it decodes back (a dump also carries the kernel's HASHED).
        let mut dump = b.clone();
        let flags_at = dump
            .windows(8)
            .position(|w| w == [1, 0, 0, 0, 255, 255, 255, 255])
            .unwrap();
        dump[flags_at] |= IP_VS_SVC_F_HASHED as u8;
        let (key, got) =
            decode_service(&dumped(Cmd::NewService, &dump)).unwrap();
        assert_eq!(key, v4_web());
        assert_eq!(got, s);
    }

    #[test]
    fn ipv6_service_and_dest_round_trip() {
        let key = ServiceKey::Addr {
            proto: Proto::Udp,
            addr: "2001:db8::100".parse().unwrap(),
            port: 53,
        };
        let s = Settings {
            scheduler: "sh".into(),
            flags: 0,
            timeout: 0,
            netmask: 128,
        };
        let b = service(&key, Some(&s));
        assert_eq!(
            decode_service(&dumped(Cmd::NewService, &b)).unwrap(),
            (key, s)
        );
        let dk = DestKey { addr: "2001:db8::1".parse().unwrap(), port: 53 };
        let d = Dest { forward: Forward::Route, weight: 7, upper: 0, lower: 0 };
        let b = dest(&dk, Some(&d));
        let (k, got, _) = decode_dest(&dumped(Cmd::NewDest, &b), true).unwrap();
        assert_eq!((k, got), (dk, d));
    }

    #[test]
    fn dest_encodes_forwarding_methods_as_ip_vs_h() {
        let dk = DestKey { addr: "10.0.1.1".parse().unwrap(), port: 80 };
        for (fwd, bits) in
            [(Forward::Masq, 0u32), (Forward::Tunnel, 2), (Forward::Route, 3)]
        {
            let d = Dest { forward: fwd, weight: 1, upper: 0, lower: 0 };
            let b = dest(&dk, Some(&d));
            let top = attributes(&b).unwrap();
            assert_eq!(top[0].0, CMD_ATTR_DEST);
            let a = attributes(top[0].1).unwrap();
            let types: Vec<u16> = a.iter().map(|(t, _)| *t).collect();
            assert_eq!(types, [1, 2, 11, 3, 4, 5, 6]);
            assert_eq!(
                find(&a, DEST_ATTR_FWD_METHOD).unwrap(),
                bits.to_ne_bytes()
            );
            assert_eq!(find(&a, DEST_ATTR_PORT).unwrap(), [0, 80]);
        }
    }

    #[test]
    fn dest_without_family_attribute_takes_the_services() {
        // An old kernel's dump: ADDR, PORT, FWD_METHOD (DR with the
        // kernel's NOOUTPUT bit outside the mask), WEIGHT, thresholds.
        let mut inner = Vec::new();
        put(
            &mut inner,
            DEST_ATTR_ADDR,
            &inet_addr("10.0.1.2".parse().unwrap()),
        );
        put(&mut inner, DEST_ATTR_PORT, &80u16.to_be_bytes());
        put(&mut inner, DEST_ATTR_FWD_METHOD, &0x83u32.to_ne_bytes());
        put(&mut inner, DEST_ATTR_WEIGHT, &3u32.to_ne_bytes());
        put(&mut inner, DEST_ATTR_U_THRESH, &0u32.to_ne_bytes());
        put(&mut inner, DEST_ATTR_L_THRESH, &0u32.to_ne_bytes());
        let mut top = Vec::new();
        put(&mut top, CMD_ATTR_DEST, &inner);
        let (k, d, t) =
            decode_dest(&dumped(Cmd::NewDest, &top), false).unwrap();
        assert_eq!(k.addr, "10.0.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(d.forward, Forward::Route);
        assert_eq!(d.weight, 3);
        // Nothing counted said: zero, not unknown.
        let zero = Traffic {
            connections: Some(0),
            active_connections: Some(0),
            inactive_connections: Some(0),
            ..Traffic::default()
        };
        assert_eq!(t, zero);
    }

    /// A dump's destination (10.0.1.3:80, DR, weight 1) with `more`
    /// attributes after the settings.
    fn dumped_dest(more: &[u8]) -> Vec<u8> {
        let dk = DestKey { addr: "10.0.1.3".parse().unwrap(), port: 80 };
        let d = Dest { forward: Forward::Route, weight: 1, upper: 0, lower: 0 };
        let top = dest(&dk, Some(&d));
        let mut inner = attributes(&top).unwrap()[0].1.to_vec();
        inner.extend_from_slice(more);
        let mut top = Vec::new();
        put(&mut top, CMD_ATTR_DEST, &inner);
        dumped(Cmd::NewDest, &top)
    }

    /// Its connection entries and statistics: `DEST_ATTR_STATS64` (u64)
    /// where the kernel has it, else `DEST_ATTR_STATS` (u32 counts, u64
    /// bytes).
    fn counted(stats_attr: u16, wide: bool) -> Vec<u8> {
        let mut more = Vec::new();
        put(&mut more, DEST_ATTR_ACTIVE_CONNS, &4u32.to_ne_bytes());
        put(&mut more, DEST_ATTR_INACT_CONNS, &2u32.to_ne_bytes());
        let mut stats = Vec::new();
        let count = |n: u64| match wide {
            true => n.to_ne_bytes().to_vec(),
            false => (n as u32).to_ne_bytes().to_vec(),
        };
        put(&mut stats, STATS_ATTR_CONNS, &count(9));
        put(&mut stats, STATS_ATTR_INPKTS, &count(1_000));
        put(&mut stats, 3, &count(0)); // OUTPKTS: none through a DR director
        put(&mut stats, STATS_ATTR_INBYTES, &(5_000_000_000u64).to_ne_bytes());
        put(&mut more, stats_attr, &stats);
        dumped_dest(&more)
    }

    #[test]
    fn a_dests_counts_decode_from_either_statistics_set() {
        let want = Traffic {
            packets: 1_000,
            bytes: 5_000_000_000,
            connections: Some(9),
            active_connections: Some(4),
            inactive_connections: Some(2),
        };
        for (attr, wide) in
            [(DEST_ATTR_STATS64, true), (DEST_ATTR_STATS, false)]
        {
            let (_, _, t) = decode_dest(&counted(attr, wide), false).unwrap();
            assert_eq!(t, want, "attribute {attr}");
        }
    }

    #[test]
    fn a_counter_of_another_size_is_an_error() {
        let mut stats = Vec::new();
        put(&mut stats, STATS_ATTR_INPKTS, &[1, 2, 3]);
        let mut more = Vec::new();
        put(&mut more, DEST_ATTR_STATS64, &stats);
        let e = decode_dest(&dumped_dest(&more), false).unwrap_err();
        assert!(e.to_string().contains("IPVS_STATS_ATTR_INPKTS"), "{e}");
    }

    #[test]
    fn request_header_and_family_reply() {
        let b = request(
            GENL_ID_CTRL,
            0,
            7,
            CTRL_CMD_GETFAMILY,
            1,
            &get_family("IPVS"),
        );
        assert_eq!(
            hex(&b),
            concat!(
                "20000000", // length 32
                "1000",     // GENL_ID_CTRL
                "0100",     // NLM_F_REQUEST
                "07000000", // seq
                "00000000", // pid
                "03010000", // CTRL_CMD_GETFAMILY, version 1
                "09000200", // CTRL_ATTR_FAMILY_NAME, 9 bytes
                "4950565300000000",
            )
        );
        let msgs = messages(&b).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].kind, msgs[0].seq), (GENL_ID_CTRL, 7));
        // A reply holding CTRL_ATTR_FAMILY_ID = 0x25 among other attributes.
        let mut attrs = get_family("IPVS");
        put(&mut attrs, CTRL_ATTR_FAMILY_ID, &0x25u16.to_ne_bytes());
        let mut genl = vec![1, 2, 0, 0];
        genl.extend_from_slice(&attrs);
        assert_eq!(family_id(&genl), Ok(0x25));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(messages(&[1, 0, 0]).is_err());
        assert!(
            messages(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .is_err()
        );
        assert!(decode_service(&[]).is_err());
        assert!(decode_service(&[1, 1, 0, 0, 8, 0, 1, 0]).is_err());
        assert_eq!(
            decode_service(&[1, 1, 0, 0]),
            Err(DecodeError::Missing("IPVS_CMD_ATTR_SERVICE"))
        );
        let b = service(&v4_web(), None);
        for cut in 0..b.len() {
            let _ = decode_service(&dumped(Cmd::NewService, &b[..cut]));
        }
        assert_eq!(error_code(&(-2i32).to_ne_bytes()), Ok(-2));
        let d = daemon(&backup_eth0(), true);
        for cut in 0..d.len() {
            let _ = decode_daemon(&dumped(Cmd::NewDaemon, &d[..cut]));
        }
    }

    fn backup_eth0() -> Daemon {
        Daemon { role: Role::Backup, interface: "eth0".into(), sync_id: 51 }
    }

    #[test]
    fn new_daemon_carries_state_interface_and_sync_id() {
        // Nested header (type 3 | NLA_F_NESTED), STATE=2 (backup),
        // MCAST_IFN "eth0\0" padded to 8, SYNC_ID=51 as a u32.
        assert_eq!(
            hex(&daemon(&backup_eth0(), true)),
            concat!(
                "20000380",
                "0800010002000000",
                "0900020065746830",
                "00000000",
                "0800030033000000",
            )
        );
        let master = Daemon { role: Role::Master, ..backup_eth0() };
        // DEL_DAEMON: the state alone.
        assert_eq!(
            hex(&daemon(&master, false)),
            concat!("0c000380", "0800010001000000")
        );
    }

    #[test]
    fn a_dumped_daemon_decodes_and_extra_attributes_are_ignored() {
        let mut attrs = daemon(&backup_eth0(), true);
        // What the kernel adds (SYNC_MAXLEN, MCAST_PORT, MCAST_TTL)
        // inside the nest: appended, with the nest's length fixed.
        let mut extra = Vec::new();
        put(&mut extra, 4, &1472u16.to_ne_bytes());
        put(&mut extra, 7, &8848u16.to_ne_bytes());
        put(&mut extra, 8, &[1]);
        attrs.extend_from_slice(&extra);
        let len = u16::try_from(attrs.len()).unwrap();
        attrs[..2].copy_from_slice(&len.to_ne_bytes());
        let got = decode_daemon(&dumped(Cmd::NewDaemon, &attrs));
        assert_eq!(got, Ok(backup_eth0()));
        let master = Daemon { role: Role::Master, ..backup_eth0() };
        assert_eq!(
            decode_daemon(&dumped(Cmd::NewDaemon, &daemon(&master, true))),
            Ok(master)
        );
    }

    #[test]
    fn a_daemon_of_unknown_state_or_long_name_is_an_error() {
        let mut inner = Vec::new();
        put(&mut inner, DAEMON_ATTR_STATE, &3u32.to_ne_bytes());
        put(&mut inner, DAEMON_ATTR_MCAST_IFN, b"eth0\0");
        put(&mut inner, DAEMON_ATTR_SYNC_ID, &1u32.to_ne_bytes());
        let mut top = Vec::new();
        put(&mut top, CMD_ATTR_DAEMON | NLA_F_NESTED, &inner);
        assert!(decode_daemon(&dumped(Cmd::NewDaemon, &top)).is_err());
        let long = Daemon { interface: "a".repeat(16), ..backup_eth0() };
        assert!(
            decode_daemon(&dumped(Cmd::NewDaemon, &daemon(&long, true)))
                .is_err()
        );
        let mut inner = Vec::new();
        put(&mut inner, DAEMON_ATTR_STATE, &1u32.to_ne_bytes());
        put(&mut inner, DAEMON_ATTR_MCAST_IFN, b"eth0\0");
        put(&mut inner, DAEMON_ATTR_SYNC_ID, &256u32.to_ne_bytes());
        let mut top = Vec::new();
        put(&mut top, CMD_ATTR_DAEMON | NLA_F_NESTED, &inner);
        assert!(decode_daemon(&dumped(Cmd::NewDaemon, &top)).is_err());
        assert_eq!(
            decode_daemon(&[9, 1, 0, 0]),
            Err(DecodeError::Missing("IPVS_CMD_ATTR_DAEMON"))
        );
    }
}
