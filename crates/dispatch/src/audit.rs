//! Audits: some actions run on a second worker and the two answers are compared, so a worker that answers
//! with wrong outputs (a self-consistent lie: another object, stored under that object's own digest, that no
//! digest check can catch) is caught and quarantined.
//!
//! - **What is audited.** Every action a worker runs until it is *proven* ([`Config::audit_first`] of its
//!   answers agreed with another worker's), and a share [`Config::audit_share`] of every other action,
//!   drawn from a keyed digest of the action ([`Config::audit_seed`], secret from workers): a worker cannot
//!   tell which of its actions are audited. Workers are never told that a copy is an audit.
//! - **What is compared.** The answers' `(exit code, result)` of [`Outcome::Ran`]: the IO layer makes
//!   `result` a digest of the outputs (names, digests, modes) and the exit code, *not* of stdout and stderr,
//!   which may differ between honest runs (`-ftime-report`, a warning naming a temporary path) and are
//!   shown to the user, never linked or run.
//! - **The auditor.** A copy on another worker of the pool, chosen as for a twin but preferring a proven
//!   worker; it takes a free slot ahead of queued actions. Both answers count: agreeing, each worker gets an
//!   audit passed (two new workers can prove each other; see "limits").
//! - **Waiting.** The requesters get an audited action's result only once two workers agree: a new lying
//!   worker never reaches a client, and neither does a proven one's sampled lie. The cost is latency: an
//!   audited action ends with the later of its two copies. Sampled actions wait as well: answering with the
//!   first result and comparing in the background would save that latency on 2 % of actions, but let a
//!   sampled lie into clients' local caches before the verdict, where the scheduler cannot reach it.
//! - **Disagreement.** A worker that disagrees with a proven worker is quarantined at once
//!   ([`QuarantineReason::AuditMismatch`]), and the proven worker's result delivered. Two proven workers, or
//!   two new ones, that disagree are not judged blindly: a third copy runs elsewhere and the majority wins
//!   (the dissenter is quarantined). Three different answers, or no third worker: no one is quarantined,
//!   each counts a mismatch (a suspect, in status), and the requesters get
//!   [`FailureKind::AuditDisagreement`]: they compile locally.
//! - **Bounds.** When no other active worker of the pool could run the copy (a pool of one, or every other
//!   one already ran or failed it), the audit is skipped at once and the answer delivered
//!   ([`Counters::audits_skipped`], the pool's `can_audit` in status): a pool of one cannot audit, and a
//!   build must not hang on it. When another worker exists but no second answer comes within
//!   [`Config::audit_wait`] of the first (all busy, or the auditor stalls), the audit is given up
//!   ([`Counters::audits_timed_out`]): a proven worker's answer is delivered, a new worker's is not (its
//!   requesters compile locally), so a second colluding worker stalling as auditor gains a liar nothing.
//! - **Conviction** drops every other answer of the convicted worker still waiting in an audit; the IO layer
//!   drops what it had stored of its results ([`Command::Quarantined`] with the audit reason).
//!
//! Limits: a worker proven by agreeing with another new worker may be a colluder; the auditor is a proven
//! worker whenever one is free, so this matters only while a pool has none (at its start). A proven worker
//! lying on a few actions is caught only on a sampled one, at the rate [`Config::audit_share`].
//!
//! [`Counters::audits_skipped`]: super::Counters
//! [`Counters::audits_timed_out`]: super::Counters

use super::config::Config;
use super::dispatcher::Dispatcher;
use super::types::{Command, Delivery, FailureKind, Millis, QuarantineReason, WorkerState};
use rcc_proto::Digest;

/// An audited action's state.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// The answers so far, one per worker.
    pub(crate) answers: Vec<Answer>,
    /// When the audit is given up if no verdict came (set by the first answer).
    pub(crate) deadline: Option<Millis>,
    /// A further copy is waiting for a free worker (its digest is in the dispatcher's pending list).
    pub(crate) pending: bool,
}

/// One worker's answer to an audited action.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer {
    pub(crate) worker: u32,
    pub(crate) exit_code: i32,
    pub(crate) result: Digest,
}

impl Answer {
    fn agrees(&self, other: &Answer) -> bool {
        (self.exit_code, self.result) == (other.exit_code, other.result)
    }

    fn delivery(&self) -> Delivery {
        Delivery::Ran { exit_code: self.exit_code, result: self.result }
    }
}

/// Whether `action` is in the audited sample: a keyed digest of it, read as a number in [0, 1), is below
/// `share`. Deterministic for one seed; unpredictable without it.
pub(crate) fn sampled(cfg: &Config, action: &Digest) -> bool {
    if cfg.audit_share <= 0.0 {
        return false;
    }
    let mut keyed = [0u8; 40];
    keyed[..8].copy_from_slice(&cfg.audit_seed.to_le_bytes());
    keyed[8..].copy_from_slice(&action.0);
    let drawn = Digest::of(&keyed);
    let mut head = [0u8; 8];
    head.copy_from_slice(&drawn.0[..8]);
    (u64::from_le_bytes(head) as f64) < cfg.audit_share * 18_446_744_073_709_551_616.0
}

impl Dispatcher {
    /// The copy of `action` just started on worker `idx` (not an audit copy) makes the action audited when
    /// the worker is not proven or the action is sampled; an audited action gets its further copy sought.
    pub(super) fn open_audit(&mut self, action: Digest, idx: u32, now: Millis, out: &mut Vec<Command>) {
        let Some(a) = self.actions.get(&action) else { return };
        if a.audit.is_none() {
            let due = !self.workers.worker(idx).proven(&self.cfg) || sampled(&self.cfg, &action);
            if !due {
                return;
            }
            if !self.auditor_exists(action) {
                self.counters.audits_skipped += 1;
                return;
            }
            self.counters.audits += 1;
            if let Some(a) = self.actions.get_mut(&action) {
                a.audit = Some(Audit::default());
            }
        }
        // Requeued and started again: a copy is sought unless enough can still answer.
        let Some(a) = self.actions.get(&action) else { return };
        if a.copies.len() + a.audit.as_ref().map_or(0, |au| au.answers.len()) < 2 {
            self.seek_copy(action, now, out);
        }
    }

    /// A worker's answer to an audited action.
    pub(super) fn audit_answer(&mut self, action: Digest, answer: Answer, now: Millis, out: &mut Vec<Command>) {
        let wait = self.cfg.audit_wait;
        let Some(audit) = self.actions.get_mut(&action).and_then(|a| a.audit.as_mut()) else { return };
        audit.answers.retain(|a| a.worker != answer.worker);
        audit.answers.push(answer);
        if audit.deadline.is_none() {
            let at = now.saturating_add(wait);
            audit.deadline = Some(at);
            self.audit_deadlines.insert((at, action));
        }
        self.settle(action, now, out);
    }

    /// Decides an audited action when its answers allow it, or seeks a further copy.
    pub(super) fn settle(&mut self, action: Digest, now: Millis, out: &mut Vec<Command>) {
        let Some(a) = self.actions.get(&action) else { return };
        let Some(audit) = a.audit.as_ref() else { return };
        let answers = audit.answers.clone();
        let running = !a.copies.is_empty();
        let agreed = answers.iter().find(|x| answers.iter().filter(|y| x.agrees(y)).count() >= 2).copied();
        if let Some(agreed) = agreed {
            let (winners, losers): (Vec<Answer>, Vec<Answer>) = answers.iter().partition(|x| x.agrees(&agreed));
            if losers.is_empty() {
                self.counters.audits_passed += 1;
            } else {
                self.counters.audits_mismatched += 1;
            }
            for w in &winners {
                *self.workers.record_mut(w.worker).0 += 1;
            }
            self.finish(action, agreed.delivery(), now, out);
            for loser in losers {
                self.convict(loser.worker, agreed.worker, now, out);
            }
            return;
        }
        match answers[..] {
            [] => {}
            [_] if running => {}
            [_] => self.seek_copy(action, now, out),
            [x, y] => {
                let proven = |i: u32| self.workers.worker(i).proven(&self.cfg);
                let (truth, liar) = match (proven(x.worker), proven(y.worker)) {
                    (true, false) => (x, y),
                    (false, true) => (y, x),
                    // Both proven or both new: a third copy decides.
                    _ if running => return,
                    _ => return self.seek_copy(action, now, out),
                };
                self.counters.audits_mismatched += 1;
                self.finish(action, truth.delivery(), now, out);
                self.convict(liar.worker, truth.worker, now, out);
            }
            _ => self.undecided(action, now, out),
        }
    }

    /// Asks for one more copy of an audited action, or gives the audit up when no other worker could run it.
    fn seek_copy(&mut self, action: Digest, now: Millis, out: &mut Vec<Command>) {
        let Some(audit) = self.actions.get_mut(&action).and_then(|a| a.audit.as_mut()) else { return };
        if audit.pending {
            return;
        }
        if self.auditor_exists(action) {
            if let Some(audit) = self.actions.get_mut(&action).and_then(|a| a.audit.as_mut()) {
                audit.pending = true;
            }
            let pool = self.actions.get(&action).map_or(0, |a| a.pool as usize);
            if self.audit_pending.len() <= pool {
                self.audit_pending.resize_with(pool + 1, Default::default);
            }
            self.audit_pending[pool].push_back(action);
        } else {
            self.give_up(action, false, now, out);
        }
    }

    /// Ends an audit without a verdict: when no other worker could run a copy (`timed_out` false) or none
    /// answered in time. One answer from a proven worker, or from any worker when there was no one else to
    /// ask, is delivered; one from a new worker that another worker could have checked is not; answers that
    /// disagree without a majority make everyone who gave them a suspect.
    fn give_up(&mut self, action: Digest, timed_out: bool, now: Millis, out: &mut Vec<Command>) {
        let Some(a) = self.actions.get(&action) else { return };
        let Some(audit) = a.audit.as_ref() else { return };
        let attempts = a.attempts + 1;
        match audit.answers[..] {
            [] => {
                // Its answers were struck (their worker convicted): the next answer waits afresh.
                if let Some(audit) = self.actions.get_mut(&action).and_then(|a| a.audit.as_mut()) {
                    audit.deadline = None;
                }
            }
            [only] => {
                let proven = self.workers.worker(only.worker).proven(&self.cfg);
                if timed_out {
                    self.counters.audits_timed_out += 1;
                } else {
                    self.counters.audits_skipped += 1;
                }
                if timed_out && !proven {
                    let last = FailureKind::AuditDisagreement;
                    self.finish(action, Delivery::Failed { attempts, last }, now, out);
                } else {
                    self.finish(action, only.delivery(), now, out);
                }
            }
            _ => self.undecided(action, now, out),
        }
    }

    /// Answers that disagree with no majority: each worker counts a mismatch, no one is quarantined, the
    /// requesters compile locally.
    fn undecided(&mut self, action: Digest, now: Millis, out: &mut Vec<Command>) {
        let Some(a) = self.actions.get(&action) else { return };
        let Some(audit) = a.audit.as_ref() else { return };
        let attempts = a.attempts + 1;
        let suspects: Vec<u32> = audit.answers.iter().map(|x| x.worker).collect();
        tracing::warn!(action = %action, suspects = suspects.len(), "audited answers disagree without a majority");
        self.counters.audits_mismatched += 1;
        for s in suspects {
            *self.workers.record_mut(s).1 += 1;
        }
        self.finish(action, Delivery::Failed { attempts, last: FailureKind::AuditDisagreement }, now, out);
    }

    /// Quarantines worker `idx`, outvoted by `against`, and strikes its answers still waiting in audits.
    fn convict(&mut self, idx: u32, against: u32, now: Millis, out: &mut Vec<Command>) {
        let (_, mismatches, _) = self.workers.record_mut(idx);
        *mismatches += 1;
        let mismatches = *mismatches;
        if self.workers.worker(idx).state == WorkerState::Quarantined {
            return;
        }
        let reason = QuarantineReason::AuditMismatch { against: self.workers.worker(against).id, mismatches };
        self.quarantine(idx, reason, now, out);
        let struck: Vec<Digest> = self
            .actions
            .iter()
            .filter(|(_, a)| a.audit.as_ref().is_some_and(|au| au.answers.iter().any(|x| x.worker == idx)))
            .map(|(d, _)| *d)
            .collect();
        for action in struck {
            let Some(a) = self.actions.get_mut(&action) else { continue };
            let Some(audit) = a.audit.as_mut() else { continue };
            audit.answers.retain(|x| x.worker != idx);
            if !a.avoid.contains(&idx) {
                a.avoid.push(idx);
            }
            if !audit.answers.is_empty() {
                self.settle(action, now, out);
                continue;
            }
            audit.deadline = None;
            if a.copies.is_empty() && a.queued.is_none() {
                self.requeue(action);
            }
        }
    }

    /// Places one pending audit copy on a free worker other than those that ran or run the action,
    /// preferring a proven one. `None` when no pending copy can be placed now. Only pools with a free
    /// worker are looked at, so a saturated pool's pending copies cost nothing per decision.
    pub(super) fn place_audit_copy(&mut self, now: Millis) -> Option<Command> {
        for pool in 0..self.audit_pending.len() {
            if self.audit_pending[pool].is_empty() || !self.workers.has_free(pool as u32) {
                continue;
            }
            if let Some(assign) = self.place_audit_copy_in(pool, now) {
                return Some(assign);
            }
        }
        None
    }

    fn place_audit_copy_in(&mut self, pool: usize, now: Millis) -> Option<Command> {
        for _ in 0..self.audit_pending[pool].len() {
            let digest = self.audit_pending[pool].pop_front()?;
            let Some(a) = self.actions.get(&digest) else { continue };
            let Some(audit) = a.audit.as_ref() else { continue };
            if !audit.pending || a.queued.is_some() {
                continue; // stale: placed, settled or requeued meanwhile
            }
            let excluded = |i: u32| {
                a.avoid.contains(&i)
                    || a.copies.iter().any(|c| c.worker == i)
                    || audit.answers.iter().any(|x| x.worker == i)
            };
            let cfg = &self.cfg;
            let chosen = self
                .workers
                .choose_where(a.pool, &a.toolchain, &a.inputs, |i, w| excluded(i) || !w.proven(cfg), true, cfg)
                .or_else(|| self.workers.choose_where(a.pool, &a.toolchain, &a.inputs, |i, _| excluded(i), true, cfg));
            match chosen {
                Some(idx) => {
                    if let Some(audit) = self.actions.get_mut(&digest).and_then(|a| a.audit.as_mut()) {
                        audit.pending = false;
                    }
                    self.start_copy(digest, idx, false, true, now);
                    return Some(Command::Assign { action: digest, worker: self.workers.worker(idx).id, twin: false });
                }
                None => self.audit_pending[pool].push_back(digest),
            }
        }
        None
    }

    /// Audits whose wait for a second answer ran out are given up.
    pub(super) fn expire_audits(&mut self, now: Millis, out: &mut Vec<Command>) {
        while let Some(&(at, digest)) = self.audit_deadlines.first() {
            if at > now {
                break;
            }
            self.audit_deadlines.pop_first();
            let due =
                self.actions.get(&digest).and_then(|a| a.audit.as_ref()).is_some_and(|au| au.deadline == Some(at));
            if due {
                self.give_up(digest, true, now, out);
            }
        }
    }

    /// Whether an active worker of the action's pool, other than those that ran, run or failed it, exists.
    fn auditor_exists(&self, action: Digest) -> bool {
        let Some(a) = self.actions.get(&action) else { return false };
        let answered = |i: u32| a.audit.as_ref().is_some_and(|au| au.answers.iter().any(|x| x.worker == i));
        self.workers.iter().any(|(i, w)| {
            w.pool == a.pool
                && w.state == WorkerState::Active
                && !a.avoid.contains(&i)
                && !a.copies.iter().any(|c| c.worker == i)
                && !answered(i)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ActionSpec, Outcome, RequesterId, WorkerId, WorkerInfo};

    fn dg(n: u64) -> Digest {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&n.to_le_bytes());
        Digest(d)
    }

    fn worker(id: u64, slots: u32) -> WorkerInfo {
        WorkerInfo {
            id: WorkerId(id),
            name: format!("w{id}"),
            pool: "p".into(),
            slots,
            memory_bytes: 1 << 30,
            toolchains: vec![],
            inputs: vec![],
        }
    }

    fn submit(d: &mut Dispatcher, action: u64, now: Millis) {
        let spec = ActionSpec {
            digest: dg(action),
            pool: "p".into(),
            kind: dg(7),
            toolchain: dg(8),
            inputs: vec![],
            requester: RequesterId(action),
        };
        d.handle_submit(spec, now).unwrap();
    }

    /// The answer `n`: what every honest worker says for action `n`; a liar says something else.
    fn answer(result: u64) -> Outcome {
        Outcome::Ran { exit_code: 0, result: dg(result) }
    }

    fn assigns(cmds: &[Command]) -> Vec<(Digest, WorkerId)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Assign { action, worker, .. } => Some((*action, *worker)),
                _ => None,
            })
            .collect()
    }

    fn deliveries(cmds: &[Command]) -> Vec<(Digest, Delivery)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Deliver { action, delivery, .. } => Some((*action, *delivery)),
                _ => None,
            })
            .collect()
    }

    fn quarantined(cmds: &[Command]) -> Vec<(WorkerId, QuarantineReason)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Quarantined { worker, reason } => Some((*worker, *reason)),
                _ => None,
            })
            .collect()
    }

    fn audited(first: u32) -> Config {
        Config { audit_first: first, audit_share: 0.0, ..Config::default() }
    }

    /// Runs action `n` on the two workers it goes to, both answering `n`; returns them.
    fn agree(d: &mut Dispatcher, n: u64, now: Millis) -> Vec<WorkerId> {
        submit(d, n, now);
        let placed = assigns(&d.dispatch(now));
        assert_eq!(placed.len(), 2, "a copy and its audit: {placed:?}");
        let mut out = Vec::new();
        for &(_, w) in &placed {
            out.extend(d.handle_result(w, dg(n), answer(n), now).unwrap());
        }
        assert_eq!(deliveries(&out), vec![(dg(n), Delivery::Ran { exit_code: 0, result: dg(n) })]);
        placed.into_iter().map(|(_, w)| w).collect()
    }

    fn worker_status(d: &Dispatcher, id: u64) -> crate::WorkerStatus {
        d.status(0).workers.into_iter().find(|w| w.id == WorkerId(id)).unwrap()
    }

    #[test]
    fn a_new_workers_answer_waits_for_a_second_and_agreement_proves_both() {
        let mut d = Dispatcher::new(audited(2));
        d.handle_register(worker(1, 2), 0).unwrap();
        d.handle_register(worker(2, 2), 0).unwrap();
        submit(&mut d, 1, 0);
        let placed = assigns(&d.dispatch(0));
        assert_eq!(placed, vec![(dg(1), WorkerId(1)), (dg(1), WorkerId(2))], "the audit copy goes elsewhere");
        assert!(d.status(0).running.iter().any(|r| r.audit), "status marks the audit copy");
        let first = d.handle_result(WorkerId(1), dg(1), answer(1), 10).unwrap();
        assert!(deliveries(&first).is_empty(), "nothing delivered on one answer: {first:?}");
        let second = d.handle_result(WorkerId(2), dg(1), answer(1), 20).unwrap();
        assert_eq!(deliveries(&second), vec![(dg(1), Delivery::Ran { exit_code: 0, result: dg(1) })]);
        assert_eq!((worker_status(&d, 1).audits_passed, worker_status(&d, 2).audits_passed), (1, 1));
        assert!(!worker_status(&d, 1).proven);
        agree(&mut d, 2, 30);
        assert!(worker_status(&d, 1).proven && worker_status(&d, 2).proven);
        // Proven, unsampled: one copy, delivered at once.
        submit(&mut d, 3, 40);
        let placed = assigns(&d.dispatch(40));
        assert_eq!(placed.len(), 1);
        let out = d.handle_result(placed[0].1, dg(3), answer(3), 50).unwrap();
        assert_eq!(deliveries(&out).len(), 1);
        let c = d.status(50).counters;
        assert_eq!((c.audits, c.audits_passed, c.audits_mismatched, c.audits_skipped), (2, 2, 0, 0));
    }

    #[test]
    fn a_new_worker_disagreeing_with_a_proven_one_is_quarantined_and_never_delivered() {
        for liar_first in [true, false] {
            let mut d = Dispatcher::new(audited(1));
            d.handle_register(worker(1, 1), 0).unwrap();
            d.handle_register(worker(2, 1), 0).unwrap();
            agree(&mut d, 1, 0);
            d.handle_register(worker(3, 1), 10).unwrap();
            submit(&mut d, 2, 10);
            submit(&mut d, 4, 10);
            let placed = assigns(&d.dispatch(10));
            assert_eq!(placed, vec![(dg(2), WorkerId(1)), (dg(4), WorkerId(2))], "proven: not audited");
            // The next action goes to the new w3 and is audited, by w2 once it is free.
            submit(&mut d, 3, 10);
            assert_eq!(assigns(&d.dispatch(10)), vec![(dg(3), WorkerId(3))]);
            let out = d.handle_result(WorkerId(2), dg(4), answer(4), 15).unwrap();
            assert_eq!(deliveries(&out).len(), 1);
            assert_eq!(assigns(&d.dispatch(15)), vec![(dg(3), WorkerId(2))], "the audit copy first");
            let (lie, truth) = ((WorkerId(3), answer(666)), (WorkerId(2), answer(3)));
            let (a, b) = if liar_first { (lie, truth) } else { (truth, lie) };
            let mut out = d.handle_result(a.0, dg(3), a.1, 20).unwrap();
            assert!(deliveries(&out).is_empty());
            out.extend(d.handle_result(b.0, dg(3), b.1, 30).unwrap());
            assert_eq!(deliveries(&out), vec![(dg(3), Delivery::Ran { exit_code: 0, result: dg(3) })]);
            let reason = QuarantineReason::AuditMismatch { against: WorkerId(2), mismatches: 1 };
            assert_eq!(quarantined(&out), vec![(WorkerId(3), reason)]);
            let s = worker_status(&d, 3);
            assert_eq!((s.state, s.quarantine_reason, s.audit_mismatches), (WorkerState::Quarantined, Some(reason), 1));
            assert_eq!(d.status(30).counters.audits_mismatched, 1);
        }
    }

    #[test]
    fn two_new_workers_disagreeing_ask_a_third_and_the_majority_wins() {
        let mut d = Dispatcher::new(audited(5));
        for id in 1..=3 {
            d.handle_register(worker(id, 1), 0).unwrap();
        }
        submit(&mut d, 1, 0);
        let placed = assigns(&d.dispatch(0));
        assert_eq!(placed, vec![(dg(1), WorkerId(1)), (dg(1), WorkerId(2))]);
        let mut out = d.handle_result(WorkerId(1), dg(1), answer(1), 10).unwrap();
        out.extend(d.handle_result(WorkerId(2), dg(1), answer(666), 20).unwrap());
        assert!(deliveries(&out).is_empty() && quarantined(&out).is_empty(), "no blind verdict: {out:?}");
        let third = assigns(&d.dispatch(20));
        assert_eq!(third, vec![(dg(1), WorkerId(3))], "a third copy elsewhere");
        let out = d.handle_result(WorkerId(3), dg(1), answer(1), 30).unwrap();
        assert_eq!(deliveries(&out), vec![(dg(1), Delivery::Ran { exit_code: 0, result: dg(1) })]);
        assert_eq!(quarantined(&out).iter().map(|q| q.0).collect::<Vec<_>>(), vec![WorkerId(2)]);
        assert_eq!((worker_status(&d, 1).audits_passed, worker_status(&d, 3).audits_passed), (1, 1));
    }

    #[test]
    fn two_new_workers_disagreeing_with_no_third_fail_the_action_and_are_suspects() {
        let mut d = Dispatcher::new(audited(5));
        d.handle_register(worker(1, 1), 0).unwrap();
        d.handle_register(worker(2, 1), 0).unwrap();
        agree(&mut d, 0, 0);
        submit(&mut d, 1, 0);
        assert_eq!(assigns(&d.dispatch(0)).len(), 2);
        let mut out = d.handle_result(WorkerId(1), dg(1), answer(1), 10).unwrap();
        out.extend(d.handle_result(WorkerId(2), dg(1), answer(666), 20).unwrap());
        let failed = Delivery::Failed { attempts: 1, last: FailureKind::AuditDisagreement };
        assert_eq!(deliveries(&out), vec![(dg(1), failed)], "the requester compiles locally");
        assert!(quarantined(&out).is_empty());
        assert_eq!((worker_status(&d, 1).audit_mismatches, worker_status(&d, 2).audit_mismatches), (1, 1));
        assert_eq!(worker_status(&d, 1).state, WorkerState::Active);
    }

    #[test]
    fn a_pool_of_one_skips_its_audits_at_once_and_says_so() {
        let mut d = Dispatcher::new(audited(10));
        d.handle_register(worker(1, 2), 0).unwrap();
        submit(&mut d, 1, 0);
        assert_eq!(assigns(&d.dispatch(0)).len(), 1);
        let out = d.handle_result(WorkerId(1), dg(1), answer(1), 10).unwrap();
        assert_eq!(deliveries(&out).len(), 1, "delivered without waiting");
        let s = d.status(10);
        assert_eq!((s.counters.audits, s.counters.audits_skipped), (0, 1));
        assert!(!s.pools[0].can_audit);
        assert!(!worker_status(&d, 1).proven, "a skipped audit proves nothing");
    }

    #[test]
    fn an_audit_waits_a_bounded_time_for_a_busy_auditor() {
        let wait = Config::default().audit_wait;
        for sampled_proven in [false, true] {
            // Proven w1 and w2, then busy. A new w3 (or, sampled, proven w1 freed again) answers alone.
            let share = if sampled_proven { 1.0 } else { 0.0 };
            let mut d = Dispatcher::new(audited(1));
            d.handle_register(worker(1, 1), 0).unwrap();
            d.handle_register(worker(2, 1), 0).unwrap();
            agree(&mut d, 1, 0);
            d.cfg.audit_share = share;
            let alone = if sampled_proven { WorkerId(1) } else { WorkerId(3) };
            if !sampled_proven {
                d.handle_register(worker(3, 1), 0).unwrap();
                submit(&mut d, 10, 0);
                submit(&mut d, 11, 0);
                assert_eq!(assigns(&d.dispatch(0)), vec![(dg(10), WorkerId(1)), (dg(11), WorkerId(2))]);
                submit(&mut d, 2, 0);
            } else {
                submit(&mut d, 2, 0);
                submit(&mut d, 11, 0);
                // Action 2 on w1; its audit copy takes w2's slot ahead of action 11; w2 then stalls.
                assert_eq!(assigns(&d.dispatch(0)), vec![(dg(2), WorkerId(1)), (dg(2), WorkerId(2))]);
            }
            let placed = assigns(&d.dispatch(0));
            let expected = if sampled_proven { vec![] } else { vec![(dg(2), WorkerId(3))] };
            assert_eq!(placed, expected, "no free auditor");
            let out = d.handle_result(alone, dg(2), answer(2), 100).unwrap();
            assert!(deliveries(&out).is_empty(), "waits for the auditor");
            for w in [1, 2, 3] {
                d.handle_heartbeat(WorkerId(w), Default::default(), 100 + wait - 1).ok();
            }
            assert!(deliveries(&d.handle_timeout(100 + wait - 1)).is_empty());
            let out = d.handle_timeout(100 + wait);
            let expected = if sampled_proven {
                Delivery::Ran { exit_code: 0, result: dg(2) }
            } else {
                Delivery::Failed { attempts: 1, last: FailureKind::AuditDisagreement }
            };
            assert_eq!(deliveries(&out), vec![(dg(2), expected)], "a new worker's unchecked answer is not delivered");
            assert_eq!(d.status(0).counters.audits_timed_out, 1);
        }
    }

    #[test]
    fn a_convicted_workers_other_waiting_answers_are_struck_and_their_actions_rerun() {
        let mut d = Dispatcher::new(audited(1));
        d.handle_register(worker(1, 1), 0).unwrap();
        d.handle_register(worker(2, 1), 0).unwrap();
        agree(&mut d, 1, 0);
        d.handle_register(worker(3, 2), 0).unwrap();
        // The proven workers are busy; the new one takes two actions and lies on both.
        for n in [10, 11, 2, 3] {
            submit(&mut d, n, 0);
        }
        let placed = assigns(&d.dispatch(0));
        assert_eq!(placed[..2], [(dg(10), WorkerId(1)), (dg(11), WorkerId(2))]);
        assert_eq!(placed[2..].iter().map(|p| p.1).collect::<Vec<_>>(), [WorkerId(3), WorkerId(3)]);
        let mut out = Vec::new();
        for n in [2, 3] {
            out.extend(d.handle_result(WorkerId(3), dg(n), answer(666), 10).unwrap());
        }
        // w1 frees up: it audits one of them, and the liar is convicted.
        out.extend(d.handle_result(WorkerId(1), dg(10), answer(10), 20).unwrap());
        out.extend(d.handle_result(WorkerId(2), dg(11), answer(11), 20).unwrap());
        let mut now = 20;
        while d.in_flight() > 0 && now < 1_000 {
            let placed = assigns(&d.dispatch(now));
            for (action, w) in placed {
                let mut n = [0u8; 8];
                n.copy_from_slice(&action.0[..8]);
                out.extend(d.handle_result(w, action, answer(u64::from_le_bytes(n)), now).unwrap());
            }
            now += 10;
        }
        let lie = Delivery::Ran { exit_code: 0, result: dg(666) };
        let delivered = deliveries(&out);
        assert!(delivered.iter().all(|(_, got)| *got != lie), "a lie was delivered: {delivered:?}");
        for n in [2, 3] {
            let truth = Delivery::Ran { exit_code: 0, result: dg(n) };
            assert!(delivered.contains(&(dg(n), truth)), "{n} ran again elsewhere: {delivered:?}");
        }
        assert_eq!(quarantined(&out).len(), 1);
        assert_eq!(worker_status(&d, 3).state, WorkerState::Quarantined);
    }

    #[test]
    fn sampling_draws_about_its_share_and_depends_on_the_secret() {
        let cfg = |share, seed| Config { audit_share: share, audit_seed: seed, ..Config::default() };
        let count = |c: &Config| (0..10_000).filter(|n| sampled(c, &dg(*n))).count();
        assert_eq!(count(&cfg(0.0, 1)), 0);
        assert_eq!(count(&cfg(1.0, 1)), 10_000);
        let n = count(&cfg(0.02, 1));
        assert!((120..=280).contains(&n), "{n} of 10 000 at 2 %");
        let other: Vec<u64> = (0..10_000).filter(|n| sampled(&cfg(0.02, 2), &dg(*n))).collect();
        let first: Vec<u64> = (0..10_000).filter(|n| sampled(&cfg(0.02, 1), &dg(*n))).collect();
        assert_ne!(first, other, "another secret draws other actions");
    }
}
