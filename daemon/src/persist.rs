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

/// Replaces the records at `file` atomically; failures are ignored (the memo is only a shortcut).
pub fn save<T: Serialize>(file: &Path, records: &[T]) {
    if let Ok(bytes) = postcard::to_allocvec(records) {
        let _ = rcc_fs::write_atomic(file, &bytes, rcc_fs::WriteOptions::cache(0o644));
    }
}
