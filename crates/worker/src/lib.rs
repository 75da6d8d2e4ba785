//! `rcc-worker`: a pool machine of rcc's remote build pool, run as `rccd worker`.
//!
//! A worker dials out to the scheduler (so it needs no open port), registers its pool, slots and memory,
//! heartbeats, and runs the actions the scheduler assigns: it materializes the action's toolchain pack,
//! writes the inputs into a fresh work directory, runs the command in the hermetic sandbox and uploads the
//! outputs. Modules, in the order an action meets them:
//! - [`session`]: [`WorkerOptions`] and [`run`]: dialling, registration, heartbeats, assignments and
//!   cancellations on the registration stream, redialling with backoff.
//! - [`execute`]: one assigned action, from toolchain to uploaded outputs.
//! - [`cas`]: the worker's local blob cache (inputs, pack files), bounded in bytes, least recently used
//!   evicted, every read digest-checked, one fetch per blob however many actions want it.
//! - [`toolchains`]: materialized toolchains, bounded in count, the ones in use kept.
//! - [`token`]: reading the worker's token from a file only its user can read.
//! - [`faults`]: the slow and the lying worker the pool's tests simulate.
//!
//! Depends on rcc-proto (messages), rcc-link (the QUIC client), rcc-pack (toolchains), rcc-sandbox
//! (running actions) and rcc-fs; never on the daemon or the scheduler. Start reading at [`run`].
#![warn(missing_docs)]

pub mod cas;
pub mod execute;
pub mod faults;
pub mod session;
pub mod token;
pub mod toolchains;

pub use session::{run, WorkerError, WorkerOptions};
