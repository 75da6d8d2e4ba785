//! What the Rust cache stores: manifests (which sources, link inputs and environment values lead to which
//! result) and results (the output files, stdout, stderr), both with paths in their stored form (see
//! [`super::paths`]).

use super::paths::PathMap;
use crate::key::files::FileCache;
use rcc_proto::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Manifests keep the most recent entries only.
const MAX_ENTRIES: usize = 16;

/// Input sets seen for one direct key, newest last.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RustManifest {
    /// The entries.
    pub entries: Vec<RustEntry>,
}

/// One input set: when every file still has its digest and every variable its value, the result applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RustEntry {
    /// Sources (from dep-info) and link inputs, stored form, with their digests.
    pub files: Vec<(Vec<u8>, Digest)>,
    /// Environment variables the crate read (dep-info's `env-dep` lines), stored form; `None`: unset.
    pub env: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The real target directory, when a source under it keeps its path in the outputs.
    pub pinned_target: Option<Vec<u8>>,
    /// The result these inputs produce.
    pub result: Digest,
}

impl RustManifest {
    /// Adds an entry (replacing an equal one), dropping the oldest beyond the bound.
    pub fn add(&mut self, entry: RustEntry) {
        self.entries.retain(|e| e.result != entry.result);
        self.entries.push(entry);
        if self.entries.len() > MAX_ENTRIES {
            self.entries.remove(0);
        }
    }

    /// The newest entry that holds for this invocation.
    pub fn find(&self, files: &FileCache, map: &PathMap, env: &HashMap<OsString, OsString>) -> Option<&RustEntry> {
        self.entries.iter().rev().find(|e| e.matches(files, map, env))
    }
}

impl RustEntry {
    /// Whether every recorded fact holds now.
    pub fn matches(&self, files: &FileCache, map: &PathMap, env: &HashMap<OsString, OsString>) -> bool {
        if let Some(pinned) = &self.pinned_target {
            if pinned.as_slice() != map.target_root.as_os_str().as_bytes() {
                return false;
            }
        }
        self.env.iter().all(|(name, value)| {
            let now = env.get(OsStr::from_bytes(name)).map(|v| map.to_stored(v.as_bytes()));
            now == *value
        }) && self.files.iter().all(|(stored, digest)| {
            let path = map.cwd.join(OsStr::from_bytes(&map.to_real(stored)));
            files.info(&path).is_ok_and(|info| info.digest == *digest)
        })
    }

    /// The result key of these inputs under a direct key.
    pub fn result_key(direct_key: &Digest, files: &[(Vec<u8>, Digest)], env: &[(Vec<u8>, Option<Vec<u8>>)]) -> Digest {
        let mut h = KeyHasher::new("rust-result", 1);
        h.digest(b'k', direct_key);
        for (path, digest) in files {
            h.bytes(b'p', path).digest(b'd', digest);
        }
        for (name, value) in env {
            h.bytes(b'n', name);
            match value {
                Some(v) => h.bytes(b'v', v),
                None => h.bytes(b'u', b""),
            };
        }
        h.finish()
    }
}

/// One output file, by name in the output directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// File name inside the output directory.
    pub name: String,
    /// Content (dep-info in stored form).
    pub data: Vec<u8>,
    /// Executable (a binary).
    pub executable: bool,
}

/// A stored rustc result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RustResult {
    /// The output files.
    pub files: Vec<OutputFile>,
    /// The dep-info's name among `files`, whose paths are restored for the invocation.
    pub dep_info: Option<String>,
    /// Recorded stdout.
    pub stdout: Vec<u8>,
    /// Recorded stderr (diagnostics and artifact notifications, in order), stored form.
    pub stderr: Vec<u8>,
    /// How long the compile took, in milliseconds.
    pub compile_millis: u64,
}
