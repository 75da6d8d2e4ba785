//! rustc command lines: which calls are cacheable, what they read and write, and the arguments in the
//! form the key uses.
//!
//! Every option rustc documents as stable is known here; anything else (a `-Z` flag on nightly is keyed
//! verbatim, as it only changes how rustc compiles) makes the call uncacheable with a reason rather than
//! risk a key that misses an input.

use rcc_proto::stats::Reason;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What rustc is asked to produce (`--crate-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrateType {
    /// `lib` and `rlib`.
    Rlib,
    /// `dylib`.
    Dylib,
    /// `cdylib`.
    Cdylib,
    /// `staticlib`.
    Staticlib,
    /// `bin` (also `--test` harnesses).
    Bin,
    /// `proc-macro`.
    ProcMacro,
}

impl CrateType {
    fn parse(word: &str) -> Option<CrateType> {
        Some(match word {
            "lib" | "rlib" => CrateType::Rlib,
            "dylib" => CrateType::Dylib,
            "cdylib" => CrateType::Cdylib,
            "staticlib" => CrateType::Staticlib,
            "bin" => CrateType::Bin,
            "proc-macro" => CrateType::ProcMacro,
            _ => return None,
        })
    }

    /// Whether producing it runs the linker (whose inputs then matter).
    pub fn links(self) -> bool {
        !matches!(self, CrateType::Rlib | CrateType::Staticlib)
    }

    /// The file name the `link` emit gives it.
    fn file_name(self, stem: &str) -> String {
        match self {
            CrateType::Rlib => format!("lib{stem}.rlib"),
            CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro => format!("lib{stem}.so"),
            CrateType::Staticlib => format!("lib{stem}.a"),
            CrateType::Bin => stem.to_owned(),
        }
    }
}

/// A rustc call understood.
#[derive(Debug, Clone)]
pub struct RustArgs {
    /// The arguments after `@file` expansion.
    pub expanded: Vec<OsString>,
    /// The crate root source file, as given.
    pub source: PathBuf,
    /// `--crate-name`, or the source's stem.
    pub crate_name: String,
    /// `--crate-type`s (the default is `bin`).
    pub crate_types: Vec<CrateType>,
    /// `--emit` kinds (the default is `link`).
    pub emits: Vec<String>,
    /// `--out-dir` (the working directory when absent).
    pub out_dir: PathBuf,
    /// `-C extra-filename`.
    pub extra_filename: String,
    /// `--extern NAME=PATH` pairs with a path.
    pub externs: Vec<(String, PathBuf)>,
    /// `-L [KIND=]PATH` directories with their kind.
    pub search_dirs: Vec<(String, PathBuf)>,
    /// `-l [KIND[:MODIFIERS]=]NAME[:RENAME]` library names.
    pub native_libs: Vec<String>,
    /// `--target`, when given.
    pub target: Option<String>,
    /// `-C linker=`, when given.
    pub linker: Option<PathBuf>,
    /// Files named by options whose content matters (`-C profile-use`, a target spec file, …).
    pub input_files: Vec<PathBuf>,
    /// `-o FILE`: the one output's name (then `out_dir` is its directory).
    pub output_file: Option<PathBuf>,
    /// `--emit` was given (else rustc emits `link` only, and any `--emit` rcc adds must say `link` too).
    pub explicit_emit: bool,
}

impl RustArgs {
    /// The stem every output file shares: crate name plus `-C extra-filename`.
    pub fn stem(&self) -> String {
        format!("{}{}", self.crate_name, self.extra_filename)
    }

    /// Whether the call links (a binary, a proc-macro, a dynamic library).
    pub fn links(&self) -> bool {
        self.emits.iter().any(|e| e == "link") && self.crate_types.iter().any(|t| t.links())
    }

    /// The files the call writes, by name inside the output directory.
    pub fn output_names(&self) -> Vec<String> {
        if let Some(name) = self.output_file.as_ref().and_then(|f| f.file_name()) {
            return vec![name.to_string_lossy().into_owned()];
        }
        let stem = self.stem();
        let mut names = Vec::new();
        for emit in &self.emits {
            match emit.as_str() {
                "link" => names.extend(self.crate_types.iter().map(|t| t.file_name(&stem))),
                "metadata" => names.push(format!("lib{stem}.rmeta")),
                "dep-info" => names.push(format!("{stem}.d")),
                "obj" => names.push(format!("{stem}.o")),
                "asm" => names.push(format!("{stem}.s")),
                "llvm-ir" => names.push(format!("{stem}.ll")),
                "llvm-bc" => names.push(format!("{stem}.bc")),
                "mir" => names.push(format!("{stem}.mir")),
                _ => {}
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The dep-info file, when the call writes one.
    pub fn dep_info_name(&self) -> Option<String> {
        self.emits.iter().any(|e| e == "dep-info").then(|| format!("{}.d", self.stem()))
    }
}

/// Options that take a value, as separate or `--opt=value` forms.
const VALUE_OPTIONS: &[&str] = &[
    "--cfg",
    "--check-cfg",
    "--crate-type",
    "--crate-name",
    "--edition",
    "--emit",
    "--print",
    "--out-dir",
    "--explain",
    "--target",
    "--cap-lints",
    "--error-format",
    "--json",
    "--color",
    "--diagnostic-width",
    "--remap-path-prefix",
    "--extern",
    "--sysroot",
    "--crate-attr",
    "--env-set",
    "--codegen",
    "--warn",
    "--allow",
    "--deny",
    "--forbid",
    "--force-warn",
];

/// Single-letter options that take a value, joined (`-Copt-level=3`) or separate.
const SHORT_VALUE_OPTIONS: &[u8] = b"LlCAWDFoZ";

/// Options that only print something: cargo's probes and help.
const PROBE_FLAGS: &[&str] = &["-V", "--version", "-vV", "-h", "--help"];

/// Flags without a value that are keyed verbatim.
const PLAIN_FLAGS: &[&str] = &["--test", "-g", "-O", "-v", "--verbose"];

/// Codegen options that make a call uncacheable, with the reason.
fn refused_codegen(option: &str) -> Option<Reason> {
    let name = option.split('=').next().unwrap_or(option);
    let value = option.split_once('=').map(|(_, v)| v);
    match name {
        "incremental" => Some(Reason::Incremental),
        "save-temps" if value != Some("no") && value != Some("n") && value != Some("off") => Some(Reason::SaveTemps),
        "profile-generate" => Some(Reason::ProfileGenerate),
        "split-debuginfo" if value != Some("off") => Some(Reason::UnsupportedRustcOption),
        _ => None,
    }
}

/// Parses a rustc command line (`args` after the rustc path) run in `cwd`.
pub fn parse(args: &[OsString], cwd: &Path) -> Result<RustArgs, Reason> {
    let expanded = expand_arg_files(args, cwd)?;
    let mut parsed = RustArgs {
        expanded: expanded.clone(),
        source: PathBuf::new(),
        crate_name: String::new(),
        crate_types: Vec::new(),
        emits: Vec::new(),
        out_dir: PathBuf::from("."),
        extra_filename: String::new(),
        externs: Vec::new(),
        search_dirs: Vec::new(),
        native_libs: Vec::new(),
        target: None,
        linker: None,
        input_files: Vec::new(),
        output_file: None,
        explicit_emit: false,
    };
    let probe = |a: &OsString| {
        let a = a.as_bytes();
        a.starts_with(b"--print") || PROBE_FLAGS.iter().any(|p| p.as_bytes() == a)
    };
    if expanded.iter().any(probe) {
        return Err(Reason::RustcProbe);
    }
    let mut sources = Vec::new();
    let mut i = 0;
    while i < expanded.len() {
        let arg = expanded[i].as_bytes();
        let text = std::str::from_utf8(arg).map_err(|_| Reason::UnsupportedRustcOption)?;
        i += 1;
        if text == "-" {
            return Err(Reason::StdinInput);
        }
        if PLAIN_FLAGS.contains(&text) {
            if text == "--test" {
                parsed.crate_types.push(CrateType::Bin);
            }
            continue;
        }
        if !text.starts_with('-') {
            sources.push(PathBuf::from(text));
            continue;
        }
        // Split into option and value.
        let (option, value): (&str, String) = if let Some(long) =
            VALUE_OPTIONS.iter().find(|o| text == **o || text.strip_prefix(**o).is_some_and(|r| r.starts_with('=')))
        {
            if text.len() > long.len() {
                (long, text[long.len() + 1..].to_owned())
            } else {
                let v = expanded.get(i).ok_or(Reason::UnsupportedRustcOption)?;
                i += 1;
                (long, v.to_str().ok_or(Reason::UnsupportedRustcOption)?.to_owned())
            }
        } else if text.len() >= 2 && !text.starts_with("--") && SHORT_VALUE_OPTIONS.contains(&arg[1]) {
            if text.len() > 2 {
                (&text[..2], text[2..].to_owned())
            } else {
                let v = expanded.get(i).ok_or(Reason::UnsupportedRustcOption)?;
                i += 1;
                (&text[..2], v.to_str().ok_or(Reason::UnsupportedRustcOption)?.to_owned())
            }
        } else {
            return Err(Reason::UnsupportedRustcOption);
        };
        apply(&mut parsed, option, &value)?;
    }
    match sources.as_slice() {
        [] => return Err(Reason::NoSource),
        [one] => parsed.source = one.clone(),
        _ => return Err(Reason::MultipleSources),
    }
    if parsed.crate_name.is_empty() {
        parsed.crate_name =
            parsed.source.file_stem().and_then(OsStr::to_str).map(|s| s.replace('-', "_")).ok_or(Reason::NoSource)?;
    }
    if parsed.crate_types.is_empty() {
        parsed.crate_types.push(CrateType::Bin);
    }
    parsed.explicit_emit = !parsed.emits.is_empty();
    if parsed.emits.is_empty() {
        parsed.emits.push("link".to_owned());
    }
    if let Some(file) = &parsed.output_file {
        // One output named by -o; with several, rustc derives the others' names (not followed here).
        if parsed.emits != ["link"] || parsed.crate_types.len() != 1 || file.file_name().is_none() {
            return Err(Reason::RustcOutputPath);
        }
        parsed.out_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| ".".into(), Path::to_owned);
    }
    Ok(parsed)
}

fn apply(parsed: &mut RustArgs, option: &str, value: &str) -> Result<(), Reason> {
    match option {
        "--crate-name" => parsed.crate_name = value.to_owned(),
        "--crate-type" => {
            for word in value.split(',') {
                parsed.crate_types.push(CrateType::parse(word).ok_or(Reason::UnsupportedRustcOption)?);
            }
        }
        "--emit" => {
            for kind in value.split(',') {
                if kind.contains('=') {
                    return Err(Reason::RustcOutputPath);
                }
                if !matches!(kind, "link" | "metadata" | "dep-info" | "obj" | "asm" | "llvm-ir" | "llvm-bc" | "mir") {
                    return Err(Reason::UnsupportedRustcOption);
                }
                parsed.emits.push(kind.to_owned());
            }
        }
        "--out-dir" => parsed.out_dir = PathBuf::from(value),
        "-o" => parsed.output_file = Some(PathBuf::from(value)),
        "--explain" | "--print" => return Err(Reason::RustcProbe),
        "--sysroot" => return Err(Reason::UnsupportedRustcOption),
        "--extern" => {
            if let Some((name, path)) = value.split_once('=') {
                // `--extern [OPTS:]NAME=PATH`
                let name = name.rsplit(':').next().unwrap_or(name);
                parsed.externs.push((name.to_owned(), PathBuf::from(path)));
            }
        }
        "-L" => {
            let (kind, dir) = value.split_once('=').unwrap_or(("all", value));
            parsed.search_dirs.push((kind.to_owned(), PathBuf::from(dir)));
        }
        "-l" => {
            let name = value.rsplit_once('=').map_or(value, |(_, n)| n);
            let name = name.split(':').next().unwrap_or(name);
            parsed.native_libs.push(name.to_owned());
        }
        "--target" => {
            if value.ends_with(".json") {
                parsed.input_files.push(PathBuf::from(value));
            }
            parsed.target = Some(value.to_owned());
        }
        "-C" | "--codegen" => codegen(parsed, value)?,
        "-Z" => {
            // Unstable options are keyed verbatim; those that write or read files are refused.
            if value.starts_with("incremental") {
                return Err(Reason::Incremental);
            }
            if value.contains('/') {
                return Err(Reason::UnsupportedRustcOption);
            }
        }
        _ => {}
    }
    Ok(())
}

fn codegen(parsed: &mut RustArgs, value: &str) -> Result<(), Reason> {
    if let Some(reason) = refused_codegen(value) {
        return Err(reason);
    }
    let (name, v) = value.split_once('=').unwrap_or((value, ""));
    match name {
        "extra-filename" => parsed.extra_filename = v.to_owned(),
        "linker" => parsed.linker = Some(PathBuf::from(v)),
        "profile-use" => parsed.input_files.push(PathBuf::from(v)),
        _ => {}
    }
    Ok(())
}

/// Expands `@file` arguments (one argument per line, as rustc reads them).
fn expand_arg_files(args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, Reason> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        match arg.as_bytes().strip_prefix(b"@") {
            Some(file) => {
                let text = std::fs::read(cwd.join(OsStr::from_bytes(file))).map_err(|_| Reason::BadResponseFile)?;
                let text = String::from_utf8(text).map_err(|_| Reason::BadResponseFile)?;
                out.extend(text.lines().map(OsString::from));
            }
            None => out.push(arg.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn cargo_library_call_is_understood() {
        let args = os(&[
            "--crate-name",
            "serde",
            "--edition=2018",
            "/reg/serde-1.0/src/lib.rs",
            "--error-format=json",
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat",
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "-C",
            "opt-level=3",
            "-C",
            "extra-filename=-0abc",
            "--out-dir",
            "/t/release/deps",
            "-L",
            "dependency=/t/release/deps",
            "--extern",
            "serde_derive=/t/release/deps/libserde_derive-1.so",
            "--cap-lints",
            "allow",
            "--cfg",
            "feature=\"std\"",
        ]);
        let p = parse(&args, Path::new("/")).unwrap();
        assert_eq!(p.crate_name, "serde");
        assert_eq!(p.crate_types, vec![CrateType::Rlib]);
        assert!(p.expanded.iter().any(|a| a == "--error-format=json"), "JSON diagnostics are kept, and keyed");
        assert!(!p.links());
        assert_eq!(p.output_names(), vec!["libserde-0abc.rlib", "libserde-0abc.rmeta", "serde-0abc.d"]);
        assert_eq!(p.externs, vec![("serde_derive".to_owned(), PathBuf::from("/t/release/deps/libserde_derive-1.so"))]);
        assert_eq!(p.out_dir, PathBuf::from("/t/release/deps"));
    }

    #[test]
    fn probes_and_refusals_have_reasons() {
        let cwd = Path::new("/");
        assert_eq!(parse(&os(&["-vV"]), cwd).unwrap_err(), Reason::RustcProbe);
        assert_eq!(parse(&os(&["-", "--print=cfg"]), cwd).unwrap_err(), Reason::RustcProbe);
        assert_eq!(parse(&os(&["-", "--crate-name", "___"]), cwd).unwrap_err(), Reason::StdinInput);
        assert_eq!(parse(&os(&["a.rs", "-C", "incremental=/x"]), cwd).unwrap_err(), Reason::Incremental);
        assert_eq!(parse(&os(&["a.rs", "-o", "a", "--emit=link,obj"]), cwd).unwrap_err(), Reason::RustcOutputPath);
        let p = parse(&os(&["a.rs", "-o", "bin/app"]), cwd).unwrap();
        assert_eq!((p.output_names(), p.out_dir), (vec!["app".to_owned()], PathBuf::from("bin")));
        assert_eq!(parse(&os(&["a.rs", "--bogus"]), cwd).unwrap_err(), Reason::UnsupportedRustcOption);
        assert_eq!(parse(&os(&["a.rs", "b.rs"]), cwd).unwrap_err(), Reason::MultipleSources);
    }

    #[test]
    fn bin_and_proc_macro_link() {
        let p = parse(&os(&["src/main.rs", "--crate-name", "app", "--crate-type", "bin"]), Path::new("/")).unwrap();
        assert!(p.links());
        assert_eq!(p.output_names(), vec!["app"]);
        let p = parse(&os(&["lib.rs", "--crate-type", "proc-macro", "--emit=dep-info,link"]), Path::new("/")).unwrap();
        assert!(p.links());
        assert_eq!(p.output_names(), vec!["lib.d", "liblib.so"]);
    }
}
