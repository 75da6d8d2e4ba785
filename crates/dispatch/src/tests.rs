//! One test per dispatch rule, on a simulated clock.

use super::*;
use rcc_proto::Digest;

fn dg(n: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&n.to_le_bytes());
    d[31] = 0xAC;
    Digest(d)
}

fn tool(n: u64) -> Digest {
    Digest::of(&n.to_le_bytes())
}

fn worker(id: u64, pool: &str, slots: u32) -> WorkerInfo {
    WorkerInfo {
        id: WorkerId(id),
        name: format!("w{id}"),
        pool: pool.into(),
        slots,
        memory_bytes: 1 << 30,
        toolchains: vec![],
        inputs: vec![],
    }
}

fn spec(action: u64, pool: &str, kind: u64, requester: u64) -> ActionSpec {
    ActionSpec {
        digest: dg(action),
        pool: pool.into(),
        kind: dg(1_000_000 + kind),
        toolchain: tool(1),
        inputs: vec![dg(500), dg(501), dg(502)],
        requester: RequesterId(requester),
    }
}

/// The defaults without audits: the rules other than auditing, one copy per action.
fn plain() -> Config {
    Config { audit_first: 0, audit_share: 0.0, ..Config::default() }
}

fn ran() -> Outcome {
    Outcome::Ran { exit_code: 0, result: dg(999) }
}

fn assigned(cmd: Option<Command>) -> (Digest, WorkerId) {
    match cmd {
        Some(Command::Assign { action, worker, twin: false }) => (action, worker),
        other => panic!("expected an assignment, got {other:?}"),
    }
}

fn delivered(cmds: &[Command]) -> Vec<(Digest, Vec<RequesterId>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Deliver { action, requesters, .. } => Some((*action, requesters.clone())),
            _ => None,
        })
        .collect()
}

/// Runs `n` actions of `kind` on worker `w` (alone in pool "h"), each taking `took` ms, so the kind has history.
fn teach(d: &mut Dispatcher, w: u64, kind: u64, took: Millis, n: u64, first_action: u64, now: &mut Millis) {
    for i in 0..n {
        d.handle_submit(spec(first_action + i, "h", kind, 0), *now).unwrap();
        let (a, wk) = assigned(d.poll_dispatch(*now));
        assert_eq!(wk, WorkerId(w));
        *now += took;
        d.handle_result(wk, a, ran(), *now).unwrap();
    }
}

#[test]
fn actions_go_only_to_their_pool() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "linux-x86_64", 4), 0).unwrap();
    d.handle_register(worker(2, "linux-aarch64", 4), 0).unwrap();
    d.handle_submit(spec(1, "linux-aarch64", 1, 1), 0).unwrap();
    d.handle_submit(spec(2, "windows-x86_64", 1, 2), 0).unwrap();
    assert_eq!(assigned(d.poll_dispatch(0)), (dg(1), WorkerId(2)));
    assert_eq!(d.poll_dispatch(0), None, "no worker serves windows-x86_64");
    assert_eq!(d.queued(), 1);
}

#[test]
fn least_loaded_worker_first() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 4), 0).unwrap();
    d.handle_register(worker(2, "p", 4), 0).unwrap();
    for i in 0..4 {
        d.handle_submit(spec(i, "p", 1, i), 0).unwrap();
    }
    let mut per_worker = [0; 3];
    for (_, w) in d.dispatch(0).into_iter().map(|c| assigned(Some(c))) {
        per_worker[w.0 as usize] += 1;
    }
    assert_eq!(per_worker, [0, 2, 2]);

    // Load is relative to slots: 2 of 8 busy (0.25) beats 1 of 2 (0.5).
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 2), 0).unwrap();
    d.handle_register(worker(2, "p", 8), 0).unwrap();
    for i in 0..3 {
        d.handle_submit(spec(i, "p", 1, i), 0).unwrap();
    }
    let _ = d.dispatch(0); // 1 → w1 (tie, first), then w2 twice (0.0 and 0.125 < 0.5)
    let s = d.status(0);
    assert_eq!(s.workers.iter().map(|w| w.running).collect::<Vec<_>>(), vec![1, 2]);
    d.handle_submit(spec(10, "p", 1, 10), 0).unwrap();
    assert_eq!(assigned(d.poll_dispatch(0)).1, WorkerId(2), "0.25 < 0.5");
}

#[test]
fn locality_decides_among_equally_loaded_workers() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 4), 0).unwrap();
    d.handle_register(WorkerInfo { inputs: vec![dg(500), dg(501), dg(502)], ..worker(2, "p", 4) }, 0).unwrap();
    d.handle_register(WorkerInfo { toolchains: vec![tool(1)], ..worker(3, "p", 4) }, 0).unwrap();
    d.handle_register(WorkerInfo { toolchains: vec![tool(1)], inputs: vec![dg(501)], ..worker(4, "p", 4) }, 0).unwrap();
    d.handle_submit(spec(1, "p", 1, 1), 0).unwrap();
    // Toolchain and one input beats toolchain alone, which beats inputs alone.
    assert_eq!(assigned(d.poll_dispatch(0)).1, WorkerId(4));
    // Now w4 is at 0.25, beyond the tolerance: the others are less loaded; w3 holds the toolchain.
    d.handle_submit(spec(2, "p", 1, 2), 0).unwrap();
    assert_eq!(assigned(d.poll_dispatch(0)).1, WorkerId(3));
    // Inputs alone beat nothing.
    d.handle_submit(spec(3, "p", 1, 3), 0).unwrap();
    assert_eq!(assigned(d.poll_dispatch(0)).1, WorkerId(2));
    // A heartbeat's new holdings count.
    let hb = Heartbeat { toolchains: Some(vec![tool(1)]), ..Heartbeat::default() };
    d.handle_heartbeat(WorkerId(2), hb, 1).unwrap();
    d.handle_submit(spec(4, "p", 1, 4), 1).unwrap();
    assert_eq!(assigned(d.poll_dispatch(1)).1, WorkerId(1), "the only one at load 0");
    d.handle_submit(spec(5, "p", 1, 5), 1).unwrap();
    assert_eq!(assigned(d.poll_dispatch(1)).1, WorkerId(2), "toolchain and inputs now");
}

#[test]
fn long_actions_first_by_history_ties_fifo() {
    let mut d = Dispatcher::new(Config { default_estimate: 10_000, ..plain() });
    d.handle_register(worker(1, "h", 1), 0).unwrap();
    let mut now = 0;
    teach(&mut d, 1, 1, 60_000, 3, 100, &mut now); // long kind
    teach(&mut d, 1, 2, 1_000, 3, 200, &mut now); // short kind
    d.handle_register(worker(2, "q", 1), now).unwrap();
    d.handle_submit(spec(1, "q", 2, 1), now).unwrap(); // short
    d.handle_submit(spec(2, "q", 1, 2), now).unwrap(); // long
    d.handle_submit(spec(3, "q", 3, 3), now).unwrap(); // unknown: 10 s
    d.handle_submit(spec(4, "q", 1, 4), now).unwrap(); // long, after 2
    d.handle_submit(spec(5, "q", 2, 5), now).unwrap(); // short, after 1
    let mut order = Vec::new();
    while let Some(cmd) = d.poll_dispatch(now) {
        let (a, w) = assigned(Some(cmd));
        order.push(a);
        now += 10;
        d.handle_heartbeat(w, Heartbeat::default(), now).unwrap();
        d.handle_result(w, a, ran(), now).unwrap();
    }
    assert_eq!(order, vec![dg(2), dg(4), dg(3), dg(1), dg(5)]);
}

#[test]
fn identical_actions_run_once_for_every_requester() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 4), 0).unwrap();
    assert_eq!(d.handle_submit(spec(1, "p", 1, 10), 0), Ok(SubmitOutcome::Queued));
    assert_eq!(d.handle_submit(spec(1, "p", 1, 11), 0), Ok(SubmitOutcome::Attached { requesters: 2 }));
    let (a, w) = assigned(d.poll_dispatch(0));
    assert_eq!(d.poll_dispatch(0), None, "one copy only");
    // Attaching while it runs works too, and a requester attached twice is served once.
    assert_eq!(d.handle_submit(spec(1, "p", 1, 12), 1), Ok(SubmitOutcome::Attached { requesters: 3 }));
    assert_eq!(d.handle_submit(spec(1, "p", 1, 10), 1), Ok(SubmitOutcome::Attached { requesters: 3 }));
    let cmds = d.handle_result(w, a, ran(), 2).unwrap();
    assert_eq!(delivered(&cmds), vec![(dg(1), vec![RequesterId(10), RequesterId(11), RequesterId(12)])]);
    let c = d.status(2).counters;
    assert_eq!((c.submitted, c.attached, c.assigned, c.delivered), (4, 3, 1, 3));
    // Once delivered, the same digest is a new action.
    assert_eq!(d.handle_submit(spec(1, "p", 1, 13), 3), Ok(SubmitOutcome::Queued));
}

#[test]
fn withdrawn_requesters_and_stale_queue_entries() {
    let mut d = Dispatcher::new(plain());
    d.handle_submit(spec(1, "p", 1, 10), 0).unwrap();
    d.handle_submit(spec(1, "p", 1, 11), 0).unwrap();
    assert!(d.handle_withdraw(dg(1), RequesterId(10), 0).is_empty());
    assert!(d.handle_withdraw(dg(1), RequesterId(11), 0).is_empty());
    assert_eq!(d.in_flight(), 0);
    // Resubmitted: the old queue entry is stale, the action runs once.
    d.handle_submit(spec(1, "p", 1, 12), 0).unwrap();
    d.handle_register(worker(1, "p", 4), 0).unwrap();
    let (a, w) = assigned(d.poll_dispatch(0));
    assert_eq!(d.poll_dispatch(0), None);
    // Withdrawn while running: its copy is cancelled.
    assert_eq!(d.handle_withdraw(a, RequesterId(12), 1), vec![Command::Cancel { action: a, worker: w }]);
    assert_eq!(d.status(1).workers[0].running, 0);
}

#[test]
fn lost_worker_actions_go_to_another_worker_first() {
    let cfg = Config { heartbeat_timeout: 15_000, ..plain() };
    let mut d = Dispatcher::new(cfg);
    d.handle_register(worker(1, "p", 1), 0).unwrap();
    d.handle_register(worker(2, "p", 2), 0).unwrap();
    d.handle_submit(spec(1, "p", 1, 1), 0).unwrap();
    d.handle_submit(spec(2, "p", 1, 2), 0).unwrap();
    assert_eq!(assigned(d.poll_dispatch(0)), (dg(1), WorkerId(1)));
    assert_eq!(assigned(d.poll_dispatch(0)), (dg(2), WorkerId(2)));
    d.handle_submit(spec(3, "p", 1, 3), 0).unwrap();
    d.handle_heartbeat(WorkerId(2), Heartbeat::default(), 10_000).unwrap();
    assert!(d.handle_timeout(14_999).is_empty());
    assert_eq!(d.handle_timeout(15_000), vec![Command::WorkerLost { worker: WorkerId(1) }]);
    // The requeued action goes before the waiting one, to the other worker.
    assert_eq!(assigned(d.poll_dispatch(15_000)), (dg(1), WorkerId(2)));
    assert_eq!(d.poll_dispatch(15_000), None);
    let s = d.status(15_000);
    assert_eq!(s.workers[0].state, WorkerState::Lost);
    // A late result from the lost worker is ignored; the real one is delivered.
    assert_eq!(d.handle_result(WorkerId(1), dg(1), ran(), 16_000), Ok(vec![]));
    let cmds = d.handle_result(WorkerId(2), dg(1), ran(), 16_000).unwrap();
    assert_eq!(delivered(&cmds), vec![(dg(1), vec![RequesterId(1)])]);
    // It comes back with a heartbeat.
    d.handle_heartbeat(WorkerId(1), Heartbeat::default(), 17_000).unwrap();
    assert_eq!(d.status(17_000).workers[0].state, WorkerState::Active);
}

#[test]
fn restarted_worker_loses_its_actions() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 1), 0).unwrap();
    d.handle_submit(spec(1, "p", 1, 1), 0).unwrap();
    assigned(d.poll_dispatch(0));
    assert!(d.handle_register(worker(1, "p", 1), 5).unwrap().is_empty());
    assert_eq!(assigned(d.poll_dispatch(5)), (dg(1), WorkerId(1)));
}

#[test]
fn slow_action_gets_a_twin_and_the_loser_is_cancelled() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "h", 1), 0).unwrap();
    let mut now = 0;
    teach(&mut d, 1, 7, 1_000, 5, 100, &mut now);
    d.handle_register(worker(2, "h", 1), now).unwrap();
    // A straggler on w1: past 2 × 1 s it gets a twin on w2, which wins.
    let start = now;
    d.handle_submit(spec(1, "h", 7, 1), start).unwrap();
    let (a, w) = assigned(d.poll_dispatch(start));
    assert_eq!(w, WorkerId(1));
    assert!(d.handle_timeout(start + 1_999).is_empty());
    let twin = d.handle_timeout(start + 2_000);
    assert_eq!(twin, vec![Command::Assign { action: a, worker: WorkerId(2), twin: true }]);
    assert_eq!(d.status(start + 2_000).running.len(), 2);
    let cmds = d.handle_result(WorkerId(2), a, ran(), start + 2_500).unwrap();
    assert_eq!(cmds[0], Command::Cancel { action: a, worker: WorkerId(1) });
    assert_eq!(delivered(&cmds), vec![(a, vec![RequesterId(1)])]);
    assert_eq!(d.handle_result(WorkerId(1), a, ran(), start + 3_000), Ok(vec![]), "the loser's result is ignored");
    // The original may win too: then the twin is cancelled.
    let now = start + 10_000;
    d.handle_heartbeat(WorkerId(1), Heartbeat::default(), now).unwrap();
    d.handle_heartbeat(WorkerId(2), Heartbeat::default(), now).unwrap();
    d.handle_submit(spec(2, "h", 7, 2), now).unwrap();
    let (b, w) = assigned(d.poll_dispatch(now));
    let twin = d.handle_timeout(now + 2_100);
    let Command::Assign { worker: tw, twin: true, .. } = twin[0] else { panic!("{twin:?}") };
    assert_ne!(tw, w);
    let cmds = d.handle_result(w, b, ran(), now + 2_200).unwrap();
    assert_eq!(cmds[0], Command::Cancel { action: b, worker: tw });
    let s = d.status(now + 2_200);
    assert_eq!(s.running.len(), 0);
    assert_eq!((s.counters.twins, s.counters.twins_won), (2, 1), "two twins, the first won");
}

#[test]
fn no_twin_without_enough_history() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "h", 1), 0).unwrap();
    let mut now = 0;
    teach(&mut d, 1, 7, 1_000, 4, 100, &mut now);
    d.handle_register(worker(2, "h", 1), now).unwrap();
    d.handle_submit(spec(1, "h", 7, 1), now).unwrap();
    assigned(d.poll_dispatch(now));
    assert!(d.handle_timeout(now + 9_000).is_empty());
}

/// Runs `rounds` of one action per worker; `bad` fails everything it gets. Returns the commands.
fn run_rounds(d: &mut Dispatcher, workers: u64, rounds: u64, bad: Option<u64>, fail_all: bool) -> Vec<Command> {
    let mut log = Vec::new();
    let mut next = 0;
    for round in 0..rounds {
        let now = round * 100;
        for _ in 0..workers {
            next += 1;
            d.handle_submit(spec(next, "p", next % 3, next), now).unwrap();
        }
        for w in 1..=workers {
            d.handle_heartbeat(WorkerId(w), Heartbeat::default(), now).unwrap();
        }
        let cmds = d.dispatch(now);
        for c in cmds {
            let Command::Assign { action, worker, .. } = c else { continue };
            let outcome = if Some(worker.0) == bad {
                Outcome::Failed(FailureKind::Setup)
            } else if fail_all {
                Outcome::Ran { exit_code: 1, result: dg(998) }
            } else {
                ran()
            };
            log.push(c);
            log.extend(d.handle_result(worker, action, outcome, now + 50).unwrap());
        }
    }
    log
}

#[test]
fn anomalous_worker_is_quarantined_normal_ones_are_not() {
    let mut d = Dispatcher::new(plain());
    for w in 1..=4 {
        d.handle_register(worker(w, "p", 1), 0).unwrap();
    }
    let log = run_rounds(&mut d, 4, 40, Some(3), false);
    let quarantined: Vec<WorkerId> = log
        .iter()
        .filter_map(|c| match c {
            Command::Quarantined { worker, reason: QuarantineReason::FailureRate { .. } } => Some(*worker),
            _ => None,
        })
        .collect();
    assert_eq!(quarantined, vec![WorkerId(3)]);
    let pos = log.iter().position(|c| matches!(c, Command::Quarantined { .. })).unwrap();
    assert!(
        !log[pos..].iter().any(|c| matches!(c, Command::Assign { worker: WorkerId(3), .. })),
        "no dispatch after quarantine"
    );
    let s = d.status(10_000);
    let states: Vec<WorkerState> = s.workers.iter().map(|w| w.state).collect();
    assert_eq!(states, [WorkerState::Active, WorkerState::Active, WorkerState::Quarantined, WorkerState::Active]);
    // Every action delivered got a real result from a healthy worker.
    assert!(!delivered(&log).is_empty());
    assert!(log.iter().all(|c| !matches!(c, Command::Deliver { delivery: Delivery::Failed { .. }, .. })));
    // Registering again does not lift the quarantine.
    d.handle_register(worker(3, "p", 1), 10_000).unwrap();
    assert_eq!(d.status(10_000).workers[2].state, WorkerState::Quarantined);
}

#[test]
fn failures_every_worker_has_quarantine_no_one() {
    let mut d = Dispatcher::new(plain());
    for w in 1..=3 {
        d.handle_register(worker(w, "p", 1), 0).unwrap();
    }
    let log = run_rounds(&mut d, 3, 60, None, true);
    assert!(!log.iter().any(|c| matches!(c, Command::Quarantined { .. })));
    // A failing compile is a result: delivered as such.
    assert!(log.iter().any(|c| matches!(c, Command::Deliver { delivery: Delivery::Ran { exit_code: 1, .. }, .. })));
}

#[test]
fn corrupt_outputs_requeue_elsewhere_and_quarantine() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 2), 0).unwrap();
    d.handle_register(worker(2, "p", 1), 0).unwrap();
    d.handle_submit(spec(1, "p", 1, 1), 0).unwrap();
    assert_eq!(assigned(d.poll_dispatch(0)), (dg(1), WorkerId(1)));
    assert!(d.handle_corrupt(WorkerId(1), dg(1), 10).unwrap().is_empty());
    // Requeued; w1 is less loaded now, yet it is avoided.
    assert_eq!(assigned(d.poll_dispatch(10)), (dg(1), WorkerId(2)));
    d.handle_submit(spec(2, "p", 1, 2), 10).unwrap();
    assert_eq!(assigned(d.poll_dispatch(10)), (dg(2), WorkerId(1)));
    d.handle_submit(spec(3, "p", 1, 3), 10).unwrap();
    assert_eq!(assigned(d.poll_dispatch(10)), (dg(3), WorkerId(1)));
    let cmds = d.handle_corrupt(WorkerId(1), dg(2), 20).unwrap();
    assert_eq!(
        cmds,
        vec![
            Command::Quarantined { worker: WorkerId(1), reason: QuarantineReason::CorruptOutputs { reports: 2 } },
            Command::Cancel { action: dg(3), worker: WorkerId(1) },
        ]
    );
    assert_eq!(d.queued(), 2, "both of its actions wait for another worker");
    assert_eq!(d.poll_dispatch(20), None, "w2 is busy and w1 quarantined");
}

#[test]
fn desired_worker_counts_scale_up_and_down() {
    let cfg = plain();
    let mut d = Dispatcher::new(cfg.clone());
    d.handle_register(worker(1, "up", 2), 0).unwrap();
    for i in 0..10 {
        d.handle_submit(spec(i, "up", 1, i), 0).unwrap();
    }
    let _ = d.dispatch(0);
    // 8 waiting > 1 worker × 2 slots × 2: 2 workers bring it to 8 ≤ 2 × 2 × 2.
    let up = &d.status(0).pools[0];
    assert_eq!((up.queued, up.workers, up.desired_workers), (8, 1, 2));

    let mut d = Dispatcher::new(cfg.clone());
    for w in 1..=5 {
        d.handle_register(worker(w, "down", 1), 0).unwrap();
    }
    for i in 0..4 {
        d.handle_submit(spec(i, "down", 1, i), 1_000).unwrap();
    }
    let _ = d.dispatch(1_000);
    // One idle of five (20 %): keep five. Not yet idle for 5 minutes: keep too.
    let later = cfg.idle_after + 1;
    assert_eq!(d.status(later).pools[0].desired_workers, 5);
    let cmds = d.handle_result(WorkerId(1), dg(0), ran(), 2_000).unwrap();
    assert_eq!(delivered(&cmds).len(), 1);
    assert_eq!(d.status(later).pools[0].desired_workers, 5, "w1 idle since 2 s only");
    let s = d.status(2_000 + cfg.idle_after);
    assert_eq!((s.pools[0].idle_workers, s.pools[0].desired_workers), (2, 3));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["workers"][0]["state"], "active");
    assert_eq!(json["pools"][0]["desired_workers"], 3);
}

#[test]
fn outside_input_is_refused_not_panicked_on() {
    let mut d = Dispatcher::new(plain());
    assert_eq!(d.handle_register(worker(1, "p", 0), 0), Err(DispatchError::NoSlots(WorkerId(1))));
    assert_eq!(d.handle_register(worker(1, "", 1), 0), Err(DispatchError::EmptyPool));
    assert_eq!(d.handle_submit(spec(1, "", 1, 1), 0), Err(DispatchError::EmptyPool));
    assert_eq!(
        d.handle_heartbeat(WorkerId(9), Heartbeat::default(), 0),
        Err(DispatchError::UnknownWorker(WorkerId(9)))
    );
    assert_eq!(d.handle_result(WorkerId(9), dg(1), ran(), 0), Err(DispatchError::UnknownWorker(WorkerId(9))));
    d.handle_register(worker(1, "p", 1), 0).unwrap();
    assert_eq!(d.handle_result(WorkerId(1), dg(1), ran(), 0), Ok(vec![]), "never assigned");
}

#[test]
fn failed_attempts_are_retried_then_delivered_as_failed() {
    let mut d = Dispatcher::new(Config { max_attempts: 2, ..plain() });
    d.handle_register(worker(1, "p", 1), 0).unwrap();
    d.handle_submit(spec(1, "p", 1, 1), 0).unwrap();
    let (a, w) = assigned(d.poll_dispatch(0));
    assert!(d.handle_result(w, a, Outcome::Failed(FailureKind::Timeout), 1).unwrap().is_empty());
    // The only worker failed it: it is taken anyway rather than starving the action.
    let (a, w) = assigned(d.poll_dispatch(1));
    let cmds = d.handle_result(w, a, Outcome::Failed(FailureKind::Crashed), 2).unwrap();
    assert_eq!(
        cmds,
        vec![Command::Deliver {
            action: a,
            requesters: vec![RequesterId(1)],
            delivery: Delivery::Failed { attempts: 2, last: FailureKind::Crashed },
        }]
    );
}

#[test]
fn external_load_takes_slots() {
    let mut d = Dispatcher::new(plain());
    d.handle_register(worker(1, "p", 2), 0).unwrap();
    d.handle_heartbeat(WorkerId(1), Heartbeat { external_load: Some(1), ..Heartbeat::default() }, 0).unwrap();
    for i in 0..3 {
        d.handle_submit(spec(i, "p", 1, i), 0).unwrap();
    }
    assert_eq!(d.dispatch(0).len(), 1);
}

#[test]
fn queue_waits_are_summed_once_per_action() {
    let mut d = Dispatcher::new(plain());
    d.handle_submit(spec(1, "p", 1, 1), 100).unwrap();
    d.handle_submit(spec(2, "p", 1, 2), 150).unwrap();
    d.handle_register(worker(1, "p", 1), 400).unwrap();
    let (a, w) = assigned(d.poll_dispatch(400));
    d.handle_result(w, a, ran(), 500).unwrap();
    assigned(d.poll_dispatch(600));
    // 300 ms for the first, 450 ms for the second.
    assert_eq!(d.status(600).counters.queued_millis, 750);
}
