//! `rcc-bench client`: blob throughput against a running scheduler, for bench/remote.sh.

use anyhow::Result;
use std::net::SocketAddr;
use std::sync::Arc;

/// Puts and gets many small and a few large blobs, sequentially and 16 at a time, and prints a table.
pub async fn run(addr: SocketAddr, fingerprint: rcc_proto::Digest, token: &str) -> Result<()> {
    use rcc_link::client::Client;
    use std::time::Instant;
    let client = Arc::new(Client::connect(addr, &rcc_link::tls::Trust::Fingerprint(fingerprint), token).await?);
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
                        Ok::<(), rcc_link::client::ClientError>(())
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
