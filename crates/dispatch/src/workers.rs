//! The worker registry and, per pool, an index of active workers with a free slot ordered by load.
//!
//! Choosing a worker reads the index from its least-loaded end: at most [`Config::candidates`] entries, and
//! only those within [`Config::load_tolerance`] of the least loaded; among them the one holding the action's
//! toolchain and most of its inputs wins. Each decision is O(log n + K·I) for n workers, K candidates and I
//! compared inputs, whatever the pool's size.

use super::config::Config;
use super::health::Health;
use super::types::{Millis, QuarantineReason, WorkerId, WorkerInfo, WorkerState};
use rcc_proto::Digest;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Load is kept as running / slots in this fixed point (so index keys are integers).
const LOAD_ONE: u64 = 1 << 20;
/// Holding the toolchain outweighs any number of held inputs.
const TOOLCHAIN_BONUS: u64 = 1 << 32;

/// A registered worker. `running` and `state` change only through [`Registry`] so the index stays right.
pub(crate) struct Worker {
    pub(crate) id: WorkerId,
    pub(crate) name: String,
    pub(crate) pool: u32,
    pub(crate) slots: u32,
    pub(crate) memory_bytes: u64,
    pub(crate) toolchains: HashSet<Digest>,
    pub(crate) inputs: HashSet<Digest>,
    /// Slots busy with work the scheduler did not assign.
    pub(crate) external: u32,
    /// Actions (copies) the scheduler assigned to it and that have not ended.
    pub(crate) running: Vec<Digest>,
    pub(crate) state: WorkerState,
    pub(crate) last_heartbeat: Millis,
    /// Since when it runs nothing (`None` while busy).
    pub(crate) idle_since: Option<Millis>,
    pub(crate) health: Health,
    /// Audits its answers passed (agreed with another worker's).
    pub(crate) audits_passed: u32,
    /// Audits where its answer was outvoted or left without a majority.
    pub(crate) audit_mismatches: u32,
    /// Why it was quarantined, once it is.
    pub(crate) quarantine: Option<QuarantineReason>,
    /// Its key in its pool's free index, when it is there.
    indexed: Option<u32>,
}

impl Worker {
    fn busy(&self) -> u32 {
        (self.running.len() as u32).saturating_add(self.external)
    }

    /// Whether enough of its answers passed audits that only a sample of its actions is audited.
    pub(crate) fn proven(&self, cfg: &Config) -> bool {
        self.audits_passed >= cfg.audit_first
    }

    /// Whether it may take one more action now.
    pub(crate) fn has_free_slot(&self) -> bool {
        self.state == WorkerState::Active && self.busy() < self.slots
    }

    fn affinity(&self, toolchain: &Digest, inputs: &[Digest]) -> u64 {
        let held = inputs.iter().filter(|d| self.inputs.contains(d)).count() as u64;
        held + if self.toolchains.contains(toolchain) { TOOLCHAIN_BONUS } else { 0 }
    }
}

/// All workers, by id, with the per-pool free index.
#[derive(Default)]
pub(crate) struct Registry {
    workers: Vec<Worker>,
    by_id: HashMap<WorkerId, u32>,
    /// Per pool: (load key, worker index) of every active worker with a free slot.
    free: Vec<BTreeSet<(u32, u32)>>,
}

impl Registry {
    /// The index of a registered worker.
    pub(crate) fn index(&self, id: WorkerId) -> Option<u32> {
        self.by_id.get(&id).copied()
    }

    pub(crate) fn worker(&self, idx: u32) -> &Worker {
        &self.workers[idx as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Worker)> {
        self.workers.iter().enumerate().map(|(i, w)| (i as u32, w))
    }

    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Health is not part of the index, so it may be changed freely.
    pub(crate) fn health_mut(&mut self, idx: u32) -> &mut Health {
        &mut self.workers[idx as usize].health
    }

    /// Its audit record and quarantine reason are not part of the index either.
    pub(crate) fn record_mut(&mut self, idx: u32) -> (&mut u32, &mut u32, &mut Option<QuarantineReason>) {
        let w = &mut self.workers[idx as usize];
        (&mut w.audits_passed, &mut w.audit_mismatches, &mut w.quarantine)
    }

    /// Whether any worker of `pool` has a free slot.
    pub(crate) fn has_free(&self, pool: u32) -> bool {
        self.free.get(pool as usize).is_some_and(|s| !s.is_empty())
    }

    /// Adds a worker, or replaces the one with the same id (a restart; a quarantined one stays so). Returns its index and the actions
    /// the replaced worker was running (the caller requeues them).
    pub(crate) fn register(&mut self, info: WorkerInfo, pool: u32, now: Millis, cfg: &Config) -> (u32, Vec<Digest>) {
        let worker = Worker {
            id: info.id,
            name: info.name,
            pool,
            slots: info.slots,
            memory_bytes: info.memory_bytes,
            toolchains: info.toolchains.into_iter().collect(),
            inputs: info.inputs.into_iter().take(cfg.max_held_inputs).collect(),
            external: 0,
            running: Vec::new(),
            state: WorkerState::Active,
            last_heartbeat: now,
            idle_since: Some(now),
            health: Health::default(),
            audits_passed: 0,
            audit_mismatches: 0,
            quarantine: None,
            indexed: None,
        };
        if self.free.len() <= pool as usize {
            self.free.resize_with(pool as usize + 1, BTreeSet::new);
        }
        let (idx, old) = match self.by_id.get(&worker.id) {
            Some(&idx) => {
                self.unindex(idx);
                let slot = &mut self.workers[idx as usize];
                let old = std::mem::take(&mut slot.running);
                // Quarantine outlives a restart: a worker cannot clear it by registering again.
                let kept = (slot.state == WorkerState::Quarantined).then(|| slot.health.clone());
                // So does its audit record: the same identity, the same standing.
                let record = (slot.audits_passed, slot.audit_mismatches, slot.quarantine);
                *slot = worker;
                (slot.audits_passed, slot.audit_mismatches, slot.quarantine) = record;
                if let Some(health) = kept {
                    slot.state = WorkerState::Quarantined;
                    slot.health = health;
                }
                (idx, old)
            }
            None => {
                let idx = self.workers.len() as u32;
                self.by_id.insert(worker.id, idx);
                self.workers.push(worker);
                (idx, Vec::new())
            }
        };
        self.reindex(idx);
        (idx, old)
    }

    /// Applies a heartbeat: a lost worker becomes active again.
    pub(crate) fn heartbeat(
        &mut self,
        idx: u32,
        external: Option<u32>,
        toolchains: Option<Vec<Digest>>,
        inputs: Option<Vec<Digest>>,
        now: Millis,
        cfg: &Config,
    ) {
        self.unindex(idx);
        let w = &mut self.workers[idx as usize];
        w.last_heartbeat = now;
        if w.state == WorkerState::Lost {
            w.state = WorkerState::Active;
        }
        if let Some(n) = external {
            w.external = n;
        }
        if let Some(t) = toolchains {
            w.toolchains = t.into_iter().collect();
        }
        if let Some(i) = inputs {
            w.inputs = i.into_iter().take(cfg.max_held_inputs).collect();
        }
        self.reindex(idx);
    }

    /// Changes a worker's state (lost, quarantined).
    pub(crate) fn set_state(&mut self, idx: u32, state: WorkerState) {
        self.unindex(idx);
        self.workers[idx as usize].state = state;
        self.reindex(idx);
    }

    /// Records that `action` now runs on worker `idx`.
    pub(crate) fn start(&mut self, idx: u32, action: Digest) {
        self.unindex(idx);
        let w = &mut self.workers[idx as usize];
        w.running.push(action);
        w.idle_since = None;
        self.reindex(idx);
    }

    /// Records that `action` no longer runs on worker `idx`; false if it did not.
    pub(crate) fn stop(&mut self, idx: u32, action: &Digest, now: Millis) -> bool {
        let Some(pos) = self.workers[idx as usize].running.iter().position(|d| d == action) else {
            return false;
        };
        self.unindex(idx);
        let w = &mut self.workers[idx as usize];
        w.running.swap_remove(pos);
        if w.running.is_empty() {
            w.idle_since = Some(now);
        }
        self.reindex(idx);
        true
    }

    /// The best worker of `pool` for an action (see the module doc), skipping those in `avoid`. When every
    /// candidate is avoided, `strict` gives up and otherwise the least-loaded candidate is taken anyway.
    pub(crate) fn choose(
        &self,
        pool: u32,
        toolchain: &Digest,
        inputs: &[Digest],
        avoid: &[u32],
        strict: bool,
        cfg: &Config,
    ) -> Option<u32> {
        self.choose_where(pool, toolchain, inputs, |idx, _| avoid.contains(&idx), strict, cfg)
    }

    /// [`choose`](Self::choose) skipping the candidates `skip` names (by index and worker) instead of a list.
    pub(crate) fn choose_where(
        &self,
        pool: u32,
        toolchain: &Digest,
        inputs: &[Digest],
        skip: impl Fn(u32, &Worker) -> bool,
        strict: bool,
        cfg: &Config,
    ) -> Option<u32> {
        let free = self.free.get(pool as usize)?;
        let tolerance = (cfg.load_tolerance.max(0.0) * LOAD_ONE as f64) as u64;
        let inputs = &inputs[..inputs.len().min(cfg.affinity_inputs)];
        let mut min_load = None;
        let mut best: Option<(u64, u32)> = None;
        let mut fallback = None;
        for &(load, idx) in free.iter().take(cfg.candidates.max(1)) {
            fallback.get_or_insert(idx);
            if skip(idx, self.worker(idx)) {
                continue;
            }
            let min = *min_load.get_or_insert(u64::from(load));
            if u64::from(load) > min + tolerance {
                break;
            }
            let score = self.worker(idx).affinity(toolchain, inputs);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, idx));
            }
        }
        match best {
            Some((_, idx)) => Some(idx),
            None if strict => None,
            None => fallback,
        }
    }

    fn unindex(&mut self, idx: u32) {
        let w = &mut self.workers[idx as usize];
        if let Some(key) = w.indexed.take() {
            self.free[w.pool as usize].remove(&(key, idx));
        }
    }

    fn reindex(&mut self, idx: u32) {
        let w = &mut self.workers[idx as usize];
        debug_assert!(w.indexed.is_none(), "reindex follows unindex");
        if w.has_free_slot() {
            // busy < slots, so the key is below LOAD_ONE and fits in u32.
            let key = (u64::from(w.busy()) * LOAD_ONE / u64::from(w.slots)) as u32;
            w.indexed = Some(key);
            self.free[w.pool as usize].insert((key, idx));
        }
    }
}
