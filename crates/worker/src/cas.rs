//! A pool worker's local content-addressed cache, so that an input or a toolchain is fetched from the
//! scheduler once, not once per action:
//!
//! - [`BlobCache`]: blobs (action inputs and the files of toolchain packs) under `<dir>/cas/<hex>`, bounded
//!   in bytes with least-recently-used eviction. Every read is checked against the digest (a corrupt or
//!   truncated file is dropped and fetched again), every write is atomic (temp file, then rename), and a
//!   blob asked for by several actions at once is fetched once.
//!
//! Materialized toolchains are bounded apart, in `toolchains.rs`. What both hold is what the worker reports in its heartbeats, so the scheduler prefers it for actions
//! needing them. Both index what they find on disk when opened; a worker directory belongs to one worker.

use rcc_fs::{AtomicFile, WriteOptions};
use rcc_link::client::{Client, ClientError};
use rcc_proto::remote::MAX_HELD_INPUTS;
use rcc_proto::Digest;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::future::Future;
use std::io;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// The blob directory's mode: the worker's alone. Inputs are clients' preprocessed sources.
const DIR_MODE: u32 = 0o700;
/// A blob file's mode.
const BLOB_MODE: u32 = 0o600;

/// Why a blob could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// The source failed.
    #[error("fetching blob {digest}: {source}")]
    Fetch {
        /// The blob.
        digest: Digest,
        /// The source's failure.
        source: ClientError,
    },
    /// The source does not have it.
    #[error("blob {0} is not stored on the scheduler")]
    Missing(Digest),
    /// What the source sent is not the blob.
    #[error("blob {0} from the scheduler failed its digest check")]
    Corrupt(Digest),
    /// The disk task died.
    #[error("worker cache task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Where blobs come from when the cache lacks them: the scheduler ([`Client`]), or anything in tests.
pub trait Fetch {
    /// The blob's bytes; `None` when the source does not have it.
    fn fetch(&self, digest: Digest) -> impl Future<Output = Result<Option<Vec<u8>>, ClientError>> + Send;
}

impl Fetch for Client {
    /// Downloads the blob; [`Client::get_blob`] checks it against its digest.
    async fn fetch(&self, digest: Digest) -> Result<Option<Vec<u8>>, ClientError> {
        self.get_blob(digest).await
    }
}

/// What a blob is fetched for. Inputs are reported in heartbeats; the files of a toolchain pack are not
/// (the toolchain itself is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An action's input file.
    Input,
    /// A toolchain pack or one of its files.
    Toolchain,
}

/// What the blob cache did since it opened, and what it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CasStats {
    /// Blobs served from the local disk.
    pub hits: u64,
    /// Blobs fetched from the scheduler.
    pub fetches: u64,
    /// Local files that failed their digest check (dropped and fetched again).
    pub corrupt: u64,
    /// Blobs held.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Blobs on disk, bounded in bytes, least recently used evicted first. Cheap to share: clones are one cache.
#[derive(Clone)]
pub struct BlobCache {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    cap: u64,
    index: Mutex<Index>,
    /// One fetch per digest at a time: a lock per digest being fetched.
    flights: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
    fetches: AtomicU64,
    corrupt: AtomicU64,
}

/// A held blob.
struct Entry {
    size: u64,
    /// Its place in [`Index::by_use`].
    tick: u64,
    role: Role,
}

/// Which blobs are held, and in which order they were last used.
#[derive(Default)]
struct Index {
    entries: HashMap<Digest, Entry>,
    by_use: BTreeMap<u64, Digest>,
    bytes: u64,
    clock: u64,
}

impl Index {
    /// Marks a held blob as just used; `false` when it is not held.
    fn touch(&mut self, digest: Digest, role: Role) -> bool {
        let Some(entry) = self.entries.get_mut(&digest) else { return false };
        self.by_use.remove(&entry.tick);
        self.clock += 1;
        entry.tick = self.clock;
        entry.role = role;
        self.by_use.insert(self.clock, digest);
        true
    }

    /// Records a blob as held and just used.
    fn insert(&mut self, digest: Digest, size: u64, role: Role) {
        self.remove(digest);
        self.clock += 1;
        self.entries.insert(digest, Entry { size, tick: self.clock, role });
        self.by_use.insert(self.clock, digest);
        self.bytes += size;
    }

    fn remove(&mut self, digest: Digest) -> Option<Entry> {
        let entry = self.entries.remove(&digest)?;
        self.by_use.remove(&entry.tick);
        self.bytes -= entry.size;
        Some(entry)
    }

    /// Forgets the least recently used blobs until at most `cap` bytes are held; returns them.
    fn evict_to(&mut self, cap: u64) -> Vec<Digest> {
        let mut victims = Vec::new();
        while self.bytes > cap {
            let Some((_, oldest)) = self.by_use.first_key_value() else { break };
            let oldest = *oldest;
            self.remove(oldest);
            victims.push(oldest);
        }
        victims
    }

    /// The `n` most recently used blobs of `role`, most recent first.
    fn recent(&self, role: Role, n: usize) -> Vec<Digest> {
        let of_role = |d: &&Digest| self.entries.get(*d).is_some_and(|e| e.role == role);
        self.by_use.values().rev().filter(of_role).take(n).copied().collect()
    }
}

/// Whether a directory entry's name is a digest in hex (a held blob or toolchain), not a leftover.
pub(crate) fn digest_named(name: &std::ffi::OsStr) -> Option<Digest> {
    name.to_str().filter(|n| n.len() == 64).and_then(Digest::from_hex)
}

pub(crate) fn modified(meta: &fs::Metadata) -> SystemTime {
    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

impl BlobCache {
    /// The cache in `dir` (created), holding at most `cap` bytes. Blobs already there are indexed (their
    /// modification time gives the order of use) and the excess evicted; temporary files left by a crash
    /// are removed. Files are checked when read, not here.
    pub fn open(dir: PathBuf, cap: u64) -> io::Result<BlobCache> {
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            match digest_named(&entry.file_name()) {
                Some(digest) if meta.is_file() => {
                    if meta.permissions().mode() & 0o777 != BLOB_MODE {
                        // Left by a version that kept blobs world-readable.
                        fs::set_permissions(entry.path(), fs::Permissions::from_mode(BLOB_MODE))?;
                    }
                    found.push((modified(&meta), digest, meta.len()))
                }
                _ => remove_any(&entry.path()),
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, digest, size) in found {
            // Unknown after a restart: reported as inputs until used (the last use decides).
            index.insert(digest, size, Role::Input);
        }
        let inner = Inner {
            dir,
            cap,
            index: Mutex::new(index),
            flights: Mutex::default(),
            hits: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
        };
        let victims = inner.index().evict_to(cap);
        inner.remove_files(&victims);
        Ok(BlobCache { inner: Arc::new(inner) })
    }

    /// A blob's bytes: from the local disk when held and intact, else fetched from `source` (checked against
    /// the digest), kept and returned. A blob larger than the whole cache is returned but not kept.
    pub async fn get(&self, source: &impl Fetch, digest: Digest, role: Role) -> Result<Vec<u8>, CasError> {
        if let Some(bytes) = self.read(digest, role, false).await? {
            return Ok(bytes);
        }
        let flight = Flight::start(&self.inner, digest);
        let _one = flight.wait().await;
        // Whoever held the lock before may have fetched it; a bad file is dropped only under the lock.
        if let Some(bytes) = self.read(digest, role, true).await? {
            return Ok(bytes);
        }
        let bytes = source
            .fetch(digest)
            .await
            .map_err(|source| CasError::Fetch { digest, source })?
            .ok_or(CasError::Missing(digest))?;
        if Digest::of(&bytes) != digest {
            return Err(CasError::Corrupt(digest));
        }
        self.inner.counted(&self.inner.fetches, digest, "blob fetched from the scheduler");
        self.store(digest, bytes, role).await
    }

    /// The counters and what is held.
    pub fn stats(&self) -> CasStats {
        let index = self.inner.index();
        CasStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            fetches: self.inner.fetches.load(Ordering::Relaxed),
            corrupt: self.inner.corrupt.load(Ordering::Relaxed),
            blobs: index.entries.len() as u64,
            bytes: index.bytes,
        }
    }

    /// The most recently used inputs held, most recent first, at most [`MAX_HELD_INPUTS`].
    pub fn recent_inputs(&self) -> Vec<Digest> {
        self.inner.index().recent(Role::Input, MAX_HELD_INPUTS)
    }

    /// The held blob from disk, if intact; `drop_bad` drops a corrupt or vanished one.
    async fn read(&self, digest: Digest, role: Role, drop_bad: bool) -> Result<Option<Vec<u8>>, CasError> {
        let inner = self.inner.clone();
        Ok(tokio::task::spawn_blocking(move || inner.read_local(digest, role, drop_bad)).await?)
    }

    /// Keeps a fetched blob (a failure to keep it is logged: the blob is still served).
    async fn store(&self, digest: Digest, bytes: Vec<u8>, role: Role) -> Result<Vec<u8>, CasError> {
        let inner = self.inner.clone();
        Ok(tokio::task::spawn_blocking(move || {
            if let Err(e) = inner.store_local(digest, &bytes, role) {
                tracing::warn!(blob = %&digest.to_hex()[..16], error = %e, "blob not kept in the worker cache");
            }
            bytes
        })
        .await?)
    }
}

impl Inner {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flights(&self) -> MutexGuard<'_, HashMap<Digest, Arc<tokio::sync::Mutex<()>>>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, digest: Digest) -> PathBuf {
        self.dir.join(digest.to_hex())
    }

    fn counted(&self, counter: &AtomicU64, digest: Digest, what: &str) {
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            blob = %&digest.to_hex()[..16],
            hits = self.hits.load(Ordering::Relaxed),
            fetches = self.fetches.load(Ordering::Relaxed),
            "{what}"
        );
    }

    fn read_local(&self, digest: Digest, role: Role, drop_bad: bool) -> Option<Vec<u8>> {
        if !self.index().touch(digest, role) {
            return None;
        }
        match fs::read(self.path(digest)) {
            Ok(bytes) if Digest::of(&bytes) == digest => {
                self.counted(&self.hits, digest, "blob from the worker cache");
                Some(bytes)
            }
            Ok(bytes) if drop_bad => {
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(blob = %&digest.to_hex()[..16], size = bytes.len(), "corrupt blob in the worker cache: fetched again");
                self.drop_blob(digest);
                None
            }
            Err(e) if drop_bad => {
                // Evicted since the lookup, or removed behind the worker's back.
                tracing::debug!(blob = %&digest.to_hex()[..16], error = %e, "blob unreadable in the worker cache");
                self.drop_blob(digest);
                None
            }
            _ => None,
        }
    }

    /// Writes a blob atomically, indexes it and evicts down to the cap. The rename, the index and the
    /// evictions' removals happen under the index lock, so an index entry always has its file.
    fn store_local(&self, digest: Digest, bytes: &[u8], role: Role) -> io::Result<()> {
        let size = bytes.len() as u64;
        if size > self.cap {
            tracing::debug!(blob = %&digest.to_hex()[..16], size, "blob larger than the worker cache: not kept");
            return Ok(());
        }
        let mut file = AtomicFile::create(&self.path(digest), WriteOptions::cache(BLOB_MODE))?;
        file.write_all(bytes)?;
        let mut index = self.index();
        file.commit()?;
        index.insert(digest, size, role);
        let victims = index.evict_to(self.cap);
        self.remove_files(&victims);
        if !victims.is_empty() {
            tracing::debug!(evicted = victims.len(), bytes = index.bytes, "worker cache over its size: evicted");
        }
        Ok(())
    }

    fn drop_blob(&self, digest: Digest) {
        let mut index = self.index();
        index.remove(digest);
        let _ = fs::remove_file(self.path(digest));
    }

    fn remove_files(&self, digests: &[Digest]) {
        for digest in digests {
            let _ = fs::remove_file(self.path(*digest));
        }
    }
}

/// A fetch of one digest in progress: later askers wait on its lock. The lock leaves the map when its last
/// user is done (dropping this, also when the asking action is cancelled).
struct Flight<'a> {
    inner: &'a Inner,
    digest: Digest,
    /// Always `Some` until dropped (taken out under the map's lock, so the count of users stays exact).
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl<'a> Flight<'a> {
    fn start(inner: &'a Inner, digest: Digest) -> Flight<'a> {
        let lock = inner.flights().entry(digest).or_default().clone();
        Flight { inner, digest, lock: Some(lock) }
    }

    /// Waits until no other fetch of the digest is in progress.
    async fn wait(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.lock.as_ref()?.lock().await)
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = self.inner.flights();
        // Ours and the map's: nobody else waits.
        if self.lock.take().is_some_and(|lock| Arc::strong_count(&lock) == 2) {
            flights.remove(&self.digest);
        }
    }
}

/// Removes a file or a whole tree, whatever it is.
pub(crate) fn remove_any(path: &Path) {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        tracing::warn!(path = %path.display(), error = %e, "removing a leftover of the worker cache");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A source holding some blobs, counting what is asked of it.
    #[derive(Default)]
    struct Source {
        blobs: HashMap<Digest, Vec<u8>>,
        asked: AtomicUsize,
    }

    impl Source {
        fn with(blobs: &[&[u8]]) -> Source {
            Source { blobs: blobs.iter().map(|b| (Digest::of(b), b.to_vec())).collect(), ..Source::default() }
        }

        fn asked(&self) -> usize {
            self.asked.load(Ordering::Relaxed)
        }
    }

    impl Fetch for Source {
        fn fetch(&self, digest: Digest) -> impl Future<Output = Result<Option<Vec<u8>>, ClientError>> + Send {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let found = self.blobs.get(&digest).cloned();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(found)
            }
        }
    }

    fn held(cache: &BlobCache) -> Vec<Digest> {
        let mut all = cache.inner.index().recent(Role::Input, usize::MAX);
        all.extend(cache.inner.index().recent(Role::Toolchain, usize::MAX));
        all.sort();
        all
    }

    fn sorted(mut digests: Vec<Digest>) -> Vec<Digest> {
        digests.sort();
        digests
    }

    #[tokio::test]
    async fn a_blob_is_fetched_once_then_served_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source::with(&[b"int x;"]);
        let cache = BlobCache::open(dir.path().join("cas"), 1 << 20).unwrap();
        let digest = Digest::of(b"int x;");
        for _ in 0..3 {
            assert_eq!(cache.get(&source, digest, Role::Input).await.unwrap(), b"int x;");
        }
        assert_eq!(source.asked(), 1);
        let stats = cache.stats();
        assert_eq!((stats.fetches, stats.hits, stats.blobs, stats.bytes), (1, 2, 1, 6));
        assert_eq!(fs::read(dir.path().join("cas").join(digest.to_hex())).unwrap(), b"int x;");
        let missing = cache.get(&source, Digest::of(b"nowhere"), Role::Input).await;
        let missing = missing.unwrap_err();
        assert!(matches!(missing, CasError::Missing(_)), "{missing}");
        assert!(missing.to_string().contains("not stored"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gets_of_one_blob_fetch_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let source = Arc::new(Source::with(&[b"shared header"]));
        let cache = BlobCache::open(dir.path().join("cas"), 1 << 20).unwrap();
        let digest = Digest::of(b"shared header");
        let gets: Vec<_> = (0..8)
            .map(|_| {
                let (cache, source) = (cache.clone(), source.clone());
                tokio::spawn(async move { cache.get(source.as_ref(), digest, Role::Input).await })
            })
            .collect();
        for get in gets {
            assert_eq!(get.await.unwrap().unwrap(), b"shared header");
        }
        assert_eq!(source.asked(), 1, "one fetch for eight actions");
        assert!(cache.inner.flights.lock().unwrap().is_empty(), "no fetch left in flight");
    }

    #[tokio::test]
    async fn the_least_recently_used_blobs_go_first_when_over_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c, d): (&[u8], &[u8], &[u8], &[u8]) = (&[b'a'; 40], &[b'b'; 40], &[b'c'; 40], &[b'd'; 70]);
        let source = Source::with(&[a, b, c, d]);
        let cache = BlobCache::open(dir.path().join("cas"), 100).unwrap();
        let (cache, source) = (&cache, &source);
        let get = move |blob: &'static [u8]| async move {
            cache.get(source, Digest::of(blob), Role::Input).await.unwrap();
        };
        get(a).await;
        get(b).await;
        get(a).await; // a is now more recent than b
        get(c).await; // 120 bytes: b goes
        assert_eq!(held(cache), sorted(vec![Digest::of(a), Digest::of(c)]));
        assert!(!dir.path().join("cas").join(Digest::of(b).to_hex()).exists(), "its file goes too");
        get(d).await; // 150 bytes: a then c go
        assert_eq!(held(cache), vec![Digest::of(d)]);
        assert_eq!(cache.stats().bytes, 70);
        assert_eq!(source.asked(), 4);
        get(b).await; // fetched again: 110, d goes
        assert_eq!(source.asked(), 5);
        assert_eq!(cache.recent_inputs(), vec![Digest::of(b)]);
    }

    #[tokio::test]
    async fn a_blob_larger_than_the_cache_is_served_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let big: &[u8] = &[7; 200];
        let source = Source::with(&[big]);
        let cache = BlobCache::open(dir.path().join("cas"), 100).unwrap();
        assert_eq!(cache.get(&source, Digest::of(big), Role::Input).await.unwrap(), big);
        assert_eq!(cache.stats().blobs, 0);
        assert_eq!(fs::read_dir(dir.path().join("cas")).unwrap().count(), 0, "no file, no temporary left");
    }

    #[tokio::test]
    async fn a_corrupt_or_truncated_file_is_dropped_and_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let blob: &[u8] = b"int main(void) { return 0; }";
        let source = Source::with(&[blob]);
        let cache = BlobCache::open(dir.path().join("cas"), 1 << 20).unwrap();
        let digest = Digest::of(blob);
        let file = dir.path().join("cas").join(digest.to_hex());
        cache.get(&source, digest, Role::Input).await.unwrap();
        fs::write(&file, b"int main(void) { return 1; }").unwrap();
        assert_eq!(cache.get(&source, digest, Role::Input).await.unwrap(), blob, "never the corrupt bytes");
        assert_eq!(fs::read(&file).unwrap(), blob, "the file is repaired");
        fs::write(&file, &blob[..5]).unwrap();
        assert_eq!(cache.get(&source, digest, Role::Input).await.unwrap(), blob);
        let stats = cache.stats();
        assert_eq!((stats.corrupt, stats.fetches, stats.hits, stats.bytes), (2, 3, 0, blob.len() as u64));
    }

    #[tokio::test]
    async fn a_blob_failing_its_digest_from_the_source_is_refused_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Digest::of(b"the real bytes");
        let source = Source { blobs: [(digest, b"other bytes".to_vec())].into(), ..Source::default() };
        let cache = BlobCache::open(dir.path().join("cas"), 1 << 20).unwrap();
        let got = cache.get(&source, digest, Role::Input).await;
        let got = got.unwrap_err();
        assert!(matches!(got, CasError::Corrupt(_)), "{got}");
        assert!(got.to_string().contains("digest check"));
        assert_eq!(cache.stats().blobs, 0);
    }

    #[tokio::test]
    async fn reopening_indexes_what_is_on_disk_and_drops_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let cas = dir.path().join("cas");
        let source = Source::with(&[b"one", b"two"]);
        {
            let cache = BlobCache::open(cas.clone(), 1 << 20).unwrap();
            cache.get(&source, Digest::of(b"one"), Role::Input).await.unwrap();
            cache.get(&source, Digest::of(b"two"), Role::Toolchain).await.unwrap();
        }
        fs::write(cas.join("0123.tmp-1-2"), b"half a write").unwrap();
        let cache = BlobCache::open(cas.clone(), 1 << 20).unwrap();
        assert_eq!(fs::read_dir(&cas).unwrap().count(), 2, "the temporary file is gone");
        assert_eq!((cache.stats().blobs, cache.stats().bytes), (2, 6));
        cache.get(&source, Digest::of(b"one"), Role::Input).await.unwrap();
        cache.get(&source, Digest::of(b"two"), Role::Input).await.unwrap();
        assert_eq!(source.asked(), 2, "both served from disk after the restart");
        // A smaller cap evicts on opening.
        let small = BlobCache::open(cas.clone(), 3).unwrap();
        assert_eq!(small.stats().blobs, 1);
    }

    #[test]
    fn recent_inputs_leave_toolchain_files_out() {
        let mut index = Index::default();
        index.insert(Digest::of(b"in1"), 1, Role::Input);
        index.insert(Digest::of(b"gcc file"), 1, Role::Toolchain);
        index.insert(Digest::of(b"in2"), 1, Role::Input);
        assert_eq!(index.recent(Role::Input, 10), vec![Digest::of(b"in2"), Digest::of(b"in1")]);
        assert_eq!(index.recent(Role::Input, 1), vec![Digest::of(b"in2")]);
        assert!(
            index.touch(Digest::of(b"gcc file"), Role::Input),
            "a toolchain file used as an input: the last use decides"
        );
        assert_eq!(index.recent(Role::Input, 1), vec![Digest::of(b"gcc file")]);
    }
}
