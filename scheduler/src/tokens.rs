//! Bearer tokens with scopes, stored hashed (SHA-256) in `<state>/tokens.json`: the scheduler never keeps a
//! token it could hand out again.

use rcc_proto::remote::Scope;
use rcc_proto::Digest;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    sha256: String,
    scopes: Vec<Scope>,
    label: String,
}

/// A token store failure.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The known tokens. Tokens created by `rcc-scheduler token create` while the service runs are picked up:
/// an unknown token makes the store re-read its file if the file changed.
pub struct TokenStore {
    path: PathBuf,
    by_hash: RwLock<HashMap<Digest, Vec<Scope>>>,
    loaded: RwLock<Option<(u64, std::time::SystemTime)>>,
}

/// What tells a new version of the tokens file: writes replace it by rename (`rcc_fs::atomic`), so its
/// inode changes with every write, even within one tick of the modification time.
fn modified(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).and_then(|m| Ok((m.ino(), m.modified()?))).ok()
}

impl TokenStore {
    /// Loads `<state>/tokens.json` (absent = no tokens).
    pub fn open(state: &Path) -> Result<TokenStore, TokenError> {
        let path = state.join("tokens.json");
        let loaded = modified(&path);
        let by_hash = Self::read(&path)?;
        Ok(TokenStore { path, by_hash: RwLock::new(by_hash), loaded: RwLock::new(loaded) })
    }

    fn read(path: &Path) -> Result<HashMap<Digest, Vec<Scope>>, TokenError> {
        let path = path.to_owned();
        let stored: Vec<StoredToken> = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TokenError::File { path: path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(TokenError::File { path, message: e.to_string() }),
        };
        Ok(stored.into_iter().filter_map(|t| Some((Digest::from_hex(&t.sha256)?, t.scopes))).collect())
    }

    /// The scopes of a presented token, or `None` when it is unknown.
    pub fn scopes(&self, token: &str) -> Option<Vec<Scope>> {
        let hash = Digest::of(token.as_bytes());
        if let Some(scopes) = self.by_hash.read().unwrap_or_else(|e| e.into_inner()).get(&hash) {
            return Some(scopes.clone());
        }
        let now = modified(&self.path);
        if now != *self.loaded.read().unwrap_or_else(|e| e.into_inner()) {
            if let Ok(fresh) = Self::read(&self.path) {
                *self.by_hash.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = now;
            }
        }
        self.by_hash.read().unwrap_or_else(|e| e.into_inner()).get(&hash).cloned()
    }

    /// Creates a token with these scopes, saves its hash and returns the token itself (shown once).
    pub fn create(&self, scopes: &[Scope], label: &str) -> Result<String, TokenError> {
        let mut random = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(|e| TokenError::File { path: "/dev/urandom".into(), message: e.to_string() })?;
        let token = format!("rcc_{}", hex::encode(random));
        let mut stored: Vec<StoredToken> =
            fs::read(&self.path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let hash = Digest::of(token.as_bytes());
        stored.push(StoredToken { sha256: hash.to_hex(), scopes: scopes.to_vec(), label: label.to_owned() });
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| TokenError::File { path: self.path.clone(), message: e.to_string() })?;
        rcc_fs::write_atomic(&self.path, &bytes, rcc_fs::WriteOptions::durable(0o600))
            .map_err(|e| TokenError::File { path: self.path.clone(), message: e.to_string() })?;
        self.by_hash.write().unwrap_or_else(|e| e.into_inner()).insert(hash, scopes.to_vec());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_keep_their_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let token = store.create(&[Scope::Read], "ci").unwrap();
        assert_eq!(store.scopes(&token), Some(vec![Scope::Read]));
        assert_eq!(store.scopes("rcc_wrong"), None);
        let file = fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!file.contains(&token), "the token itself is never written");
        let reopened = TokenStore::open(dir.path()).unwrap();
        assert_eq!(reopened.scopes(&token), Some(vec![Scope::Read]));
        // A token created by another process (the CLI) while the service runs is picked up.
        let running = TokenStore::open(dir.path()).unwrap();
        let later = TokenStore::open(dir.path()).unwrap().create(&[Scope::Write], "later").unwrap();
        assert_eq!(running.scopes(&later), Some(vec![Scope::Write]));
    }
}
