//! The daemon as a client of the shared cache.
//!
//! One long-lived QUIC connection, made on first use and remade after failures with exponential backoff
//! (1 s doubling to 30 s); while it is down, compiles skip the shared cache at no cost. Every call on the
//! compile path is bounded by `remote_timeout` (RCC_REMOTE_TIMEOUT_MS). Uploads run on the remote runtime
//! after the compile has answered, so they never slow a build.
//!
//! Remote layout, in the scheduler's action cache and CAS:
//! - a result: an action result whose outputs are the output files (named by role), stdout, stderr, and an
//!   `rcc-meta` blob (depfile target, compile time);
//! - a manifest: the scheduler's manifest list under `H("remote-manifest", direct key)`, whose entries are
//!   blobs each holding one postcard-encoded manifest [`Entry`], so a hit on another machine needs no
//!   preprocessor run either. Entries are added, never rewritten: one writer cannot drop another's.
//!
//! A shared result's key is derived from its manifest entry ([`shared_result_key`]: the direct key and every
//! fact the entry states), never taken from the entry: an entry someone else wrote can lead only to the
//! result stored for exactly those facts, and the scheduler keeps the first result stored under a key.

use crate::key::manifest::{Entry, Manifest};
use crate::outputs::{CachedResult, Role, StoredFile};
use crate::stats::StatsBook;
use rcc_link::client::{Client, ClientError};
use rcc_link::tls::Trust;
use rcc_link::Hold;
use rcc_proto::config::Config;
use rcc_proto::remote::{ActionResult, OutputFile, RemoteAction, Scope};
use rcc_proto::stats::RemoteFallback;
use rcc_proto::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest manifest entry fetched (an entry lists a unit's inputs: tens of kilobytes for big C++ units).
const MAX_MANIFEST_ENTRY: u64 = 4 << 20;

/// Bound on a background upload.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// What `rcc-meta` holds.
#[derive(Serialize, Deserialize)]
struct Meta {
    depfile_target: Option<Vec<u8>>,
    compile_millis: u64,
}

struct Link {
    client: Option<Arc<Client>>,
    /// Closed after a failed connection: compiles skip the shared cache at no cost until it opens.
    hold: Hold,
}

/// The shared-cache client of a daemon.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    trust: Trust,
    token: String,
    read_only: bool,
    timeout: Duration,
    link: Mutex<Link>,
    /// Held while connecting: compiles arriving meanwhile wait for the outcome (bounded by the timeout)
    /// instead of missing the shared cache.
    connecting: Mutex<()>,
    /// Closed after the scheduler said the pool has no active worker: misses then stay local without
    /// preprocessing or asking until it opens; a remote compile that runs opens it.
    pool_hold: Mutex<Hold>,
}

impl Remote {
    /// The client the configuration asks for; `None` when no scheduler is configured, `Err` when the
    /// configuration is incomplete.
    pub fn from_config(config: &Config) -> Option<Result<Remote, String>> {
        let addr_text = config.scheduler.value.clone()?;
        Some((|| {
            let addr = addr_text
                .to_socket_addrs()
                .map_err(|e| format!("scheduler address `{addr_text}`: {e}"))?
                .next()
                .ok_or_else(|| format!("scheduler address `{addr_text}` resolves to nothing"))?;
            let trust = match (&config.scheduler_fingerprint.value, &config.scheduler_ca.value) {
                (Some(fp), _) => Trust::Fingerprint(
                    Digest::from_hex(fp).ok_or_else(|| format!("`{fp}` is not a SHA-256 fingerprint"))?,
                ),
                (None, Some(ca)) => Trust::CaFile(ca.clone()),
                (None, None) => return Err("set RCC_SCHEDULER_FINGERPRINT or RCC_SCHEDULER_CA".into()),
            };
            let token = config.token.value.clone().ok_or("set RCC_TOKEN for the scheduler")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("rccd-remote")
                .enable_all()
                .build()
                .map_err(|e| format!("starting the remote runtime: {e}"))?;
            Ok(Remote {
                runtime,
                addr,
                trust,
                token,
                read_only: config.read_only.value,
                timeout: Duration::from_millis(config.remote_timeout_ms.value),
                link: Mutex::new(Link { client: None, hold: Hold::new() }),
                connecting: Mutex::new(()),
                pool_hold: Mutex::new(Hold::new()),
            })
        })())
    }

    /// The connection, (re)made when due; `None` while the scheduler is unreachable (until the backoff
    /// ends, compiles skip the shared cache at no cost). Compiles arriving during a connection attempt wait
    /// for its outcome.
    fn client(&self, stats: &StatsBook) -> Option<Arc<Client>> {
        {
            let link = self.link.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = &link.client {
                return Some(c.clone());
            }
            if link.hold.closed(Instant::now()) {
                return None;
            }
        }
        let _connecting = self.connecting.lock().unwrap_or_else(|e| e.into_inner());
        {
            // Another compile may have connected (or failed, setting a later retry) while this one waited.
            let link = self.link.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = &link.client {
                return Some(c.clone());
            }
            if link.hold.closed(Instant::now()) {
                return None;
            }
        }
        let connected = self.runtime.block_on(async {
            tokio::time::timeout(self.timeout, Client::connect(self.addr, &self.trust, &self.token)).await
        });
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        let client = match connected {
            Ok(Ok(client)) => {
                tracing::info!(addr = %self.addr, scopes = ?client.scopes, "connected to the scheduler");
                link.hold.succeeded();
                Some(Arc::new(client))
            }
            Ok(Err(e)) => {
                tracing::warn!(addr = %self.addr, error = %e, "scheduler unavailable");
                None
            }
            Err(_) => {
                tracing::warn!(addr = %self.addr, "scheduler connection timed out");
                None
            }
        };
        if client.is_none() {
            stats.record(|c| c.remote_errors += 1);
            link.hold.failed(Instant::now());
        }
        link.client = client.clone();
        client
    }

    /// Forgets a connection that failed, so the next use reconnects (after backoff).
    fn drop_link(&self, stats: &StatsBook) {
        stats.record(|c| c.remote_errors += 1);
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        link.client = None;
        link.hold.failed(Instant::now());
    }

    /// Runs a call on the compile path with the timeout; any failure drops the link and yields `None`.
    fn bounded<T, F, Fut>(&self, stats: &StatsBook, call: F) -> Option<T>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, rcc_link::client::ClientError>>,
    {
        let client = self.client(stats)?;
        match self.runtime.block_on(async { tokio::time::timeout(self.timeout, call(client)).await }) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e @ rcc_link::client::ClientError::Corrupt(_))) => {
                // The scheduler's copy is damaged; the connection is fine. A miss, counted.
                tracing::warn!(error = %e, "corrupt blob from the shared cache");
                stats.record(|c| c.remote_errors += 1);
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "shared cache call failed");
                self.drop_link(stats);
                None
            }
            Err(_) => {
                tracing::warn!("shared cache call timed out");
                self.drop_link(stats);
                None
            }
        }
    }

    /// The shared manifest for a direct key: the entries every readable namespace lists, newest first.
    pub fn manifest(&self, stats: &StatsBook, direct_key: &Digest) -> Option<Manifest> {
        let entries = self.manifest_entries(stats, manifest_key(direct_key))?;
        let entries = entries.iter().filter_map(|bytes| postcard::from_bytes(bytes).ok()).collect();
        Some(Manifest { entries })
    }

    /// The entry blobs of the manifest list under `key`, newest first (entries whose blob is gone are
    /// skipped); `None` when there are none or the scheduler could not be asked.
    pub fn manifest_entries(&self, stats: &StatsBook, key: Digest) -> Option<Vec<Vec<u8>>> {
        let entries = self.bounded(stats, |c| async move {
            let digests = c.get_manifest(key).await?;
            // All at once, one stream each; answers are put back in the list's order.
            let mut fetches = tokio::task::JoinSet::new();
            for (i, digest) in digests.into_iter().enumerate() {
                let c = c.clone();
                fetches.spawn(async move { c.get_blob_within(digest, MAX_MANIFEST_ENTRY).await.map(|b| (i, b)) });
            }
            let mut found = Vec::new();
            while let Some(joined) = fetches.join_next().await {
                match joined {
                    Ok(Ok((i, Some(bytes)))) => found.push((i, bytes)),
                    // Gone, oversized or damaged: that entry is skipped, the others still serve.
                    Ok(Ok((_, None)))
                    | Ok(Err(ClientError::Corrupt(_)))
                    | Ok(Err(ClientError::Wire(rcc_link::wire::WireError::Body(_))))
                    | Err(_) => {}
                    Ok(Err(e)) => return Err(e),
                }
            }
            found.sort_by_key(|(i, _)| *i);
            Ok(found.into_iter().map(|(_, bytes)| bytes).collect::<Vec<_>>())
        })?;
        stats.record(|c| c.bytes_down += entries.iter().map(|e| e.len() as u64).sum::<u64>());
        (!entries.is_empty()).then_some(entries)
    }

    /// A shared result, assembled from its blobs.
    pub fn result(&self, stats: &StatsBook, result_key: &Digest) -> Option<CachedResult> {
        let key = *result_key;
        let (result, blobs) = self.bounded(stats, |c| async move {
            let Some(result) = c.get_action_result(key).await? else { return Ok(None) };
            // All blobs at once: one stream each, so the round trips overlap.
            let mut fetches = tokio::task::JoinSet::new();
            for digest in result.blobs() {
                let c = c.clone();
                fetches.spawn(async move { c.get_blob(digest).await.map(|b| (digest, b)) });
            }
            let mut blobs = Vec::new();
            while let Some(joined) = fetches.join_next().await {
                match joined {
                    Ok(Ok((digest, Some(data)))) => blobs.push((digest, data)),
                    Ok(Ok((_, None))) => return Ok(None),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Ok(None),
                }
            }
            Ok(Some((result, blobs)))
        })??;
        stats.record(|c| c.bytes_down += blobs.iter().map(|b| b.1.len() as u64).sum::<u64>());
        from_remote(&result, &blobs)
    }

    /// Uploads a result under the key its manifest entry derives ([`shared_result_key`]) and adds the
    /// entry to the shared manifest, in the background.
    pub fn upload(self: &Arc<Self>, stats: Arc<StatsBook>, direct_key: Digest, result: CachedResult, entry: Entry) {
        self.spawn_upload(stats, move |client| async move { upload(&client, direct_key, &result, entry).await });
    }

    /// Runs an upload on the remote runtime, bounded by [`UPLOAD_TIMEOUT`], counting what it sent; nothing
    /// when the machine is read-only, the scheduler unreachable or the token may not write.
    fn spawn_upload<F, Fut>(self: &Arc<Self>, stats: Arc<StatsBook>, work: F)
    where
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, rcc_link::client::ClientError>> + Send + 'static,
    {
        if self.read_only {
            return;
        }
        let Some(client) = self.client(&stats) else { return };
        if !client.scopes.contains(&Scope::Write) {
            return;
        }
        let this = self.clone();
        self.runtime.spawn(async move {
            match tokio::time::timeout(UPLOAD_TIMEOUT, work(client)).await {
                Ok(Ok(bytes)) => stats.record(|c| {
                    c.uploads += 1;
                    c.bytes_up += bytes;
                }),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "upload failed");
                    this.drop_link(&stats);
                }
                Err(_) => {
                    tracing::warn!("upload timed out");
                    this.drop_link(&stats);
                }
            }
        });
    }
}

impl Remote {
    /// An opaque entry (one blob under an action-cache key), as other kinds of result (rustc's) use.
    pub fn get_opaque(&self, stats: &StatsBook, key: &Digest) -> Option<Vec<u8>> {
        let key = *key;
        let bytes = self.bounded(stats, |c| async move { first_output(&c, key).await })??;
        stats.record(|c| c.bytes_down += bytes.len() as u64);
        Some(bytes)
    }

    /// Uploads an opaque result under `result_key` and adds `entry` to the manifest list under
    /// `manifest_key`, in the background.
    pub fn upload_opaque(
        self: &Arc<Self>,
        stats: Arc<StatsBook>,
        result_key: Digest,
        result: Vec<u8>,
        manifest_key: Digest,
        entry: Vec<u8>,
    ) {
        self.spawn_upload(stats, move |client| async move {
            let mut sent = put_opaque(&client, result_key, &result).await?;
            sent += add_entry(&client, manifest_key, &entry).await?;
            Ok(sent)
        });
    }
}

/// A blob to upload: in memory, or a file read only if the scheduler lacks it (a toolchain's files are
/// tens of megabytes and almost always already there).
pub enum Blob {
    /// The content.
    Bytes(Vec<u8>),
    /// A file whose content is known to have the blob's digest.
    File(std::path::PathBuf),
}

/// A remote execution's outcome, its blobs fetched and checked.
pub struct Executed {
    /// The action result.
    pub result: ActionResult,
    /// Output files by name, with their content.
    pub outputs: Vec<(String, Vec<u8>)>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Uploads what the scheduler lacks of `blobs`, reading a file only then; the bytes sent.
async fn upload_missing(client: &Client, blobs: &[(Digest, Blob)]) -> Result<u64, rcc_link::client::ClientError> {
    let missing = client.find_missing(blobs.iter().map(|b| b.0).collect()).await?;
    let mut sent = 0;
    for (digest, blob) in blobs {
        if missing.contains(digest) {
            let data = match blob {
                Blob::Bytes(data) => std::borrow::Cow::Borrowed(data),
                Blob::File(path) => std::borrow::Cow::Owned(
                    tokio::fs::read(path)
                        .await
                        .map_err(|e| rcc_link::client::ClientError::Unexpected(format!("{}: {e}", path.display())))?,
                ),
            };
            client.put_blob_as(*digest, &data).await?;
            sent += data.len() as u64;
        }
    }
    Ok(sent)
}

impl Remote {
    /// Uploads what the scheduler lacks of `blobs` within `wait` (bytes counted as sent). `Err` is why the
    /// miss stays local, as for [`execute`](Self::execute).
    pub fn upload_blobs(
        &self,
        stats: &StatsBook,
        blobs: Vec<(Digest, Blob)>,
        wait: Duration,
    ) -> Result<(), RemoteFallback> {
        let client = self.client(stats).ok_or(RemoteFallback::SchedulerUnreachable)?;
        match self.runtime.block_on(async { tokio::time::timeout(wait, upload_missing(&client, &blobs)).await }) {
            Ok(Ok(sent)) => {
                stats.record(|c| c.bytes_up += sent);
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "uploading to the scheduler failed");
                Err(RemoteFallback::RemoteError)
            }
            Err(_) => Err(RemoteFallback::Timeout),
        }
    }

    /// Whether the scheduler lets this machine run actions on its pool (the token's `execute` scope).
    pub fn can_execute(&self, stats: &StatsBook) -> bool {
        self.client(stats).is_some_and(|c| c.scopes.contains(&Scope::Execute))
    }

    /// Whether misses skip the pool for now: it had no active worker a moment ago.
    pub fn pool_held_off(&self) -> bool {
        self.pool_hold.lock().unwrap_or_else(|e| e.into_inner()).closed(Instant::now())
    }

    fn note_pool_answer(&self, had_workers: bool) {
        let mut hold = self.pool_hold.lock().unwrap_or_else(|e| e.into_inner());
        if had_workers {
            hold.succeeded();
        } else if let Some(wait) = hold.failed(Instant::now()) {
            tracing::info!(wait_ms = wait.as_millis() as u64, "the pool has no active worker; misses stay local");
        }
    }

    /// Uploads what the scheduler lacks of `blobs` (reading a file only then), runs `action` on the pool and fetches its outputs,
    /// stdout and stderr (each checked against its digest), all within `wait`. `Err` is why the miss stays
    /// local (no workers, a timeout, a failure of the scheduler or the worker).
    pub fn execute(
        &self,
        stats: &StatsBook,
        blobs: Vec<(Digest, Blob)>,
        action: RemoteAction,
        wait: Duration,
    ) -> Result<Executed, RemoteFallback> {
        let client = self.client(stats).ok_or(RemoteFallback::SchedulerUnreachable)?;
        let work = async move {
            let sent = upload_missing(&client, &blobs).await?;
            let result = client.execute(action).await?;
            let fetch = |d: Digest| {
                let client = client.clone();
                async move {
                    client.get_blob(d).await?.ok_or(rcc_link::client::ClientError::Unexpected("missing blob".into()))
                }
            };
            let mut outputs = Vec::new();
            for out in &result.outputs {
                outputs.push((out.name.clone(), fetch(out.digest).await?));
            }
            let stdout = match result.stdout {
                Some(d) => fetch(d).await?,
                None => Vec::new(),
            };
            let stderr = match result.stderr {
                Some(d) => fetch(d).await?,
                None => Vec::new(),
            };
            Ok::<_, rcc_link::client::ClientError>((result, outputs, stdout, stderr, sent))
        };
        match self.runtime.block_on(async { tokio::time::timeout(wait, work).await }) {
            Ok(Ok((result, outputs, stdout, stderr, sent))) => {
                self.note_pool_answer(true);
                let down: u64 =
                    outputs.iter().map(|o| o.1.len() as u64).sum::<u64>() + (stdout.len() + stderr.len()) as u64;
                stats.record(|c| {
                    c.bytes_up += sent;
                    c.bytes_down += down;
                });
                Ok(Executed { result, outputs, stdout, stderr })
            }
            Ok(Err(rcc_link::client::ClientError::Refused(rcc_proto::remote::RemoteError::NoWorkers(_)))) => {
                self.note_pool_answer(false);
                Err(RemoteFallback::NoWorkers)
            }
            Ok(Err(e @ rcc_link::client::ClientError::Corrupt(_))) => {
                tracing::warn!(error = %e, "a pool output failed its digest check");
                Err(RemoteFallback::CorruptOutput)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "remote execution failed");
                Err(RemoteFallback::RemoteError)
            }
            Err(_) => Err(RemoteFallback::Timeout),
        }
    }
}

/// The content of the first output of the action result under `key` (manifests and opaque entries have one).
async fn first_output(client: &Client, key: Digest) -> Result<Option<Vec<u8>>, rcc_link::client::ClientError> {
    let Some(result) = client.get_action_result(key).await? else { return Ok(None) };
    let Some(blob) = result.outputs.first() else { return Ok(None) };
    client.get_blob(blob.digest).await
}

/// Uploads `data` as a blob unless the scheduler has it; returns its digest and the bytes sent.
async fn put_if_missing(client: &Client, data: &[u8]) -> Result<(Digest, u64), rcc_link::client::ClientError> {
    let digest = Digest::of(data);
    if client.find_missing(vec![digest]).await?.is_empty() {
        return Ok((digest, 0));
    }
    client.put_blob_as(digest, data).await?;
    Ok((digest, data.len() as u64))
}

/// Stores `data` as the one output of the action result under `key`; returns the bytes sent.
async fn put_opaque(client: &Client, key: Digest, data: &[u8]) -> Result<u64, rcc_link::client::ClientError> {
    let (digest, sent) = put_if_missing(client, data).await?;
    let out = OutputFile { name: "entry".into(), digest, size: data.len() as u64, executable: false };
    let result = ActionResult { outputs: vec![out], stdout: None, stderr: None, exit_code: 0 };
    record(client, key, result).await?;
    Ok(sent)
}

/// Records an action result; a different one stored first is kept by the scheduler (logged, not an error).
async fn record(client: &Client, key: Digest, result: ActionResult) -> Result<(), rcc_link::client::ClientError> {
    if client.update_action_result(key, result).await? == rcc_link::client::Recorded::Kept {
        tracing::info!(key = %key, "the shared cache keeps a different result stored first for this key");
    }
    Ok(())
}

/// Uploads a manifest entry and adds it to the list under `manifest_key`; returns the bytes sent.
async fn add_entry(client: &Client, manifest_key: Digest, entry: &[u8]) -> Result<u64, rcc_link::client::ClientError> {
    let (digest, sent) = put_if_missing(client, entry).await?;
    client.add_manifest_entry(manifest_key, digest).await?;
    Ok(sent)
}

/// The shared-cache key of the result a C-family manifest entry leads to: the direct key and every fact
/// the entry states (inputs and their digests, search directories, names, which existed), its own result
/// field left out. Whoever wrote the entry, following it can only reach the result stored for exactly
/// these facts.
pub fn shared_result_key(direct_key: &Digest, entry: &Entry) -> Digest {
    let facts = Entry { result: Digest([0; 32]), ..entry.clone() };
    let mut h = KeyHasher::new("c-shared-result", 1);
    h.digest(b'k', direct_key).bytes(b'e', &postcard::to_allocvec(&facts).unwrap_or_default());
    h.finish()
}

fn manifest_key(direct_key: &Digest) -> Digest {
    let mut h = KeyHasher::new("remote-manifest", 1);
    h.digest(b'k', direct_key);
    h.finish()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Object => "object",
        Role::Depfile => "depfile",
        Role::Dwo => "dwo",
        Role::Gcno => "gcno",
    }
}

fn role_of(name: &str) -> Option<Role> {
    [Role::Object, Role::Depfile, Role::Dwo, Role::Gcno].into_iter().find(|r| role_name(*r) == name)
}

/// A local result as an action result plus the blobs it names.
fn to_remote(result: &CachedResult) -> (ActionResult, Vec<(Digest, Vec<u8>)>) {
    let mut blobs = Vec::new();
    let mut outputs = Vec::new();
    let mut add = |name: &str, data: Vec<u8>| {
        let digest = Digest::of(&data);
        outputs.push(OutputFile { name: name.to_owned(), digest, size: data.len() as u64, executable: false });
        blobs.push((digest, data));
    };
    for file in &result.files {
        add(role_name(file.role), file.data.clone());
    }
    let meta = Meta { depfile_target: result.depfile_target.clone(), compile_millis: result.compile_millis };
    add("rcc-meta", postcard::to_allocvec(&meta).unwrap_or_default());
    let stdout = Digest::of(&result.stdout);
    let stderr = Digest::of(&result.stderr);
    blobs.push((stdout, result.stdout.clone()));
    blobs.push((stderr, result.stderr.clone()));
    (ActionResult { outputs, stdout: Some(stdout), stderr: Some(stderr), exit_code: result.exit_code }, blobs)
}

/// An action result and its blobs as a local result (`None` if anything is missing or malformed).
fn from_remote(result: &ActionResult, blobs: &[(Digest, Vec<u8>)]) -> Option<CachedResult> {
    let blob = |d: &Digest| blobs.iter().find(|(k, _)| k == d).map(|(_, v)| v.clone());
    let mut files = Vec::new();
    let mut meta = None;
    for out in &result.outputs {
        if out.name == "rcc-meta" {
            meta = postcard::from_bytes::<Meta>(&blob(&out.digest)?).ok();
        } else {
            files.push(StoredFile { role: role_of(&out.name)?, data: blob(&out.digest)? });
        }
    }
    let meta = meta?;
    Some(CachedResult {
        files,
        stdout: result.stdout.as_ref().and_then(blob).unwrap_or_default(),
        stderr: result.stderr.as_ref().and_then(blob).unwrap_or_default(),
        exit_code: result.exit_code,
        depfile_target: meta.depfile_target,
        compile_millis: meta.compile_millis,
    })
}

async fn upload(
    client: &Client,
    direct_key: Digest,
    result: &CachedResult,
    mut entry: Entry,
) -> Result<u64, rcc_link::client::ClientError> {
    let (action, blobs) = to_remote(result);
    let mut sent = 0;
    let missing = client.find_missing(blobs.iter().map(|b| b.0).collect()).await?;
    for (digest, data) in &blobs {
        if missing.contains(digest) {
            client.put_blob_as(*digest, data).await?;
            sent += data.len() as u64;
        }
    }
    entry.result = shared_result_key(&direct_key, &entry);
    record(client, entry.result, action).await?;
    let manifest = manifest_key(&direct_key);
    sent += add_entry(client, manifest, &postcard::to_allocvec(&entry).unwrap_or_default()).await?;
    tracing::debug!(%manifest, result = %entry.result, "shared result uploaded");
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_survive_the_remote_encoding() {
        let result = CachedResult {
            files: vec![
                StoredFile { role: Role::Object, data: b"obj".to_vec() },
                StoredFile { role: Role::Depfile, data: b"a.o: a.c\n".to_vec() },
            ],
            stdout: Vec::new(),
            stderr: b"warning".to_vec(),
            exit_code: 0,
            depfile_target: Some(b"a.o".to_vec()),
            compile_millis: 42,
        };
        let (action, blobs) = to_remote(&result);
        assert_eq!(from_remote(&action, &blobs), Some(result));
        assert_eq!(from_remote(&action, &blobs[1..]), None, "a missing blob is no result");
    }
}
