//! Random interleavings of every input: slots are never oversubscribed, lost and quarantined workers get
//! nothing, and every requester receives its action's outcome exactly once.

use super::*;
use proptest::prelude::*;
use rcc_proto::Digest;
use std::collections::{HashMap, HashSet};

const POOLS: [&str; 2] = ["a", "b"];

#[derive(Clone, Debug)]
enum Op {
    Register { worker: u64, pool: usize, slots: u32 },
    Heartbeat { worker: u64, external: Option<u32> },
    Submit { action: u64, pool: usize, kind: u64 },
    Result { pick: usize, outcome: u8 },
    Corrupt { pick: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5u64, 0..2usize, 1..4u32).prop_map(|(worker, pool, slots)| Op::Register { worker, pool, slots }),
        (0..5u64, prop::option::weighted(0.2, 0..2u32))
            .prop_map(|(worker, external)| Op::Heartbeat { worker, external }),
        (0..8u64, 0..2usize, 0..3u64).prop_map(|(action, pool, kind)| Op::Submit { action, pool, kind }),
        (any::<usize>(), 0..4u8).prop_map(|(pick, outcome)| Op::Result { pick, outcome }),
        any::<usize>().prop_map(|pick| Op::Corrupt { pick }),
        (0..20_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn digest(n: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&n.to_le_bytes());
    Digest(d)
}

/// What the IO layer would know, built only from the commands.
#[derive(Default)]
struct Model {
    /// Copies each worker runs, from Assign minus Cancel, results and loss.
    running: HashMap<WorkerId, Vec<Digest>>,
    slots: HashMap<WorkerId, u32>,
    /// Slots busy with other work, as the last heartbeat said.
    external: HashMap<WorkerId, u32>,
    /// Requesters waiting per action digest, and those served.
    waiting: HashMap<Digest, HashSet<RequesterId>>,
    served: HashSet<RequesterId>,
    next_requester: u64,
    /// Deliveries of the lying worker's answer (see [`LIAR`]).
    lies_delivered: u64,
    /// Workers other than the liar quarantined by an audit.
    honest_convicted: Vec<WorkerId>,
}

/// In the audit property, this worker answers every action with [`LIE`]; the others answer action `n` with
/// `digest(1_000 + n)`.
const LIAR: WorkerId = WorkerId(0);
const LIE: u64 = 666;

fn truth(action: Digest) -> Digest {
    let mut n = [0u8; 8];
    n.copy_from_slice(&action.0[..8]);
    digest(1_000 + u64::from_le_bytes(n))
}

impl Model {
    fn apply(&mut self, d: &Dispatcher, cmds: Vec<Command>, now: Millis) {
        for c in cmds {
            match c {
                Command::Assign { action, worker, .. } => {
                    let state = d.status(now).workers.iter().find(|w| w.id == worker).map(|w| w.state);
                    assert_eq!(state, Some(WorkerState::Active), "assigned to {worker:?}");
                    let running = self.running.entry(worker).or_default();
                    assert!(!running.contains(&action), "two copies of one action on {worker:?}");
                    running.push(action);
                    let external = self.external.get(&worker).copied().unwrap_or(0);
                    assert!(running.len() as u32 + external <= self.slots[&worker], "{worker:?} over its slots");
                }
                Command::Cancel { action, worker } => self.stop(worker, action),
                Command::WorkerLost { worker } => {
                    self.running.remove(&worker);
                }
                Command::Quarantined { worker, reason: QuarantineReason::AuditMismatch { .. } } if worker != LIAR => {
                    self.honest_convicted.push(worker);
                }
                Command::Quarantined { .. } => {}
                Command::Deliver { action, requesters, delivery } => {
                    if delivery == (Delivery::Ran { exit_code: 0, result: digest(LIE) }) {
                        self.lies_delivered += 1;
                    }
                    let waiting = self.waiting.remove(&action).expect("delivered an action nobody waits for");
                    let got: HashSet<RequesterId> = requesters.iter().copied().collect();
                    assert_eq!(got.len(), requesters.len(), "a requester listed twice");
                    assert_eq!(got, waiting, "delivered to the wrong requesters");
                    for r in requesters {
                        assert!(self.served.insert(r), "{r:?} served twice");
                    }
                }
            }
        }
    }

    fn stop(&mut self, worker: WorkerId, action: Digest) {
        if let Some(r) = self.running.get_mut(&worker) {
            r.retain(|a| *a != action);
        }
    }

    /// The `pick`-th running copy, in a stable order.
    fn pick(&self, pick: usize) -> Option<(WorkerId, Digest)> {
        let mut all: Vec<(WorkerId, Digest)> =
            self.running.iter().flat_map(|(w, acts)| acts.iter().map(move |a| (*w, *a))).collect();
        all.sort();
        (!all.is_empty()).then(|| all[pick % all.len()])
    }
}

/// Applies one input. With `liar`, results are the audit property's: [`LIAR`] lies, the others tell the truth.
fn step(d: &mut Dispatcher, m: &mut Model, op: Op, now: &mut Millis, liar: bool) {
    match op {
        Op::Register { worker, pool, slots } => {
            let id = WorkerId(worker);
            let info = WorkerInfo {
                id,
                name: format!("w{worker}"),
                pool: POOLS[pool].into(),
                slots,
                memory_bytes: 1 << 30,
                toolchains: vec![digest(100 + worker % 2)],
                inputs: vec![digest(200 + worker)],
            };
            let cmds = d.handle_register(info, *now).unwrap();
            // A restart silently drops what the worker ran: the core requeued it.
            m.running.remove(&id);
            m.external.remove(&id);
            m.slots.insert(id, slots);
            m.apply(d, cmds, *now);
        }
        Op::Heartbeat { worker, external } => {
            let hb = Heartbeat { external_load: external, ..Heartbeat::default() };
            let known = m.slots.contains_key(&WorkerId(worker));
            assert_eq!(d.handle_heartbeat(WorkerId(worker), hb, *now).is_ok(), known);
            if let (true, Some(n)) = (known, external) {
                m.external.insert(WorkerId(worker), n);
            }
        }
        Op::Submit { action, pool, kind } => {
            m.next_requester += 1;
            let requester = RequesterId(m.next_requester);
            let spec = ActionSpec {
                digest: digest(action),
                pool: POOLS[pool].into(),
                kind: digest(300 + kind),
                toolchain: digest(100),
                inputs: vec![digest(200), digest(201)],
                requester,
            };
            match d.handle_submit(spec, *now).unwrap() {
                SubmitOutcome::Queued => assert!(!m.waiting.contains_key(&digest(action))),
                SubmitOutcome::Attached { requesters } => {
                    assert_eq!(requesters, m.waiting[&digest(action)].len() + 1);
                }
            }
            m.waiting.entry(digest(action)).or_default().insert(requester);
        }
        Op::Result { pick, outcome } => {
            if let Some((w, a)) = m.pick(pick) {
                m.stop(w, a);
                let outcome = match outcome {
                    0 => Outcome::Failed(FailureKind::Crashed),
                    _ if liar && w == LIAR => Outcome::Ran { exit_code: 0, result: digest(LIE) },
                    _ if liar => Outcome::Ran { exit_code: 0, result: truth(a) },
                    1 => Outcome::Ran { exit_code: 1, result: digest(1) },
                    _ => Outcome::Ran { exit_code: 0, result: digest(2) },
                };
                let cmds = d.handle_result(w, a, outcome, *now).unwrap();
                m.apply(d, cmds, *now);
            }
        }
        Op::Corrupt { pick } => {
            if let Some((w, a)) = m.pick(pick) {
                m.stop(w, a);
                let cmds = d.handle_corrupt(w, a, *now).unwrap();
                m.apply(d, cmds, *now);
            }
        }
        Op::Advance { ms } => {
            *now += ms;
            let cmds = d.handle_timeout(*now);
            m.apply(d, cmds, *now);
        }
    }
    let cmds = d.dispatch(*now);
    m.apply(d, cmds, *now);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dispatch_invariants_hold_under_random_interleavings(ops in prop::collection::vec(op(), 1..80)) {
        let mut d = Dispatcher::new(Config { quarantine_min_attempts: 4.0, quarantine_min_excess: 2.0, ..Config::default() });
        let mut m = Model::default();
        let mut now: Millis = 0;
        for op in ops {
            step(&mut d, &mut m, op, &mut now, false);
        }
        // Drain: fresh healthy workers in every pool, heartbeating, completing whatever they get.
        for (i, pool) in POOLS.iter().enumerate() {
            let id = WorkerId(1_000 + i as u64);
            let info = WorkerInfo {
                id, name: "fresh".into(), pool: (*pool).into(), slots: 4, memory_bytes: 1 << 30,
                toolchains: vec![], inputs: vec![],
            };
            let cmds = d.handle_register(info, now).unwrap();
            m.slots.insert(id, 4);
            m.apply(&d, cmds, now);
        }
        for _ in 0..200 {
            if d.in_flight() == 0 {
                break;
            }
            now += 1_000;
            for i in 0..POOLS.len() {
                d.handle_heartbeat(WorkerId(1_000 + i as u64), Heartbeat::default(), now).unwrap();
            }
            let cmds = d.handle_timeout(now);
            m.apply(&d, cmds, now);
            let cmds = d.dispatch(now);
            m.apply(&d, cmds, now);
            while let Some((w, a)) = m.pick(0) {
                m.stop(w, a);
                let cmds = d.handle_result(w, a, Outcome::Ran { exit_code: 0, result: digest(3) }, now).unwrap();
                m.apply(&d, cmds, now);
            }
        }
        prop_assert_eq!(d.in_flight(), 0);
        prop_assert!(m.waiting.is_empty(), "never delivered: {:?}", m.waiting);
        prop_assert_eq!(m.served.len() as u64, m.next_requester);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The liar is never proven (no one agrees with it), so all its actions are audited: its answer reaches
    /// requesters only through audits skipped for lack of a second worker, and no honest worker is convicted.
    #[test]
    fn audits_let_no_lie_through_and_convict_no_honest_worker(
        ops in prop::collection::vec(op(), 1..120),
        first in 1..4u32,
        share in prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
    ) {
        let cfg = Config { audit_first: first, audit_share: share, audit_wait: 3_000, ..Config::default() };
        let mut d = Dispatcher::new(cfg);
        let mut m = Model::default();
        let mut now: Millis = 0;
        for op in ops {
            step(&mut d, &mut m, op, &mut now, true);
            // Each skipped audit is one action that may go out unchecked; no other lie may.
            prop_assert!(m.lies_delivered <= d.status(now).counters.audits_skipped, "a lie went through an audit");
            prop_assert!(m.honest_convicted.is_empty(), "honest workers convicted: {:?}", m.honest_convicted);
        }
        let c = d.status(now).counters;
        prop_assert!(c.audits_passed + c.audits_mismatched + c.audits_timed_out <= c.audits + c.audits_skipped);
    }
}
