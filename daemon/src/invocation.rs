//! One compiler invocation as the daemon sees it: the wrapper's request, decoded from raw bytes.

use rcc_proto::ipc::CompileRequest;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The invocation, decoded from the request.
pub struct Invocation {
    /// Compiler path as found on PATH.
    pub compiler: PathBuf,
    /// Original arguments.
    pub args: Vec<OsString>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Environment.
    pub env: HashMap<OsString, OsString>,
    /// umask.
    pub umask: u32,
}

impl Invocation {
    /// The invocation a wrapper's request describes.
    pub fn from_request(req: CompileRequest) -> Invocation {
        Invocation {
            compiler: PathBuf::from(OsString::from_vec(req.compiler)),
            args: req.args.into_iter().map(OsString::from_vec).collect(),
            cwd: PathBuf::from(OsString::from_vec(req.cwd)),
            env: req.env.into_iter().map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v))).collect(),
            umask: req.umask,
        }
    }

    /// A variable of the invocation's environment.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.env.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// The base directory whose paths are factored out of keys and outputs: the invocation's own
    /// `RCC_BASE_DIR` (set per build) wins over the daemon's `configured` one; canonical when it exists.
    pub fn base_dir(&self, configured: Option<&Path>) -> Option<PathBuf> {
        let base = match self.var(rcc_proto::vars::RCC_BASE_DIR) {
            Some(own) => PathBuf::from(own),
            None => configured?.to_owned(),
        };
        if base.as_os_str().is_empty() {
            return None;
        }
        Some(base.canonicalize().unwrap_or(base))
    }
}
