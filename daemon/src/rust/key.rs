//! The direct key of a rustc call: everything known before rustc runs. The sources, the environment
//! variables the crate reads and the files a link reads are known only after a first compile; they live in
//! the manifest entries under this key.

use super::args::RustArgs;
use super::paths::PathMap;
use super::toolchain::Toolchain;
use crate::invocation::Invocation;
use crate::key::files::FileCache;
use crate::key::files::Stamp;
use crate::key::identity::IdentityCache;
use rcc_proto::stats::Reason;
use rcc_proto::{Digest, KeyHasher};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Variables cargo sets for rustc that a crate can read without dep-info recording it (proc-macros read
/// them untracked), keyed for every call. Anything a crate reads through `env!`/`option_env!` is also
/// recorded per manifest entry from dep-info.
fn keyed_var(name: &[u8]) -> bool {
    name.starts_with(b"CARGO_PKG_")
        || name.starts_with(b"CARGO_BIN_EXE_")
        || matches!(
            name,
            b"CARGO_CRATE_NAME"
                | b"CARGO_BIN_NAME"
                | b"CARGO_MANIFEST_DIR"
                | b"CARGO_MANIFEST_PATH"
                | b"CARGO_MANIFEST_LINKS"
                | b"CARGO_PRIMARY_PACKAGE"
                | b"CARGO_TARGET_TMPDIR"
                | b"CARGO_RUSTC_CURRENT_DIR"
                | b"OUT_DIR"
                | b"RUSTC_BOOTSTRAP"
        )
}

/// Variables the linker (a C compiler driver) reads, keyed when the call links.
const LINKER_VARS: &[&str] = &["LIBRARY_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "LD_RUN_PATH"];

/// The direct key, and the stamps of the dependency files it digested (taken before any compile runs).
/// `remapped` says rcc adds a base-directory `--remap-path-prefix` to the call.
pub fn direct_key(
    files: &FileCache,
    identities: &IdentityCache,
    inv: &Invocation,
    args: &RustArgs,
    toolchain: &Toolchain,
    map: &PathMap,
    remapped: bool,
) -> Result<(Digest, HashMap<PathBuf, Stamp>), Reason> {
    let mut stamps = HashMap::new();
    let mut h = KeyHasher::new("rust-direct", 1);
    h.digest(b'T', &toolchain.digest);
    h.bytes(b'w', &map.keyed_cwd());
    h.bytes(b'r', if remapped { b"remap-base" } else { b"" });
    let mut after_extern = false;
    for arg in &args.expanded {
        let bytes = arg.as_bytes();
        let extern_value = if after_extern { Some(bytes) } else { bytes.strip_prefix(b"--extern=") };
        after_extern = bytes == b"--extern";
        match extern_value.and_then(|v| v.iter().position(|&b| b == b'=').map(|eq| (&v[..eq], &v[eq + 1..]))) {
            Some((name, path)) => {
                // The dependency's content, not where it lies.
                let path = inv.cwd.join(OsStr::from_bytes(path));
                let info = files.info(&path).map_err(|_| Reason::UnhashableInput)?;
                h.bytes(b'x', name).digest(b'd', &info.digest);
                stamps.insert(path, info.stamp);
            }
            None => {
                h.bytes(b'a', &map.to_stored(bytes));
            }
        }
    }
    let mut vars: Vec<(&[u8], &[u8])> = inv
        .env
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .filter(|(k, _)| keyed_var(k) || (args.links() && LINKER_VARS.iter().any(|l| l.as_bytes() == *k)))
        .collect();
    vars.sort();
    for (name, value) in vars {
        h.bytes(b'e', name).bytes(b'v', &map.to_stored(value));
    }
    for name in &args.native_libs {
        match find_native_lib(&inv.cwd, args, name) {
            Some(path) => {
                let info = files.info(&path).map_err(|_| Reason::UnhashableInput)?;
                h.bytes(b'n', name.as_bytes()).digest(b'd', &info.digest);
            }
            None => {
                h.bytes(b'n', name.as_bytes()).bytes(b'u', b"");
            }
        }
    }
    for file in &args.input_files {
        let info = files.info(&inv.cwd.join(file)).map_err(|_| Reason::UnhashableInput)?;
        h.bytes(b'i', file.as_os_str().as_bytes()).digest(b'd', &info.digest);
    }
    if args.links() {
        h.digest(b'L', &linker_identity(files, identities, inv, args)?);
    }
    Ok((h.finish(), stamps))
}

/// A native library named by `-l`, looked up in the `-L` directories as rustc does.
fn find_native_lib(cwd: &Path, args: &RustArgs, name: &str) -> Option<PathBuf> {
    let candidates = [format!("lib{name}.a"), format!("lib{name}.so"), format!("{name}.lib")];
    args.search_dirs
        .iter()
        .filter(|(kind, _)| matches!(kind.as_str(), "native" | "all" | "framework"))
        .flat_map(|(_, dir)| candidates.iter().map(move |c| cwd.join(dir).join(c)))
        .find(|p| p.is_file())
}

/// The linker driver's identity (`-C linker`, else `cc`, on the invocation's PATH).
fn linker_identity(
    files: &FileCache,
    identities: &IdentityCache,
    inv: &Invocation,
    args: &RustArgs,
) -> Result<Digest, Reason> {
    let named = args.linker.clone().unwrap_or_else(|| PathBuf::from("cc"));
    let env_path = inv.var("PATH").unwrap_or_default().to_owned();
    let path = if named.components().count() > 1 {
        inv.cwd.join(&named)
    } else {
        std::env::split_paths(&env_path)
            .map(|d| d.join(&named))
            .find(|p| p.is_file())
            .ok_or(Reason::UnsupportedCompiler)?
    };
    match identities.identify(&path, &[], &env_path) {
        Ok(compiler) => Ok(compiler.digest),
        // Not a C compiler driver (a plain `ld`, a script): its own content.
        Err(_) => files.info(&path).map(|i| i.digest).map_err(|_| Reason::UnsupportedCompiler),
    }
}
