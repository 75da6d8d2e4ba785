//! The rustc toolchain's identity: the rustc binary, the compiler library it loads, the standard library
//! files of the target, and `rustc -vV`, digested once and re-validated on every call by file metadata.
//!
//! rustc named through rustup's proxy (`~/.cargo/bin/rustc`) is resolved to the toolchain rustup would
//! run: `$RUSTUP_HOME/toolchains/$RUSTUP_TOOLCHAIN` when cargo set those (it does), else one
//! `rustc --print sysroot` run in the invocation's directory, memoized.

use crate::key::files::{digest_file, Stamp};
use rcc_proto::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// An identified toolchain for one target.
#[derive(Debug, Serialize, Deserialize)]
pub struct Toolchain {
    /// The real rustc binary.
    pub rustc: PathBuf,
    /// The sysroot.
    pub sysroot: PathBuf,
    /// The host triple (`rustc -vV`).
    pub host: String,
    /// Digest over `-vV` and every file that produces output for the target.
    pub digest: Digest,
    files: Vec<(PathBuf, Stamp)>,
}

impl Toolchain {
    fn is_current(&self) -> bool {
        self.files.iter().all(|(p, s)| fs::metadata(p).map(|m| Stamp::of(&m)).ok().as_ref() == Some(s))
    }
}

/// Why a toolchain could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// The rustup proxy was named and the toolchain it stands for is unknown.
    #[error("cannot tell which toolchain the rustup proxy {0} runs")]
    Proxy(PathBuf),
    /// Running or reading rustc failed.
    #[error("identifying rustc {path}: {what}")]
    Failed {
        /// The rustc path.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
}

type MemoKey = (PathBuf, Option<String>);

/// Memo of identified toolchains, by (real rustc path, target); persisted in a file when one is given, so
/// that a restarted daemon re-validates by metadata instead of digesting the toolchain again.
#[derive(Default)]
pub struct ToolchainCache {
    map: Mutex<HashMap<MemoKey, Arc<Toolchain>>>,
    proxies: Mutex<HashMap<(PathBuf, OsString, OsString), PathBuf>>,
    computing: Mutex<()>,
    file: Option<PathBuf>,
}

impl ToolchainCache {
    /// A new, empty memo kept only in memory.
    pub fn new() -> ToolchainCache {
        ToolchainCache::default()
    }

    /// A memo persisted at `file`, loaded now (an unreadable file is an empty memo).
    pub fn persisted(file: PathBuf) -> ToolchainCache {
        let records: Vec<(MemoKey, Toolchain)> = crate::persist::load(&file);
        let map = records.into_iter().map(|(k, t)| (k, Arc::new(t))).collect();
        ToolchainCache { map: Mutex::new(map), file: Some(file), ..ToolchainCache::default() }
    }

    fn save(&self, map: &HashMap<MemoKey, Arc<Toolchain>>) {
        let Some(file) = &self.file else { return };
        let records: Vec<(&MemoKey, &Toolchain)> = map.iter().map(|(k, t)| (k, t.as_ref())).collect();
        crate::persist::save(file, &records);
    }

    /// Identifies the toolchain that `rustc` (as invoked, with the invocation's environment and directory)
    /// runs, for `target` (the host when `None`).
    pub fn identify(
        &self,
        rustc: &Path,
        target: Option<&str>,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
    ) -> Result<Arc<Toolchain>, ToolchainError> {
        let real = self.real_rustc(rustc, env, cwd)?;
        let key = (real.clone(), target.map(str::to_owned));
        let current = |cache: &ToolchainCache| {
            let map = cache.map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&key).filter(|t| t.is_current()).cloned()
        };
        if let Some(known) = current(self) {
            return Ok(known);
        }
        let _computing = self.computing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = current(self) {
            return Ok(known);
        }
        let toolchain = Arc::new(identify_uncached(&real, target)?);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, toolchain.clone());
        self.save(&map);
        Ok(toolchain)
    }

    /// The rustc binary that actually runs: `rustc` itself unless it is rustup's proxy.
    fn real_rustc(
        &self,
        rustc: &Path,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
    ) -> Result<PathBuf, ToolchainError> {
        let canonical = rustc.canonicalize().map_err(|e| failed(rustc, format!("resolving it: {e}")))?;
        if canonical.file_name() != Some(OsStr::new("rustup")) {
            return Ok(canonical);
        }
        let var = |k: &str| env.get(OsStr::new(k)).cloned();
        if let (Some(home), Some(toolchain)) = (var("RUSTUP_HOME"), var("RUSTUP_TOOLCHAIN")) {
            let candidate = Path::new(&home).join("toolchains").join(&toolchain).join("bin/rustc");
            if candidate.is_file() {
                return candidate.canonicalize().map_err(|e| failed(&candidate, e.to_string()));
            }
        }
        // Rare: `rcc rustc …` typed in a shell. The toolchain may depend on the directory (overrides).
        let memo_key = (cwd.to_owned(), var("RUSTUP_TOOLCHAIN").unwrap_or_default(), var("PATH").unwrap_or_default());
        if let Some(known) = self.proxies.lock().unwrap_or_else(|e| e.into_inner()).get(&memo_key) {
            return Ok(known.clone());
        }
        let out = Command::new(rustc)
            .args(["--print", "sysroot"])
            .env_clear()
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| failed(rustc, format!("running it: {e}")))?;
        let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let real = Path::new(&sysroot).join("bin/rustc");
        if !out.status.success() || !real.is_file() {
            return Err(ToolchainError::Proxy(rustc.to_owned()));
        }
        self.proxies.lock().unwrap_or_else(|e| e.into_inner()).insert(memo_key, real.clone());
        Ok(real)
    }
}

fn failed(path: &Path, what: impl Into<String>) -> ToolchainError {
    ToolchainError::Failed { path: path.to_owned(), what: what.into() }
}

fn identify_uncached(rustc: &Path, target: Option<&str>) -> Result<Toolchain, ToolchainError> {
    let out = Command::new(rustc)
        .arg("-vV")
        .env_clear()
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(rustc, format!("running it: {e}")))?;
    if !out.status.success() {
        return Err(failed(rustc, "`rustc -vV` failed"));
    }
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or_else(|| failed(rustc, "`rustc -vV` names no host"))?
        .to_owned();
    // The sysroot is the binary's grandparent (rustc finds it the same way).
    let sysroot = rustc.parent().and_then(Path::parent).ok_or_else(|| failed(rustc, "no sysroot"))?.to_owned();
    let target_name = target.unwrap_or(&host);
    let mut files = vec![rustc.to_owned()];
    files.extend(list_files(&sysroot.join("lib"), |n| n.ends_with(".so")));
    // A target given as a spec file has its libraries under the spec's name.
    let target_dir = Path::new(target_name).file_stem().and_then(OsStr::to_str).unwrap_or(target_name).to_owned();
    files.extend(list_files(&sysroot.join("lib/rustlib").join(&target_dir).join("lib"), |_| true));
    files.extend(list_files(&sysroot.join("lib/rustlib").join(&host).join("codegen-backends"), |_| true));
    // The linker rustc ships (rust-lld, with the gcc-ld shims the C driver is pointed at).
    let host_bin = sysroot.join("lib/rustlib").join(&host).join("bin");
    files.extend(list_files(&host_bin, |_| true));
    files.extend(list_files(&host_bin.join("gcc-ld"), |_| true));
    files.sort();
    files.dedup();
    let digests: Vec<Result<(Stamp, Digest), ToolchainError>> = std::thread::scope(|scope| {
        let chunks: Vec<_> = files
            .chunks(files.len().div_ceil(4).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|f| {
                            let meta = fs::metadata(f).map_err(|e| failed(f, e.to_string()))?;
                            let digest = digest_file(f).map_err(|e| failed(f, e.to_string()))?;
                            Ok((Stamp::of(&meta), digest))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    if digests.len() != files.len() {
        return Err(failed(rustc, "digesting the toolchain failed"));
    }
    let mut h = KeyHasher::new("rust-toolchain", 1);
    h.bytes(b'v', version.as_bytes()).bytes(b't', target_name.as_bytes());
    let mut stamped = Vec::with_capacity(files.len());
    for (file, result) in files.into_iter().zip(digests) {
        let (stamp, digest) = result?;
        // Paths relative to the sysroot: the same toolchain installed in two homes is one identity.
        let relative = file.strip_prefix(&sysroot).unwrap_or(&file);
        h.bytes(b'p', relative.as_os_str().as_bytes()).digest(b'd', &digest);
        stamped.push((file, stamp));
    }
    Ok(Toolchain { rustc: rustc.to_owned(), sysroot, host, digest: h.finish(), files: stamped })
}

/// Regular files directly in `dir` whose names pass `keep` (links followed), sorted.
fn list_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolchain_running_the_tests_is_identified() {
        let rustc = std::env::var_os("RUSTC")
            .map(PathBuf::from)
            .or_else(|| {
                let path = std::env::var_os("PATH")?;
                std::env::split_paths(&path).map(|d| d.join("rustc")).find(|p| p.is_file())
            })
            .expect("rustc (RUSTC or on PATH): the tests are built with it");
        let env: HashMap<OsString, OsString> = std::env::vars_os().collect();
        let cache = ToolchainCache::new();
        let cwd = std::env::current_dir().unwrap();
        let t = cache.identify(&rustc, None, &env, &cwd).unwrap();
        assert!(t.files.iter().any(|(p, _)| p.to_string_lossy().contains("libstd-")), "{:?}", t.files);
        assert!(t.files.iter().any(|(p, _)| p.to_string_lossy().contains("librustc_driver")));
        assert_eq!(cache.identify(&rustc, None, &env, &cwd).unwrap().digest, t.digest);
    }

    #[test]
    fn a_persisted_identity_is_reloaded() {
        let rustc = std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join("rustc")).find(|p| p.is_file()))
            .expect("rustc on PATH: the tests are built with it");
        let env: HashMap<OsString, OsString> = std::env::vars_os().collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("toolchains.bin");
        let cwd = std::env::current_dir().unwrap();
        let first = ToolchainCache::persisted(file.clone()).identify(&rustc, None, &env, &cwd).unwrap().digest;
        let reloaded = ToolchainCache::persisted(file);
        assert_eq!(reloaded.map.lock().unwrap().len(), 1, "loaded from disk");
        assert_eq!(reloaded.identify(&rustc, None, &env, &cwd).unwrap().digest, first);
    }
}
