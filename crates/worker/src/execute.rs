//! What a pool worker does with an assigned action: materialize its toolchain pack (once, kept among the
//! most recently used ones), write its inputs into a fresh work directory, run the program in the sandbox
//! with only the toolchain and the work directory visible, and upload the outputs, stdout and stderr to CAS.
//! Inputs and pack files come through the worker's local blob cache ([`crate::cas`]): a blob is
//! fetched from the scheduler once, however many actions use it.

use crate::cas::{BlobCache, CasError, CasStats, Role};
use crate::faults::{self, Faults};
use crate::toolchains::{ToolchainDirs, ToolchainLease};
use rcc_fs::Beneath;
use rcc_link::client::{Client, ClientError};
use rcc_pack::Pack;
use rcc_proto::remote::{ActionResult, OutputFile, RemoteAction, RemoteError};
use rcc_proto::Digest;
use rcc_sandbox::{CancelFlag, ExitStatus, Mount, SandboxSpec};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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
    /// A cache under `root` (created), holding what earlier runs left within `limits`. Fails when another
    /// worker uses the directory.
    ///
    /// Who may read what: `root` and `root/work` are 0711, so the sandbox's unprivileged user (bwrap runs as
    /// it, see rcc-sandbox's "Privileges") can reach the paths it mounts without listing them; each action's
    /// work directory is 0700 and handed to that user for the action alone; blobs (`root/cas`, clients'
    /// preprocessed sources) are the worker's only (0700, files 0600); materialized toolchains, compilers
    /// only, stay readable by all (0755) since the sandbox's user runs them.
    pub fn new(root: PathBuf, limits: CacheLimits) -> std::io::Result<WorkerCache> {
        for (dir, mode) in [(root.clone(), 0o711), (root.join("toolchains"), 0o755), (root.join("work"), 0o711)] {
            fs::create_dir_all(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
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

/// The wall-clock limit of an action: the timeout its client asked for, at least 1 s, at most the
/// worker's `max_action` (a client cannot hold a slot for days).
pub fn wall_limit(timeout_ms: u64, max_action: Duration) -> Duration {
    Duration::from_millis(timeout_ms.max(1_000)).min(max_action)
}

/// Runs one action within at most `max_action`; `Err` when it could not run at all (the scheduler retries
/// it elsewhere).
pub async fn execute(
    client: &Client,
    cache: &WorkerCache,
    action: &RemoteAction,
    max_action: Duration,
    cancel: &CancelFlag,
    faults: Faults,
) -> Result<ActionResult, ExecuteError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    action.validate()?;
    let toolchain = cache.toolchain(client, action.toolchain).await?;
    let digest = action.digest();
    let work =
        cache.root.join("work").join(format!("{}-{}", &digest.to_hex()[..16], COUNTER.fetch_add(1, Ordering::Relaxed)));
    fs::DirBuilder::new().mode(0o700).create(&work).map_err(io_err(&work))?;
    fs::set_permissions(&work, fs::Permissions::from_mode(0o700)).map_err(io_err(&work))?;
    let wall = wall_limit(action.timeout_ms, max_action);
    let stops = Stops { wall, cancel };
    let result = run_in(client, &cache.blobs, toolchain.root(), &work, action, stops, faults).await;
    let _ = fs::remove_dir_all(&work);
    result
}

/// What stops a running action besides its end: its wall-clock limit, a cancellation.
struct Stops<'a> {
    wall: Duration,
    cancel: &'a CancelFlag,
}

async fn run_in(
    client: &Client,
    blobs: &BlobCache,
    root: &Path,
    work: &Path,
    action: &RemoteAction,
    stops: Stops<'_>,
    faults: Faults,
) -> Result<ActionResult, ExecuteError> {
    // Held open from before the action runs to after it ended: inputs are written and outputs read through
    // this descriptor, beneath it, following no link the action may have made.
    let tree = Beneath::open(work).map_err(io_err(work))?;
    for (name, blob) in &action.inputs {
        let name = Path::new(name);
        if let Some(parent) = name.parent().filter(|p| !p.as_os_str().is_empty()) {
            tree.create_dir_all(parent, 0o755).map_err(io_err(&work.join(parent)))?;
        }
        let bytes = blobs.get(client, *blob, Role::Input).await?;
        tree.write_file(name, &bytes, 0o644).map_err(io_err(&work.join(name)))?;
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
    spec.limits.wall = stops.wall;
    spec.cancel = stops.cancel.clone();
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
        let Some((data, executable)) = read_output(&tree, name) else { continue };
        let data = if faults.wrong { faults::WRONG_OBJECT.to_vec() } else { data };
        let digest = if faults.corrupt { lie_about(client, &data).await } else { client.put_blob(&data).await? };
        outputs.push(OutputFile { name: name.clone(), digest, size: data.len() as u64, executable });
    }
    let stdout = client.put_blob(&outcome.stdout).await?;
    let stderr = client.put_blob(&outcome.stderr).await?;
    Ok(ActionResult { outputs, stdout: Some(stdout), stderr: Some(stderr), exit_code })
}

/// An output of the action: a regular file only, opened beneath the work directory without following any
/// link ([`Beneath::open_regular`]), and whether it is executable. Anything else is an absent output, as
/// if the action had not written it (the client then compiles locally): a link (to `/etc/shadow`, to
/// `/proc/self/cmdline` — the worker's own, were it followed — or a directory of links on the way), a
/// directory, a fifo (never opened blocking) or a device. What is there was chosen by the action.
fn read_output(tree: &Beneath, name: &str) -> Option<(Vec<u8>, bool)> {
    let read = tree.open_regular(Path::new(name)).and_then(|mut file| {
        let executable = file.metadata()?.permissions().mode() & 0o111 != 0;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok((data, executable))
    });
    match read {
        Ok(found) => Some(found),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(output = name, error = %e, "output treated as absent: not a regular file of the work directory");
            None
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_timeout_is_bounded_by_the_worker() {
        let cap = Duration::from_secs(600);
        assert_eq!(wall_limit(u64::MAX, cap), cap, "a huge timeout is cut to the worker's cap");
        assert_eq!(wall_limit(30_000, cap), Duration::from_secs(30), "a shorter one is kept");
        assert_eq!(wall_limit(0, cap), Duration::from_secs(1), "at least a second");
        assert_eq!(wall_limit(5_000, Duration::from_secs(2)), Duration::from_secs(2));
    }
}
