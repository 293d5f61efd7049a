//! The controller's environment as validation sees it: whether a secret's
//! environment variable or file exists. Its own file so that the rule
//! files can name it without importing the validation entry point.

use std::path::Path;

/// What lbdeploy may ask of the controller's environment: secrets named by
/// an environment variable or a file must exist before anything runs, and
/// are read when the hosts' files are rendered.
pub trait Environment {
    /// The environment variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The file's content, if it exists and is readable.
    fn read_file(&self, path: &Path) -> Option<String>;
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
