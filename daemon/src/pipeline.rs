//! The one path every compile takes, C, C++ and rustc alike: plan → local lookup → shared lookup → run →
//! commit → upload. [`serve`] drives it; a [`Language`] supplies the steps that differ (how a call is
//! understood and keyed, what a manifest entry and a result hold, how outputs are restored, how a miss is
//! run), and the rules every language keeps are written here once: declining a call, waiting for a result
//! still being stored, answering a hit, having the wrapper run the compiler in a local slot, answering a
//! miss before storing it, uploading only what the local store took, and merging a manifest entry.
//!
//! The languages: `c_family.rs` (gcc, clang and the drivers named like them) and `rust/` (rustc);
//! the server picks one per request.

use crate::context::Context;
use crate::invocation::Invocation;
use crate::key::files::coarse_now_ns;
use crate::outputs::OutputError;
use crate::remote::Remote;
use crate::store::Kind;
use crate::stored::load;
use rcc_proto::frame::{read_msg, write_msg, FrameError};
use rcc_proto::ipc::{CompileOutcome, Request, Response};
use rcc_proto::stats::{Counters, ErrorKind, HitMode, Reason};
use rcc_proto::Digest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Why a call is not served from the cache.
pub enum Decline {
    /// It cannot be cached (counted under the reason).
    Uncacheable(Reason),
    /// rcc failed understanding it (counted under the kind); the compiler runs untouched.
    Error(ErrorKind, String),
}

/// What happened to one call, for the language to count in its own counters.
pub enum Event {
    /// Answered from a cache; `saved_millis` is what the original compile took.
    Hit {
        /// Which lookup found it.
        mode: HitMode,
        /// The stored compile's duration.
        saved_millis: u64,
    },
    /// Compiled; `stored` says whether the result was stored (`Err`: why it could not be).
    Miss {
        /// Where it compiled.
        ran: Ran,
        /// How long the compile took.
        millis: u64,
        /// `Ok(true)`: stored; `Ok(false)`: the store failed (counted as an error); `Err`: uncacheable.
        stored: Result<bool, Reason>,
    },
    /// Not cacheable, for this reason.
    Uncacheable(Reason),
}

/// Where a miss was compiled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ran {
    /// By the wrapper, on this machine.
    Locally,
    /// By a pool worker (the scheduler keeps its own record of the action; nothing is uploaded).
    InPool,
}

/// One language's steps; [`serve`] runs them in the order every call takes.
pub trait Language {
    /// A cacheable call, understood and keyed.
    type Plan;
    /// A stored result, as the local store holds it.
    type Result;
    /// A finished miss ready to be stored: its outputs read (before the wrapper returns, since the build may
    /// move them right after), its inputs digested.
    type Prepared;
    /// What the local store's commit hands to the upload (C's manifest entry, rustc's encoded result).
    type Committed;

    /// Understands a call: parses it, identifies the compiler, computes the direct key.
    fn understand(ctx: &Context, inv: Invocation) -> Result<Self::Plan, Decline>;
    /// The key the call's manifest is stored under.
    fn direct_key(plan: &Self::Plan) -> Digest;
    /// The span this call's log lines are in.
    fn span(plan: &Self::Plan) -> tracing::Span;
    /// Whether the lookups by direct key run (C's direct mode can be turned off).
    fn looks_up(_ctx: &Context) -> bool {
        true
    }
    /// The local store's result for this call, when its manifest has an entry whose inputs match.
    fn lookup_local(ctx: &Context, plan: &Self::Plan) -> Option<Self::Result>;
    /// The shared cache's result for this call, copied into the local store on the way.
    fn lookup_shared(ctx: &Context, remote: &Remote, plan: &Self::Plan) -> Option<Self::Result>;
    /// Writes a result's outputs where the call expects them.
    fn restore(plan: &Self::Plan, result: &Self::Result) -> Result<(), OutputError>;
    /// The answer that replays a result (its diagnostics and exit code).
    fn hit_response(plan: &Self::Plan, result: &Self::Result) -> Response;
    /// How long the compile that made `result` took.
    fn compile_millis(result: &Self::Result) -> u64;
    /// Compiles a miss (the language chooses how: in the wrapper, with a depfile, in the pool) and answers
    /// it, storing the result through [`finish_miss`].
    fn miss(ctx: &Context, plan: &Self::Plan, start_ns: i64, conn: &mut UnixStream) -> Result<(), FrameError>;
    /// Writes a prepared result and its manifest entry to the local store; `None` when the store failed
    /// (counted there).
    fn commit(ctx: &Context, plan: &Self::Plan, prepared: &Self::Prepared) -> Option<Self::Committed>;
    /// Sends a committed result to the shared cache, in the background.
    fn upload(
        ctx: &Context,
        remote: &Arc<Remote>,
        plan: &Self::Plan,
        prepared: Self::Prepared,
        committed: Self::Committed,
    );
    /// Counts `event` in this language's counters.
    fn count(counters: &mut Counters, event: Event);
}

/// Serves one call in language `L`: understand it, look it up locally and then in the shared cache, and on
/// a miss let the language compile it.
pub fn serve<L: Language>(ctx: &Context, inv: Invocation, conn: &mut UnixStream) -> Result<(), FrameError> {
    let start_ns = coarse_now_ns();
    let plan = match L::understand(ctx, inv) {
        Ok(plan) => plan,
        Err(why) => return decline::<L>(ctx, conn, why),
    };
    let span = L::span(&plan);
    let _guard = span.enter();
    tracing::trace!("key computed");
    if L::looks_up(ctx) {
        ctx.in_flight.wait_for(&L::direct_key(&plan));
        if let Some(result) = L::lookup_local(ctx, &plan) {
            tracing::trace!("result loaded");
            return answer_hit::<L>(ctx, &plan, &result, HitMode::Direct, conn);
        }
        if let Some(result) = ctx.remote.as_deref().and_then(|remote| L::lookup_shared(ctx, remote, &plan)) {
            return answer_hit::<L>(ctx, &plan, &result, HitMode::Remote, conn);
        }
    }
    L::miss(ctx, &plan, start_ns, conn)
}

/// Answers a declined call: counted, and the wrapper runs the compiler untouched.
pub fn decline<L: Language>(ctx: &Context, conn: &mut UnixStream, why: Decline) -> Result<(), FrameError> {
    match why {
        Decline::Uncacheable(reason) => {
            tracing::debug!(reason = reason.name(), "uncacheable");
            ctx.stats.record(|c| L::count(c, Event::Uncacheable(reason)));
            write_msg(conn, &Response::Passthrough { reason })
        }
        Decline::Error(kind, message) => {
            tracing::warn!(error = %message, "falling back to the compiler");
            ctx.stats.record(|c| c.count_error(kind));
            write_msg(conn, &Response::Error { message })
        }
    }
}

/// Answers a hit once its outputs are restored; a restore that failed is counted and the wrapper compiles
/// instead.
pub fn answer_hit<L: Language>(
    ctx: &Context,
    plan: &L::Plan,
    result: &L::Result,
    mode: HitMode,
    conn: &mut UnixStream,
) -> Result<(), FrameError> {
    if let Err(e) = L::restore(plan, result) {
        tracing::warn!(error = %e, "restoring outputs failed");
        ctx.stats.record(|c| c.count_error(ErrorKind::StoreIo));
        return write_msg(conn, &Response::Error { message: format!("restoring outputs: {e}") });
    }
    let saved_millis = L::compile_millis(result);
    ctx.stats.record(|c| L::count(c, Event::Hit { mode, saved_millis }));
    write_msg(conn, &L::hit_response(plan, result))
}

/// How the wrapper runs the compiler.
#[derive(Clone, Copy, Default)]
pub struct RunMode {
    /// rcc added a flag forcing colour on (the wrapper strips colour off a non-terminal).
    pub forced_color: bool,
    /// Pass stderr through as it comes (rustc's artifact notifications, for cargo's pipelining).
    pub stream_stderr: bool,
}

/// Asks the wrapper to run the compiler with `args`, holding a local compile slot meanwhile (the pool
/// client sends misses to the pool when the slots are full), and waits for its report.
pub fn run_in_wrapper(
    ctx: &Context,
    conn: &mut UnixStream,
    args: &[OsString],
    mode: RunMode,
) -> Result<CompileOutcome, FrameError> {
    let _slot = ctx.pool.local_slot();
    let args = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    write_msg(conn, &Response::Run { args, forced_color: mode.forced_color, stream_stderr: mode.stream_stderr })?;
    match read_msg(conn)? {
        Request::Finished(outcome) => Ok(outcome),
        _ => Err(FrameError::Io(std::io::Error::other("expected the compile's report"))),
    }
}

/// Answers a compile that failed: its exit code stands, nothing is stored.
pub fn answer_failed<L: Language>(ctx: &Context, conn: &mut UnixStream, exit_code: i32) -> Result<(), FrameError> {
    ctx.stats.record(|c| L::count(c, Event::Uncacheable(Reason::CompileFailed)));
    write_msg(conn, &Response::Done { exit_code })
}

/// Answers a miss with `answer` at once, then commits the prepared result to the local store and, when it
/// took it and the miss ran here, uploads it — while lookups of the same key, statistics and shutdown wait
/// for it (see [`crate::in_flight`]). Counts the miss.
pub fn finish_miss<L: Language>(
    ctx: &Context,
    plan: &L::Plan,
    conn: &mut UnixStream,
    answer: &Response,
    millis: u64,
    ran: Ran,
    prepared: Result<L::Prepared, Reason>,
) -> Result<(), FrameError> {
    let _storing = ctx.in_flight.begin(L::direct_key(plan));
    let answered = write_msg(conn, answer);
    let stored = prepared.map(|prepared| match L::commit(ctx, plan, &prepared) {
        Some(committed) => {
            if let (Some(remote), Ran::Locally) = (&ctx.remote, ran) {
                L::upload(ctx, remote, plan, prepared, committed);
            }
            true
        }
        None => false,
    });
    ctx.stats.record(|c| L::count(c, Event::Miss { ran, millis, stored }));
    answered
}

/// Reads the manifest under `direct_key` (empty when absent or corrupt), lets `change` add to it and writes
/// it back; `false` when the write failed (counted: a lost manifest entry is only a miss later).
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

/// Encodes `result` and writes it to the local store under `key`; the encoded bytes, `None` when that
/// failed (counted).
pub fn store_result<T: Serialize>(ctx: &Context, key: &Digest, result: &T) -> Option<Vec<u8>> {
    match postcard::to_allocvec(result) {
        Ok(bytes) => store_encoded(ctx, key, &bytes).then_some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "encoding a result failed");
            ctx.stats.record(|c| c.count_error(ErrorKind::StoreIo));
            None
        }
    }
}

/// Writes an encoded result to the local store under `key`; `false` when that failed (counted).
pub fn store_encoded(ctx: &Context, key: &Digest, bytes: &[u8]) -> bool {
    match ctx.store.put(Kind::Result, key, bytes) {
        Ok(()) => {
            tracing::trace!("result stored");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "store write failed");
            ctx.stats.record(|c| c.count_error(ErrorKind::StoreIo));
            false
        }
    }
}
