//! Following a path's symbolic links one component at a time, as the kernel does, recording every link
//! met on the way. A toolchain moved to another machine (a pack) or shown in a sandbox (a mount list)
//! must keep those links: binaries name their loader and libraries by paths that go through them
//! (`/lib64/ld-linux-x86-64.so.2` -> `/lib/x86_64-linux-gnu/…` -> `usr/lib/…` on merged-/usr systems).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Links followed per path before giving up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// A path resolved: the links met, in order, and the real path reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Each link met: its path and its target as `readlink` gives it.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// The path with no link left in it.
    pub real: PathBuf,
}

/// Resolves an absolute path.
pub fn resolve(path: &Path) -> io::Result<Resolved> {
    if !path.is_absolute() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not absolute", path.display())));
    }
    let mut links = Vec::new();
    let mut real = PathBuf::from("/");
    let mut pending: VecDeque<OsString> = components(path);
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            real.pop();
            continue;
        }
        let candidate = real.join(&part);
        let meta = fs::symlink_metadata(&candidate)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", candidate.display())))?;
        if !meta.file_type().is_symlink() {
            real = candidate;
            continue;
        }
        if links.len() >= MAX_LINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = fs::read_link(&candidate)?;
        if target.is_absolute() {
            real = PathBuf::from("/");
        }
        for part in components(&target).into_iter().rev() {
            pending.push_front(part);
        }
        links.push((candidate, target));
    }
    Ok(Resolved { links, real })
}

/// A path's components as names, `..` kept, `/` and `.` dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_absolute_and_dotdot_links_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        fs::write(root.join("usr/lib/x/ld.so.2"), b"").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        fs::create_dir_all(root.join("usr/lib64")).unwrap();
        symlink(root.join("lib/x/ld.so.2"), root.join("usr/lib64/ld.so")).unwrap();
        symlink("../lib/x/ld.so.2", root.join("usr/lib64/up.so")).unwrap();
        let r = resolve(&root.join("usr/lib64/ld.so")).unwrap();
        assert_eq!(r.real, root.join("usr/lib/x/ld.so.2"));
        assert_eq!(
            r.links,
            vec![(root.join("usr/lib64/ld.so"), root.join("lib/x/ld.so.2")), (root.join("lib"), "usr/lib".into())]
        );
        assert_eq!(resolve(&root.join("usr/lib64/up.so")).unwrap().real, root.join("usr/lib/x/ld.so.2"));
        assert!(resolve(Path::new("relative")).is_err());
        assert!(resolve(&root.join("missing")).is_err());
    }
}
