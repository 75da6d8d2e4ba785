//! A compile on the pool, end to end: the rcc-scheduler service (real QUIC on loopback), two `rccd worker`
//! processes, a toolchain pack of the host's gcc and a preprocessed unit. The object a worker builds in its
//! sandbox — with no compiler of the host visible — is byte-identical to a local compile; identical actions
//! submitted together run once; a pool without workers refuses at once. A worker keeps its inputs and
//! toolchains: a second action with the same input fetches nothing, and its heartbeats say what it holds.

use rcc_proto::remote::{ActionResult, RemoteAction, RemoteError, Scope};
use rcc_proto::Digest;
use rcc_scheduler::client::{Client, ClientError};
use rcc_scheduler::dispatch::Config;
use rcc_scheduler::pool::Pool;
use rcc_scheduler::server::{serve, Service};
use rcc_scheduler::storage::DiskStorage;
use rcc_scheduler::tls::{self, Trust};
use rcc_scheduler::tokens::TokenStore;
use rccd::pack::Pack;
use rccd::worker::WorkerOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gcc() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("gcc")).find(|p| p.is_file()).expect("gcc on PATH")
}

/// The rcc-scheduler service in process, on loopback with real QUIC: its state directory and tokens.
struct Scheduler {
    state: tempfile::TempDir,
    addr: std::net::SocketAddr,
    fingerprint: Digest,
    tokens: Arc<TokenStore>,
}

impl Scheduler {
    /// Workers heartbeat every 500 ms and are lost after 3 s.
    async fn start() -> Scheduler {
        let state = tempfile::tempdir().unwrap();
        // The sandbox runs actions as an unprivileged user, who must reach the workers' directories.
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let identity = tls::load_or_create(state.path(), None, None).unwrap();
        let fingerprint = identity.fingerprint();
        let endpoint = rcc_scheduler::server::endpoint(identity, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let storage = Arc::new(DiskStorage::open(&state.path().join("cas"), 1 << 30).unwrap());
        let tokens = Arc::new(TokenStore::open(state.path()).unwrap());
        let pool =
            Arc::new(Pool::new(Config { heartbeat_timeout: 3_000, ..Config::default() }, Duration::from_millis(500)));
        tokio::spawn(serve(endpoint, Service { storage, tokens: tokens.clone(), pool }));
        Scheduler { state, addr, fingerprint, tokens }
    }

    async fn client(&self, scopes: &[Scope]) -> Client {
        let token = self.tokens.create(scopes, "client").unwrap();
        Client::connect(self.addr, &Trust::Fingerprint(self.fingerprint), &token).await.unwrap()
    }

    /// `rccd worker` serving this scheduler from `<state>/<name>`, logging to the test's stderr.
    fn worker(&self, name: &str) -> Command {
        let token = self.tokens.create(&[Scope::Worker, Scope::Read, Scope::Write], name).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rccd"));
        command
            .args(["worker", "--scheduler", &self.addr.to_string(), "--fingerprint", &self.fingerprint.to_hex()])
            .args(["--token", &token, "--name", name, "--slots", "2", "--dir"])
            .arg(self.state.path().join(name))
            .env("RCC_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }
}

fn start_worker(mut command: Command) -> Worker {
    Worker(command.spawn().expect("starting rccd worker"))
}

/// Uploads the host gcc's toolchain: every file of its pack, then the pack itself; returns the pack's digest.
async fn upload_gcc(client: &Client) -> Digest {
    let pack = Pack::of_compiler(&gcc()).unwrap();
    for (path, entry) in &pack.entries {
        if let rccd::pack::Entry::File { .. } = entry {
            client.put_blob(&std::fs::read(path).unwrap()).await.unwrap();
        }
    }
    client.put_blob(&pack.encode()).await.unwrap()
}

/// Runs an action, waiting (up to 20 s) for a worker of its pool to register.
async fn execute_when_registered(client: &Client, action: RemoteAction) -> ActionResult {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.execute(action.clone()).await {
            Err(ClientError::Refused(RemoteError::NoWorkers(_))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other.expect("the action ran"),
        }
    }
}

fn action(toolchain: Digest, unit: Digest, pool: &str) -> RemoteAction {
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
    let scheduler = Scheduler::start().await;
    let _workers: Vec<Worker> = ["w1", "w2"].iter().map(|name| start_worker(scheduler.worker(name))).collect();
    let client = scheduler.client(&[Scope::Read, Scope::Write, Scope::Execute]).await;
    // The toolchain travels: every file of gcc's pack, then the pack itself.
    let toolchain = upload_gcc(&client).await;
    let source = "static int sq(int x) { return x * x; }\nint sum_squares(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(i); return s; }\n";
    let unit = client.put_blob(source.as_bytes()).await.unwrap();

    // No worker serves this pool: refused at once, not queued.
    let refused = client.execute(action(toolchain, unit, "no-such-pool")).await;
    assert!(matches!(refused, Err(ClientError::Refused(RemoteError::NoWorkers(_)))), "{refused:?}");

    // Wait until the workers are registered, then submit the same action twice at once.
    let pool_name = WorkerOptions::default_pool();
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
}

/// Lines of a worker's log saying `what` of the blob `digest`.
fn log_lines(log: &str, what: &str, digest: Digest) -> usize {
    let short = &digest.to_hex()[..16];
    log.lines().filter(|l| l.contains(what) && l.contains(short)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_action_with_the_same_input_fetches_nothing_and_heartbeats_say_what_is_held() {
    let scheduler = Scheduler::start().await;
    let log_path = scheduler.state.path().join("w1.log");
    let mut command = scheduler.worker("w1");
    command.env("RCC_LOG_LEVEL", "info,rccd::worker_cas=debug").stderr(std::fs::File::create(&log_path).unwrap());
    let _worker = start_worker(command);
    let client = scheduler.client(&[Scope::Read, Scope::Write, Scope::Execute, Scope::Admin]).await;
    let toolchain = upload_gcc(&client).await;
    let unit = client.put_blob(b"int twice(int x) { return 2 * x; }\n").await.unwrap();

    // Two different actions (-O2, then -O1) on the one worker, sharing their input and toolchain.
    let pool = WorkerOptions::default_pool();
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
