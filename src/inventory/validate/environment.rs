//! The controller's environment as validation sees it: whether a secret's
//! environment variable or file exists. Its own file so that the rule
//! files can name it without importing the validation entry point.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::util::files;

/// What lbdeploy may ask of the controller's environment: secrets named by
/// an environment variable or a file must exist before anything runs, and
/// are read when the hosts' files are rendered.
pub trait Environment {
    /// The environment variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The file's content, if it exists and is readable.
    fn read_file(&self, path: &Path) -> Option<String>;
    /// A secret file's text, at most `max` bytes, read as [`secret_file`]
    /// reads it; the error says what is wrong without quoting the file.
    /// Every environment reads real files this way unless it overrides it.
    ///
    /// # Errors
    /// As [`secret_file`].
    fn read_secret(&self, path: &Path, max: u64) -> Result<String, String> {
        secret_file(path, max)
    }
    /// A public file's text (a CA certificate), at most `max` bytes of a
    /// regular file; the error says what is wrong.
    ///
    /// # Errors
    /// A file that is missing, not regular, not UTF-8 or too large.
    fn read_public(&self, path: &Path, max: u64) -> Result<String, String> {
        files::read_regular(path, max).map_err(|e| match e.kind() {
            ErrorKind::NotFound => "there is no such file".to_owned(),
            ErrorKind::FileTooLarge => format!("larger than {max} bytes"),
            _ => e.to_string(),
        })
    }
}

/// Variables from a map, files from the file system (the trait's reader
/// of secret files): for the rules' unit tests.
#[cfg(test)]
pub(crate) struct Vars(
    pub(crate) std::collections::HashMap<&'static str, &'static str>,
);

#[cfg(test)]
impl Environment for Vars {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// The real environment of this process.
pub struct System;

impl Environment for System {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// A password that cannot be had: the field to blame, relative to the
/// block that names it (`""`, `.password`, `.password_env` or
/// `.password_file`), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordProblem {
    /// The field, relative to the block.
    pub field: &'static str,
    /// What is wrong, naming the variable or file, never the password.
    pub message: String,
}

/// A secret the inventory names by exactly one of a variable of the
/// controller's environment (`var`) or a file (`file`, resolved against
/// `base`, read as [`secret_file`] reads it, at most `max` bytes,
/// trailing line ends dropped): its value and the field it came from;
/// `None` when neither is given.
///
/// # Errors
/// Both given, a variable unset or empty, or a file that cannot be used.
pub fn secret_source(
    var: Option<&str>,
    file: Option<&Path>,
    max: u64,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<(&'static str, String)>, PasswordProblem> {
    let problem = |field, message| PasswordProblem { field, message };
    match (var, file) {
        (Some(_), Some(_)) => Err(problem(
            "",
            "give the password one way: `password_env` or `password_file`"
                .to_owned(),
        )),
        (Some(var), None) => match env.var(var).filter(|v| !v.is_empty()) {
            Some(value) => Ok(Some((".password_env", value))),
            None => Err(problem(
                ".password_env",
                format!(
                    "environment variable `{var}` is not set or empty — \
                     export it before running lbdeploy"
                ),
            )),
        },
        (None, Some(file)) => {
            let path = base.join(file);
            match env.read_secret(&path, max) {
                Ok(text) => Ok(Some((
                    ".password_file",
                    text.trim_end_matches(['\n', '\r']).to_owned(),
                ))),
                Err(why) => Err(problem(
                    ".password_file",
                    format!("cannot use `{}`: {why}", path.display()),
                )),
            }
        }
        (None, None) => Ok(None),
    }
}

/// The text of a secret file on the controller (a webhook's `url_file`):
/// the file itself, not a symbolic link to it; a regular file of at most
/// `max` bytes, read by the crate's one bounded reader; and neither
/// readable nor writable by others — a secret others can read is no
/// secret, and one they can write sends the notifications elsewhere.
///
/// The link and mode are checked on the name before it is opened:
/// whoever could swap the name in between can write the directory, and
/// could as well have written the file.
///
/// # Errors
/// Why the file cannot be used, never a byte of its content.
pub fn secret_file(path: &Path, max: u64) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => "there is no such file".to_owned(),
        _ => e.to_string(),
    })?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err("it is a symbolic link — name the file itself".into());
    }
    if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
        return Err("not a regular file".into());
    }
    let others = meta.mode() & 0o007;
    if others != 0 {
        return Err(format!(
            "others may read or write it (mode {:04o}) — `chmod o-rwx` it",
            meta.mode() & 0o7777
        ));
    }
    files::read_regular(path, max).map_err(|e| match e.kind() {
        ErrorKind::FileTooLarge => format!("larger than {max} bytes"),
        _ => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fresh directory for one test.
    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("lbd-secret-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        let perms = std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(path, perms).unwrap();
    }

    #[test]
    fn a_private_regular_file_is_read_whole() {
        let dir = dir("ok");
        let path = dir.join("url");
        write(&path, "http://h/tok\n", 0o640);
        assert_eq!(secret_file(&path, 64).as_deref(), Ok("http://h/tok\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_linked_open_large_and_special_files_are_refused() {
        let dir = dir("bad");
        let missing = secret_file(&dir.join("nope"), 64).unwrap_err();
        assert!(missing.contains("no such file"), "{missing}");

        let target = dir.join("target");
        write(&target, "http://h/tok", 0o600);
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = secret_file(&link, 64).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");

        let open = dir.join("open");
        write(&open, "http://h/tok", 0o644);
        let err = secret_file(&open, 64).unwrap_err();
        assert!(err.contains("mode 0644") && !err.contains("tok"), "{err}");

        let big = dir.join("big");
        write(&big, &"x".repeat(65), 0o600);
        assert_eq!(secret_file(&big, 65).map(|s| s.len()), Ok(65));
        let err = secret_file(&big, 64).unwrap_err();
        assert!(err.contains("larger than 64 bytes"), "{err}");

        let err = secret_file(Path::new("/dev/zero"), 64).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700))
            .unwrap();
        let err = secret_file(&dir, 64).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
