//! What a linking rustc call links: read from the linker command line rustc prints with
//! `--print=link-args=FILE` on a miss. Every file on it (the rlibs of all dependencies, transitive ones
//! included, the standard library, native archives and objects) and every `-lNAME` resolved in its search
//! directories becomes an input of the manifest entry, as do the linker programs themselves.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Directories searched for `-lNAME` after the command line's own `-L` directories.
const SYSTEM_LIB_DIRS: &[&str] = &[
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The printed linker invocation, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LinkLine {
    /// The linker program (first word after the environment assignments).
    pub linker: OsString,
    /// `PATH` as rustc set it for the linker.
    pub path_var: Option<OsString>,
    /// Arguments after the linker.
    pub args: Vec<OsString>,
}

/// Parses the line rustc prints: `VAR="value" … "linker" "arg" …` with shell-style double quotes.
pub fn parse(text: &[u8]) -> Option<LinkLine> {
    let words = split_quoted(text)?;
    let mut line = LinkLine::default();
    let mut rest = words.into_iter();
    for word in rest.by_ref() {
        let bytes = word.as_bytes();
        // Environment assignments come first: NAME=value with NAME an identifier.
        if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
            let name = &bytes[..eq];
            if !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
                if name == b"PATH" {
                    line.path_var = Some(OsString::from_vec(bytes[eq + 1..].to_vec()));
                }
                continue;
            }
        }
        line.linker = word;
        break;
    }
    if line.linker.is_empty() {
        return None;
    }
    line.args = rest.collect();
    Some(line)
}

/// Splits on unquoted whitespace; `"…"` groups with `\"` and `\\` escapes.
fn split_quoted(text: &[u8]) -> Option<Vec<OsString>> {
    let mut words = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                let word = cur.get_or_insert_with(Vec::new);
                i += 1;
                loop {
                    match *text.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            word.push(*text.get(i + 1)?);
                            i += 2;
                            continue;
                        }
                        c => word.push(c),
                    }
                    i += 1;
                }
            }
            c if c.is_ascii_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(OsString::from_vec(w));
                }
            }
            c => cur.get_or_insert_with(Vec::new).push(c),
        }
        i += 1;
    }
    if let Some(w) = cur {
        words.push(OsString::from_vec(w));
    }
    Some(words)
}

/// Start files the C driver links into every executable and shared object, looked up like libraries.
const START_FILES: &[&str] =
    &["Scrt1.o", "crt1.o", "crti.o", "crtn.o", "crtbeginS.o", "crtendS.o", "crtbegin.o", "crtend.o"];

/// The library directories a C driver searches (`-print-search-dirs`), memoized per driver and PATH.
fn driver_library_dirs(line: &LinkLine) -> Vec<PathBuf> {
    type DriverKey = (OsString, Option<OsString>);
    static MEMO: OnceLock<Mutex<HashMap<DriverKey, Vec<PathBuf>>>> = OnceLock::new();
    let key = (line.linker.clone(), line.path_var.clone());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(known) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return known.clone();
    }
    let mut cmd = Command::new(&line.linker);
    cmd.arg("-print-search-dirs").env("LC_ALL", "C").stdin(Stdio::null()).stderr(Stdio::null());
    if let Some(path) = &line.path_var {
        cmd.env("PATH", path);
    }
    let dirs: Vec<PathBuf> = cmd
        .output()
        .ok()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("libraries: =").map(|d| std::env::split_paths(d).collect()))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let dirs: Vec<PathBuf> = dirs.into_iter().filter(|d| d.is_dir()).filter_map(|d| d.canonicalize().ok()).collect();
    memo.lock().unwrap_or_else(|e| e.into_inner()).insert(key, dirs.clone());
    dirs
}

/// The files a link reads, as paths (relative ones to the working directory): every argument that names an
/// existing file, each `-lNAME` resolved to the `lib{NAME}.so`/`.a` files of the first directory that
/// has one (the command line's `-L` directories, then the driver's own), and the driver's start files.
/// Temporary files of rustc's own (its symbols object, the call's codegen units) are left out: they are
/// outputs of the same call, gone by now.
pub fn inputs(line: &LinkLine, cwd: &Path, stem: &str) -> Vec<PathBuf> {
    let mut search: Vec<PathBuf> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut files = BTreeSet::new();
    let mut args = line.args.iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"-o" {
            // The output itself.
            args.next();
        } else if bytes == b"-L" {
            if let Some(dir) = args.next() {
                search.push(cwd.join(dir));
            }
        } else if let Some(dir) = bytes.strip_prefix(b"-L") {
            search.push(cwd.join(std::ffi::OsStr::from_bytes(dir)));
        } else if let Some(name) = bytes.strip_prefix(b"-l") {
            names.push(String::from_utf8_lossy(name.strip_prefix(b":").unwrap_or(name)).into_owned());
        } else if !bytes.starts_with(b"-") {
            let path = PathBuf::from(arg);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let temporary = name.ends_with(".rcgu.o") && name.starts_with(stem)
                || path.parent().and_then(Path::file_name).is_some_and(|d| d.to_string_lossy().starts_with("rustc"))
                    && name == "symbols.o";
            if !temporary && cwd.join(&path).is_file() {
                files.insert(path);
            }
        }
    }
    let driver_dirs = driver_library_dirs(line);
    search.extend(driver_dirs.iter().cloned());
    search.extend(SYSTEM_LIB_DIRS.iter().map(PathBuf::from));
    for start in START_FILES {
        if let Some(found) = driver_dirs.iter().map(|d| d.join(start)).find(|p| p.is_file()) {
            files.insert(found);
        }
    }
    for name in names {
        let candidates = [format!("lib{name}.so"), format!("lib{name}.a"), name.clone()];
        if let Some(dir) = search.iter().find(|d| candidates.iter().any(|c| d.join(c).is_file())) {
            files.extend(candidates.iter().map(|c| dir.join(c)).filter(|p| p.is_file()));
        }
    }
    files.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_line_is_parsed() {
        let text = br#"LC_ALL="C" PATH="/x/bin:/usr/bin" VSLANG="1033" "cc" "-m64" "/tmp/rustcAb/symbols.o" "out/app-1.app.abc-cgu.0.rcgu.o" "/t/deps/libserde-2.rlib" "-lgcc_s" "-L" "/t/build/out" "-o" "out/app-1" "-Wl,--as-needed""#;
        let line = parse(text).unwrap();
        assert_eq!(line.linker, OsString::from("cc"));
        assert_eq!(line.path_var, Some(OsString::from("/x/bin:/usr/bin")));
        assert_eq!(line.args[0], OsString::from("-m64"));
        assert_eq!(line.args.len(), 10);
        assert_eq!(split_quoted(br#""a \"b\" c" d"#).unwrap(), vec![OsString::from("a \"b\" c"), OsString::from("d")]);
    }

    #[test]
    fn temporaries_are_left_out_and_libraries_resolved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libdep-1.rlib"), b"rlib").unwrap();
        std::fs::write(dir.path().join("app-1.app.x-cgu.0.rcgu.o"), b"tmp").unwrap();
        std::fs::create_dir(dir.path().join("native")).unwrap();
        std::fs::write(dir.path().join("native/libfoo.a"), b"ar").unwrap();
        let line = LinkLine {
            linker: "cc".into(),
            path_var: None,
            args: ["app-1.app.x-cgu.0.rcgu.o", "libdep-1.rlib", "-L", "native", "-lfoo", "-o", "libdep-1.rlib"]
                .iter()
                .map(OsString::from)
                .collect(),
        };
        let found = inputs(&line, dir.path(), "app-1");
        assert!(found.contains(&dir.path().join("native/libfoo.a")), "{found:?}");
        assert!(found.contains(&PathBuf::from("libdep-1.rlib")), "{found:?}");
        assert!(!found.iter().any(|p| p.to_string_lossy().contains("rcgu")), "temporaries left out: {found:?}");
        // The C driver's start files are inputs of every link.
        assert!(found.iter().any(|p| p.ends_with("crti.o")), "{found:?}");
    }
}
