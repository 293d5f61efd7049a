//! The agent binary `apply` installs: this very executable unless
//! `--binary` names another. Identified by its SHA-256; checked to be
//! statically linked (the hosts share no libraries with the controller) and
//! built for the host's architecture, from its ELF header alone.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::util::hex::hex;
use sha2::{Digest, Sha256};

/// What the controller knows about the binary it installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// Where it is on the controller, for messages.
    pub path: PathBuf,
    /// What to read to upload it (`/proc/self/exe` for this executable).
    pub file: PathBuf,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// What its ELF header says.
    pub elf: Elf,
}

/// The two facts `apply` checks before installing a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    /// `uname -m` spelling of the machine it is built for.
    pub arch: String,
    /// No program interpreter (`PT_INTERP`): runs without the host's libc.
    pub is_static: bool,
}

/// Why a binary cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It could not be read.
    #[error("cannot read the agent binary {}: {error}", path.display())]
    Read {
        /// The binary.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A device, FIFO, directory or socket rather than a file: reading
    /// `/dev/zero` never ends (issue #17, finding 10).
    #[error(
        "{} is not a regular file ({kind}) — pass the agent binary itself \
         with --binary",
        path.display()
    )]
    NotRegular {
        /// The binary.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// It is not a 64-bit little-endian ELF executable.
    #[error("{} is not a 64-bit ELF executable: {why}", path.display())]
    NotElf {
        /// The binary.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
    /// Linked dynamically.
    #[error(
        "{} is dynamically linked and would not run on hosts without the same \
         libraries — build it static (`cargo build --release` here links \
         static; see .cargo/config.toml) or pass one with --binary",
        path.display()
    )]
    Dynamic {
        /// The binary.
        path: PathBuf,
    },
    /// Built for another machine.
    #[error(
        "host {host} is {host_arch} but {} is built for {arch} — build for \
         the host's architecture or leave the host out with --limit",
        path.display()
    )]
    Arch {
        /// The host.
        host: String,
        /// `uname -m` there.
        host_arch: String,
        /// The binary.
        path: PathBuf,
        /// What it is built for.
        arch: String,
    },
}

impl Binary {
    /// Read and check the binary at `path`.
    ///
    /// # Errors
    /// When it cannot be read, is not ELF or is dynamically linked.
    pub(crate) fn inspect(path: &Path) -> Result<Self, Error> {
        Self::inspect_file(path, path)
    }

    /// This very executable: read through `/proc/self/exe`, which still
    /// works when the file was replaced (rebuilt) while lbdeploy runs.
    ///
    /// # Errors
    /// As `Binary::inspect`.
    pub fn current() -> Result<Self, Error> {
        let path = std::env::current_exe()
            .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        Self::inspect_file(&path, Path::new("/proc/self/exe"))
    }

    /// Inspect `file`, naming it `path` in messages.
    fn inspect_file(path: &Path, source: &Path) -> Result<Self, Error> {
        let read = |error| Error::Read { path: path.to_owned(), error };
        let mut file = open_regular(path, source)?;
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(read)?;
            if n == 0 {
                break;
            }
            if head.len() < 1 << 16 {
                head.extend_from_slice(&buf[..n.min((1 << 16) - head.len())]);
            }
            hasher.update(&buf[..n]);
        }
        let elf = parse_elf(&head)
            .map_err(|why| Error::NotElf { path: path.to_owned(), why })?;
        if !elf.is_static {
            return Err(Error::Dynamic { path: path.to_owned() });
        }
        Ok(Self {
            path: path.to_owned(),
            file: source.to_owned(),
            sha256: hex(&hasher.finalize()),
            elf,
        })
    }

    /// Refuse a host whose `uname -m` differs from the binary's machine.
    ///
    /// # Errors
    /// [`Error::Arch`].
    pub(crate) fn check_arch(
        &self,
        host: &str,
        host_arch: &str,
    ) -> Result<(), Error> {
        if host_arch == self.elf.arch {
            return Ok(());
        }
        Err(Error::Arch {
            host: host.to_owned(),
            host_arch: host_arch.to_owned(),
            path: self.path.clone(),
            arch: self.elf.arch.clone(),
        })
    }
}

const PT_INTERP: u32 = 3;

/// Open `source` only if it is a regular file (symbolic links followed).
/// Opened non-blocking, so a FIFO cannot hang the open itself, then
/// checked on the open descriptor, so what is read is what was checked.
fn open_regular(path: &Path, source: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let read = |error| Error::Read { path: path.to_owned(), error };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(source)
        .map_err(read)?;
    let kind = file.metadata().map_err(read)?.file_type();
    let what = match kind {
        k if k.is_file() => return Ok(file),
        k if k.is_dir() => "a directory",
        k if k.is_char_device() => "a character device",
        k if k.is_block_device() => "a block device",
        k if k.is_fifo() => "a FIFO",
        k if k.is_socket() => "a socket",
        _ => "not a file",
    };
    Err(Error::NotRegular { path: path.to_owned(), kind: what })
}

/// The machine and linkage of a 64-bit little-endian ELF file, from its
/// first bytes (the header and program headers sit at the start).
fn parse_elf(b: &[u8]) -> Result<Elf, &'static str> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err("no ELF magic");
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("not 64-bit little-endian");
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let arch = match u16_at(18) {
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv64",
        21 => "ppc64le",
        22 => "s390x",
        _ => "an unknown machine",
    };
    let (phoff, phentsize, phnum) =
        (u64_at(32) as usize, u16_at(54) as usize, u16_at(56) as usize);
    if phentsize < 4 || phoff + phentsize * phnum > b.len() {
        return Err("program headers out of range");
    }
    let is_static =
        (0..phnum).all(|i| u32_at(phoff + i * phentsize) != PT_INTERP);
    Ok(Elf { arch: arch.to_owned(), is_static })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_read() {
        // The test harness itself: static here (see .cargo/config.toml),
        // x86_64 on these machines.
        let exe = std::env::current_exe().unwrap();
        let head = std::fs::read(&exe).unwrap();
        let elf = parse_elf(&head[..1 << 16]).unwrap();
        assert_eq!(elf.arch, std::env::consts::ARCH);
    }

    #[test]
    fn a_dynamic_binary_is_refused() {
        let e = Binary::inspect(Path::new("/bin/sh")).unwrap_err();
        assert!(matches!(e, Error::Dynamic { .. }), "{e}");
        assert!(e.to_string().contains("dynamically linked"));
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let started = std::time::Instant::now();
        for (dev, kind) in [
            ("/dev/zero", "a character device"),
            ("/dev/null", "a character device"),
            ("/", "a directory"),
        ] {
            let e = Binary::inspect(Path::new(dev)).unwrap_err();
            assert!(
                matches!(&e, Error::NotRegular { kind: k, .. } if *k == kind),
                "{dev}: {e}"
            );
            assert!(e.to_string().starts_with(&format!("{dev} is not")));
        }
        let fifo = std::env::temp_dir()
            .join(format!("lbd-binary-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = Binary::inspect(&fifo).unwrap_err();
        std::fs::remove_file(&fifo).unwrap();
        assert!(matches!(e, Error::NotRegular { kind: "a FIFO", .. }), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn not_elf_is_refused() {
        assert_eq!(parse_elf(b"#!/bin/sh\n"), Err("no ELF magic"));
    }

    #[test]
    fn arch_mismatch_names_host_and_both_machines() {
        let b = Binary {
            path: "/x/lbdeploy".into(),
            file: "/x/lbdeploy".into(),
            sha256: String::new(),
            elf: Elf { arch: "x86_64".into(), is_static: true },
        };
        assert!(b.check_arch("rs01", "x86_64").is_ok());
        let e = b.check_arch("rs01", "aarch64").unwrap_err().to_string();
        assert!(e.contains("rs01 is aarch64") && e.contains("for x86_64"));
    }
}
