//! The `udp` check (keepalived's `UDP_CHECK`): one datagram to the real
//! server over the exchange `datagram` shares with `dns`, then an ICMP
//! error, a reply or silence. What counts as up, and where it differs
//! from keepalived, is said on [`UdpCheck`]; [`judge`] decides, pure.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::datagram::{Exchange, MAX_DATAGRAM};
use super::probe::{Misconfigured, Probe};
use crate::inventory::{HexByte, UDP_MAX_PAYLOAD, UdpCheck, hex_bytes};

/// What keepalived sends without a `payload` (`set_buf`, layer4.c): its
/// text repeated to `UDP_BUFSIZE`, 32 bytes.
const KEEPALIVED_PAYLOAD: &[u8; 32] = b"keepalived check - keepalived ch";

/// A `udp` check of `server` (its port unless `connect_port` says
/// otherwise).
pub(crate) fn arm(c: &UdpCheck, server: SocketAddr) -> Box<dyn Probe> {
    let port = c.connect_port.map_or(server.port(), |p| p.get() as u16);
    match want(c) {
        Ok(want) => {
            Box::new(Udp { to: SocketAddr::new(server.ip(), port), want })
        }
        Err(why) => Box::new(Misconfigured(why)),
    }
}

/// What the check sends, and what it asks of the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Want {
    /// The datagram sent.
    pub(crate) payload: Vec<u8>,
    /// What a reply must be; `None`: none is needed.
    pub(crate) reply: Option<Reply>,
}

/// What a required reply must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Its first bytes, as far as both go (keepalived's comparison).
    pub(crate) pattern: Vec<HexByte>,
    /// Its length, bounds included.
    pub(crate) min: usize,
    pub(crate) max: usize,
}

/// What check `c` sends and asks, read once.
///
/// # Errors
/// Hex or lengths validation would have refused.
pub(crate) fn want(c: &UdpCheck) -> Result<Want, String> {
    let payload = match &c.payload {
        Some(hex) => hex_bytes(hex, false)
            .map_err(|e| format!("udp: payload: {e}"))?
            .iter()
            .map(|b| b.value)
            .collect(),
        None => KEEPALIVED_PAYLOAD.to_vec(),
    };
    if payload.len() > UDP_MAX_PAYLOAD {
        return Err(format!("udp: payload of {} bytes", payload.len()));
    }
    let reply = match c.require_reply {
        false => None,
        true => Some(Reply {
            pattern: match &c.reply {
                Some(hex) => hex_bytes(hex, true)
                    .map_err(|e| format!("udp: reply: {e}"))?,
                None => Vec::new(),
            },
            min: c.min_reply_length.unwrap_or(0) as usize,
            max: c.max_reply_length.map_or(UDP_MAX_PAYLOAD, |m| m as usize),
        }),
    };
    Ok(Want { payload, reply })
}

struct Udp {
    to: SocketAddr,
    want: Want,
}

impl Probe for Udp {
    fn check(&self, limit: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(udp(self.to, &self.want, limit))
    }
}

/// Whether the server passes, given the datagram it answered (`None`:
/// silence until the timeout of `limit`). An ICMP error never gets here:
/// it fails the check where it is read.
///
/// # Errors
/// Why the server fails.
pub(crate) fn judge(
    reply: Option<&[u8]>,
    want: &Want,
    limit: Duration,
) -> Result<(), String> {
    let (Some(r), Some(got)) = (&want.reply, reply) else {
        return match (&want.reply, reply) {
            // keepalived: "we consider it success unless require_reply
            // is set" (udp_socket_state, layer4.c).
            (None, _) => Ok(()),
            _ => Err(format!("udp: no reply within {limit:?}")),
        };
    };
    if !(r.min..=r.max).contains(&got.len()) {
        return Err(format!(
            "udp: a reply of {} bytes, not {}–{}",
            got.len(),
            r.min,
            r.max
        ));
    }
    let differs = r
        .pattern
        .iter()
        .zip(got)
        .position(|(want, got)| (want.value ^ got) & want.care != 0);
    match differs {
        None => Ok(()),
        Some(at) => Err(format!(
            "udp: the reply's byte {at} is {:02x}, not {}",
            got[at],
            hex_byte(r.pattern[at])
        )),
    }
}

/// A pattern byte as written: two hex digits, `x` for one that matches
/// anything.
fn hex_byte(b: HexByte) -> String {
    let digit = |shift: u8| match (b.care >> shift) & 0xf {
        0 => 'x',
        _ => char::from_digit(u32::from((b.value >> shift) & 0xf), 16)
            .unwrap_or('?'),
    };
    [digit(4), digit(0)].iter().collect()
}

/// Send `want`'s payload to `to` and judge what comes back within
/// `limit`: keepalived reads one datagram, and so do we.
///
/// # Errors
/// Why the server fails: an ICMP error, or the reply's fault.
async fn udp(
    to: SocketAddr,
    want: &Want,
    limit: Duration,
) -> Result<(), String> {
    let x = Exchange::open("udp", "datagram", to, limit).await?;
    x.send(&want.payload).await?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = x.recv(&mut buf).await?;
    judge(n.map(|n| &buf[..n]), want, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    fn check(yaml: &str) -> UdpCheck {
        serde_yaml::from_str(yaml).unwrap()
    }

    const LIMIT: Duration = Duration::from_millis(300);

    #[test]
    fn keepalived_hex_and_its_default_payload() {
        let w = want(&check("{}")).unwrap();
        assert_eq!(w.payload, KEEPALIVED_PAYLOAD);
        assert_eq!(w.reply, None);
        // keepalived.conf(5)'s own example.
        let w = want(&check("{ payload: 'Ab12f 3 456 546443123' }")).unwrap();
        assert_eq!(
            w.payload,
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        assert!(want(&check("{ payload: 'zz' }")).is_err());
        assert!(want(&check("{ payload: 'x0' }")).is_err(), "no wildcards");
    }

    #[test]
    fn without_require_reply_silence_and_any_reply_pass() {
        let w = want(&check("{}")).unwrap();
        assert_eq!(judge(None, &w, LIMIT), Ok(()));
        assert_eq!(judge(Some(b"anything"), &w, LIMIT), Ok(()));
    }

    #[test]
    fn a_required_reply_is_judged_by_length_and_prefix_as_keepalived() {
        let w = want(&check(
            "{ require_reply: true, reply: '50 4x', min_reply_length: 1, \
             max_reply_length: 4 }",
        ))
        .unwrap();
        assert_eq!(
            judge(None, &w, LIMIT),
            Err("udp: no reply within 300ms".into())
        );
        assert_eq!(judge(Some(b"PONG"), &w, LIMIT), Ok(()));
        assert_eq!(judge(Some(b"PK"), &w, LIMIT), Ok(()), "4x: any low digit");
        let one =
            want(&check("{ require_reply: true, reply: 'x 5' }")).unwrap();
        assert_eq!(judge(Some(&[0x0e, 0x05]), &one, LIMIT), Ok(()));
        assert_eq!(
            judge(Some(&[0x1e]), &one, LIMIT),
            Err("udp: the reply's byte 0 is 1e, not 0x".into()),
            "a lone digit's high half is 0"
        );
        // Shorter than the pattern: compared as far as it goes.
        assert_eq!(judge(Some(b"P"), &w, LIMIT), Ok(()));
        assert_eq!(
            judge(Some(b"PUNG"), &w, LIMIT),
            Err("udp: the reply's byte 1 is 55, not 4x".into())
        );
        assert_eq!(
            judge(Some(b""), &w, LIMIT),
            Err("udp: a reply of 0 bytes, not 1–4".into())
        );
        assert_eq!(
            judge(Some(b"PONGS"), &w, LIMIT),
            Err("udp: a reply of 5 bytes, not 1–4".into())
        );
        // require_reply alone: any reply up to a datagram's size.
        let any = want(&check("{ require_reply: true }")).unwrap();
        assert_eq!(judge(Some(&[0; 1000]), &any, LIMIT), Ok(()));
    }

    #[tokio::test]
    async fn over_udp_an_echo_passes_silence_passes_a_closed_port_fails() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], from).await.unwrap();
            // Then silence, the socket still open.
            let _ = server.recv_from(&mut buf).await;
            server
        });
        let wants = want(&check(
            "{ payload: '6b65', require_reply: true, reply: '6b65' }",
        ))
        .unwrap();
        assert_eq!(udp(addr, &wants, LIMIT).await, Ok(()));
        assert_eq!(
            udp(addr, &wants, LIMIT).await,
            Err("udp: no reply within 300ms".into())
        );
        let silent = want(&check("{}")).unwrap();
        drop(echo.await.unwrap());
        let why = udp(addr, &silent, LIMIT).await.unwrap_err();
        assert!(why.contains("refused the datagram"), "{why}");
    }
}
