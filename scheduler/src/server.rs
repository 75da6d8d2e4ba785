//! The QUIC service: one connection per client, one request per bidirectional stream, authentication by
//! the connection's first `Hello`. Storage calls run on the blocking pool.

use crate::pool::Pool;
use crate::storage::{Storage, StorageError};
use crate::tokens::TokenStore;
use rcc_link::wire::{read_compressed_body, read_frame, write_compressed_body, write_frame, WireError};
use rcc_proto::remote::{
    RemoteError, Request, Response, Scope, WorkerMessage, MAX_FIND_MISSING, MAX_NAME, MAX_OUTPUTS,
};
use std::sync::{Arc, RwLock};

/// What every connection handler shares.
#[derive(Clone)]
pub struct Service {
    /// The shared cache.
    pub storage: Arc<dyn Storage>,
    /// Known tokens.
    pub tokens: Arc<TokenStore>,
    /// The remote build pool: registered workers and the dispatch core.
    pub pool: Arc<Pool>,
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
    while let Some(incoming) = endpoint.accept().await {
        let service = service.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => connection(conn, service).await,
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
    }
}

async fn connection(conn: quinn::Connection, service: Service) {
    let peer = conn.remote_address();
    let span = tracing::debug_span!("connection", %peer);
    let _guard = span.enter();
    let scopes: Arc<RwLock<Option<Vec<Scope>>>> = Arc::new(RwLock::new(None));
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                tracing::debug!(error = %e, "connection closed");
                return;
            }
        };
        let (service, scopes) = (service.clone(), scopes.clone());
        tokio::spawn(async move {
            if let Err(e) = stream(send, recv, &service, &scopes).await {
                tracing::debug!(error = %e, "stream failed");
            }
        });
    }
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
    scopes: &RwLock<Option<Vec<Scope>>>,
) -> Result<(), WireError> {
    let request: Request = match read_frame(&mut recv).await {
        Ok(r) => r,
        Err(WireError::Frame(e)) => {
            write_frame(&mut send, &refuse(RemoteError::Malformed(e.to_string()))).await?;
            return send.finish().map_err(|e| WireError::Stream(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    let allowed = |needed: Scope| -> Result<(), RemoteError> {
        match scopes.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            None => Err(RemoteError::Unauthenticated),
            Some(have) if have.contains(&needed) => Ok(()),
            Some(_) => Err(RemoteError::Forbidden(needed)),
        }
    };
    if let Request::RegisterWorker { name, pool, slots, memory_bytes } = request {
        let registered = allowed(Scope::Worker).and_then(|()| {
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
        Request::Hello { token } => match service.tokens.scopes(&token) {
            Some(granted) => {
                *scopes.write().unwrap_or_else(|e| e.into_inner()) = Some(granted.clone());
                Response::Welcome { scopes: granted }
            }
            None => refuse(RemoteError::Unauthenticated),
        },
        Request::FindMissing { digests } => match allowed(Scope::Read) {
            Err(e) => refuse(e),
            Ok(()) if digests.len() > MAX_FIND_MISSING => {
                refuse(RemoteError::TooLarge(format!("at most {MAX_FIND_MISSING} digests per request")))
            }
            Ok(()) => match blocking(move || storage.find_missing(&digests)).await {
                Ok(Ok(digests)) => Response::Missing { digests },
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::PutBlob { digest, size } => match allowed(Scope::Write) {
            Err(e) => refuse(e),
            Ok(()) => match read_compressed_body(&mut recv, size).await {
                Err(e) => refuse(RemoteError::Malformed(e.to_string())),
                Ok(body) => match blocking(move || storage.put_compressed(&digest, size, &body)).await {
                    Ok(Ok(())) => Response::Stored,
                    Ok(Err(e)) => refuse(storage_refusal(e)),
                    Err(e) => refuse(e),
                },
            },
        },
        Request::GetBlob { digest } => match allowed(Scope::Read) {
            Err(e) => refuse(e),
            Ok(()) => match blocking(move || storage.get_compressed(&digest)).await {
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
            Ok(()) => match blocking(move || storage.get_action_result(&key)).await {
                Ok(Ok(Some(result))) => Response::ActionResult(result),
                Ok(Ok(None)) => Response::NotFound,
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
        Request::Status => match allowed(Scope::Admin) {
            Err(e) => refuse(e),
            Ok(()) => Response::Status { json: service.pool.status_json() },
        },
        Request::RegisterWorker { .. } => refuse(RemoteError::Internal("handled above".into())),
        Request::Execute { action } => match allowed(Scope::Execute) {
            Err(e) => refuse(e),
            Ok(()) => match service.pool.reuse(&action, &*service.storage) {
                Some(result) => Response::Executed { result },
                None => match service.pool.execute(action).await {
                    Ok(result) => Response::Executed { result },
                    Err(e) => refuse(e),
                },
            },
        },
        Request::UpdateActionResult { key, result } => match allowed(Scope::Write) {
            Err(e) => refuse(e),
            Ok(()) if result.outputs.len() > MAX_OUTPUTS => {
                refuse(RemoteError::TooLarge(format!("at most {MAX_OUTPUTS} outputs")))
            }
            Ok(()) => match blocking(move || storage.update_action_result(&key, &result)).await {
                Ok(Ok(())) => Response::Stored,
                Ok(Err(e)) => refuse(storage_refusal(e)),
                Err(e) => refuse(e),
            },
        },
    };
    write_frame(&mut send, &response).await?;
    send.finish().map_err(|e| WireError::Stream(e.to_string()))
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
