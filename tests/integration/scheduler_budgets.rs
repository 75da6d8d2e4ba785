//! The scheduler's memory budgets under attack, for real: the real rcc-scheduler binary on loopback, attacked
//! over real QUIC (rcc-link's client, or raw quinn streams for a peer that never authenticates). After each
//! attack the scheduler's peak resident memory (VmHWM) stays under a bound, and it still serves an honest
//! client.

use crate::remote::Scheduler;
use crate::support::TestEnv;
use rcc_link::tls::Trust;
use rcc_link::Client;
use rcc_proto::remote::{Request, Response};
use rcc_proto::Digest;
use std::io::Read;
use std::time::{Duration, Instant};

/// The most memory the scheduler may hold after an attack (it starts at about 10 MB).
const PEAK_BOUND: u64 = 150 << 20;

fn trust(scheduler: &Scheduler) -> Trust {
    Trust::Fingerprint(Digest::from_hex(&scheduler.fingerprint).expect("the scheduler's fingerprint"))
}

async fn client(scheduler: &Scheduler, scopes: &str) -> Client {
    let addr = scheduler.addr.parse().expect("the scheduler's address");
    Client::connect(addr, &trust(scheduler), &scheduler.token(scopes)).await.expect("connecting")
}

/// An honest client still gets served: a blob goes up and comes back.
async fn still_serves(scheduler: &Scheduler) {
    let honest = client(scheduler, "read,write").await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = honest.put_blob(&data).await.expect("an honest upload after the attack");
    assert_eq!(honest.get_blob(digest).await.expect("a download"), Some(data));
}

/// A write token sends three zstd bombs at once: each announces 256 MiB and decompresses to 320 MiB of
/// zeros from about 10 KB on the wire. The scheduler decompresses as the body streams in and cuts each off
/// at its announced size: it never holds the announced size (before: it allocated and filled all of it,
/// ~770 MB here, 3 GB with 1 GiB bombs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_tokens_zstd_bombs_are_cut_off_without_holding_their_size() {
    let env = TestEnv::new();
    let mut scheduler = Scheduler::start(&env.root);
    let before = scheduler.peak_rss();
    let writer = client(&scheduler, "read,write").await;
    let bomb = zstd::stream::encode_all(std::io::repeat(0).take(320 << 20), 1).expect("compressing zeros");
    assert!(bomb.len() < 64 << 10, "a bomb is small on the wire ({} bytes)", bomb.len());
    let announced: u64 = 256 << 20;
    let send_bomb = |n: u8| {
        let (writer, bomb) = (&writer, &bomb);
        async move {
            let (mut send, mut recv) = writer.open_raw().await.expect("a stream");
            let digest = Digest::of(&[n]);
            rcc_link::wire::write_frame(&mut send, &Request::PutBlob { digest, size: announced }).await.unwrap();
            rcc_link::wire::write_compressed_body(&mut send, bomb).await.unwrap();
            rcc_link::wire::read_frame::<Response>(&mut recv).await
        }
    };
    let answers = tokio::join!(send_bomb(1), send_bomb(2), send_bomb(3));
    for answer in [answers.0, answers.1, answers.2] {
        assert!(matches!(answer, Ok(Response::Refused(_))), "a bomb is refused: {answer:?}");
    }
    let peak = scheduler.peak_rss();
    eprintln!("zstd bombs: scheduler peak RSS {} MB (before {} MB)", peak >> 20, before >> 20);
    assert!(peak < PEAK_BOUND, "the scheduler's peak RSS reached {} MB", peak >> 20);
    assert!(scheduler.running(), "the scheduler survived");
    still_serves(&scheduler).await;

    // The blob size limit: an announced size over --max-blob-size is refused before any body is read.
    drop(writer);
    drop(scheduler);
    let env = TestEnv::new();
    let scheduler = Scheduler::start_with(&env.root, &["--max-blob-size", "1M"]);
    let writer = client(&scheduler, "read,write").await;
    let small = vec![1u8; 1 << 20];
    writer.put_blob(&small).await.expect("a blob at the limit is taken");
    let over = writer.put_blob(&vec![1u8; (1 << 20) + 1]).await;
    assert!(format!("{over:?}").contains("TooLarge"), "a blob over the limit is refused: {over:?}");
}

/// Strangers (no token at all) open four connections and as many streams as they are allowed, and on each
/// stream send most of a frame announcing the largest payload (1 MiB), never completing it. Before any
/// token, the scheduler reads frames of a few KiB only and lets a connection hold 64 KiB in flight over a
/// few streams (before: 100 streams of 1.25 MB each per connection, ~430 MB here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_partial_frames_on_many_streams_are_not_buffered() {
    let env = TestEnv::new();
    let mut scheduler = Scheduler::start(&env.root);
    let addr: std::net::SocketAddr = scheduler.addr.parse().unwrap();
    let before = scheduler.peak_rss();
    let attack = |_: usize| {
        let trust = trust(&scheduler);
        async move {
            let endpoint = rcc_link::endpoint::client(addr, &trust).expect("an endpoint");
            let conn = endpoint.connect(addr, "rcc-scheduler").unwrap().await.expect("handshake");
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut streams = Vec::new();
            let mut header = vec![b'R', b'Q', 2];
            header.extend_from_slice(&(1u32 << 20).to_le_bytes());
            let partial = vec![0x55u8; (1 << 20) - 16];
            for _ in 0..100 {
                let Ok(Ok((mut send, recv))) = tokio::time::timeout_at(deadline.into(), conn.open_bi()).await else {
                    break;
                };
                let (header, partial) = (header.clone(), partial.clone());
                streams.push(tokio::spawn(async move {
                    let _ = tokio::time::timeout_at(deadline.into(), async {
                        send.write_all(&header).await?;
                        send.write_all(&partial).await
                    })
                    .await;
                    // Keep the stream open (unfinished frame) until the attack ends.
                    tokio::time::sleep_until(deadline.into()).await;
                    drop((send, recv));
                }));
            }
            let opened = streams.len();
            for s in streams {
                let _ = s.await;
            }
            (opened, endpoint, conn)
        }
    };
    let results = futures_join(attack).await;
    let peak = scheduler.peak_rss();
    eprintln!(
        "unauthenticated partial frames: streams opened {:?}; scheduler peak RSS {} MB (before {} MB)",
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        peak >> 20,
        before >> 20
    );
    assert!(peak < PEAK_BOUND, "the scheduler's peak RSS reached {} MB", peak >> 20);
    assert!(scheduler.running(), "the scheduler survived");
    still_serves(&scheduler).await;
}

/// Four attacking connections at once.
async fn futures_join<F, Fut, T>(attack: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..4).map(|i| tokio::spawn(attack(i))).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("an attacking connection"));
    }
    out
}
