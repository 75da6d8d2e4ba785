//! Temporary stand-in with the agreed API while args.rs is written.
use rcc_proto::stats::Reason;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gcc,
    Clang,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    Quote,
    Angle,
    System,
    After,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeDir {
    pub kind: IncludeKind,
    pub path: PathBuf,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Md,
    Mmd,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepTarget {
    Raw(OsString),
    Quoted(OsString),
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepfileRequest {
    pub kind: DepKind,
    pub file: Option<PathBuf>,
    pub targets: Vec<DepTarget>,
    pub phony: bool,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArgs {
    pub expanded: Vec<OsString>,
    pub key_args: Vec<OsString>,
    pub source: PathBuf,
    pub language: String,
    pub output: PathBuf,
    pub assembly: bool,
    pub depfile: Option<DepfileRequest>,
    pub debug_info: bool,
    pub split_dwarf: bool,
    pub coverage: bool,
    pub prefix_maps: Vec<(OsString, OsString)>,
    pub native_cpu: bool,
    pub input_files: Vec<PathBuf>,
    pub input_dirs: Vec<PathBuf>,
    pub include_dirs: Vec<IncludeDir>,
    pub forced_includes: Vec<PathBuf>,
    pub b_prefixes: Vec<PathBuf>,
    pub system_probe_args: Vec<OsString>,
}
impl ParsedArgs {
    pub fn depfile_path(&self) -> Option<PathBuf> {
        None
    }
    pub fn depfile_target_text(&self) -> Option<OsString> {
        None
    }
    pub fn dwo_path(&self) -> Option<PathBuf> {
        None
    }
    pub fn gcno_path(&self) -> Option<PathBuf> {
        None
    }
}
pub fn parse(_args: &[OsString], _cwd: &Path, _family: Family) -> Result<ParsedArgs, Reason> {
    Err(Reason::Linking)
}
