//! Messages between the wrapper (`rcc`) and the daemon (`rccd`) on the Unix socket.
//!
//! A compile is one connection:
//! 1. the wrapper sends [`Request::Compile`];
//! 2. the daemon answers [`Response::Hit`] (outputs already written, replay stdout/stderr and exit),
//!    [`Response::Passthrough`] (run the real compiler untouched) or [`Response::Run`] (a miss: run the
//!    compiler with the given arguments, capture its output and report it with [`Request::Finished`]);
//! 3. after `Finished` the daemon stores what it may and answers [`Response::Done`] — or, when the compile
//!    failed because of something rcc added to it (its own depfile in a full or unwritable cache directory),
//!    [`Response::Passthrough`]: the wrapper then discards that run's output and runs the user's own command
//!    untouched, so the build gets exactly the compiler's own result.
//!
//! Paths, arguments and environment travel as raw bytes (Unix `OsStr`), never lossily converted.

use crate::stats::{Reason, StatsSnapshot};
use serde::{Deserialize, Serialize};

/// How long a wrapper waits for [`Response::Accepted`] after sending a request: the daemon accepts and
/// reads requests at once, so longer means it is stuck (out of file descriptors, say).
pub const ACCEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a wrapper waits for the daemon's answer to a `Compile` request once it was accepted: more than
/// the longest the daemon itself waits (a remote compile's five minutes, shared-cache calls, a result of the
/// same key being stored).
pub const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(420);
/// How long a wrapper waits for the daemon to take a [`Request::Finished`] report (it reads the outputs and
/// digests the inputs before answering).
pub const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
/// How long the daemon waits for a new connection's first request before closing it.
pub const REQUEST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request from the wrapper or the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Look up (and, on a miss, prepare) one compiler invocation.
    Compile(CompileRequest),
    /// The compiler run that a [`Response::Run`] asked for has ended.
    Finished(CompileOutcome),
    /// Liveness probe.
    Ping,
    /// Flush and return the statistics.
    Stats,
    /// Zero the statistics.
    ZeroStats,
    /// Empty the local cache.
    ClearCache,
    /// Exit after answering.
    Shutdown,
}

/// One compiler invocation as the wrapper saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileRequest {
    /// The real compiler to run, as found on PATH (not canonicalised: `clang++` must stay `clang++`).
    pub compiler: Vec<u8>,
    /// Arguments after the compiler name, exactly as typed.
    pub args: Vec<Vec<u8>>,
    /// Working directory of the invocation.
    pub cwd: Vec<u8>,
    /// The whole environment of the invocation.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// The invocation's umask: restored files get the mode the compiler would have given them.
    pub umask: u32,
}

/// What a compiler run produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileOutcome {
    /// Exit code (128 + signal number when killed by a signal).
    pub exit_code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// Wall time of the compile in milliseconds.
    pub millis: u64,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A cache hit: the outputs are written; replay these and exit with `exit_code`.
    Hit {
        /// Recorded stdout.
        stdout: Vec<u8>,
        /// Recorded stderr.
        stderr: Vec<u8>,
        /// Recorded exit code (always 0: failures are not stored).
        exit_code: i32,
        /// The diagnostics were recorded with colour forced on by rcc: strip it unless stderr is a terminal.
        forced_color: bool,
    },
    /// Not cacheable: run the compiler with the original arguments. Also the answer to a `Finished` report
    /// whose failure came from rcc's additions: discard that run and run the original command.
    Passthrough {
        /// Why.
        reason: Reason,
    },
    /// A miss: run the compiler with these arguments (the original ones, perhaps with a depfile request added),
    /// then send [`Request::Finished`].
    Run {
        /// Arguments to pass after the compiler.
        args: Vec<Vec<u8>>,
        /// rcc added `-fdiagnostics-color=always`: strip colour from the output unless stderr is a terminal.
        forced_color: bool,
        /// Pass stderr through as it comes (and still report it): rustc's artifact notifications let cargo
        /// start dependent crates before this one finishes (pipelining).
        stream_stderr: bool,
    },
    /// The `Finished` report has been handled; exit with this code.
    Done {
        /// Exit code to exit with.
        exit_code: i32,
    },
    /// Answer to [`Request::Ping`], [`Request::ZeroStats`], [`Request::ClearCache`], [`Request::Shutdown`].
    Ok,
    /// Answer to [`Request::Stats`].
    Stats(Box<StatsSnapshot>),
    /// The daemon could not handle the request; the wrapper falls back to the real compiler.
    Error {
        /// Human-readable description.
        message: String,
    },
    /// The daemon took a `Compile` request; its answer follows. Sent at once, so that a wrapper can tell a
    /// daemon that does not take requests (within [`ACCEPT_WAIT`]) from one that is working on its answer.
    Accepted,
}

#[cfg(test)]
mod proptests {
    use super::{Request, Response};
    use crate::frame::{self, LOCAL};
    use proptest::collection::vec;
    use proptest::num::u8::ANY;

    proptest::proptest! {
        /// Bytes from a hostile peer of the socket never panic the reader, framed or bare; the length is
        /// checked before anything is allocated. (The fuzz target `ipc_frame` runs the same for longer.)
        #[test]
        fn arbitrary_bytes_never_panic_the_reader(bytes in vec(ANY, 0..4096)) {
            let _: Result<Request, _> = frame::read_msg(&mut &bytes[..]);
            let _: Result<Response, _> = frame::read_msg(&mut &bytes[..]);
            let _: Result<Request, _> = frame::decode(&bytes);
        }

        /// A valid header with an arbitrary payload.
        #[test]
        fn arbitrary_payloads_never_panic_the_reader(payload in vec(ANY, 0..4096)) {
            let mut framed = LOCAL.magic.to_vec();
            framed.push(LOCAL.version);
            framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            framed.extend_from_slice(&payload);
            let _: Result<Request, _> = frame::read_msg(&mut &framed[..]);
            let _: Result<Response, _> = frame::read_msg(&mut &framed[..]);
        }

        /// What one side writes, the other reads back the same.
        #[test]
        fn responses_round_trip(stdout in vec(ANY, 0..512), stderr in vec(ANY, 0..512), exit_code: i32) {
            let sent = Response::Hit { stdout, stderr, exit_code, forced_color: false };
            let mut wire = Vec::new();
            frame::write_msg(&mut wire, &sent).unwrap();
            let got: Response = frame::read_msg(&mut &wire[..]).unwrap();
            proptest::prop_assert_eq!(got, sent);
        }
    }
}
