//! Shared-cache storage: content-addressable blobs and action results, behind [`Storage`] so that an
//! object-storage backend can be added without touching the protocol.
//!
//! [`DiskStorage`], the embedded default, keeps blobs as zstd files under `<dir>/blobs/` and a metadata
//! index in a redb database (`<dir>/index.redb`): per blob its size, stored size, last access and how many
//! action results name it; per action result its encoding and last access. Eviction keeps the store under
//! its limit without ever leaving a result that names an evicted blob: blobs named by results go only with
//! the last result naming them; unnamed blobs and results go least recently used first.

use rcc_proto::remote::ActionResult;
use rcc_proto::Digest;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// blob digest -> (size, stored bytes, last access (s), results naming it)
const BLOBS: TableDefinition<[u8; 32], (u64, u64, u64, u64)> = TableDefinition::new("blobs");
/// action key -> last access (s) as 8 LE bytes, then the postcard-encoded result
const ACTIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("actions");

/// The largest zstd window (as a power of two) an uploaded frame may use: 4 MiB of decoder memory at most.
const MAX_WINDOW_LOG: u32 = 22;

/// Where an upload's decompressed bytes go: counted and hashed, never kept; more than announced is an error.
struct Checked {
    hasher: sha2::Sha256,
    written: u64,
    limit: u64,
}

impl Checked {
    fn new(limit: u64) -> Checked {
        Checked { hasher: sha2::Digest::new(), written: 0, limit }
    }

    /// Whether exactly the announced bytes came, with this digest.
    fn matches(&self, digest: &Digest) -> bool {
        let mut out = [0u8; 32];
        out.copy_from_slice(&sha2::Digest::finalize(self.hasher.clone()));
        self.written == self.limit && Digest(out) == *digest
    }
}

impl Write for Checked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other("more bytes than announced"));
        }
        sha2::Digest::update(&mut self.hasher, buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The blob's content does not have the announced digest.
    #[error("blob content does not match digest {0}")]
    DigestMismatch(Digest),
    /// The result names blobs that are not stored.
    #[error("{} blob(s) named by the result are not stored", .0.len())]
    MissingBlobs(Vec<Digest>),
    /// Disk I/O failed.
    #[error("storage I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The index failed.
    #[error("storage index: {0}")]
    Index(String),
}

fn index_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Index(e.to_string())
}

/// What the scheduler stores. Implementations must be safe to share between connections.
pub trait Storage: Send + Sync {
    /// The digests among `digests` that are not stored.
    fn find_missing(&self, digests: &[Digest]) -> Result<Vec<Digest>, StorageError>;
    /// Stores a blob after checking that `data` has the digest `digest`.
    fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), StorageError> {
        let compressed = zstd::bulk::compress(data, 1)
            .map_err(|source| StorageError::Io { path: PathBuf::from("<zstd>"), source })?;
        self.put_compressed(digest, data.len() as u64, &compressed)
    }
    /// Stores a blob given as a zstd frame of `size` bytes, after checking its content against `digest`;
    /// the frame is kept as it came, so serving it later needs no recompression.
    fn put_compressed(&self, digest: &Digest, size: u64, compressed: &[u8]) -> Result<(), StorageError> {
        self.put_stream(digest, size, &mut std::iter::once(compressed.to_vec()))
    }
    /// Stores a blob arriving as chunks of one zstd frame announced as `size` bytes. The frame is
    /// decompressed and hashed as it comes, never held whole: content beyond `size` is refused at once (a
    /// zstd bomb is cut off at its announced size), and the blob is stored only when it is exactly `size`
    /// bytes with the digest `digest`.
    fn put_stream(
        &self,
        digest: &Digest,
        size: u64,
        chunks: &mut dyn Iterator<Item = Vec<u8>>,
    ) -> Result<(), StorageError>;
    /// A stored blob, checked against its digest.
    fn get_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StorageError>;
    /// A stored blob as its zstd frame and uncompressed size, unchecked (the receiver checks the digest).
    fn get_compressed(&self, digest: &Digest) -> Result<Option<(u64, Vec<u8>)>, StorageError>;
    /// A stored action result.
    fn get_action_result(&self, key: &Digest) -> Result<Option<ActionResult>, StorageError>;
    /// Stores an action result; refused unless every blob it names is stored.
    fn update_action_result(&self, key: &Digest, result: &ActionResult) -> Result<(), StorageError>;
    /// What the stored blobs take — bytes (what the size limit counts) and how many — when the backend
    /// knows it.
    fn usage(&self) -> Option<Usage> {
        None
    }
}

/// What the stored blobs take.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Usage {
    /// Stored (compressed) bytes.
    pub stored_bytes: u64,
    /// Blobs in the index.
    pub blobs: u64,
}

/// Blobs on disk, metadata in redb.
pub struct DiskStorage {
    dir: PathBuf,
    db: Database,
    limit: u64,
    stored_bytes: AtomicU64,
    /// Serialises eviction with the writes that decide it.
    evicting: Mutex<()>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DiskStorage {
    /// Opens (creating) the storage in `dir` with a size limit in bytes (stored, i.e. compressed, bytes).
    pub fn open(dir: &Path, limit: u64) -> Result<DiskStorage, StorageError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StorageError::Io { path, source }
        };
        fs::create_dir_all(dir.join("blobs")).map_err(io(dir))?;
        let db = Database::create(dir.join("index.redb")).map_err(index_err)?;
        let total = Self::reconcile(dir, &db)?;
        Ok(DiskStorage {
            dir: dir.to_owned(),
            db,
            limit,
            stored_bytes: AtomicU64::new(total),
            evicting: Mutex::new(()),
        })
    }

    /// Makes the index and the blob files agree after a crash (blob files are written before their index
    /// row, and removed after it): temporary files and files the index does not name are removed, rows
    /// whose file is gone are dropped, and each row's stored size is the file's. Returns the stored bytes.
    fn reconcile(dir: &Path, db: &Database) -> Result<u64, StorageError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StorageError::Io { path, source }
        };
        // Every file under blobs/xx/, by the digest its path names (None: not a blob's name).
        let mut files: std::collections::HashMap<[u8; 32], u64> = std::collections::HashMap::new();
        let blobs_dir = dir.join("blobs");
        for shard in fs::read_dir(&blobs_dir).map_err(io(&blobs_dir))? {
            let shard = shard.map_err(io(&blobs_dir))?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&shard).map_err(io(&shard))? {
                let entry = entry.map_err(io(&shard))?;
                let name = entry.file_name();
                let digest = shard
                    .file_name()
                    .and_then(|s| s.to_str())
                    .zip(name.to_str())
                    .and_then(|(a, b)| Digest::from_hex(&format!("{a}{b}")));
                match (digest, entry.metadata()) {
                    (Some(d), Ok(meta)) if meta.is_file() => {
                        files.insert(d.0, meta.len());
                    }
                    _ => {
                        tracing::info!(path = %entry.path().display(), "removing a leftover file from the blob store");
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        let txn = db.begin_write().map_err(index_err)?;
        let mut total = 0;
        let (mut dropped, mut fixed) = (0u64, 0u64);
        {
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            txn.open_table(ACTIONS).map_err(index_err)?;
            let mut rows = Vec::new();
            for row in blobs.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                rows.push((k.value(), v.value()));
            }
            for (key, (size, stored, access, refs)) in rows {
                match files.remove(&key) {
                    None => {
                        blobs.remove(key).map_err(index_err)?;
                        dropped += 1;
                    }
                    Some(len) => {
                        if len != stored {
                            blobs.insert(key, (size, len, access, refs)).map_err(index_err)?;
                            fixed += 1;
                        }
                        total += len;
                    }
                }
            }
        }
        txn.commit().map_err(index_err)?;
        // What is left on disk has no row: written just before a crash. Removed (a client uploads it again).
        for digest in files.keys() {
            let hex = hex::encode(digest);
            let _ = fs::remove_file(blobs_dir.join(&hex[..2]).join(&hex[2..]));
        }
        if dropped + fixed > 0 || !files.is_empty() {
            tracing::warn!(
                unindexed_files_removed = files.len(),
                rows_without_file_dropped = dropped,
                sizes_fixed = fixed,
                "blob store reconciled with its index"
            );
        }
        Ok(total)
    }

    /// Makes every index write so far durable (blob rows are committed without a sync; a graceful stop
    /// calls this so none is lost).
    pub fn flush(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(index_err)?;
        txn.commit().map_err(index_err)
    }

    /// Stored (compressed) bytes of all blobs.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes.load(Ordering::Relaxed)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.dir.join("blobs").join(&hex[..2]).join(&hex[2..])
    }

    fn remove_blob_file(&self, digest: &Digest) {
        let _ = fs::remove_file(self.blob_path(digest));
    }

    /// Records an access without forcing it to disk (access times only steer eviction).
    fn touch(&self, table_is_blobs: bool, key: &Digest) {
        let Ok(mut txn) = self.db.begin_write() else { return };
        let _ = txn.set_durability(Durability::None);
        let stamp = now();
        let updated = (|| -> Result<(), redb::Error> {
            if table_is_blobs {
                let mut t = txn.open_table(BLOBS)?;
                let found = t.get(key.0)?.map(|v| v.value());
                if let Some((size, stored, _, refs)) = found {
                    t.insert(key.0, (size, stored, stamp, refs))?;
                }
            } else {
                let mut t = txn.open_table(ACTIONS)?;
                let found = t.get(key.0)?.map(|v| v.value().to_vec());
                if let Some(mut bytes) = found {
                    bytes[..8].copy_from_slice(&stamp.to_le_bytes());
                    t.insert(key.0, bytes.as_slice())?;
                }
            }
            Ok(())
        })();
        if updated.is_ok() {
            let _ = txn.commit();
        }
    }

    /// Evicts until the store is at most 90 % of its limit: unnamed blobs and action results, least recently
    /// used first; a blob named by results goes when the last of them does.
    pub fn evict(&self) -> Result<(), StorageError> {
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.limit / 10 * 9;
        if self.stored_bytes() <= target {
            return Ok(());
        }
        // Candidates: (last access, is_result, key)
        let mut candidates: Vec<(u64, bool, [u8; 32])> = Vec::new();
        {
            let txn = self.db.begin_read().map_err(index_err)?;
            let blobs = txn.open_table(BLOBS).map_err(index_err)?;
            for row in blobs.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                let (_, _, access, refs) = v.value();
                if refs == 0 {
                    candidates.push((access, false, k.value()));
                }
            }
            let actions = txn.open_table(ACTIONS).map_err(index_err)?;
            for row in actions.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                let bytes = v.value();
                let access = bytes.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                candidates.push((access, true, k.value()));
            }
        }
        candidates.sort();
        let txn = self.db.begin_write().map_err(index_err)?;
        let mut freed_files = Vec::new();
        {
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let mut actions = txn.open_table(ACTIONS).map_err(index_err)?;
            let mut total = self.stored_bytes();
            for (_, is_result, key) in candidates {
                if total <= target {
                    break;
                }
                let mut drop_blob = |digest: [u8; 32], blobs: &mut redb::Table<[u8; 32], (u64, u64, u64, u64)>| {
                    if let Ok(Some((size, stored, access, refs))) = blobs.get(digest).map(|v| v.map(|v| v.value())) {
                        if refs <= 1 {
                            let _ = blobs.remove(digest);
                            total = total.saturating_sub(stored);
                            freed_files.push(Digest(digest));
                        } else {
                            let _ = blobs.insert(digest, (size, stored, access, refs - 1));
                        }
                    }
                };
                if is_result {
                    let removed = actions.remove(key).map_err(index_err)?.map(|v| v.value().to_vec());
                    let Some(bytes) = removed else { continue };
                    if let Ok(result) = postcard::from_bytes::<ActionResult>(&bytes[8..]) {
                        for blob in result.blobs() {
                            drop_blob(blob.0, &mut blobs);
                        }
                    }
                } else if blobs.get(key).map_err(index_err)?.is_some_and(|v| v.value().3 == 0) {
                    drop_blob(key, &mut blobs);
                }
            }
            self.stored_bytes.store(total, Ordering::Relaxed);
        }
        txn.commit().map_err(index_err)?;
        // Files go after the index no longer names them: a crash in between leaves only orphan files.
        for digest in freed_files {
            self.remove_blob_file(&digest);
        }
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn usage(&self) -> Option<Usage> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read().ok()?;
        let blobs = txn.open_table(BLOBS).ok()?.len().ok()?;
        Some(Usage { stored_bytes: self.stored_bytes(), blobs })
    }

    fn find_missing(&self, digests: &[Digest]) -> Result<Vec<Digest>, StorageError> {
        let txn = self.db.begin_read().map_err(index_err)?;
        let blobs = txn.open_table(BLOBS).map_err(index_err)?;
        let mut missing = Vec::new();
        for d in digests {
            if blobs.get(d.0).map_err(index_err)?.is_none() || !self.blob_path(d).exists() {
                missing.push(*d);
            }
        }
        Ok(missing)
    }

    fn put_stream(
        &self,
        digest: &Digest,
        size: u64,
        chunks: &mut dyn Iterator<Item = Vec<u8>>,
    ) -> Result<(), StorageError> {
        let path = self.blob_path(digest);
        let io = |source| StorageError::Io { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        // Each write has a temporary file of its own: two clients uploading the same blob at once do not collide.
        let mut file = rcc_fs::AtomicFile::create(&path, rcc_fs::WriteOptions::cache(0o644)).map_err(io)?;
        let mut decoder = zstd::stream::write::Decoder::new(Checked::new(size)).map_err(io)?;
        // A frame may ask for a window of up to 2 GiB; rcc's own clients compress at level 1 (512 KiB).
        decoder.window_log_max(MAX_WINDOW_LOG).map_err(io)?;
        let mut stored = 0u64;
        for chunk in chunks {
            if decoder.write_all(&chunk).is_err() {
                return Err(StorageError::DigestMismatch(*digest));
            }
            file.write_all(&chunk).map_err(io)?;
            stored += chunk.len() as u64;
        }
        if decoder.flush().is_err() || !decoder.get_ref().matches(digest) {
            return Err(StorageError::DigestMismatch(*digest));
        }
        file.commit().map_err(io)?;
        let compressed_len = stored;
        let mut txn = self.db.begin_write().map_err(index_err)?;
        // Not forced to disk: a blob whose index entry a crash loses is only uploaded again, and results are
        // served only while every blob they name is indexed.
        txn.set_durability(Durability::None).map_err(index_err)?;
        let added = {
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let existing = blobs.get(digest.0).map_err(index_err)?.map(|v| v.value());
            let refs = existing.map_or(0, |e| e.3);
            blobs.insert(digest.0, (size, compressed_len, now(), refs)).map_err(index_err)?;
            if existing.is_none() {
                compressed_len
            } else {
                0
            }
        };
        txn.commit().map_err(index_err)?;
        self.stored_bytes.fetch_add(added, Ordering::Relaxed);
        if self.stored_bytes() > self.limit {
            self.evict()?;
        }
        Ok(())
    }

    fn get_compressed(&self, digest: &Digest) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let size = {
            let txn = self.db.begin_read().map_err(index_err)?;
            let blobs = txn.open_table(BLOBS).map_err(index_err)?;
            match blobs.get(digest.0).map_err(index_err)? {
                Some(v) => v.value().0,
                None => return Ok(None),
            }
        };
        let path = self.blob_path(digest);
        match fs::read(&path) {
            Ok(c) => {
                self.touch(true, digest);
                Ok(Some((size, c)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StorageError::Io { path, source }),
        }
    }

    fn get_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StorageError> {
        let Some((size, compressed)) = self.get_compressed(digest)? else { return Ok(None) };
        match zstd::bulk::decompress(&compressed, size as usize) {
            Ok(data) if Digest::of(&data) == *digest => Ok(Some(data)),
            _ => {
                // Damaged on disk: drop the file so the next writer replaces it.
                tracing::warn!(digest = %digest, "corrupt blob removed");
                self.remove_blob_file(digest);
                Ok(None)
            }
        }
    }

    fn get_action_result(&self, key: &Digest) -> Result<Option<ActionResult>, StorageError> {
        let bytes = {
            let txn = self.db.begin_read().map_err(index_err)?;
            let actions = txn.open_table(ACTIONS).map_err(index_err)?;
            match actions.get(key.0).map_err(index_err)? {
                Some(v) => v.value().to_vec(),
                None => return Ok(None),
            }
        };
        let Some(result) = bytes.get(8..).and_then(|b| postcard::from_bytes::<ActionResult>(b).ok()) else {
            return Ok(None);
        };
        // An entry counts only while every blob it names is still there.
        if !self.find_missing(&result.blobs().collect::<Vec<_>>())?.is_empty() {
            return Ok(None);
        }
        self.touch(false, key);
        Ok(Some(result))
    }

    fn update_action_result(&self, key: &Digest, result: &ActionResult) -> Result<(), StorageError> {
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let named: Vec<Digest> = result.blobs().collect();
        let missing = self.find_missing(&named)?;
        if !missing.is_empty() {
            return Err(StorageError::MissingBlobs(missing));
        }
        let mut value = now().to_le_bytes().to_vec();
        value.extend(postcard::to_allocvec(result).map_err(index_err)?);
        let txn = self.db.begin_write().map_err(index_err)?;
        {
            let mut actions = txn.open_table(ACTIONS).map_err(index_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let previous = actions.insert(key.0, value.as_slice()).map_err(index_err)?.map(|v| v.value().to_vec());
            let mut adjust = |digest: Digest, delta: i64| -> Result<(), StorageError> {
                let current = blobs.get(digest.0).map_err(index_err)?.map(|v| v.value());
                if let Some((size, stored, access, refs)) = current {
                    let refs = refs.saturating_add_signed(delta);
                    blobs.insert(digest.0, (size, stored, access, refs)).map_err(index_err)?;
                }
                Ok(())
            };
            if let Some(prev) = previous.as_ref().and_then(|p| postcard::from_bytes::<ActionResult>(&p[8..]).ok()) {
                for d in prev.blobs() {
                    adjust(d, -1)?;
                }
            }
            for d in named {
                adjust(d, 1)?;
            }
        }
        txn.commit().map_err(index_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcc_proto::remote::OutputFile;

    #[test]
    fn the_same_blob_uploaded_at_once_by_many_clients_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let storage = std::sync::Arc::new(DiskStorage::open(dir.path(), 1 << 30).unwrap());
        let data = vec![7u8; 100_000];
        let digest = Digest::of(&data);
        let compressed = zstd::bulk::compress(&data, 1).unwrap();
        let size = data.len() as u64;
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let (storage, compressed) = (storage.clone(), compressed.clone());
                scope.spawn(move || storage.put_compressed(&digest, size, &compressed).unwrap());
            }
        });
        assert_eq!(storage.get_blob(&digest).unwrap(), Some(data));
    }

    fn result_naming(blobs: &[&Digest]) -> ActionResult {
        ActionResult {
            outputs: blobs
                .iter()
                .map(|d| OutputFile { name: "object".into(), digest: **d, size: 1, executable: false })
                .collect(),
            stdout: None,
            stderr: None,
            exit_code: 0,
        }
    }

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn blobs_round_trip_and_tampered_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let data = b"object bytes".to_vec();
        let d = Digest::of(&data);
        assert_eq!(s.find_missing(&[d]).unwrap(), vec![d]);
        assert!(matches!(s.put_blob(&d, b"other bytes"), Err(StorageError::DigestMismatch(_))));
        s.put_blob(&d, &data).unwrap();
        assert!(s.find_missing(&[d]).unwrap().is_empty());
        assert_eq!(s.get_blob(&d).unwrap(), Some(data));
        // Damage on disk is detected and the blob dropped.
        fs::write(s.blob_path(&d), zstd::bulk::compress(b"object bytez", 3).unwrap()).unwrap();
        assert_eq!(s.get_blob(&d).unwrap(), None);
    }

    #[test]
    fn uploads_past_their_announced_size_or_with_huge_windows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let data = vec![0u8; 1 << 20];
        let d = Digest::of(&data);
        let frame = zstd::bulk::compress(&data, 1).unwrap();
        // Announced smaller than it decompresses to: cut off.
        assert!(matches!(s.put_compressed(&d, 1000, &frame), Err(StorageError::DigestMismatch(_))));
        // A frame asking for a 16 MiB window.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        encoder.window_log(24).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let wide = encoder.finish().unwrap();
        assert!(matches!(s.put_compressed(&d, data.len() as u64, &wide), Err(StorageError::DigestMismatch(_))));
        assert_eq!(s.find_missing(&[d]).unwrap(), vec![d], "nothing stored");
        s.put_compressed(&d, data.len() as u64, &frame).unwrap();
        assert!(s.find_missing(&[d]).unwrap().is_empty());
    }

    #[test]
    fn a_reopened_store_drops_unindexed_files_and_rows_without_files() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, lost) = (noise(1, 5_000), noise(2, 5_000));
        let (kept_d, lost_d) = (Digest::of(&kept), Digest::of(&lost));
        let orphan = Digest::of(b"orphan");
        let (orphan_path, temp_path, lost_path);
        {
            let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
            s.put_blob(&kept_d, &kept).unwrap();
            s.put_blob(&lost_d, &lost).unwrap();
            // As a crash leaves them: a file written before its row, a temporary file, a row whose file went.
            orphan_path = s.blob_path(&orphan);
            fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
            fs::write(&orphan_path, b"unindexed").unwrap();
            temp_path = s.blob_path(&kept_d).with_file_name(".rcc-tmp.crashed");
            fs::write(&temp_path, b"half").unwrap();
            lost_path = s.blob_path(&lost_d);
            fs::remove_file(&lost_path).unwrap();
        }
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        assert!(!orphan_path.exists() && !temp_path.exists());
        assert_eq!(s.find_missing(&[kept_d, lost_d]).unwrap(), vec![lost_d]);
        let on_disk = fs::metadata(s.blob_path(&kept_d)).unwrap().len();
        assert_eq!(s.stored_bytes(), on_disk, "stored bytes are the files' total");
        use redb::ReadableTableMetadata;
        let txn = s.db.begin_read().unwrap();
        assert_eq!(txn.open_table(BLOBS).unwrap().len().unwrap(), 1, "the row without a file is gone");
    }

    #[test]
    fn results_naming_missing_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let present = Digest::of(b"a");
        s.put_blob(&present, b"a").unwrap();
        let absent = Digest::of(b"b");
        let key = Digest::of(b"action");
        match s.update_action_result(&key, &result_naming(&[&present, &absent])) {
            Err(StorageError::MissingBlobs(m)) => assert_eq!(m, vec![absent]),
            other => panic!("expected MissingBlobs, got {other:?}"),
        }
        s.update_action_result(&key, &result_naming(&[&present])).unwrap();
        assert_eq!(s.get_action_result(&key).unwrap(), Some(result_naming(&[&present])));
    }

    #[test]
    fn index_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"persist");
        {
            let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
            s.put_blob(&d, b"persist").unwrap();
            s.update_action_result(&Digest::of(b"k"), &result_naming(&[&d])).unwrap();
        }
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        assert!(s.stored_bytes() > 0);
        assert!(s.get_action_result(&Digest::of(b"k")).unwrap().is_some());
    }

    #[test]
    fn eviction_never_leaves_a_result_naming_an_evicted_blob() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about four 10 kB incompressible blobs.
        let s = DiskStorage::open(dir.path(), 45_000).unwrap();
        let mut keys = Vec::new();
        for i in 0..12u64 {
            let data = noise(i + 1, 10_000);
            let d = Digest::of(&data);
            s.put_blob(&d, &data).unwrap();
            let key = Digest::of(&i.to_le_bytes());
            // Some results are refused when their blob was evicted between put and update: as a client sees.
            if s.update_action_result(&key, &result_naming(&[&d])).is_ok() {
                keys.push((key, d));
            }
        }
        assert!(s.stored_bytes() <= 45_000, "{}", s.stored_bytes());
        let mut alive = 0;
        for (key, blob) in &keys {
            if let Some(result) = s.get_action_result(key).unwrap() {
                alive += 1;
                assert!(s.get_blob(blob).unwrap().is_some(), "a live result names a live blob");
                assert_eq!(result.outputs[0].digest, *blob);
            }
        }
        assert!(alive >= 2, "recent results survive ({alive})");
        // Every live result's blobs are present in the index and on disk.
        let txn = s.db.begin_read().unwrap();
        let actions = txn.open_table(ACTIONS).unwrap();
        for row in actions.iter().unwrap() {
            let (_, v) = row.unwrap();
            let r: ActionResult = postcard::from_bytes(&v.value()[8..]).unwrap();
            assert!(s.find_missing(&r.blobs().collect::<Vec<_>>()).unwrap().is_empty());
        }
    }
}
