//! Scratch files of the daemon (depfiles it adds, preprocessed output, linker lines): unique paths under
//! its `tmp` directory, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary file under the daemon's directory, removed on drop.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl TempPath {
    /// A new unique path in `dir` (the daemon's scratch directory) with extension `ext`; nothing is
    /// created.
    pub(crate) fn new(dir: &Path, ext: &str) -> TempPath {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TempPath(dir.join(format!("{}-{n}.{ext}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
