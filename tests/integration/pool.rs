//! The remote build pool over real QUIC on loopback: `rccd worker` processes register with the real
//! rcc-scheduler and heartbeat; `rcc-scheduler status` shows them, and a killed worker turns lost.

use crate::remote::Scheduler;
use crate::support::{bin_dir, run_ok, TestEnv};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A worker process of the scheduler's pool.
struct Worker(Child);

impl Worker {
    fn start(scheduler: &Scheduler, name: &str, slots: u32) -> Worker {
        let child = Command::new(bin_dir().join("rccd"))
            .args(["worker", "--scheduler", &scheduler.addr, "--fingerprint", &scheduler.fingerprint])
            .args(["--token", &scheduler.token("worker"), "--name", name, "--slots", &slots.to_string()])
            .env("RCC_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rccd worker");
        Worker(child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_json(scheduler: &Scheduler) -> serde_json::Value {
    let out = run_ok(Command::new(bin_dir().join("rcc-scheduler")).args([
        "--state",
        scheduler.state.to_str().unwrap(),
        "status",
        "--json",
    ]));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// Polls the status until `ok` holds (at most 20 s).
fn wait_for(scheduler: &Scheduler, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = status_json(scheduler);
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} never happened; last status:\n{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn worker<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["workers"].as_array()?.iter().find(|w| w["name"] == name)
}

#[test]
fn workers_register_heartbeat_show_in_status_and_a_killed_one_is_lost() {
    let env = TestEnv::new();
    let scheduler = Scheduler::start_with(&env.root, &["--heartbeat-ms", "200", "--heartbeat-timeout-ms", "1000"]);
    let _alpha = Worker::start(&scheduler, "alpha", 2);
    let mut beta = Worker::start(&scheduler, "beta", 3);

    let status = wait_for(&scheduler, "both workers active", |s| {
        ["alpha", "beta"].iter().all(|n| worker(s, n).is_some_and(|w| w["state"] == "active"))
    });
    let pool = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    assert_eq!(worker(&status, "alpha").unwrap()["slots"], 2);
    assert_eq!(worker(&status, "beta").unwrap()["pool"], pool.as_str());
    let pools = status["pools"].as_array().expect("pools");
    let this = pools.iter().find(|p| p["pool"] == pool.as_str()).expect("the workers' pool");
    assert_eq!(
        (this["workers"].as_u64(), this["slots"].as_u64(), this["queued"].as_u64()),
        (Some(2), Some(5), Some(0))
    );

    // Heartbeats keep arriving: still active well past the timeout.
    std::thread::sleep(Duration::from_millis(1500));
    let status = status_json(&scheduler);
    assert_eq!(worker(&status, "alpha").unwrap()["state"], "active", "{status:#}");

    // A killed worker stops heartbeating and is marked lost; the other stays.
    let _ = beta.0.kill();
    let _ = beta.0.wait();
    let status = wait_for(&scheduler, "beta lost", |s| worker(s, "beta").is_some_and(|w| w["state"] == "lost"));
    assert_eq!(worker(&status, "alpha").unwrap()["state"], "active");

    // The table form names them too.
    let table = run_ok(Command::new(bin_dir().join("rcc-scheduler")).args([
        "--state",
        scheduler.state.to_str().unwrap(),
        "status",
    ]));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("alpha") && text.contains("lost") && text.contains("desired"), "{text}");
}

#[test]
fn a_token_without_the_worker_scope_cannot_register() {
    let env = TestEnv::new();
    let scheduler = Scheduler::start(&env.root);
    let out = Command::new(bin_dir().join("rccd"))
        .args(["worker", "--scheduler", &scheduler.addr, "--fingerprint", &scheduler.fingerprint])
        .args(["--token", &scheduler.token("read,write")])
        .output()
        .expect("running rccd worker");
    assert!(!out.status.success(), "refused registration ends the worker with an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker"), "{}", String::from_utf8_lossy(&out.stderr));
    let status = status_json(&scheduler);
    assert_eq!(status["workers"].as_array().map(Vec::len), Some(0));
}
