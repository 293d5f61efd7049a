//! What an import reads besides the files' contents: the files and the
//! facts keepalived.conf does not hold, as the command line gives them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::inventory::{Dataplane, IfAddr, Lab};

/// `[NAME=]FILE`: a director's keepalived.conf or a real server's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The host's name; from `router_id` or the file name when absent.
    pub name: Option<String>,
    /// The file.
    pub path: PathBuf,
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some(("", _)) | Some((_, "")) => Err(format!(
                "`{s}`: write NAME=FILE, e.g. keepalived01=ka01.conf"
            )),
            Some((name, path)) => {
                Ok(Source { name: Some(name.to_owned()), path: path.into() })
            }
            None => Ok(Source { name: None, path: s.into() }),
        }
    }
}

/// `NAME=ADDRESS/PREFIX[@IFACE]`: a host's own address, which
/// keepalived.conf may not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The host (a director's or a real server's name).
    pub name: String,
    /// Its address and prefix.
    pub address: IfAddr,
    /// Its interface, when keepalived.conf or the script does not say.
    pub interface: Option<String>,
}

impl FromStr for HostSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "write NAME=ADDRESS/PREFIX[@IFACE], e.g. \
                     rs01=192.168.1.21/24@eth0";
        let (name, rest) = s
            .split_once('=')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| format!("`{s}`: {usage}"))?;
        let (address, interface) = match rest.split_once('@') {
            Some((a, i)) => (a, Some(i.to_owned())),
            None => (rest, None),
        };
        let address = address.parse().map_err(|e| format!("`{s}`: {e}"))?;
        Ok(HostSpec { name: name.to_owned(), address, interface })
    }
}

/// Parse `NAME=VIP:PORT` (`[V6]:PORT` for IPv6).
///
/// # Errors
/// A message saying how to write it.
pub(crate) fn parse_service_name(
    s: &str,
) -> Result<(String, SocketAddr), String> {
    let usage = "write NAME=VIP:PORT, e.g. web=192.168.1.200:80";
    let (name, at) =
        s.split_once('=').ok_or_else(|| format!("`{s}`: {usage}"))?;
    let at = at.parse().map_err(|_| format!("`{s}`: {usage}"))?;
    Ok((name.to_owned(), at))
}

/// Everything an import reads.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The directors' keepalived.conf files, in the order of the inventory.
    pub directors: Vec<Source>,
    /// Real-server scripts.
    pub scripts: Vec<Source>,
    /// Hosts' addresses not in the files.
    pub hosts: Vec<HostSpec>,
    /// The cluster's name; the directors' common name stem when absent.
    pub cluster: Option<String>,
    /// Names for virtual services.
    pub services: Vec<(String, SocketAddr)>,
    /// The lab section, when the inventory is also used with `lbdeploy lab`.
    pub lab: Option<Lab>,
    /// Files of mangle rules (`iptables-save`, nft) that say which
    /// packets each `virtual_server fwmark N`'s mark is set on.
    pub fwmark_rules: Vec<PathBuf>,
    /// The data plane to write; `auto` when absent.
    pub dataplane: Option<Dataplane>,
}
