//! A pool worker's materialized toolchains under `<dir>/toolchains/<hex>/root`, bounded in count with
//! least-recently-used eviction; a toolchain a running action uses ([`ToolchainLease`]) is never evicted.
//! The blobs they are built from live in [`crate::cas`].

use crate::cas::{digest_named, modified, remove_any};
use rcc_proto::remote::MAX_HELD_TOOLCHAINS;
use rcc_proto::Digest;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Materialized toolchains, at most `keep` of them (more only while running actions use them all).
pub struct ToolchainDirs {
    dir: PathBuf,
    keep: usize,
    held: Mutex<HashMap<Digest, Held>>,
    clock: AtomicU64,
}

/// A materialized toolchain: when it was last used, and who uses it now.
struct Held {
    tick: u64,
    users: Arc<()>,
}

/// A toolchain in use by a running action: it is not evicted while this lives.
pub struct ToolchainLease {
    root: PathBuf,
    _in_use: Arc<()>,
}

impl ToolchainLease {
    /// The materialized tree, shown at `/` in the sandbox.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ToolchainDirs {
    /// The toolchains in `dir` (created): complete ones (`<hex>/root`) are indexed, their modification time
    /// giving the order of use; anything else (partial or evicted trees left by a crash) is removed.
    pub fn open(dir: PathBuf, keep: usize) -> io::Result<ToolchainDirs> {
        fs::create_dir_all(&dir)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            match digest_named(&entry.file_name()) {
                Some(digest) if entry.path().join("root").is_dir() => {
                    found.push((modified(&entry.metadata()?), digest));
                }
                _ => remove_any(&entry.path()),
            }
        }
        found.sort();
        let dirs = ToolchainDirs { dir, keep: keep.max(1), held: Mutex::default(), clock: AtomicU64::new(0) };
        for (_, digest) in found {
            let tick = dirs.clock.fetch_add(1, Ordering::Relaxed);
            dirs.held().insert(digest, Held { tick, users: Arc::new(()) });
        }
        dirs.evict();
        Ok(dirs)
    }

    /// Where a toolchain's tree goes (`<hex>`, holding `root`).
    pub fn path(&self, digest: Digest) -> PathBuf {
        self.dir.join(digest.to_hex())
    }

    /// Where trees are materialized before they are complete (removed if found when opening).
    pub fn partial_path(&self, digest: Digest) -> PathBuf {
        self.dir.join(format!("{}.partial-{}", digest.to_hex(), std::process::id()))
    }

    /// The toolchain, if materialized; in use until the lease is dropped.
    pub fn lease(&self, digest: Digest) -> Option<ToolchainLease> {
        let lease = {
            let mut held = self.held();
            let entry = held.get_mut(&digest)?;
            entry.tick = self.clock.fetch_add(1, Ordering::Relaxed);
            ToolchainLease { root: self.path(digest).join("root"), _in_use: entry.users.clone() }
        };
        self.evict();
        Some(lease)
    }

    /// Records a toolchain just materialized at [`Self::path`]; evicts the least recently used unused
    /// ones beyond the bound.
    pub fn add(&self, digest: Digest) -> ToolchainLease {
        let users = Arc::new(());
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        self.held().insert(digest, Held { tick, users: users.clone() });
        self.evict();
        ToolchainLease { root: self.path(digest).join("root"), _in_use: users }
    }

    /// The toolchains held, most recently used first, at most [`MAX_HELD_TOOLCHAINS`].
    pub fn digests(&self) -> Vec<Digest> {
        let held = self.held();
        let mut all: Vec<(u64, Digest)> = held.iter().map(|(d, h)| (h.tick, *d)).collect();
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter().take(MAX_HELD_TOOLCHAINS).map(|(_, d)| d).collect()
    }

    fn held(&self) -> MutexGuard<'_, HashMap<Digest, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes unused toolchains, least recently used first, until at most `keep` are held. Each is first
    /// renamed aside (under the lock), so a new materialization of the same digest is free to take its place.
    fn evict(&self) {
        let mut aside = Vec::new();
        {
            let mut held = self.held();
            while held.len() > self.keep {
                let unused = held.iter().filter(|(_, h)| Arc::strong_count(&h.users) == 1);
                let Some(oldest) = unused.min_by_key(|(_, h)| h.tick).map(|(d, _)| *d) else { break };
                held.remove(&oldest);
                let seq = self.clock.fetch_add(1, Ordering::Relaxed);
                let to = self.dir.join(format!("{}.evicted-{seq}", oldest.to_hex()));
                match fs::rename(self.path(oldest), &to) {
                    Ok(()) => aside.push((oldest, to)),
                    Err(e) => tracing::warn!(toolchain = %&oldest.to_hex()[..16], error = %e, "evicting a toolchain"),
                }
            }
        }
        for (digest, path) in aside {
            remove_any(&path);
            tracing::info!(toolchain = %&digest.to_hex()[..16], "toolchain evicted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut digests: Vec<Digest>) -> Vec<Digest> {
        digests.sort();
        digests
    }

    fn materialize(dirs: &ToolchainDirs, n: u8) -> ToolchainLease {
        let digest = Digest::of(&[n]);
        fs::create_dir_all(dirs.path(digest).join("root").join("usr")).unwrap();
        dirs.add(digest)
    }

    #[test]
    fn toolchains_are_bounded_by_count_and_one_in_use_stays() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = ToolchainDirs::open(dir.path().join("toolchains"), 2).unwrap();
        let running = materialize(&dirs, 1); // an action runs on toolchain 1 throughout
        drop(materialize(&dirs, 2));
        drop(materialize(&dirs, 3)); // 1 is the oldest but in use: 2 goes
        assert_eq!(sorted(dirs.digests()), sorted(vec![Digest::of(&[1]), Digest::of(&[3])]));
        assert!(!dirs.path(Digest::of(&[2])).exists());
        assert!(running.root().join("usr").is_dir());
        drop(dirs.lease(Digest::of(&[3])).unwrap()); // 3 used again: 1 is now the least recent
        drop(running);
        drop(materialize(&dirs, 4));
        assert_eq!(dirs.digests(), vec![Digest::of(&[4]), Digest::of(&[3])], "most recent first");
        assert!(dirs.lease(Digest::of(&[1])).is_none());
        assert_eq!(fs::read_dir(dir.path().join("toolchains")).unwrap().count(), 2, "nothing left aside");
    }

    #[test]
    fn all_toolchains_in_use_exceed_the_bound_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = ToolchainDirs::open(dir.path().join("toolchains"), 1).unwrap();
        let first = materialize(&dirs, 1);
        let second = materialize(&dirs, 2);
        assert_eq!(dirs.digests().len(), 2, "both run");
        drop(first);
        drop(dirs.lease(Digest::of(&[2])));
        assert_eq!(dirs.digests(), vec![Digest::of(&[2])]);
        drop(second);
    }

    #[test]
    fn reopening_toolchains_keeps_complete_trees_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("toolchains");
        {
            let dirs = ToolchainDirs::open(root.clone(), 4).unwrap();
            drop(materialize(&dirs, 1));
            fs::create_dir_all(dirs.partial_path(Digest::of(&[2])).join("root")).unwrap();
            fs::create_dir_all(dirs.path(Digest::of(&[3]))).unwrap(); // no root: incomplete
        }
        let dirs = ToolchainDirs::open(root.clone(), 4).unwrap();
        assert_eq!(dirs.digests(), vec![Digest::of(&[1])]);
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
        assert!(dirs.lease(Digest::of(&[1])).is_some_and(|l| l.root().join("usr").is_dir()));
    }
}
