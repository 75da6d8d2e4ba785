//! [`Dispatcher`]: the state machine that ties workers, queues, history and health together.

use super::audit::{Answer, Audit};
use super::config::Config;
use super::history::History;
use super::queue::PoolQueue;
use super::types::{
    ActionSpec, Command, Counters, Delivery, DispatchError, FailureKind, Heartbeat, Millis, Outcome, QuarantineReason,
    RequesterId, SubmitOutcome, WorkerId, WorkerInfo, WorkerState,
};
use super::workers::Registry;
use rcc_proto::Digest;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// The sans-IO dispatch core of the remote build pool.
///
/// Calling convention (as quinn-proto's `Connection`):
/// - *inputs*, each taking `now`: [`handle_register`](Self::handle_register),
///   [`handle_heartbeat`](Self::handle_heartbeat), [`handle_submit`](Self::handle_submit),
///   [`handle_withdraw`](Self::handle_withdraw), [`handle_result`](Self::handle_result),
///   [`handle_corrupt`](Self::handle_corrupt) and [`handle_timeout`](Self::handle_timeout) (call it
///   periodically, e.g. every second: heartbeat expiry and speculative twins). They return the
///   [`Command`]s the event caused, in order.
/// - *decisions*: after any input, call [`poll_dispatch`](Self::poll_dispatch) until it returns `None`; each
///   call assigns one queued action (or an audit's copy, first) to a worker. [`dispatch`](Self::dispatch)
///   does that loop.
/// - *getters*: [`status`](Self::status), [`queued`](Self::queued), [`in_flight`](Self::in_flight),
///   [`config`](Self::config).
pub struct Dispatcher {
    pub(super) cfg: Config,
    pub(super) pools: Vec<Pool>,
    pool_ids: HashMap<String, u32>,
    pub(super) workers: Registry,
    pub(super) actions: HashMap<Digest, Action>,
    history: History,
    /// Due times of speculative twins, (when, action).
    twins: BTreeSet<(Millis, Digest)>,
    /// Per pool, audited actions waiting for a free worker to run their next copy (see `audit`).
    pub(super) audit_pending: Vec<VecDeque<Digest>>,
    /// When audits waiting for an answer are given up, (when, action).
    pub(super) audit_deadlines: BTreeSet<(Millis, Digest)>,
    seq: u64,
    /// Pool to look at first in the next decision (round robin between pools).
    cursor: usize,
    pub(super) counters: Counters,
}

/// A pool: its name and its queue.
pub(super) struct Pool {
    pub(super) name: String,
    pub(super) queue: PoolQueue,
}

/// An action in flight: queued (no copies) or running (one copy, two with a twin).
pub(super) struct Action {
    pub(super) pool: u32,
    kind: Digest,
    pub(super) toolchain: Digest,
    pub(super) inputs: Box<[Digest]>,
    requesters: Vec<RequesterId>,
    estimate: Millis,
    pub(super) attempts: u32,
    /// Workers that failed it, avoided when possible.
    pub(super) avoid: Vec<u32>,
    pub(super) copies: Vec<RunningCopy>,
    /// The queue entry's sequence number while queued.
    pub(super) queued: Option<u64>,
    /// Its audit, when it is audited: answers are compared before any is delivered.
    pub(super) audit: Option<Audit>,
    twin_at: Option<Millis>,
    twinned: bool,
    /// When it was submitted, until its first copy starts.
    waiting_since: Option<Millis>,
}

/// One copy of an action running on a worker.
pub(super) struct RunningCopy {
    pub(super) worker: u32,
    pub(super) started: Millis,
    pub(super) twin: bool,
    /// A copy run to audit another's answer.
    pub(super) audit: bool,
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new(cfg: Config) -> Dispatcher {
        let history = History::new(cfg.history_len, cfg.max_kinds, cfg.default_estimate, cfg.health_window);
        Dispatcher {
            cfg,
            pools: Vec::new(),
            pool_ids: HashMap::new(),
            workers: Registry::default(),
            actions: HashMap::new(),
            history,
            twins: BTreeSet::new(),
            audit_pending: Vec::new(),
            audit_deadlines: BTreeSet::new(),
            seq: 0,
            cursor: 0,
            counters: Counters::default(),
        }
    }

    /// A worker registers (or re-registers after a restart: what it was running is requeued).
    pub fn handle_register(&mut self, info: WorkerInfo, now: Millis) -> Result<Vec<Command>, DispatchError> {
        if info.slots == 0 {
            return Err(DispatchError::NoSlots(info.id));
        }
        if info.pool.is_empty() {
            return Err(DispatchError::EmptyPool);
        }
        let pool = self.pool_index(&info.pool);
        let (idx, old) = self.workers.register(info, pool, now, &self.cfg);
        let mut out = Vec::new();
        for action in old {
            self.drop_copy(action, idx, FailureKind::WorkerLost, now, &mut out);
        }
        Ok(out)
    }

    /// A worker's heartbeat: it is alive (again), and maybe reports load and holdings.
    pub fn handle_heartbeat(&mut self, worker: WorkerId, hb: Heartbeat, now: Millis) -> Result<(), DispatchError> {
        let idx = self.workers.index(worker).ok_or(DispatchError::UnknownWorker(worker))?;
        self.workers.heartbeat(idx, hb.external_load, hb.toolchains, hb.inputs, now, &self.cfg);
        Ok(())
    }

    /// A requester asks for an action. An identical action (same digest) in flight runs once: the requester
    /// is attached to it. A requester attached twice still receives the result once.
    pub fn handle_submit(&mut self, spec: ActionSpec, now: Millis) -> Result<SubmitOutcome, DispatchError> {
        if spec.pool.is_empty() {
            return Err(DispatchError::EmptyPool);
        }
        self.counters.submitted += 1;
        if let Some(action) = self.actions.get_mut(&spec.digest) {
            self.counters.attached += 1;
            if !action.requesters.contains(&spec.requester) {
                action.requesters.push(spec.requester);
            }
            return Ok(SubmitOutcome::Attached { requesters: action.requesters.len() });
        }
        let pool = self.pool_index(&spec.pool);
        let estimate = self.history.estimate(&spec.kind);
        let action = Action {
            pool,
            kind: spec.kind,
            toolchain: spec.toolchain,
            inputs: spec.inputs.into_boxed_slice(),
            requesters: vec![spec.requester],
            estimate,
            attempts: 0,
            avoid: Vec::new(),
            copies: Vec::new(),
            queued: None,
            twin_at: None,
            twinned: false,
            waiting_since: Some(now),
            audit: None,
        };
        self.actions.insert(spec.digest, action);
        self.enqueue(spec.digest, false);
        Ok(SubmitOutcome::Queued)
    }

    /// A requester no longer wants an action. Others attached to it keep it; when none is left it is
    /// dropped, and its running copies are cancelled.
    pub fn handle_withdraw(&mut self, action: Digest, requester: RequesterId, now: Millis) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(a) = self.actions.get_mut(&action) else { return out };
        a.requesters.retain(|r| *r != requester);
        if !a.requesters.is_empty() {
            return out;
        }
        if let Some(a) = self.actions.remove(&action) {
            // A queue entry left behind is stale: `queued` no longer matches it.
            self.forget_twin(&a, action);
            self.forget_audit(&a, action);
            for copy in a.copies {
                self.workers.stop(copy.worker, &action, now);
                out.push(Command::Cancel { action, worker: self.workers.worker(copy.worker).id });
            }
        }
        out
    }

    /// Makes one dispatch decision: the next queued action of a pool that has a free worker goes to the best
    /// worker for it. `None` when no queued action can be placed now.
    pub fn poll_dispatch(&mut self, now: Millis) -> Option<Command> {
        if let Some(assign) = self.place_audit_copy(now) {
            return Some(assign);
        }
        let n = self.pools.len();
        let mut tried = 0;
        while tried < n {
            let p = (self.cursor + tried) % n;
            if self.pools[p].queue.is_empty() || !self.workers.has_free(p as u32) {
                tried += 1;
                continue;
            }
            let Some((digest, seq)) = self.pools[p].queue.pop() else { continue };
            let Some(action) = self.actions.get(&digest).filter(|a| a.queued == Some(seq)) else {
                continue; // stale entry of a withdrawn action: look at this pool again
            };
            let Some(idx) =
                self.workers.choose(p as u32, &action.toolchain, &action.inputs, &action.avoid, false, &self.cfg)
            else {
                // Not reached: the pool has a free worker and the choice is not strict. Keep the action.
                self.enqueue(digest, true);
                tried += 1;
                continue;
            };
            self.cursor = (p + 1) % n;
            self.start_copy(digest, idx, false, false, now);
            // No command comes of this: with the copy just started running, an audit only marks a further
            // copy pending (placed by a later call) or is skipped.
            let mut none = Vec::new();
            self.open_audit(digest, idx, now, &mut none);
            debug_assert!(none.is_empty(), "opening an audit with a copy running issues no command");
            return Some(Command::Assign { action: digest, worker: self.workers.worker(idx).id, twin: false });
        }
        None
    }

    /// Calls [`poll_dispatch`](Self::poll_dispatch) until no more action can be placed.
    pub fn dispatch(&mut self, now: Millis) -> Vec<Command> {
        std::iter::from_fn(|| self.poll_dispatch(now)).collect()
    }

    /// A worker reports how its copy of an action ended. The first result wins: the requesters get it and
    /// other copies are cancelled — unless the action is audited (see the `audit` module): then answers are
    /// compared first, and a worker caught lying is quarantined. A failure requeues the action at the front (elsewhere if possible) unless
    /// another copy still runs or it has had [`Config::max_attempts`]. A result for a copy that is no longer
    /// running (cancelled, or its worker was declared lost) is ignored: no command.
    pub fn handle_result(
        &mut self,
        worker: WorkerId,
        action: Digest,
        outcome: Outcome,
        now: Millis,
    ) -> Result<Vec<Command>, DispatchError> {
        let idx = self.workers.index(worker).ok_or(DispatchError::UnknownWorker(worker))?;
        let mut out = Vec::new();
        let Some(copy) = self.take_copy(action, idx, now) else { return Ok(out) };
        let Some(a) = self.actions.get(&action) else { return Ok(out) };
        let kind = a.kind;
        let failed = !matches!(outcome, Outcome::Ran { exit_code: 0, .. });
        let expected = self.history.record_attempt(kind, failed);
        self.workers.health_mut(idx).record(failed, expected, &self.cfg);
        match outcome {
            Outcome::Ran { exit_code, result } => {
                self.history.record_duration(kind, now.saturating_sub(copy.started));
                if a.audit.is_some() {
                    self.audit_answer(action, Answer { worker: idx, exit_code, result }, now, &mut out);
                } else {
                    self.counters.twins_won += u64::from(copy.twin);
                    self.finish(action, Delivery::Ran { exit_code, result }, now, &mut out);
                }
            }
            Outcome::Failed(why) => self.after_failure(action, idx, why, now, &mut out),
        }
        self.judge(idx, now, &mut out);
        Ok(out)
    }

    /// The IO layer found that outputs `worker` produced for `action` fail verification. This weighs heavily
    /// toward quarantining the worker; if its copy was still counted as running, the action is requeued.
    pub fn handle_corrupt(
        &mut self,
        worker: WorkerId,
        action: Digest,
        now: Millis,
    ) -> Result<Vec<Command>, DispatchError> {
        let idx = self.workers.index(worker).ok_or(DispatchError::UnknownWorker(worker))?;
        let mut out = Vec::new();
        self.workers.health_mut(idx).record_corrupt(&self.cfg);
        if self.take_copy(action, idx, now).is_some() {
            self.after_failure(action, idx, FailureKind::Corrupt, now, &mut out);
        }
        self.judge(idx, now, &mut out);
        Ok(out)
    }

    /// Time passes: workers silent for [`Config::heartbeat_timeout`] are lost (their actions requeued at the
    /// front), and actions running past [`Config::twin_factor`] × their kind's median get a twin on another
    /// worker. A twin takes a free slot even when actions wait: one straggler can hold up a whole build.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<Command> {
        let mut out = Vec::new();
        let expired: Vec<u32> = self
            .workers
            .iter()
            .filter(|(_, w)| {
                w.state == WorkerState::Active && w.last_heartbeat.saturating_add(self.cfg.heartbeat_timeout) <= now
            })
            .map(|(i, _)| i)
            .collect();
        for idx in expired {
            self.workers.set_state(idx, WorkerState::Lost);
            out.push(Command::WorkerLost { worker: self.workers.worker(idx).id });
            self.evict(idx, FailureKind::WorkerLost, false, now, &mut out);
        }
        while let Some(&(at, digest)) = self.twins.first() {
            if at > now {
                break;
            }
            self.twins.pop_first();
            let Some(a) = self.actions.get(&digest) else { continue };
            if a.twin_at != Some(at) || a.twinned || a.copies.len() != 1 {
                continue;
            }
            let avoid: Vec<u32> = a.copies.iter().map(|c| c.worker).collect();
            match self.workers.choose(a.pool, &a.toolchain, &a.inputs, &avoid, true, &self.cfg) {
                Some(idx) => {
                    self.start_copy(digest, idx, true, false, now);
                    out.push(Command::Assign { action: digest, worker: self.workers.worker(idx).id, twin: true });
                    // A twin on a new worker makes the action audited: its answer must not win unchecked.
                    self.open_audit(digest, idx, now, &mut out);
                }
                None => {
                    let retry = now.saturating_add(self.cfg.twin_retry.max(1));
                    if let Some(a) = self.actions.get_mut(&digest) {
                        a.twin_at = Some(retry);
                    }
                    self.twins.insert((retry, digest));
                }
            }
        }
        self.expire_audits(now, &mut out);
        out
    }

    /// Counts an action answered from a recent identical one instead of running (see [`Status::counters`]).
    ///
    /// [`Status::counters`]: super::Status
    pub fn note_reused(&mut self) {
        self.counters.reused += 1;
    }

    /// Whether `pool` has a worker that takes actions (without building the whole status).
    pub fn has_active_worker(&self, pool: &str) -> bool {
        let Some(&id) = self.pool_ids.get(pool) else { return false };
        self.workers.iter().any(|(_, w)| w.pool == id && w.state == WorkerState::Active)
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Queued actions over all pools.
    pub fn queued(&self) -> usize {
        self.actions.values().filter(|a| a.copies.is_empty()).count()
    }

    /// Actions queued or running.
    pub fn in_flight(&self) -> usize {
        self.actions.len()
    }

    /// Whether this action is queued or running.
    pub fn is_in_flight(&self, action: &Digest) -> bool {
        self.actions.contains_key(action)
    }

    fn pool_index(&mut self, name: &str) -> u32 {
        if let Some(&p) = self.pool_ids.get(name) {
            return p;
        }
        let p = self.pools.len() as u32;
        self.pools.push(Pool { name: name.to_owned(), queue: PoolQueue::default() });
        self.pool_ids.insert(name.to_owned(), p);
        p
    }

    fn enqueue(&mut self, digest: Digest, front: bool) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(a) = self.actions.get_mut(&digest) {
            a.queued = Some(seq);
            self.pools[a.pool as usize].queue.push(digest, a.estimate, front, seq);
        }
    }

    pub(super) fn start_copy(&mut self, digest: Digest, idx: u32, twin: bool, audit: bool, now: Millis) {
        self.workers.start(idx, digest);
        self.counters.assigned += 1;
        self.counters.twins += u64::from(twin);
        let Some(a) = self.actions.get_mut(&digest) else { return };
        a.queued = None;
        if let Some(since) = a.waiting_since.take() {
            self.counters.queued_millis += now.saturating_sub(since);
        }
        a.copies.push(RunningCopy { worker: idx, started: now, twin, audit });
        if twin {
            a.twinned = true;
        } else if !audit && a.twin_at.is_none() && !a.twinned {
            if let Some(median) = self.history.median(&a.kind, self.cfg.twin_min_history) {
                let at = now.saturating_add((median as f64 * self.cfg.twin_factor) as Millis);
                a.twin_at = Some(at);
                self.twins.insert((at, digest));
            }
        }
    }

    /// Removes `worker`'s copy of `action` from both sides, if it had one.
    fn take_copy(&mut self, action: Digest, idx: u32, now: Millis) -> Option<RunningCopy> {
        let a = self.actions.get_mut(&action)?;
        let pos = a.copies.iter().position(|c| c.worker == idx)?;
        let copy = a.copies.swap_remove(pos);
        self.workers.stop(idx, &action, now);
        Some(copy)
    }

    /// Ends `worker`'s copy of `action` because of `why` (loss, restart) without a result from it.
    fn drop_copy(&mut self, action: Digest, idx: u32, why: FailureKind, now: Millis, out: &mut Vec<Command>) {
        if self.take_copy(action, idx, now).is_some() {
            self.after_failure(action, idx, why, now, out);
        }
    }

    /// Takes every action off a worker (lost or quarantined), cancelling them on it if asked.
    fn evict(&mut self, idx: u32, why: FailureKind, cancel: bool, now: Millis, out: &mut Vec<Command>) {
        let running = self.workers.worker(idx).running.clone();
        for action in running {
            if cancel {
                out.push(Command::Cancel { action, worker: self.workers.worker(idx).id });
            }
            self.drop_copy(action, idx, why, now, out);
        }
    }

    /// A copy ended without a result: requeue at the front, or give up after too many attempts. Nothing to
    /// do while another copy still runs. An audited action that has answers seeks another copy instead.
    fn after_failure(&mut self, action: Digest, idx: u32, why: FailureKind, now: Millis, out: &mut Vec<Command>) {
        let Some(a) = self.actions.get_mut(&action) else { return };
        if !a.avoid.contains(&idx) {
            a.avoid.push(idx);
        }
        if !a.copies.is_empty() {
            return;
        }
        if a.audit.as_ref().is_some_and(|au| !au.answers.is_empty()) {
            return self.settle(action, now, out);
        }
        a.attempts += 1;
        if a.attempts >= self.cfg.max_attempts.max(1) {
            let attempts = a.attempts;
            self.finish(action, Delivery::Failed { attempts, last: why }, now, out);
        } else {
            self.requeue(action);
        }
    }

    /// Puts an action without running copies back at the front of its queue.
    pub(super) fn requeue(&mut self, action: Digest) {
        self.forget_twin_of(action);
        if let Some(a) = self.actions.get_mut(&action) {
            a.twin_at = None;
            a.twinned = false;
            if let Some(audit) = a.audit.as_mut() {
                audit.pending = false;
            }
        }
        self.enqueue(action, true);
    }

    /// Delivers to every requester, cancels the other copies, forgets the action.
    pub(super) fn finish(&mut self, action: Digest, delivery: Delivery, now: Millis, out: &mut Vec<Command>) {
        let Some(a) = self.actions.remove(&action) else { return };
        self.forget_twin(&a, action);
        self.forget_audit(&a, action);
        for copy in &a.copies {
            self.workers.stop(copy.worker, &action, now);
            out.push(Command::Cancel { action, worker: self.workers.worker(copy.worker).id });
        }
        self.counters.delivered += a.requesters.len() as u64;
        out.push(Command::Deliver { action, requesters: a.requesters, delivery });
    }

    fn forget_twin(&mut self, a: &Action, digest: Digest) {
        if let Some(at) = a.twin_at {
            self.twins.remove(&(at, digest));
        }
    }

    fn forget_audit(&mut self, a: &Action, digest: Digest) {
        if let Some(at) = a.audit.as_ref().and_then(|au| au.deadline) {
            self.audit_deadlines.remove(&(at, digest));
        }
    }

    fn forget_twin_of(&mut self, digest: Digest) {
        if let Some(at) = self.actions.get(&digest).and_then(|a| a.twin_at) {
            self.twins.remove(&(at, digest));
        }
    }

    /// Quarantines `worker` if its record calls for it.
    fn judge(&mut self, idx: u32, now: Millis, out: &mut Vec<Command>) {
        let w = self.workers.worker(idx);
        if w.state == WorkerState::Quarantined {
            return;
        }
        let Some(reason) = w.health.verdict(&self.cfg) else { return };
        self.quarantine(idx, reason, now, out);
    }

    /// Gives `worker` no more actions, for `reason`; its running copies are cancelled and requeued.
    pub(super) fn quarantine(&mut self, idx: u32, reason: QuarantineReason, now: Millis, out: &mut Vec<Command>) {
        let id = self.workers.worker(idx).id;
        tracing::warn!(worker = id.0, ?reason, "worker quarantined");
        self.workers.set_state(idx, WorkerState::Quarantined);
        *self.workers.record_mut(idx).2 = Some(reason);
        out.push(Command::Quarantined { worker: id, reason });
        self.evict(idx, FailureKind::Quarantined, true, now, out);
    }
}
