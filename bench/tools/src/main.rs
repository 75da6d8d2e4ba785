//! `rcc-bench`: drivers the benchmark scripts under bench/ call; not part of the product.
//!
//! - `rcc-bench dispatch`: the dispatch core alone on a simulated clock (bench/dispatch.sh).
//! - `rcc-bench client`: blob throughput against a running scheduler (bench/remote.sh).

mod client;
mod dispatch;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;

#[derive(Parser)]
#[command(name = "rcc-bench", version, about = "Benchmark drivers for rcc's bench/ scripts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure blob throughput against a running scheduler (for bench/remote.sh); the token comes from the
    /// environment, as the clients' does.
    Client {
        /// Scheduler address.
        #[arg(long)]
        addr: SocketAddr,
        /// Pinned certificate fingerprint.
        #[arg(long)]
        fingerprint: String,
    },
    /// Simulate the dispatch core alone with many workers and queued actions (for bench/dispatch.sh).
    Dispatch {
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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Client { addr, fingerprint } => {
            // Never on the command line, which every local user can read.
            let var = rcc_proto::vars::RCC_TOKEN;
            let token = std::env::var(var)
                .with_context(|| format!("{var} must hold a token with the read and write scopes"))?;
            let fingerprint = rcc_proto::Digest::from_hex(&fingerprint).context("parsing --fingerprint")?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(client::run(addr, fingerprint, &token))
        }
        Command::Dispatch { workers, actions, pools, seed, csv } => {
            use dispatch::{run, BenchOptions, BenchReport};
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
            Ok(())
        }
    }
}
