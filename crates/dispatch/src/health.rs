//! Judging a worker's failures against what other workers' results for the same kinds predict.
//!
//! For every attempt a worker finishes, the kind's smoothed failure rate (over all workers, before this
//! attempt) is added to the worker's `expected` failures. A worker whose actual failures exceed that by
//! [`Config::quarantine_min_excess`] *and* by [`Config::quarantine_excess_ratio`] of its attempts, once it
//! has [`Config::quarantine_min_attempts`], is anomalous: a compile that fails everywhere raises the
//! expectation for every worker alike and quarantines no one. Counters halve past
//! [`Config::health_window`] attempts so old behaviour fades. Corrupt outputs weigh
//! [`Config::corrupt_weight`] failures each and quarantine on their own after [`Config::corrupt_quarantine`].

use super::config::Config;
use super::types::QuarantineReason;

/// A worker's recent record.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    attempts: f64,
    failures: f64,
    expected: f64,
    corrupt: u32,
}

impl Health {
    /// Counts one finished attempt; `expected` is the kind's failure probability.
    pub(crate) fn record(&mut self, failed: bool, expected: f64, cfg: &Config) {
        self.attempts += 1.0;
        self.failures += f64::from(u8::from(failed));
        self.expected += expected;
        self.decay(cfg);
    }

    /// Counts outputs that failed verification.
    pub(crate) fn record_corrupt(&mut self, cfg: &Config) {
        self.attempts += 1.0;
        self.failures += cfg.corrupt_weight;
        self.corrupt += 1;
        self.decay(cfg);
    }

    fn decay(&mut self, cfg: &Config) {
        if self.attempts > cfg.health_window {
            self.attempts /= 2.0;
            self.failures /= 2.0;
            self.expected /= 2.0;
        }
    }

    /// Whether the record calls for quarantine, and why.
    pub(crate) fn verdict(&self, cfg: &Config) -> Option<QuarantineReason> {
        if self.corrupt >= cfg.corrupt_quarantine.max(1) {
            return Some(QuarantineReason::CorruptOutputs { reports: self.corrupt });
        }
        let excess = self.failures - self.expected;
        let anomalous = self.attempts >= cfg.quarantine_min_attempts
            && excess >= cfg.quarantine_min_excess
            && excess >= cfg.quarantine_excess_ratio * self.attempts;
        anomalous.then_some(QuarantineReason::FailureRate {
            attempts: self.attempts,
            failures: self.failures,
            expected: self.expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_everyone_has_are_not_anomalous() {
        let cfg = Config::default();
        let mut h = Health::default();
        for _ in 0..100 {
            h.record(true, 0.9, &cfg);
        }
        assert_eq!(h.verdict(&cfg), None);
        let mut bad = Health::default();
        for i in 0..100 {
            bad.record(i % 2 == 0, 0.02, &cfg);
        }
        assert!(matches!(bad.verdict(&cfg), Some(QuarantineReason::FailureRate { .. })));
    }

    #[test]
    fn too_few_attempts_are_not_judged() {
        let cfg = Config::default();
        let mut h = Health::default();
        for _ in 0..10 {
            h.record(true, 0.0, &cfg);
        }
        assert_eq!(h.verdict(&cfg), None);
    }
}
