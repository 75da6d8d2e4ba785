//! The service over real QUIC on loopback, in process: a scheduler on 127.0.0.1:0 and clients.

use crate::server::{serve, Service};
use crate::storage::DiskStorage;
use crate::tokens::TokenStore;
use rcc_link::client::{Client, ClientError};
use rcc_link::tls::Trust;
use rcc_proto::remote::{ActionResult, OutputFile, RemoteError, Scope};
use rcc_proto::Digest;
use std::net::SocketAddr;
use std::sync::Arc;

struct Harness {
    addr: SocketAddr,
    trust: Trust,
    tokens: Arc<TokenStore>,
    _state: tempfile::TempDir,
}

async fn start() -> Harness {
    let state = tempfile::tempdir().unwrap();
    let identity = crate::identity::load_or_create(state.path(), None, None).unwrap();
    let trust = Trust::Fingerprint(identity.fingerprint());
    start_with(state, identity, trust).await
}

async fn start_with(state: tempfile::TempDir, identity: rcc_link::tls::Identity, trust: Trust) -> Harness {
    let endpoint = rcc_link::endpoint::server(identity, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let storage = Arc::new(DiskStorage::open(&state.path().join("cas"), 1 << 30).unwrap());
    let tokens = Arc::new(TokenStore::open(state.path()).unwrap());
    tokio::spawn(serve(
        endpoint,
        Service::new(
            storage,
            tokens.clone(),
            Arc::new(crate::pool::Pool::with_defaults()),
            crate::server::Limits::default(),
        ),
    ));
    Harness { addr, trust, tokens, _state: state }
}

impl Harness {
    async fn client(&self, scopes: &[Scope]) -> Client {
        let token = self.tokens.create(scopes, "test", None).unwrap();
        Client::connect(self.addr, &self.trust, &token).await.unwrap()
    }
}

fn result_naming(digest: Digest, size: u64) -> ActionResult {
    ActionResult {
        outputs: vec![OutputFile { name: "object".into(), digest, size, executable: false }],
        stdout: None,
        stderr: None,
        exit_code: 0,
    }
}

#[tokio::test]
async fn blobs_and_results_round_trip() {
    let h = start().await;
    let c = h.client(&[Scope::Read, Scope::Write]).await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 / 3) as u8).collect();
    let small = b"an object".to_vec();
    let d_small = Digest::of(&small);
    assert_eq!(c.find_missing(vec![d_small]).await.unwrap(), vec![d_small]);
    c.put_blob(&small).await.unwrap();
    let d_big = c.put_blob(&big).await.unwrap();
    assert!(c.find_missing(vec![d_small, d_big]).await.unwrap().is_empty());
    assert_eq!(c.get_blob(d_big).await.unwrap().as_deref(), Some(&big[..]));
    assert_eq!(c.get_blob(Digest::of(b"never stored")).await.unwrap(), None);
    let key = Digest::of(b"action");
    assert_eq!(c.get_action_result(key).await.unwrap(), None);
    c.update_action_result(key, result_naming(d_small, small.len() as u64)).await.unwrap();
    assert_eq!(c.get_action_result(key).await.unwrap(), Some(result_naming(d_small, small.len() as u64)));
    // A second client (another machine) sees the same entry.
    let other = h.client(&[Scope::Read]).await;
    assert!(other.get_action_result(key).await.unwrap().is_some());
}

#[tokio::test]
async fn a_tampered_blob_is_refused() {
    let h = start().await;
    let c = h.client(&[Scope::Read, Scope::Write]).await;
    let claimed = Digest::of(b"the real content");
    match c.put_blob_as(claimed, b"something else").await {
        Err(ClientError::Refused(RemoteError::DigestMismatch)) => {}
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(c.find_missing(vec![claimed]).await.unwrap(), vec![claimed], "nothing was stored");
}

#[tokio::test]
async fn an_update_naming_a_missing_blob_is_refused() {
    let h = start().await;
    let c = h.client(&[Scope::Read, Scope::Write]).await;
    let missing = Digest::of(b"not uploaded");
    match c.update_action_result(Digest::of(b"k"), result_naming(missing, 1)).await {
        Err(ClientError::Refused(RemoteError::MissingBlobs(m))) => assert_eq!(m, vec![missing]),
        other => panic!("expected MissingBlobs, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unauthenticated_client_gets_nothing() {
    let h = start().await;
    match Client::connect(h.addr, &h.trust, "rcc_not_a_token").await {
        Err(ClientError::Refused(RemoteError::Unauthenticated)) => {}
        Err(other) => panic!("expected Unauthenticated, got {other}"),
        Ok(_) => panic!("an unknown token was accepted"),
    }
}

#[tokio::test]
async fn a_scheduler_with_another_certificate_is_refused() {
    let h = start().await;
    let token = h.tokens.create(&[Scope::Read], "t", None).unwrap();
    let wrong = Trust::Fingerprint(Digest::of(b"some other certificate"));
    match Client::connect(h.addr, &wrong, &token).await {
        Err(e @ ClientError::Connect { .. }) => assert!(e.to_string().contains("fingerprint"), "{e}"),
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("connected to a scheduler with the wrong certificate"),
    }
}

#[tokio::test]
async fn a_read_only_token_cannot_write() {
    let h = start().await;
    let writer = h.client(&[Scope::Read, Scope::Write]).await;
    let d = writer.put_blob(b"shared").await.unwrap();
    let reader = h.client(&[Scope::Read]).await;
    assert_eq!(reader.scopes, vec![Scope::Read]);
    assert_eq!(reader.get_blob(d).await.unwrap().as_deref(), Some(&b"shared"[..]));
    match reader.put_blob(b"sneaky").await {
        Err(ClientError::Refused(RemoteError::Forbidden(Scope::Write))) => {}
        other => panic!("expected Forbidden(write), got {other:?}"),
    }
    match reader.update_action_result(Digest::of(b"k"), result_naming(d, 6)).await {
        Err(ClientError::Refused(RemoteError::Forbidden(Scope::Write))) => {}
        other => panic!("expected Forbidden(write), got {other:?}"),
    }
    assert_eq!(reader.find_missing(vec![Digest::of(b"sneaky")]).await.unwrap().len(), 1);
}

/// A CA and a scheduler certificate it signed, written as PEM files in `dir`: (ca.pem, cert.pem, key.pem).
fn ca_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["rcc-scheduler".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    let paths =
        (dir.join(format!("{name}-ca.pem")), dir.join(format!("{name}-cert.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn a_ca_file_trusts_the_certificates_it_signed_only() {
    let state = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_signed(state.path(), "ours");
    let (other_ca, _, _) = ca_signed(state.path(), "theirs");
    let identity = crate::identity::load_or_create(state.path(), Some(&cert), Some(&key)).unwrap();
    let h = start_with(state, identity, Trust::CaFile(ca)).await;
    let token = h.tokens.create(&[Scope::Read], "t", None).unwrap();
    let c = Client::connect(h.addr, &h.trust, &token).await.unwrap();
    assert_eq!(c.scopes, vec![Scope::Read]);
    match Client::connect(h.addr, &Trust::CaFile(other_ca), &token).await {
        Err(ClientError::Connect { .. }) => {}
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("a certificate from another CA was trusted"),
    }
}

#[tokio::test]
async fn a_peer_of_another_protocol_version_gets_a_clear_refusal() {
    let h = start().await;
    let token = h.tokens.create(&[Scope::Read], "t", None).unwrap();
    let client = Client::connect(h.addr, &h.trust, &token).await.unwrap();
    // A frame as a future version would send it.
    let mut frame =
        rcc_proto::frame::REMOTE.encode(&rcc_proto::remote::Request::FindMissing { digests: vec![] }).unwrap();
    frame[2] = rcc_proto::frame::REMOTE.version + 1;
    let (mut send, mut recv) = client.open_raw().await.unwrap();
    send.write_all(&frame).await.unwrap();
    send.finish().unwrap();
    match rcc_link::wire::read_frame::<rcc_proto::remote::Response>(&mut recv).await.unwrap() {
        rcc_proto::remote::Response::Refused(RemoteError::Malformed(why)) => {
            assert!(why.contains("version"), "{why}")
        }
        other => panic!("expected a refusal naming the version, got {other:?}"),
    }
}
