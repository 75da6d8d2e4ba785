//! The dispatch core's tunables, with the defaults the issue asks for.

use super::types::Millis;

/// Tunables of a [`super::Dispatcher`]. `Config::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// A worker silent for this long is lost (default 15 s: 3 × a 5 s heartbeat interval).
    pub heartbeat_timeout: Millis,
    /// How many of the least-loaded free workers are compared for locality per decision (default 16).
    pub candidates: usize,
    /// Workers whose load (running / slots) is within this of the least-loaded candidate's count as equally
    /// loaded, and locality decides among them (default 0.125: one slot of eight).
    pub load_tolerance: f64,
    /// How many of an action's inputs are looked up in a candidate's holdings (default 32).
    pub affinity_inputs: usize,
    /// At most this many held input digests are kept per worker (default 65 536).
    pub max_held_inputs: usize,
    /// Durations kept per action kind (default 32).
    pub history_len: usize,
    /// Action kinds remembered; the oldest is forgotten beyond this (default 100 000).
    pub max_kinds: usize,
    /// Expected duration of an action of a kind never seen (default 10 s, so unknown work starts early).
    pub default_estimate: Millis,
    /// Durations a kind needs before its actions get speculative twins (default 5).
    pub twin_min_history: usize,
    /// An action running longer than this × its kind's median gets a twin (default 2).
    pub twin_factor: f64,
    /// When no worker can take a due twin, look again after this long (default 1 s).
    pub twin_retry: Millis,
    /// Attempts before an action is delivered as failed (default 3).
    pub max_attempts: u32,
    /// Attempts a worker needs before its failure rate is judged (default 20).
    pub quarantine_min_attempts: f64,
    /// Failures beyond what its kinds predict before a worker is quarantined (default 5).
    pub quarantine_min_excess: f64,
    /// ... and that excess as a share of its attempts (default 0.25).
    pub quarantine_excess_ratio: f64,
    /// A worker's failure counters are halved past this many attempts, so old history fades (default 200).
    pub health_window: f64,
    /// Corrupt-output reports that quarantine a worker at once (default 2).
    pub corrupt_quarantine: u32,
    /// Failures one corrupt-output report counts for in the failure-rate judgement (default 10).
    pub corrupt_weight: f64,
    /// Scale up when a pool's waiting actions exceed its slots × this (default 2).
    pub scale_up_factor: u64,
    /// A worker idle this long counts as idle for scaling down (default 5 min).
    pub idle_after: Millis,
    /// Scale down when more than this share of a pool's workers are idle (default 0.2).
    pub idle_share: f64,
    /// Slots assumed per worker of a pool that has none yet, for the desired count (default 8).
    pub default_slots: u32,
    /// Audits (see the `audit` module): a new worker's first this many actions all run on a second worker
    /// too, and it is *proven* once that many audits agreed (default 10; 0: every worker is proven).
    pub audit_first: u32,
    /// Share of a proven worker's actions also run on a second worker (default 0.02; 0 disables sampling).
    pub audit_share: f64,
    /// Secret mixed into the sampling, so a worker cannot tell which actions will be audited (the IO layer
    /// draws it at random; default 0, for deterministic tests).
    pub audit_seed: u64,
    /// How long an audited action waits, after its first answer, for a second one before giving up on the
    /// audit (default 10 s).
    pub audit_wait: Millis,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            heartbeat_timeout: 15_000,
            candidates: 16,
            load_tolerance: 0.125,
            affinity_inputs: 32,
            max_held_inputs: 65_536,
            history_len: 32,
            max_kinds: 100_000,
            default_estimate: 10_000,
            twin_min_history: 5,
            twin_factor: 2.0,
            twin_retry: 1_000,
            max_attempts: 3,
            quarantine_min_attempts: 20.0,
            quarantine_min_excess: 5.0,
            quarantine_excess_ratio: 0.25,
            health_window: 200.0,
            corrupt_quarantine: 2,
            corrupt_weight: 10.0,
            scale_up_factor: 2,
            idle_after: 5 * 60_000,
            idle_share: 0.2,
            default_slots: 8,
            audit_first: 10,
            audit_share: 0.02,
            audit_seed: 0,
            audit_wait: 10_000,
        }
    }
}
