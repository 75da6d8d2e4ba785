//! The steps every compile's path shares, C, C++ and rustc alike, so each rule is written once:
//! declining a call ([`Decline`], [`decline`]), having the wrapper run the compiler ([`run_in_wrapper`]),
//! answering a hit ([`answer_hit`]) and merging a manifest entry into the local store ([`update_manifest`]).
//! What differs between languages (how a call is understood and keyed, what a manifest entry holds, how
//! outputs are restored) stays in `compile.rs` and `rust/`.

use crate::context::Context;
use crate::outputs::OutputError;
use crate::store::Kind;
use crate::stored::load;
use rcc_proto::frame::{read_msg, write_msg, FrameError};
use rcc_proto::ipc::{CompileOutcome, Request, Response};
use rcc_proto::stats::{Counters, ErrorKind, Reason};
use rcc_proto::Digest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;

/// Why a call is not served from the cache.
pub enum Decline {
    /// It cannot be cached (counted under the reason).
    Uncacheable(Reason),
    /// rcc failed understanding it (counted under the kind); the compiler runs untouched.
    Error(ErrorKind, String),
}

/// Answers a declined call: counted (`count_uncacheable` says where, C's or Rust's counters), and the
/// wrapper runs the compiler untouched.
pub fn decline(
    ctx: &Context,
    conn: &mut UnixStream,
    why: Decline,
    count_uncacheable: impl FnOnce(&mut Counters, Reason),
) -> Result<(), FrameError> {
    match why {
        Decline::Uncacheable(reason) => {
            tracing::debug!(reason = reason.name(), "uncacheable");
            ctx.stats.record(|c| count_uncacheable(c, reason));
            write_msg(conn, &Response::Passthrough { reason })
        }
        Decline::Error(kind, message) => {
            tracing::warn!(error = %message, "falling back to the compiler");
            ctx.stats.record(|c| c.count_error(kind));
            write_msg(conn, &Response::Error { message })
        }
    }
}

/// Asks the wrapper to run the compiler with `args` and waits for its report. `forced_color`: rcc added
/// `-fdiagnostics-color=always` (the wrapper strips colour off a non-terminal); `stream_stderr`: pass
/// stderr through as it comes (rustc's artifact notifications, for cargo's pipelining).
pub fn run_in_wrapper(
    conn: &mut UnixStream,
    args: &[OsString],
    forced_color: bool,
    stream_stderr: bool,
) -> Result<CompileOutcome, FrameError> {
    let args = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    write_msg(conn, &Response::Run { args, forced_color, stream_stderr })?;
    match read_msg(conn)? {
        Request::Finished(outcome) => Ok(outcome),
        _ => Err(FrameError::Io(std::io::Error::other("expected the compile's report"))),
    }
}

/// Answers a hit once its outputs are restored: `hit` (a [`Response::Hit`]) and the counters `count`
/// updates; a restore that failed is counted and the wrapper compiles instead.
pub fn answer_hit(
    ctx: &Context,
    conn: &mut UnixStream,
    restored: Result<(), OutputError>,
    count: impl FnOnce(&mut Counters),
    hit: Response,
) -> Result<(), FrameError> {
    if let Err(e) = restored {
        tracing::warn!(error = %e, "restoring outputs failed");
        ctx.stats.record(|c| c.count_error(ErrorKind::StoreIo));
        return write_msg(conn, &Response::Error { message: format!("restoring outputs: {e}") });
    }
    ctx.stats.record(count);
    write_msg(conn, &hit)
}

/// Reads the manifest under `direct_key` (empty when absent or corrupt), lets `change` add to it and writes
/// it back. Failures are counted, not returned: a lost manifest entry is only a miss later.
pub fn update_manifest<M: Default + Serialize + DeserializeOwned>(
    ctx: &Context,
    direct_key: &Digest,
    change: impl FnOnce(&mut M),
) -> bool {
    let mut manifest: M = load(ctx, Kind::Manifest, direct_key).unwrap_or_default();
    change(&mut manifest);
    let written = postcard::to_allocvec(&manifest)
        .map_err(|e| e.to_string())
        .and_then(|bytes| ctx.store.put(Kind::Manifest, direct_key, &bytes).map_err(|e| e.to_string()));
    match written {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "manifest write failed");
            ctx.stats.record(|c| c.count_error(ErrorKind::StoreIo));
            false
        }
    }
}
