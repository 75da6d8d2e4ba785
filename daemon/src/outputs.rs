//! A compile's outputs as the store keeps them, and their restoration for a new invocation: each file
//! written atomically (`rcc_fs::atomic`) with the mode the compiler would have given it, and the depfile retargeted to this invocation's target.

use crate::key::args::ParsedArgs;
use crate::key::depfile;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What an output file is, which decides where it is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The object (`-c`) or assembly (`-S`) file.
    Object,
    /// The user's depfile (`-MD`/`-MMD`).
    Depfile,
    /// The split-DWARF file (`-gsplit-dwarf`).
    Dwo,
    /// The coverage notes (`--coverage`).
    Gcno,
}

/// One stored output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// What it is.
    pub role: Role,
    /// Its content.
    pub data: Vec<u8>,
}

/// A stored compile result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedResult {
    /// The output files.
    pub files: Vec<StoredFile>,
    /// Recorded stdout.
    pub stdout: Vec<u8>,
    /// Recorded stderr (warnings are replayed on every hit).
    pub stderr: Vec<u8>,
    /// The exit code (0: failures are not stored).
    pub exit_code: i32,
    /// The depfile's target text as written, to be replaced on restore.
    pub depfile_target: Option<Vec<u8>>,
    /// How long the compile took, in milliseconds (the time a hit saves).
    pub compile_millis: u64,
}

/// Why outputs could not be collected or restored.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The stored depfile does not start with its recorded target.
    #[error("stored depfile cannot be retargeted")]
    Depfile,
}

/// Where an output of the given role goes for this invocation.
pub fn destination(role: Role, parsed: &ParsedArgs) -> Option<PathBuf> {
    match role {
        Role::Object => Some(parsed.output.clone()),
        Role::Depfile => parsed.depfile_path(),
        Role::Dwo => parsed.dwo_path(),
        Role::Gcno => parsed.gcno_path(),
    }
}

/// The roles a compile with these arguments writes (the depfile only when the user asked for one).
pub fn roles(parsed: &ParsedArgs) -> Vec<Role> {
    let mut roles = vec![Role::Object];
    if parsed.depfile.is_some() {
        roles.push(Role::Depfile);
    }
    if parsed.split_dwarf {
        roles.push(Role::Dwo);
    }
    if parsed.coverage {
        roles.push(Role::Gcno);
    }
    roles
}

/// Reads the outputs a finished compile wrote.
pub fn collect(
    parsed: &ParsedArgs,
    cwd: &Path,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    compile_millis: u64,
) -> Result<CachedResult, OutputError> {
    let mut files = Vec::new();
    for role in roles(parsed) {
        let Some(dest) = destination(role, parsed) else { continue };
        let path = cwd.join(&dest);
        let data = fs::read(&path).map_err(|source| OutputError::Io { path, source })?;
        files.push(StoredFile { role, data });
    }
    Ok(CachedResult {
        files,
        stdout,
        stderr,
        exit_code: 0,
        depfile_target: parsed.depfile_target_text().map(|t| t.as_bytes().to_vec()),
        compile_millis,
    })
}

/// Writes a stored result's files for this invocation.
pub fn restore(result: &CachedResult, parsed: &ParsedArgs, cwd: &Path, umask: u32) -> Result<(), OutputError> {
    let mode = 0o666 & !umask;
    for file in &result.files {
        let Some(dest) = destination(file.role, parsed) else { continue };
        let path = cwd.join(&dest);
        if file.role == Role::Depfile {
            let new_target = parsed.depfile_target_text().map(|t| t.as_bytes().to_vec()).unwrap_or_default();
            let old_target = result.depfile_target.as_deref().unwrap_or_default();
            let data = depfile::retarget(&file.data, old_target, &new_target).ok_or(OutputError::Depfile)?;
            write_atomically(&path, &data, mode)?;
        } else {
            write_atomically(&path, &file.data, mode)?;
        }
    }
    Ok(())
}

/// Writes one output file of a build atomically, with exactly `mode` (the daemon's own umask is not the
/// invocation's).
pub fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), OutputError> {
    rcc_fs::write_atomic(path, data, rcc_fs::WriteOptions::cache(mode))
        .map_err(|source| OutputError::Io { path: path.to_owned(), source })
}
