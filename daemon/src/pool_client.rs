//! The daemon's state as a client of the remote pool, owned by its `Context`:
//! how many misses compile locally now (the pool takes the rest), and the compilers packed so far, each
//! uploaded once.

use crate::remote::{Blob, Remote};
use crate::stats::StatsBook;
use rcc_pack::{Entry, Pack};
use rcc_proto::stats::RemoteFallback;
use rcc_proto::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pool client's state, owned by the daemon's `Context`: how many misses compile locally now, and the
/// compilers packed so far.
#[derive(Default)]
pub struct PoolClient {
    /// Local compiles of misses running now.
    local_running: AtomicU64,
    /// Packs by compiler identity, built once each.
    packs: Mutex<HashMap<Digest, Arc<PackedCompiler>>>,
}

/// Holds one local compile slot while alive.
pub struct LocalSlot<'a>(&'a AtomicU64);

impl Drop for LocalSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PoolClient {
    /// Takes a local compile slot (counted even beyond the cap: the cap only decides what goes remote).
    pub fn local_slot(&self) -> LocalSlot<'_> {
        self.local_running.fetch_add(1, Ordering::AcqRel);
        LocalSlot(&self.local_running)
    }

    /// Whether the local compile slots are full (`local_jobs` of them), so a miss should try the pool.
    pub fn slots_full(&self, local_jobs: u64) -> bool {
        self.local_running.load(Ordering::Acquire) >= local_jobs
    }

    /// The compiler's pack, built on first use for this identity.
    pub(crate) fn packed(
        &self,
        identity: Digest,
        driver: &std::path::Path,
    ) -> Result<Arc<PackedCompiler>, RemoteFallback> {
        if let Some(known) = self.packs.lock().unwrap_or_else(|e| e.into_inner()).get(&identity) {
            return Ok(known.clone());
        }
        let pack = Pack::of_compiler(driver).map_err(|e| {
            tracing::warn!(error = %e, "packing the compiler failed");
            RemoteFallback::PackFailed
        })?;
        let files = pack
            .entries
            .iter()
            .filter_map(|(path, entry)| match entry {
                Entry::File { digest, .. } => Some((*digest, path.clone())),
                Entry::Symlink { .. } => None,
            })
            .collect();
        let pack_bytes = pack.encode();
        let packed = Arc::new(PackedCompiler {
            digest: Digest::of(&pack_bytes),
            pack_bytes,
            files,
            stored: AtomicBool::new(false),
            uploading: Mutex::new(()),
        });
        self.packs.lock().unwrap_or_else(|e| e.into_inner()).insert(identity, packed.clone());
        Ok(packed)
    }
}

/// A compiler's pack, built once per identity: its encoded bytes, its digest, where its files are, and
/// whether the scheduler is known to hold it.
pub(crate) struct PackedCompiler {
    pack_bytes: Vec<u8>,
    /// The pack's digest: the toolchain of actions.
    pub(crate) digest: Digest,
    files: Vec<(Digest, PathBuf)>,
    /// Uploaded (or found stored), and no action with it has failed since.
    pub(crate) stored: AtomicBool,
    /// Held by the one miss uploading it; concurrent misses wait instead of uploading it again.
    uploading: Mutex<()>,
}

impl PackedCompiler {
    /// Makes sure the scheduler holds the pack (tens of MB): one miss uploads what it lacks while concurrent
    /// ones wait; afterwards nothing is sent or asked.
    pub(crate) fn ensure_stored(
        &self,
        stats: &StatsBook,
        remote: &Remote,
        wait: Duration,
    ) -> Result<(), RemoteFallback> {
        if self.stored.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.uploading.lock().unwrap_or_else(|e| e.into_inner());
        if self.stored.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut blobs: Vec<(Digest, Blob)> =
            self.files.iter().map(|(d, path)| (*d, Blob::File(path.clone()))).collect();
        blobs.push((self.digest, Blob::Bytes(self.pack_bytes.clone())));
        remote.upload_blobs(stats, blobs, wait)?;
        self.stored.store(true, Ordering::Release);
        Ok(())
    }
}
