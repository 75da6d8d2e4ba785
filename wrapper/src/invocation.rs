//! How argv is read.
//!
//! - `rcc gcc -c a.c`, `rcc /usr/bin/clang++ …`: the first argument names the compiler.
//! - A link named like a compiler (`gcc`, `c++`, `clang`, … in a shims directory first on PATH): the real
//!   compiler of that name is found later on PATH.
//! - `rcc -c a.c` (`CC=rcc`): no compiler named. rcc uses `RCC_CXX` (default `c++`) when a C++ source is
//!   being compiled, else `RCC_CC` (default `cc`).
//! - `rcc stats`, `rcc --help`, …: the command line of rcc itself.
//!
//! Whatever path leads here, the compiler finally run is never rcc itself (nor another link to it, nor a
//! known wrapper such as ccache), so masquerade directories and link chains cannot loop.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Subcommands and options that make `rcc` act as a CLI rather than a compiler.
const CLI_WORDS: &[&str] =
    &["stats", "cache", "config", "shims", "help", "--help", "-h", "--version", "-V", "--stop-daemon"];

/// Other wrappers that must be seen through when looking for the real compiler.
const KNOWN_WRAPPERS: &[&str] = &["ccache", "sccache", "distcc", "icecc", "buildcache"];

const CXX_EXTENSIONS: &[&str] = &["cc", "cp", "cpp", "cxx", "c++", "C", "CPP", "mm", "ii"];

/// What this process is asked to do.
pub enum Invocation {
    /// rcc's own command line (arguments after `rcc`).
    Cli(Vec<OsString>),
    /// A compile.
    Compile(CompileCall),
}

/// A compiler call before the compiler is resolved.
pub struct CompileCall {
    /// How the compiler was named: a path, a name to look up on PATH, or nothing (rcc alone).
    pub named: Option<OsString>,
    /// The arguments for the compiler.
    pub args: Vec<OsString>,
}

/// Sorts argv into a CLI call or a compile.
pub fn classify(argv: &[OsString]) -> Invocation {
    let arg0 = argv.first().map(|a| file_name(a)).unwrap_or_default();
    if !arg0.as_bytes().starts_with(b"rcc") {
        // Masquerade: we were run as `gcc`, `clang++`, …
        return Invocation::Compile(CompileCall { named: Some(arg0), args: argv[1..].to_vec() });
    }
    let Some(first) = argv.get(1) else { return Invocation::Cli(Vec::new()) };
    if CLI_WORDS.iter().any(|w| OsStr::new(w) == first) {
        return Invocation::Cli(argv[1..].to_vec());
    }
    if names_compiler(first) {
        Invocation::Compile(CompileCall { named: Some(first.clone()), args: argv[2..].to_vec() })
    } else {
        Invocation::Compile(CompileCall { named: None, args: argv[1..].to_vec() })
    }
}

/// Whether the first argument after `rcc` is a compiler (an executable path or a command on PATH) rather
/// than the first compiler argument of `CC=rcc`.
fn names_compiler(arg: &OsStr) -> bool {
    let bytes = arg.as_bytes();
    if bytes.starts_with(b"-") || bytes.starts_with(b"@") {
        return false;
    }
    if bytes.contains(&b'/') {
        return is_executable(Path::new(arg));
    }
    // Compiler-like names need no PATH search here (resolution searches anyway).
    const COMPILER_WORDS: &[&[u8]] = &[b"gcc", b"g++", b"clang", b"cc", b"c++", b"rustc"];
    if COMPILER_WORDS.iter().any(|w| bytes.windows(w.len()).any(|x| x == *w)) && Path::new(arg).extension().is_none() {
        return true;
    }
    search_path(arg).next().is_some()
}

/// The compiler name to use when rcc is called alone: C++ if a C++ source is among the arguments.
pub fn implicit_compiler(args: &[OsString], cc: &str, cxx: &str) -> OsString {
    let cxx_source = args.iter().any(|a| {
        let p = Path::new(a);
        !a.as_bytes().starts_with(b"-")
            && p.extension().is_some_and(|e| CXX_EXTENSIONS.iter().any(|x| OsStr::new(x) == e))
    });
    OsString::from(if cxx_source { cxx } else { cc })
}

/// Finds the real compiler for `named`, skipping rcc itself and known wrappers.
pub fn resolve_compiler(named: &OsStr) -> Option<PathBuf> {
    // On Linux current_exe() reads /proc/self/exe, which is already canonical.
    let me = std::env::current_exe().ok();
    let acceptable = |candidate: &Path| -> bool {
        let Ok(real) = candidate.canonicalize() else { return false };
        if Some(&real) == me.as_ref() {
            return false;
        }
        let base = real.file_name().map(|b| b.as_bytes()).unwrap_or_default();
        !(base.starts_with(b"rcc") || KNOWN_WRAPPERS.iter().any(|w| w.as_bytes() == base))
    };
    if named.as_bytes().contains(&b'/') {
        let path = PathBuf::from(named);
        if acceptable(&path) {
            return is_executable(&path).then_some(path);
        }
        // A path to a shim or a wrapper: look for the real compiler of that name on PATH.
        let name = file_name(named);
        return search_path(&name).find(|c| acceptable(c));
    }
    search_path(named).find(|c| acceptable(c))
}

fn search_path(name: &OsStr) -> impl Iterator<Item = PathBuf> + '_ {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.into_iter().map(move |d| d.join(name)).filter(|c| is_executable(c))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn file_name(arg: &OsStr) -> OsString {
    Path::new(arg).file_name().map(OsStr::to_os_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn cli_words_are_cli() {
        assert!(matches!(classify(&os(&["rcc", "stats"])), Invocation::Cli(_)));
        assert!(matches!(classify(&os(&["/x/rcc", "--version"])), Invocation::Cli(_)));
        assert!(matches!(classify(&os(&["rcc"])), Invocation::Cli(_)));
    }

    #[test]
    fn masquerade_uses_the_link_name() {
        match classify(&os(&["/shims/g++", "-c", "a.cc"])) {
            Invocation::Compile(c) => {
                assert_eq!(c.named, Some(OsString::from("g++")));
                assert_eq!(c.args, os(&["-c", "a.cc"]));
            }
            Invocation::Cli(_) => panic!("masquerade read as CLI"),
        }
    }

    #[test]
    fn rcc_alone_has_no_compiler() {
        match classify(&os(&["rcc", "-c", "a.c"])) {
            Invocation::Compile(c) => assert_eq!(c.named, None),
            Invocation::Cli(_) => panic!(),
        }
    }

    #[test]
    fn implicit_compiler_follows_the_source_language() {
        assert_eq!(implicit_compiler(&os(&["-c", "a.cpp"]), "cc", "c++"), OsString::from("c++"));
        assert_eq!(implicit_compiler(&os(&["-c", "a.c"]), "cc", "c++"), OsString::from("cc"));
    }
}
