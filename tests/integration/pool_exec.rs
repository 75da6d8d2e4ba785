//! A compile on the pool, end to end at the protocol level: the real rcc-scheduler binary (real QUIC on
//! loopback), `rccd worker` processes, a toolchain pack of the host's gcc and a preprocessed unit sent by a
//! client speaking the protocol through rcc-link. The object a worker builds in its sandbox — with no
//! compiler of the host visible — is byte-identical to a local compile; identical actions submitted
//! together run once; a pool without workers refuses at once. A worker keeps its inputs and toolchains: a
//! second action with the same input fetches nothing, and its heartbeats say what it holds.

use crate::pool::{open_to_sandbox, Worker};
use crate::remote::Scheduler;
use crate::support::{bin_dir, TestEnv};
use rcc_link::tls::Trust;
use rcc_link::{Client, ClientError};
use rcc_pack::Pack;
use rcc_proto::remote::{ActionResult, RemoteAction, RemoteError};
use rcc_proto::Digest;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gcc() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("gcc")).find(|p| p.is_file()).expect("gcc on PATH")
}

/// The scheduler binary with workers heartbeating every 500 ms, lost after 3 s.
pub(crate) fn scheduler(env: &TestEnv) -> Scheduler {
    open_to_sandbox(env);
    Scheduler::start_with(&env.root, &["--heartbeat-ms", "500", "--heartbeat-timeout-ms", "3000"])
}

/// A client of `scheduler` with the given scopes (comma-separated).
pub(crate) async fn client(scheduler: &Scheduler, scopes: &str) -> Client {
    let fingerprint = Digest::from_hex(&scheduler.fingerprint).expect("the scheduler's fingerprint");
    let addr = scheduler.addr.parse().expect("the scheduler's address");
    Client::connect(addr, &Trust::Fingerprint(fingerprint), &scheduler.token(scopes)).await.expect("connecting")
}

/// `rccd worker` serving `scheduler` from `<root>/<name>`, logging to `<root>/<name>.log` at `log_level`.
pub(crate) fn start_worker(scheduler: &Scheduler, env: &TestEnv, name: &str, log_level: &str) -> Worker {
    start_worker_with(scheduler, env, name, log_level, &[])
}

/// [`start_worker`] with extra environment variables (test faults, link settings).
fn start_worker_with(
    scheduler: &Scheduler,
    env: &TestEnv,
    name: &str,
    log_level: &str,
    vars: &[(&str, &str)],
) -> Worker {
    let log = std::fs::File::create(env.root.join(format!("{name}.log"))).expect("worker log");
    let token_file = token_file(env, name, &scheduler.token("worker,read,write"), 0o600);
    let child = Command::new(bin_dir().join("rccd"))
        .envs(vars.iter().copied())
        .args(["worker", "--scheduler", &scheduler.addr, "--fingerprint", &scheduler.fingerprint])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--name", name, "--slots", "2", "--dir"])
        .arg(env.root.join(name))
        .env("RCC_LOG_LEVEL", log_level)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting rccd worker");
    Worker(child)
}

/// `<root>/<name>.token` holding `token`, with `mode`.
pub(crate) fn token_file(env: &TestEnv, name: &str, token: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.root.join(format!("{name}.token"));
    std::fs::write(&path, format!("{token}\n")).expect("token file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod token file");
    path
}

/// Uploads the host gcc's toolchain: every file of its pack, then the pack itself; returns the pack's digest.
async fn upload_gcc(client: &Client) -> Digest {
    let pack = Pack::of_compiler(&gcc()).unwrap();
    for (path, entry) in &pack.entries {
        if let rcc_pack::Entry::File { .. } = entry {
            client.put_blob(&std::fs::read(path).unwrap()).await.unwrap();
        }
    }
    client.put_blob(&pack.encode()).await.unwrap()
}

/// Runs an action, waiting (up to 20 s) for a worker of its pool to register.
async fn execute_when_registered(client: &Client, action: RemoteAction) -> ActionResult {
    try_execute_when_registered(client, action).await.expect("the action ran")
}

/// Submits an action, waiting (up to 20 s) for a worker of its pool to register; the scheduler's answer.
pub(crate) async fn try_execute_when_registered(
    client: &Client,
    action: RemoteAction,
) -> Result<ActionResult, ClientError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.execute(action.clone()).await {
            Err(ClientError::Refused(RemoteError::NoWorkers(_))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}

pub(crate) fn action(toolchain: Digest, unit: Digest, pool: &str) -> RemoteAction {
    RemoteAction {
        toolchain,
        program: gcc().to_string_lossy().into_owned(),
        args: ["-O2", "-c", "unit.i", "-o", "unit.o"].iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("LC_ALL".into(), "C".into())],
        inputs: vec![("unit.i".into(), unit)],
        outputs: vec!["unit.o".into()],
        pool: pool.into(),
        kind: Digest::of(b"gcc -O2 unit.i"),
        timeout_ms: 60_000,
        workdir: "/work".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compile_runs_on_a_worker_sandbox_and_gives_the_local_object() {
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let _workers: Vec<Worker> = ["w1", "w2"].iter().map(|name| start_worker(&scheduler, &env, name, "info")).collect();
    let client = client(&scheduler, "read,write,execute").await;
    // The toolchain travels: every file of gcc's pack, then the pack itself.
    let toolchain = upload_gcc(&client).await;
    let source = "static int sq(int x) { return x * x; }\nint sum_squares(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(i); return s; }\n";
    let unit = client.put_blob(source.as_bytes()).await.unwrap();

    // No worker serves this pool: refused at once, not queued.
    let refused = client.execute(action(toolchain, unit, "no-such-pool")).await;
    assert!(matches!(refused, Err(ClientError::Refused(RemoteError::NoWorkers(_)))), "{refused:?}");

    // Wait until the workers are registered, then submit the same action twice at once.
    let pool_name = rcc_proto::remote::default_pool();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (first, second) = loop {
        let (a, b) = tokio::join!(
            client.execute(action(toolchain, unit, &pool_name)),
            client.execute(action(toolchain, unit, &pool_name))
        );
        match (&a, &b) {
            (Err(ClientError::Refused(RemoteError::NoWorkers(_))), _)
            | (_, Err(ClientError::Refused(RemoteError::NoWorkers(_))))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            _ => break (a.expect("the action ran"), b.expect("the twin request got the result")),
        }
    };
    assert_eq!(first, second, "identical actions share one result");
    assert_eq!(first.exit_code, 0, "stderr: {:?}", first.stderr.map(|d| d.to_hex()));
    let object = first.outputs.iter().find(|o| o.name == "unit.o").expect("the object");
    let remote = client.get_blob(object.digest).await.unwrap().expect("the object is stored");

    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("unit.i"), source).unwrap();
    let local =
        Command::new(gcc()).args(["-O2", "-c", "unit.i", "-o", "unit.o"]).current_dir(work.path()).status().unwrap();
    assert!(local.success());
    assert_eq!(remote, std::fs::read(work.path().join("unit.o")).unwrap(), "the worker's object is the local one");

    // Isolation: the host's files are not there. A source including <stdio.h> compiles here, but on the
    // worker, where only the toolchain pack and the inputs are visible, the header is not found.
    let hosted = "#include <stdio.h>\nint say(void) { return puts(\"hi\"); }\n";
    std::fs::write(work.path().join("hosted.c"), hosted).unwrap();
    let here =
        Command::new(gcc()).args(["-c", "hosted.c", "-o", "hosted.o"]).current_dir(work.path()).status().unwrap();
    assert!(here.success(), "the host compiles it");
    let mut isolated = action(toolchain, client.put_blob(hosted.as_bytes()).await.unwrap(), &pool_name);
    isolated.inputs = vec![("hosted.c".into(), isolated.inputs[0].1)];
    isolated.args = ["-c", "hosted.c", "-o", "unit.o"].iter().map(|s| s.to_string()).collect();
    isolated.kind = Digest::of(b"gcc hosted.c");
    let refused = client.execute(isolated).await.expect("the action ran");
    assert_ne!(refused.exit_code, 0, "the worker must not see /usr/include");
    let stderr = client.get_blob(refused.stderr.expect("a compiler error")).await.unwrap().unwrap_or_default();
    assert!(String::from_utf8_lossy(&stderr).contains("stdio.h"), "{}", String::from_utf8_lossy(&stderr));
}

/// Lines of a worker's log saying `what` of the blob `digest`.
fn log_lines(log: &str, what: &str, digest: Digest) -> usize {
    let short = &digest.to_hex()[..16];
    log.lines().filter(|l| l.contains(what) && l.contains(short)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_action_with_the_same_input_fetches_nothing_and_heartbeats_say_what_is_held() {
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let _worker = start_worker(&scheduler, &env, "w1", "info,rcc_worker::cas=debug");
    let log_path = env.root.join("w1.log");
    let client = client(&scheduler, "read,write,execute,admin").await;
    let toolchain = upload_gcc(&client).await;
    let unit = client.put_blob(b"int twice(int x) { return 2 * x; }\n").await.unwrap();

    // Two different actions (-O2, then -O1) on the one worker, sharing their input and toolchain.
    let pool = rcc_proto::remote::default_pool();
    let first = execute_when_registered(&client, action(toolchain, unit, &pool)).await;
    let mut other = action(toolchain, unit, &pool);
    other.args[0] = "-O1".into();
    let second = client.execute(other).await.expect("the second action ran");
    assert_eq!((first.exit_code, second.exit_code), (0, 0));
    assert_ne!(first, second, "two actions, not one shared result");

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(log_lines(&log, "blob fetched from the scheduler", unit), 1, "{log}");
    assert_eq!(log_lines(&log, "blob from the worker cache", unit), 1, "{log}");
    assert_eq!(log_lines(&log, "blob fetched from the scheduler", toolchain), 1, "{log}");
    assert_eq!(log.matches("toolchain materialized").count(), 1, "{log}");

    // The next heartbeats tell the scheduler: one toolchain, one input (the pack's files are not inputs).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = serde_json::from_str(&client.status().await.unwrap()).unwrap();
        let worker = &status["workers"][0];
        if (worker["held_toolchains"].as_u64(), worker["held_inputs"].as_u64()) == (Some(1), Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "holdings never reported: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A compile longer than the link's idle timeout completes over the one connection that asked for it: both
/// ends send keep-alives. The scheduler and worker run with a 3 s idle timeout (the client's default 30 s
/// gives way to the shorter one) and the action takes 8 s on the worker; without keep-alives the waiting
/// client's connection is dropped as idle after 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compile_longer_than_the_idle_timeout_completes_over_one_connection() {
    let env = TestEnv::new();
    open_to_sandbox(&env);
    let idle = [("RCC_LINK_IDLE_TIMEOUT_MS", "3000")];
    let scheduler = Scheduler::start_with_env(&env.root, &["--heartbeat-ms", "500"], &idle);
    let _worker = start_worker_with(&scheduler, &env, "slow", "info", &[idle[0], ("RCC_WORKER_TEST_DELAY_MS", "8000")]);
    let client = client(&scheduler, "read,write,execute").await;
    let toolchain = upload_gcc(&client).await;
    let unit = client.put_blob(b"int slow(int x) { return x + 1; }\n").await.unwrap();
    let started = Instant::now();
    let result = execute_when_registered(&client, action(toolchain, unit, &rcc_proto::remote::default_pool())).await;
    assert_eq!(result.exit_code, 0);
    assert!(started.elapsed() >= Duration::from_secs(8), "the action really took its 8 s");
    // The same connection still works.
    assert!(client.get_blob(result.outputs[0].digest).await.unwrap().is_some());
}

/// When the only client waiting for an action goes away, the scheduler cancels the action on its worker:
/// the worker's sandbox (an 60 s stall before the compile) is killed within seconds, not left to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_action_nobody_waits_for_any_more_is_cancelled_on_its_worker() {
    use crate::pool::{descendants, STALL_PROGRAM_NAME};
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let worker = start_worker_with(&scheduler, &env, "slow", "info", &[("RCC_WORKER_TEST_DELAY_MS", "60000")]);
    let client = client(&scheduler, "read,write,execute,admin").await;
    let toolchain = upload_gcc(&client).await;
    let unit = client.put_blob(b"int abandoned(int x) { return x - 1; }\n").await.unwrap();
    let action = action(toolchain, unit, &rcc_proto::remote::default_pool());
    let waiting = tokio::spawn(async move {
        let _ = execute_when_registered(&client, action).await;
    });
    let stalling = || descendants(worker.0.id()).iter().any(|(_, name)| name == STALL_PROGRAM_NAME);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stalling() {
        assert!(Instant::now() < deadline, "the action never started on the worker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client goes away: its wait is dropped, and with it the connection.
    waiting.abort();
    let _ = waiting.await;
    let gone = Instant::now();
    while stalling() {
        assert!(gone.elapsed() < Duration::from_secs(10), "the abandoned action still runs on the worker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = self::client(&scheduler, "admin").await;
    let status: serde_json::Value = serde_json::from_str(&admin.status().await.unwrap()).unwrap();
    assert_eq!(status["running"].as_array().map(Vec::len), Some(0), "{status:#}");
}
