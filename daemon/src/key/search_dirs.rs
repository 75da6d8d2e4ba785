//! The include search path of a call, for direct mode's absent-file checks: the command line's directories,
//! the `CPATH` family, and the compiler's defaults for the language and target.

use super::args::ParsedArgs;
use super::identity::Compiler;
use crate::invocation::Invocation;
use std::ffi::OsStr;
use std::path::PathBuf;

/// The directories, in no particular order (every one is checked).
pub fn of(env_path: &OsStr, inv: &Invocation, parsed: &ParsedArgs, compiler: &Compiler) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = parsed.include_dirs.iter().map(|d| d.path.clone()).collect();
    let lang_var = match parsed.language.as_str() {
        "c++" | "c++-cpp-output" => "CPLUS_INCLUDE_PATH",
        "objective-c" => "OBJC_INCLUDE_PATH",
        "objective-c++" => "OBJCPLUS_INCLUDE_PATH",
        _ => "C_INCLUDE_PATH",
    };
    for var in ["CPATH", lang_var] {
        if let Some(value) = inv.var(var) {
            // An empty element means the working directory.
            dirs.extend(std::env::split_paths(value).map(|p| if p.as_os_str().is_empty() { ".".into() } else { p }));
        }
    }
    dirs.extend(compiler.system_include_dirs(&inv.compiler, env_path, &parsed.language, &parsed.system_probe_args));
    dirs
}
