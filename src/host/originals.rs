//! The sysctls as they were before lbdeploy: `$STATE/original-sysctls.json`.
//!
//! Each activation's before-image holds the values just before it, which
//! is what its own rollback needs; a host leaving the inventory needs
//! more — the values from before the first activation that set each key,
//! many generations ago (an `arp_ignore` of 0, say, where lbdeploy keeps
//! 1). So the first value seen of each key is kept here, and never
//! replaced: a later activation sees lbdeploy's own value. A key whose
//! value could not be read is not recorded (there is nothing to put
//! back).

use std::collections::BTreeMap;

use anyhow::Context;

use super::layout::Layout;
use crate::util::files;

/// More than any host's sysctls: the file is root's own, but a corrupt
/// one must not make every activation read without bound.
const MAX_BYTES: u64 = 64 * 1024;

/// The recorded values, key → value; empty when there is no file.
///
/// # Errors
/// A file that cannot be read, or is not a JSON object of strings.
pub fn load(layout: &Layout) -> anyhow::Result<BTreeMap<String, String>> {
    let path = layout.original_sysctls();
    let text = match files::read_regular(&path, MAX_BYTES) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BTreeMap::new());
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading {}", path.display()));
        }
    };
    serde_json::from_str(&text)
        .with_context(|| format!("{} is corrupt", path.display()))
}

/// Add the keys of `before` (an activation's before-image) that are not
/// recorded yet; the file is written only when that adds one.
///
/// # Errors
/// As [`load`], or when the file cannot be written.
pub fn note(
    layout: &Layout,
    before: &BTreeMap<String, Option<String>>,
) -> anyhow::Result<()> {
    let mut known = load(layout)?;
    let added = add_new(&mut known, before);
    if added == 0 {
        return Ok(());
    }
    let json = serde_json::to_vec_pretty(&known)?;
    files::write_atomic(&layout.original_sysctls(), &json, 0o644)
        .context("recording the sysctls' original values")
}

/// Put each key of `before` with a value into `known` unless it is
/// there; how many were added. Pure.
fn add_new(
    known: &mut BTreeMap<String, String>,
    before: &BTreeMap<String, Option<String>>,
) -> usize {
    let mut added = 0;
    for (key, value) in before {
        if let Some(value) = value
            && !known.contains_key(key)
        {
            known.insert(key.clone(), value.clone());
            added += 1;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first value seen of a key stays: a later activation's
    /// before-image holds lbdeploy's own value.
    #[test]
    fn r19_the_first_value_of_each_key_is_kept() {
        let mut known = BTreeMap::new();
        let first = BTreeMap::from([
            ("net.ipv4.conf.all.arp_ignore".to_owned(), Some("0".to_owned())),
            ("net.ipv4.conf.lo.arp_ignore".to_owned(), None),
        ]);
        assert_eq!(add_new(&mut known, &first), 1);
        let later = BTreeMap::from([
            ("net.ipv4.conf.all.arp_ignore".to_owned(), Some("1".to_owned())),
            ("net.ipv4.conf.all.arp_announce".to_owned(), Some("0".into())),
        ]);
        assert_eq!(add_new(&mut known, &later), 1);
        assert_eq!(
            known,
            BTreeMap::from([
                ("net.ipv4.conf.all.arp_announce".to_owned(), "0".to_owned()),
                ("net.ipv4.conf.all.arp_ignore".to_owned(), "0".to_owned()),
            ])
        );
        assert_eq!(add_new(&mut known, &later), 0);
    }

    /// The file is read as untrusted: none is nothing recorded; a corrupt
    /// one, one past its bound or one that is not a regular file is an
    /// error naming it (and the activation stops before any change). A
    /// key that is no sysctl name is refused where it would be used
    /// (`Layout::sysctl`, before the before-image is taken).
    #[test]
    fn r19_a_bad_file_is_an_error_naming_it() {
        let root = std::env::temp_dir()
            .join(format!("lbd-originals-{}", std::process::id()));
        let layout = Layout::new(Some(root.clone()));
        let path = layout.original_sysctls();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert_eq!(load(&layout).unwrap(), BTreeMap::new());
        let refused = |what: &str| {
            let e = format!("{:#}", load(&layout).unwrap_err());
            assert!(e.contains("original-sysctls.json"), "{what}: {e}");
        };
        std::fs::write(&path, "{\"net.ipv4.ip_forward\": 1}").unwrap();
        refused("not strings");
        std::fs::write(&path, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        refused("too large");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        refused("a directory");
        assert!(layout.sysctl("net/../../etc/passwd").is_err());
        assert!(layout.sysctl("net...ipv4").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
