//! Mount lists: a toolchain made visible file by file, at the paths it was built for.
//!
//! A compiler finds its parts by absolute paths baked in at build time: the dynamic loader
//! (`/lib64/ld-linux-x86-64.so.2` in every x86-64 executable), shared libraries in the loader's default
//! directories, `cc1` under `/usr/lib/gcc/…`, `as` on `PATH`. On merged-/usr systems most of those paths
//! go through symbolic links (`/lib64 -> usr/lib64`, `/usr/lib64/ld-linux-x86-64.so.2 ->
//! /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`, `/lib -> usr/lib`). So each file is resolved one component
//! at a time, as the kernel does: every link met on the way is recreated inside the sandbox, and the file
//! it finally reaches is bound read-only at its real path. The sandbox then holds exactly those files and
//! links, with nothing else of the host visible.

use super::{Mount, SandboxError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Mounts showing the given toolchain files (absolute host paths, e.g. gcc's driver, `cc1`, `as`, their
/// shared libraries and the dynamic loader, as `ldd` names them) at the same paths inside the sandbox:
/// symbolic links on the way are recreated, the files they lead to bound read-only. Directories may be
/// given too (e.g. a header directory); they are bound whole.
pub fn toolchain_mounts(files: &[PathBuf]) -> Result<Vec<Mount>, SandboxError> {
    let mut mounts = Vec::new();
    let mut seen = HashSet::new();
    for file in files {
        for mount in resolve(file)? {
            if seen.insert(mount.inside().to_owned()) {
                mounts.push(mount);
            }
        }
    }
    Ok(mounts)
}

/// The links met on the way to `path`'s real file, then a read-only bind of that file.
fn resolve(path: &Path) -> Result<Vec<Mount>, SandboxError> {
    let resolved = rcc_fs::links::resolve(path).map_err(|source| SandboxError::Io {
        what: "resolving toolchain path",
        path: path.to_owned(),
        source,
    })?;
    let mut mounts: Vec<Mount> =
        resolved.links.into_iter().map(|(inside, target)| Mount::Symlink { target, inside }).collect();
    mounts.push(Mount::read_only(resolved.real.clone(), resolved.real));
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_on_the_way_are_kept_and_the_file_is_bound_at_its_real_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        fs::create_dir_all(root.join("usr/lib/x")).expect("dirs");
        fs::write(root.join("usr/lib/x/ld.so.2"), b"").expect("file");
        symlink("usr/lib", root.join("lib")).expect("link");
        fs::create_dir_all(root.join("usr/lib64")).expect("dirs");
        symlink(root.join("lib/x/ld.so.2"), root.join("usr/lib64/ld.so")).expect("link");
        symlink("usr/lib64", root.join("lib64")).expect("link");

        let mounts = toolchain_mounts(&[root.join("lib64/ld.so"), root.join("lib/x/ld.so.2")]).expect("mounts");
        let real = root.join("usr/lib/x/ld.so.2");
        assert_eq!(
            mounts,
            vec![
                Mount::Symlink { target: "usr/lib64".into(), inside: root.join("lib64") },
                Mount::Symlink { target: root.join("lib/x/ld.so.2"), inside: root.join("usr/lib64/ld.so") },
                Mount::Symlink { target: "usr/lib".into(), inside: root.join("lib") },
                Mount::read_only(real.clone(), real),
            ]
        );
    }

    #[test]
    fn relative_and_missing_paths_are_errors() {
        assert!(toolchain_mounts(&[PathBuf::from("usr/bin/gcc")]).is_err());
        assert!(toolchain_mounts(&[PathBuf::from("/nonexistent/rcc/cc1")]).is_err());
    }
}
