//! Writing a file so that a reader sees either the old content or the new, never a part of it: the bytes
//! go to a temporary file in the destination's own directory (so the rename cannot cross file systems),
//! which is then renamed over the destination. A failed or abandoned write removes its temporary file.
//!
//! # The fsync policy, stated once
//! - [`Durability::Cache`] (rcc's caches, statistics, memos, restored build outputs): no fsync. A crash of
//!   the process leaves the old file or the new one; a power loss may leave an empty or torn file, which
//!   every reader detects (cache entries and blobs are checked against their digest, memos are re-validated,
//!   statistics are replaced when unreadable) and treats as a miss. Build outputs are written as the
//!   compiler writes them, which does not fsync either.
//! - [`Durability::Durable`] (state that cannot be recomputed: tokens, certificates, keys): the file is
//!   fsynced before the rename and its directory after it, so the new content survives a power loss once
//!   [`AtomicFile::commit`] returns.
//!
//! Temporary files are named `.rcc-tmp.<random>` ([`is_temp_name`]), so directory scans (eviction, index
//! rebuilds) can skip them and remove those a crash left behind ([`is_abandoned_temp`]).

use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The prefix of every temporary file this module creates.
pub const TEMP_PREFIX: &str = ".rcc-tmp.";

/// Whether a directory entry is a temporary file of an atomic write (in progress, or left by a crash).
pub fn is_temp_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// How far a write must reach before it counts as done; see the module's fsync policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Atomic against process crashes; a power loss may lose the write (readers detect it).
    Cache,
    /// Atomic and on stable storage when [`AtomicFile::commit`] returns.
    Durable,
}

/// The mode and durability of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    mode: u32,
    durability: Durability,
}

impl WriteOptions {
    /// A cache file with this exact mode (not masked by the process's umask, which for the daemon is not
    /// the invocation's).
    pub const fn cache(mode: u32) -> WriteOptions {
        WriteOptions { mode, durability: Durability::Cache }
    }

    /// A durable file with this exact mode.
    pub const fn durable(mode: u32) -> WriteOptions {
        WriteOptions { mode, durability: Durability::Durable }
    }

    /// The file's mode.
    pub const fn mode(&self) -> u32 {
        self.mode
    }
}

/// A file being written: write to it, then [`commit`](AtomicFile::commit) to put it in place. Dropped
/// without a commit, it is removed and the destination is untouched.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
    durability: Durability,
}

impl AtomicFile {
    /// Starts writing `dest`: creates the temporary file beside it, with `options`' mode.
    pub fn create(dest: &Path, options: WriteOptions) -> io::Result<AtomicFile> {
        let dir = parent_of(dest);
        // Created owner-only, then given the exact mode (a mode given at creation would be masked by the umask).
        let temp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
        temp.as_file().set_permissions(Permissions::from_mode(options.mode))?;
        Ok(AtomicFile { temp, dest: dest.to_owned(), durability: options.durability })
    }

    /// The temporary file, for callers that need more than [`Write`] (`set_len`, metadata).
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// Puts the written content in place of the destination (replacing any file there), syncing first when
    /// the write is durable.
    pub fn commit(self) -> io::Result<()> {
        if self.durability == Durability::Durable {
            self.temp.as_file().sync_all()?;
        }
        self.temp.persist(&self.dest).map_err(|e| e.error)?;
        if self.durability == Durability::Durable {
            File::open(parent_of(&self.dest))?.sync_all()?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` as the whole content of `dest`, atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8], options: WriteOptions) -> io::Result<()> {
    let mut file = AtomicFile::create(dest, options)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Whether a directory entry is a temporary file abandoned by an interrupted write: a temporary name last
/// written at least `age` ago (younger ones may belong to a write in progress in another process). Scans
/// that meet one may remove it.
pub fn is_abandoned_temp(name: &OsStr, meta: &fs::Metadata, age: std::time::Duration) -> bool {
    is_temp_name(name) && meta.modified().is_ok_and(|t| t.elapsed().is_ok_and(|elapsed| elapsed >= age))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_write_replaces_the_file_with_the_exact_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        fs::write(&dest, b"old").unwrap();
        write_atomic(&dest, b"new", WriteOptions::cache(0o751)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o751);
        assert_eq!(names(dir.path()), ["f"]);
        write_atomic(&dest, b"durable", WriteOptions::durable(0o600)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"durable");
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn an_abandoned_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        fs::write(&dest, b"old").unwrap();
        let mut file = AtomicFile::create(&dest, WriteOptions::cache(0o644)).unwrap();
        file.write_all(b"half").unwrap();
        assert_eq!(names(dir.path()).len(), 2, "the temporary file sits beside the destination");
        assert!(names(dir.path()).iter().any(|n| is_temp_name(OsStr::new(n))));
        drop(file);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["f"]);
    }

    #[test]
    fn temporaries_left_by_a_crash_are_told_from_writes_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".rcc-tmp.abc");
        fs::write(&temp, b"torn").unwrap();
        fs::write(dir.path().join("entry"), b"kept").unwrap();
        let meta = |name: &str| fs::metadata(dir.path().join(name)).unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert!(!is_abandoned_temp(OsStr::new(".rcc-tmp.abc"), &meta(".rcc-tmp.abc"), hour), "too young");
        assert!(is_abandoned_temp(OsStr::new(".rcc-tmp.abc"), &meta(".rcc-tmp.abc"), std::time::Duration::ZERO));
        assert!(!is_abandoned_temp(OsStr::new("entry"), &meta("entry"), std::time::Duration::ZERO), "not a temporary");
    }

    #[test]
    fn a_write_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(&dir.path().join("no/such/f"), b"x", WriteOptions::cache(0o644)).is_err());
    }
}
