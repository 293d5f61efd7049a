//! The real servers' MAC addresses, from the kernel's neighbour table (ARP
//! for IPv4, NDP for IPv6): Direct Routing forwards by MAC, so the data
//! plane needs each real server's. A missing entry is resolved by sending
//! the real server one datagram to the discard port, which makes the kernel
//! ask for it; the answer is then read back from the table.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};

use super::nft::Mac;

/// How long to wait for a real server to answer ARP/NDP.
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The usable entries of the neighbour table: address → MAC.
///
/// # Errors
/// When the table cannot be dumped.
pub async fn table(
    handle: &rtnetlink::Handle,
) -> Result<BTreeMap<IpAddr, Mac>, rtnetlink::Error> {
    let msgs: Vec<NeighbourMessage> =
        handle.neighbours().get().execute().try_collect().await?;
    Ok(msgs.iter().filter_map(entry).collect())
}

/// An entry's address and MAC, when it is usable (not failed or
/// incomplete).
fn entry(m: &NeighbourMessage) -> Option<(IpAddr, Mac)> {
    if matches!(
        m.header.state,
        NeighbourState::Failed
            | NeighbourState::Incomplete
            | NeighbourState::None
    ) {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6));
            }
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                mac = Some(Mac(l.as_slice().try_into().ok()?));
            }
            _ => {}
        }
    }
    Some((ip?, mac?))
}

/// The MACs of `wanted`, resolving the ones the table lacks; those that do
/// not answer within `RESOLVE_TIMEOUT` are left out (the caller treats
/// them as down).
///
/// # Errors
/// When the table cannot be read.
pub async fn resolve(
    handle: &rtnetlink::Handle,
    wanted: &[IpAddr],
) -> Result<BTreeMap<IpAddr, Mac>, rtnetlink::Error> {
    let until = Instant::now() + RESOLVE_TIMEOUT;
    let mut poked = false;
    loop {
        let known = table(handle).await?;
        let missing: Vec<&IpAddr> =
            wanted.iter().filter(|ip| !known.contains_key(ip)).collect();
        if missing.is_empty() || Instant::now() >= until {
            return Ok(known
                .into_iter()
                .filter(|(ip, _)| wanted.contains(ip))
                .collect());
        }
        if !poked {
            for ip in missing {
                poke(*ip);
            }
            poked = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Make the kernel resolve `ip`: one empty datagram to its discard port.
fn poke(ip: IpAddr) {
    let local: SocketAddr = match ip {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("valid"),
        IpAddr::V6(_) => "[::]:0".parse().expect("valid"),
    };
    if let Ok(s) = UdpSocket::bind(local) {
        let _ = s.send_to(&[], SocketAddr::new(ip, 9));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(state: NeighbourState, ip: &str, mac: &[u8]) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.state = state;
        let ip: IpAddr = ip.parse().unwrap();
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        m
    }

    #[test]
    fn usable_entries_only() {
        let mac = [2, 0, 0, 0, 0, 1];
        let (ip, m) =
            entry(&msg(NeighbourState::Reachable, "10.0.0.21", &mac)).unwrap();
        assert_eq!((ip.to_string(), m), ("10.0.0.21".into(), Mac(mac)));
        assert!(entry(&msg(NeighbourState::Stale, "fe80::1", &mac)).is_some());
        assert!(
            entry(&msg(NeighbourState::Failed, "10.0.0.21", &mac)).is_none()
        );
        assert!(
            entry(&msg(NeighbourState::Reachable, "10.0.0.21", &[1, 2]))
                .is_none()
        );
    }
}
