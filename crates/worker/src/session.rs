//! The worker's session with the scheduler: it dials out over QUIC (so workers need no open port),
//! registers its pool, slots and memory, and heartbeats on the registration stream; assignments and
//! cancellations arrive on that stream and each assigned action runs in [`crate::execute`]. A lost
//! connection is redialled with backoff (1 s doubling to 30 s).

use crate::execute::{execute, CacheLimits, WorkerCache};
use crate::faults::Faults;
use rcc_link::client::{Client, ClientError};
use rcc_link::tls::Trust;
use rcc_link::wire::{read_frame, write_frame, WireError};
use rcc_link::Backoff;
use rcc_proto::remote::{RemoteError, Request, Response, SchedulerMessage, WorkerMessage};
use rcc_proto::Digest;
use rcc_sandbox::CancelFlag;
use std::net::SocketAddr;
use std::time::Duration;

/// What a worker says of itself and where it reports.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The scheduler's address.
    pub scheduler: SocketAddr,
    /// How the scheduler's certificate is checked.
    pub trust: Trust,
    /// A token with the `worker` scope.
    pub token: String,
    /// A name for humans (default: the host name).
    pub name: String,
    /// The pool served (default: `<os>-<arch>`, e.g. `linux-x86_64`).
    pub pool: String,
    /// Actions run at once (default: the number of cores).
    pub slots: u32,
    /// Memory in bytes (default: the host's).
    pub memory_bytes: u64,
    /// Where the blob cache, materialized toolchains and work directories live.
    pub cache_dir: std::path::PathBuf,
    /// Bytes of blobs (inputs, pack files) kept in the local cache (default 2 GiB).
    pub cache_bytes: u64,
    /// Materialized toolchains kept (default 4).
    pub keep_toolchains: usize,
    /// The longest an action may run, whatever timeout its client asks for (default 600 s).
    pub max_action: Duration,
}

impl WorkerOptions {
    /// The default of [`Self::cache_bytes`], in MiB.
    pub const DEFAULT_CACHE_MB: u64 = 2_048;
    /// The default of [`Self::keep_toolchains`].
    pub const DEFAULT_KEEP_TOOLCHAINS: usize = 4;
    /// The default of [`Self::max_action`], in seconds.
    pub const DEFAULT_MAX_ACTION_SECS: u64 = 600;

    /// The host's name.
    pub fn default_name() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".into())
    }

    /// The host's memory (MemTotal), 0 when unknown.
    pub fn default_memory() -> u64 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(0)
    }

    /// What the local cache keeps.
    pub fn cache_limits(&self) -> CacheLimits {
        CacheLimits { blob_bytes: self.cache_bytes, toolchains: self.keep_toolchains }
    }
}

/// Why a session with the scheduler ended.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The async runtime or the worker's directory could not be set up.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Connecting or opening the registration stream failed.
    #[error(transparent)]
    Connect(#[from] ClientError),
    /// A frame on the registration stream failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The scheduler answered the registration with something else.
    #[error("unexpected answer to the registration: {0}")]
    Unexpected(String),
    /// The scheduler closed the assignment stream.
    #[error("the scheduler closed the assignment stream")]
    Closed,
    /// The scheduler refused the registration (token, names, slots): retrying will not help.
    #[error("registration refused: {0}")]
    Refused(RemoteError),
}

/// Serves until the process is stopped; returns only when the scheduler refuses the registration.
pub fn run(options: &WorkerOptions) -> Result<(), WorkerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| WorkerError::Setup { what: "starting the runtime", source })?;
    let cache = std::sync::Arc::new(
        // Absolute: the sandbox mounts toolchains from under it, and bwrap wants absolute sources.
        std::path::absolute(&options.cache_dir)
            .and_then(|dir| WorkerCache::new(dir, options.cache_limits()))
            .map_err(|source| WorkerError::Setup { what: "opening the worker cache", source })?,
    );
    runtime.block_on(async {
        let mut backoff = Backoff::new();
        loop {
            let ended = session(options, &cache, &mut backoff).await;
            let wait = backoff.next_wait();
            match ended {
                Err(WorkerError::Refused(why)) => return Err(WorkerError::Refused(why)),
                Err(e) => tracing::warn!(error = %e, retry_in = ?wait, "scheduler session ended"),
                Ok(()) => {}
            }
            tokio::time::sleep(wait).await;
        }
    })
}

/// One connection: register, then heartbeat and run assigned actions until something fails.
async fn session(
    options: &WorkerOptions,
    cache: &std::sync::Arc<WorkerCache>,
    backoff: &mut Backoff,
) -> Result<(), WorkerError> {
    let client = std::sync::Arc::new(Client::connect(options.scheduler, &options.trust, &options.token).await?);
    let (mut send, mut recv) = client.open_raw().await?;
    let register = Request::RegisterWorker {
        name: options.name.clone(),
        pool: options.pool.clone(),
        slots: options.slots,
        memory_bytes: options.memory_bytes,
    };
    write_frame(&mut send, &register).await?;
    let (id, every) = match read_frame::<Response>(&mut recv).await? {
        Response::Registered { id, heartbeat_ms } => (id, Duration::from_millis(heartbeat_ms.max(10))),
        Response::Refused(e) => return Err(WorkerError::Refused(e)),
        other => return Err(WorkerError::Unexpected(format!("{other:?}"))),
    };
    tracing::info!(id, pool = %options.pool, slots = options.slots, "registered with the scheduler");
    backoff.reset();
    // Assignments are read by their own task; results and heartbeats are written here, one writer.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<WorkerMessage>();
    let running: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<rcc_proto::Digest, (tokio::task::AbortHandle, CancelFlag)>>,
    > = Default::default();
    let faults = Faults::from_env();
    let max_action = options.max_action;
    let reader = {
        let (client, cache, running) = (client.clone(), cache.clone(), running.clone());
        tokio::spawn(async move {
            loop {
                match read_frame::<SchedulerMessage>(&mut recv).await {
                    Ok(SchedulerMessage::Run { action }) => {
                        let digest = action.digest();
                        let (client, cache, done_tx, running2) =
                            (client.clone(), cache.clone(), done_tx.clone(), running.clone());
                        let cancel = CancelFlag::default();
                        let cancel2 = cancel.clone();
                        let task = tokio::spawn(async move {
                            tracing::info!(action = %&digest.to_hex()[..16], program = %action.program, args = ?action.args, "running an action");
                            let ran = std::time::Instant::now();
                            let executed = execute(&client, &cache, &action, max_action, &cancel2, faults).await;
                            tracing::info!(
                                action = %&digest.to_hex()[..16],
                                millis = ran.elapsed().as_millis() as u64,
                                ok = executed.is_ok(),
                                "action ended"
                            );
                            let (result, error) = match executed {
                                Ok(result) => (Some(result), None),
                                Err(e) => {
                                    tracing::warn!(action = %&digest.to_hex()[..16], error = %e, "action could not run");
                                    (None, Some(e.to_string()))
                                }
                            };
                            running2.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest);
                            let _ = done_tx.send(WorkerMessage::Done { action: digest, result, error });
                        });
                        running.lock().unwrap_or_else(|e| e.into_inner()).insert(digest, (task.abort_handle(), cancel));
                    }
                    Ok(SchedulerMessage::Cancel { action }) => {
                        if let Some((task, cancel)) = running.lock().unwrap_or_else(|e| e.into_inner()).remove(&action)
                        {
                            tracing::info!(action = %&action.to_hex()[..16], "cancelled: its sandbox is killed");
                            cancel.cancel();
                            task.abort();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "assignment stream ended");
                        return;
                    }
                }
            }
        })
    };
    let (mut sent_toolchains, mut sent_inputs): (Option<Vec<Digest>>, Option<Vec<Digest>>) = (None, None);
    let mut beat = tokio::time::interval(every);
    let result = loop {
        tokio::select! {
            _ = beat.tick() => {
                // Slots busy with the scheduler's own assignments are counted by the scheduler.
                // Holdings only when they changed since the last heartbeat of this session.
                let holdings = cache.holdings();
                let heartbeat = WorkerMessage::Heartbeat {
                    external_load: 0,
                    toolchains: changed(&holdings.0, &sent_toolchains),
                    inputs: changed(&holdings.1, &sent_inputs),
                };
                (sent_toolchains, sent_inputs) = (Some(holdings.0), Some(holdings.1));
                if let Err(e) = write_frame(&mut send, &heartbeat).await {
                    break Err(e.into());
                }
            }
            Some(done) = done_rx.recv() => {
                if let Err(e) = write_frame(&mut send, &done).await {
                    break Err(e.into());
                }
            }
        }
        if reader.is_finished() {
            break Err(WorkerError::Closed);
        }
    };
    reader.abort();
    for (_, (task, cancel)) in running.lock().unwrap_or_else(|e| e.into_inner()).drain() {
        cancel.cancel();
        task.abort();
    }
    result
}

/// What a heartbeat says of a holdings list: the list when it differs from what was last sent, else `None`.
fn changed(now: &[Digest], sent: &Option<Vec<Digest>>) -> Option<Vec<Digest>> {
    (sent.as_deref() != Some(now)).then(|| now.to_vec())
}

#[cfg(test)]
mod holdings_tests {
    use super::*;

    #[test]
    fn holdings_are_sent_when_they_change_only() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        assert_eq!(changed(&[a], &None), Some(vec![a]), "the first heartbeat of a session says all");
        assert_eq!(changed(&[a], &Some(vec![a])), None);
        assert_eq!(changed(&[b, a], &Some(vec![a])), Some(vec![b, a]));
        assert_eq!(changed(&[], &Some(vec![a])), Some(vec![]), "an emptied list is news too");
    }
}
