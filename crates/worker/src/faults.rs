//! Faults a worker can be told to simulate, for the pool's own tests; never set in production.
//!
//! - `RCC_WORKER_TEST_DELAY_MS`: a slow machine. Each action first runs the host's `sleep` for this long
//!   *inside its own sandbox* (same mounts, limits and cancel flag), so a cancelled or killed action has a
//!   real sandbox to tear down.
//! - `RCC_WORKER_TEST_CORRUPT=1`: a lying worker. It uploads altered bytes under each output's true digest
//!   (the scheduler's upload check must refuse them) and reports the result as if they were stored.
//! - `RCC_WORKER_TEST_WRONG=1`: a worker lying consistently. Every output it reports is [`WRONG_OBJECT`],
//!   uploaded under that object's own true digest, with exit code 0: every digest check passes, and only
//!   comparing its answers with another worker's (the scheduler's audits) can catch it.

use std::path::PathBuf;
use std::time::Duration;

/// The faults this worker simulates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Each action sleeps this long in its sandbox before running.
    pub stall: Option<Duration>,
    /// Outputs are uploaded altered, under their true digests.
    pub corrupt: bool,
    /// Every output is replaced by [`WRONG_OBJECT`], uploaded under its own digest.
    pub wrong: bool,
}

/// What the consistently lying worker answers every action with.
pub const WRONG_OBJECT: &[u8] = b"rcc test fault: one fixed object in place of every output\n";

impl Faults {
    /// The faults the environment asks for.
    pub fn from_env() -> Faults {
        Faults {
            stall: std::env::var(rcc_proto::vars::RCC_WORKER_TEST_DELAY_MS)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            corrupt: std::env::var(rcc_proto::vars::RCC_WORKER_TEST_CORRUPT).is_ok_and(|v| v == "1"),
            wrong: std::env::var(rcc_proto::vars::RCC_WORKER_TEST_WRONG).is_ok_and(|v| v == "1"),
        }
    }
}

/// Where a stalling sandbox sees the host's `sleep`.
pub const STALL_PROGRAM: &str = "/rcc-test-stall";

/// The host's `sleep` program (dynamically linked against the C library only, which every packed
/// compiler brings along).
pub fn host_sleep() -> Option<PathBuf> {
    ["/usr/bin/sleep", "/bin/sleep"].into_iter().map(PathBuf::from).find(|p| p.is_file())
}

/// `bytes` altered so that their digest changes: what a broken disk or a lying worker would send.
pub fn altered(bytes: &[u8]) -> Vec<u8> {
    let mut altered = bytes.to_vec();
    match altered.first_mut() {
        Some(first) => *first ^= 0xff,
        None => altered.push(0),
    }
    altered
}
