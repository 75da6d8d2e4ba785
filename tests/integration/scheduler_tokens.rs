//! Token lifetimes on the real scheduler: `rcc-scheduler token revoke` and `--expires` take effect at once,
//! for new connections and for the ones already open (a real client holding a QUIC connection).

use crate::remote::Scheduler;
use crate::support::{bin_dir, run_ok, TestEnv};
use rcc_link::tls::Trust;
use rcc_link::{Client, ClientError};
use rcc_proto::remote::RemoteError;
use rcc_proto::Digest;
use std::process::Command;
use std::time::{Duration, Instant};

fn cli(scheduler: &Scheduler, args: &[&str]) -> String {
    let out = run_ok(Command::new(bin_dir().join("rcc-scheduler")).arg("--state").arg(&scheduler.state).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn connect(scheduler: &Scheduler, token: &str) -> Result<Client, ClientError> {
    let trust = Trust::Fingerprint(Digest::from_hex(&scheduler.fingerprint).unwrap());
    Client::connect(scheduler.addr.parse().unwrap(), &trust, token).await
}

/// How long until the client's connection stops serving requests (polled every 50 ms, at most 10 s).
async fn time_until_closed(client: &Client) -> Duration {
    let started = Instant::now();
    while client.find_missing(vec![Digest::of(b"x")]).await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "the connection stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn refused(result: Result<Client, ClientError>) -> bool {
    matches!(result, Err(ClientError::Refused(RemoteError::Unauthenticated)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_or_expired_token_is_refused_and_its_open_connections_closed_at_once() {
    let env = TestEnv::new();
    let scheduler = Scheduler::start(&env.root);
    let doomed = cli(&scheduler, &["token", "create", "--scope", "read", "--label", "doomed"]).trim().to_owned();
    let kept = cli(&scheduler, &["token", "create", "--scope", "read,write", "--label", "kept"]).trim().to_owned();
    let brief = cli(&scheduler, &["token", "create", "--scope", "read", "--label", "brief", "--expires", "3s"])
        .trim()
        .to_owned();

    let list = cli(&scheduler, &["token", "list"]);
    for label in ["doomed", "kept", "brief"] {
        assert!(list.contains(label), "{list}");
    }
    assert!(list.contains("read,write") && list.contains("never"), "{list}");
    for secret in [&doomed, &kept, &brief] {
        assert!(!list.contains(secret.as_str()), "token list never shows a token\n{list}");
    }

    // A client holding a connection with the token; the revocation closes it within a second or two.
    let live = connect(&scheduler, &doomed).await.expect("the token works before its revocation");
    let other = connect(&scheduler, &kept).await.expect("another token");
    live.find_missing(vec![Digest::of(b"x")]).await.expect("served");
    let revoked = cli(&scheduler, &["token", "revoke", "doomed"]);
    assert!(revoked.contains("revoked 1"), "{revoked}");
    let took = time_until_closed(&live).await;
    assert!(took < Duration::from_secs(2), "the revoked token's connection closed after {took:?}");
    assert!(refused(connect(&scheduler, &doomed).await), "a new connection with a revoked token is refused");
    other.find_missing(vec![Digest::of(b"x")]).await.expect("other tokens' connections are untouched");
    assert!(!cli(&scheduler, &["token", "list"]).contains("doomed"));

    // A token that expires: its open connection is closed when it does, and it is refused afterwards.
    let expiring = connect(&scheduler, &brief).await.expect("the token works before its expiry");
    let took = time_until_closed(&expiring).await;
    assert!(took < Duration::from_secs(5), "the expired token's connection closed after {took:?}");
    assert!(refused(connect(&scheduler, &brief).await), "an expired token is refused");
    assert!(cli(&scheduler, &["token", "list"]).contains("(expired)"));
    other.find_missing(vec![Digest::of(b"x")]).await.expect("the other connection still works");
}

/// The scheduler's log names each connection's own peer on every line made while serving it (the
/// connection's span is attached to its tasks, never entered across an `.await`, where another
/// connection's work would run inside it): twelve clients from twelve ports authenticate at once, and
/// each one's line carries its own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_log_line_names_the_peer_it_is_about() {
    let env = TestEnv::new();
    let scheduler = Scheduler::start_with_env(&env.root, &[], &[("RCC_LOG_LEVEL", "debug,quinn=info,rustls=info")]);
    let labels: Vec<String> = (0..12).map(|i| format!("client-{i}")).collect();
    let tokens: Vec<String> = labels
        .iter()
        .map(|label| cli(&scheduler, &["token", "create", "--scope", "read", "--label", label]).trim().to_owned())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (label, token) in labels.iter().cloned().zip(tokens) {
        let (addr, fingerprint) = (scheduler.addr.clone(), scheduler.fingerprint.clone());
        tasks.spawn(async move {
            let trust = Trust::Fingerprint(Digest::from_hex(&fingerprint).unwrap());
            let client = Client::connect(addr.parse().unwrap(), &trust, &token).await.expect("connecting");
            for _ in 0..5 {
                client.find_missing(vec![Digest::of(label.as_bytes())]).await.expect("served");
            }
            (label, client.local_addr().expect("a local address").port(), client)
        });
    }
    let mut clients = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        clients.push(joined.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (label, port, _client) in &clients {
        let needle = format!("label={label} ");
        let line = loop {
            if let Some(line) = scheduler.log().into_iter().find(|l| l.contains(&needle)) {
                break line;
            }
            assert!(Instant::now() < deadline, "no line for {label}:\n{}", scheduler.log().join("\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(line.contains(&format!("peer=127.0.0.1:{port}")), "{label} connected from port {port}: {line}");
    }
}
