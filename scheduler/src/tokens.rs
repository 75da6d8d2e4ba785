//! Bearer tokens with scopes, stored hashed (SHA-256) in `<state>/tokens.json`: the scheduler never keeps a
//! token it could hand out again. A token may carry an expiry; `rcc-scheduler token revoke` removes it from
//! the file. The running service notices a new version of the file at the next token it checks (a `stat`
//! per check), so a revoked or expired token is refused by new connections at once, and the connections
//! holding it are closed by their watchdog (see `server`).

use rcc_proto::remote::{valid_namespace, Scope, DEFAULT_NAMESPACE};
use rcc_proto::Digest;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// A token as `tokens.json` keeps it: its hash, never the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    sha256: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// The name it was created with.
    pub label: String,
    /// When it was created (seconds since the epoch; 0: before creation times were kept).
    #[serde(default)]
    pub created: u64,
    /// When it stops being accepted (seconds since the epoch), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The namespace it writes (and reads first); `None`: [`DEFAULT_NAMESPACE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Other namespaces it reads, in order, after its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
}

impl StoredToken {
    fn grant(&self) -> Grant {
        let namespace = self.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let mut reads = vec![namespace.clone()];
        for ns in &self.reads {
            if !reads.contains(ns) {
                reads.push(ns.clone());
            }
        }
        Grant { scopes: self.scopes.clone(), label: self.label.clone(), namespace, reads, expires: self.expires }
    }
}

/// Where a new token writes and what it reads besides.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    /// The namespace it writes and reads first; `None`: [`DEFAULT_NAMESPACE`].
    pub write: Option<String>,
    /// Other namespaces it reads, in order.
    pub read: Vec<String>,
}

/// What a known token may do: its scopes, the namespace its writes go to and those it reads, until its
/// expiry.
#[derive(Debug, Clone)]
pub struct Grant {
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// Its label: what the entries it uploads record as their uploader.
    pub label: String,
    /// The namespace it writes.
    pub namespace: String,
    /// The namespaces it reads, its own first.
    pub reads: Vec<String>,
    expires: Option<u64>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
    /// No token has this label.
    #[error("no token is labelled `{0}`")]
    NoSuchLabel(String),
    /// A namespace name is not valid.
    #[error("`{0}` is not a namespace name (1–64 letters, digits, `.`, `_` or `-`)")]
    BadNamespace(String),
}

/// The known tokens. Changes made by `rcc-scheduler token create` or `token revoke` while the service runs
/// are picked up at the next check: every check looks whether the file changed and re-reads it if so.
pub struct TokenStore {
    path: PathBuf,
    by_hash: RwLock<HashMap<Digest, Grant>>,
    loaded: RwLock<Option<(u64, u64, std::time::SystemTime)>>,
}

/// What tells a new version of the tokens file: writes replace it by rename (`rcc_fs::atomic`), so its
/// inode changes with every write, even within one tick of the modification time.
/// inode numbers may be reused by a later write, so the length and modification time are compared too.
fn modified(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).and_then(|m| Ok((m.ino(), m.len(), m.modified()?))).ok()
}

impl TokenStore {
    /// Loads `<state>/tokens.json` (absent = no tokens).
    pub fn open(state: &Path) -> Result<TokenStore, TokenError> {
        let path = state.join("tokens.json");
        let loaded = modified(&path);
        let by_hash = Self::read(&path)?;
        Ok(TokenStore { path, by_hash: RwLock::new(by_hash), loaded: RwLock::new(loaded) })
    }

    fn read_stored(path: &Path) -> Result<Vec<StoredToken>, TokenError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TokenError::File { path: path.to_owned(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(TokenError::File { path: path.to_owned(), message: e.to_string() }),
        }
    }

    fn read(path: &Path) -> Result<HashMap<Digest, Grant>, TokenError> {
        Ok(Self::read_stored(path)?
            .into_iter()
            .filter_map(|t| Some((Digest::from_hex(&t.sha256)?, t.grant())))
            .collect())
    }

    /// Re-reads the file if it changed since it was last read.
    fn refresh(&self) {
        let now = modified(&self.path);
        if now != *self.loaded.read().unwrap_or_else(|e| e.into_inner()) {
            if let Ok(fresh) = Self::read(&self.path) {
                *self.by_hash.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = now;
            }
        }
    }

    /// The scopes of a presented token, or `None` when it is unknown, revoked or expired.
    pub fn scopes(&self, token: &str) -> Option<Vec<Scope>> {
        self.scopes_of(&Self::hash(token))
    }

    /// The grant of a presented token, or `None` when it is unknown, revoked or expired.
    pub fn grant(&self, token: &str) -> Option<Grant> {
        self.refresh();
        let by_hash = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        let grant = by_hash.get(&Self::hash(token))?;
        if grant.expires.is_some_and(|at| now() >= at) {
            return None;
        }
        Some(grant.clone())
    }

    /// What the store knows a token by.
    pub fn hash(token: &str) -> Digest {
        Digest::of(token.as_bytes())
    }

    /// The scopes of the token with this hash, or `None` when it is unknown, revoked or expired (the file
    /// is re-read first if it changed).
    pub fn scopes_of(&self, hash: &Digest) -> Option<Vec<Scope>> {
        self.refresh();
        let by_hash = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        let grant = by_hash.get(hash)?;
        if grant.expires.is_some_and(|at| now() >= at) {
            return None;
        }
        Some(grant.scopes.clone())
    }

    /// Every stored token (hashes only), in creation order.
    pub fn list(&self) -> Result<Vec<StoredToken>, TokenError> {
        Self::read_stored(&self.path)
    }

    /// Removes every token labelled `label`; how many there were.
    pub fn revoke(&self, label: &str) -> Result<usize, TokenError> {
        let mut stored = Self::read_stored(&self.path)?;
        let before = stored.len();
        stored.retain(|t| t.label != label);
        let removed = before - stored.len();
        if removed == 0 {
            return Err(TokenError::NoSuchLabel(label.to_owned()));
        }
        self.save(&stored)?;
        self.refresh();
        Ok(removed)
    }

    fn save(&self, stored: &[StoredToken]) -> Result<(), TokenError> {
        let bytes = serde_json::to_vec_pretty(stored)
            .map_err(|e| TokenError::File { path: self.path.clone(), message: e.to_string() })?;
        rcc_fs::write_atomic(&self.path, &bytes, rcc_fs::WriteOptions::durable(0o600))
            .map_err(|e| TokenError::File { path: self.path.clone(), message: e.to_string() })
    }

    /// Creates a token with these scopes (valid for `lifetime`, or until revoked), saves its hash and
    /// returns the token itself (shown once).
    pub fn create(
        &self,
        scopes: &[Scope],
        label: &str,
        lifetime: Option<std::time::Duration>,
    ) -> Result<String, TokenError> {
        self.create_in(scopes, label, lifetime, &Namespaces::default())
    }

    /// As [`TokenStore::create`], writing to and reading from the namespaces given.
    pub fn create_in(
        &self,
        scopes: &[Scope],
        label: &str,
        lifetime: Option<std::time::Duration>,
        namespaces: &Namespaces,
    ) -> Result<String, TokenError> {
        for name in namespaces.write.iter().chain(&namespaces.read) {
            if !valid_namespace(name) {
                return Err(TokenError::BadNamespace(name.clone()));
            }
        }
        let mut random = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(|e| TokenError::File { path: "/dev/urandom".into(), message: e.to_string() })?;
        let token = format!("rcc_{}", hex::encode(random));
        let mut stored = Self::read_stored(&self.path)?;
        let hash = Self::hash(&token);
        let created = now();
        let expires = lifetime.map(|l| created.saturating_add(l.as_secs()));
        let token_entry = StoredToken {
            sha256: hash.to_hex(),
            scopes: scopes.to_vec(),
            label: label.to_owned(),
            created,
            expires,
            namespace: namespaces.write.clone(),
            reads: namespaces.read.clone(),
        };
        let grant = token_entry.grant();
        stored.push(token_entry);
        self.save(&stored)?;
        self.by_hash.write().unwrap_or_else(|e| e.into_inner()).insert(hash, grant);
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
        let token = store.create(&[Scope::Read], "ci", None).unwrap();
        assert_eq!(store.scopes(&token), Some(vec![Scope::Read]));
        assert_eq!(store.scopes("rcc_wrong"), None);
        let file = fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!file.contains(&token), "the token itself is never written");
        let reopened = TokenStore::open(dir.path()).unwrap();
        assert_eq!(reopened.scopes(&token), Some(vec![Scope::Read]));
        // A token created by another process (the CLI) while the service runs is picked up.
        let running = TokenStore::open(dir.path()).unwrap();
        let later = TokenStore::open(dir.path()).unwrap().create(&[Scope::Write], "later", None).unwrap();
        assert_eq!(running.scopes(&later), Some(vec![Scope::Write]));
        // And one revoked by another process is refused at the next check.
        assert_eq!(TokenStore::open(dir.path()).unwrap().revoke("ci").unwrap(), 1);
        assert_eq!(running.scopes(&token), None);
        assert!(matches!(running.revoke("ci"), Err(TokenError::NoSuchLabel(_))));
        // An expired token is refused.
        let brief = running.create(&[Scope::Read], "brief", Some(std::time::Duration::ZERO)).unwrap();
        assert_eq!(running.scopes(&brief), None);
        let labels: Vec<String> = running.list().unwrap().into_iter().map(|t| t.label).collect();
        assert_eq!(labels, ["later", "brief"]);
    }

    #[test]
    fn a_token_writes_its_namespace_and_reads_its_own_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let plain = store.create(&[Scope::Write], "plain", None).unwrap();
        let grant = store.grant(&plain).unwrap();
        assert_eq!((grant.namespace.as_str(), grant.reads.clone()), ("default", vec!["default".to_owned()]));
        let spaces = Namespaces { write: Some("alice".into()), read: vec!["ci".into(), "alice".into()] };
        let alice = store.create_in(&[Scope::Read, Scope::Write], "alice", None, &spaces).unwrap();
        let grant = TokenStore::open(dir.path()).unwrap().grant(&alice).unwrap();
        assert_eq!(grant.label, "alice");
        assert_eq!(grant.namespace, "alice");
        assert_eq!(grant.reads, ["alice", "ci"]);
        let bad = Namespaces { write: Some("../x".into()), read: vec![] };
        assert!(matches!(store.create_in(&[Scope::Write], "bad", None, &bad), Err(TokenError::BadNamespace(_))));
    }
}
