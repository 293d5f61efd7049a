//! Scalar value types of the inventory: durations, bounded integers and
//! interface addresses.
//!
//! Each type parses and checks itself during deserialisation, so a bad value
//! is reported at its own line and column with a message an operator can act
//! on, instead of serde's generic "expected u8".

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

// ===== Duration =====

/// A duration written the human way: `3s`, `100ms`, `1m`, `1m30s`.
///
/// Bare integers are refused: keepalived reads `delay_loop 6` as seconds but
/// `advert_int` in VRRPv3 tools is sometimes centiseconds, and an inventory
/// that is read by people must not depend on which convention a field uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of whole seconds, for defaults.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of milliseconds, for defaults.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// The standard-library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(Duration).map_err(|_| {
            format!(
                "`{s}` is not a duration — write a number with a unit, \
                 such as `3s`, `100ms` or `1m`"
            )
        })
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `3s` or `100ms`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) is not a duration — add the unit, \
                     e.g. `{v}s` for seconds or `{v}ms` for milliseconds"
                )))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) is not a duration — add the unit, \
                     e.g. `{}ms`",
                    (v * 1000.0).round()
                )))
            }
        }

        d.deserialize_any(DurationVisitor)
    }
}

// ===== Bounded =====

/// An integer that must lie in `MIN..=MAX`, checked where it is read.
///
/// Used for ports, VRRP router ids, priorities and weights, whose ranges come
/// from the protocols; the message names the range and the field's purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN: u32, const MAX: u32>(u32);

/// A TCP or UDP port.
pub type Port = Bounded<1, 65535>;
/// A VRRP virtual router id (RFC 5798 §5.2.3).
pub type RouterId = Bounded<1, 255>;
/// A VRRP priority; 255 is the address owner, 0 means "resigning".
pub type Priority = Bounded<1, 255>;
/// An IPVS real-server weight (the kernel stores it in 32 bits, ipvsadm and
/// keepalived accept 0–65535).
pub type Weight = Bounded<0, 65535>;
/// A BGP autonomous system number: four octets (RFC 6793), 0 and
/// 4294967295 reserved (RFC 7607, RFC 7300).
pub type Asn = Bounded<1, 4_294_967_294>;
/// A SCHED_RR priority for the director's VRRP thread (keepalived's
/// `vrrp_rt_priority`): the kernel's range for real-time policies.
pub type RtPriority = Bounded<1, 99>;

impl<const MIN: u32, const MAX: u32> Bounded<MIN, MAX> {
    /// The value, or `None` when it lies outside the bounds.
    pub const fn new(value: u32) -> Option<Self> {
        if value >= MIN && value <= MAX { Some(Self(value)) } else { None }
    }

    /// The value; always within `MIN..=MAX`.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl<const MIN: u32, const MAX: u32> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: u32, const MAX: u32> Serialize for Bounded<MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de>
    for Bounded<MIN, MAX>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let out_of_range = |v: &dyn fmt::Display| {
            de::Error::custom(format!(
                "{v} is outside {MIN}–{MAX} — use a whole number in that range"
            ))
        };
        let value = i64::deserialize(d)?;
        u32::try_from(value)
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| out_of_range(&value))
    }
}

// ===== IfAddr =====

/// An interface address with its prefix length, `192.168.1.21/24`.
///
/// Hosts need the prefix because the lab builds their interfaces from the
/// inventory and VIPs need it because VRRP adds them to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfAddr {
    /// The address itself.
    pub addr: IpAddr,
    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    pub prefix: u8,
}

impl IfAddr {
    /// Whether `other` lies in this address's subnet.
    pub fn contains(&self, other: IpAddr) -> bool {
        match (self.addr, other) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix));
                let mask = mask.unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix));
                let mask = mask.unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IfAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hint = "write the address with its prefix length, \
                    such as `192.168.1.21/24`";
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` has no prefix length — {hint}"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address — {hint}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| {
                format!("`/{prefix}` is not a prefix length (0–{max}) — {hint}")
            })?;
        Ok(IfAddr { addr, prefix })
    }
}

impl Serialize for IfAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IfAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

// ===== ScriptUser =====

/// Who runs a script, check or hook: `USER` or `USER:GROUP`, as `chown`
/// and keepalived's `script_user USER [GROUP]` take it. One scalar, so
/// the inventory line reads like the keepalived line it replaces and an
/// error points at the value itself. Without a group, the user's own
/// (its primary group in `/etc/passwd`) is used, as keepalived does.
///
/// The names are POSIX portable user names (letters, digits, `.`, `_`,
/// `-`, not starting with `-`) of at most [`ScriptUser::NAME_MAX`]
/// bytes: nothing that a shell, a log line or `/etc/passwd`'s `:` could
/// take for something else. The agent resolves them on its host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptUser {
    /// The user's name.
    pub user: String,
    /// The group's name, when not the user's own.
    pub group: Option<String>,
}

impl ScriptUser {
    /// The longest name taken: `useradd`'s limit on most distributions
    /// (32), which is also what fits `utmp`.
    pub const NAME_MAX: usize = 32;

    /// Whether it names root: running as root is running as the agent.
    pub fn is_root(&self) -> bool {
        self.user == "root" && self.group.as_deref().is_none_or(|g| g == "root")
    }
}

/// Why `name` (a user's or group's, `what`) is not a portable name.
fn portable_name(name: &str, what: &str) -> Result<(), String> {
    let hint = "letters, digits, `.`, `_` and `-`, not starting with `-`";
    if name.is_empty() {
        return Err(format!("the {what} name is empty — use {hint}"));
    }
    if name.len() > ScriptUser::NAME_MAX {
        return Err(format!(
            "the {what} name is {} bytes long, over {} — use a shorter one",
            name.len(),
            ScriptUser::NAME_MAX
        ));
    }
    let bad = name.chars().find(|&c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if let Some(c) = bad {
        // Not quoted: the name may be hostile (escape sequences).
        return Err(format!("the {what} name holds {c:?} — use {hint}"));
    }
    if name.starts_with('-') {
        return Err(format!(
            "the {what} name `{name}` starts with `-` — use {hint}"
        ));
    }
    Ok(())
}

impl fmt::Display for ScriptUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

impl FromStr for ScriptUser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        portable_name(user, "user")?;
        if let Some(g) = group {
            portable_name(g, "group")?;
        }
        Ok(ScriptUser {
            user: user.to_owned(),
            group: group.map(str::to_owned),
        })
    }
}

impl Serialize for ScriptUser {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScriptUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected a user name, or `user:group`, such as `nobody` or \
                 `keepalived_script:nogroup`",
            )
        })?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Why `ip` cannot be a VIP, or `None`: an address that is not one
/// host's unicast address — unspecified, loopback, multicast, IPv4
/// broadcast — or an IPv4-mapped IPv6 address (write the IPv4 address;
/// Rust's checks would not even see `::ffff:127.0.0.1` as loopback).
/// The inventory's rule and the agent's, which refuses to hold (and so
/// to clean up) anything else.
pub fn vip_problem(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address (write the IPv4 address)")
        }
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_loopback() => Some("a loopback address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        let d: Duration = serde_yaml::from_str("100ms").unwrap();
        assert_eq!(d.get(), std::time::Duration::from_millis(100));
        let err = serde_yaml::from_str::<Duration>("6").unwrap_err();
        assert!(err.to_string().contains("`6s`"), "{err}");
        assert_eq!(Duration::from_secs(90).to_string(), "1m 30s");
    }

    #[test]
    fn bounded_names_its_range() {
        let err = serde_yaml::from_str::<Priority>("300").unwrap_err();
        assert!(err.to_string().contains("300 is outside 1–255"), "{err}");
        assert!(serde_yaml::from_str::<Weight>("-1").is_err());
        assert_eq!(serde_yaml::from_str::<Weight>("0").unwrap().get(), 0);
        let err = serde_yaml::from_str::<RtPriority>("0").unwrap_err();
        assert!(err.to_string().contains("0 is outside 1–99"), "{err}");
        assert!(serde_yaml::from_str::<RtPriority>("100").is_err());
        assert_eq!(serde_yaml::from_str::<RtPriority>("99").unwrap().get(), 99);
    }

    #[test]
    fn ifaddr_parses_and_contains() {
        let a: IfAddr = "192.168.1.21/24".parse().unwrap();
        assert!(a.contains("192.168.1.200".parse().unwrap()));
        assert!(!a.contains("192.168.2.1".parse().unwrap()));
        assert!("192.168.1.21".parse::<IfAddr>().is_err());
        assert!("192.168.1.21/33".parse::<IfAddr>().is_err());
        let v6: IfAddr = "2001:db8::1/64".parse().unwrap();
        assert!(v6.contains("2001:db8::200".parse().unwrap()));
        let all: IfAddr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn script_users_are_portable_names() {
        let u: ScriptUser = serde_yaml::from_str("nobody").unwrap();
        assert_eq!(u, ScriptUser { user: "nobody".into(), group: None });
        let u: ScriptUser = serde_yaml::from_str("ka_s.1:no-group").unwrap();
        assert_eq!(u.group.as_deref(), Some("no-group"));
        assert_eq!(serde_yaml::to_string(&u).unwrap(), "ka_s.1:no-group\n");
        assert!("root".parse::<ScriptUser>().unwrap().is_root());
        assert!("root:root".parse::<ScriptUser>().unwrap().is_root());
        assert!(!"root:nogroup".parse::<ScriptUser>().unwrap().is_root());
        let cases = [
            ("", "the user name is empty"),
            (":g", "the user name is empty"),
            ("u:", "the group name is empty"),
            ("u:g:h", "the group name holds ':'"),
            ("-oops", "starts with `-`"),
            ("a b", "holds ' '"),
            ("a\nb", "holds '\\n'"),
            ("a\u{1b}[2J", "holds '\\u{1b}'"),
            ("us\u{e9}r", "holds '\u{e9}'"),
            ("$(id)", "holds '$'"),
            ("a/b", "holds '/'"),
        ];
        for (text, why) in cases {
            let e = text.parse::<ScriptUser>().unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let long = "u".repeat(ScriptUser::NAME_MAX + 1);
        assert!(long.parse::<ScriptUser>().unwrap_err().contains("33 bytes"));
        assert!("u".repeat(ScriptUser::NAME_MAX).parse::<ScriptUser>().is_ok());
        let e = serde_yaml::from_str::<ScriptUser>("[a]").unwrap_err();
        assert!(e.to_string().contains("expected a user name"), "{e}");
    }
}
