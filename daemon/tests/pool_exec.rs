//! A compile on the pool, end to end: the rcc-scheduler service (real QUIC on loopback), two `rccd worker`
//! processes, a toolchain pack of the host's gcc and a preprocessed unit. The object a worker builds in its
//! sandbox — with no compiler of the host visible — is byte-identical to a local compile; identical actions
//! submitted together run once; a pool without workers refuses at once.

use rcc_proto::remote::{RemoteAction, RemoteError, Scope};
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
use std::path::{Path, PathBuf};
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

fn start_worker(dir: &Path, addr: &str, fingerprint: &str, token: &str, name: &str) -> Worker {
    let child = Command::new(env!("CARGO_BIN_EXE_rccd"))
        .args(["worker", "--scheduler", addr, "--fingerprint", fingerprint, "--token", token, "--name", name])
        .args(["--slots", "2", "--dir"])
        .arg(dir.join(name))
        .env("RCC_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting rccd worker");
    Worker(child)
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
    let state = tempfile::tempdir().unwrap();
    // The sandbox runs actions as an unprivileged user, who must reach the workers' directories.
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let identity = tls::load_or_create(state.path(), None, None).unwrap();
    let fingerprint = identity.fingerprint();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls::server_config(identity).unwrap()).unwrap();
    let endpoint =
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), "127.0.0.1:0".parse().unwrap())
            .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let storage = Arc::new(DiskStorage::open(&state.path().join("cas"), 1 << 30).unwrap());
    let tokens = Arc::new(TokenStore::open(state.path()).unwrap());
    let pool =
        Arc::new(Pool::new(Config { heartbeat_timeout: 3_000, ..Config::default() }, Duration::from_millis(500)));
    tokio::spawn(serve(endpoint, Service { storage, tokens: tokens.clone(), pool }));

    let worker_token = tokens.create(&[Scope::Worker, Scope::Read, Scope::Write], "worker").unwrap();
    let _workers: Vec<Worker> = ["w1", "w2"]
        .iter()
        .map(|name| start_worker(state.path(), &addr.to_string(), &fingerprint.to_hex(), &worker_token, name))
        .collect();

    let client_token = tokens.create(&[Scope::Read, Scope::Write, Scope::Execute], "client").unwrap();
    let client = Client::connect(addr, &Trust::Fingerprint(fingerprint), &client_token).await.unwrap();
    // The toolchain travels: every file of gcc's pack, then the pack itself.
    let pack = Pack::of_compiler(&gcc()).unwrap();
    for (path, entry) in &pack.entries {
        if let rccd::pack::Entry::File { .. } = entry {
            client.put_blob(&std::fs::read(path).unwrap()).await.unwrap();
        }
    }
    let toolchain = client.put_blob(&pack.encode()).await.unwrap();
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
