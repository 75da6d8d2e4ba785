//! The QUIC service: one connection per client, one request per bidirectional stream, authentication by
//! the connection's first `Hello`. Storage calls run on the blocking pool.

use crate::pool::Pool;
use crate::storage::{Storage, StorageError, Update};
use crate::tokens::{Grant, TokenStore};
use rcc_link::wire::{
    forward_compressed_body, read_frame, read_frame_within, write_compressed_body, write_frame, WireError,
};
use rcc_proto::remote::{
    valid_namespace, RemoteError, Request, Response, Scope, WorkerMessage, MAX_FIND_MISSING, MAX_MANIFEST_ENTRIES,
    MAX_NAME, MAX_OUTPUTS,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::Instrument;

/// The largest request frame a connection may send before it has authenticated (a `Hello` with its token
/// takes about a hundred bytes).
pub const PRE_AUTH_FRAME: u32 = 4 << 10;
/// How long a connection may take to authenticate before it is closed.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Blob uploads decompressed at once (each holds a zstd window of at most 4 MiB); more wait their turn.
pub const UPLOADS: usize = 16;

/// The service's budgets.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// The largest blob accepted, in uncompressed bytes (at most [`rcc_proto::remote::MAX_BLOB`]).
    pub max_blob: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_connections: 1024, max_blob: rcc_proto::remote::MAX_BLOB }
    }
}

/// What every connection handler shares.
#[derive(Clone)]
pub struct Service {
    /// The shared cache.
    pub storage: Arc<dyn Storage>,
    /// Known tokens.
    pub tokens: Arc<TokenStore>,
    /// The remote build pool: registered workers and the dispatch core.
    pub pool: Arc<Pool>,
    /// Budgets.
    pub limits: Limits,
    /// Uploads being decompressed (at most [`UPLOADS`]).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// What the action cache's write rules decided, for `status`.
    pub decisions: Arc<Decisions>,
}

/// Counts of what became of action-result writes.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Different results for a key already held: kept out (first writer wins).
    pub kept: AtomicU64,
    /// Results replaced by an admin.
    pub replaced: AtomicU64,
    /// Results dropped by `invalidate`.
    pub invalidated: AtomicU64,
}

impl Service {
    /// A service over these parts, within `limits`.
    pub fn new(storage: Arc<dyn Storage>, tokens: Arc<TokenStore>, pool: Arc<Pool>, limits: Limits) -> Service {
        Service {
            storage,
            tokens,
            pool,
            limits,
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOADS)),
            decisions: Arc::default(),
        }
    }
}

/// Accepts connections until the endpoint closes.
pub async fn serve(endpoint: quinn::Endpoint, service: Service) {
    let pool = service.pool.clone();
    tokio::spawn(async move {
        // Lost workers are noticed within a fraction of the heartbeat interval.
        let period = (pool.heartbeat_interval() / 4).max(std::time::Duration::from_millis(50));
        loop {
            tokio::time::sleep(period).await;
            pool.tick();
        }
    });
    let connections = Arc::new(tokio::sync::Semaphore::new(service.limits.max_connections));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(peer = %incoming.remote_address(), "connection refused: at the connection limit");
            incoming.refuse();
            continue;
        };
        let service = service.clone();
        let span = tracing::info_span!("connection", peer = %incoming.remote_address());
        tokio::spawn(
            async move {
                match incoming.await {
                    Ok(conn) => connection(conn, service).await,
                    Err(e) => tracing::debug!(error = %e, "handshake failed"),
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// What a connection's `Hello` established: the token (by hash) and its grant.
struct Auth {
    token: rcc_proto::Digest,
    grant: Grant,
}

type Session = RwLock<Option<Auth>>;

/// How often a connection's watchdog checks that its token is still valid.
const TOKEN_CHECK: Duration = Duration::from_millis(250);

async fn connection(conn: quinn::Connection, service: Service) {
    let session: Arc<Session> = Arc::new(RwLock::new(None));
    let watchdog = tokio::spawn(watchdog(conn.clone(), session.clone(), service.tokens.clone()).in_current_span());
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                tracing::debug!(error = %e, "connection closed");
                break;
            }
        };
        let (service, session, conn) = (service.clone(), session.clone(), conn.clone());
        tokio::spawn(
            async move {
                if let Err(e) = stream(send, recv, &service, &session, &conn).await {
                    tracing::debug!(error = %e, "stream failed");
                }
            }
            .in_current_span(),
        );
    }
    watchdog.abort();
}

/// Closes a connection that does not authenticate within [`AUTH_TIMEOUT`], and one whose token is revoked
/// or expires, within [`TOKEN_CHECK`] of it.
async fn watchdog(conn: quinn::Connection, session: Arc<Session>, tokens: Arc<TokenStore>) {
    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(TOKEN_CHECK).await;
        let token = session.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|a| a.token);
        match token {
            None if started.elapsed() >= AUTH_TIMEOUT => {
                tracing::debug!("closing a connection that did not authenticate");
                conn.close(quinn::VarInt::from_u32(1), b"not authenticated");
                return;
            }
            Some(token) if tokens.scopes_of(&token).is_none() => {
                tracing::info!("token revoked or expired: connection closed");
                conn.close(quinn::VarInt::from_u32(2), b"token revoked or expired");
                return;
            }
            None | Some(_) => {}
        }
    }
}

/// The pool's status with the storage's figures added (`storage.stored_bytes`, `storage.blobs`).
fn status_json(service: &Service) -> String {
    let pool = service.pool.status_json();
    let Ok(mut status) = serde_json::from_str::<serde_json::Value>(&pool) else { return pool };
    if let Some(object) = status.as_object_mut() {
        object.insert("storage".into(), serde_json::json!(service.storage.usage()));
        let d = &service.decisions;
        object.insert(
            "action_cache".into(),
            serde_json::json!({
                "kept_first_writer": d.kept.load(Ordering::Relaxed),
                "replaced_by_admin": d.replaced.load(Ordering::Relaxed),
                "invalidated": d.invalidated.load(Ordering::Relaxed),
            }),
        );
    }
    serde_json::to_string_pretty(&status).unwrap_or(pool)
}

fn refuse(error: RemoteError) -> Response {
    Response::Refused(error)
}

fn storage_refusal(e: StorageError) -> RemoteError {
    match e {
        StorageError::DigestMismatch(_) => RemoteError::DigestMismatch,
        StorageError::MissingBlobs(m) => RemoteError::MissingBlobs(m),
        other => RemoteError::Internal(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, RemoteError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RemoteError::Internal(e.to_string()))
}

async fn stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    service: &Service,
    session: &Session,
    conn: &quinn::Connection,
) -> Result<(), WireError> {
    let authenticated = session.read().unwrap_or_else(|e| e.into_inner()).is_some();
    let read =
        if authenticated { read_frame(&mut recv).await } else { read_frame_within(&mut recv, PRE_AUTH_FRAME).await };
    let request: Request = match read {
        Ok(r) => r,
        Err(WireError::Frame(e)) => {
            write_frame(&mut send, &refuse(RemoteError::Malformed(e.to_string()))).await?;
            return send.finish().map_err(|e| WireError::Stream(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    // The grant of this connection, when it holds `needed`.
    let allowed = |needed: Scope| -> Result<Grant, RemoteError> {
        match session.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            None => Err(RemoteError::Unauthenticated),
            Some(auth) if auth.grant.scopes.contains(&needed) => Ok(auth.grant.clone()),
            Some(_) => Err(RemoteError::Forbidden(needed)),
        }
    };
    if let Request::RegisterWorker { name, pool, slots, memory_bytes } = request {
        let registered = allowed(Scope::Worker).and_then(|_| {
            if name.len() > MAX_NAME || pool.len() > MAX_NAME {
                return Err(RemoteError::TooLarge(format!("names of at most {MAX_NAME} bytes")));
            }
            service
                .pool
                .register(name.clone(), pool.clone(), slots, memory_bytes)
                .map_err(|e| RemoteError::Malformed(e.to_string()))
        });
        return match registered {
            Err(e) => {
                write_frame(&mut send, &refuse(e)).await?;
                send.finish().map_err(|e| WireError::Stream(e.to_string()))
            }
            Ok((id, assignments)) => {
                tracing::info!(worker = id.0, %name, %pool, slots, "worker registered");
                let heartbeat_ms = service.pool.heartbeat_interval().as_millis() as u64;
                write_frame(&mut send, &Response::Registered { id: id.0, heartbeat_ms }).await?;
                worker_session(id, send, recv, assignments, service).await;
                Ok(())
            }
        };
    }
    let storage = service.storage.clone();
    let response = match request {
        Request::Hello { token } => match service.tokens.grant(&token) {
            Some(grant) => {
                let scopes = grant.scopes.clone();
                tracing::debug!(label = %grant.label, namespace = %grant.namespace, "authenticated");
                let auth = Auth { token: TokenStore::hash(&token), grant };
                *session.write().unwrap_or_else(|e| e.into_inner()) = Some(auth);
                rcc_link::endpoint::open_budget(conn);
                Response::Welcome { scopes }
            }
            None => refuse(RemoteError::Unauthenticated),
        },
        Request::FindMissing { digests } => match allowed(Scope::Read) {
            Err(e) => refuse(e),
            Ok(_) if digests.len() > MAX_FIND_MISSING => {
                refuse(RemoteError::TooLarge(format!("at most {MAX_FIND_MISSING} digests per request")))
            }
            Ok(_) => match blocking(move || storage.find_missing(&digests)).await {
                Ok(Ok(digests)) => Response::Missing { digests },
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::PutBlob { digest, size } => match allowed(Scope::Write) {
            Err(e) => refuse(e),
            Ok(_) if size > service.limits.max_blob => {
                refuse(RemoteError::TooLarge(format!("blobs of at most {} bytes", service.limits.max_blob)))
            }
            Ok(_) => upload(&mut recv, digest, size, service).await,
        },
        Request::GetBlob { digest } => match allowed(Scope::Read) {
            Err(e) => refuse(e),
            Ok(_) => match blocking(move || storage.get_compressed(&digest)).await {
                Ok(Ok(Some((size, body)))) => {
                    write_frame(&mut send, &Response::Blob { size }).await?;
                    return write_compressed_body(&mut send, &body).await;
                }
                Ok(Ok(None)) => Response::NotFound,
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::GetActionResult { key } => match allowed(Scope::Read) {
            Err(e) => refuse(e),
            // The token's namespaces in order, its own first: the first holding the key answers.
            Ok(grant) => match blocking(move || -> Result<_, StorageError> {
                for namespace in &grant.reads {
                    if let Some(result) = storage.get_action_result(namespace, &key)? {
                        return Ok(Some(result));
                    }
                }
                Ok(None)
            })
            .await
            {
                Ok(Ok(Some(result))) => Response::ActionResult(result),
                Ok(Ok(None)) => Response::NotFound,
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::GetManifest { key } => match allowed(Scope::Read) {
            Err(e) => refuse(e),
            Ok(grant) => match blocking(move || -> Result<_, StorageError> {
                let mut entries = Vec::new();
                for namespace in &grant.reads {
                    for entry in storage.manifest(namespace, &key)? {
                        if !entries.contains(&entry) {
                            entries.push(entry);
                        }
                    }
                }
                entries.truncate(4 * MAX_MANIFEST_ENTRIES);
                Ok(entries)
            })
            .await
            {
                Ok(Ok(entries)) => Response::Manifest { entries },
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::AddManifestEntry { key, entry } => match allowed(Scope::Write) {
            Err(e) => refuse(e),
            Ok(grant) => {
                match blocking(move || storage.add_manifest_entry(&grant.namespace, &key, &entry, &grant.label)).await {
                    Ok(Ok(())) => Response::Stored,
                    Ok(Err(e)) => refuse(storage_refusal(e)),
                    Err(e) => refuse(e),
                }
            }
        },
        Request::Status => match allowed(Scope::Admin) {
            Err(e) => refuse(e),
            Ok(_) => Response::Status { json: status_json(service) },
        },
        Request::Invalidate { filter } => match allowed(Scope::Admin) {
            Err(e) => refuse(e),
            Ok(_) if filter.is_empty() => {
                refuse(RemoteError::Malformed("an invalidation must name a key, uploader, namespace or time".into()))
            }
            Ok(grant) => match blocking(move || storage.invalidate(&filter).map(|d| (d, filter))).await {
                Ok(Ok((dropped, filter))) => {
                    tracing::warn!(by = %grant.label, ?filter, results = dropped.results,
                        manifest_entries = dropped.manifest_entries, "shared cache entries invalidated");
                    service.decisions.invalidated.fetch_add(dropped.results, Ordering::Relaxed);
                    Response::Invalidated { results: dropped.results, manifest_entries: dropped.manifest_entries }
                }
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::RegisterWorker { .. } => refuse(RemoteError::Internal("handled above".into())),
        Request::Execute { action } => match allowed(Scope::Execute) {
            Err(e) => refuse(e),
            Ok(_) => match service.pool.reuse(&action, &*service.storage) {
                Some(result) => Response::Executed { result },
                // A requester that goes away (its stream stopped, its connection lost) withdraws: dropping
                // the wait tells the pool, which cancels the action on its worker when nobody else waits.
                None => tokio::select! {
                    executed = service.pool.execute(action) => match executed {
                        Ok(result) => Response::Executed { result },
                        Err(e) => refuse(e),
                    },
                    _ = send.stopped() => {
                        tracing::info!("requester gone: its action withdrawn");
                        return Ok(());
                    }
                },
            },
        },
        Request::UpdateActionResult { key, result } => match allowed(Scope::Write) {
            Err(e) => refuse(e),
            Ok(_) if result.outputs.len() > MAX_OUTPUTS => {
                refuse(RemoteError::TooLarge(format!("at most {MAX_OUTPUTS} outputs")))
            }
            Ok(grant) => {
                let namespace = grant.namespace.clone();
                let label = grant.label.clone();
                match blocking(move || storage.update_action_result(&namespace, &key, &result, &label, false)).await {
                    Ok(Ok(Update::Stored | Update::Same)) => Response::Stored,
                    Ok(Ok(Update::Kept)) => {
                        tracing::info!(key = %key, uploader = %grant.label, namespace = %grant.namespace,
                            "a different result for a key already stored: the first writer's is kept");
                        service.decisions.kept.fetch_add(1, Ordering::Relaxed);
                        Response::Kept
                    }
                    Ok(Err(e)) => refuse(storage_refusal(e)),
                    Err(e) => refuse(e),
                }
            }
        },
        Request::ReplaceActionResult { namespace, key, result } => match allowed(Scope::Admin) {
            Err(e) => refuse(e),
            Ok(_) if result.outputs.len() > MAX_OUTPUTS => {
                refuse(RemoteError::TooLarge(format!("at most {MAX_OUTPUTS} outputs")))
            }
            Ok(_) if namespace.as_deref().is_some_and(|n| !valid_namespace(n)) => {
                refuse(RemoteError::Malformed("namespace name".into()))
            }
            Ok(grant) => {
                let namespace = namespace.unwrap_or_else(|| grant.namespace.clone());
                let label = grant.label.clone();
                match blocking(move || storage.update_action_result(&namespace, &key, &result, &label, true)).await {
                    Ok(Ok(_)) => {
                        tracing::warn!(key = %key, by = %grant.label, "action result replaced by an admin");
                        service.decisions.replaced.fetch_add(1, Ordering::Relaxed);
                        Response::Stored
                    }
                    Ok(Err(e)) => refuse(storage_refusal(e)),
                    Err(e) => refuse(e),
                }
            }
        },
    };
    write_frame(&mut send, &response).await?;
    send.finish().map_err(|e| WireError::Stream(e.to_string()))
}

/// Receives a blob body and stores it, decompressed and checked as it streams in (one of at most
/// [`UPLOADS`] at once): never more than a few chunks and one zstd window are held.
async fn upload(recv: &mut quinn::RecvStream, digest: rcc_proto::Digest, size: u64, service: &Service) -> Response {
    let Ok(_turn) = service.uploads.acquire().await else {
        return refuse(RemoteError::Internal("shutting down".into()));
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let storage = service.storage.clone();
    let stored = tokio::task::spawn_blocking(move || {
        storage.put_stream(&digest, size, &mut std::iter::from_fn(|| rx.blocking_recv()))
    });
    let received = forward_compressed_body(recv, size, &tx).await;
    drop(tx);
    let stored = stored.await;
    match (received, stored) {
        (_, Err(e)) => refuse(RemoteError::Internal(e.to_string())),
        (Err(e), _) => refuse(RemoteError::Malformed(e.to_string())),
        (Ok(()), Ok(Ok(()))) => Response::Stored,
        (Ok(()), Ok(Err(e))) => refuse(storage_refusal(e)),
    }
}

/// A registered worker's stream: assignments go out from the pool's channel (a writer task owns the send
/// side), heartbeats and results come in, until the stream ends (the worker stopped, crashed or lost its
/// connection; the dispatch core requeues its actions when its heartbeats are overdue).
async fn worker_session(
    id: rcc_dispatch::WorkerId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut assignments: tokio::sync::mpsc::UnboundedReceiver<rcc_proto::remote::SchedulerMessage>,
    service: &Service,
) {
    let writer = tokio::spawn(async move {
        while let Some(message) = assignments.recv().await {
            if let Err(e) = write_frame(&mut send, &message).await {
                tracing::debug!(worker = id.0, error = %e, "writing to a worker failed");
                return;
            }
        }
    });
    loop {
        match read_frame::<WorkerMessage>(&mut recv).await {
            Ok(WorkerMessage::Heartbeat { external_load, toolchains, inputs }) => {
                if let Err(e) = service.pool.heartbeat(id, external_load, toolchains, inputs) {
                    tracing::debug!(worker = id.0, error = %e, "heartbeat refused");
                }
            }
            Ok(WorkerMessage::Done { action, result, error }) => {
                let (pool, storage) = (service.pool.clone(), service.storage.clone());
                let _ = blocking(move || pool.finished(id, action, result, error, storage.as_ref())).await;
            }
            Err(e) => {
                tracing::info!(worker = id.0, error = %e, "worker stream ended");
                break;
            }
        }
    }
    service.pool.disconnected(id);
    writer.abort();
}
