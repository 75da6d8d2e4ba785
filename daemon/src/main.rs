//! `rccd`: started by the wrapper; serves until idle. Exactly one daemon serves a socket: the first to take
//! the socket's lock file; later ones exit at once.

use anyhow::{Context as _, Result};
use rccd::context::Context;
use rccd::key::files::FileCache;
use rccd::key::identity::IdentityCache;
use rccd::stats::StatsBook;
use rccd::store::Store;
use std::fs::{self, File};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("rccd: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("rccd {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return worker(std::env::args().skip(2).collect());
    }
    let config = rcc_proto::config::load().context("reading the configuration")?;
    let dir = config.dir.value.clone();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(log) = &config.log.value {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        tracing_subscriber::fmt()
            .with_writer(Arc::new(file))
            .with_ansi(false)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("RCC_LOG_LEVEL").unwrap_or_else(|_| "debug".into()),
            )
            .init();
    }
    let socket = config.socket.value.clone();
    let lock_path = socket.with_extension("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        tracing::info!(socket = %socket.display(), "another daemon serves this socket; exiting");
        return Ok(());
    }
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("listening on {}", socket.display()))?;
    tracing::info!(socket = %socket.display(), "rccd listening");
    let tmp_dir = dir.join("tmp");
    let _ = fs::remove_dir_all(&tmp_dir);
    fs::create_dir_all(&tmp_dir).with_context(|| format!("creating {}", tmp_dir.display()))?;
    let store = Store::open(&dir.join("store"), config.cache_size.value).context("opening the store")?;
    let idle = Duration::from_secs(config.idle_timeout.value);
    let remote = match rccd::remote::Remote::from_config(&config) {
        None => None,
        Some(Ok(remote)) => Some(Arc::new(remote)),
        Some(Err(why)) => {
            tracing::warn!(%why, "shared cache not used");
            None
        }
    };
    let ctx = Arc::new(Context {
        stats: Arc::new(StatsBook::new(dir.join("stats.json"))),
        remote,
        store,
        files: FileCache::new(),
        identities: IdentityCache::persisted(dir.join("compilers.bin")),
        toolchains: rccd::rust::toolchain::ToolchainCache::persisted(dir.join("toolchains.bin")),
        tmp_dir,
        in_flight: rccd::in_flight::InFlight::new(),
        config,
    });
    rccd::server::run(ctx, listener, socket, idle);
    drop(lock);
    Ok(())
}

/// `rccd worker --scheduler ADDR --fingerprint HEX --token T [--pool P] [--slots N] [--name NAME] [--dir DIR]
/// [--cache-mb MB] [--keep-toolchains N]`; the first three also from RCC_SCHEDULER, RCC_SCHEDULER_FINGERPRINT,
/// RCC_TOKEN. `--cache-mb` bounds the blobs kept locally (default 2048), `--keep-toolchains` the materialized
/// toolchains (default 4).
fn worker(args: Vec<String>) -> Result<()> {
    use rccd::worker::{run, WorkerOptions};
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RCC_LOG_LEVEL").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let value = |flag: &str, var: &str| -> Option<String> {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned()).or_else(|| std::env::var(var).ok())
    };
    let scheduler = value("--scheduler", rcc_proto::vars::RCC_SCHEDULER)
        .context("--scheduler ADDR (or RCC_SCHEDULER) is required")?;
    let scheduler = std::net::ToSocketAddrs::to_socket_addrs(&scheduler)
        .with_context(|| format!("resolving {scheduler}"))?
        .next()
        .with_context(|| format!("{scheduler} resolves to nothing"))?;
    let fingerprint = value("--fingerprint", rcc_proto::vars::RCC_SCHEDULER_FINGERPRINT)
        .context("--fingerprint HEX (or RCC_SCHEDULER_FINGERPRINT) is required")?;
    let fingerprint = rcc_proto::Digest::from_hex(&fingerprint).context("--fingerprint is not a SHA-256 in hex")?;
    let token = value("--token", rcc_proto::vars::RCC_TOKEN).context("--token (or RCC_TOKEN) is required")?;
    let flag = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let cache_mb: u64 = match flag("--cache-mb") {
        Some(s) => s.parse().with_context(|| format!("--cache-mb {s}"))?,
        None => WorkerOptions::DEFAULT_CACHE_MB,
    };
    let keep_toolchains: usize = match flag("--keep-toolchains") {
        Some(s) => s.parse().with_context(|| format!("--keep-toolchains {s}"))?,
        None => WorkerOptions::DEFAULT_KEEP_TOOLCHAINS,
    };
    anyhow::ensure!(keep_toolchains >= 1, "--keep-toolchains must be at least 1");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let slots = match value("--slots", rcc_proto::vars::RCC_WORKER_SLOTS) {
        Some(s) => s.parse().with_context(|| format!("--slots {s}"))?,
        None => cores,
    };
    let options = WorkerOptions {
        scheduler,
        trust: rcc_scheduler::tls::Trust::Fingerprint(fingerprint),
        token,
        name: value("--name", rcc_proto::vars::RCC_WORKER_NAME).unwrap_or_else(WorkerOptions::default_name),
        pool: value("--pool", rcc_proto::vars::RCC_WORKER_POOL).unwrap_or_else(WorkerOptions::default_pool),
        slots,
        memory_bytes: WorkerOptions::default_memory(),
        cache_bytes: cache_mb.checked_mul(1 << 20).context("--cache-mb is too large")?,
        keep_toolchains,
        cache_dir: match value("--dir", rcc_proto::vars::RCC_WORKER_DIR) {
            Some(dir) => dir.into(),
            None => rcc_proto::config::load().context("reading the configuration")?.dir.value.join("worker"),
        },
    };
    run(&options).map_err(anyhow::Error::from)
}
