//! gcc and clang command lines: is this call a cacheable single-source compile, and if so what does it read
//! and write.
//!
//! Two stages, as in ripgrep's flags: `FLAGS` is the table of every flag rcc knows (its spelling, how it
//! takes a value, what it means), and [`parse`] walks argv with it, after expanding `@response` files, into
//! a [`ParsedArgs`]. Flags not in the table fall into families that are simply hashed (`-f…`, `-W…`,
//! `-m…`, `-O…`), unless their value names an existing file, which rcc cannot digest blindly: such calls run
//! uncached with [`Reason::UnknownFileFlag`].

use rcc_proto::stats::Reason;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Which driver family's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// GNU gcc/g++.
    Gcc,
    /// LLVM clang/clang++.
    Clang,
}

/// Where a directory sits on the include search path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    /// `-iquote`.
    Quote,
    /// `-I`.
    Angle,
    /// `-isystem`, `-cxx-isystem`.
    System,
    /// `-idirafter`.
    After,
}

/// One include directory of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeDir {
    /// Its place in the search.
    pub kind: IncludeKind,
    /// As typed.
    pub path: PathBuf,
}

/// `-MD` or `-MMD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    /// Every header.
    Md,
    /// No system headers.
    Mmd,
}

/// A make target named by `-MT` (written as typed) or `-MQ` (make-quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepTarget {
    /// `-MT`.
    Raw(OsString),
    /// `-MQ`.
    Quoted(OsString),
}

/// The depfile the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepfileRequest {
    /// `-MD` or `-MMD`.
    pub kind: DepKind,
    /// `-MF` path or the path in `-Wp,-MD,path`; `None`: the compiler's default.
    pub file: Option<PathBuf>,
    /// `-MT`/`-MQ` targets in order.
    pub targets: Vec<DepTarget>,
    /// `-MP`.
    pub phony: bool,
}

/// A cacheable call, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArgs {
    /// Arguments after response-file expansion.
    pub expanded: Vec<OsString>,
    /// What enters the key: `expanded` with depfile paths and targets replaced by a placeholder.
    pub key_args: Vec<OsString>,
    /// The one source file, as typed.
    pub source: PathBuf,
    /// gcc's `-x` name of the source language.
    pub language: String,
    /// The output path (as typed, or the compiler's default).
    pub output: PathBuf,
    /// `-S` rather than `-c`.
    pub assembly: bool,
    /// The depfile request, if any.
    pub depfile: Option<DepfileRequest>,
    /// Debug information is generated.
    pub debug_info: bool,
    /// `-gsplit-dwarf`.
    pub split_dwarf: bool,
    /// `--coverage`/`-ftest-coverage`.
    pub coverage: bool,
    /// `-f*-prefix-map=OLD=NEW` pairs.
    pub prefix_maps: Vec<(OsString, OsString)>,
    /// `-march=native` and friends.
    pub native_cpu: bool,
    /// Files whose content joins the key.
    pub input_files: Vec<PathBuf>,
    /// Directories whose content joins the key.
    pub input_dirs: Vec<PathBuf>,
    /// Include directories in order.
    pub include_dirs: Vec<IncludeDir>,
    /// `-include`/`-imacros` files.
    pub forced_includes: Vec<PathBuf>,
    /// `-B` prefixes.
    pub b_prefixes: Vec<PathBuf>,
    /// Flags that change the default include directories, for probing them.
    pub system_probe_args: Vec<OsString>,
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// No value: the argument is exactly the flag.
    Nothing,
    /// The next argument.
    Separate,
    /// Glued on (`-Ifoo`), or the next argument when alone (`-I foo`).
    JoinedOrSeparate,
    /// Glued on only (the flag's spelling ends in `=` or `,` or is a prefix like `-Wp,`).
    Joined,
}

/// What a flag means to rcc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Hashed, nothing else.
    Plain,
    /// `-c`.
    Compile,
    /// `-S`.
    Assemble,
    /// `-E`.
    Preprocess,
    /// `-o`.
    Output,
    /// `-x`.
    Language,
    /// An include directory.
    Include(IncludeKind),
    /// `-include`, `-imacros`.
    ForcedInclude,
    /// Its value is a file whose content joins the key.
    InputFile,
    /// `-fprofile-use=`: a file or a directory.
    ProfileUse,
    /// `-MD`, `-MMD`.
    Dep(DepKind),
    /// `-M`, `-MM`: dependencies only, unless with `-MD`/`-MMD`... which these are not.
    DepOnly,
    /// `-MF`.
    DepFile,
    /// `-MT`.
    DepTargetRaw,
    /// `-MQ`.
    DepTargetQuoted,
    /// `-MP`.
    DepPhony,
    /// `-Wp,…`.
    Wp,
    /// `-Wa,…`.
    Wa,
    /// `-Xpreprocessor X`.
    Xpreprocessor,
    /// `-Xclang X`.
    Xclang,
    /// `-g0`.
    DebugOff,
    /// `-gsplit-dwarf`.
    SplitDwarf,
    /// `--coverage`, `-ftest-coverage`.
    Coverage,
    /// `-f…-prefix-map=OLD=NEW`.
    PrefixMap,
    /// `-B`.
    BPrefix,
    /// Changes default include directories or target (`--sysroot`, `-target`, `-m32`, …): hashed and kept
    /// for probing; headers under a sysroot reach the key through the depfile.
    SystemProbe,
    /// Not cacheable.
    Refuse(Reason),
}

/// One known flag.
struct Flag {
    name: &'static str,
    takes: Takes,
    effect: Effect,
}

const fn f(name: &'static str, takes: Takes, effect: Effect) -> Flag {
    Flag { name, takes, effect }
}

use Effect as E;
use Takes as T;

/// Every flag rcc knows. When several match an argument, the longest spelling wins.
static FLAGS: &[Flag] = &[
    f("-c", T::Nothing, E::Compile),
    f("-S", T::Nothing, E::Assemble),
    f("-E", T::Nothing, E::Preprocess),
    f("-o", T::JoinedOrSeparate, E::Output),
    f("-x", T::JoinedOrSeparate, E::Language),
    f("-I", T::JoinedOrSeparate, E::Include(IncludeKind::Angle)),
    f("-iquote", T::JoinedOrSeparate, E::Include(IncludeKind::Quote)),
    f("-isystem", T::JoinedOrSeparate, E::Include(IncludeKind::System)),
    f("-cxx-isystem", T::JoinedOrSeparate, E::Include(IncludeKind::System)),
    f("-idirafter", T::JoinedOrSeparate, E::Include(IncludeKind::After)),
    f("-include", T::JoinedOrSeparate, E::ForcedInclude),
    f("-imacros", T::JoinedOrSeparate, E::ForcedInclude),
    f("-include-pch", T::JoinedOrSeparate, E::Refuse(Reason::PrecompiledHeader)),
    f("-iprefix", T::JoinedOrSeparate, E::SystemProbe),
    f("-iwithprefix", T::JoinedOrSeparate, E::SystemProbe),
    f("-iwithprefixbefore", T::JoinedOrSeparate, E::SystemProbe),
    f("-imultilib", T::JoinedOrSeparate, E::SystemProbe),
    f("-isysroot", T::JoinedOrSeparate, E::SystemProbe),
    f("--sysroot", T::Separate, E::SystemProbe),
    f("--sysroot=", T::Joined, E::SystemProbe),
    f("-nostdinc", T::Nothing, E::SystemProbe),
    f("-nostdinc++", T::Nothing, E::SystemProbe),
    f("-nostdlibinc", T::Nothing, E::SystemProbe),
    f("-nobuiltininc", T::Nothing, E::SystemProbe),
    f("-target", T::Separate, E::SystemProbe),
    f("--target", T::Separate, E::SystemProbe),
    f("--target=", T::Joined, E::SystemProbe),
    f("-m32", T::Nothing, E::SystemProbe),
    f("-m64", T::Nothing, E::SystemProbe),
    f("-mx32", T::Nothing, E::SystemProbe),
    f("-stdlib=", T::Joined, E::SystemProbe),
    f("--gcc-toolchain=", T::Joined, E::SystemProbe),
    f("--gcc-install-dir=", T::Joined, E::SystemProbe),
    f("-B", T::JoinedOrSeparate, E::BPrefix),
    f("-D", T::JoinedOrSeparate, E::Plain),
    f("-U", T::JoinedOrSeparate, E::Plain),
    f("-A", T::JoinedOrSeparate, E::Plain),
    f("-L", T::JoinedOrSeparate, E::Plain),
    f("-l", T::JoinedOrSeparate, E::Plain),
    f("-T", T::JoinedOrSeparate, E::Plain),
    f("-u", T::JoinedOrSeparate, E::Plain),
    f("-e", T::JoinedOrSeparate, E::Plain),
    f("-z", T::JoinedOrSeparate, E::Plain),
    f("-arch", T::Separate, E::SystemProbe),
    f("--param", T::Separate, E::Plain),
    f("-G", T::JoinedOrSeparate, E::Plain),
    f("-Xlinker", T::Separate, E::Plain),
    f("-Xassembler", T::Separate, E::Plain),
    f("-Xpreprocessor", T::Separate, E::Xpreprocessor),
    f("-Xclang", T::Separate, E::Xclang),
    f("-Wp,", T::Joined, E::Wp),
    f("-Wa,", T::Joined, E::Wa),
    f("-MD", T::Nothing, E::Dep(DepKind::Md)),
    f("-MMD", T::Nothing, E::Dep(DepKind::Mmd)),
    f("-M", T::Nothing, E::DepOnly),
    f("-MM", T::Nothing, E::DepOnly),
    f("-MG", T::Nothing, E::Plain),
    f("-MP", T::Nothing, E::DepPhony),
    f("-MF", T::JoinedOrSeparate, E::DepFile),
    f("-MT", T::JoinedOrSeparate, E::DepTargetRaw),
    f("-MQ", T::JoinedOrSeparate, E::DepTargetQuoted),
    f("-MJ", T::JoinedOrSeparate, E::Refuse(Reason::ExtraOutputs)),
    f("-g0", T::Nothing, E::DebugOff),
    f("-gsplit-dwarf", T::Nothing, E::SplitDwarf),
    f("--coverage", T::Nothing, E::Coverage),
    f("-ftest-coverage", T::Nothing, E::Coverage),
    f("-fdebug-prefix-map=", T::Joined, E::PrefixMap),
    f("-ffile-prefix-map=", T::Joined, E::PrefixMap),
    // Only these two change the directory recorded in debug information; the macro, coverage and profile
    // maps are hashed as typed (treating them as cwd maps could let two directories share an object).
    f("-fmacro-prefix-map=", T::Joined, E::Plain),
    f("-fcoverage-prefix-map=", T::Joined, E::Plain),
    f("-fprofile-prefix-map=", T::Joined, E::Plain),
    f("-specs=", T::Joined, E::InputFile),
    f("--specs=", T::Joined, E::InputFile),
    f("-specs", T::Separate, E::InputFile),
    f("--specs", T::Separate, E::InputFile),
    f("-fplugin=", T::Joined, E::InputFile),
    f("-fpass-plugin=", T::Joined, E::InputFile),
    f("-fprofile-use=", T::Joined, E::ProfileUse),
    f("-fprofile-use", T::Nothing, E::Refuse(Reason::UnhashableInput)),
    f("-fauto-profile", T::Nothing, E::Refuse(Reason::UnhashableInput)),
    f("-fauto-profile=", T::Joined, E::InputFile),
    f("-fprofile-sample-use=", T::Joined, E::InputFile),
    f("-fprofile-instr-use=", T::Joined, E::InputFile),
    f("-fprofile-instr-use", T::Nothing, E::Refuse(Reason::UnhashableInput)),
    f("-fsanitize-blacklist=", T::Joined, E::InputFile),
    f("-fsanitize-ignorelist=", T::Joined, E::InputFile),
    f("-fsanitize-coverage-allowlist=", T::Joined, E::InputFile),
    f("-fsanitize-coverage-ignorelist=", T::Joined, E::InputFile),
    f("-fprofile-list=", T::Joined, E::InputFile),
    f("-fxray-always-instrument=", T::Joined, E::InputFile),
    f("-fxray-never-instrument=", T::Joined, E::InputFile),
    f("-fxray-attr-list=", T::Joined, E::InputFile),
    f("-fembed-offload-object=", T::Joined, E::InputFile),
    f("-save-temps", T::Nothing, E::Refuse(Reason::SaveTemps)),
    f("-save-temps=", T::Joined, E::Refuse(Reason::SaveTemps)),
    f("--save-temps", T::Nothing, E::Refuse(Reason::SaveTemps)),
    f("-ftime-trace", T::Nothing, E::Refuse(Reason::TimeTrace)),
    f("-ftime-trace=", T::Joined, E::Refuse(Reason::TimeTrace)),
    f("-fmodules", T::Nothing, E::Refuse(Reason::Modules)),
    f("-fmodules-ts", T::Nothing, E::Refuse(Reason::Modules)),
    f("-fcxx-modules", T::Nothing, E::Refuse(Reason::Modules)),
    f("-fmodule-file=", T::Joined, E::Refuse(Reason::Modules)),
    f("-fmodule-output", T::Nothing, E::Refuse(Reason::Modules)),
    f("-fmodule-output=", T::Joined, E::Refuse(Reason::Modules)),
    f("-fmodule-mapper=", T::Joined, E::Refuse(Reason::Modules)),
    f("-fmodules-cache-path=", T::Joined, E::Refuse(Reason::Modules)),
    f("-fprofile-generate", T::Nothing, E::Refuse(Reason::ProfileGenerate)),
    f("-fprofile-generate=", T::Joined, E::Refuse(Reason::ProfileGenerate)),
    f("-fprofile-instr-generate", T::Nothing, E::Refuse(Reason::ProfileGenerate)),
    f("-fprofile-instr-generate=", T::Joined, E::Refuse(Reason::ProfileGenerate)),
    f("-fcs-profile-generate", T::Nothing, E::Refuse(Reason::ProfileGenerate)),
    f("-fcs-profile-generate=", T::Joined, E::Refuse(Reason::ProfileGenerate)),
    // Without -ftest-coverage the object still embeds the run-time .gcda path of this build directory.
    f("-fprofile-arcs", T::Nothing, E::Refuse(Reason::ProfileGenerate)),
    f("-fsyntax-only", T::Nothing, E::Refuse(Reason::PreprocessOnly)),
    f("-###", T::Nothing, E::Refuse(Reason::PreprocessOnly)),
    f("-fdump-", T::Joined, E::Refuse(Reason::ExtraOutputs)),
    f("-fstack-usage", T::Nothing, E::Refuse(Reason::ExtraOutputs)),
    f("-fcallgraph-info", T::Nothing, E::Refuse(Reason::ExtraOutputs)),
    f("-fcallgraph-info=", T::Joined, E::Refuse(Reason::ExtraOutputs)),
    f("-aux-info", T::Separate, E::Refuse(Reason::ExtraOutputs)),
    f("-save-stats", T::Nothing, E::Refuse(Reason::ExtraOutputs)),
    f("-save-stats=", T::Joined, E::Refuse(Reason::ExtraOutputs)),
    f("-fsave-optimization-record", T::Nothing, E::Refuse(Reason::ExtraOutputs)),
    f("-fsave-optimization-record=", T::Joined, E::Refuse(Reason::ExtraOutputs)),
    f("-foptimization-record-file=", T::Joined, E::Refuse(Reason::ExtraOutputs)),
    f("-fopt-info", T::Nothing, E::Plain),
    f("-fopt-info-", T::Joined, E::Plain),
    f("-fdiagnostics-format=sarif-file", T::Nothing, E::Refuse(Reason::ExtraOutputs)),
    f("-fcompare-debug", T::Nothing, E::Refuse(Reason::ExtraOutputs)),
    f("-flto-partition=", T::Joined, E::Plain),
    // They move the auxiliary outputs (.dwo, .gcno) away from where rcc restores them.
    f("-dumpbase", T::Separate, E::Refuse(Reason::ExtraOutputs)),
    f("-dumpdir", T::Separate, E::Refuse(Reason::ExtraOutputs)),
    f("-dumpbase-ext", T::Separate, E::Refuse(Reason::ExtraOutputs)),
];

/// Placeholder replacing depfile paths and targets in the key (rcc rewrites them on restore).
const PLACEHOLDER: &str = "\u{1}rcc-depfile-value";

/// Most bytes response files may expand to.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Deepest response-file nesting.
const MAX_RESPONSE_DEPTH: usize = 16;

/// The longest table entry matching `arg`, with the value glued on (if any).
fn lookup(arg: &[u8]) -> Option<(&'static Flag, Option<&[u8]>)> {
    let mut best: Option<(&'static Flag, Option<&[u8]>)> = None;
    for flag in FLAGS {
        let name = flag.name.as_bytes();
        let matched = match flag.takes {
            T::Nothing | T::Separate => (arg == name).then_some(None),
            T::Joined => (arg.len() > name.len() && arg.starts_with(name)).then(|| Some(&arg[name.len()..])),
            T::JoinedOrSeparate => {
                if arg == name {
                    Some(None)
                } else if arg.starts_with(name) {
                    Some(Some(&arg[name.len()..]))
                } else {
                    None
                }
            }
        };
        if let Some(value) = matched {
            if best.is_none_or(|(b, _)| b.name.len() < name.len()) {
                best = Some((flag, value));
            }
        }
    }
    best
}

/// The source language of a file by its extension.
fn language_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.as_bytes();
    Some(match ext {
        b"c" => "c",
        b"cc" | b"cp" | b"cpp" | b"cxx" | b"c++" | b"C" | b"CPP" | b"CC" => "c++",
        b"m" => "objective-c",
        b"mm" | b"M" => "objective-c++",
        b"i" => "cpp-output",
        b"ii" => "c++-cpp-output",
        b"s" => "assembler",
        b"S" | b"sx" => "assembler-with-cpp",
        b"h" | b"hh" | b"hpp" | b"hxx" | b"H" | b"tcc" => "header",
        b"cppm" | b"ixx" | b"mpp" | b"cxxm" | b"c++m" => "module",
        _ => return None,
    })
}

/// Expands `@file` arguments (nested) the way gcc does; a missing file stays a literal argument.
pub fn expand_response_files(args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, Reason> {
    let mut out = Vec::with_capacity(args.len());
    let mut budget = MAX_RESPONSE_BYTES;
    expand_into(args, cwd, 0, &mut budget, &mut out)?;
    Ok(out)
}

fn expand_into(
    args: &[OsString],
    cwd: &Path,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<OsString>,
) -> Result<(), Reason> {
    for arg in args {
        let bytes = arg.as_bytes();
        let Some(file) = bytes.strip_prefix(b"@").filter(|f| !f.is_empty()) else {
            out.push(arg.clone());
            continue;
        };
        let path = cwd.join(OsStr::from_bytes(file));
        let Ok(content) = std::fs::read(&path) else {
            out.push(arg.clone());
            continue;
        };
        if depth >= MAX_RESPONSE_DEPTH || content.len() > *budget {
            return Err(Reason::BadResponseFile);
        }
        *budget -= content.len();
        let inner = split_response(&content);
        expand_into(&inner, cwd, depth + 1, budget, out)?;
    }
    Ok(())
}

/// Splits response-file text: whitespace separates, quotes group, backslash escapes.
fn split_response(text: &[u8]) -> Vec<OsString> {
    let mut args = Vec::new();
    let mut cur = Vec::new();
    let mut in_arg = false;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match (quote, c) {
            (_, b'\\') if i + 1 < text.len() => {
                cur.push(text[i + 1]);
                in_arg = true;
                i += 1;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, b'\'' | b'"') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, c) if c.is_ascii_whitespace() => {
                if in_arg {
                    args.push(OsString::from_vec(std::mem::take(&mut cur)));
                    in_arg = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_arg = true;
            }
        }
        i += 1;
    }
    if in_arg {
        args.push(OsString::from_vec(cur));
    }
    args
}

/// Whether a value names something that exists (relative to `cwd`).
fn names_existing(value: &[u8], cwd: &Path) -> bool {
    !value.is_empty() && cwd.join(OsStr::from_bytes(value)).exists()
}

/// Parses one command line (the arguments after the compiler). `Err` = not cacheable, with the reason.
pub fn parse(args: &[OsString], cwd: &Path, _family: Family) -> Result<ParsedArgs, Reason> {
    let expanded = expand_response_files(args, cwd)?;
    let mut p = ParsedArgs {
        expanded: expanded.clone(),
        key_args: Vec::with_capacity(expanded.len()),
        source: PathBuf::new(),
        language: String::new(),
        output: PathBuf::new(),
        assembly: false,
        depfile: None,
        debug_info: false,
        split_dwarf: false,
        coverage: false,
        prefix_maps: Vec::new(),
        native_cpu: false,
        input_files: Vec::new(),
        input_dirs: Vec::new(),
        include_dirs: Vec::new(),
        forced_includes: Vec::new(),
        b_prefixes: Vec::new(),
        system_probe_args: Vec::new(),
    };
    let (mut compile, mut assemble, mut dep_only, mut unknown_input) = (false, false, false, false);
    let mut output: Option<PathBuf> = None;
    let mut sources: Vec<(PathBuf, String)> = Vec::new();
    let mut explicit_lang: Option<String> = None;
    let mut dep_kind: Option<DepKind> = None;
    let (mut dep_file, mut dep_targets, mut dep_phony) = (None, Vec::new(), false);
    let mut i = 0;
    while i < expanded.len() {
        let arg = &expanded[i];
        let bytes = arg.as_bytes();
        i += 1;
        if bytes == b"-" {
            return Err(Reason::StdinInput);
        }
        if !bytes.starts_with(b"-") {
            let path = PathBuf::from(arg);
            let lang = match &explicit_lang {
                Some(l) => l.clone(),
                None => match language_of(&path) {
                    Some(l) => l.to_owned(),
                    None => {
                        // An object, a library, …: decided below, once we know whether this call links.
                        unknown_input = true;
                        p.key_args.push(arg.clone());
                        continue;
                    }
                },
            };
            sources.push((path, lang));
            p.key_args.push(arg.clone());
            continue;
        }
        let Some((flag, glued)) = lookup(bytes) else {
            unknown_flag(bytes, cwd, &mut p)?;
            p.key_args.push(arg.clone());
            continue;
        };
        // The flag's value: glued on, or the next argument.
        let value: Option<OsString> = match (flag.takes, glued) {
            (_, Some(v)) => Some(OsString::from_vec(v.to_vec())),
            (T::Separate | T::JoinedOrSeparate, None) => {
                let Some(next) = expanded.get(i) else { return Err(Reason::UnknownInput) };
                i += 1;
                Some(next.clone())
            }
            _ => None,
        };
        let separate = glued.is_none() && value.is_some();
        let mut key_value = value.clone();
        let v = value.clone().unwrap_or_default();
        match flag.effect {
            E::Plain => {}
            E::Compile => compile = true,
            E::Assemble => assemble = true,
            E::Preprocess => return Err(Reason::PreprocessOnly),
            E::Output => {
                if v == "-" {
                    return Err(Reason::StdoutOutput);
                }
                output = Some(PathBuf::from(&v));
            }
            E::Language => {
                explicit_lang = match v.as_bytes() {
                    b"none" => None,
                    b"c-header" | b"c++-header" | b"objective-c-header" | b"objective-c++-header" => {
                        return Err(Reason::PrecompiledHeader)
                    }
                    b"c++-module" => return Err(Reason::Modules),
                    _ => Some(v.to_string_lossy().into_owned()),
                }
            }
            E::Include(kind) => p.include_dirs.push(IncludeDir { kind, path: PathBuf::from(&v) }),
            E::ForcedInclude => {
                let path = PathBuf::from(&v);
                for ext in [".gch", ".pch"] {
                    let mut pch = path.clone().into_os_string();
                    pch.push(ext);
                    if cwd.join(&pch).exists() {
                        return Err(Reason::PrecompiledHeader);
                    }
                }
                p.forced_includes.push(path);
            }
            E::InputFile => p.input_files.push(PathBuf::from(&v)),
            E::ProfileUse => {
                let path = PathBuf::from(&v);
                if cwd.join(&path).is_dir() {
                    p.input_dirs.push(path);
                } else if cwd.join(&path).is_file() {
                    p.input_files.push(path);
                } else {
                    return Err(Reason::UnhashableInput);
                }
            }
            E::Dep(kind) => dep_kind = Some(kind),
            E::DepOnly => dep_only = true,
            E::DepFile => {
                dep_file = Some(PathBuf::from(&v));
                key_value = Some(PLACEHOLDER.into());
            }
            E::DepTargetRaw => {
                dep_targets.push(DepTarget::Raw(v.clone()));
                key_value = Some(PLACEHOLDER.into());
            }
            E::DepTargetQuoted => {
                dep_targets.push(DepTarget::Quoted(v.clone()));
                key_value = Some(PLACEHOLDER.into());
            }
            E::DepPhony => dep_phony = true,
            E::Wp => {
                let parts: Vec<&[u8]> = v.as_bytes().split(|b| *b == b',').collect();
                match parts.as_slice() {
                    [b"-MD", path] | [b"-MMD", path] => {
                        dep_kind = Some(if parts[0] == b"-MD" { DepKind::Md } else { DepKind::Mmd });
                        dep_file = Some(PathBuf::from(OsStr::from_bytes(path)));
                        p.key_args
                            .push(OsString::from(format!("-Wp,{},{PLACEHOLDER}", String::from_utf8_lossy(parts[0]))));
                        continue;
                    }
                    _ => {
                        if parts.iter().any(|part| names_existing(part, cwd)) {
                            return Err(Reason::UnknownFileFlag);
                        }
                        if parts.iter().any(|part| part.starts_with(b"-M")) {
                            return Err(Reason::UnknownFileFlag);
                        }
                    }
                }
            }
            E::Wa => {
                let parts: Vec<&[u8]> = v.as_bytes().split(|b| *b == b',').collect();
                if parts.iter().any(|part| part.starts_with(b"-a") || part.starts_with(b"--MD")) {
                    return Err(Reason::ExtraOutputs);
                }
                if parts.iter().any(|part| {
                    names_existing(part, cwd)
                        || part.split(|b| *b == b'=').nth(1).is_some_and(|x| names_existing(x, cwd))
                }) {
                    return Err(Reason::UnknownFileFlag);
                }
            }
            E::Xpreprocessor => {
                if names_existing(v.as_bytes(), cwd) || v.as_bytes().starts_with(b"-M") {
                    return Err(Reason::UnknownFileFlag);
                }
            }
            E::Xclang => {
                let vb = v.as_bytes();
                if vb == b"-include-pch" || vb == b"-emit-pch" {
                    return Err(Reason::PrecompiledHeader);
                }
                if vb == b"-load" || vb == b"-plugin-arg" || vb.starts_with(b"-fmodule") {
                    return Err(Reason::UnknownFileFlag);
                }
                if names_existing(vb, cwd) {
                    return Err(Reason::UnknownFileFlag);
                }
            }
            E::DebugOff => p.debug_info = false,
            E::SplitDwarf => {
                p.split_dwarf = true;
                p.debug_info = true;
            }
            E::Coverage => p.coverage = true,
            E::PrefixMap => {
                let b = v.as_bytes();
                if let Some(eq) = b.iter().position(|c| *c == b'=') {
                    p.prefix_maps
                        .push((OsString::from_vec(b[..eq].to_vec()), OsString::from_vec(b[eq + 1..].to_vec())));
                }
            }
            E::BPrefix => {
                p.b_prefixes.push(PathBuf::from(&v));
                p.system_probe_args.push(OsString::from("-B"));
                p.system_probe_args.push(v.clone());
            }
            E::SystemProbe => {
                // Kept as typed (glued or with its separate value) for the include-directory probe.
                p.system_probe_args.push(arg.clone());
                if separate {
                    p.system_probe_args.push(v.clone());
                }
            }
            E::Refuse(reason) => return Err(reason),
        }
        // Record the flag in the key as typed (depfile values replaced).
        if separate {
            p.key_args.push(OsString::from(flag.name));
            if let Some(kv) = key_value {
                p.key_args.push(kv);
            }
        } else if let (Some(kv), Some(_)) = (&key_value, glued) {
            let mut joined = OsString::from(flag.name);
            joined.push(kv);
            p.key_args.push(joined);
        } else {
            p.key_args.push(arg.clone());
        }
    }
    if !compile && !assemble {
        return Err(if dep_only { Reason::DependenciesOnly } else { Reason::Linking });
    }
    if dep_only {
        // -M/-MM (even beside -MD) make the driver preprocess to stdout instead of compiling.
        return Err(Reason::DependenciesOnly);
    }
    if unknown_input {
        return Err(Reason::UnknownInput);
    }
    let (source, language) = match sources.len() {
        0 => return Err(Reason::NoSource),
        1 => sources.remove(0),
        _ => return Err(Reason::MultipleSources),
    };
    match language.as_str() {
        "header" => return Err(Reason::PrecompiledHeader),
        "module" => return Err(Reason::Modules),
        _ => {}
    }
    p.assembly = assemble;
    p.output = output.unwrap_or_else(|| {
        let stem = source.file_stem().unwrap_or_default();
        let mut name = stem.to_os_string();
        name.push(if assemble { ".s" } else { ".o" });
        PathBuf::from(name)
    });
    p.depfile = dep_kind.map(|kind| DepfileRequest { kind, file: dep_file, targets: dep_targets, phony: dep_phony });
    p.source = source;
    p.language = language;
    Ok(p)
}

/// `-march=native` and friends: what they mean depends on the CPU of the machine that compiles.
fn is_native_flag(arg: &[u8]) -> bool {
    [&b"-march=native"[..], b"-mtune=native", b"-mcpu=native"].iter().any(|f| arg.starts_with(f))
}

/// Handles a flag the table does not know: hashed, unless a value of it names an existing file.
fn unknown_flag(arg: &[u8], cwd: &Path, p: &mut ParsedArgs) -> Result<(), Reason> {
    if arg.starts_with(b"-g") && arg != b"-g0" {
        p.debug_info = true;
    }
    if is_native_flag(arg) {
        p.native_cpu = true;
    }
    // A value after '=' (or after ',' in list flags) that names an existing file cannot be hashed blindly.
    if let Some(eq) = arg.iter().position(|c| *c == b'=') {
        let value = &arg[eq + 1..];
        let names_file = value.split(|c| *c == b',' || *c == b'=').any(|part| names_existing(part, cwd));
        if names_file && !arg.starts_with(b"-std=") && !arg.starts_with(b"-O") {
            return Err(Reason::UnknownFileFlag);
        }
    }
    // Everything else is hashed as typed (the -f/-W/-m/-O… families and the rest). An unknown flag never takes
    // the next argument: if it had a separate value, that value shows up as an input and makes the call
    // uncacheable, the safe outcome.
    Ok(())
}

/// Make-quotes a target as `-MQ` does.
fn make_quote(target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len());
    for (i, &c) in target.iter().enumerate() {
        match c {
            b'$' => out.extend_from_slice(b"$$"),
            b'#' => out.extend_from_slice(b"\\#"),
            b' ' | b'\t' => {
                // Backslashes before a space are doubled, then the space escaped.
                let mut j = i;
                while j > 0 && target[j - 1] == b'\\' {
                    out.push(b'\\');
                    j -= 1;
                }
                out.push(b'\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

impl ParsedArgs {
    /// Where the depfile is written: `-MF` path, else the output with `.d`. `None` without a request.
    pub fn depfile_path(&self) -> Option<PathBuf> {
        let req = self.depfile.as_ref()?;
        Some(req.file.clone().unwrap_or_else(|| self.output.with_extension("d")))
    }

    /// The depfile options that make a preprocessor run (`-E`) write, into `file`, the depfile this call's
    /// compile would write: the user's `-MD`/`-MMD`, `-MP` and targets, else the output as `-MQ` (what the
    /// driver passes). `None` without a request, or for the `-Wp,-MD,FILE` form (whose default target the
    /// driver does not set).
    pub fn depfile_args_for_preprocessor(&self, file: &Path) -> Option<Vec<OsString>> {
        let req = self.depfile.as_ref()?;
        if self.expanded.iter().any(|a| a.as_bytes().starts_with(b"-Wp,-M")) {
            return None;
        }
        let kind = match req.kind {
            DepKind::Md => "-MD",
            DepKind::Mmd => "-MMD",
        };
        let mut out: Vec<OsString> = vec![kind.into(), "-MF".into(), file.into()];
        if req.phony {
            out.push("-MP".into());
        }
        if req.targets.is_empty() {
            out.extend(["-MQ".into(), self.output.clone().into_os_string()]);
        }
        for target in &req.targets {
            match target {
                DepTarget::Raw(t) => out.extend(["-MT".into(), t.clone()]),
                DepTarget::Quoted(t) => out.extend(["-MQ".into(), t.clone()]),
            }
        }
        Some(out)
    }

    /// The target text written before `:` in the depfile.
    pub fn depfile_target_text(&self) -> Option<OsString> {
        let req = self.depfile.as_ref()?;
        if req.targets.is_empty() {
            return Some(OsString::from_vec(make_quote(self.output.as_os_str().as_bytes())));
        }
        let mut out = Vec::new();
        for (n, t) in req.targets.iter().enumerate() {
            if n > 0 {
                out.push(b' ');
            }
            match t {
                DepTarget::Raw(v) => out.extend_from_slice(v.as_bytes()),
                DepTarget::Quoted(v) => out.extend_from_slice(&make_quote(v.as_bytes())),
            }
        }
        Some(OsString::from_vec(out))
    }

    /// `expanded` filtered through the flag table (joined and separate forms alike): `keep` says of each
    /// known flag whether it stays (`Some(true)`), goes with its value (`Some(false)`), or makes the whole
    /// filtering fail (`None`); `keep_other` decides for arguments the table does not know (sources).
    fn filter_args(
        &self,
        keep: impl Fn(Effect, &[u8]) -> Option<bool>,
        keep_other: impl Fn(&OsString) -> bool,
    ) -> Option<Vec<OsString>> {
        let mut out = Vec::with_capacity(self.expanded.len() + 6);
        let mut args = self.expanded.iter();
        while let Some(arg) = args.next() {
            let bytes = arg.as_bytes();
            let Some((flag, glued)) = lookup(bytes) else {
                if keep_other(arg) {
                    out.push(arg.clone());
                }
                continue;
            };
            let separate_value = glued.is_none() && matches!(flag.takes, T::Separate | T::JoinedOrSeparate);
            if keep(flag.effect, bytes)? {
                out.push(arg.clone());
                if separate_value {
                    out.extend(args.next().cloned());
                }
            } else if separate_value {
                args.next();
            }
        }
        Some(out)
    }

    /// `expanded` without `-c`/`-S`, the output and the depfile options: the arguments of a preprocessor run.
    pub fn preprocessor_args(&self) -> Vec<OsString> {
        let keep = |effect, bytes: &[u8]| {
            Some(match effect {
                E::Compile
                | E::Assemble
                | E::Output
                | E::Dep(_)
                | E::DepFile
                | E::DepTargetRaw
                | E::DepTargetQuoted
                | E::DepPhony => false,
                E::Wp => !(bytes.starts_with(b"-Wp,-MD,") || bytes.starts_with(b"-Wp,-MMD,")),
                _ => true,
            })
        };
        self.filter_args(keep, |_| true).unwrap_or_default()
    }

    /// The arguments that compile this call's preprocessed output (the source replaced by `unit`, given as
    /// `-x cpp-output`/`c++-cpp-output`, the output by `object`): preprocessor, depfile and output options
    /// dropped, and so are `-march=native`-style flags (see [`ParsedArgs::native_flags`]: the caller puts
    /// what they stand for on this host first). `None` when the call cannot be compiled away from its
    /// machine: files named by flags, `-B`, split DWARF, coverage notes, `-S`, languages other than C and C++.
    pub fn compile_args_for_preprocessed(&self, unit: &str, object: &str) -> Option<Vec<OsString>> {
        let language = match self.language.as_str() {
            "c" => "cpp-output",
            "c++" => "c++-cpp-output",
            _ => return None,
        };
        if !self.input_files.is_empty()
            || !self.input_dirs.is_empty()
            || !self.b_prefixes.is_empty()
            || self.split_dwarf
            || self.coverage
            || self.assembly
        {
            return None;
        }
        let keep = |effect, _: &[u8]| match effect {
            E::Output
            | E::Language
            | E::Include(_)
            | E::ForcedInclude
            | E::Dep(_)
            | E::DepFile
            | E::DepTargetRaw
            | E::DepTargetQuoted
            | E::DepPhony
            | E::Wp
            | E::Xpreprocessor => Some(false),
            E::Xclang | E::InputFile | E::ProfileUse | E::BPrefix | E::DepOnly | E::Preprocess => None,
            _ => Some(true),
        };
        let mut out = self.filter_args(keep, |arg| Path::new(arg) != self.source && !is_native_flag(arg.as_bytes()))?;
        out.extend(["-x".into(), language.into(), unit.into(), "-o".into(), object.into()]);
        Some(out)
    }

    /// The `-march=native`, `-mtune=native` and `-mcpu=native` flags of the call, in order.
    pub fn native_flags(&self) -> Vec<OsString> {
        self.expanded.iter().filter(|a| is_native_flag(a.as_bytes())).cloned().collect()
    }

    /// The split-DWARF file beside the output.
    pub fn dwo_path(&self) -> Option<PathBuf> {
        self.split_dwarf.then(|| self.output.with_extension("dwo"))
    }

    /// The coverage notes file beside the output.
    pub fn gcno_path(&self) -> Option<PathBuf> {
        self.coverage.then(|| self.output.with_extension("gcno"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse_in(dir: &Path, v: &[&str]) -> Result<ParsedArgs, Reason> {
        parse(&os(v), dir, Family::Gcc)
    }

    fn ok(v: &[&str]) -> ParsedArgs {
        parse_in(Path::new("/nonexistent-rcc-test-dir"), v).unwrap_or_else(|r| panic!("{v:?}: {r:?}"))
    }

    fn refused(v: &[&str]) -> Reason {
        parse_in(Path::new("/nonexistent-rcc-test-dir"), v).expect_err("should be uncacheable")
    }

    #[test]
    fn basic_compile() {
        let p = ok(&["-c", "src/a.c", "-o", "obj/a.o", "-O2"]);
        assert_eq!(p.source, PathBuf::from("src/a.c"));
        assert_eq!(p.output, PathBuf::from("obj/a.o"));
        assert_eq!(p.language, "c");
        assert_eq!(p.key_args, os(&["-c", "src/a.c", "-o", "obj/a.o", "-O2"]));
    }

    #[test]
    fn default_outputs() {
        assert_eq!(ok(&["-c", "dir/x.cpp"]).output, PathBuf::from("x.o"));
        let s = ok(&["-S", "x.c"]);
        assert!(s.assembly);
        assert_eq!(s.output, PathBuf::from("x.s"));
        assert_eq!(ok(&["-c", "x.c", "-ofoo.o"]).output, PathBuf::from("foo.o"));
    }

    #[test]
    fn uncacheable_calls_have_reasons() {
        assert_eq!(refused(&["a.c", "-o", "a"]), Reason::Linking);
        assert_eq!(refused(&["-o", "app", "a.o", "b.o", "-lm"]), Reason::Linking);
        assert_eq!(refused(&["-E", "a.c"]), Reason::PreprocessOnly);
        assert_eq!(refused(&["-M", "a.c"]), Reason::DependenciesOnly);
        assert_eq!(refused(&["-c", "a.c", "b.c"]), Reason::MultipleSources);
        assert_eq!(refused(&["-c"]), Reason::NoSource);
        assert_eq!(refused(&["-x", "c", "-c", "-"]), Reason::StdinInput);
        assert_eq!(refused(&["-c", "a.c", "-o", "-"]), Reason::StdoutOutput);
        assert_eq!(refused(&["-c", "a.c", "-save-temps"]), Reason::SaveTemps);
        assert_eq!(refused(&["-c", "a.c", "-ftime-trace"]), Reason::TimeTrace);
        assert_eq!(refused(&["-c", "a.cppm"]), Reason::Modules);
        assert_eq!(refused(&["-c", "a.cpp", "-fmodules-ts"]), Reason::Modules);
        assert_eq!(refused(&["-c", "a.c", "-fprofile-generate"]), Reason::ProfileGenerate);
        assert_eq!(refused(&["-c", "a.c", "-fdump-tree-all"]), Reason::ExtraOutputs);
        assert_eq!(refused(&["-c", "a.c", "-fstack-usage"]), Reason::ExtraOutputs);
        assert_eq!(refused(&["-c", "a.c", "-fprofile-use"]), Reason::UnhashableInput);
        assert_eq!(refused(&["-c", "a.h"]), Reason::PrecompiledHeader);
        assert_eq!(refused(&["-c", "a.c", "-Xclang", "-include-pch", "-Xclang", "x.pch"]), Reason::PrecompiledHeader);
        assert_eq!(refused(&["-c", "a.c", "foo.o"]), Reason::UnknownInput);
        assert_eq!(refused(&["-c", "a.c", "-Wa,-adhln=list.s"]), Reason::ExtraOutputs);
        assert_eq!(refused(&["-c", "a.c", "-fprofile-arcs"]), Reason::ProfileGenerate);
        assert_eq!(refused(&["-c", "a.c", "-M", "-MD"]), Reason::DependenciesOnly);
        assert_eq!(refused(&["-c", "a.c", "-fsyntax-only"]), Reason::PreprocessOnly);
        assert_eq!(refused(&["-c", "a.c", "-dumpdir", "x/"]), Reason::ExtraOutputs);
    }

    #[test]
    fn include_directories_joined_and_separate() {
        let p = ok(&["-c", "a.c", "-Iinc", "-I", "inc2", "-isystem", "sys", "-iquote", "q", "-idirafter", "late"]);
        let kinds: Vec<_> = p.include_dirs.iter().map(|d| (d.kind, d.path.to_str().unwrap())).collect();
        assert_eq!(
            kinds,
            vec![
                (IncludeKind::Angle, "inc"),
                (IncludeKind::Angle, "inc2"),
                (IncludeKind::System, "sys"),
                (IncludeKind::Quote, "q"),
                (IncludeKind::After, "late")
            ]
        );
        // A separate value is never a source.
        let p = ok(&["-c", "a.c", "-include", "pre.h", "-MF", "deps.d", "-MD", "-o", "a.o", "-D", "X=1"]);
        assert_eq!(p.forced_includes, vec![PathBuf::from("pre.h")]);
    }

    #[test]
    fn depfile_values_leave_the_key() {
        let a = ok(&["-c", "a.c", "-MD", "-MF", "one.d", "-MT", "t1"]);
        let b = ok(&["-c", "a.c", "-MD", "-MF", "two.d", "-MT", "t2"]);
        assert_eq!(a.key_args, b.key_args);
        let c = ok(&["-c", "a.c", "-MMD", "-MF", "two.d", "-MT", "t2"]);
        assert_ne!(a.key_args, c.key_args, "-MD vs -MMD stays in the key");
        assert_eq!(a.depfile_path(), Some(PathBuf::from("one.d")));
        assert_eq!(a.depfile_target_text(), Some(OsString::from("t1")));
    }

    #[test]
    fn depfile_defaults_and_quoting() {
        let p = ok(&["-c", "a.c", "-o", "obj/a.o", "-MD"]);
        assert_eq!(p.depfile_path(), Some(PathBuf::from("obj/a.d")));
        assert_eq!(p.depfile_target_text(), Some(OsString::from("obj/a.o")));
        let q = ok(&["-c", "a.c", "-MD", "-MQ", "$(x) y", "-MT", "raw$"]);
        assert_eq!(q.depfile_target_text(), Some(OsString::from("$$(x)\\ y raw$")));
        let k = ok(&["-c", "a.c", "-o", "a.o", "-Wp,-MMD,.a.o.d"]);
        let req = k.depfile.unwrap();
        assert_eq!((req.kind, req.file), (DepKind::Mmd, Some(PathBuf::from(".a.o.d"))));
    }

    #[test]
    fn debug_split_dwarf_coverage_and_maps() {
        assert!(ok(&["-c", "a.c", "-g"]).debug_info);
        assert!(!ok(&["-c", "a.c", "-g", "-g0"]).debug_info);
        assert!(ok(&["-c", "a.c", "-ggdb3"]).debug_info);
        let s = ok(&["-c", "a.c", "-o", "o/a.o", "-gsplit-dwarf"]);
        assert_eq!(s.dwo_path(), Some(PathBuf::from("o/a.dwo")));
        let c = ok(&["-c", "a.c", "-o", "o/a.o", "--coverage"]);
        assert_eq!(c.gcno_path(), Some(PathBuf::from("o/a.gcno")));
        let m = ok(&["-c", "a.c", "-fdebug-prefix-map=/home/x=.", "-fmacro-prefix-map=/home/y=."]);
        assert_eq!(m.prefix_maps, vec![(OsString::from("/home/x"), OsString::from("."))], "macro maps do not map cwd");
        assert!(ok(&["-c", "a.c", "-march=native"]).native_cpu);
    }

    #[test]
    fn native_flags_are_found_and_left_out_of_the_remote_compile() {
        let p = ok(&["-O2", "-march=native", "-mno-avx2", "-mtune=native", "-c", "a.c", "-o", "a.o"]);
        assert_eq!(p.native_flags(), [OsString::from("-march=native"), OsString::from("-mtune=native")]);
        let args = p.compile_args_for_preprocessed("u.i", "u.o").expect("remotable");
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, ["-O2", "-mno-avx2", "-c", "-x", "cpp-output", "u.i", "-o", "u.o"]);
    }

    #[test]
    fn input_files_and_unknown_file_flags() {
        let dir = std::env::temp_dir().join(format!("rcc-args-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("prof")).unwrap();
        std::fs::write(dir.join("my.specs"), "").unwrap();
        let p = parse_in(&dir, &["-c", "a.c", "-specs=my.specs", "-fprofile-use=prof"]).unwrap();
        assert_eq!(p.input_files, vec![PathBuf::from("my.specs")]);
        assert_eq!(p.input_dirs, vec![PathBuf::from("prof")]);
        assert_eq!(parse_in(&dir, &["-c", "a.c", "-fsomething-new=my.specs"]), Err(Reason::UnknownFileFlag));
        assert!(parse_in(&dir, &["-c", "a.c", "-fsomething-new=value"]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn response_files_nested_and_quoted() {
        let dir = std::env::temp_dir().join(format!("rcc-rsp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inner.rsp"), "-DQ=\"a b\" 'x y.c'").unwrap();
        std::fs::write(dir.join("outer.rsp"), "-c @inner.rsp -O2\n").unwrap();
        let p = parse_in(&dir, &["@outer.rsp"]).unwrap();
        assert_eq!(p.expanded, os(&["-c", "-DQ=a b", "x y.c", "-O2"]));
        assert_eq!(p.source, PathBuf::from("x y.c"));
        std::fs::write(dir.join("loop.rsp"), "@loop.rsp").unwrap();
        assert_eq!(parse_in(&dir, &["-c", "a.c", "@loop.rsp"]), Err(Reason::BadResponseFile));
        // A missing response file is a literal argument, which is no source.
        assert_eq!(parse_in(&dir, &["-c", "a.c", "@missing.rsp"]), Err(Reason::UnknownInput));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn language_from_x_and_extension() {
        assert_eq!(ok(&["-x", "c++", "-c", "a.inl"]).language, "c++");
        assert_eq!(ok(&["-c", "a.S"]).language, "assembler-with-cpp");
        assert_eq!(refused(&["-x", "c++-header", "-c", "a.h"]), Reason::PrecompiledHeader);
    }

    #[test]
    fn preprocess_args_drop_outputs_and_depfiles() {
        let p = ok(&["-c", "a.c", "-o", "a.o", "-MMD", "-MF", "a.d", "-MTx", "-O2", "-Wp,-MD,k.d"]);
        assert_eq!(p.preprocessor_args(), vec![OsString::from("a.c"), OsString::from("-O2")]);
        let q = ok(&["-I", "inc", "-oout.o", "-c", "a.c", "-D", "X=1"]);
        assert_eq!(q.preprocessor_args(), os(&["-I", "inc", "a.c", "-D", "X=1"]), "separate values stay paired");
    }

    #[test]
    fn longest_flag_wins() {
        assert_eq!(lookup(b"-MMD").map(|(f, _)| f.name), Some("-MMD"));
        assert_eq!(lookup(b"-MFdeps.d").map(|(f, v)| (f.name, v)), Some(("-MF", Some(&b"deps.d"[..]))));
        assert_eq!(lookup(b"-isystemfoo").map(|(f, _)| f.name), Some("-isystem"));
        assert_eq!(lookup(b"-include-pch").map(|(f, _)| f.name), Some("-include-pch"));
    }

    #[test]
    fn system_probe_args_keep_values() {
        let p = ok(&["-c", "a.c", "--sysroot=/sr", "-target", "x86_64-linux-gnu", "-m32", "-nostdinc"]);
        assert_eq!(p.system_probe_args, os(&["--sysroot=/sr", "-target", "x86_64-linux-gnu", "-m32", "-nostdinc"]));
    }
}

#[cfg(test)]
mod proptests {
    use super::{parse, Family};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::path::Path;

    /// Command lines made of real flags, their arguments and arbitrary bytes.
    fn command_line() -> impl Strategy<Value = Vec<OsString>> {
        let arg = prop_oneof![
            Just("-c"),
            Just("-o"),
            Just("-E"),
            Just("-S"),
            Just("-MD"),
            Just("-MF"),
            Just("-MT"),
            Just("-I"),
            Just("-include"),
            Just("-x"),
            Just("c++"),
            Just("-Xclang"),
            Just("-g"),
            Just("-gsplit-dwarf"),
            Just("--coverage"),
            Just("-march=native"),
            Just("@resp"),
            Just("a.c"),
            Just("a.o"),
            Just("-"),
            Just(""),
        ]
        .prop_map(|s| OsString::from(s.to_owned()))
        .boxed();
        let bytes = proptest::collection::vec(proptest::num::u8::ANY, 0..16).prop_map(OsString::from_vec).boxed();
        vec(prop_oneof![3 => arg, 1 => bytes], 0..24)
    }

    proptest! {
        /// No command line panics the gcc/clang or the rustc parser (the fuzz target `compiler_args` runs the
        /// same for longer).
        #[test]
        fn command_lines_never_panic_the_parsers(args in command_line()) {
            let cwd = Path::new("/nonexistent/rcc-proptest");
            let _ = parse(&args, cwd, Family::Gcc);
            let _ = parse(&args, cwd, Family::Clang);
            let _ = crate::rust::args::parse(&args, cwd);
        }
    }
}
