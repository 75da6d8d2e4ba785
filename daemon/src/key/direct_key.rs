//! The common part of a C/C++ key: everything that can change the output except the source and headers.
//!
//! In order: the compiler identity and the name it is invoked by (`clang` and `clang++` are one binary that
//! behaves differently), every argument (depfile paths and targets excepted: they are rewritten on restore),
//! the environment variables compilers read, the working directory when the output embeds it, the content
//! of every file or directory a flag names, and what `-march=native` expands to on this host.

use super::args::ParsedArgs;
use super::identity::Compiler;
use crate::invocation::Invocation;
use crate::key::files::FileCache;
use rcc_proto::stats::Reason;
use rcc_proto::{Digest, KeyHasher};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Key format version: bump whenever what goes into a key changes.
pub const KEY_VERSION: u32 = 1;

/// Environment variables gcc and clang read that can change their output or messages.
pub const COMPILER_ENV: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LIBRARY_PATH",
    "LC_ALL",
    "LC_MESSAGES",
    "LC_CTYPE",
    "LANG",
    "LANGUAGE",
    "CCC_OVERRIDE_OPTIONS",
    "DEPENDENCIES_OUTPUT",
    "SUNPRO_DEPENDENCIES",
    "GCC_COLORS",
    "GCC_COMPARE_DEBUG",
    "GCC_EXTRA_DIAGNOSTIC_OUTPUT",
    "MACOSX_DEPLOYMENT_TARGET",
    "SDKROOT",
];

/// Most files digested under one directory a flag names.
const MAX_DIR_FILES: usize = 10_000;

/// Computes the common key.
pub fn common(files: &FileCache, inv: &Invocation, parsed: &ParsedArgs, compiler: &Compiler) -> Result<Digest, Reason> {
    let mut h = KeyHasher::new("c-common", KEY_VERSION);
    h.digest(b'C', &compiler.digest);
    h.bytes(b'n', inv.compiler.file_name().map(OsStr::as_bytes).unwrap_or_default());
    for arg in &parsed.key_args {
        h.bytes(b'a', arg.as_bytes());
    }
    for name in COMPILER_ENV {
        match inv.var(name) {
            Some(v) => h.bytes(b'e', name.as_bytes()).bytes(b'v', v.as_bytes()),
            None => h.bytes(b'E', name.as_bytes()),
        };
    }
    if parsed.debug_info {
        let mapped = map_prefix(&inv.cwd, &parsed.prefix_maps);
        tracing::trace!(cwd = %String::from_utf8_lossy(&mapped), "working directory keyed");
        h.bytes(b'w', &mapped);
    }
    if parsed.coverage {
        // Coverage notes and the object's .gcda path hold the directory unmapped.
        h.bytes(b'W', inv.cwd.as_os_str().as_bytes());
    }
    for file in &parsed.input_files {
        let info = files.info(&inv.cwd.join(file)).map_err(|_| Reason::UnhashableInput)?;
        h.bytes(b'f', file.as_os_str().as_bytes()).digest(b'd', &info.digest);
    }
    for dir in &parsed.input_dirs {
        h.bytes(b'D', dir.as_os_str().as_bytes());
        for (rel, digest) in digest_tree(files, &inv.cwd.join(dir))? {
            h.bytes(b'r', rel.as_os_str().as_bytes()).digest(b'd', &digest);
        }
    }
    if parsed.native_cpu {
        let env_path = inv.var("PATH").unwrap_or_default();
        let expansion = compiler.native_cpu(&inv.compiler, env_path).map_err(|_| Reason::UnhashableInput)?;
        h.bytes(b'N', &expansion);
    }
    Ok(h.finish())
}

/// The working directory as the output would embed it, after the user's prefix maps.
fn map_prefix(cwd: &Path, maps: &[(std::ffi::OsString, std::ffi::OsString)]) -> Vec<u8> {
    let cwd = cwd.as_os_str().as_bytes();
    // gcc applies the last matching map.
    for (old, new) in maps.iter().rev() {
        if let Some(rest) = cwd.strip_prefix(old.as_bytes()) {
            let mut out = new.as_bytes().to_vec();
            out.extend_from_slice(rest);
            return out;
        }
    }
    cwd.to_vec()
}

/// Every regular file under `dir`, sorted, with its digest.
fn digest_tree(files: &FileCache, dir: &Path) -> Result<Vec<(PathBuf, Digest)>, Reason> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|_| Reason::UnhashableInput)?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let info = files.info(&path).map_err(|_| Reason::UnhashableInput)?;
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_owned();
                out.push((rel, info.digest));
                if out.len() > MAX_DIR_FILES {
                    return Err(Reason::UnhashableInput);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_map_rewrites_the_working_directory() {
        let maps = vec![("/home/a/src".into(), ".".into())];
        assert_eq!(map_prefix(Path::new("/home/a/src/lib"), &maps), b"./lib");
        assert_eq!(map_prefix(Path::new("/other"), &maps), b"/other");
    }

    /// `-march=native` is keyed by what it means on the host: the same call on hosts with two CPUs (two
    /// expansions) has two keys, and one expansion always the same key.
    #[test]
    fn march_native_is_keyed_by_the_hosts_expansion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.c"), "int a;\n").unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let gcc = crate::key::identity::IdentityCache::new()
            .identify(Path::new("/usr/bin/gcc"), &[], &path)
            .expect("gcc (scripts/install-deps installs it)");
        let args: Vec<std::ffi::OsString> = ["-O2", "-march=native", "-c", "a.c"].iter().map(Into::into).collect();
        let parsed = crate::key::args::parse(&args, dir.path(), gcc.family).expect("cacheable");
        assert!(parsed.native_cpu);
        let inv = Invocation {
            compiler: "/usr/bin/gcc".into(),
            args,
            cwd: dir.path().to_owned(),
            env: [("PATH".into(), path.clone())].into_iter().collect(),
            umask: 0o022,
        };
        let files = FileCache::new();
        let key_with = |expansion: &[u8]| {
            gcc.assume_native_cpu(expansion);
            common(&files, &inv, &parsed, &gcc).expect("keyed")
        };
        let znver3 = key_with(b"cc1 -march=znver3 -mtune=znver3");
        let skylake = key_with(b"cc1 -march=skylake -mtune=skylake");
        assert_ne!(znver3, skylake, "two CPUs, two keys");
        assert_eq!(key_with(b"cc1 -march=znver3 -mtune=znver3"), znver3, "one CPU, one key");
    }
}
