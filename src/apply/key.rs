//! The controller's fingerprint key: 32 random bytes in
//! `.lbdeploy/controller.key` (lower-case hex), under which
//! [`generations`](super::generations) fingerprints inline passwords.
//!
//! It is made on first use and never replaced: every fingerprint recorded
//! so far depends on it. So it is not written like other files (renamed
//! over whatever is there) but created under a random temporary name with
//! `O_CREAT | O_EXCL`, mode 0600 from the start, and hard-linked into
//! place — `link(2)` fails rather than replace an existing key, so two
//! controllers racing on first use end up sharing the winner's key, and
//! no reader ever sees a half-written one.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, bail};

use crate::util::hex::hex;

/// The key's length in bytes: SHA-256's output, as RFC 2104 advises.
pub(crate) const KEY_LEN: usize = 32;

/// The key at `path`, or `None` when there is none yet.
///
/// # Errors
/// When it is not a regular file, others may read it, or it is not
/// `KEY_LEN` bytes of hex.
pub(crate) fn load(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read {}", path.display()));
        }
    };
    if !meta.file_type().is_file() {
        bail!("{} is not a regular file — remove it", path.display());
    }
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:04o}): whoever reads it can \
             brute-force the password fingerprints in generations' meta.json \
             — `chmod 600` it",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    decode(text.trim_end()).map(Some).with_context(|| {
        format!(
            "{} is damaged (not {KEY_LEN} bytes of hex); generations recorded \
             with it cannot be checked",
            path.display()
        )
    })
}

/// The key at `path`, created first if there is none.
///
/// # Errors
/// When it cannot be read or created.
pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = load(path)? {
        return Ok(key);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let key = random(KEY_LEN)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.{}", hex(&random(8)?)));
    let created = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        f.write_all(format!("{}\n", hex(&key)).as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    })();
    let _ = std::fs::remove_file(&temp);
    created.with_context(|| format!("cannot create {}", path.display()))?;
    crate::util::files::sync_dir(dir)
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    // The key that won: ours, or one a concurrent run linked first.
    load(path)?.with_context(|| format!("{} vanished", path.display()))
}

/// `n` bytes from the kernel's random source.
fn random(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes)
}

/// `KEY_LEN` bytes from lower-case or upper-case hex.
fn decode(text: &str) -> Option<Vec<u8>> {
    if text.len() != 2 * KEY_LEN || !text.is_ascii() {
        return None;
    }
    (0..KEY_LEN)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir()
            .join(format!("lbd-key-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn made_once_0600_and_never_replaced() {
        let d = dir("once");
        let path = d.join("controller.key");
        assert_eq!(load(&path).unwrap(), None);
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), KEY_LEN);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
        // Only the key is left: the temporary name is gone.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_readable_damaged_or_linked_key_is_refused() {
        let d = dir("bad");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("controller.key");
        std::fs::write(&path, "00".repeat(KEY_LEN)).unwrap();
        std::fs::set_permissions(
            &path,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains("readable by others (mode 0644)"), "{e}");
        std::fs::set_permissions(
            &path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(load(&path).unwrap(), Some(vec![0; KEY_LEN]));
        std::fs::write(&path, "zz").unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains("damaged"), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let e = format!("{:#}", load_or_create(&path).unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
