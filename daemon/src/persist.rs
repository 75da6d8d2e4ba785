//! Small memos persisted across daemon restarts (compiler and toolchain identities): a list of records,
//! postcard-encoded, replaced atomically. An unreadable file is an empty memo: the records are only a
//! shortcut, re-validated by file metadata before use.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::path::Path;

/// The records stored at `file` (none when it is missing or unreadable).
pub fn load<T: DeserializeOwned>(file: &Path) -> Vec<T> {
    fs::read(file).ok().and_then(|bytes| postcard::from_bytes(&bytes).ok()).unwrap_or_default()
}

/// Replaces the records at `file` (written beside it, then renamed); failures are ignored.
pub fn save<T: Serialize>(file: &Path, records: &[T]) {
    if let Ok(bytes) = postcard::to_allocvec(records) {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, file).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}
