//! Working inside a directory whose contents someone else controls, without ever following a symbolic link.
//!
//! A pool worker writes a toolchain pack's tree (paths and links chosen by a client) and reads the outputs
//! of a sandboxed action (files the action made, possibly links to `/etc/shadow`). Plain path calls
//! (`create_dir_all`, `open`, `rename`) follow every link on the way and would let either reach any file
//! of the host. A [`Beneath`] holds the directory open and resolves every path given to it with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: the kernel refuses a path
//! that leaves the directory (`..`, an absolute path) or meets a link anywhere, the last component
//! included, so a check cannot race with the action or the pack swapping a directory for a link.
//! New names are created relative to the descriptor of their parent directory (`mkdirat`, `openat` with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, `symlinkat`, `renameat`), never through a path.
//!
//! Needs Linux 5.6 or later (`openat2`).

use crate::atomic::TEMP_PREFIX;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How every path under a [`Beneath`] is resolved: inside it, through no link of any kind.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

/// A directory held open; paths given to its methods are relative to it and resolved beneath it without
/// following any link.
#[derive(Debug)]
pub struct Beneath {
    dir: OwnedFd,
    path: PathBuf,
}

impl Beneath {
    /// Opens the directory `dir` (trusted: the caller's own; it must not itself be a link).
    pub fn open(dir: &Path) -> io::Result<Beneath> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| with_path(e.into(), dir))?;
        Ok(Beneath { dir: fd, path: dir.to_owned() })
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `rel` beneath this one.
    pub fn open_dir(&self, rel: &Path) -> io::Result<Beneath> {
        // No O_NOFOLLOW: with O_DIRECTORY it turns a final link into ENOTDIR; RESOLVE_NO_SYMLINKS refuses
        // it (ELOOP) like any other link on the way.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = self.resolve(rel, flags)?;
        Ok(Beneath { dir: fd, path: self.path.join(rel) })
    }

    /// Creates the directory `rel` and its missing parents, each new one with exactly `mode`. An existing
    /// link on the way is an error, never followed.
    pub fn create_dir_all(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let mut current = Beneath { dir: self.dir.try_clone()?, path: self.path.clone() };
        for name in names(rel)? {
            let created = match rustix::fs::mkdirat(&current.dir, name, Mode::from_raw_mode(mode)) {
                Ok(()) => true,
                Err(rustix::io::Errno::EXIST) => false,
                Err(e) => return Err(with_path(e.into(), &current.path.join(name))),
            };
            current = current.open_dir(Path::new(name))?;
            if created {
                // mkdirat's mode is masked by the umask; the caller asked for this one.
                rustix::fs::fchmod(&current.dir, Mode::from_raw_mode(mode))
                    .map_err(|e| with_path(e.into(), &current.path))?;
            }
        }
        Ok(())
    }

    /// Writes `data` to the file `rel` with exactly `mode`, replacing whatever file or link is there (a
    /// link is replaced, never written through): a new file in the same directory, then a rename.
    pub fn write_file(&self, rel: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        let temp = temp_name();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent.dir, temp.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(|e| with_path(e.into(), &parent.path.join(&temp)))?;
        let written: io::Result<()> = (|| {
            let mut file = File::from(fd);
            file.write_all(data)?;
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
            rustix::fs::renameat(&parent.dir, temp.as_str(), &parent.dir, name)?;
            Ok(())
        })();
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&parent.dir, temp.as_str(), AtFlags::empty());
        }
        written.map_err(|e| with_path(e, &self.path.join(rel)))
    }

    /// Makes `rel` a symbolic link to `target` (stored as given, never resolved here), replacing a file or
    /// link already there.
    pub fn symlink(&self, rel: &Path, target: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        let temp = temp_name();
        rustix::fs::symlinkat(target, &parent.dir, temp.as_str())
            .map_err(|e| with_path(e.into(), &self.path.join(rel)))?;
        rustix::fs::renameat(&parent.dir, temp.as_str(), &parent.dir, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&parent.dir, temp.as_str(), AtFlags::empty());
            with_path(e.into(), &self.path.join(rel))
        })
    }

    /// Opens the regular file `rel` for reading. A link anywhere on the way (the file itself included), a
    /// directory, a fifo or a device is refused with [`io::ErrorKind::InvalidInput`]; opening never blocks
    /// (a fifo is opened non-blocking, then refused).
    pub fn open_regular(&self, rel: &Path) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = self.resolve(rel, flags)?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| with_path(e.into(), &self.path.join(rel)))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            let why = format!("{}: not a regular file ({kind:?})", self.path.join(rel).display());
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        Ok(File::from(fd))
    }

    /// `openat2` of `rel` beneath this directory; a link or an escape on the way is `InvalidInput`.
    fn resolve(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        names(rel)?;
        rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), RESOLVE).map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: a symbolic link on the way (not followed)", self.path.join(rel).display()),
            ),
            e => with_path(e.into(), &self.path.join(rel)),
        })
    }

    /// The directory holding `rel` (opened beneath this one) and its last name.
    fn parent_of<'a>(&self, rel: &'a Path) -> io::Result<(Beneath, &'a OsStr)> {
        let all = names(rel)?;
        let (name, dirs) = all.split_last().ok_or_else(|| invalid(rel))?;
        let parent = if dirs.is_empty() {
            Beneath { dir: self.dir.try_clone()?, path: self.path.clone() }
        } else {
            self.open_dir(&dirs.iter().collect::<PathBuf>())?
        };
        Ok((parent, *name))
    }
}

/// The names of a relative path; anything but plain names (`..`, `/`, empty) is refused.
fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for part in rel.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return Err(invalid(rel)),
        }
    }
    if out.is_empty() {
        return Err(invalid(rel));
    }
    Ok(out)
}

fn invalid(rel: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a plain relative path", rel.display()))
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A fresh temporary name (see [`crate::atomic::is_temp_name`]).
fn temp_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{TEMP_PREFIX}{}.{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A directory with a host file outside it, and links inside pointing at both.
    struct Scene {
        _dir: tempfile::TempDir,
        tree: PathBuf,
        host: PathBuf,
    }

    fn scene() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        let host = dir.path().join("host");
        fs::create_dir_all(&tree).unwrap();
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("victim"), "host content").unwrap();
        symlink(&host, tree.join("linked-dir")).unwrap();
        symlink(host.join("victim"), tree.join("linked-file")).unwrap();
        Scene { tree, host, _dir: dir }
    }

    fn refused(result: io::Result<impl std::fmt::Debug>) {
        let e = result.expect_err("must be refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn nothing_is_written_through_a_link() {
        let s = scene();
        let tree = Beneath::open(&s.tree).unwrap();
        refused(tree.write_file(Path::new("linked-dir/victim"), b"pwned", 0o644));
        refused(tree.create_dir_all(Path::new("linked-dir/new/deeper"), 0o755));
        refused(tree.symlink(Path::new("linked-dir/victim"), Path::new("/x")));
        refused(tree.write_file(Path::new("../host/victim"), b"pwned", 0o644));
        refused(tree.write_file(Path::new("/etc/passwd"), b"pwned", 0o644));
        assert_eq!(fs::read_to_string(s.host.join("victim")).unwrap(), "host content");
        assert_eq!(fs::read_dir(&s.host).unwrap().count(), 1, "nothing created in the host directory");
        // A link as the last name is replaced, not written through.
        tree.write_file(Path::new("linked-file"), b"mine", 0o444).unwrap();
        assert_eq!(fs::read_to_string(s.host.join("victim")).unwrap(), "host content");
        assert_eq!(fs::read_to_string(s.tree.join("linked-file")).unwrap(), "mine");
        assert_eq!(fs::symlink_metadata(s.tree.join("linked-file")).unwrap().permissions().mode() & 0o777, 0o444);
        assert!(fs::read_dir(&s.tree).unwrap().all(|e| !crate::atomic::is_temp_name(&e.unwrap().file_name())));
    }

    #[test]
    fn nothing_is_read_through_a_link_and_only_regular_files_open() {
        let s = scene();
        fs::write(s.tree.join("real"), "output").unwrap();
        fs::create_dir(s.tree.join("dir")).unwrap();
        let fifo = s.tree.join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        let tree = Beneath::open(&s.tree).unwrap();
        let mut text = String::new();
        tree.open_regular(Path::new("real")).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "output");
        for bad in ["linked-file", "linked-dir/victim", "dir", "fifo", "../host/victim"] {
            refused(tree.open_regular(Path::new(bad)));
        }
        assert_eq!(tree.open_regular(Path::new("missing")).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn directories_files_and_links_are_made_with_their_modes() {
        let s = scene();
        let tree = Beneath::open(&s.tree).unwrap();
        tree.create_dir_all(Path::new("usr/lib/x"), 0o755).unwrap();
        tree.create_dir_all(Path::new("usr/lib"), 0o755).unwrap();
        tree.write_file(Path::new("usr/lib/x/tool"), b"#!", 0o555).unwrap();
        tree.symlink(Path::new("lib"), Path::new("usr/lib")).unwrap();
        tree.symlink(Path::new("lib"), Path::new("usr/lib")).unwrap(); // replaced, not EEXIST
        let mode = |p: &str| fs::symlink_metadata(s.tree.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("usr"), mode("usr/lib/x"), mode("usr/lib/x/tool")), (0o755, 0o755, 0o555));
        assert_eq!(fs::read_link(s.tree.join("lib")).unwrap(), Path::new("usr/lib"));
        assert_eq!(fs::read(s.tree.join("usr/lib/x/tool")).unwrap(), b"#!");
    }
}
