//! What the file and process trackers cost on this machine: one read of
//! a tracked file; one scan of /proc for a process name and for a
//! command line; and the CPU of 10 process trackers at a 1 s interval
//! over `SECS` seconds (default 30), as a share of one core.
//!
//! ```sh
//! cargo run --release --example track_cost -- [SECS]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use lbdeploy::agent::track::{file, process};
use rustix::time::{ClockId, clock_gettime};

/// The mean time of `f` over `n` runs.
fn mean(n: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed() / n
}

/// This process's CPU time so far, all threads.
fn cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn main() {
    let secs: u64 = std::env::args().nth(1).map_or(30, |s| s.parse().unwrap());
    let path = std::env::temp_dir().join("lbdeploy-track-cost");
    std::fs::write(&path, "42\n").unwrap();
    let read = mean(10_000, || assert_eq!(file::read(&path, 0).value, 42));
    println!("file: one read {:.1} µs", read.as_secs_f64() * 1e6);
    let _ = std::fs::remove_file(&path);

    let proc = Path::new("/proc");
    let n = process::scan(proc, 0).len();
    let comm = mean(200, || drop(process::scan(proc, 0)));
    let command = process::Matcher::Command {
        program: "/usr/sbin/haproxy".into(),
        params: process::Params::Exact(vec![
            "-f".into(),
            "/etc/haproxy/haproxy.cfg".into(),
        ]),
    };
    let bytes = command.cmdline_bytes();
    let cmdline = mean(200, || drop(process::scan(proc, bytes)));
    println!(
        "process: {n} processes; one scan by name {:.0} µs, by command line {:.0} µs",
        comm.as_secs_f64() * 1e6,
        cmdline.as_secs_f64() * 1e6
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let used = runtime.block_on(async {
        let trackers: Vec<_> = (0..10)
            .map(|i| {
                // Half by name, half by command line, none running.
                let matcher = if i % 2 == 0 {
                    process::Matcher::Comm(format!("absent{i}"))
                } else {
                    command.clone()
                };
                process::spawn(process::ProcessSpec {
                    name: format!("p{i}"),
                    matcher,
                    quorum: 1,
                    quorum_max: u32::MAX,
                    fork_delay: Duration::ZERO,
                    terminate_delay: Duration::ZERO,
                    interval: Duration::from_secs(1),
                })
            })
            .collect();
        let before = cpu();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let used = cpu() - before;
        drop(trackers);
        used
    });
    println!(
        "process: 10 trackers at 1 s for {secs} s: {:.1} ms CPU, {:.3} % of a core",
        used.as_secs_f64() * 1e3,
        used.as_secs_f64() / secs as f64 * 100.0
    );
}
