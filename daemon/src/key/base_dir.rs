//! Path independence: with a base directory configured, absolute paths under it are rewritten relative to
//! the working directory, and `-ffile-prefix-map=<cwd>=.` is added, before the call is keyed *and* compiled.
//! Two checkouts of a project in different places then produce the same command line, the same key, and —
//! since the compiler itself runs with that command line — the same object: a hit restores exactly what the
//! compiler produces there.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How the appended `-ffile-prefix-map=<cwd>=.` enters the key (the last argument of a rewrite).
pub const KEYED_CWD_MAP: &str = "-ffile-prefix-map=<cwd>=.";

/// Flags whose glued value is a path that may be rewritten (`-I/abs/include`).
const PATH_PREFIXES: &[&str] =
    &["-I", "-iquote", "-isystem", "-idirafter", "-include", "-imacros", "-o", "-MF", "-L", "-B"];

/// The arguments rewritten for `base`, or `None` when the working directory is not under it (then nothing
/// changes). `args` are the call's arguments after response-file expansion.
pub fn rewrite(args: &[OsString], cwd: &Path, base: &Path) -> Option<Vec<OsString>> {
    if !cwd.starts_with(base) {
        return None;
    }
    let mut out: Vec<OsString> = args.iter().map(|a| rewrite_arg(a, cwd, base)).collect();
    let mut map = OsString::from("-ffile-prefix-map=");
    map.push(cwd.as_os_str());
    map.push("=.");
    out.push(map);
    Some(out)
}

fn rewrite_arg(arg: &OsStr, cwd: &Path, base: &Path) -> OsString {
    let bytes = arg.as_bytes();
    if bytes.starts_with(b"/") {
        return relative_if_under(Path::new(arg), cwd, base).map_or_else(|| arg.to_owned(), PathBuf::into_os_string);
    }
    for prefix in PATH_PREFIXES {
        if let Some(rest) = bytes.strip_prefix(prefix.as_bytes()) {
            if rest.starts_with(b"/") {
                if let Some(rel) = relative_if_under(Path::new(OsStr::from_bytes(rest)), cwd, base) {
                    let mut out = OsString::from(prefix);
                    out.push(rel.as_os_str());
                    return out;
                }
            }
        }
    }
    arg.to_owned()
}

fn relative_if_under(path: &Path, cwd: &Path, base: &Path) -> Option<PathBuf> {
    path.starts_with(base).then(|| relative(path, cwd))
}

/// `path` relative to `from` (both absolute), by components: `/a/b/c` from `/a/d` is `../b/c`.
pub fn relative(path: &Path, from: &Path) -> PathBuf {
    let p: Vec<Component> = path.components().collect();
    let f: Vec<Component> = from.components().collect();
    let common = p.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn paths_under_the_base_become_relative() {
        let args = os(&["-c", "/home/u/p1/src/a.c", "-I/home/u/p1/include", "-isystem", "/usr/include/x", "-o", "a.o"]);
        let out = rewrite(&args, Path::new("/home/u/p1/build"), Path::new("/home/u")).unwrap();
        assert_eq!(
            out,
            os(&[
                "-c",
                "../src/a.c",
                "-I../include",
                "-isystem",
                "/usr/include/x",
                "-o",
                "a.o",
                "-ffile-prefix-map=/home/u/p1/build=."
            ])
        );
    }

    #[test]
    fn two_checkouts_give_the_same_command_line_but_the_prefix_map() {
        let a = rewrite(&os(&["-c", "/b/one/s/x.c"]), Path::new("/b/one"), Path::new("/b")).unwrap();
        let b = rewrite(&os(&["-c", "/b/two/s/x.c"]), Path::new("/b/two"), Path::new("/b")).unwrap();
        assert_eq!(a[..2], b[..2]);
    }

    #[test]
    fn outside_the_base_nothing_changes() {
        assert!(rewrite(&os(&["-c", "/x/a.c"]), Path::new("/elsewhere"), Path::new("/b")).is_none());
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), PathBuf::from("."));
    }
}
