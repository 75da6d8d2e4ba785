//! `rcc-scheduler`: serve the shared cache, manage tokens, print the certificate fingerprint.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rcc_proto::config::parse_size;
use rcc_proto::remote::Scope;
use rcc_scheduler::server::{serve, Service};
use rcc_scheduler::storage::DiskStorage;
use rcc_scheduler::tls;
use rcc_scheduler::tokens::TokenStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "rcc-scheduler", version, about = "rcc's shared cache service (QUIC)")]
struct Cli {
    /// State directory: certificate, tokens, storage.
    #[arg(long, global = true, env = "RCC_SCHEDULER_STATE", default_value = "rcc-scheduler-state")]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the shared cache.
    Serve {
        /// UDP address to listen on.
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: SocketAddr,
        /// Certificate chain (PEM); default: a self-signed one in the state directory.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Private key (PEM) of --cert.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Storage size limit (e.g. 100G).
        #[arg(long, default_value = "50G")]
        cache_size: String,
    },
    /// Print the SHA-256 fingerprint clients pin (RCC_SCHEDULER_FINGERPRINT).
    Fingerprint,
    /// Measure blob throughput against a running scheduler (for bench/remote.sh).
    BenchClient {
        /// Scheduler address.
        #[arg(long)]
        addr: SocketAddr,
        /// Pinned certificate fingerprint.
        #[arg(long)]
        fingerprint: String,
        /// Token with read and write scopes.
        #[arg(long)]
        token: String,
    },
    /// Simulate the dispatch core alone with many workers and queued actions (for bench/dispatch.sh).
    BenchDispatch {
        /// Simulated workers.
        #[arg(long, default_value_t = 10_000)]
        workers: usize,
        /// Actions queued at the start.
        #[arg(long, default_value_t = 1_000_000)]
        actions: usize,
        /// Pools to spread workers and actions over.
        #[arg(long, default_value_t = 4)]
        pools: usize,
        /// Seed of the simulation's pseudo-random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print a CSV header and row instead of a Markdown table.
        #[arg(long)]
        csv: bool,
    },
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is stored hashed: this is the only time it is shown).
    Create {
        /// Comma-separated scopes: read, write, execute, worker, admin.
        #[arg(long, default_value = "read")]
        scope: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RCC_LOG_LEVEL").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.state).with_context(|| format!("creating {}", cli.state.display()))?;
    match cli.command {
        Command::Serve { listen, cert, key, cache_size } => {
            let identity = tls::load_or_create(&cli.state, cert.as_deref(), key.as_deref())?;
            let fingerprint = identity.fingerprint();
            let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls::server_config(identity)?)
                .context("configuring QUIC")?;
            let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
            let endpoint = quinn::Endpoint::server(config, listen).with_context(|| format!("listening on {listen}"))?;
            let limit = parse_size(&cache_size).map_err(anyhow::Error::msg)?;
            let storage = Arc::new(DiskStorage::open(&cli.state.join("cas"), limit)?);
            let tokens = Arc::new(TokenStore::open(&cli.state)?);
            tracing::info!(addr = %endpoint.local_addr()?, %fingerprint, "rcc-scheduler listening");
            serve(endpoint, Service { storage, tokens }).await;
        }
        Command::BenchClient { addr, fingerprint, token } => {
            let fp = rcc_proto::Digest::from_hex(&fingerprint).context("parsing --fingerprint")?;
            bench_client(addr, fp, &token).await?;
        }
        Command::BenchDispatch { workers, actions, pools, seed, csv } => {
            use rcc_scheduler::dispatch::bench::{run, BenchOptions, BenchReport};
            let report = run(&BenchOptions { workers, actions, pools, seed, ..BenchOptions::default() });
            if csv {
                println!("{}\n{}", BenchReport::CSV_HEADER, report.csv_row());
            } else {
                println!("| workers | actions | decisions/s | p50 µs | p99 µs | max µs | twins | delivered |");
                println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
                println!(
                    "| {workers} | {actions} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} |",
                    report.decisions_per_sec,
                    report.p50_us,
                    report.p99_us,
                    report.max_us,
                    report.twins,
                    report.delivered
                );
            }
        }
        Command::Fingerprint => {
            let identity = tls::load_or_create(&cli.state, None, None)?;
            println!("{}", identity.fingerprint());
        }
        Command::Token { command: TokenCommand::Create { scope, label } } => {
            let mut scopes = Vec::new();
            for name in scope.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match Scope::parse(name) {
                    Some(s) => scopes.push(s),
                    None => bail!("unknown scope `{name}` (read, write, execute, worker, admin)"),
                }
            }
            let token = TokenStore::open(&cli.state)?.create(&scopes, &label)?;
            println!("{token}");
        }
    }
    Ok(())
}

/// Puts and gets many small and a few large blobs, sequentially and 16 at a time, and prints a table.
async fn bench_client(addr: SocketAddr, fingerprint: rcc_proto::Digest, token: &str) -> Result<()> {
    use rcc_scheduler::client::Client;
    use std::time::Instant;
    let client = Arc::new(Client::connect(addr, &rcc_scheduler::tls::Trust::Fingerprint(fingerprint), token).await?);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    println!("| blobs | size | mode | put MB/s | get MB/s | put per blob ms | get per blob ms |");
    println!("|---:|---:|---|---:|---:|---:|---:|");
    for (count, size, parallel) in [(2000usize, 4096usize, 1usize), (2000, 4096, 16), (4, 16 << 20, 1)] {
        let blobs: Vec<Vec<u8>> = (0..count).map(|_| noise(size)).collect();
        let total = (count * size) as f64 / (1 << 20) as f64;
        let run = |get: bool| {
            let client = client.clone();
            let blobs = blobs.clone();
            async move {
                let start = Instant::now();
                let mut chunks = blobs.chunks(count.div_ceil(parallel)).map(|c| c.to_vec()).collect::<Vec<_>>();
                let mut tasks = Vec::new();
                for chunk in chunks.drain(..) {
                    let client = client.clone();
                    tasks.push(tokio::spawn(async move {
                        for blob in chunk {
                            if get {
                                client.get_blob(rcc_proto::Digest::of(&blob)).await?;
                            } else {
                                client.put_blob(&blob).await?;
                            }
                        }
                        Ok::<(), rcc_scheduler::client::ClientError>(())
                    }));
                }
                for t in tasks {
                    t.await??;
                }
                Ok::<f64, anyhow::Error>(start.elapsed().as_secs_f64())
            }
        };
        let put = run(false).await?;
        let get = run(true).await?;
        println!(
            "| {count} | {} KiB | {} | {:.1} | {:.1} | {:.3} | {:.3} |",
            size / 1024,
            if parallel == 1 { "sequential".to_owned() } else { format!("{parallel} at once") },
            total / put,
            total / get,
            put * 1000.0 / count as f64,
            get * 1000.0 / count as f64
        );
    }
    Ok(())
}
