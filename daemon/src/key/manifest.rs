//! Direct mode's manifests: for one direct key (compiler, arguments, source, environment), the input sets
//! seen by earlier compiles, each leading to a result.
//!
//! An entry matches when every recorded input still has its recorded digest **and** no file has appeared
//! that the preprocessor would now find first. For the second part an entry records the include search
//! directories (the command line's, the compiler's defaults, and the directory of every file read, which
//! `#include "…"` searches first) and the names under which each header could have been included (its path
//! relative to each search directory it lies in). Every (directory, name) pair that did not exist when the
//! entry was made must still not exist. Peers record only the directories, so a new header in an existing
//! directory goes unseen; this does not.
//!
//! The entry is made after the compile, so a pair found present then may be a file created after the
//! compiler looked (a shadowing header written right after the compile): recorded as present, it would
//! never break the match. An entry is therefore refused when any present pair changed since the compile
//! started — the absent-file facts it stores are those the compile saw.

use super::files::FileCache;
use rcc_proto::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Whether `path` (itself, not what a link points to) changed at or after `since_ns`, or cannot be read.
fn changed_since(path: &Path, since_ns: i64) -> bool {
    std::fs::symlink_metadata(path).map_or(true, |m| super::files::Stamp::of(&m).changed_ns() >= since_ns)
}

/// Most entries kept per manifest (the newest first).
pub const MAX_ENTRIES: usize = 16;

/// A manifest: the entries for one direct key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Newest first.
    pub entries: Vec<Entry>,
}

/// One set of inputs and the result it led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Every file read (paths as the compiler reported them, relative to the working directory or absolute).
    pub inputs: Vec<(Vec<u8>, Digest)>,
    /// Include search directories, absolute.
    pub dirs: Vec<Vec<u8>>,
    /// Names headers could have been included under.
    pub names: Vec<Vec<u8>>,
    /// Bit `d * names.len() + n` set when `dirs[d]/names[n]` existed when the entry was made.
    pub present: Vec<u8>,
    /// The result key.
    pub result: Digest,
}

impl Manifest {
    /// Adds an entry in front, replacing one with the same inputs, and keeps at most [`MAX_ENTRIES`].
    pub fn add(&mut self, entry: Entry) {
        self.entries.retain(|e| e.inputs != entry.inputs);
        self.entries.insert(0, entry);
        self.entries.truncate(MAX_ENTRIES);
    }

    /// The first entry whose inputs and search directories are as recorded.
    pub fn find(&self, files: &FileCache, cwd: &Path) -> Option<&Entry> {
        self.entries.iter().find(|e| e.matches(files, cwd))
    }
}

impl Entry {
    /// Builds an entry from the inputs a compile read, checking which (directory, name) pairs exist now;
    /// `None` when one of those that exist changed at or after `compile_start_ns` (it may not have been
    /// there when the compiler searched).
    pub fn new(
        files: &FileCache,
        cwd: &Path,
        inputs: Vec<(Vec<u8>, Digest)>,
        probes: &[Vec<u8>],
        search_dirs: &[PathBuf],
        result: Digest,
        compile_start_ns: i64,
    ) -> Option<Entry> {
        let absolute: Vec<PathBuf> = inputs.iter().map(|(p, _)| normalize(&cwd.join(OsStr::from_bytes(p)))).collect();
        let mut dirs: Vec<PathBuf> = search_dirs.iter().map(|d| normalize(&cwd.join(d))).collect();
        dirs.extend(absolute.iter().filter_map(|p| p.parent().map(Path::to_owned)));
        let mut seen = BTreeSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        let mut names = BTreeSet::new();
        for input in &absolute {
            for dir in &dirs {
                if let Ok(rel) = input.strip_prefix(dir) {
                    if !rel.as_os_str().is_empty() {
                        names.insert(rel.to_owned());
                    }
                }
            }
        }
        // Names `__has_include` asked for: whether they exist anywhere on the path decided the output too.
        names.extend(probes.iter().map(|p| PathBuf::from(OsStr::from_bytes(p))));
        let names: Vec<PathBuf> = names.into_iter().collect();
        let name_bytes: Vec<Vec<u8>> = names.iter().map(|n| n.as_os_str().as_bytes().to_vec()).collect();
        let groups = group_by_subdirectory(&name_bytes);
        let mut present = vec![0u8; (dirs.len() * names.len()).div_ceil(8)];
        for (d, dir) in dirs.iter().enumerate() {
            for (sub, files_in_sub) in &groups {
                let parent = if sub.is_empty() { dir.clone() } else { dir.join(OsStr::from_bytes(sub)) };
                let Some(listing) = files.listing(&parent) else { continue };
                for (n, file) in files_in_sub {
                    if listing.contains(*file) {
                        if changed_since(&parent.join(file), compile_start_ns) {
                            return None;
                        }
                        let bit = d * names.len() + n;
                        present[bit / 8] |= 1 << (bit % 8);
                    }
                }
            }
        }
        let bytes = |p: &PathBuf| p.as_os_str().as_bytes().to_vec();
        // Directories under the working directory are kept relative to it, so an entry made in one checkout
        // checks the right directories when it is used from another.
        let relative = |d: &PathBuf| match d.strip_prefix(cwd) {
            Ok(rel) if rel.as_os_str().is_empty() => b".".to_vec(),
            Ok(rel) => bytes(&rel.to_owned()),
            Err(_) => bytes(d),
        };
        Some(Entry { inputs, dirs: dirs.iter().map(relative).collect(), names: name_bytes, present, result })
    }

    /// Whether the inputs are unchanged and no absent (directory, name) pair has appeared.
    pub fn matches(&self, files: &FileCache, cwd: &Path) -> bool {
        let inputs_same = self.inputs.iter().all(|(path, digest)| {
            files.info(&cwd.join(OsStr::from_bytes(path))).is_ok_and(|info| info.digest == *digest)
        });
        if !inputs_same || self.present.len() < (self.dirs.len() * self.names.len()).div_ceil(8) {
            return false;
        }
        tracing::trace!(
            inputs = self.inputs.len(),
            dirs = self.dirs.len(),
            names = self.names.len(),
            "inputs unchanged"
        );
        let groups = group_by_subdirectory(&self.names);
        for (d, dir) in self.dirs.iter().enumerate() {
            let dir = cwd.join(OsStr::from_bytes(dir));
            // A search directory that does not exist holds nothing; one whose listing lacks a subdirectory's
            // first component holds nothing below it: no system call for those.
            let Some(top) = files.listing(&dir) else { continue };
            for (sub, files_in_sub) in &groups {
                let absent_somewhere = files_in_sub.iter().any(|(n, _)| {
                    let bit = d * self.names.len() + n;
                    self.present[bit / 8] & (1 << (bit % 8)) == 0
                });
                if !absent_somewhere {
                    continue;
                }
                let listing = if sub.is_empty() {
                    top.clone()
                } else {
                    let first = sub.split(|b| *b == b'/').next().unwrap_or_default();
                    if !top.contains(OsStr::from_bytes(first)) {
                        continue;
                    }
                    let Some(listing) = files.listing(&dir.join(OsStr::from_bytes(sub))) else { continue };
                    listing
                };
                for (n, file) in files_in_sub {
                    let bit = d * self.names.len() + n;
                    if self.present[bit / 8] & (1 << (bit % 8)) == 0 && listing.contains(*file) {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// Names grouped by their directory part, so that each (search directory, subdirectory) pair costs one
/// listing lookup and each name one hash probe: no path is built per candidate.
fn group_by_subdirectory(names: &[Vec<u8>]) -> HashMap<&[u8], Vec<(usize, &OsStr)>> {
    let mut groups: HashMap<&[u8], Vec<(usize, &OsStr)>> = HashMap::new();
    for (n, name) in names.iter().enumerate() {
        let (sub, file) = match name.iter().rposition(|b| *b == b'/') {
            Some(slash) => (&name[..slash], &name[slash + 1..]),
            None => (&name[..0], &name[..]),
        };
        groups.entry(sub).or_default().push((n, OsStr::from_bytes(file)));
    }
    groups
}

/// Lexical normalisation (`a/./b/../c` → `a/c`), used only to relate paths to directories by name.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// `a.c` including `<x.h>`, found in `inc2/`; the file cache and the inputs a compile of it read.
    fn unit_including_x_h_from_inc2() -> (tempfile::TempDir, FileCache, Vec<(Vec<u8>, Digest)>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("inc2")).unwrap();
        fs::write(root.join("inc2/x.h"), "int x;").unwrap();
        fs::write(root.join("a.c"), "#include <x.h>").unwrap();
        let files = FileCache::new();
        let inputs = vec![
            (b"a.c".to_vec(), files.info(&root.join("a.c")).unwrap().digest),
            (b"inc2/x.h".to_vec(), files.info(&root.join("inc2/x.h")).unwrap().digest),
        ];
        (dir, files, inputs)
    }

    #[test]
    fn new_shadowing_header_in_existing_directory_breaks_the_match() {
        let (dir, files, inputs) = unit_including_x_h_from_inc2();
        let root = dir.path();
        fs::create_dir_all(root.join("inc1")).unwrap();
        let compile_start = crate::key::files::coarse_now_ns() + 1_000_000_000;
        let dirs = [PathBuf::from("inc1"), PathBuf::from("inc2")];
        let entry = Entry::new(&files, root, inputs, &[], &dirs, Digest::of(b"r"), compile_start).unwrap();
        assert!(entry.matches(&files, root));
        fs::write(root.join("inc1/x.h"), "int y;").unwrap();
        assert!(!entry.matches(&files, root), "inc1/x.h now shadows inc2/x.h");
        fs::remove_file(root.join("inc1/x.h")).unwrap();
        assert!(entry.matches(&files, root));
        fs::write(root.join("inc2/x.h"), "int z;").unwrap();
        assert!(!entry.matches(&files, root), "changed header");
    }

    #[test]
    fn a_header_that_appeared_after_the_compile_started_yields_no_entry() {
        let (dir, files, inputs) = unit_including_x_h_from_inc2();
        let root = dir.path();
        // The compile starts; inc1/x.h (and inc1 itself) appear before the entry is made.
        let compile_start = crate::key::files::coarse_now_ns();
        crate::key::files::wait_for_tick_after(compile_start);
        fs::create_dir_all(root.join("inc1")).unwrap();
        fs::write(root.join("inc1/x.h"), "int y;").unwrap();
        let dirs = [PathBuf::from("inc1"), PathBuf::from("inc2")];
        assert_eq!(Entry::new(&files, root, inputs.clone(), &[], &dirs, Digest::of(b"r"), compile_start), None);
        // Had it been there before the compile, the entry records it present.
        let later = crate::key::files::coarse_now_ns() + 1_000_000_000;
        assert!(Entry::new(&files, root, inputs, &[], &dirs, Digest::of(b"r"), later).is_some());
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
