//! `rccd`: rcc's daemon, started on demand by the wrapper.
//!
//! It keeps warm state (file and compiler digests, directory listings), the local store and the
//! statistics, and answers the wrapper's compile requests. Modules:
//! - [`server`]: the Unix-socket listener, idle exit, shutdown.
//! - [`compile`]: one compile request from lookup to stored result.
//! - [`rust`]: rustc calls (cargo's `RUSTC_WRAPPER`), keyed and stored their own way.
//! - [`key`]: what makes a compile's key (arguments, compiler identity, files, manifests).
//! - [`outputs`]: stored results and their restoration.
//! - [`pack`]: toolchains packed as content-addressed files and links, for workers with no compiler.
//! - [`links`]: following a path's symbolic links one component at a time.
//! - [`persist`]: identity memos kept across restarts.
//! - [`remote`]: the shared cache (rcc-scheduler) as a second tier behind the local store.
//! - [`remote_exec`]: misses compiled on the remote pool when the local slots are full.
//! - [`store`]: the local store (zstd, atomic writes, digest-checked reads, LRU eviction).
//! - [`sandbox`]: the hermetic sandbox (bubblewrap, seccomp, limits) pool workers run remote actions in.
//! - [`stats`]: counters persisted across restarts.
//! - [`worker`]: `rccd worker`, a pool machine registered with the scheduler.
//! - [`worker_exec`]: a worker running one action: toolchain, inputs, sandbox, outputs to CAS.
//! - [`worker_cas`]: a worker's local cache of blobs, bounded in bytes, least recently used evicted.
//! - [`worker_toolchains`]: a worker's materialized toolchains, bounded in count, those in use kept.
//! - [`context`]: the state handlers share.
//! - [`in_flight`]: results stored after their compile returned, and who waits for them.
//!
//! See `../shared/DESIGN.md` for the whole system.

pub mod compile;
pub mod context;
pub mod in_flight;
pub mod key;
pub mod links;
pub mod outputs;
pub mod pack;
pub mod persist;
pub mod remote;
pub mod remote_exec;
pub mod rust;
pub mod sandbox;
pub mod server;
pub mod stats;
pub mod store;
pub mod worker;
pub mod worker_cas;
pub mod worker_exec;
pub mod worker_toolchains;
