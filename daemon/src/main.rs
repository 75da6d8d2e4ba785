//! `rccd`: started by the wrapper; serves until idle. Exactly one daemon serves a socket: the first to take
//! the socket's lock file; later ones exit at once. `rccd worker` runs a pool worker instead.

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use rcc_proto::vars;
use rcc_worker::WorkerOptions;
use rccd::context::Context;
use rccd::key::files::FileCache;
use rccd::key::identity::IdentityCache;
use rccd::stats::StatsBook;
use rccd::store::Store;
use std::fs::{self, File};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// rcc's daemon. Started on demand by `rcc` (nobody needs to start it by hand): it serves compile requests
/// on its Unix socket (RCC_SOCKET, default under RCC_DIR) and exits when idle (RCC_IDLE_TIMEOUT). With
/// `worker`, it is a machine of the remote build pool instead.
#[derive(Parser)]
#[command(name = "rccd", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a remote build pool: dial out to the scheduler, register, run assigned actions in the sandbox.
    Worker(WorkerArgs),
}

/// `rccd worker`'s flags; each may come from its environment variable instead.
#[derive(Args)]
struct WorkerArgs {
    /// The scheduler's address, host:port.
    #[arg(long, env = vars::RCC_SCHEDULER)]
    scheduler: String,
    /// SHA-256 fingerprint of the scheduler's certificate (`rcc-scheduler fingerprint`).
    #[arg(long, env = vars::RCC_SCHEDULER_FINGERPRINT, conflicts_with = "ca")]
    fingerprint: Option<String>,
    /// CA certificate file (PEM) the scheduler's certificate must chain to, instead of a fingerprint.
    #[arg(long, env = vars::RCC_SCHEDULER_CA)]
    ca: Option<PathBuf>,
    /// A file holding the worker's token (`rcc-scheduler token create --scope worker,read,write`): owned by
    /// the worker's user, mode 0600 or 0400. Without it the token is taken from the environment variable
    /// RCC_TOKEN. Never on the command line, where every local user sees it.
    #[arg(long, env = vars::RCC_TOKEN_FILE)]
    token_file: Option<PathBuf>,
    /// Removed: a token in argv shows in /proc/PID/cmdline. Refused with a message naming the alternatives.
    #[arg(long, hide = true)]
    token: Option<String>,
    /// The pool served [default: <os>-<arch>, e.g. linux-x86_64].
    #[arg(long, env = vars::RCC_WORKER_POOL)]
    pool: Option<String>,
    /// Actions run at once [default: the number of cores].
    #[arg(long, env = vars::RCC_WORKER_SLOTS)]
    slots: Option<u32>,
    /// The name shown in `rcc-scheduler status` [default: the host name].
    #[arg(long, env = vars::RCC_WORKER_NAME)]
    name: Option<String>,
    /// Where blobs, toolchains and work directories live [default: <RCC_DIR>/worker].
    #[arg(long, env = vars::RCC_WORKER_DIR)]
    dir: Option<PathBuf>,
    /// MiB of blobs (inputs, toolchain files) kept locally.
    #[arg(long, default_value_t = WorkerOptions::DEFAULT_CACHE_MB)]
    cache_mb: u64,
    /// The longest an action may run, in seconds, whatever timeout its client asks for.
    #[arg(long, env = vars::RCC_WORKER_MAX_ACTION_SECS, default_value_t = WorkerOptions::DEFAULT_MAX_ACTION_SECS,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    max_action_secs: u64,
    /// Materialized toolchains kept (at least 1).
    #[arg(long, default_value_t = WorkerOptions::DEFAULT_KEEP_TOOLCHAINS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    keep_toolchains: usize,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(),
        Some(Command::Worker(args)) => worker(args),
    };
    if let Err(e) = result {
        eprintln!("rccd: {e:#}");
        std::process::exit(1);
    }
}

fn serve() -> Result<()> {
    // Everything the daemon creates is its user's alone: the store, statistics, scratch files, the socket.
    // SAFETY: umask only sets this process's file-creation mask; no other thread runs yet.
    unsafe { libc::umask(0o077) };
    let config = rcc_proto::config::load().context("reading the configuration")?;
    let dir = config.dir.value.clone();
    rcc_fs::private::ensure_private_dir(&dir).with_context(|| format!("the cache directory {}", dir.display()))?;
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
                tracing_subscriber::EnvFilter::try_from_env(vars::RCC_LOG_LEVEL).unwrap_or_else(|_| "debug".into()),
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
        pool: rccd::pool_client::PoolClient::default(),
        config,
    });
    rccd::server::run(ctx, listener, socket, idle);
    drop(lock);
    Ok(())
}

fn worker(args: WorkerArgs) -> Result<()> {
    let token = worker_token(&args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(vars::RCC_LOG_LEVEL).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let scheduler = std::net::ToSocketAddrs::to_socket_addrs(&args.scheduler)
        .with_context(|| format!("resolving {}", args.scheduler))?
        .next()
        .with_context(|| format!("{} resolves to nothing", args.scheduler))?;
    let trust = match (args.fingerprint, args.ca) {
        (Some(fingerprint), _) => rcc_link::tls::Trust::Fingerprint(
            rcc_proto::Digest::from_hex(&fingerprint).context("--fingerprint is not a SHA-256 in hex")?,
        ),
        (None, Some(ca)) => rcc_link::tls::Trust::CaFile(ca),
        (None, None) => {
            anyhow::bail!("--fingerprint (RCC_SCHEDULER_FINGERPRINT) or --ca (RCC_SCHEDULER_CA) is required")
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let options = WorkerOptions {
        scheduler,
        trust,
        token,
        name: args.name.unwrap_or_else(WorkerOptions::default_name),
        pool: args.pool.unwrap_or_else(rcc_proto::remote::default_pool),
        slots: args.slots.unwrap_or(cores),
        memory_bytes: WorkerOptions::default_memory(),
        cache_bytes: args.cache_mb.checked_mul(1 << 20).context("--cache-mb is too large")?,
        keep_toolchains: args.keep_toolchains,
        max_action: Duration::from_secs(args.max_action_secs),
        cache_dir: match args.dir {
            Some(dir) => dir,
            None => rcc_proto::config::load().context("reading the configuration")?.dir.value.join("worker"),
        },
    };
    rcc_worker::run(&options).map_err(anyhow::Error::from)
}

/// The worker's token: from `--token-file` (a private file of the worker's user), else from RCC_TOKEN.
fn worker_token(args: &WorkerArgs) -> Result<String> {
    if args.token.is_some() {
        anyhow::bail!(
            "--token is not accepted: a token on the command line is visible to every local user \
             (/proc/PID/cmdline, ps). Put it in a file readable only by the worker's user (mode 0600) and \
             pass --token-file PATH (or {}), or set the environment variable {}",
            vars::RCC_TOKEN_FILE,
            vars::RCC_TOKEN
        );
    }
    match &args.token_file {
        // SAFETY: geteuid cannot fail and touches no memory.
        Some(path) => Ok(rcc_worker::token::read_token_file(path, unsafe { libc::geteuid() })?),
        None => match std::env::var(vars::RCC_TOKEN) {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            _ => anyhow::bail!(
                "no token: pass --token-file PATH (a file of the worker's user, mode 0600) or set {}",
                vars::RCC_TOKEN
            ),
        },
    }
}
