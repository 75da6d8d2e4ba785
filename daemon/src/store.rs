//! The local store: entries addressed by a [`Digest`], zstd-compressed, written atomically (temp file, then
//! rename), checked against their content digest on every read, bounded by a size limit with
//! least-recently-used eviction (a hit refreshes the entry's modification time).
//!
//! It knows nothing of compilers or the daemon. Several processes may share one directory: every write is a
//! rename, every read tolerates a concurrent removal, eviction tolerates files vanishing under it.
//!
//! Entry file layout:
//! ```text
//! "RCCS" | version u8 | kind u8 | key (32 B) | payload SHA-256 (32 B) | payload length u64 LE | zstd frame
//! ```
//! The key an entry was written under is inside it: an entry file moved or copied to another key's place
//! fails its check instead of answering for that key. Entries of an older format version are dropped as
//! absent (an upgrade is not corruption).
//!
//! The store is private to its user: directories are created 0700 and entries 0600, whatever the umask.

use rcc_fs::{write_atomic, WriteOptions};
use rcc_proto::Digest;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

const MAGIC: &[u8; 4] = b"RCCS";
const FORMAT_VERSION: u8 = 2;
const HEADER_LEN: usize = 4 + 1 + 1 + 32 + 32 + 8;
/// Largest payload an entry may claim (guards decompression against a corrupt length).
const MAX_PAYLOAD: u64 = 4 << 30;
/// Eviction brings the store down to this fraction of the limit, so it does not run on every write.
const EVICT_TO_PERCENT: u64 = 90;
/// The mode of entry files: the cached objects and preprocessed sources are the user's own.
const ENTRY_MODE: u32 = 0o600;
/// The mode of the store's directories.
const DIR_MODE: u32 = 0o700;
/// Temporary files older than this were left by a crash (a live write takes far less).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// The kinds of entry, each in its own subdirectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A compile's outputs (objects, depfile, stdout, stderr…).
    Result,
    /// A direct-mode manifest: header lists leading to results.
    Manifest,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Result, Kind::Manifest];

    fn tag(self) -> u8 {
        match self {
            Kind::Result => b'r',
            Kind::Manifest => b'm',
        }
    }

    /// The subdirectory of the store holding this kind.
    fn dir(self) -> &'static str {
        match self {
            Kind::Result => "r",
            Kind::Manifest => "m",
        }
    }
}

/// A store failure. Corruption is separate from I/O: the caller counts it and treats it as a miss.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entry failed its checks and was removed.
    #[error("corrupt cache entry {path}: {why}")]
    Corrupt {
        /// The entry's file.
        path: PathBuf,
        /// What check failed.
        why: &'static str,
    },
    /// Reading or writing failed.
    #[error("cache store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// Size and entry count of the store, as last measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes on disk (entry files).
    pub bytes: u64,
    /// Number of entries.
    pub entries: u64,
}

/// A handle on a store directory. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    limit: u64,
    bytes: AtomicU64,
    entries: AtomicU64,
    evicting: AtomicBool,
}

impl Store {
    /// Opens (creating) the store under `root` with a size limit in bytes, and measures it.
    pub fn open(root: &Path, limit: u64) -> Result<Store, StoreError> {
        create_private_dir(root)?;
        let store = Store {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                limit,
                bytes: AtomicU64::new(0),
                entries: AtomicU64::new(0),
                evicting: AtomicBool::new(false),
            }),
        };
        let usage = store.measure();
        store.inner.bytes.store(usage.bytes, Ordering::Relaxed);
        store.inner.entries.store(usage.entries, Ordering::Relaxed);
        Ok(store)
    }

    /// The path an entry lives at.
    pub fn entry_path(&self, kind: Kind, key: &Digest) -> PathBuf {
        let hex = key.to_hex();
        self.inner.root.join(kind.dir()).join(&hex[..2]).join(&hex[2..])
    }

    /// Reads and verifies an entry. `Ok(None)` when absent; a corrupt entry is removed and reported.
    pub fn get(&self, kind: Kind, key: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.entry_path(kind, key);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).map_err(io_err(&path))?;
        match decode_entry(kind, key, &raw) {
            Ok(Decoded::Payload(payload)) => {
                // Refresh the LRU clock; failing to do so only makes eviction less accurate.
                let _ = file.set_modified(SystemTime::now());
                Ok(Some(payload))
            }
            Ok(Decoded::Outdated) => {
                if fs::remove_file(&path).is_ok() {
                    self.account(-(raw.len() as i64), -1);
                }
                Ok(None)
            }
            Err(why) => {
                if fs::remove_file(&path).is_ok() {
                    self.account(-(raw.len() as i64), -1);
                }
                Err(StoreError::Corrupt { path, why })
            }
        }
    }

    /// Writes an entry atomically, replacing any previous one, then evicts if the store is over its limit.
    pub fn put(&self, kind: Kind, key: &Digest, payload: &[u8]) -> Result<(), StoreError> {
        let path = self.entry_path(kind, key);
        let bytes = encode_entry(kind, key, payload).map_err(io_err(&path))?;
        let parent = path.parent().unwrap_or(&self.inner.root);
        create_private_dir(parent)?;
        let old_len = fs::metadata(&path).map(|m| m.len()).ok();
        write_atomic(&path, &bytes, WriteOptions::cache(ENTRY_MODE)).map_err(io_err(&path))?;
        match old_len {
            Some(old) => self.account(bytes.len() as i64 - old as i64, 0),
            None => self.account(bytes.len() as i64, 1),
        }
        if self.inner.bytes.load(Ordering::Relaxed) > self.inner.limit {
            self.evict();
        }
        Ok(())
    }

    /// Removes an entry if present.
    pub fn remove(&self, kind: Kind, key: &Digest) {
        let path = self.entry_path(kind, key);
        if let Ok(m) = fs::metadata(&path) {
            if fs::remove_file(&path).is_ok() {
                self.account(-(m.len() as i64), -1);
            }
        }
    }

    /// Current usage as tracked since opening (re-measured by every eviction).
    pub fn usage(&self) -> Usage {
        Usage { bytes: self.inner.bytes.load(Ordering::Relaxed), entries: self.inner.entries.load(Ordering::Relaxed) }
    }

    /// The size limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), StoreError> {
        for kind in Kind::ALL {
            let dir = self.inner.root.join(kind.dir());
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
        }
        let usage = self.measure();
        self.inner.bytes.store(usage.bytes, Ordering::Relaxed);
        self.inner.entries.store(usage.entries, Ordering::Relaxed);
        Ok(())
    }

    /// Evicts least-recently-used entries until the store is at most 90 % of its limit. Only one eviction
    /// runs at a time in this process; a concurrent call returns at once.
    pub fn evict(&self) {
        if self.inner.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut files = Vec::new();
        self.walk(&mut |path, meta| {
            files.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), path.to_owned()));
        });
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let mut count = files.len() as u64;
        let target = self.inner.limit / 100 * EVICT_TO_PERCENT;
        if total > target {
            files.sort();
            for (_, len, path) in files {
                if total <= target {
                    break;
                }
                if fs::remove_file(&path).is_ok() {
                    total = total.saturating_sub(len);
                    count = count.saturating_sub(1);
                }
            }
        }
        self.inner.bytes.store(total, Ordering::Relaxed);
        self.inner.entries.store(count, Ordering::Relaxed);
        self.inner.evicting.store(false, Ordering::Release);
    }

    fn measure(&self) -> Usage {
        let mut usage = Usage::default();
        self.walk(&mut |_, meta| {
            usage.bytes += meta.len();
            usage.entries += 1;
        });
        usage
    }

    /// Visits every entry file; temporary files of writes in progress are skipped, those a crash left
    /// behind removed.
    fn walk(&self, visit: &mut dyn FnMut(&Path, &fs::Metadata)) {
        for kind in Kind::ALL {
            let dir = self.inner.root.join(kind.dir());
            let Ok(shards) = fs::read_dir(&dir) else { continue };
            for shard in shards.flatten() {
                let Ok(entries) = fs::read_dir(shard.path()) else { continue };
                for entry in entries.flatten() {
                    let Ok(meta) = entry.metadata() else { continue };
                    let name = entry.file_name();
                    if rcc_fs::atomic::is_temp_name(&name) {
                        if rcc_fs::atomic::is_abandoned_temp(&name, &meta, STALE_TEMP) {
                            let _ = fs::remove_file(entry.path());
                        }
                    } else if meta.is_file() {
                        visit(&entry.path(), &meta);
                    }
                }
            }
        }
    }

    fn account(&self, bytes: i64, entries: i64) {
        let update = |a: &AtomicU64, d: i64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_add_signed(d)));
        };
        update(&self.inner.bytes, bytes);
        update(&self.inner.entries, entries);
    }
}

/// Creates `dir` and its missing parents owner-only (0700), whatever the umask.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(io_err(dir))
}

fn encode_entry(kind: Kind, key: &Digest, payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() / 3);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(kind.tag());
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&Digest::of(payload).0);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    // Level 1: compression must not show in the cost of a miss.
    let compressed = zstd::bulk::compress(payload, 1)?;
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// An entry file's content, checked.
enum Decoded {
    /// The payload, which belongs to the key asked for.
    Payload(Vec<u8>),
    /// An entry of an older format version: treated as absent.
    Outdated,
}

fn decode_entry(kind: Kind, key: &Digest, raw: &[u8]) -> Result<Decoded, &'static str> {
    if raw.len() < 6 || &raw[..4] != MAGIC {
        return Err("bad header");
    }
    if raw[4] < FORMAT_VERSION {
        return Ok(Decoded::Outdated);
    }
    if raw.len() < HEADER_LEN {
        return Err("bad header");
    }
    if raw[4] != FORMAT_VERSION || raw[5] != kind.tag() {
        return Err("other format version or kind");
    }
    if raw[6..38] != key.0 {
        return Err("entry of another key");
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&raw[38..70]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&raw[70..78]);
    let len = u64::from_le_bytes(len);
    if len > MAX_PAYLOAD {
        return Err("implausible length");
    }
    let payload = zstd::bulk::decompress(&raw[HEADER_LEN..], len as usize).map_err(|_| "zstd data damaged")?;
    if payload.len() as u64 != len || Digest::of(&payload).0 != digest {
        return Err("content digest mismatch");
    }
    Ok(Decoded::Payload(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(limit: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), limit).unwrap();
        (dir, s)
    }

    #[test]
    fn temporaries_a_crash_left_are_removed_at_open_and_live_ones_kept_uncounted() {
        let (dir, s) = store(1 << 30);
        s.put(Kind::Result, &Digest::of(b"k"), b"entry").unwrap();
        let shard = s.entry_path(Kind::Result, &Digest::of(b"k")).parent().unwrap().to_owned();
        let (stale, live) = (shard.join(".rcc-tmp.stale"), shard.join(".rcc-tmp.live"));
        fs::write(&stale, b"torn").unwrap();
        fs::write(&live, b"being written").unwrap();
        let two_hours_ago = SystemTime::now() - std::time::Duration::from_secs(7200);
        File::options().write(true).open(&stale).unwrap().set_modified(two_hours_ago).unwrap();
        let reopened = Store::open(dir.path(), 1 << 30).unwrap();
        assert!(!stale.exists(), "a crash's temporary is removed");
        assert!(live.exists(), "a write in progress is left alone");
        assert_eq!(reopened.usage().entries, 1, "temporaries are not entries");
    }

    #[test]
    fn put_get_round_trip() {
        let (_d, s) = store(1 << 30);
        let key = Digest::of(b"k");
        assert!(s.get(Kind::Result, &key).unwrap().is_none());
        s.put(Kind::Result, &key, b"hello world").unwrap();
        assert_eq!(s.get(Kind::Result, &key).unwrap().as_deref(), Some(&b"hello world"[..]));
        assert!(s.get(Kind::Manifest, &key).unwrap().is_none(), "kinds are separate");
        assert_eq!(s.usage().entries, 1);
    }

    #[test]
    fn corrupt_entry_is_reported_and_removed() {
        let (_d, s) = store(1 << 30);
        let key = Digest::of(b"k");
        s.put(Kind::Result, &key, &vec![7u8; 10_000]).unwrap();
        let path = s.entry_path(Kind::Result, &key);
        let mut raw = fs::read(&path).unwrap();
        let last = raw.len() - 3;
        raw[last] ^= 0xff;
        fs::write(&path, &raw).unwrap();
        assert!(matches!(s.get(Kind::Result, &key), Err(StoreError::Corrupt { .. })));
        assert!(!path.exists());
        assert!(s.get(Kind::Result, &key).unwrap().is_none());
    }

    #[test]
    fn truncated_and_garbage_entries_are_corrupt() {
        let (_d, s) = store(1 << 30);
        let key = Digest::of(b"k");
        s.put(Kind::Result, &key, b"payload payload payload").unwrap();
        let path = s.entry_path(Kind::Result, &key);
        let raw = fs::read(&path).unwrap();
        for cut in [0, 3, HEADER_LEN - 1, HEADER_LEN, raw.len() - 1] {
            fs::write(&path, &raw[..cut]).unwrap();
            assert!(s.get(Kind::Result, &key).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn an_entry_moved_to_another_keys_place_is_corrupt_not_a_hit() {
        let (_d, s) = store(1 << 30);
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        s.put(Kind::Result, &a, b"object of a").unwrap();
        s.put(Kind::Result, &b, b"object of b").unwrap();
        let (path_a, path_b) = (s.entry_path(Kind::Result, &a), s.entry_path(Kind::Result, &b));
        let (raw_a, raw_b) = (fs::read(&path_a).unwrap(), fs::read(&path_b).unwrap());
        fs::write(&path_a, &raw_b).unwrap();
        fs::write(&path_b, &raw_a).unwrap();
        for key in [a, b] {
            match s.get(Kind::Result, &key) {
                Err(StoreError::Corrupt { why, .. }) => assert_eq!(why, "entry of another key"),
                other => panic!("a swapped entry must not answer: {other:?}"),
            }
        }
    }

    #[test]
    fn an_entry_of_an_older_format_is_absent_and_dropped() {
        let (_d, s) = store(1 << 30);
        let key = Digest::of(b"k");
        s.put(Kind::Result, &key, b"payload").unwrap();
        let path = s.entry_path(Kind::Result, &key);
        let mut raw = fs::read(&path).unwrap();
        raw[4] = 1;
        fs::write(&path, &raw).unwrap();
        assert!(s.get(Kind::Result, &key).unwrap().is_none());
        assert!(!path.exists());
    }

    #[test]
    fn the_store_is_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: umask only changes this process's file-creation mask; restored below.
        let old = unsafe { libc::umask(0) };
        let s = Store::open(&dir.path().join("store"), 1 << 30).unwrap();
        let key = Digest::of(b"k");
        s.put(Kind::Result, &key, b"secret object").unwrap();
        unsafe { libc::umask(old) };
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let entry = s.entry_path(Kind::Result, &key);
        assert_eq!(mode(&entry), 0o600);
        assert_eq!(mode(entry.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("store")), 0o700);
    }

    #[test]
    fn eviction_removes_least_recently_used_first() {
        let (_d, s) = store(70_000);
        // Incompressible payloads of ~20 kB each.
        let blob = |seed: u8| -> Vec<u8> {
            let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
            (0..20_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        };
        let keys: Vec<Digest> = (0..3u8).map(|i| Digest::of(&[i])).collect();
        for (i, k) in keys.iter().enumerate() {
            s.put(Kind::Result, k, &blob(i as u8)).unwrap();
            // Distinct modification times even on coarse clocks.
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64 * 10);
            File::options().write(true).open(s.entry_path(Kind::Result, k)).unwrap().set_modified(t).unwrap();
        }
        // Touch the oldest: it becomes the most recent.
        assert!(s.get(Kind::Result, &keys[0]).unwrap().is_some());
        s.put(Kind::Result, &Digest::of(b"new"), &blob(9)).unwrap();
        assert!(s.usage().bytes <= 70_000);
        assert!(s.get(Kind::Result, &keys[0]).unwrap().is_some(), "recently used survives");
        assert!(s.get(Kind::Result, &keys[1]).unwrap().is_none(), "least recently used goes first");
    }

    #[test]
    fn clear_empties() {
        let (_d, s) = store(1 << 30);
        s.put(Kind::Manifest, &Digest::of(b"a"), b"x").unwrap();
        s.clear().unwrap();
        assert_eq!(s.usage(), Usage::default());
        assert!(s.get(Kind::Manifest, &Digest::of(b"a")).unwrap().is_none());
    }
}
