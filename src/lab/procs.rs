//! Processes of the lab, seen through `/proc`: identity, liveness, which
//! namespace they are in, what they listen on, and stopping them.
//!
//! Reading `/proc` directly (rather than `ps`, `ss`, `ip netns pids`) keeps
//! `status` and `down` to one process and lets the parsers be unit-tested on
//! captured text. `/proc/PID/net/tcp` shows the sockets of *that process's*
//! network namespace, which is how the lab sees inside a host without
//! entering it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// The start time (clock ticks after boot) of `pid`, or `None` when no such
/// process exists or it has exited and awaits reaping.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).filter(|(state, _)| *state != 'Z').map(|(_, t)| t)
}

/// State letter and start time from a `/proc/PID/stat` line. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

/// Whether the process recorded as (`pid`, `start`) still runs.
pub(crate) fn is_alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// The children of `pid` (from `/proc/PID/task/*/children`); empty when
/// it is gone.
pub(crate) fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The command name of `pid` (`/proc/PID/comm`), if it runs.
pub(crate) fn comm(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_owned())
}

/// The PIDs of every process whose network namespace is the one bound at
/// `/run/netns/<name>` (what `ip netns pids` prints). Empty when the
/// namespace does not exist.
pub(crate) fn pids_in_netns(name: &str) -> Vec<i32> {
    let Ok(ns) = std::fs::metadata(Path::new("/run/netns").join(name)) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
        })
        .collect()
}

/// Stop the processes `(pid, start)`: SIGTERM, then SIGKILL for those still
/// there after `grace`. Returns once all are gone, or after a bounded wait
/// for SIGKILL to land (it cannot be refused, only delayed by the kernel).
pub fn stop(procs: &[(i32, u64)], grace: Duration) {
    let signal = |sig| {
        for &(pid, start) in procs {
            if is_alive(pid, start)
                && let Some(pid) = Pid::from_raw(pid)
            {
                // The process may exit between the check and the signal;
                // ESRCH then means what we wanted.
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    };
    let all_gone = |within: Duration| {
        let until = Instant::now() + within;
        loop {
            if procs.iter().all(|&(p, s)| !is_alive(p, s)) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    signal(Signal::TERM);
    if !all_gone(grace) {
        signal(Signal::KILL);
        all_gone(Duration::from_secs(5));
    }
}

/// The TCP sockets in LISTEN state in the network namespace of `pid`.
pub(crate) fn tcp_listeners(pid: i32) -> Vec<SocketAddr> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| {
            std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok()
        })
        .flat_map(|text| parse_listeners(&text))
        .collect()
}

/// Whether something in the namespace of `pid` accepts TCP on `addr:port`
/// (bound to it or to the wildcard address of its family).
pub fn listens(pid: i32, addr: IpAddr, port: u16) -> bool {
    tcp_listeners(pid).iter().any(|l| {
        l.port() == port
            && (l.ip() == addr
                || (l.ip().is_unspecified() && l.is_ipv4() == addr.is_ipv4())
                || l.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    })
}

/// Listening sockets from `/proc/net/tcp` or `tcp6` text.
///
/// # Format
/// After a header line, each line is `sl local rem st ...`; `local` is
/// `ADDR:PORT` in hex, the address as 32-bit words in host (little-endian)
/// byte order, `st` `0A` for LISTEN.
fn parse_listeners(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != "0A" {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let words: Option<Vec<u32>> = (0..addr.len() / 8)
                .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok())
                .collect();
            let bytes: Vec<u8> =
                words?.iter().flat_map(|w| w.to_le_bytes()).collect();
            let ip = match bytes.len() {
                4 => {
                    IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))
                }
                16 => IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(bytes).ok()?,
                )),
                _ => return None,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_paren() {
        let stat = "123 (a b) c) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 \
                    20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_identified() {
        let me = i32::try_from(std::process::id()).unwrap();
        let start = start_time(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1));
    }

    #[test]
    fn parses_listening_sockets_only() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0B01A8C0:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n\
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n\
   2: 0B01A8C0:0016 0A01A8C0:D2F0 01 00000000:00000000 00:00000000 00000000\n";
        assert_eq!(
            parse_listeners(tcp),
            [
                "192.168.1.11:22".parse::<SocketAddr>().unwrap(),
                "0.0.0.0:80".parse().unwrap()
            ]
        );
        let tcp6 = "  sl  local_address remote_address st\n\
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A\n\
   1: 0000FEFD000000000000000001000000:0016 00000000000000000000000000000000:0000 0A\n";
        assert_eq!(
            parse_listeners(tcp6),
            [
                "[::]:8080".parse::<SocketAddr>().unwrap(),
                "[fdfe::1]:22".parse().unwrap()
            ]
        );
    }
}
