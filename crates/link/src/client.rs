//! A client of the scheduler: one QUIC connection, authenticated once, one stream per request.

use crate::tls::Trust;
use crate::wire::{read_body, read_frame, write_body, write_frame, WireError};
use rcc_proto::remote::{ActionResult, Invalidation, RemoteError, Request, Response, Scope, MAX_MANIFEST_ENTRIES};
use rcc_proto::Digest;
use std::net::SocketAddr;

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or the TLS handshake failed (unreachable scheduler, untrusted certificate, …).
    #[error("connecting to the scheduler at {addr}: {message}")]
    Connect {
        /// The scheduler's address.
        addr: SocketAddr,
        /// What failed.
        message: String,
    },
    /// The scheduler refused the request.
    #[error("the scheduler refused: {0}")]
    Refused(#[from] RemoteError),
    /// The stream or its content failed.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The scheduler answered something this request does not expect.
    #[error("unexpected answer from the scheduler: {0}")]
    Unexpected(String),
    /// A blob from the scheduler did not have the requested digest.
    #[error("blob {0} from the scheduler failed its digest check")]
    Corrupt(Digest),
}

/// What became of a recorded action result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored (or the same result was already).
    Stored,
    /// Another result was stored first and is kept (first writer wins); this one was dropped.
    Kept,
}

/// An authenticated connection to the scheduler.
pub struct Client {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    /// What the token allows.
    pub scopes: Vec<Scope>,
}

impl Client {
    /// The local address the connection is made from (what the scheduler sees as the peer).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self._endpoint.local_addr().ok()
    }

    /// Connects, verifies the scheduler by `trust`, and authenticates with `token`.
    pub async fn connect(addr: SocketAddr, trust: &Trust, token: &str) -> Result<Client, ClientError> {
        let fail = |message: String| ClientError::Connect { addr, message };
        let endpoint = crate::endpoint::client(addr, trust).map_err(|e| fail(e.to_string()))?;
        let conn = endpoint
            .connect(addr, "rcc-scheduler")
            .map_err(|e| fail(e.to_string()))?
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut client = Client { _endpoint: endpoint, conn, scopes: Vec::new() };
        match client.call(&Request::Hello { token: token.to_owned() }).await? {
            Response::Welcome { scopes } => client.scopes = scopes,
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        }
        Ok(client)
    }

    /// A raw request stream, for tests and tools that speak the protocol themselves.
    pub async fn open_raw(&self) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        self.open().await
    }

    async fn open(&self) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        self.conn.open_bi().await.map_err(|e| ClientError::Wire(WireError::Stream(e.to_string())))
    }

    /// Sends a request with no body and reads the response frame.
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let (mut send, mut recv) = self.open().await?;
        write_frame(&mut send, request).await?;
        send.finish().map_err(|e| ClientError::Wire(WireError::Stream(e.to_string())))?;
        match read_frame(&mut recv).await? {
            Response::Refused(e) => Err(ClientError::Refused(e)),
            other => Ok(other),
        }
    }

    /// The digests the scheduler lacks.
    pub async fn find_missing(&self, digests: Vec<Digest>) -> Result<Vec<Digest>, ClientError> {
        match self.call(&Request::FindMissing { digests }).await? {
            Response::Missing { digests } => Ok(digests),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Uploads a blob under the digest given (the scheduler checks it).
    pub async fn put_blob_as(&self, digest: Digest, data: &[u8]) -> Result<(), ClientError> {
        let (mut send, mut recv) = self.open().await?;
        write_frame(&mut send, &Request::PutBlob { digest, size: data.len() as u64 }).await?;
        let sent = write_body(&mut send, data).await;
        // A refused upload (too large, no write scope) is answered before the body is read: its answer
        // says why the body could not be sent.
        let answer = read_frame(&mut recv).await;
        if let (Err(e), Err(_)) = (&sent, &answer) {
            return Err(ClientError::Wire(WireError::Stream(e.to_string())));
        }
        match answer? {
            Response::Stored => Ok(()),
            Response::Refused(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Uploads a blob; returns its digest.
    pub async fn put_blob(&self, data: &[u8]) -> Result<Digest, ClientError> {
        let digest = Digest::of(data);
        self.put_blob_as(digest, data).await.map(|()| digest)
    }

    /// Downloads a blob, checked against its digest.
    pub async fn get_blob(&self, digest: Digest) -> Result<Option<Vec<u8>>, ClientError> {
        self.get_blob_within(digest, rcc_proto::remote::MAX_BLOB).await
    }

    /// Downloads a blob of at most `max` bytes, checked against its digest; a larger one is refused before
    /// its body is read (what the caller expects bounds what the scheduler may make it hold).
    pub async fn get_blob_within(&self, digest: Digest, max: u64) -> Result<Option<Vec<u8>>, ClientError> {
        let (mut send, mut recv) = self.open().await?;
        write_frame(&mut send, &Request::GetBlob { digest }).await?;
        send.finish().map_err(|e| ClientError::Wire(WireError::Stream(e.to_string())))?;
        match read_frame(&mut recv).await? {
            Response::Blob { size } if size > max => {
                Err(ClientError::Wire(WireError::Body(format!("{size} bytes where at most {max} were expected"))))
            }
            Response::Blob { size } => {
                let data = read_body(&mut recv, size).await?;
                if Digest::of(&data) != digest {
                    return Err(ClientError::Corrupt(digest));
                }
                Ok(Some(data))
            }
            Response::NotFound => Ok(None),
            Response::Refused(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// An action result, if the scheduler has one whose blobs are all present.
    pub async fn get_action_result(&self, key: Digest) -> Result<Option<ActionResult>, ClientError> {
        match self.call(&Request::GetActionResult { key }).await? {
            Response::ActionResult(r) => Ok(Some(r)),
            Response::NotFound => Ok(None),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Records an action result (every blob it names must be uploaded first): whether it was stored, or
    /// the first writer's different result was kept.
    pub async fn update_action_result(&self, key: Digest, result: ActionResult) -> Result<Recorded, ClientError> {
        match self.call(&Request::UpdateActionResult { key, result }).await? {
            Response::Stored => Ok(Recorded::Stored),
            Response::Kept => Ok(Recorded::Kept),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Replaces an action result whatever is stored (needs the `admin` scope).
    pub async fn replace_action_result(
        &self,
        namespace: Option<String>,
        key: Digest,
        result: ActionResult,
    ) -> Result<(), ClientError> {
        match self.call(&Request::ReplaceActionResult { namespace, key, result }).await? {
            Response::Stored => Ok(()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Adds an uploaded blob to the manifest list under `key`.
    pub async fn add_manifest_entry(&self, key: Digest, entry: Digest) -> Result<(), ClientError> {
        match self.call(&Request::AddManifestEntry { key, entry }).await? {
            Response::Stored => Ok(()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The entry blobs listed under `key` in the namespaces the token reads, newest first (at most
    /// [`MAX_MANIFEST_ENTRIES`] per namespace; a longer answer is cut).
    pub async fn get_manifest(&self, key: Digest) -> Result<Vec<Digest>, ClientError> {
        match self.call(&Request::GetManifest { key }).await? {
            Response::Manifest { mut entries } => {
                entries.truncate(4 * MAX_MANIFEST_ENTRIES);
                Ok(entries)
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Drops the shared-cache entries matching `filter` (needs the `admin` scope): (results, manifest
    /// entries) dropped.
    pub async fn invalidate(&self, filter: Invalidation) -> Result<(u64, u64), ClientError> {
        match self.call(&Request::Invalidate { filter }).await? {
            Response::Invalidated { results, manifest_entries } => Ok((results, manifest_entries)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Runs an action on the pool and waits for its result (needs the `execute` scope); refused at once
    /// with `NoWorkers` when its pool has no active worker.
    pub async fn execute(&self, action: rcc_proto::remote::RemoteAction) -> Result<ActionResult, ClientError> {
        match self.call(&Request::Execute { action }).await? {
            Response::Executed { result } => Ok(result),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The pool's state as JSON (needs the `admin` scope).
    pub async fn status(&self) -> Result<String, ClientError> {
        match self.call(&Request::Status).await? {
            Response::Status { json } => Ok(json),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}
