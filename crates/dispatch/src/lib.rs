//! `rcc-dispatch`: the dispatch core of the remote build pool: which worker runs which action, and when.
//! Sans-IO; depends on rcc-proto (digests) and serde (the status), never on tokio or the network.
//!
//! Like quinn-proto, this crate opens no socket, spawns no task and reads no clock: the QUIC layer feeds
//! it events with the current time (`now`, milliseconds since an epoch of its choosing) and carries out the
//! [`Command`]s it returns. That keeps it deterministic: the tests and the 10 000-worker benchmark run it on
//! a simulated clock. See [`Dispatcher`] for the calling convention; `rcc-scheduler`'s `pool` module is the
//! glue that feeds it from the network.
//!
//! The rules:
//! - **Pools.** Each pool (`linux-x86_64`, …) has its own queue; an action goes only to a worker of its pool.
//! - **Choice of worker** (`workers`): an active worker with a free slot, the least loaded (running /
//!   slots), and among those about equally loaded the one holding the action's toolchain and most of its
//!   inputs. A bounded scan of the least-loaded end of an ordered index: O(log n) per decision.
//! - **Order** (`queue`, `history`): requeued actions first, then the longest expected (median of the
//!   recent durations of the action's kind, a default for unknown kinds), ties first come first served.
//! - **Identical actions** in flight run once; later requesters are attached and all receive the result.
//! - **Lost workers** (no heartbeat for [`Config::heartbeat_timeout`]) lose their actions to the front of
//!   the queue.
//! - **Speculative twins**: an action running past [`Config::twin_factor`] × its kind's median gets a
//!   second copy on another worker; the first result wins and the other copy is cancelled.
//! - **Audits** (`audit`): a new worker's first [`Config::audit_first`] actions, and a sampled
//!   [`Config::audit_share`] of the others, also run on a second worker; the answers must agree before
//!   any is delivered, and a worker outvoted is quarantined.
//! - **Quarantine** (`health`, `audit`): a worker failing more than its kinds predict, whose outputs fail
//!   verification, or caught by an audit, gets no more actions.
//! - **Status** ([`Status`]): workers, queues, running actions, counters and the desired worker count per
//!   pool.
//!
//! Start reading at [`Dispatcher`]; the modules are `dispatcher` (the calling convention), `workers`,
//! `queue`, `history`, `health`, `audit`, `status`, `config` and `types`.
//!
//! ```
//! use rcc_proto::Digest;
//! use rcc_dispatch::*;
//!
//! let mut d = Dispatcher::new(Config::default());
//! let worker = WorkerInfo {
//!     id: WorkerId(1), name: "w1".into(), pool: "linux-x86_64".into(), slots: 4, memory_bytes: 8 << 30,
//!     toolchains: vec![], inputs: vec![],
//! };
//! d.handle_register(worker, 0).unwrap();
//! let action = Digest::of(b"cc -c a.c");
//! let spec = ActionSpec {
//!     digest: action, pool: "linux-x86_64".into(), kind: Digest::of(b"cc a.c"),
//!     toolchain: Digest::of(b"gcc"), inputs: vec![], requester: RequesterId(7),
//! };
//! assert_eq!(d.handle_submit(spec, 0), Ok(SubmitOutcome::Queued));
//! assert_eq!(d.poll_dispatch(0), Some(Command::Assign { action, worker: WorkerId(1), twin: false }));
//! let outcome = Outcome::Ran { exit_code: 0, result: Digest::of(b"result") };
//! let commands = d.handle_result(WorkerId(1), action, outcome, 1_500).unwrap();
//! assert!(matches!(&commands[..], [Command::Deliver { requesters, .. }] if requesters == &[RequesterId(7)]));
//! ```

#![warn(missing_docs)]

mod audit;
mod config;
mod dispatcher;
mod health;
mod history;
mod queue;
mod status;
mod types;
mod workers;

pub use config::Config;
pub use dispatcher::Dispatcher;
pub use status::{desired_workers, PoolStatus, RunningStatus, Status, WorkerStatus};
pub use types::Counters;
pub use types::{
    ActionSpec, Command, Delivery, DispatchError, FailureKind, Heartbeat, Millis, Outcome, QuarantineReason,
    RequesterId, SubmitOutcome, WorkerId, WorkerInfo, WorkerState,
};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
