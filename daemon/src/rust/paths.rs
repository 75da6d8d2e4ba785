//! Path independence for rustc calls: the build's target directory and the base directory appear in keys,
//! stored dep-info and stored diagnostics as placeholders, and are put back for the invocation a result is
//! restored for.

use crate::key::base_dir;
use crate::key::manifest::normalize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Stands for the target directory's profile directory (`target/release`) in stored text.
const TARGET_TOKEN: &[u8] = b"@@rcc-target@@";
/// Stands for the base directory in stored text.
const BASE_TOKEN: &[u8] = b"@@rcc-base@@";

/// The directories of one invocation that stored text is made independent of.
#[derive(Debug, Clone)]
pub struct PathMap {
    /// The profile directory holding `deps/` and `build/` (the output directory itself outside cargo).
    pub target_root: PathBuf,
    /// The base directory, when one is set. Unlike C, where paths are rewritten relative to the working
    /// directory, it applies whatever the working directory: cargo compiles registry crates in their own
    /// source directories.
    pub base: Option<PathBuf>,
    /// The working directory.
    pub cwd: PathBuf,
}

impl PathMap {
    /// The map for a call writing into `out_dir` (absolute or relative to `cwd`).
    pub fn new(cwd: &Path, out_dir: &Path, base: Option<PathBuf>) -> PathMap {
        let out_dir = normalize(&cwd.join(out_dir));
        PathMap { target_root: target_root(&out_dir), base, cwd: cwd.to_owned() }
    }

    /// `text` with this invocation's directories replaced by placeholders (target first: it is usually
    /// under the base).
    pub fn to_stored(&self, text: &[u8]) -> Vec<u8> {
        let mut out = replace(text, self.target_root.as_os_str().as_bytes(), TARGET_TOKEN);
        if let Some(base) = &self.base {
            out = replace(&out, base.as_os_str().as_bytes(), BASE_TOKEN);
        }
        out
    }

    /// Stored text with the placeholders replaced by this invocation's directories.
    pub fn to_real(&self, stored: &[u8]) -> Vec<u8> {
        let mut out = replace(stored, TARGET_TOKEN, self.target_root.as_os_str().as_bytes());
        if let Some(base) = &self.base {
            out = replace(&out, BASE_TOKEN, base.as_os_str().as_bytes());
        }
        out
    }

    /// The working directory as the key sees it: relative to the base when under it.
    pub fn keyed_cwd(&self) -> Vec<u8> {
        match &self.base {
            Some(base) if self.cwd.starts_with(base) => {
                base_dir::relative(&self.cwd, base).as_os_str().as_bytes().to_vec()
            }
            _ => self.cwd.as_os_str().as_bytes().to_vec(),
        }
    }

    /// Whether `path` (stored form) lies in the target directory and would keep its real name in outputs:
    /// no base-directory remapping covers it.
    pub fn embeds_target_path(&self, stored: &[u8]) -> bool {
        stored.starts_with(TARGET_TOKEN) && !self.base.as_ref().is_some_and(|b| self.target_root.starts_with(b))
    }
}

/// cargo's profile directory for an output directory in its layout: `<profile>/deps`,
/// `<profile>/build/<pkg>-<hash>` (build scripts), `<profile>/examples`; else the output directory itself.
fn target_root(out_dir: &Path) -> PathBuf {
    let name = |p: &Path| p.file_name().map(|n| n.to_owned());
    match name(out_dir).as_deref().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => out_dir.parent().map_or_else(|| out_dir.to_owned(), Path::to_owned),
        _ => match out_dir.parent() {
            Some(parent) if name(parent).is_some_and(|n| n == "build") => {
                parent.parent().map_or_else(|| out_dir.to_owned(), Path::to_owned)
            }
            _ => out_dir.to_owned(),
        },
    }
}

/// Every occurrence of `from` in `text` replaced by `to` (`text` unchanged when `from` is empty).
fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = memchr::memmem::find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_and_base_round_trip() {
        let map = PathMap::new(Path::new("/home/a/proj"), Path::new("/home/a/proj/target/release/deps"), None);
        assert_eq!(map.target_root, PathBuf::from("/home/a/proj/target/release"));
        let text =
            b"/home/a/proj/target/release/deps/libx.rmeta: src/lib.rs /home/a/proj/target/release/build/x/out/g.rs";
        let stored = map.to_stored(text);
        assert!(memchr::memmem::find(&stored, b"/home/a").is_none(), "{}", String::from_utf8_lossy(&stored));
        let other = PathMap::new(Path::new("/home/b/proj"), Path::new("/home/b/proj/target/release/deps"), None);
        assert_eq!(
            other.to_real(&stored),
            b"/home/b/proj/target/release/deps/libx.rmeta: src/lib.rs /home/b/proj/target/release/build/x/out/g.rs"
        );
        let based = PathMap::new(Path::new("/home/b/proj"), Path::new("target/debug/deps"), Some("/home/b".into()));
        assert_eq!(based.keyed_cwd(), b"proj");
        assert_eq!(based.to_real(&based.to_stored(b"/home/b/.cargo/x.rs")), b"/home/b/.cargo/x.rs");
        assert!(map.embeds_target_path(b"@@rcc-target@@/build/x/out/g.rs"));
        let script = PathMap::new(Path::new("/reg/serde"), Path::new("/p/target/debug/build/serde-1"), None);
        assert_eq!(script.target_root, PathBuf::from("/p/target/debug"));
        assert!(!based.embeds_target_path(b"@@rcc-target@@/build/x/out/g.rs"));
    }
}
