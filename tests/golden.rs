//! Golden files: compare output with `tests/golden/<area>/<case>/expected.*`.
//!
//! Setting `LBDEPLOY_UPDATE_GOLDEN=1` rewrites the expected files instead of
//! comparing; the rewritten files are then reviewed in the diff like code.

use std::path::{Path, PathBuf};

/// The case directories of one area, sorted by name.
pub fn cases(area: &str) -> Vec<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(area);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// Compare `actual` with the file `expected` (an absent file reads as
/// empty), or rewrite it when updating (removing it when `actual` is empty).
/// Returns a description of the mismatch, so a table test can report every
/// failing case at once.
pub fn check(expected: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("LBDEPLOY_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_file(expected);
        if !actual.is_empty() {
            std::fs::write(expected, actual).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let want = std::fs::read_to_string(expected).unwrap_or_default();
    if want == actual {
        return Ok(());
    }
    Err(format!(
        "{} differs (LBDEPLOY_UPDATE_GOLDEN=1 rewrites it)\n--- expected\n\
         {want}--- actual\n{actual}---",
        expected.display()
    ))
}
