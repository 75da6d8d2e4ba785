//! Shared-cache storage: content-addressable blobs and action results, behind [`Storage`] so that an
//! object-storage backend can be added without touching the protocol.
//!
//! [`DiskStorage`], the embedded default, keeps blobs as zstd files under `<dir>/blobs/` and a metadata
//! index in a redb database (`<dir>/index.redb`): per blob its size, stored size, last access and how many
//! action results and manifest entries name it; per action result and per manifest list a [`ResultRecord`]
//! or [`ManifestRecord`] (namespace, key, uploader, time) and its last access. Eviction keeps the store
//! under its limit without ever leaving a result that names an evicted blob: blobs named by results or
//! manifests go only with the last of them; unnamed blobs, results and manifests go least recently used
//! first.
//!
//! Action results are keyed by (namespace, key) and written once: the first writer's result stays, a
//! different one for the same key is [`Update::Kept`] out, and only [`Storage::update_action_result`] with
//! `replace` (the admin path) or [`Storage::invalidate`] changes it. Manifest lists grow by entries (blobs),
//! never by replacing another writer's; each entry records its uploader too.

use rcc_proto::remote::{ActionResult, Invalidation, MAX_MANIFEST_ENTRIES};
use rcc_proto::{Digest, KeyHasher};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// blob digest -> (size, stored bytes, last access (s), results naming it)
const BLOBS: TableDefinition<[u8; 32], (u64, u64, u64, u64)> = TableDefinition::new("blobs");
/// slot (namespace, key) -> last access (s) as 8 LE bytes, then the postcard-encoded [`ResultRecord`]
const RESULTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("results");
/// slot (namespace, key) -> last access (s) as 8 LE bytes, then the postcard-encoded [`ManifestRecord`]
const MANIFESTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("manifests");
/// Before namespaces and uploaders: key -> access, result. Dropped at open (its blobs become unnamed).
const OLD_ACTIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("actions");

/// Where (namespace, key) lives in the index.
fn slot(namespace: &str, key: &Digest) -> [u8; 32] {
    let mut h = KeyHasher::new("rcc-scheduler-slot", 1);
    h.bytes(b'n', namespace.as_bytes()).digest(b'k', key);
    h.finish().0
}

/// A stored action result with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The namespace it was written in.
    pub namespace: String,
    /// Its key.
    pub key: Digest,
    /// The label of the token that wrote it.
    pub uploader: String,
    /// When (seconds since the epoch).
    pub stored_at: u64,
    /// The result.
    pub result: ActionResult,
}

/// One entry of a manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// The entry's blob.
    pub entry: Digest,
    /// The label of the token that added it.
    pub uploader: String,
    /// When (seconds since the epoch).
    pub stored_at: u64,
}

/// A manifest list: entries for one key in one namespace, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// The namespace.
    pub namespace: String,
    /// The manifest's key.
    pub key: Digest,
    /// At most [`MAX_MANIFEST_ENTRIES`], newest first.
    pub items: Vec<ManifestItem>,
}

/// What [`Storage::update_action_result`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Stored: the key was free (or replaced on request).
    Stored,
    /// The same result was already stored.
    Same,
    /// A different result was stored first and is kept; this one was dropped.
    Kept,
}

/// What [`Storage::invalidate`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Action results.
    pub results: u64,
    /// Manifest entries.
    pub manifest_entries: u64,
}

fn stamped<T: Serialize>(record: &T) -> Result<Vec<u8>, StorageError> {
    let mut value = now().to_le_bytes().to_vec();
    value.extend(postcard::to_allocvec(record).map_err(index_err)?);
    Ok(value)
}

fn unstamped<T: serde::de::DeserializeOwned>(value: &[u8]) -> Option<T> {
    value.get(8..).and_then(|b| postcard::from_bytes(b).ok())
}

fn access_of(value: &[u8]) -> u64 {
    value.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// Whether a record of `namespace`/`key`, stored by `uploader` at `at`, is one `filter` names.
fn filtered(filter: &Invalidation, namespace: &str, key: &Digest, uploader: &str, at: u64) -> bool {
    filter.namespace.as_deref().is_none_or(|n| n == namespace)
        && filter.key.is_none_or(|k| k == *key)
        && filter.uploader.as_deref().is_none_or(|u| u == uploader)
        && filter.since.is_none_or(|s| at >= s)
        && filter.until.is_none_or(|u| at < u)
}

/// Adds `delta` to the count of entries naming each blob.
fn adjust_refs(
    blobs: &mut redb::Table<[u8; 32], (u64, u64, u64, u64)>,
    digests: impl IntoIterator<Item = Digest>,
    delta: i64,
) -> Result<(), StorageError> {
    for digest in digests {
        let current = blobs.get(digest.0).map_err(index_err)?.map(|v| v.value());
        if let Some((size, stored, access, refs)) = current {
            blobs.insert(digest.0, (size, stored, access, refs.saturating_add_signed(delta))).map_err(index_err)?;
        }
    }
    Ok(())
}

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
    /// The action result stored under `key` in `namespace`, while every blob it names is stored.
    fn get_action_result(&self, namespace: &str, key: &Digest) -> Result<Option<ActionResult>, StorageError> {
        Ok(self.action_record(namespace, key)?.map(|r| r.result))
    }
    /// The record of the action result under `key` in `namespace` (uploader, time), while every blob it
    /// names is stored.
    fn action_record(&self, namespace: &str, key: &Digest) -> Result<Option<ResultRecord>, StorageError>;
    /// Stores an action result written by the token labelled `uploader`; refused unless every blob it
    /// names is stored. The first writer wins: a different result already under the key is kept unless
    /// `replace` (an admin's request).
    fn update_action_result(
        &self,
        namespace: &str,
        key: &Digest,
        result: &ActionResult,
        uploader: &str,
        replace: bool,
    ) -> Result<Update, StorageError>;
    /// Adds a stored blob, written by `uploader`, to the manifest list under `key` in `namespace` (newest
    /// first, at most [`MAX_MANIFEST_ENTRIES`]; an entry already listed stays where it is).
    fn add_manifest_entry(
        &self,
        namespace: &str,
        key: &Digest,
        entry: &Digest,
        uploader: &str,
    ) -> Result<(), StorageError>;
    /// The entries listed under `key` in `namespace` whose blobs are stored, newest first.
    fn manifest(&self, namespace: &str, key: &Digest) -> Result<Vec<Digest>, StorageError>;
    /// Drops the action results and manifest entries `filter` names (an empty filter names nothing).
    fn invalidate(&self, filter: &Invalidation) -> Result<Dropped, StorageError>;
    /// Removes every action result naming any of `blobs` (the outputs of a worker caught lying by an
    /// audit), in every namespace; returns how many were removed. The blobs themselves stay until evicted.
    fn drop_results_naming(&self, blobs: &std::collections::HashSet<Digest>) -> Result<u64, StorageError>;
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

/// The kinds of index rows eviction weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    Blob,
    Result,
    Manifest,
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
            // An index from before namespaces: its results go (they were not tied to an uploader), and
            // the blobs they named become unnamed, evicted in their turn.
            let migrated = txn.delete_table(OLD_ACTIONS).map_err(index_err)?;
            if migrated {
                tracing::warn!("action results of an older index format dropped (blobs kept)");
            }
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            txn.open_table(RESULTS).map_err(index_err)?;
            txn.open_table(MANIFESTS).map_err(index_err)?;
            let mut rows = Vec::new();
            for row in blobs.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                rows.push((k.value(), v.value()));
            }
            for (key, (size, stored, access, refs)) in rows {
                let refs = if migrated { 0 } else { refs };
                match files.remove(&key) {
                    None => {
                        blobs.remove(key).map_err(index_err)?;
                        dropped += 1;
                    }
                    Some(len) => {
                        if len != stored || migrated {
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

    /// Records an access to a blob without forcing it to disk (access times only steer eviction).
    fn touch_blob(&self, key: &Digest) {
        let Ok(mut txn) = self.db.begin_write() else { return };
        let _ = txn.set_durability(Durability::None);
        let stamp = now();
        let updated = (|| -> Result<(), redb::Error> {
            let mut t = txn.open_table(BLOBS)?;
            let found = t.get(key.0)?.map(|v| v.value());
            if let Some((size, stored, _, refs)) = found {
                t.insert(key.0, (size, stored, stamp, refs))?;
            }
            Ok(())
        })();
        if updated.is_ok() {
            let _ = txn.commit();
        }
    }

    /// Records an access to a result or manifest row (its first 8 bytes) without forcing it to disk.
    fn touch_row(&self, table: TableDefinition<[u8; 32], &[u8]>, slot: [u8; 32]) {
        let Ok(mut txn) = self.db.begin_write() else { return };
        let _ = txn.set_durability(Durability::None);
        let stamp = now();
        let updated = (|| -> Result<(), redb::Error> {
            let mut t = txn.open_table(table)?;
            let found = t.get(slot)?.map(|v| v.value().to_vec());
            if let Some(mut bytes) = found.filter(|b| b.len() >= 8) {
                bytes[..8].copy_from_slice(&stamp.to_le_bytes());
                t.insert(slot, bytes.as_slice())?;
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
        // Candidates: (last access, kind, key)
        let mut candidates: Vec<(u64, Row, [u8; 32])> = Vec::new();
        {
            let txn = self.db.begin_read().map_err(index_err)?;
            let blobs = txn.open_table(BLOBS).map_err(index_err)?;
            for row in blobs.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                let (_, _, access, refs) = v.value();
                if refs == 0 {
                    candidates.push((access, Row::Blob, k.value()));
                }
            }
            for (table, kind) in [(RESULTS, Row::Result), (MANIFESTS, Row::Manifest)] {
                for row in txn.open_table(table).map_err(index_err)?.iter().map_err(index_err)? {
                    let (k, v) = row.map_err(index_err)?;
                    candidates.push((access_of(v.value()), kind, k.value()));
                }
            }
        }
        candidates.sort();
        let txn = self.db.begin_write().map_err(index_err)?;
        let mut freed_files = Vec::new();
        {
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let mut results = txn.open_table(RESULTS).map_err(index_err)?;
            let mut manifests = txn.open_table(MANIFESTS).map_err(index_err)?;
            let mut total = self.stored_bytes();
            for (_, kind, key) in candidates {
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
                match kind {
                    Row::Result => {
                        let removed = results.remove(key).map_err(index_err)?.map(|v| v.value().to_vec());
                        let Some(bytes) = removed else { continue };
                        if let Some(record) = unstamped::<ResultRecord>(&bytes) {
                            for blob in record.result.blobs() {
                                drop_blob(blob.0, &mut blobs);
                            }
                        }
                    }
                    Row::Manifest => {
                        let removed = manifests.remove(key).map_err(index_err)?.map(|v| v.value().to_vec());
                        let Some(bytes) = removed else { continue };
                        if let Some(record) = unstamped::<ManifestRecord>(&bytes) {
                            for item in record.items {
                                drop_blob(item.entry.0, &mut blobs);
                            }
                        }
                    }
                    Row::Blob => {
                        if blobs.get(key).map_err(index_err)?.is_some_and(|v| v.value().3 == 0) {
                            drop_blob(key, &mut blobs);
                        }
                    }
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
                self.touch_blob(digest);
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

    fn action_record(&self, namespace: &str, key: &Digest) -> Result<Option<ResultRecord>, StorageError> {
        let slot = slot(namespace, key);
        let bytes = {
            let txn = self.db.begin_read().map_err(index_err)?;
            let results = txn.open_table(RESULTS).map_err(index_err)?;
            match results.get(slot).map_err(index_err)? {
                Some(v) => v.value().to_vec(),
                None => return Ok(None),
            }
        };
        let Some(record) = unstamped::<ResultRecord>(&bytes) else { return Ok(None) };
        // An entry counts only while every blob it names is still there.
        if !self.find_missing(&record.result.blobs().collect::<Vec<_>>())?.is_empty() {
            return Ok(None);
        }
        self.touch_row(RESULTS, slot);
        Ok(Some(record))
    }

    fn update_action_result(
        &self,
        namespace: &str,
        key: &Digest,
        result: &ActionResult,
        uploader: &str,
        replace: bool,
    ) -> Result<Update, StorageError> {
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let named: Vec<Digest> = result.blobs().collect();
        let missing = self.find_missing(&named)?;
        if !missing.is_empty() {
            return Err(StorageError::MissingBlobs(missing));
        }
        let slot = slot(namespace, key);
        let record = ResultRecord {
            namespace: namespace.to_owned(),
            key: *key,
            uploader: uploader.to_owned(),
            stored_at: now(),
            result: result.clone(),
        };
        let value = stamped(&record)?;
        let txn = self.db.begin_write().map_err(index_err)?;
        let update = {
            let mut results = txn.open_table(RESULTS).map_err(index_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let previous = results.get(slot).map_err(index_err)?.map(|v| v.value().to_vec());
            let previous = previous.as_deref().and_then(unstamped::<ResultRecord>);
            // A previous result counts while its blobs are stored; one whose blobs are gone is replaced.
            let live = previous.as_ref().filter(|p| {
                p.result.blobs().all(|d| blobs.get(d.0).ok().flatten().is_some() && self.blob_path(&d).exists())
            });
            match live {
                Some(p) if p.result == *result => Update::Same,
                Some(_) if !replace => Update::Kept,
                _ => {
                    if let Some(p) = &previous {
                        adjust_refs(&mut blobs, p.result.blobs(), -1)?;
                    }
                    results.insert(slot, value.as_slice()).map_err(index_err)?;
                    adjust_refs(&mut blobs, named, 1)?;
                    Update::Stored
                }
            }
        };
        txn.commit().map_err(index_err)?;
        Ok(update)
    }

    fn add_manifest_entry(
        &self,
        namespace: &str,
        key: &Digest,
        entry: &Digest,
        uploader: &str,
    ) -> Result<(), StorageError> {
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        if !self.find_missing(&[*entry])?.is_empty() {
            return Err(StorageError::MissingBlobs(vec![*entry]));
        }
        let slot = slot(namespace, key);
        let txn = self.db.begin_write().map_err(index_err)?;
        {
            let mut manifests = txn.open_table(MANIFESTS).map_err(index_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let current = manifests.get(slot).map_err(index_err)?.map(|v| v.value().to_vec());
            let mut record = current.as_deref().and_then(unstamped::<ManifestRecord>).unwrap_or(ManifestRecord {
                namespace: namespace.to_owned(),
                key: *key,
                items: Vec::new(),
            });
            if !record.items.iter().any(|i| i.entry == *entry) {
                record.items.insert(0, ManifestItem { entry: *entry, uploader: uploader.to_owned(), stored_at: now() });
                adjust_refs(&mut blobs, [*entry], 1)?;
                let dropped: Vec<Digest> = record
                    .items
                    .split_off(record.items.len().min(MAX_MANIFEST_ENTRIES))
                    .iter()
                    .map(|i| i.entry)
                    .collect();
                adjust_refs(&mut blobs, dropped, -1)?;
            }
            manifests.insert(slot, stamped(&record)?.as_slice()).map_err(index_err)?;
        }
        txn.commit().map_err(index_err)?;
        Ok(())
    }

    fn manifest(&self, namespace: &str, key: &Digest) -> Result<Vec<Digest>, StorageError> {
        let slot = slot(namespace, key);
        let bytes = {
            let txn = self.db.begin_read().map_err(index_err)?;
            let manifests = txn.open_table(MANIFESTS).map_err(index_err)?;
            match manifests.get(slot).map_err(index_err)? {
                Some(v) => v.value().to_vec(),
                None => return Ok(Vec::new()),
            }
        };
        let Some(record) = unstamped::<ManifestRecord>(&bytes) else { return Ok(Vec::new()) };
        let entries: Vec<Digest> = record.items.iter().map(|i| i.entry).collect();
        let missing = self.find_missing(&entries)?;
        self.touch_row(MANIFESTS, slot);
        Ok(entries.into_iter().filter(|e| !missing.contains(e)).collect())
    }

    fn invalidate(&self, filter: &Invalidation) -> Result<Dropped, StorageError> {
        let mut dropped = Dropped::default();
        if filter.is_empty() {
            return Ok(dropped);
        }
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write().map_err(index_err)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let mut results = txn.open_table(RESULTS).map_err(index_err)?;
            let mut doomed = Vec::new();
            for row in results.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                match unstamped::<ResultRecord>(v.value()) {
                    Some(r) if filtered(filter, &r.namespace, &r.key, &r.uploader, r.stored_at) => {
                        doomed.push((k.value(), Some(r)))
                    }
                    Some(_) => {}
                    // A row that does not decode names nothing that can be served: dropped with any filter.
                    None => doomed.push((k.value(), None)),
                }
            }
            for (slot, record) in doomed {
                results.remove(slot).map_err(index_err)?;
                if let Some(record) = record {
                    adjust_refs(&mut blobs, record.result.blobs(), -1)?;
                    dropped.results += 1;
                }
            }
            let mut manifests = txn.open_table(MANIFESTS).map_err(index_err)?;
            let mut changed = Vec::new();
            for row in manifests.iter().map_err(index_err)? {
                let (k, v) = row.map_err(index_err)?;
                let Some(mut record) = unstamped::<ManifestRecord>(v.value()) else { continue };
                let before = record.items.len();
                let (namespace, key) = (record.namespace.clone(), record.key);
                let (gone, kept): (Vec<ManifestItem>, Vec<ManifestItem>) = record
                    .items
                    .into_iter()
                    .partition(|i| filtered(filter, &namespace, &key, &i.uploader, i.stored_at));
                if gone.is_empty() {
                    continue;
                }
                record.items = kept;
                dropped.manifest_entries += (before - record.items.len()) as u64;
                changed.push((k.value(), record, gone));
            }
            for (slot, record, gone) in changed {
                adjust_refs(&mut blobs, gone.iter().map(|i| i.entry), -1)?;
                if record.items.is_empty() {
                    manifests.remove(slot).map_err(index_err)?;
                } else {
                    manifests.insert(slot, stamped(&record)?.as_slice()).map_err(index_err)?;
                }
            }
        }
        txn.commit().map_err(index_err)?;
        Ok(dropped)
    }

    fn drop_results_naming(&self, condemned: &std::collections::HashSet<Digest>) -> Result<u64, StorageError> {
        if condemned.is_empty() {
            return Ok(0);
        }
        let _guard = self.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write().map_err(index_err)?;
        let mut dropped = 0;
        {
            let mut results = txn.open_table(RESULTS).map_err(index_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(index_err)?;
            let mut doomed = Vec::new();
            for row in results.iter().map_err(index_err)? {
                let (slot, value) = row.map_err(index_err)?;
                let Some(record) = unstamped::<ResultRecord>(value.value()) else { continue };
                if record.result.blobs().any(|b| condemned.contains(&b)) {
                    doomed.push((slot.value(), record));
                }
            }
            for (slot, record) in doomed {
                tracing::warn!(key = %record.key, namespace = %record.namespace, uploader = %record.uploader,
                    "action result naming a convicted worker's output dropped");
                results.remove(slot).map_err(index_err)?;
                adjust_refs(&mut blobs, record.result.blobs(), -1)?;
                dropped += 1;
            }
        }
        txn.commit().map_err(index_err)?;
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcc_proto::remote::OutputFile;

    const NS: &str = "default";

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
        match s.update_action_result(NS, &key, &result_naming(&[&present, &absent]), "ci", false) {
            Err(StorageError::MissingBlobs(m)) => assert_eq!(m, vec![absent]),
            other => panic!("expected MissingBlobs, got {other:?}"),
        }
        s.update_action_result(NS, &key, &result_naming(&[&present]), "ci", false).unwrap();
        assert_eq!(s.get_action_result(NS, &key).unwrap(), Some(result_naming(&[&present])));
    }

    #[test]
    fn index_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"persist");
        {
            let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
            s.put_blob(&d, b"persist").unwrap();
            s.update_action_result(NS, &Digest::of(b"k"), &result_naming(&[&d]), "ci", false).unwrap();
        }
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        assert!(s.stored_bytes() > 0);
        assert!(s.get_action_result(NS, &Digest::of(b"k")).unwrap().is_some());
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
            if s.update_action_result(NS, &key, &result_naming(&[&d]), "ci", false).is_ok() {
                keys.push((key, d));
            }
        }
        assert!(s.stored_bytes() <= 45_000, "{}", s.stored_bytes());
        let mut alive = 0;
        for (key, blob) in &keys {
            if let Some(result) = s.get_action_result(NS, key).unwrap() {
                alive += 1;
                assert!(s.get_blob(blob).unwrap().is_some(), "a live result names a live blob");
                assert_eq!(result.outputs[0].digest, *blob);
            }
        }
        assert!(alive >= 2, "recent results survive ({alive})");
        // Every live result's blobs are present in the index and on disk.
        let txn = s.db.begin_read().unwrap();
        let results = txn.open_table(RESULTS).unwrap();
        for row in results.iter().unwrap() {
            let (_, v) = row.unwrap();
            let r: ResultRecord = unstamped(v.value()).unwrap();
            assert!(s.find_missing(&r.result.blobs().collect::<Vec<_>>()).unwrap().is_empty());
        }
    }

    fn stored_blob(s: &DiskStorage, content: &[u8]) -> Digest {
        let d = Digest::of(content);
        s.put_blob(&d, content).unwrap();
        d
    }

    #[test]
    fn the_first_writer_wins_and_only_replace_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let (good, bad) = (stored_blob(&s, b"good object"), stored_blob(&s, b"bad object"));
        let key = Digest::of(b"action");
        assert_eq!(s.update_action_result(NS, &key, &result_naming(&[&good]), "ci", false).unwrap(), Update::Stored);
        assert_eq!(s.update_action_result(NS, &key, &result_naming(&[&good]), "laptop", false).unwrap(), Update::Same);
        assert_eq!(s.update_action_result(NS, &key, &result_naming(&[&bad]), "laptop", false).unwrap(), Update::Kept);
        let record = s.action_record(NS, &key).unwrap().unwrap();
        assert_eq!((record.uploader.as_str(), record.result.outputs[0].digest), ("ci", good));
        assert!(record.stored_at > 0);
        // The admin's replace does overwrite.
        assert_eq!(s.update_action_result(NS, &key, &result_naming(&[&bad]), "admin", true).unwrap(), Update::Stored);
        assert_eq!(s.action_record(NS, &key).unwrap().unwrap().uploader, "admin");
        // Namespaces do not see each other's results.
        assert_eq!(s.get_action_result("alice", &key).unwrap(), None);
        assert_eq!(
            s.update_action_result("alice", &key, &result_naming(&[&good]), "alice", false).unwrap(),
            Update::Stored
        );
        assert_eq!(s.get_action_result("alice", &key).unwrap().unwrap().outputs[0].digest, good);
        assert_eq!(s.get_action_result(NS, &key).unwrap().unwrap().outputs[0].digest, bad);
    }

    #[test]
    fn manifest_lists_grow_by_entries_bounded_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let key = Digest::of(b"direct key");
        assert_eq!(s.manifest(NS, &key).unwrap(), Vec::<Digest>::new());
        let absent = Digest::of(b"never uploaded");
        assert!(matches!(s.add_manifest_entry(NS, &key, &absent, "ci"), Err(StorageError::MissingBlobs(_))));
        let entries: Vec<Digest> =
            (0..MAX_MANIFEST_ENTRIES + 3).map(|i| stored_blob(&s, format!("entry {i}").as_bytes())).collect();
        for e in &entries {
            s.add_manifest_entry(NS, &key, e, "ci").unwrap();
        }
        // Adding one already listed changes nothing.
        s.add_manifest_entry(NS, &key, &entries[MAX_MANIFEST_ENTRIES + 2], "ci").unwrap();
        let listed = s.manifest(NS, &key).unwrap();
        assert_eq!(listed.len(), MAX_MANIFEST_ENTRIES);
        assert_eq!(listed[0], entries[MAX_MANIFEST_ENTRIES + 2], "newest first");
        assert!(!listed.contains(&entries[0]), "the oldest dropped");
        assert_eq!(s.manifest("alice", &key).unwrap(), Vec::<Digest>::new());
    }

    #[test]
    fn invalidation_by_key_uploader_and_time_drops_exactly_those_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let blob = stored_blob(&s, b"object");
        let keys: Vec<Digest> = (0..4u8).map(|i| Digest::of(&[i])).collect();
        for (key, who) in keys.iter().zip(["ci", "ci", "mallory", "mallory"]) {
            s.update_action_result(NS, key, &result_naming(&[&blob]), who, false).unwrap();
            s.add_manifest_entry(NS, key, &blob, who).unwrap();
        }
        assert_eq!(
            s.invalidate(&Invalidation::default()).unwrap(),
            Dropped::default(),
            "an empty filter drops nothing"
        );
        let by_uploader = Invalidation { uploader: Some("mallory".into()), ..Invalidation::default() };
        assert_eq!(s.invalidate(&by_uploader).unwrap(), Dropped { results: 2, manifest_entries: 2 });
        assert!(s.get_action_result(NS, &keys[2]).unwrap().is_none() && s.manifest(NS, &keys[3]).unwrap().is_empty());
        let by_key = Invalidation { key: Some(keys[0]), ..Invalidation::default() };
        assert_eq!(s.invalidate(&by_key).unwrap(), Dropped { results: 1, manifest_entries: 1 });
        let future = Invalidation { since: Some(now() + 3600), ..Invalidation::default() };
        assert_eq!(s.invalidate(&future).unwrap(), Dropped::default());
        let window = Invalidation { since: Some(now() - 3600), until: Some(now() + 3600), ..Invalidation::default() };
        assert_eq!(s.invalidate(&window).unwrap(), Dropped { results: 1, manifest_entries: 1 });
        // Nothing names the blob now: it is a candidate for eviction like any unnamed blob.
        let txn = s.db.begin_read().unwrap();
        assert_eq!(txn.open_table(BLOBS).unwrap().get(blob.0).unwrap().unwrap().value().3, 0);
    }

    #[test]
    fn an_index_from_before_namespaces_is_migrated_its_blobs_unnamed() {
        let dir = tempfile::tempdir().unwrap();
        let blob = {
            let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
            let blob = stored_blob(&s, b"old object");
            let txn = s.db.begin_write().unwrap();
            {
                let mut old = txn.open_table(OLD_ACTIONS).unwrap();
                old.insert(Digest::of(b"k").0, [0u8; 9].as_slice()).unwrap();
                let mut blobs = txn.open_table(BLOBS).unwrap();
                let (size, stored, access, _) = blobs.get(blob.0).unwrap().unwrap().value();
                blobs.insert(blob.0, (size, stored, access, 1)).unwrap();
            }
            txn.commit().unwrap();
            blob
        };
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let txn = s.db.begin_read().unwrap();
        assert!(txn.open_table(OLD_ACTIONS).is_err(), "the old table is gone");
        assert_eq!(txn.open_table(BLOBS).unwrap().get(blob.0).unwrap().unwrap().value().3, 0);
    }

    #[test]
    fn results_naming_condemned_blobs_are_dropped_and_their_references_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path(), 1 << 30).unwrap();
        let (lie, honest, shared) =
            (stored_blob(&s, b"wrong object"), stored_blob(&s, b"true object"), stored_blob(&s, b"stderr"));
        let keys: Vec<Digest> = (0..4u64).map(|i| Digest::of(&i.to_le_bytes())).collect();
        s.update_action_result(NS, &keys[0], &result_naming(&[&lie, &shared]), "ci", false).unwrap();
        s.update_action_result("alice", &keys[1], &result_naming(&[&lie]), "alice", false).unwrap();
        s.update_action_result(NS, &keys[2], &result_naming(&[&honest, &shared]), "ci", false).unwrap();
        s.update_action_result(NS, &keys[3], &result_naming(&[&honest]), "ci", false).unwrap();
        let refs =
            |d: &Digest| s.db.begin_read().unwrap().open_table(BLOBS).unwrap().get(d.0).unwrap().unwrap().value().3;
        assert_eq!((refs(&lie), refs(&shared), refs(&honest)), (2, 2, 2));

        let condemned: std::collections::HashSet<Digest> = [lie].into();
        assert_eq!(s.drop_results_naming(&condemned).unwrap(), 2);
        assert_eq!(s.get_action_result(NS, &keys[0]).unwrap(), None);
        assert_eq!(s.get_action_result("alice", &keys[1]).unwrap(), None, "in every namespace");
        assert!(s.get_action_result(NS, &keys[2]).unwrap().is_some(), "results not naming it stay");
        assert!(s.get_action_result(NS, &keys[3]).unwrap().is_some());
        assert_eq!((refs(&lie), refs(&shared), refs(&honest)), (0, 1, 2), "references released");
        assert_eq!(s.drop_results_naming(&condemned).unwrap(), 0, "nothing left to drop");
        assert_eq!(s.drop_results_naming(&Default::default()).unwrap(), 0);
    }
}
