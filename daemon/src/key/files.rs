//! Warm file knowledge: content digests memoized by file metadata, and directory listings (for absent-file
//! checks) memoized the same way.
//!
//! A memo is trusted only while the file's (or directory's) device, inode, size, modification and change
//! times are unchanged, and is not kept at all for anything changed in the last [`RACY_WINDOW`]: file
//! timestamps come from a coarse clock, so a change within the same tick would otherwise go unseen.

use memchr::memmem;
use rcc_proto::Digest;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Changes younger than this are not memoized (nanoseconds).
pub const RACY_WINDOW: i64 = 2_000_000_000;

/// Identity of a file's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }

    /// The later of the modification and change times, in nanoseconds since the epoch.
    pub fn changed_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }

    /// Whether `later` is this same file with the same content, only its inode's metadata changed (a hard
    /// link added, as cargo does when it copies outputs up to `target/<profile>/`, or a mode change).
    pub fn same_content_as(&self, later: &Stamp) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns) == (later.dev, later.ino, later.size, later.mtime_ns)
    }

    fn racy(&self) -> bool {
        coarse_now_ns() - self.changed_ns() < RACY_WINDOW
    }
}

/// The current time from the clock file timestamps are taken from (`CLOCK_REALTIME_COARSE`), in ns.
pub fn coarse_now_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_REALTIME_COARSE exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Waits until the coarse clock has moved past `tick_ns` (at most one clock tick, a few milliseconds).
///
/// A rustc miss calls this before rustc runs, with the time its request arrived: a file changed before the
/// request then has a change time of at most `tick_ns` (on file systems with tick-grained timestamps), and
/// one changed while the compiler ran a later one — without it, a file a previous compile wrote in the same
/// tick (cargo starts a dependent crate within milliseconds of its dependency's end) would look changed
/// during the compile. C misses, often shorter than a tick, keep the stricter `>=` test instead.
pub fn wait_for_tick_after(tick_ns: i64) {
    while coarse_now_ns() <= tick_ns {
        std::thread::sleep(std::time::Duration::from_micros(250));
    }
}

/// What rcc knows of one file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// SHA-256 of the content.
    pub digest: Digest,
    /// The content mentions `__DATE__`, `__TIME__` or `__TIMESTAMP__`.
    pub time_macros: bool,
    /// The content mentions the assembler directive `.incbin`, which reads a file no depfile lists.
    pub incbin: bool,
    /// The content mentions `.include` (an assembler include when the file is assembler source).
    pub asm_include: bool,
    /// The content mentions `__has_include`: names it probes must be checked for absence too.
    pub has_include: bool,
    /// The state the digest belongs to.
    pub stamp: Stamp,
}

struct DirListing {
    stamp: Stamp,
    names: Arc<HashSet<OsString>>,
}

/// Memoized digests and directory listings, shared by every connection of the daemon.
#[derive(Default)]
pub struct FileCache {
    files: Mutex<HashMap<PathBuf, FileInfo>>,
    dirs: Mutex<HashMap<PathBuf, DirListing>>,
}

/// Largest file rcc digests (larger ones make the compile uncacheable through the error path).
const MAX_FILE: u64 = 1 << 30;

impl FileCache {
    /// A new, empty cache.
    pub fn new() -> FileCache {
        FileCache::default()
    }

    /// The digest of a file's content, from the memo when its metadata is unchanged.
    pub fn info(&self, path: &Path) -> io::Result<FileInfo> {
        let meta = fs::metadata(path)?;
        let stamp = Stamp::of(&meta);
        if let Some(known) = self.files.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            if known.stamp == stamp {
                return Ok(*known);
            }
        }
        if !meta.is_file() {
            return Err(io::Error::other(format!("{} is not a regular file", path.display())));
        }
        if meta.len() > MAX_FILE {
            return Err(io::Error::other(format!("{} is larger than 1 GiB", path.display())));
        }
        let mut content = Vec::with_capacity(meta.len() as usize);
        fs::File::open(path)?.read_to_end(&mut content)?;
        let info = FileInfo {
            digest: Digest::of(&content),
            time_macros: has_time_macros(&content),
            incbin: memmem::find(&content, b".incbin").is_some(),
            asm_include: memmem::find(&content, b".include").is_some(),
            has_include: memmem::find(&content, b"__has_include").is_some(),
            stamp,
        };
        // Re-check: a file that changed while it was read must not be memoized under the old stamp.
        let after = Stamp::of(&fs::metadata(path)?);
        if after == stamp && !stamp.racy() {
            self.files.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_owned(), info);
        }
        Ok(FileInfo { stamp: after, ..info })
    }

    /// The names in a directory (`None` when it is not a readable directory), memoized by its stamp.
    pub fn listing(&self, dir: &Path) -> Option<Arc<HashSet<OsString>>> {
        let meta = fs::metadata(dir).ok().filter(fs::Metadata::is_dir)?;
        let stamp = Stamp::of(&meta);
        if let Some(known) = self.dirs.lock().unwrap_or_else(|e| e.into_inner()).get(dir) {
            if known.stamp == stamp {
                return Some(known.names.clone());
            }
        }
        let names: Arc<HashSet<OsString>> =
            Arc::new(fs::read_dir(dir).ok()?.flatten().map(|e| e.file_name()).collect());
        let after = fs::metadata(dir).map(|m| Stamp::of(&m)).ok();
        if after == Some(stamp) && !stamp.racy() {
            let listing = DirListing { stamp, names: names.clone() };
            self.dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(dir.to_owned(), listing);
        }
        Some(names)
    }
}

/// Whether the content uses a macro whose value depends on the time of compilation.
pub fn has_time_macros(content: &[u8]) -> bool {
    [&b"__DATE__"[..], b"__TIME__", b"__TIMESTAMP__"].iter().any(|m| memmem::find(content, m).is_some())
}

/// The header names a file probes with `__has_include(<x>)`, `__has_include("x")` or `__has_include_next`.
/// A probe whose argument is not a literal (a macro) cannot be followed: `None`.
pub fn has_include_names(content: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for at in memmem::find_iter(content, b"__has_include") {
        let mut rest = &content[at + b"__has_include".len()..];
        rest = rest.strip_prefix(b"_next").unwrap_or(rest);
        let skip_space = |r: &[u8]| -> usize { r.iter().take_while(|c| c.is_ascii_whitespace()).count() };
        rest = &rest[skip_space(rest)..];
        // `#ifdef __has_include`, `defined(__has_include)`: a feature test, not a probe.
        let Some(after_paren) = rest.strip_prefix(b"(") else { continue };
        let arg = &after_paren[skip_space(after_paren)..];
        let close = match arg.first() {
            Some(b'<') => b'>',
            Some(b'"') => b'"',
            _ => return None,
        };
        let end = arg[1..].iter().position(|c| *c == close)?;
        names.push(arg[1..1 + end].to_vec());
    }
    Some(names)
}

pub use rcc_fs::digest_file;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_follows_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.h");
        let cache = FileCache::new();
        fs::write(&p, "int a;").unwrap();
        let d1 = cache.info(&p).unwrap().digest;
        assert_eq!(d1, Digest::of(b"int a;"));
        fs::write(&p, "int b;").unwrap();
        assert_eq!(cache.info(&p).unwrap().digest, Digest::of(b"int b;"));
    }

    #[test]
    fn time_macros_are_seen() {
        assert!(has_time_macros(b"const char *d = __DATE__;"));
        assert!(has_time_macros(b"__TIMESTAMP__"));
        assert!(!has_time_macros(b"__TIME"));
    }

    #[test]
    fn has_include_probes_are_found() {
        let src = b"#if __has_include(<optional>) && __has_include( \"cfg.h\" )\n#endif\n#ifdef __has_include\n#endif\n#if __has_include_next(<limits.h>)\n#endif";
        assert_eq!(has_include_names(src), Some(vec![b"optional".to_vec(), b"cfg.h".to_vec(), b"limits.h".to_vec()]));
        assert_eq!(has_include_names(b"#if __has_include(HEADER)"), None);
    }

    #[test]
    fn existence_follows_creation() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new();
        let exists = |p: &Path| cache.listing(p.parent().unwrap()).is_some_and(|n| n.contains(p.file_name().unwrap()));
        let p = dir.path().join("new.h");
        assert!(!exists(&p));
        fs::write(&p, "").unwrap();
        assert!(exists(&p));
        assert!(!exists(&dir.path().join("missing/x.h")));
    }
}
