//! The state directory's setup, done once and under a lock: `rcc-scheduler init` (or `serve` on a fresh
//! directory) creates the directory (0700), the self-signed certificate and its key (0600) and the admin
//! token `status` uses (0600), every file through `rcc_fs::atomic`, while holding an exclusive `flock` on
//! `<state>/.lock`. Readers (`fingerprint`, `status`) take the lock shared, so they never see a half-made
//! state, and create nothing: a directory not set up is [`StateError::NotSetUp`].

use crate::identity;
use crate::tokens::{TokenError, TokenStore};
use rcc_link::tls::{Identity, TlsError};
use rcc_proto::remote::Scope;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file every setup and read of the state holds.
pub const LOCK_FILE: &str = ".lock";
/// The admin token `rcc-scheduler status` presents.
pub const STATUS_TOKEN_FILE: &str = "status.token";

/// A failure to set up or read the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory holds no scheduler state yet.
    #[error("the scheduler has not been set up in {0}: run `rcc-scheduler init` (or start `rcc-scheduler serve`)")]
    NotSetUp(PathBuf),
    /// A file or directory could not be made or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate or key.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The tokens file.
    #[error(transparent)]
    Tokens(#[from] TokenError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_owned(), source }
}

/// Sets the state directory up if it is not (creating what is missing), under the exclusive lock, and
/// returns the scheduler's identity. Safe to run from several processes at once: one creates, the others
/// wait and read what it made.
pub fn init(state: &Path) -> Result<Identity, StateError> {
    let _lock = exclusive(state)?;
    let identity = identity::load_or_create(state, None, None)?;
    let token_file = state.join(STATUS_TOKEN_FILE);
    if !token_file.exists() {
        let token = TokenStore::open(state)?.create(&[Scope::Admin], "rcc-scheduler status", None)?;
        rcc_fs::write_atomic(&token_file, token.as_bytes(), rcc_fs::WriteOptions::durable(0o600))
            .map_err(io(&token_file))?;
    }
    Ok(identity)
}

/// Holds the state's lock exclusively (creating the directory, 0700, and the lock file): changes to the
/// state (setup, tokens) are made under it. Released when the file is dropped.
pub fn exclusive(state: &Path) -> Result<File, StateError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(state).map_err(io(state))?;
    let lock_path = state.join(LOCK_FILE);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    Ok(lock)
}

/// Holds the state's lock shared while a reader looks at it; `NotSetUp` when there is no state.
fn read_lock(state: &Path) -> Result<File, StateError> {
    let lock_path = state.join(LOCK_FILE);
    let lock = match File::open(&lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StateError::NotSetUp(state.to_owned())),
        Err(e) => return Err(StateError::Io { path: lock_path, source: e }),
    };
    lock.lock_shared().map_err(io(&lock_path))?;
    Ok(lock)
}

/// The identity of a set-up state directory, creating nothing.
pub fn identity(state: &Path) -> Result<Identity, StateError> {
    let _lock = read_lock(state)?;
    let (cert, key) = (state.join("cert.pem"), state.join("key.pem"));
    if !cert.exists() || !key.exists() {
        return Err(StateError::NotSetUp(state.to_owned()));
    }
    Ok(identity::load_or_create(state, Some(&cert), Some(&key))?)
}

/// The admin token `status` uses, from a set-up state directory, creating nothing.
pub fn status_token(state: &Path) -> Result<String, StateError> {
    let _lock = read_lock(state)?;
    let path = state.join(STATUS_TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StateError::NotSetUp(state.to_owned())),
        Err(e) => Err(StateError::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn readers_create_nothing_and_init_makes_private_state_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(matches!(identity(&state), Err(StateError::NotSetUp(_))));
        assert!(matches!(status_token(&state), Err(StateError::NotSetUp(_))));
        assert!(!state.exists(), "readers created nothing");
        let made = init(&state).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("key.pem")), 0o600);
        assert_eq!(mode(&state.join(STATUS_TOKEN_FILE)), 0o600);
        assert_eq!(identity(&state).unwrap().fingerprint(), made.fingerprint());
        assert_eq!(init(&state).unwrap().fingerprint(), made.fingerprint(), "a second init keeps the state");
        assert!(status_token(&state).unwrap().starts_with("rcc_"));
    }
}
