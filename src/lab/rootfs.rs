//! The Debian root file system that systemd lab hosts boot, built once
//! with `debootstrap` and cached, as the IPVS test kernel is.
//!
//! Bookworm, because its systemd (252) still boots on a machine with
//! cgroup v1 and no systemd of its own, which is what CI machines are
//! here; and `--variant=minbase` with only what a managed host needs
//! (systemd, sshd, iproute2, nftables), so it builds in about a minute and
//! a half and takes about 300 MB. Every host boots the same read-only copy
//! under an overlay of its own (see `machine`), so the cache is never
//! written to after it is built.
//!
//! The mirror is the one this machine's apt already uses (read from its
//! sources), or `LBDEPLOY_LAB_MIRROR`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::cmd::Cmd;
use crate::util::files;

/// Where built root file systems are kept.
pub(crate) const CACHE_DIR: &str = "/var/cache/lbdeploy-lab";

/// The Debian release booted.
const SUITE: &str = "bookworm";

/// Packages beyond `minbase`: init, D-Bus for `systemctl`, sshd, the
/// tools the agent and the facts script run, and udev so that systemd's
/// device units behave as on a real host.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,openssh-server,iproute2,\
                        nftables,procps,kmod,udev,sudo";

/// Written last into a finished root file system: what it was built with,
/// so a cache built from another list is rebuilt, and a build cut short
/// (no marker) is never booted.
const MARKER: &str = ".lbdeploy-rootfs";

/// Overrides the mirror found in apt's sources.
const MIRROR_ENV: &str = "LBDEPLOY_LAB_MIRROR";

/// The cached root file system, built first when there is none (progress
/// and the time it took go to `talk`).
///
/// Concurrent callers (tests building labs side by side) wait on a lock
/// for the one build.
///
/// # Errors
/// When no mirror is known or `debootstrap` fails (with its output).
pub(crate) fn ensure(talk: &mut dyn Write) -> anyhow::Result<PathBuf> {
    let cache = Path::new(CACHE_DIR);
    files::create_dirs(cache)?;
    let lock = std::fs::File::create(cache.join(".lock"))
        .with_context(|| format!("locking {CACHE_DIR}"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {CACHE_DIR}"))?;
    let stamp = marker();
    let dir = cache.join(dir_name(&stamp));
    if std::fs::read_to_string(dir.join(MARKER)).ok().as_deref()
        == Some(stamp.as_str())
    {
        return Ok(dir);
    }
    let mirror = match std::env::var(MIRROR_ENV) {
        Ok(m) if !m.is_empty() => m,
        _ => apt_mirror()?,
    };
    writeln!(
        talk,
        "lab: building the systemd hosts' root file system ({SUITE}) in {} \
         with debootstrap from {mirror} — once, it is cached; about 1–2 \
         minutes",
        dir.display()
    )?;
    let started = Instant::now();
    let new = dir.with_extension("new");
    for d in [&new, &dir] {
        if d.exists() {
            std::fs::remove_dir_all(d)
                .with_context(|| format!("removing {}", d.display()))?;
        }
    }
    Cmd::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
        .arg(&new)
        .arg(&mirror)
        .run()
        .with_context(|| format!("debootstrap from {mirror} (set {MIRROR_ENV} to use another mirror)"))?;
    files::write_atomic(&new.join(MARKER), stamp.as_bytes(), 0o644)?;
    std::fs::rename(&new, &dir)
        .with_context(|| format!("moving {} into place", new.display()))?;
    writeln!(
        talk,
        "lab: root file system ready in {:.0} s",
        started.elapsed().as_secs_f64()
    )?;
    for old in stale(cache, &dir, &mountinfos()) {
        match std::fs::remove_dir_all(&old) {
            Ok(()) => writeln!(
                talk,
                "lab: removed {}, built by another lbdeploy",
                old.display()
            )?,
            Err(e) => writeln!(
                talk,
                "lab: cannot remove {}, built by another lbdeploy: {e}",
                old.display()
            )?,
        }
    }
    Ok(dir)
}

/// The root file systems in `cache` other than `current` that no lab
/// boots now: those of other recipes (and builds of them cut short),
/// about 300 MB each. One that a running lab of another lbdeploy has
/// mounted (it is the `lowerdir` of an overlay in one of `mountinfos`,
/// the texts of `/proc/PID/mountinfo`) stays until that lab is gone and a
/// later build removes it. Called under the cache's lock, so no build of
/// ours is under way; a lab of another lbdeploy that has built its cache
/// but not mounted it yet rebuilds it.
fn stale(cache: &Path, current: &Path, mountinfos: &[String]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rootfs-"))
        .map(|e| e.path())
        .filter(|p| p != current && !mounted(p, mountinfos))
        .collect();
    out.sort();
    out
}

/// Whether `dir` is the lower layer of an overlay in one of `mountinfos`.
fn mounted(dir: &Path, mountinfos: &[String]) -> bool {
    let lower = format!("lowerdir={}", dir.display());
    mountinfos
        .iter()
        .flat_map(|m| {
            m.match_indices(&lower).map(|(at, _)| &m[at + lower.len()..])
        })
        .any(|rest| {
            rest.chars()
                .next()
                .is_none_or(|c| matches!(c, ',' | ':' | ' ' | '\n'))
        })
}

/// Every process's `/proc/PID/mountinfo`: each host's boot loop mounts
/// its overlay in a mount namespace of its own, seen only there.
fn mountinfos() -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("mountinfo")).ok()
        })
        .collect()
}

/// The cache directory of the recipe whose marker is `stamp`: named after
/// it, so that building another recipe never removes a root file system
/// that running labs of an older lbdeploy have mounted; the others go
/// once the new one is built (`stale`).
fn dir_name(stamp: &str) -> String {
    let hash = crate::util::fnv::fnv1a(stamp.as_bytes());
    format!("rootfs-{SUITE}-{:08x}", hash as u32)
}

/// What [`MARKER`] holds for this build recipe.
fn marker() -> String {
    format!("{SUITE} minbase {PACKAGES}\n")
}

/// The Debian mirror in this machine's apt sources.
///
/// # Errors
/// When none is found.
fn apt_mirror() -> anyhow::Result<String> {
    let mut texts: Vec<String> =
        std::fs::read_to_string("/etc/apt/sources.list").into_iter().collect();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| {
            let name = p.to_string_lossy();
            (name.ends_with(".list") || name.ends_with(".sources"))
                .then(|| std::fs::read_to_string(p).ok())
                .flatten()
        }));
    }
    texts.iter().find_map(|t| debian_mirror(t)).with_context(|| {
        format!(
            "no Debian mirror found in apt's sources — set {MIRROR_ENV} to \
             one (the URL you would give debootstrap)"
        )
    })
}

/// The first Debian archive URL in an apt sources text, in either format
/// (`deb URL SUITE …` lines, or deb822 stanzas with `URIs:`); security
/// archives are skipped, since they hold only updates.
fn debian_mirror(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l.strip_prefix("URIs:") {
                return rest.split_whitespace().next();
            }
            let mut words = l.split_whitespace();
            if words.next() != Some("deb") {
                return None;
            }
            // `deb [options] URL SUITE`: skip the bracketed options.
            words.find(|w| w.contains("://"))
        })
        .map(|u| u.trim_end_matches('/'))
        .find(|u| u.contains("://") && u.ends_with("/debian"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_comes_from_either_sources_format() {
        let deb822 = "Types: deb\n# http://snapshot.example/x\nURIs: \
                      http://deb.example.org/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://deb.example.org/debian-security\n";
        assert_eq!(
            debian_mirror(deb822).as_deref(),
            Some("http://deb.example.org/debian")
        );
        let list = "# deb http://old/debian bookworm main\n\
                    deb http://sec.example/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n";
        assert_eq!(
            debian_mirror(list).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            debian_mirror("deb https://packages.example/apt cloud main\n"),
            None
        );
    }

    #[test]
    fn each_recipe_has_a_directory_of_its_own() {
        let a = dir_name(&marker());
        assert!(a.starts_with("rootfs-bookworm-") && a.len() == 24, "{a}");
        assert_ne!(a, dir_name(&marker().replace(",sudo", "")));
        assert_eq!(a, dir_name(&marker()));
    }

    #[test]
    fn other_recipes_are_stale_unless_a_lab_boots_them() {
        let cache = std::env::temp_dir()
            .join(format!("lbdeploy-rootfs-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        for d in [
            "rootfs-bookworm",
            "rootfs-bookworm-00000001",
            "rootfs-bookworm-00000001.new",
            "rootfs-bookworm-00000002",
            "rootfs-bookworm-00000003",
            "rootfs-bookworm-000000030",
            "kernel",
        ] {
            std::fs::create_dir_all(cache.join(d)).unwrap();
        }
        let current = cache.join("rootfs-bookworm-00000003");
        // A lab boots recipe 2 (in some boot loop's mount namespace).
        let booted = format!(
            "1 2 0:1 / /root rw - overlay lbd-x-2-rs01 rw,lowerdir={},\
             upperdir=/u,workdir=/w\n",
            cache.join("rootfs-bookworm-00000002").display()
        );
        let names = |m: &[String]| -> Vec<String> {
            stale(&cache, &current, m)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(&[String::new(), booted.clone()]),
            [
                "rootfs-bookworm",
                "rootfs-bookworm-00000001",
                "rootfs-bookworm-00000001.new",
                "rootfs-bookworm-000000030",
            ]
        );
        assert!(names(&[]).contains(&"rootfs-bookworm-00000002".to_owned()));
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn the_marker_names_the_recipe() {
        assert!(marker().starts_with("bookworm minbase systemd,"));
        assert!(marker().contains("openssh-server"));
    }
}
