//! What goes into the dispatch core (workers, heartbeats, actions, outcomes) and what comes out (commands).

use rcc_proto::Digest;
use serde::Serialize;

/// Milliseconds since an epoch the caller chooses (the same one for every call on a [`super::Dispatcher`]).
///
/// The core never reads a clock: every input carries `now`, so tests and the benchmark can simulate time.
pub type Millis = u64;

/// A worker, as the IO layer names it (for instance its connection or its authenticated identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkerId(pub u64);

/// Whoever asked for an action (a client's request); each receives the result once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RequesterId(pub u64);

/// What a worker says about itself when it registers.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    /// Its identity; registering an id again replaces the worker (a restart), but not its quarantine.
    pub id: WorkerId,
    /// A name for humans (host name).
    pub name: String,
    /// The pool it serves, e.g. `linux-x86_64`.
    pub pool: String,
    /// How many actions it runs at once (at least 1).
    pub slots: u32,
    /// Its memory in bytes (reported in status).
    pub memory_bytes: u64,
    /// Digests of the toolchain archives in its local cache.
    pub toolchains: Vec<Digest>,
    /// A summary of input blobs in its local cache; only the first
    /// [`Config::max_held_inputs`](super::Config::max_held_inputs) are kept.
    pub inputs: Vec<Digest>,
}

/// What a worker's heartbeat may update; `None` fields keep their previous value.
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    /// Slots busy with work the scheduler did not assign (e.g. the host's own jobs).
    pub external_load: Option<u32>,
    /// The toolchains it now holds (replaces the previous set).
    pub toolchains: Option<Vec<Digest>>,
    /// The input blobs it now holds (replaces the previous summary; bounded like [`WorkerInfo::inputs`]).
    pub inputs: Option<Vec<Digest>>,
}

/// One action to run remotely.
#[derive(Clone, Debug)]
pub struct ActionSpec {
    /// The action digest: identical actions share it and run once.
    pub digest: Digest,
    /// The pool that can run it, e.g. `linux-x86_64`.
    pub pool: String,
    /// What makes actions "similar" for duration history and failure comparison (e.g. digest of compiler +
    /// source name).
    pub kind: Digest,
    /// The toolchain archive it needs.
    pub toolchain: Digest,
    /// Its input blobs (for locality; only the first
    /// [`Config::affinity_inputs`](super::Config::affinity_inputs) are compared).
    pub inputs: Vec<Digest>,
    /// Who asks for it.
    pub requester: RequesterId,
}

/// What [`super::Dispatcher::handle_submit`] did with an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// A new action, now waiting in its pool's queue.
    Queued,
    /// The same action was already in flight: the requester was attached to it (`requesters` in all).
    Attached {
        /// How many requesters now wait for it.
        requesters: usize,
    },
}

/// How a worker's attempt at an action ended, as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The compiler ran; its outputs are stored. A failing compile (non-zero exit) is a result too.
    Ran {
        /// The compiler's exit code.
        exit_code: i32,
        /// Digest of the stored action result.
        result: Digest,
    },
    /// The worker could not run it; the action is retried elsewhere.
    Failed(FailureKind),
}

/// Why an attempt produced no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Fetching the toolchain or inputs, or building the sandbox, failed.
    Setup,
    /// The action hit its time limit.
    Timeout,
    /// The sandbox or the worker process crashed.
    Crashed,
    /// The worker stopped heartbeating while running it.
    WorkerLost,
    /// The outputs failed verification ([`super::Dispatcher::handle_corrupt`]).
    Corrupt,
    /// The worker was quarantined while running it.
    Quarantined,
    /// Audited copies gave different answers and no majority settled it: requesters compile locally.
    AuditDisagreement,
}

/// What the requesters of an action receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The action ran (maybe with a failing compile).
    Ran {
        /// The compiler's exit code.
        exit_code: i32,
        /// Digest of the stored action result.
        result: Digest,
    },
    /// Every attempt failed; requesters should compile locally.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: FailureKind,
    },
}

/// Why a worker was quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum QuarantineReason {
    /// It failed far more often than other workers running the same kinds of actions.
    FailureRate {
        /// Its (recent, decayed) attempts.
        attempts: f64,
        /// Its failures among them.
        failures: f64,
        /// How many failures other workers' rates for the same kinds predicted.
        expected: f64,
    },
    /// Its outputs failed verification this many times.
    CorruptOutputs {
        /// Corrupt-output reports against it.
        reports: u32,
    },
    /// An audit caught it answering differently from a proven worker, or from a majority of the copies.
    AuditMismatch {
        /// A worker whose answer was taken instead.
        against: WorkerId,
        /// Its audit mismatches so far.
        mismatches: u32,
    },
}

/// An instruction for the IO layer, produced by the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Send `action` to `worker`. `twin` marks a speculative second copy of a slow action.
    Assign {
        /// The action digest.
        action: Digest,
        /// Where to run it.
        worker: WorkerId,
        /// Whether this is a speculative twin (another copy is already running).
        twin: bool,
    },
    /// Tell `worker` to stop running `action` (its twin won, or the worker was quarantined). Its slot is
    /// already free; a later result from it for this action is ignored.
    Cancel {
        /// The action digest.
        action: Digest,
        /// The worker to stop.
        worker: WorkerId,
    },
    /// Hand the outcome of `action` to every requester.
    Deliver {
        /// The action digest.
        action: Digest,
        /// Everyone waiting for it, each once.
        requesters: Vec<RequesterId>,
        /// The outcome.
        delivery: Delivery,
    },
    /// `worker` missed its heartbeats; its actions went back to the queue.
    WorkerLost {
        /// The lost worker.
        worker: WorkerId,
    },
    /// `worker` gets no more actions; its running actions were cancelled and requeued.
    Quarantined {
        /// The quarantined worker.
        worker: WorkerId,
        /// Why.
        reason: QuarantineReason,
    },
}

/// Input the core refuses. The IO layer answers the peer with it; the core's state is unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DispatchError {
    /// A call named a worker that never registered.
    #[error("unknown worker {0:?}")]
    UnknownWorker(WorkerId),
    /// A worker registered without slots.
    #[error("worker {0:?} registered with 0 slots")]
    NoSlots(WorkerId),
    /// An action or worker named no pool.
    #[error("empty pool name")]
    EmptyPool,
}

/// Where a worker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerState {
    /// Heartbeating and taking actions.
    Active,
    /// Missed its heartbeats; a later heartbeat or registration makes it active again.
    Lost,
    /// Failing abnormally; never given actions again, even after it registers again under the same id.
    Quarantined,
}

/// What the dispatcher has done since it started.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counters {
    /// Actions submitted (each requester's submission counts).
    pub submitted: u64,
    /// Submissions attached to an identical action already in flight: run once for all of them.
    pub attached: u64,
    /// Copies assigned to workers, twins included.
    pub assigned: u64,
    /// Speculative twins started.
    pub twins: u64,
    /// Actions whose result came from the twin (the original was cancelled).
    pub twins_won: u64,
    /// Results delivered to requesters.
    pub delivered: u64,
    /// Milliseconds actions waited in queues before their first copy started, summed.
    pub queued_millis: u64,
    /// Requests answered with the result of an identical action that had just run (not submitted).
    pub reused: u64,
    /// Actions audited: run on a second worker too, their answers compared.
    pub audits: u64,
    /// Audits whose answers agreed at once.
    pub audits_passed: u64,
    /// Audits where some copy answered differently (a worker convicted, or no majority).
    pub audits_mismatched: u64,
    /// Audits due but not run: no other worker of the pool could take the copy (a pool of one).
    pub audits_skipped: u64,
    /// Audits given up when no second answer came within `audit_wait`.
    pub audits_timed_out: u64,
}
