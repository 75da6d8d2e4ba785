//! What makes a compile's key.
//!
//! - [`args`]: gcc/clang command lines, table-driven: cacheable or not (with a reason), and what the call
//!   reads and writes.
//! - [`base_dir`]: path independence across checkouts (RCC_BASE_DIR).
//! - [`identity`]: the compiler's identity, digested from the files that produce output.
//! - [`files`]: memoized file digests and directory listings.
//! - [`direct_key`]: the part of the key that does not depend on headers.
//! - [`search_dirs`]: the include search path, for the absent-file checks.
//! - [`manifest`]: direct mode's input sets, including files whose absence matters.
//! - [`depfile`]: reading and retargeting make-style depfiles.
//! - [`line_markers`]: the files a preprocessed unit entered.

pub mod args;
pub mod base_dir;
pub mod depfile;
pub mod direct_key;
pub mod files;
pub mod identity;
pub mod line_markers;
pub mod manifest;
pub mod search_dirs;
