//! `rcc-scheduler`: serve the shared cache, manage tokens, print the certificate fingerprint.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rcc_proto::config::parse_size;
use rcc_proto::remote::Scope;
use rcc_scheduler::pool::Pool;
use rcc_scheduler::server::{serve, Limits, Service};
use rcc_scheduler::storage::DiskStorage;
use rcc_scheduler::tokens::TokenStore;
use rcc_scheduler::{identity, state};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "rcc-scheduler", version, about = "rcc's shared cache service (QUIC)")]
struct Cli {
    /// State directory: certificate, tokens, storage.
    #[arg(long, global = true, env = rcc_proto::vars::RCC_SCHEDULER_STATE, default_value = "rcc-scheduler-state")]
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
        /// How often pool workers heartbeat, in milliseconds.
        #[arg(long, default_value_t = 5_000)]
        heartbeat_ms: u64,
        /// A worker silent this long is lost and its actions go elsewhere (default: 3 heartbeats).
        #[arg(long)]
        heartbeat_timeout_ms: Option<u64>,
        /// Connections served at once; more are refused.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// The largest blob accepted (uncompressed, e.g. 256M; at most 1G).
        #[arg(long, default_value = "1G")]
        max_blob_size: String,
        /// Durations of similar actions (same compiler and source) needed before a straggler gets a
        /// speculative twin.
        #[arg(long, default_value_t = 5)]
        twin_min_history: usize,
        /// Share of a proven worker's actions also run on a second worker, the answers compared before
        /// the requester gets one (0 disables sampling; at most 1).
        #[arg(long, default_value_t = 0.02)]
        audit_share: f64,
        /// A new worker's first N actions all run on a second worker too; it is proven once N agreed
        /// (0: every worker counts as proven, and only --audit-share audits).
        #[arg(long, default_value_t = 10)]
        audit_first: u32,
        /// How long an audited action waits for its second answer before the audit is given up (a proven
        /// worker's answer is then delivered, a new worker's is not: the requester compiles locally).
        #[arg(long, default_value_t = 10_000)]
        audit_wait_ms: u64,
    },
    /// Show the pool: workers (pool, slots, load, state, last heartbeat), queue depth and desired worker
    /// count per pool, running actions. Asks the scheduler serving this state directory.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Scheduler address (default: the one `serve` recorded in the state directory).
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Set the state directory up (certificate, key, status token) and print the fingerprint clients pin.
    /// `serve` does the same on a fresh directory; running both at once is safe.
    Init,
    /// Print the SHA-256 fingerprint clients pin (RCC_SCHEDULER_FINGERPRINT). Creates nothing.
    Fingerprint,
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Drop shared-cache entries (action results and manifest entries) matching every filter given: by
    /// key, by the label of the token that uploaded them, by namespace, by time window. Asks the scheduler
    /// serving this state directory; prints what was dropped.
    Invalidate {
        /// Only the entry under this key (64 hex digits).
        #[arg(long)]
        key: Option<String>,
        /// Only what the token with this label uploaded.
        #[arg(long)]
        uploader: Option<String>,
        /// Only in this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only what was stored at or after this time: seconds since the epoch, or an age such as 2h or 3d.
        #[arg(long)]
        since: Option<String>,
        /// Only what was stored before this time: seconds since the epoch, or an age such as 30m.
        #[arg(long)]
        until: Option<String>,
        /// Scheduler address (default: the one `serve` recorded in the state directory).
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is stored hashed: this is the only time it is shown).
    Create {
        /// Comma-separated scopes: read, write, execute, worker, admin.
        #[arg(long, default_value = "read")]
        scope: String,
        /// A label to recognise the token by (and to revoke it by).
        #[arg(long, default_value = "")]
        label: String,
        /// How long the token is valid: a number with s, m, h or d (e.g. 30d); default: until revoked.
        #[arg(long)]
        expires: Option<String>,
        /// The namespace its uploads go to (and its reads look in first); default: `default`.
        #[arg(long)]
        namespace: Option<String>,
        /// Comma-separated namespaces it also reads, in order, after its own (e.g. `ci`).
        #[arg(long, default_value = "")]
        read: String,
    },
    /// List the tokens: label, scopes, creation and expiry (never the token: only its hash is stored).
    List,
    /// Revoke every token with this label: new connections with it are refused and open ones closed at once.
    Revoke {
        /// The label given at creation.
        label: String,
    },
}

/// A lifetime such as `30d`, `12h`, `90m` or `45s`.
fn parse_lifetime(text: &str) -> Result<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().with_context(|| format!("`{text}` is not a lifetime such as 30d or 12h"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" | "" => 86_400,
        other => bail!("unknown unit `{other}` in `{text}` (s, m, h or d)"),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

/// Seconds since the epoch as a UTC date and time (`2026-12-02 15:04:05Z`).
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", rest / 3_600, rest % 3_600 / 60, rest % 60)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(rcc_proto::vars::RCC_LOG_LEVEL)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            cert,
            key,
            cache_size,
            heartbeat_ms,
            heartbeat_timeout_ms,
            max_connections,
            max_blob_size,
            twin_min_history,
            audit_share,
            audit_first,
            audit_wait_ms,
        } => {
            if !(0.0..=1.0).contains(&audit_share) {
                bail!("--audit-share is a share between 0 and 1 (e.g. 0.02)");
            }
            let max_blob = parse_size(&max_blob_size).map_err(anyhow::Error::msg)?;
            if max_blob > rcc_proto::remote::MAX_BLOB {
                bail!("--max-blob-size is at most 1G");
            }
            let limits = Limits { max_connections: max_connections.max(1), max_blob };
            let own = state::init(&cli.state)?;
            let identity = match (cert, key) {
                (None, None) => own,
                (cert, key) => identity::load_or_create(&cli.state, cert.as_deref(), key.as_deref())?,
            };
            let fingerprint = identity.fingerprint();
            let endpoint = rcc_link::endpoint::server(identity, listen)?;
            let limit = parse_size(&cache_size).map_err(anyhow::Error::msg)?;
            let storage = Arc::new(DiskStorage::open(&cli.state.join("cas"), limit)?);
            let tokens = Arc::new(TokenStore::open(&cli.state)?);
            let addr = endpoint.local_addr()?;
            rcc_fs::write_atomic(
                &cli.state.join(ADDR_FILE),
                addr.to_string().as_bytes(),
                rcc_fs::WriteOptions::cache(0o644),
            )
            .context("recording the address")?;
            let dispatch = rcc_dispatch::Config {
                heartbeat_timeout: heartbeat_timeout_ms.unwrap_or(3 * heartbeat_ms),
                twin_min_history: twin_min_history.max(1),
                audit_share,
                audit_first,
                audit_wait: audit_wait_ms,
                audit_seed: audit_seed()?,
                ..rcc_dispatch::Config::default()
            };
            if audit_share == 0.0 && audit_first == 0 {
                tracing::warn!("audits disabled: a worker answering with wrong outputs would not be caught");
            }
            let pool = Arc::new(Pool::new(dispatch, std::time::Duration::from_millis(heartbeat_ms.max(1))));
            tracing::info!(%addr, %fingerprint, "rcc-scheduler listening");
            let service = Service::new(storage.clone(), tokens, pool, limits);
            tokio::select! {
                () = serve(endpoint.clone(), service) => {}
                signal = stopped() => {
                    tracing::info!(signal, "stopping: closing connections, flushing the index");
                    endpoint.close(quinn::VarInt::from_u32(0), b"scheduler stopping");
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), endpoint.wait_idle()).await;
                    storage.flush().context("flushing the storage index")?;
                }
            }
        }
        Command::Status { json, addr } => {
            let text = fetch_status(&cli.state, addr).await?;
            if json {
                println!("{text}");
            } else {
                print!("{}", render_status(&text)?);
            }
        }
        Command::Init => println!("{}", state::init(&cli.state)?.fingerprint()),
        Command::Fingerprint => println!("{}", state::identity(&cli.state)?.fingerprint()),
        Command::Invalidate { key, uploader, namespace, since, until, addr } => {
            let key = key
                .map(|k| rcc_proto::Digest::from_hex(&k).with_context(|| format!("`{k}` is not a 64-digit hex key")))
                .transpose()?;
            let filter = rcc_proto::remote::Invalidation {
                namespace,
                key,
                uploader,
                since: since.as_deref().map(parse_moment).transpose()?,
                until: until.as_deref().map(parse_moment).transpose()?,
            };
            if filter.is_empty() {
                bail!("name what to invalidate: --key, --uploader, --namespace, --since or --until");
            }
            let (results, manifest_entries) = admin_client(&cli.state, addr).await?.invalidate(filter).await?;
            println!("invalidated {results} action result(s) and {manifest_entries} manifest entr(y/ies)");
        }
        Command::Token { command: TokenCommand::Create { scope, label, expires, namespace, read } } => {
            let mut scopes = Vec::new();
            for name in scope.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match Scope::parse(name) {
                    Some(s) => scopes.push(s),
                    None => bail!("unknown scope `{name}` (read, write, execute, worker, admin)"),
                }
            }
            let lifetime = expires.as_deref().map(parse_lifetime).transpose()?;
            state::init(&cli.state)?;
            let _lock = state::exclusive(&cli.state)?;
            let namespaces = rcc_scheduler::tokens::Namespaces {
                write: namespace,
                read: read.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            };
            let token = TokenStore::open(&cli.state)?.create_in(&scopes, &label, lifetime, &namespaces)?;
            println!("{token}");
        }
        Command::Token { command: TokenCommand::List } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            println!("{:<24} {:<32} {:<24} {:<21} expires", "label", "scopes", "namespace (reads)", "created");
            for t in TokenStore::open(&cli.state)?.list()? {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.name()).collect();
                let expires = match t.expires {
                    None => "never".to_owned(),
                    Some(at) if at <= now => format!("{} (expired)", utc(at)),
                    Some(at) => utc(at),
                };
                let created = if t.created == 0 { "?".to_owned() } else { utc(t.created) };
                let mut spaces = t.namespace.clone().unwrap_or_else(|| rcc_proto::remote::DEFAULT_NAMESPACE.into());
                if !t.reads.is_empty() {
                    spaces = format!("{spaces} ({})", t.reads.join(","));
                }
                println!("{:<24} {:<32} {:<24} {:<21} {expires}", t.label, scopes.join(","), spaces, created);
            }
        }
        Command::Token { command: TokenCommand::Revoke { label } } => {
            let _lock = state::exclusive(&cli.state)?;
            let removed = TokenStore::open(&cli.state)?.revoke(&label)?;
            println!("revoked {removed} token(s) labelled `{label}`");
        }
    }
    Ok(())
}

/// The secret that draws which actions are audited, so that no worker can tell (fresh at each start).
fn audit_seed() -> Result<u64> {
    use std::io::Read;
    let mut seed = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("reading /dev/urandom for the audit secret")?;
    Ok(u64::from_le_bytes(seed))
}

/// Resolves when SIGTERM or SIGINT arrives, with the signal's name.
async fn stopped() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot catch SIGTERM/SIGINT: they will stop the scheduler without a flush");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Where `serve` records its address in the state directory.
const ADDR_FILE: &str = "listen.addr";

/// Where this machine reaches a scheduler listening on `addr`: a wildcard listen address (`0.0.0.0`, `::`)
/// is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Asks the scheduler serving `state` for the pool's status (JSON), with an admin token kept in `state`.
/// A time given as seconds since the epoch, or as an age before now (`90m`, `2h`, `3d`).
fn parse_moment(text: &str) -> Result<u64> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(secs);
    }
    let age = parse_lifetime(text)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(now.saturating_sub(age.as_secs()))
}

async fn fetch_status(state_dir: &std::path::Path, addr: Option<SocketAddr>) -> Result<String> {
    Ok(admin_client(state_dir, addr).await?.status().await?)
}

/// A connection to the scheduler serving `state_dir`, with the state directory's own admin token.
async fn admin_client(state_dir: &std::path::Path, addr: Option<SocketAddr>) -> Result<rcc_link::Client> {
    let token = state::status_token(state_dir)?;
    let identity = state::identity(state_dir)?;
    let addr = match addr {
        Some(a) => a,
        None => std::fs::read_to_string(state_dir.join(ADDR_FILE))
            .context("no scheduler address recorded in the state directory: is `rcc-scheduler serve` running? (or pass --addr)")?
            .trim()
            .parse()
            .map(reachable)
            .context("parsing the recorded address")?,
    };
    let trust = rcc_link::tls::Trust::Fingerprint(identity.fingerprint());
    rcc_link::Client::connect(addr, &trust, &token)
        .await
        .with_context(|| format!("connecting to the scheduler at {addr}"))
}

/// The status as tables: workers, then pools.
fn render_status(json: &str) -> Result<String> {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let v: serde_json::Value = serde_json::from_str(json).context("decoding the status")?;
    let now = v["now"].as_u64().unwrap_or(0);
    let mut out = String::from("workers:\n");
    out.push_str(&format!(
        "{:>4}  {:<20} {:<16} {:>5} {:>7} {:>6}  {:<12} {:>14}  {:<9} {:>10}  {}\n",
        "id",
        "name",
        "pool",
        "slots",
        "running",
        "load",
        "state",
        "heartbeat ago",
        "audits",
        "mismatches",
        "quarantined for"
    ));
    for w in v["workers"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let slots = w["slots"].as_u64().unwrap_or(0);
        let busy = w["running"].as_u64().unwrap_or(0) + w["external_load"].as_u64().unwrap_or(0);
        let load = if slots > 0 { busy as f64 / slots as f64 } else { 0.0 };
        let ago = now.saturating_sub(w["last_heartbeat"].as_u64().unwrap_or(now));
        let audits = if w["proven"] == true {
            "proven".to_owned()
        } else {
            format!("{}/{}", n(&w["audits_passed"]), n(&w["audits_required"]))
        };
        out.push_str(&format!(
            "{:>4}  {:<20} {:<16} {:>5} {:>7} {:>5.0}%  {:<12} {:>12.1} s  {:<9} {:>10}  {}\n",
            n(&w["id"]),
            w["name"].as_str().unwrap_or("?"),
            w["pool"].as_str().unwrap_or("?"),
            slots,
            n(&w["running"]),
            load * 100.0,
            w["state"].as_str().unwrap_or("?"),
            ago as f64 / 1000.0,
            audits,
            n(&w["audit_mismatches"]),
            w["quarantine_reason"]["kind"].as_str().unwrap_or("")
        ));
    }
    out.push_str("pools:\n");
    out.push_str(&format!(
        "{:<16} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8}  audits\n",
        "pool", "queued", "running", "workers", "slots", "idle", "desired"
    ));
    for p in v["pools"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let audits = if p["can_audit"] == true { "yes" } else { "no: a second worker is needed" };
        out.push_str(&format!(
            "{:<16} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8}  {audits}\n",
            p["pool"].as_str().unwrap_or("?"),
            n(&p["queued"]),
            n(&p["running"]),
            n(&p["workers"]),
            n(&p["slots"]),
            n(&p["idle_workers"]),
            n(&p["desired_workers"])
        ));
    }
    out.push_str(&format!("running actions: {}\n", v["running"].as_array().map_or(0, Vec::len)));
    let c = &v["counters"];
    out.push_str(&format!(
        "since start: {} submitted ({} attached to one in flight), {} assigned, {} speculative twins ({} won), \
         {} delivered\n",
        n(&c["submitted"]),
        n(&c["attached"]),
        n(&c["assigned"]),
        n(&c["twins"]),
        n(&c["twins_won"]),
        n(&c["delivered"])
    ));
    let a = &v["action_cache"];
    out.push_str(&format!(
        "action cache: {} different results kept out (first writer wins), {} replaced by an admin, {} invalidated\n",
        n(&a["kept_first_writer"]),
        n(&a["replaced_by_admin"]),
        n(&a["invalidated"])
    ));
    let audit = &v["audit"];
    out.push_str(&format!(
        "audits (first {} actions of a new worker, {:.1} % of the others): {} run, {} passed, {} mismatched, \
         {} skipped (no second worker), {} timed out; {} cached results of convicted workers dropped\n",
        n(&audit["first"]),
        audit["share"].as_f64().unwrap_or(0.0) * 100.0,
        n(&c["audits"]),
        n(&c["audits_passed"]),
        n(&c["audits_mismatched"]),
        n(&c["audits_skipped"]),
        n(&c["audits_timed_out"]),
        n(&audit["results_dropped"])
    ));
    Ok(out)
}
