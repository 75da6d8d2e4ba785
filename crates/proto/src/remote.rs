//! The remote protocol: daemons (and later workers) and the scheduler over QUIC.
//!
//! One request per bidirectional stream, so a slow blob never blocks a lookup. Each stream carries:
//!
//! ```text
//! client → server:  REMOTE frame(Request)  [PutBlob: then the blob body]
//! server → client:  REMOTE frame(Response) [Blob:    then the blob body]
//! ```
//!
//! A body is the blob zstd-compressed, ending with the stream. The receiver decompresses with a bound of the
//! announced size (at most [`MAX_BLOB`]) and checks the SHA-256 before it stores or uses anything.
//!
//! A connection starts with a [`Request::Hello`] stream carrying the client's token; until it succeeds every
//! other request is answered [`RemoteError::Unauthenticated`]. The token's scopes decide what the
//! connection may do ([`Scope`]).

use crate::Digest;
use serde::{Deserialize, Serialize};

/// Largest blob accepted (uncompressed).
pub const MAX_BLOB: u64 = 1 << 30;
/// Most digests in one [`Request::FindMissing`].
pub const MAX_FIND_MISSING: usize = 16_384;
/// Most output files in one action result.
pub const MAX_OUTPUTS: usize = 1_024;
/// ALPN protocol name on the QUIC connection.
pub const ALPN: &[u8] = b"rcc/1";

/// The pool a worker serves and a client submits to unless told otherwise: `<os>-<arch>`, e.g.
/// `linux-x86_64`, so actions only reach workers that can run the client's compiler.
pub fn default_pool() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Read the shared cache.
    Read,
    /// Write the shared cache.
    Write,
    /// Submit actions for remote execution.
    Execute,
    /// Register as a worker.
    Worker,
    /// Administer the scheduler.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [Scope::Read, Scope::Write, Scope::Execute, Scope::Worker, Scope::Admin];

    /// The scope's name on command lines and in files.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Execute => "execute",
            Scope::Worker => "worker",
            Scope::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One output file of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// What the file is, relative to the action (e.g. `object`, `depfile`, `dwo`).
    pub name: String,
    /// Its content in CAS.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is executable.
    pub executable: bool,
}

/// The cached outcome of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// Output files, each in CAS.
    pub outputs: Vec<OutputFile>,
    /// Standard output in CAS.
    pub stdout: Option<Digest>,
    /// Standard error in CAS.
    pub stderr: Option<Digest>,
    /// Exit code.
    pub exit_code: i32,
}

impl ActionResult {
    /// Every blob the result names.
    pub fn blobs(&self) -> impl Iterator<Item = Digest> + '_ {
        self.outputs.iter().map(|o| o.digest).chain(self.stdout).chain(self.stderr)
    }
}

/// Longest worker name or pool name accepted.
pub const MAX_NAME: usize = 256;

/// Most toolchains a worker's heartbeat reports (more are ignored).
pub const MAX_HELD_TOOLCHAINS: usize = 64;
/// Most input blobs a worker's heartbeat reports (more are ignored).
pub const MAX_HELD_INPUTS: usize = 4_096;

/// What a registered worker sends on its registration stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerMessage {
    /// Still alive, and what it holds: the scheduler prefers a worker holding an action's toolchain and
    /// inputs. Each heartbeat replaces the previous holdings; lists beyond [`MAX_HELD_TOOLCHAINS`] and
    /// [`MAX_HELD_INPUTS`] are cut by the scheduler.
    Heartbeat {
        /// Slots busy with work the scheduler did not assign.
        external_load: u32,
        /// The toolchain packs it has materialized, most recently used first; `None` when unchanged since
        /// its last heartbeat (holdings are sent only when they change).
        toolchains: Option<Vec<Digest>>,
        /// Input blobs in its local cache, most recently used first; `None` when unchanged.
        inputs: Option<Vec<Digest>>,
    },
    /// An assigned action ended: its outputs are uploaded (`result`), or it could not run (`error`).
    Done {
        /// The action's digest.
        action: Digest,
        /// The result, when the action ran.
        result: Option<ActionResult>,
        /// Why it could not run.
        error: Option<String>,
    },
}

/// What the scheduler sends a registered worker on its registration stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedulerMessage {
    /// Run this action.
    Run {
        /// The action.
        action: Box<RemoteAction>,
    },
    /// Stop running this action (another copy won, or every requester left).
    Cancel {
        /// The action's digest.
        action: Digest,
    },
}

/// Most input or output files of a [`RemoteAction`].
pub const MAX_ACTION_FILES: usize = 1_024;
/// Most arguments or variables of a [`RemoteAction`].
pub const MAX_ACTION_ARGS: usize = 4_096;

/// A compile to run on a pool worker: the program of a toolchain pack, its arguments and environment, run
/// in a work directory holding the inputs; the named outputs are collected from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAction {
    /// The toolchain pack's blob (see the daemon's `pack` module).
    pub toolchain: Digest,
    /// The program to run: an absolute path inside the pack.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Input files by name in the work directory, with their blobs.
    pub inputs: Vec<(String, Digest)>,
    /// Output files by name in the work directory.
    pub outputs: Vec<String>,
    /// The pool that can run it.
    pub pool: String,
    /// What makes actions similar (for duration history and failure comparison).
    pub kind: Digest,
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: u64,
    /// Where the work directory appears and the program runs (absolute): the client's own working
    /// directory, so that debug information names the same directory as a local compile.
    pub workdir: String,
}

impl RemoteAction {
    /// The action's digest: identical actions share it and run once.
    pub fn digest(&self) -> Digest {
        Digest::of(&postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Checks an action from the network: bounded, file names plain relative names.
    pub fn validate(&self) -> Result<(), RemoteError> {
        let names = self.inputs.iter().map(|(n, _)| n).chain(&self.outputs);
        if self.inputs.len() + self.outputs.len() > MAX_ACTION_FILES
            || self.args.len() + self.env.len() > MAX_ACTION_ARGS
            || self.pool.len() > MAX_NAME
        {
            return Err(RemoteError::TooLarge("action files, arguments or pool name".into()));
        }
        for name in names {
            let plain = !name.is_empty()
                && name.len() <= MAX_NAME
                && !name.starts_with('/')
                && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
            if !plain {
                return Err(RemoteError::Malformed(format!("file name `{name}`")));
            }
        }
        if !self.program.starts_with('/') || !self.workdir.starts_with('/') || self.workdir.len() > 4096 {
            return Err(RemoteError::Malformed("the program and work directory must be absolute paths".into()));
        }
        Ok(())
    }
}

/// A request: the first frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Authenticate the connection.
    Hello {
        /// The bearer token.
        token: String,
    },
    /// Which of these blobs the server lacks.
    FindMissing {
        /// At most [`MAX_FIND_MISSING`].
        digests: Vec<Digest>,
    },
    /// Store a blob; its compressed body follows the frame.
    PutBlob {
        /// The digest the content must have.
        digest: Digest,
        /// Uncompressed size, at most [`MAX_BLOB`].
        size: u64,
    },
    /// Fetch a blob.
    GetBlob {
        /// Its digest.
        digest: Digest,
    },
    /// Fetch an action result.
    GetActionResult {
        /// The action key.
        key: Digest,
    },
    /// Record an action result (scope `write`) in the token's namespace; refused unless every blob it names
    /// is stored. The first writer of a key wins: a different result for a key already held is answered
    /// [`Response::Kept`] and not stored; the same result again is [`Response::Stored`].
    UpdateActionResult {
        /// The action key.
        key: Digest,
        /// The result.
        result: ActionResult,
    },
    /// Replace an action result whatever is stored under its key (scope `admin`).
    ReplaceActionResult {
        /// The namespace; `None`: the token's own.
        namespace: Option<String>,
        /// The action key.
        key: Digest,
        /// The result.
        result: ActionResult,
    },
    /// Add an entry (a blob already stored) to the manifest list under `key` in the token's namespace (scope
    /// `write`). Lists keep the newest [`MAX_MANIFEST_ENTRIES`]; adding one already listed is a no-op.
    AddManifestEntry {
        /// The manifest's key.
        key: Digest,
        /// The entry's blob.
        entry: Digest,
    },
    /// The entries listed under `key` in every namespace the token reads, its own first (scope `read`).
    GetManifest {
        /// The manifest's key.
        key: Digest,
    },
    /// Drop action results and manifest entries matching a filter (scope `admin`).
    Invalidate {
        /// Which.
        filter: Invalidation,
    },
    /// Register as a pool worker (scope `worker`). The stream stays open: after
    /// [`Response::Registered`] the worker sends [`WorkerMessage`] frames on it; when it ends, the worker
    /// is gone (the scheduler notices at the latest when its heartbeats stop).
    RegisterWorker {
        /// A name for humans (the host's).
        name: String,
        /// The pool it serves, e.g. `linux-x86_64`.
        pool: String,
        /// Actions it runs at once.
        slots: u32,
        /// Its memory in bytes.
        memory_bytes: u64,
    },
    /// The pool's state as JSON: workers, queues, running actions, desired worker counts (scope `admin`).
    Status,
    /// Run an action on a pool worker and wait for its result (scope `execute`). Refused at once with
    /// [`RemoteError::NoWorkers`] when its pool has no active worker: the client compiles locally.
    Execute {
        /// The action.
        action: RemoteAction,
    },
}

/// Most entries a manifest list keeps (the newest).
pub const MAX_MANIFEST_ENTRIES: usize = 32;

/// Which shared-cache entries an [`Request::Invalidate`] drops: those matching every field given (at least
/// one must be).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// Only in this namespace.
    pub namespace: Option<String>,
    /// Only the entry (action result or manifest) under this key.
    pub key: Option<Digest>,
    /// Only what the token with this label uploaded.
    pub uploader: Option<String>,
    /// Only what was stored at or after this time (seconds since the epoch).
    pub since: Option<u64>,
    /// Only what was stored before this time (seconds since the epoch).
    pub until: Option<u64>,
}

impl Invalidation {
    /// Whether the filter names nothing (and so would match everything: refused).
    pub fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.key.is_none()
            && self.uploader.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// Longest namespace name.
pub const MAX_NAMESPACE: usize = 64;

/// The namespace tokens write and read unless given others.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Whether `name` is a valid namespace: 1–64 ASCII letters, digits, `.`, `_` or `-`.
pub fn valid_namespace(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAMESPACE
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A response: the first frame the server writes on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Authenticated, with these scopes.
    Welcome {
        /// What the token allows.
        scopes: Vec<Scope>,
    },
    /// The requested digests the server lacks.
    Missing {
        /// A subset of the request's digests.
        digests: Vec<Digest>,
    },
    /// The blob or result was stored (or the same was already).
    Stored,
    /// Another result is already stored under the key: the first writer's is kept, this one dropped.
    Kept,
    /// Answer to [`Request::GetManifest`]: entry blobs, newest first.
    Manifest {
        /// At most [`MAX_MANIFEST_ENTRIES`] per namespace read.
        entries: Vec<Digest>,
    },
    /// Answer to [`Request::Invalidate`]: what was dropped.
    Invalidated {
        /// Action results dropped.
        results: u64,
        /// Manifest entries dropped.
        manifest_entries: u64,
    },
    /// The blob follows, compressed.
    Blob {
        /// Uncompressed size.
        size: u64,
    },
    /// The action result.
    ActionResult(ActionResult),
    /// No such blob or result.
    NotFound,
    /// The request was refused.
    Refused(RemoteError),
    /// Answer to [`Request::RegisterWorker`]: the id the scheduler knows the worker by.
    Registered {
        /// The worker's id.
        id: u64,
        /// How often to heartbeat, in milliseconds.
        heartbeat_ms: u64,
    },
    /// Answer to [`Request::Status`]: the pool's state, JSON-encoded.
    Status {
        /// The JSON text.
        json: String,
    },
    /// Answer to [`Request::Execute`]: the action ran (maybe failing); every blob it names is stored and
    /// verified.
    Executed {
        /// Outputs, stdout, stderr, exit code.
        result: ActionResult,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// No valid token was presented on this connection.
    #[error("not authenticated: present a token (RCC_TOKEN)")]
    Unauthenticated,
    /// The token lacks a scope.
    #[error("the token lacks the `{}` scope", .0.name())]
    Forbidden(Scope),
    /// The body's digest is not the announced one.
    #[error("blob content does not match its digest")]
    DigestMismatch,
    /// A size or count limit was exceeded.
    #[error("request exceeds a limit: {0}")]
    TooLarge(String),
    /// An action result names blobs the server does not hold.
    #[error("{} blob(s) named by the result are not stored", .0.len())]
    MissingBlobs(Vec<Digest>),
    /// The request could not be understood.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The server failed.
    #[error("server error: {0}")]
    Internal(String),
    /// The action's pool has no active worker.
    #[error("no active worker in pool `{0}`")]
    NoWorkers(String),
    /// Every attempt to run the action failed.
    #[error("the action failed on the pool: {0}")]
    ExecutionFailed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameError, REMOTE};

    fn decode_frame(bytes: &[u8]) -> Result<Request, FrameError> {
        let header: [u8; 7] = bytes.get(..7).and_then(|h| h.try_into().ok()).ok_or(FrameError::Closed)?;
        let len = REMOTE.check_header(&header)?;
        let payload = bytes.get(7..7 + len).ok_or(FrameError::Closed)?;
        crate::frame::decode(payload)
    }

    #[test]
    fn requests_round_trip() {
        let result = ActionResult {
            outputs: vec![OutputFile { name: "object".into(), digest: Digest::of(b"o"), size: 1, executable: false }],
            stdout: None,
            stderr: Some(Digest::of(b"e")),
            exit_code: 0,
        };
        for req in [
            Request::Hello { token: "t".into() },
            Request::FindMissing { digests: vec![Digest::of(b"a"), Digest::of(b"b")] },
            Request::PutBlob { digest: Digest::of(b"x"), size: 10 },
            Request::UpdateActionResult { key: Digest::of(b"k"), result },
        ] {
            let bytes = REMOTE.encode(&req).unwrap();
            assert_eq!(decode_frame(&bytes).unwrap(), req);
        }
        assert_eq!(result_blobs(), 2);
    }

    fn result_blobs() -> usize {
        let r = ActionResult {
            outputs: vec![OutputFile { name: "o".into(), digest: Digest::of(b"1"), size: 1, executable: false }],
            stdout: Some(Digest::of(b"2")),
            stderr: None,
            exit_code: 0,
        };
        r.blobs().count()
    }

    #[test]
    fn a_heartbeat_holding_the_most_fits_one_frame() {
        let digests = |n: usize| (0..n as u64).map(|i| Digest::of(&i.to_le_bytes())).collect::<Vec<_>>();
        let beat = WorkerMessage::Heartbeat {
            external_load: u32::MAX,
            toolchains: Some(digests(MAX_HELD_TOOLCHAINS)),
            inputs: Some(digests(MAX_HELD_INPUTS)),
        };
        let bytes = REMOTE.encode(&beat).unwrap();
        assert!(bytes.len() as u32 <= REMOTE.max_len);
        assert_eq!(crate::frame::decode::<WorkerMessage>(&bytes[7..]).unwrap(), beat);
    }

    #[test]
    fn scopes_parse_by_name() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.name()), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder, and nothing is allocated past the frame limit: the length
        /// is checked first, and postcard bounds collection pre-allocation by the input it has.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = decode_frame(&bytes);
            let _: Result<Response, _> = crate::frame::decode(&bytes);
        }

        /// A valid header followed by arbitrary payload bytes.
        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let mut frame = vec![b'R', b'Q', REMOTE.version];
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&payload);
            let _ = decode_frame(&frame);
        }
    }

    #[test]
    fn huge_announced_collections_are_refused_without_allocating() {
        // FindMissing claiming 2^60 digests in a few bytes: must fail, not reserve memory.
        let mut payload = vec![1u8]; // variant index of FindMissing
        payload.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let r: Result<Request, _> = crate::frame::decode(&payload);
        assert!(r.is_err());
        let mut header = [b'R', b'Q', REMOTE.version, 0, 0, 0, 0];
        header[3..7].copy_from_slice(&(REMOTE.max_len + 1).to_le_bytes());
        assert!(matches!(REMOTE.check_header(&header), Err(FrameError::TooLarge(_))));
    }
}
