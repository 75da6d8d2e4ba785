//! `rcc-pack`: toolchains travel. The compiler a client uses is packed as a content-addressed list of files and links,
//! so that a pool worker with no compiler installed can run it.
//!
//! A pack holds every file the compiler runs from (the driver, the programs it runs — `cc1`, `cc1plus`,
//! `as` for gcc — and the shared libraries each loads, the dynamic loader included), each under the path it
//! is reached by, with every symbolic link on the way (`/lib` -> `usr/lib` on merged-/usr systems, `gcc` ->
//! `gcc-12`, `libisl.so.23` -> `libisl.so.23.2.0`). File contents travel as CAS blobs named by their
//! SHA-256, so toolchains sharing libraries share blobs; the pack itself is one more blob, and its digest
//! names the toolchain in an action. [`Pack::materialize`] rebuilds the tree under a directory of the
//! worker's, verifying every blob, ready to be mounted read-only at `/` in the sandbox.
//!
//! Depends on rcc-proto (digests) and rcc-fs (file digests, link resolution, atomic writes); no async
//! runtime. Start reading at [`Pack::of_compiler`] (the client side) and [`Pack::materialize`] (the worker's).

use rcc_fs::digest_file;
use rcc_proto::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// Bounds on a pack received from the network.
const MAX_ENTRIES: usize = 4096;
const MAX_PATH: usize = 4096;

/// One entry of a pack, by absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A regular file: its content's digest, size and whether it is executable.
    File {
        /// SHA-256 of the content (the CAS blob).
        digest: Digest,
        /// Size in bytes.
        size: u64,
        /// Mode has an execute bit.
        executable: bool,
    },
    /// A symbolic link and its target, as `readlink` gives it.
    Symlink {
        /// The link's target (relative or absolute).
        target: PathBuf,
    },
}

/// A packed toolchain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pack {
    /// Entries by absolute path.
    pub entries: BTreeMap<PathBuf, Entry>,
}

/// Why a pack could not be built, read or materialized.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The pack's bytes or an entry are not acceptable.
    #[error("invalid toolchain pack: {0}")]
    Invalid(String),
    /// A blob's content does not have the digest the pack names.
    #[error("blob for {path} does not match its digest")]
    Corrupt {
        /// The entry whose blob was wrong.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Io { path: path.to_owned(), source }
}

impl Pack {
    /// Packs the compiler run as `driver` (an absolute path): the driver, the programs it names with
    /// `-print-prog-name` (gcc's `cc1`, `cc1plus`, `as`; clang has none outside itself) and every shared
    /// library these load.
    pub fn of_compiler(driver: &Path) -> Result<Pack, PackError> {
        let mut programs = vec![driver.to_owned()];
        for prog in ["cc1", "cc1plus", "as"] {
            if let Some(found) = prog_name(driver, prog) {
                programs.push(found);
            }
        }
        Pack::of_programs(&programs)
    }

    /// Packs the programs (absolute paths) and every shared library they load, the dynamic loader included.
    pub fn of_programs(programs: &[PathBuf]) -> Result<Pack, PackError> {
        let mut pack = Pack::default();
        for program in programs {
            pack.add(program)?;
        }
        for library in shared_libraries(programs) {
            pack.add(&library)?;
        }
        Ok(pack)
    }

    /// Adds the file reached at `path` (absolute), recording each symbolic link met on the way.
    pub fn add(&mut self, path: &Path) -> Result<(), PackError> {
        let resolved = rcc_fs::links::resolve(path).map_err(io_err(path))?;
        for (link, target) in resolved.links {
            self.entries.insert(link, Entry::Symlink { target });
        }
        let real = resolved.real;
        let meta = fs::metadata(&real).map_err(io_err(&real))?;
        if !meta.is_file() {
            return Err(PackError::Invalid(format!("{} is not a regular file", real.display())));
        }
        let digest = digest_file(&real).map_err(io_err(&real))?;
        let executable = meta.permissions().mode() & 0o111 != 0;
        self.entries.insert(real, Entry::File { digest, size: meta.len(), executable });
        Ok(())
    }

    /// The pack's bytes (postcard); their SHA-256 is the toolchain's name in actions.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Reads a pack from untrusted bytes and [`check`](Self::check)s it.
    pub fn decode(bytes: &[u8]) -> Result<Pack, PackError> {
        let pack: Pack = postcard::from_bytes(bytes).map_err(|e| PackError::Invalid(e.to_string()))?;
        pack.check()?;
        Ok(pack)
    }

    /// Whether the pack may be materialized: bounded; every path absolute, free of `..` and not `/`; no
    /// entry below a link or a file entry of the pack. A pack with `/esc -> /home/user` and `/esc/.bashrc`
    /// would otherwise write the host's file through the link it has just made.
    pub fn check(&self) -> Result<(), PackError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(PackError::Invalid(format!("{} entries (at most {MAX_ENTRIES})", self.entries.len())));
        }
        for path in self.entries.keys() {
            let text_len = path.as_os_str().len();
            let clean = path.is_absolute()
                && text_len <= MAX_PATH
                && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
            if !clean || path == Path::new("/") {
                return Err(PackError::Invalid(format!("entry path {}", path.display())));
            }
            for above in path.ancestors().skip(1) {
                match self.entries.get(above) {
                    Some(Entry::Symlink { .. }) => {
                        let why = format!("entry {} is below the link {}", path.display(), above.display());
                        return Err(PackError::Invalid(why));
                    }
                    Some(Entry::File { .. }) => {
                        let why = format!("entry {} is below the file {}", path.display(), above.display());
                        return Err(PackError::Invalid(why));
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// The digests of the file contents the pack needs.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut digests: Vec<Digest> = self
            .entries
            .values()
            .filter_map(|e| match e {
                Entry::File { digest, .. } => Some(*digest),
                Entry::Symlink { .. } => None,
            })
            .collect();
        digests.sort();
        digests.dedup();
        digests
    }

    /// Writes the tree under `root` (entry `/usr/bin/gcc` becomes `root/usr/bin/gcc`), taking each file's
    /// content from `blob` and checking its digest. Links are written as they were; an absolute target
    /// resolves inside `root` once `root` is mounted at `/`. The pack is [`check`](Self::check)ed first, and
    /// every path is opened beneath `root` without following any link ([`rcc_fs::Beneath`]): nothing is
    /// written outside `root`, whatever links the tree or `root` already holds. Directories are 0755,
    /// files 0555 or 0444: a toolchain holds compilers only, and the sandbox's user must read them.
    pub fn materialize(
        &self,
        root: &Path,
        mut blob: impl FnMut(&Digest) -> io::Result<Vec<u8>>,
    ) -> Result<(), PackError> {
        self.check()?;
        let tree = rcc_fs::Beneath::open(root).map_err(io_err(root))?;
        for (path, entry) in &self.entries {
            let relative = path.strip_prefix("/").map_err(|_| PackError::Invalid(path.display().to_string()))?;
            if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty()) {
                tree.create_dir_all(parent, 0o755).map_err(io_err(path))?;
            }
            match entry {
                Entry::File { digest, size, executable } => {
                    let data = blob(digest).map_err(io_err(path))?;
                    if data.len() as u64 != *size || Digest::of(&data) != *digest {
                        return Err(PackError::Corrupt { path: path.clone() });
                    }
                    let mode = if *executable { 0o555 } else { 0o444 };
                    tree.write_file(relative, &data, mode).map_err(io_err(path))?;
                }
                Entry::Symlink { target } => tree.symlink(relative, target).map_err(io_err(path))?,
            }
        }
        Ok(())
    }
}

/// Where the driver finds one of its programs (`-print-prog-name`), as an absolute path: the driver's own
/// directories first, else the name looked up on PATH.
fn prog_name(driver: &Path, prog: &str) -> Option<PathBuf> {
    let out = Command::new(driver)
        .arg(format!("-print-prog-name={prog}"))
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let named = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if named.is_absolute() {
        return named.is_file().then_some(named);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(&named)).find(|p| p.is_file())
}

/// The shared libraries the programs load, by the paths `ldd` reports (soname links), and the dynamic
/// loader named in each program.
fn shared_libraries(programs: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").args(programs).env("LC_ALL", "C").stdin(Stdio::null()).output() else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.ends_with(':') {
                return None; // `/usr/bin/as:`, the header ldd prints per program when given several
            }
            // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or the loader: `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            let target = line.split("=>").nth(1).unwrap_or(line).trim();
            let path = target.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn gcc() -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).map(|d| d.join("gcc")).find(|p| p.is_file()).expect("gcc on PATH")
    }

    /// The blobs a pack names, read from the host (what a client uploads).
    fn blobs_of(pack: &Pack) -> HashMap<Digest, Vec<u8>> {
        let mut blobs = HashMap::new();
        for (path, entry) in &pack.entries {
            if let Entry::File { digest, .. } = entry {
                blobs.insert(*digest, fs::read(path).unwrap());
            }
        }
        blobs
    }

    #[test]
    fn gcc_is_packed_with_its_programs_libraries_loader_and_links() {
        let pack = Pack::of_compiler(&gcc()).unwrap();
        let names: Vec<String> = pack.entries.keys().map(|p| p.display().to_string()).collect();
        for needed in ["cc1", "libc.so.6", "ld-linux-x86-64.so.2", "libisl.so"] {
            assert!(names.iter().any(|n| n.contains(needed)), "{needed} missing from {names:#?}");
        }
        assert!(pack.entries.values().any(|e| matches!(e, Entry::Symlink { .. })), "links recorded");
        let decoded = Pack::decode(&pack.encode()).unwrap();
        assert_eq!(decoded, pack);
    }

    #[test]
    fn untrusted_packs_are_checked() {
        let mut pack = Pack::default();
        pack.entries.insert(PathBuf::from("/usr/../etc/passwd"), Entry::Symlink { target: "x".into() });
        assert!(Pack::decode(&pack.encode()).is_err(), "`..` refused");
        let mut pack = Pack::default();
        pack.entries.insert(PathBuf::from("relative"), Entry::Symlink { target: "x".into() });
        assert!(Pack::decode(&pack.encode()).is_err(), "relative refused");
        assert!(Pack::decode(b"\xff\xff garbage").is_err());
    }

    /// A pack that links `/esc` to a host directory, then holds `/esc/.bashrc` (issue 11).
    fn escaping_pack(host: &Path, payload: &[u8]) -> Pack {
        let mut pack = Pack::default();
        pack.entries.insert("/esc".into(), Entry::Symlink { target: host.to_owned() });
        let file = Entry::File { digest: Digest::of(payload), size: payload.len() as u64, executable: false };
        pack.entries.insert("/esc/.bashrc".into(), file);
        pack
    }

    #[test]
    fn entries_below_a_link_are_refused_and_nothing_of_the_host_is_written() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join(".bashrc"), "original").unwrap();
        let pack = escaping_pack(host.path(), b"pwned");
        let err = Pack::decode(&pack.encode()).unwrap_err();
        assert!(err.to_string().contains("/esc/.bashrc is below the link /esc"), "{err}");
        // Materializing checks too, whoever built the pack.
        let root = tempfile::tempdir().unwrap();
        assert!(pack.materialize(root.path(), |_| Ok(b"pwned".to_vec())).is_err());
        assert_eq!(fs::read_to_string(host.path().join(".bashrc")).unwrap(), "original");
        // Below a file is as meaningless.
        let mut pack = Pack::default();
        pack.entries.insert("/f".into(), Entry::Symlink { target: "x".into() });
        pack.entries.insert("/g".into(), Entry::File { digest: Digest::of(b""), size: 0, executable: false });
        pack.entries.insert("/g/h".into(), Entry::File { digest: Digest::of(b""), size: 0, executable: false });
        assert!(Pack::decode(&pack.encode()).unwrap_err().to_string().contains("below the file /g"));
    }

    /// Even a valid pack cannot write through a link already in the directory it is materialized in.
    #[test]
    fn materializing_never_follows_a_link_already_there() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join(".bashrc"), "original").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), root.path().join("esc")).unwrap();
        let mut pack = Pack::default();
        let file = Entry::File { digest: Digest::of(b"pwned"), size: 5, executable: false };
        pack.entries.insert("/esc/.bashrc".into(), file.clone());
        pack.entries.insert("/esc/sub/new".into(), file);
        pack.check().unwrap();
        let err = pack.materialize(root.path(), |_| Ok(b"pwned".to_vec())).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(host.path().join(".bashrc")).unwrap(), "original");
        assert_eq!(fs::read_dir(host.path()).unwrap().count(), 1, "nothing created in the host directory");
    }

    #[test]
    fn a_blob_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        fs::write(&file, b"real content").unwrap();
        let mut pack = Pack::default();
        pack.add(&file).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = pack.materialize(out.path(), |_| Ok(b"other content".to_vec())).unwrap_err();
        assert!(matches!(err, PackError::Corrupt { .. }), "{err}");
        pack.materialize(out.path(), |_| Ok(b"real content".to_vec())).unwrap();
        let copy = out.path().join(file.strip_prefix("/").unwrap());
        assert_eq!(fs::read(copy).unwrap(), b"real content");
    }

    /// The worker's view: only the pack's tree, mounted at `/` in a bubblewrap sandbox, compiles a
    /// preprocessed unit to the same object as the host's gcc.
    #[test]
    fn a_materialized_gcc_compiles_with_nothing_else_of_the_host() {
        let gcc = gcc();
        let pack = Pack::decode(&Pack::of_compiler(&gcc).unwrap().encode()).unwrap();
        let blobs = blobs_of(&pack);
        let root = tempfile::tempdir().unwrap();
        pack.materialize(root.path(), |d| blobs.get(d).cloned().ok_or_else(|| io::Error::other("no blob"))).unwrap();

        let work = tempfile::tempdir().unwrap();
        fs::write(work.path().join("unit.i"), "int twice(int x) { return 2 * x; }\n").unwrap();
        let host =
            Command::new(&gcc).args(["-O2", "-c", "unit.i", "-o", "host.o"]).current_dir(work.path()).status().unwrap();
        assert!(host.success());

        // The pack's tree alone at `/`, the work directory at /work.
        let sandboxed = |args: &[&str]| {
            let mut bwrap = Command::new("bwrap");
            bwrap.args(["--unshare-all", "--die-with-parent", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin"]);
            for top in fs::read_dir(root.path()).unwrap() {
                let top = top.unwrap();
                let inside = Path::new("/").join(top.file_name());
                if top.file_type().unwrap().is_symlink() {
                    bwrap.arg("--symlink").arg(fs::read_link(top.path()).unwrap()).arg(&inside);
                } else {
                    bwrap.arg("--ro-bind").arg(top.path()).arg(&inside);
                }
            }
            bwrap.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
            bwrap.arg("--bind").arg(work.path()).arg("/work").args(["--chdir", "/work"]);
            bwrap.arg(&gcc).args(args);
            bwrap.output().expect("bwrap (scripts/install-deps installs bubblewrap)")
        };
        let out = sandboxed(&["-O2", "-c", "unit.i", "-o", "sandboxed.o"]);
        assert!(out.status.success(), "sandboxed gcc failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            fs::read(work.path().join("host.o")).unwrap(),
            fs::read(work.path().join("sandboxed.o")).unwrap(),
            "the packed gcc gives the host's object"
        );
        // And nothing else of the host is there: the packed gcc preprocesses a unit without includes (the
        // positive control) but finds no system header.
        // `-I.`: with no include directory at all gcc refuses even to look for its implicit stdc-predef.h.
        fs::write(work.path().join("local.h"), "int local;\n").unwrap();
        fs::write(work.path().join("plain.c"), "#include <local.h>\nint plain;\n").unwrap();
        fs::write(work.path().join("hosted.c"), "#include <stdio.h>\nint hosted;\n").unwrap();
        let plain = sandboxed(&["-I.", "-E", "plain.c", "-o", "plain.i"]);
        assert!(plain.status.success(), "control: {}", String::from_utf8_lossy(&plain.stderr));
        let hosted = sandboxed(&["-I.", "-E", "hosted.c", "-o", "hosted.i"]);
        let stderr = String::from_utf8_lossy(&hosted.stderr);
        assert!(!hosted.status.success() && stderr.contains("stdio.h"), "system headers are not in the pack: {stderr}");
        assert!(Path::new("/usr/include/stdio.h").is_file(), "the host has the header, so only the sandbox hides it");
    }
}

#[cfg(test)]
mod proptests {
    use super::Pack;
    use proptest::collection::vec;
    use proptest::num::u8::ANY;

    proptest::proptest! {
        /// An uploaded pack's bytes never panic the decoder, and a pack that decodes re-encodes to bytes that
        /// decode to the same pack (the fuzz target `pack_decode` runs the same for longer).
        #[test]
        fn arbitrary_bytes_never_panic_and_decoded_packs_round_trip(bytes in vec(ANY, 0..4096)) {
            if let Ok(pack) = Pack::decode(&bytes) {
                let again = Pack::decode(&pack.encode()).expect("a decoded pack re-encodes");
                proptest::prop_assert_eq!(again.encode(), pack.encode());
            }
        }
    }
}
