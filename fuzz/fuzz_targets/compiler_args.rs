//! Compiler command lines: gcc/clang and rustc argument parsing, over NUL-separated arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rccd::key::args::{parse, Family};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    let cwd = Path::new("/nonexistent/rcc-fuzz");
    let _ = parse(&args, cwd, Family::Gcc);
    let _ = parse(&args, cwd, Family::Clang);
    let _ = rccd::rust::args::parse(&args, cwd);
});
