//! A scheduler killed (SIGKILL) again and again while clients upload, for real: after each restart the blob
//! files and the index agree — no file under `cas/blobs` without an index row, no row without a file — and
//! the stored-bytes figure `status --json` shows is the files' total.

use crate::pool::status_json;
use crate::remote::Scheduler;
use crate::support::TestEnv;
use rcc_link::tls::Trust;
use rcc_link::Client;
use rcc_proto::Digest;
use std::path::Path;
use std::time::Duration;

/// (files, their total bytes) under `cas/blobs`, temporary files included.
fn blob_files(state: &Path) -> (u64, u64) {
    let mut out = (0, 0);
    let Ok(shards) = std::fs::read_dir(state.join("cas/blobs")) else { return out };
    for shard in shards.flatten() {
        for file in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            out.0 += 1;
            out.1 += file.metadata().map_or(0, |m| m.len());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduler_killed_during_uploads_restarts_with_files_and_index_agreeing() {
    let env = TestEnv::new();
    let mut seed = 1u64;
    for round in 0..4 {
        let scheduler = Scheduler::start(&env.root);
        let trust = Trust::Fingerprint(Digest::from_hex(&scheduler.fingerprint).unwrap());
        let client = Client::connect(scheduler.addr.parse().unwrap(), &trust, &scheduler.token("read,write,admin"))
            .await
            .expect("connecting");
        // Uploads of distinct blobs, eight at a time, until the scheduler dies under them.
        let uploads = tokio::spawn(async move {
            let client = std::sync::Arc::new(client);
            loop {
                let mut batch = Vec::new();
                for _ in 0..8 {
                    seed += 1;
                    let data: Vec<u8> = (0..20_000u64).map(|i| (i.wrapping_mul(seed) >> 3) as u8).collect();
                    let client = client.clone();
                    // A killed scheduler does not close the connection: a stalled upload counts as its death.
                    batch.push(tokio::spawn(async move {
                        tokio::time::timeout(Duration::from_secs(3), client.put_blob(&data)).await
                    }));
                }
                for b in batch {
                    if !matches!(b.await, Ok(Ok(Ok(_)))) {
                        return seed;
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(700 + 150 * round)).await;
        drop(scheduler); // SIGKILL
        seed = uploads.await.unwrap();
    }
    let (files_before, _) = blob_files(&env.root.join("scheduler"));
    assert!(files_before > 0, "uploads reached the disk");
    let scheduler = Scheduler::start(&env.root);
    let status = status_json(&scheduler);
    let (files, bytes) = blob_files(&scheduler.state);
    eprintln!("after 4 kills: {files_before} files before the restart, {files} after; status {}", status["storage"]);
    assert_eq!(status["storage"]["blobs"].as_u64(), Some(files), "every blob file has an index row, and back");
    assert_eq!(status["storage"]["stored_bytes"].as_u64(), Some(bytes), "stored bytes are the files' total");
}

/// SIGTERM stops the scheduler gracefully: it exits 0 within seconds, and every blob it acknowledged is
/// still there after a restart (its index rows, committed without a sync, are flushed on the way out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_stops_the_scheduler_gracefully_and_keeps_what_it_stored() {
    let env = TestEnv::new();
    let mut scheduler = Scheduler::start(&env.root);
    let token = scheduler.token("read,write");
    let trust = Trust::Fingerprint(Digest::from_hex(&scheduler.fingerprint).unwrap());
    let client = Client::connect(scheduler.addr.parse().unwrap(), &trust, &token).await.expect("connecting");
    let mut stored = Vec::new();
    for i in 0..20u64 {
        let data: Vec<u8> = (0..10_000u64).map(|j| (j.wrapping_mul(i + 7) >> 2) as u8).collect();
        stored.push(client.put_blob(&data).await.expect("an upload"));
    }
    let status = scheduler.terminate();
    assert!(status.success(), "SIGTERM ends the scheduler cleanly: {status:?}");
    drop(client);
    let scheduler = Scheduler::start(&env.root);
    let trust = Trust::Fingerprint(Digest::from_hex(&scheduler.fingerprint).unwrap());
    let client = Client::connect(scheduler.addr.parse().unwrap(), &trust, &token).await.expect("reconnecting");
    let missing = client.find_missing(stored.clone()).await.unwrap();
    assert!(missing.is_empty(), "{} of {} acknowledged blobs lost over a graceful stop", missing.len(), stored.len());
}
