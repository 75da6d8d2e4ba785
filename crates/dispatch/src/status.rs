//! A snapshot of the pool for `rcc-scheduler status --json` and the autoscaler: workers, queues, running
//! actions and the desired worker count per pool.

use super::config::Config;
use super::dispatcher::Dispatcher;
use super::types::{Counters, Millis, QuarantineReason, WorkerId, WorkerState};
use serde::Serialize;

/// The whole picture at one instant. Serializable.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// When it was taken (the caller's clock).
    pub now: Millis,
    /// Every worker ever registered (lost and quarantined ones included).
    pub workers: Vec<WorkerStatus>,
    /// Per pool: queue depth, load and the desired worker count.
    pub pools: Vec<PoolStatus>,
    /// Every running copy of an action.
    pub running: Vec<RunningStatus>,
    /// What the dispatcher has done since it started.
    pub counters: Counters,
}

/// One worker.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerStatus {
    /// Its id.
    pub id: WorkerId,
    /// Its name (host).
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// Actions it runs at once.
    pub slots: u32,
    /// Actions the scheduler has running on it.
    pub running: usize,
    /// Slots busy with other work, as its heartbeat said.
    pub external_load: u32,
    /// Its memory in bytes.
    pub memory_bytes: u64,
    /// Active, lost or quarantined.
    pub state: WorkerState,
    /// When it last heartbeat (or registered).
    pub last_heartbeat: Millis,
    /// Toolchains it holds, as its last heartbeat said.
    pub held_toolchains: usize,
    /// Input blobs it holds (bounded summary), as its last heartbeat said.
    pub held_inputs: usize,
    /// Since when it runs nothing, if it is idle.
    pub idle_since: Option<Millis>,
    /// Whether enough of its answers passed audits ([`Config::audit_first`]) that only a sample of its
    /// actions is audited.
    pub proven: bool,
    /// Audits its answers passed.
    pub audits_passed: u32,
    /// Audits passed needed to be proven.
    pub audits_required: u32,
    /// Audits where its answer was outvoted or left without a majority.
    pub audit_mismatches: u32,
    /// Why it was quarantined, if it is.
    pub quarantine_reason: Option<QuarantineReason>,
}

/// One pool.
#[derive(Clone, Debug, Serialize)]
pub struct PoolStatus {
    /// Its name.
    pub pool: String,
    /// Actions waiting.
    pub queued: usize,
    /// Action copies running.
    pub running: usize,
    /// Active workers.
    pub workers: usize,
    /// Their slots.
    pub slots: u64,
    /// Active workers idle for at least [`Config::idle_after`].
    pub idle_workers: usize,
    /// How many workers the pool should have (see [`desired_workers`]).
    pub desired_workers: u64,
    /// Whether its actions can be audited: it has two active workers at least (a pool of one cannot).
    pub can_audit: bool,
}

/// One running copy of an action.
#[derive(Clone, Debug, Serialize)]
pub struct RunningStatus {
    /// The action digest, in hex.
    pub action: String,
    /// Its pool.
    pub pool: String,
    /// The worker running this copy.
    pub worker: WorkerId,
    /// When this copy started.
    pub started: Millis,
    /// Whether it is a speculative twin.
    pub twin: bool,
    /// Whether it runs to audit another copy's answer.
    pub audit: bool,
}

/// The worker count a pool should have.
///
/// - Scale up when waiting actions exceed slots × [`Config::scale_up_factor`] (the workers × cores ×
///   2): enough workers, of the pool's average size, for the queue to be within that bound.
/// - Scale down when more than [`Config::idle_share`] of the active workers have been idle for
///   [`Config::idle_after`]: without the idle ones.
/// - Otherwise keep the active count.
pub fn desired_workers(queued: u64, workers: u64, slots: u64, idle: u64, cfg: &Config) -> u64 {
    let factor = cfg.scale_up_factor.max(1);
    let (workers_per_slot_base, slot_total) =
        if workers == 0 || slots == 0 { (1, u64::from(cfg.default_slots.max(1))) } else { (workers, slots) };
    if queued > slots.saturating_mul(factor) {
        // ceil(queued / (average slots × factor)) = ceil(queued × workers / (slots × factor)).
        return queued.saturating_mul(workers_per_slot_base).div_ceil(slot_total.saturating_mul(factor)).max(1);
    }
    if workers > 0 && idle as f64 > cfg.idle_share * workers as f64 {
        return workers - idle.min(workers);
    }
    workers
}

impl Dispatcher {
    /// A snapshot of workers, queues and running actions, with the desired worker count per pool.
    pub fn status(&self, now: Millis) -> Status {
        let pool_name = |p: u32| self.pools[p as usize].name.clone();
        let mut pools: Vec<PoolStatus> = self
            .pools
            .iter()
            .map(|p| PoolStatus {
                pool: p.name.clone(),
                queued: 0,
                running: 0,
                workers: 0,
                slots: 0,
                idle_workers: 0,
                desired_workers: 0,
                can_audit: false,
            })
            .collect();
        let mut workers = Vec::with_capacity(self.workers.len());
        for (_, w) in self.workers.iter() {
            let pool = &mut pools[w.pool as usize];
            pool.running += w.running.len();
            if w.state == WorkerState::Active {
                pool.workers += 1;
                pool.slots += u64::from(w.slots);
                if w.idle_since.is_some_and(|t| now.saturating_sub(t) >= self.cfg.idle_after) {
                    pool.idle_workers += 1;
                }
            }
            workers.push(WorkerStatus {
                id: w.id,
                name: w.name.clone(),
                pool: pool_name(w.pool),
                slots: w.slots,
                running: w.running.len(),
                external_load: w.external,
                memory_bytes: w.memory_bytes,
                state: w.state,
                last_heartbeat: w.last_heartbeat,
                held_toolchains: w.toolchains.len(),
                held_inputs: w.inputs.len(),
                idle_since: w.idle_since,
                proven: w.proven(&self.cfg),
                audits_passed: w.audits_passed,
                audits_required: self.cfg.audit_first,
                audit_mismatches: w.audit_mismatches,
                quarantine_reason: w.quarantine,
            });
        }
        let mut running = Vec::new();
        for (digest, a) in &self.actions {
            if a.copies.is_empty() {
                pools[a.pool as usize].queued += 1;
            }
            for c in &a.copies {
                running.push(RunningStatus {
                    action: digest.to_hex(),
                    pool: pool_name(a.pool),
                    worker: self.workers.worker(c.worker).id,
                    started: c.started,
                    twin: c.twin,
                    audit: c.audit,
                });
            }
        }
        running.sort_by(|a, b| (a.started, &a.action).cmp(&(b.started, &b.action)));
        for p in &mut pools {
            p.desired_workers =
                desired_workers(p.queued as u64, p.workers as u64, p.slots, p.idle_workers as u64, &self.cfg);
            p.can_audit = p.workers >= 2;
        }
        Status { now, workers, pools, running, counters: self.counters }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_counts() {
        let cfg = Config::default();
        // 10 workers × 8 slots × 2 = 160: 160 waiting is fine, 400 needs 25 workers.
        assert_eq!(desired_workers(160, 10, 80, 0, &cfg), 10);
        assert_eq!(desired_workers(400, 10, 80, 0, &cfg), 25);
        // No worker yet: default 8 slots each.
        assert_eq!(desired_workers(40, 0, 0, 0, &cfg), 3);
        assert_eq!(desired_workers(0, 0, 0, 0, &cfg), 0);
        // 2 of 10 idle is 20 %: not more than 20 %, keep; 3 of 10: drop them.
        assert_eq!(desired_workers(0, 10, 80, 2, &cfg), 10);
        assert_eq!(desired_workers(0, 10, 80, 3, &cfg), 7);
    }
}
