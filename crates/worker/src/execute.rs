//! What a pool worker does with an assigned action: materialize its toolchain pack (once, kept among the
//! most recently used ones), write its inputs into a fresh work directory, run the program in the sandbox
//! with only the toolchain and the work directory visible, and upload the outputs, stdout and stderr to CAS.
//! Inputs and pack files come through the worker's local blob cache ([`crate::cas`]): a blob is
//! fetched from the scheduler once, however many actions use it.

use crate::cas::{BlobCache, CasError, CasStats, Role};
use crate::faults::{self, Faults};
use crate::toolchains::{ToolchainDirs, ToolchainLease};
use rcc_link::client::{Client, ClientError};
use rcc_pack::Pack;
use rcc_proto::remote::{ActionResult, OutputFile, RemoteAction, RemoteError};
use rcc_proto::Digest;
use rcc_sandbox::{CancelFlag, ExitStatus, Mount, SandboxSpec};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why an action could not run (the scheduler then runs it elsewhere). A compile that fails is not this:
/// it is a result with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The action broke the protocol's bounds (paths, sizes).
    #[error("invalid action: {0}")]
    Invalid(#[from] RemoteError),
    /// A blob (input, pack, pack file) could not be had.
    #[error(transparent)]
    Blob(#[from] CasError),
    /// The toolchain pack did not decode or materialize.
    #[error("toolchain: {0}")]
    Pack(#[from] rcc_pack::PackError),
    /// The worker's own files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The sandbox could not be set up.
    #[error("sandbox: {0}")]
    Sandbox(#[from] rcc_sandbox::SandboxError),
    /// The action hit a limit or was killed.
    #[error("the action {0}")]
    Stopped(String),
    /// Uploading the outputs failed.
    #[error("uploading outputs: {0}")]
    Upload(#[from] ClientError),
    /// The blocking task running the sandbox died.
    #[error("sandbox task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExecuteError + '_ {
    move |source| ExecuteError::Io { path: path.to_owned(), source }
}

/// How much a worker keeps.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Bytes of blobs (inputs and pack files) kept.
    pub blob_bytes: u64,
    /// Materialized toolchains kept (more only while running actions use them all).
    pub toolchains: usize,
}

/// Where a worker keeps its blob cache, materialized toolchains and work directories. The directory
/// belongs to one worker process (a lock file says so).
pub struct WorkerCache {
    root: PathBuf,
    blobs: BlobCache,
    toolchains: ToolchainDirs,
    /// One materialization at a time (two actions of a new toolchain arrive together).
    materializing: tokio::sync::Mutex<()>,
    _lock: fs::File,
}

impl WorkerCache {
    /// A cache under `root` (created, and opened to the sandbox's unprivileged user: 0755), holding what
    /// earlier runs left within `limits`. Fails when another worker uses the directory.
    pub fn new(root: PathBuf, limits: CacheLimits) -> std::io::Result<WorkerCache> {
        for dir in [root.clone(), root.join("toolchains"), root.join("work")] {
            fs::create_dir_all(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        }
        let lock = fs::File::options().create(true).truncate(false).write(true).open(root.join("lock"))?;
        if lock.try_lock().is_err() {
            let why = format!("another worker uses {}", root.display());
            return Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, why));
        }
        Ok(WorkerCache {
            blobs: BlobCache::open(root.join("cas"), limits.blob_bytes)?,
            toolchains: ToolchainDirs::open(root.join("toolchains"), limits.toolchains)?,
            root,
            materializing: tokio::sync::Mutex::new(()),
            _lock: lock,
        })
    }

    /// What the worker holds, for its heartbeats: its toolchains and its most recently used inputs, most
    /// recent first, within the protocol's bounds.
    pub fn holdings(&self) -> (Vec<Digest>, Vec<Digest>) {
        (self.toolchains.digests(), self.blobs.recent_inputs())
    }

    /// The blob cache's counters: served locally, fetched, found corrupt.
    pub fn blob_stats(&self) -> CasStats {
        self.blobs.stats()
    }

    /// The materialized tree of a toolchain pack, fetched and verified on first use; it stays while the
    /// lease lives.
    async fn toolchain(&self, client: &Client, digest: Digest) -> Result<ToolchainLease, ExecuteError> {
        if let Some(lease) = self.toolchains.lease(digest) {
            return Ok(lease);
        }
        let _one = self.materializing.lock().await;
        if let Some(lease) = self.toolchains.lease(digest) {
            return Ok(lease);
        }
        let bytes = self.blobs.get(client, digest, Role::Toolchain).await?;
        let pack = Pack::decode(&bytes)?;
        let mut blobs = HashMap::new();
        for blob in pack.blobs() {
            blobs.insert(blob, self.blobs.get(client, blob, Role::Toolchain).await?);
        }
        let tmp = self.toolchains.partial_path(digest);
        let dir = self.toolchains.path(digest);
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_dir_all(&dir); // not held: an incomplete tree
        fs::create_dir_all(tmp.join("root")).map_err(io_err(&tmp))?;
        for d in [&tmp, &tmp.join("root")] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io_err(d))?;
        }
        pack.materialize(&tmp.join("root"), |d| {
            blobs.get(d).cloned().ok_or_else(|| std::io::Error::other("blob missing"))
        })?;
        fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        tracing::info!(toolchain = %&digest.to_hex()[..16], files = pack.entries.len(), "toolchain materialized");
        Ok(self.toolchains.add(digest))
    }
}

/// Mounts showing a materialized tree at `/`: each top-level entry bound read-only or linked.
fn root_mounts(root: &Path) -> Result<Vec<Mount>, ExecuteError> {
    let mut mounts = Vec::new();
    for entry in fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        let inside = Path::new("/").join(entry.file_name());
        if entry.file_type().map_err(io_err(&entry.path()))?.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(io_err(&entry.path()))?;
            mounts.push(Mount::Symlink { target, inside });
        } else {
            mounts.push(Mount::read_only(entry.path(), inside));
        }
    }
    Ok(mounts)
}

/// Runs one action; `Err` when it could not run at all (the scheduler retries it elsewhere).
pub async fn execute(
    client: &Client,
    cache: &WorkerCache,
    action: &RemoteAction,
    cancel: &CancelFlag,
    faults: Faults,
) -> Result<ActionResult, ExecuteError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    action.validate()?;
    let toolchain = cache.toolchain(client, action.toolchain).await?;
    let digest = action.digest();
    let work =
        cache.root.join("work").join(format!("{}-{}", &digest.to_hex()[..16], COUNTER.fetch_add(1, Ordering::Relaxed)));
    fs::create_dir_all(&work).map_err(io_err(&work))?;
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).map_err(io_err(&work))?;
    let result = run_in(client, &cache.blobs, toolchain.root(), &work, action, cancel, faults).await;
    let _ = fs::remove_dir_all(&work);
    result
}

async fn run_in(
    client: &Client,
    blobs: &BlobCache,
    root: &Path,
    work: &Path,
    action: &RemoteAction,
    cancel: &CancelFlag,
    faults: Faults,
) -> Result<ActionResult, ExecuteError> {
    for (name, blob) in &action.inputs {
        let path = work.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let bytes = blobs.get(client, *blob, Role::Input).await?;
        fs::write(&path, bytes).map_err(io_err(&path))?;
    }
    let mut spec = SandboxSpec::new(
        format!("action {}", &action.digest().to_hex()[..16]),
        &action.program,
        work.to_owned(),
        PathBuf::from(&action.workdir),
    );
    spec.args = action.args.iter().map(Into::into).collect();
    spec.env = action.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    spec.mounts = root_mounts(root)?;
    spec.limits.wall = Duration::from_millis(action.timeout_ms.max(1_000));
    spec.cancel = cancel.clone();
    if let Some(stall) = faults.stall {
        stall_in_sandbox(&spec, stall).await?;
    }
    let outcome = tokio::task::spawn_blocking(move || rcc_sandbox::run(&spec)).await??;
    if let Some(limit) = outcome.limit {
        return Err(ExecuteError::Stopped(format!("hit its {} limit", limit.name())));
    }
    let exit_code = match outcome.status {
        ExitStatus::Exited(code) => code,
        ExitStatus::Signaled(signal) => 128 + signal,
        ExitStatus::Killed => return Err(ExecuteError::Stopped("was killed".into())),
    };
    let mut outputs = Vec::new();
    for name in &action.outputs {
        let Ok(data) = fs::read(work.join(name)) else { continue };
        let executable = fs::metadata(work.join(name)).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
        let digest = if faults.corrupt { lie_about(client, &data).await } else { client.put_blob(&data).await? };
        outputs.push(OutputFile { name: name.clone(), digest, size: data.len() as u64, executable });
    }
    let stdout = client.put_blob(&outcome.stdout).await?;
    let stderr = client.put_blob(&outcome.stderr).await?;
    Ok(ActionResult { outputs, stdout: Some(stdout), stderr: Some(stderr), exit_code })
}

/// The slow-machine fault: the host's `sleep` runs for `stall` in a sandbox like the action's (its mounts,
/// limits and cancel flag), so that cancelling the action has a sandbox to kill.
async fn stall_in_sandbox(action: &SandboxSpec, stall: Duration) -> Result<(), ExecuteError> {
    let sleep = faults::host_sleep().ok_or_else(|| ExecuteError::Stopped("could not stall: no sleep".into()))?;
    let mut spec = action.clone();
    spec.name = format!("{} (test stall)", action.name);
    spec.program = PathBuf::from(faults::STALL_PROGRAM);
    spec.args = vec![format!("{}.{:03}", stall.as_secs(), stall.subsec_millis()).into()];
    spec.mounts.push(Mount::read_only(sleep, faults::STALL_PROGRAM));
    spec.limits.wall = stall + Duration::from_secs(30);
    let outcome = tokio::task::spawn_blocking(move || rcc_sandbox::run(&spec)).await??;
    match outcome.limit {
        Some(limit) => Err(ExecuteError::Stopped(format!("hit its {} limit while stalled", limit.name()))),
        None => Ok(()),
    }
}

/// The lying-worker fault: uploads altered bytes under `data`'s true digest (the scheduler refuses them,
/// which is logged) and returns that digest as if they had been stored.
async fn lie_about(client: &Client, data: &[u8]) -> Digest {
    let digest = Digest::of(data);
    match client.put_blob_as(digest, &faults::altered(data)).await {
        Ok(()) => tracing::error!(digest = %digest, "the scheduler stored altered bytes under a true digest"),
        Err(e) => tracing::info!(digest = %digest, error = %e, "altered output refused by the scheduler"),
    }
    digest
}
