//! A small program using the graph's crates, so that a binary (and its link) is part of the benchmark.
use anyhow::Context;
use clap::Parser;
use itertools::Itertools;
use once_cell::sync::Lazy;
use rand::Rng;
use regex::Regex;
use rust_graph_macros::Describe;
use serde::{Deserialize, Serialize};

static WORD: Lazy<Regex> = Lazy::new(|| Regex::new(r"[A-Za-z]+").unwrap());

#[derive(Parser, Debug)]
#[command(about = "rcc benchmark program")]
struct Args {
    /// Text whose words are counted.
    #[arg(default_value = "the quick brown fox jumps over the lazy dog the end")]
    text: String,
    /// Random numbers to compress.
    #[arg(long, default_value_t = 1000)]
    count: usize,
}

#[derive(Serialize, Deserialize, Debug, Describe)]
struct Report {
    words: Vec<(String, usize)>,
    compressed: usize,
    at: chrono::DateTime<chrono::Utc>,
}

#[derive(thiserror::Error, Debug)]
enum Error {
    #[error("empty text")]
    Empty,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    log::info!("{}", Report::describe());
    if args.text.is_empty() {
        return Err(Error::Empty.into());
    }
    let words = WORD
        .find_iter(&args.text)
        .map(|m| m.as_str().to_lowercase())
        .counts()
        .into_iter()
        .sorted_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)))
        .collect();
    let data: Vec<u8> = tokio::task::spawn_blocking(move || {
        let mut rng = rand::rng();
        (0..args.count).map(|_| rng.random_range(0..16u8)).collect()
    })
    .await?;
    let compressed = zstd::encode_all(&data[..], 3).context("compressing")?.len();
    let report = Report { words, compressed, at: chrono::Utc::now() };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
