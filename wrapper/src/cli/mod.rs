//! rcc's own command line (clap): `rcc stats`, `rcc cache clear`, `rcc config`, `rcc shims install`,
//! `rcc --stop-daemon`, `--help`, `--version`. Each command is a function; errors are printed with what
//! was being attempted. `rcc --help` ends with every `RCC_*` variable, from `rcc_proto::vars`.

mod stats;

use crate::daemon_client;
use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rcc_proto::config::Config;
use rcc_proto::frame::{read_msg, write_msg};
use rcc_proto::ipc::{Request, Response};
use rcc_proto::vars;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `rcc --help` says above the commands.
const ABOUT: &str = "\
rcc — a compiler cache for C, C++ and Rust, local and shared, with a remote build pool

Compiling through rcc:
  rcc <compiler> [args…]        compile through the cache (e.g. rcc gcc -c a.c -o a.o)
  rcc [args…]                   CC=rcc: RCC_CXX (c++) for C++ sources, else RCC_CC (cc)
  <shims>/gcc [args…]           masquerade: a link to rcc named like a compiler, first on PATH
  make:   make CC=\"rcc gcc\" CXX=\"rcc g++\"       or   PATH=<shims>:$PATH make
  CMake:  -DCMAKE_C_COMPILER_LAUNCHER=rcc -DCMAKE_CXX_COMPILER_LAUNCHER=rcc
  Rust:   RUSTC_WRAPPER=rcc CC=\"rcc cc\" cargo build   (set CARGO_INCREMENTAL=0 to cache workspace crates)

Managing rcc (details below):
  rcc stats [--json] [--zero]   show (or zero) the statistics: hits, misses, uncacheable calls, pool use
  rcc cache clear               empty the local cache
  rcc config                    the effective settings and where each came from
  rcc shims install <DIR>       cc, c++, gcc, g++, clang, clang++ links to rcc in DIR
  rcc --stop-daemon             stop the background daemon (rccd)
  rcc --help | --version

Shared cache and remote pool: point RCC_SCHEDULER at an rcc-scheduler, pin its certificate
(RCC_SCHEDULER_FINGERPRINT or RCC_SCHEDULER_CA) and give a token (RCC_TOKEN): hits come from what CI and
colleagues compiled, and with the execute scope misses beyond RCC_LOCAL_JOBS compile on the pool's workers
(`rccd worker`).";

/// rcc's own commands.
#[derive(Parser)]
#[command(name = "rcc", version, about = ABOUT, disable_help_subcommand = true, disable_help_flag = true)]
struct Cli {
    /// Print help (every RCC_* variable included).
    #[arg(short = 'h', long = "help", action = clap::ArgAction::HelpLong)]
    help: Option<bool>,
    /// Stop the background daemon (rccd).
    #[arg(long, exclusive = true)]
    stop_daemon: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the statistics: hits, misses, uncacheable calls by reason, errors, pool use, cache size.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Zero the statistics.
        #[arg(long, short = 'z', conflicts_with = "json")]
        zero: bool,
    },
    /// Manage the local cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Show the effective settings and where each came from.
    Config,
    /// Manage masquerade links (a shims directory first on PATH sends gcc, cc, clang… through rcc).
    Shims {
        #[command(subcommand)]
        command: ShimsCommand,
    },
    /// Print this help.
    Help,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Empty the local cache.
    Clear,
}

#[derive(Subcommand)]
enum ShimsCommand {
    /// Create cc, c++, gcc, g++, clang, clang++ links to rcc in DIR.
    Install {
        /// The shims directory.
        dir: PathBuf,
    },
}

/// Every `RCC_*` variable by group, for the end of `rcc --help`.
fn variables_help() -> String {
    let mut out = String::from(
        "Settings: the config file (~/.config/rcc/config.toml, or RCC_CONFIG) sets the keys in [brackets];\n\
         each variable overrides its key. `rcc config` shows the effective values.\n",
    );
    for group in vars::Group::ALL {
        out.push_str(&format!("\n{}:\n", group.title()));
        for var in vars::ALL.iter().filter(|v| v.group == *group) {
            let key = var.key.map(|k| format!(" [{k}]")).unwrap_or_default();
            out.push_str(&format!("  {:<27}{} (default: {}){key}\n", var.name, var.doc, var.default));
        }
    }
    out
}

/// Runs a CLI command (the arguments after `rcc`) and returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let command = Cli::command().after_long_help(variables_help());
    let argv = std::iter::once(OsString::from("rcc")).chain(args.iter().cloned());
    let cli = match command.try_get_matches_from(argv).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match (cli.stop_daemon, cli.command) {
        (true, _) => stop_daemon(),
        (false, Some(Command::Stats { json, zero })) => stats::run(json, zero),
        (false, Some(Command::Cache { command: CacheCommand::Clear })) => cache_clear(),
        (false, Some(Command::Config)) => show_config(),
        (false, Some(Command::Shims { command: ShimsCommand::Install { dir } })) => install_shims(&dir),
        (false, Some(Command::Help) | None) => {
            let mut command = Cli::command().after_long_help(variables_help());
            print(&format!("{}", command.render_long_help()))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let mut err = std::io::stderr();
            let _ = writeln!(err, "rcc: {e:#}");
            1
        }
    }
}

fn print(text: &str) -> Result<()> {
    std::io::stdout().write_all(text.as_bytes()).context("writing to stdout")
}

fn config() -> Result<Config> {
    rcc_proto::config::load().context("reading the configuration")
}

/// Sends one request to the daemon, starting it if needed.
pub(crate) fn ask(config: &Config, request: &Request) -> Result<Response> {
    let mut stream = daemon_client::connect_or_start(config)
        .with_context(|| format!("reaching the daemon at {}", config.socket.value.display()))?;
    write_msg(&mut stream, request).context("sending to the daemon")?;
    read_msg(&mut stream).context("reading the daemon's answer")
}

fn stop_daemon() -> Result<()> {
    let config = config()?;
    let Ok(mut stream) = daemon_client::connect_existing(&config) else {
        return print("rcc: no daemon running\n");
    };
    write_msg(&mut stream, &Request::Shutdown).context("asking the daemon to stop")?;
    let _ = read_msg::<_, Response>(&mut stream);
    // Wait (bounded) until the socket is gone so that a following command starts a fresh daemon.
    for _ in 0..500 {
        if daemon_client::connect_existing(&config).is_err() {
            return print("rcc: daemon stopped\n");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    bail!("the daemon did not stop within 5 s")
}

fn cache_clear() -> Result<()> {
    match ask(&config()?, &Request::ClearCache)? {
        Response::Ok => print("rcc: cache cleared\n"),
        Response::Error { message } => bail!("clearing the cache: {message}"),
        other => bail!("unexpected answer {other:?}"),
    }
}

fn show_config() -> Result<()> {
    let config = config()?;
    let mut out = format!(
        "config file: {} ({})\n",
        config.config_file.display(),
        if config.config_file.exists() { "present" } else { "absent" }
    );
    let rows = config.rows();
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (name, value, source) in rows {
        out.push_str(&format!("{name:<13}{value:<width$}  ({source})\n"));
    }
    // The variables no config key sets (tests' knobs left out).
    out.push_str("variables without a config key:\n");
    for var in vars::ALL.iter().filter(|v| v.key.is_none() && v.group != vars::Group::Tests) {
        let (value, source) = match std::env::var_os(var.name).filter(|v| !v.is_empty()) {
            Some(v) if var.secret => {
                (rcc_proto::config::mask(&v.to_string_lossy()), format!("environment {}", var.name))
            }
            Some(v) => (v.to_string_lossy().into_owned(), format!("environment {}", var.name)),
            None => (var.default.to_owned(), "default".to_owned()),
        };
        out.push_str(&format!("  {:<20}{value:<width$}  ({source})\n", var.name));
    }
    print(&out)
}

/// The compiler names a shims directory provides.
pub const SHIM_NAMES: &[&str] = &["cc", "c++", "gcc", "g++", "clang", "clang++"];

fn install_shims(dir: &Path) -> Result<()> {
    let me = std::env::current_exe().and_then(|p| p.canonicalize()).context("locating the rcc binary")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in SHIM_NAMES {
        let link: PathBuf = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(_) => std::fs::remove_file(&link).with_context(|| format!("replacing {}", link.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", link.display())),
        }
        std::os::unix::fs::symlink(&me, &link).with_context(|| format!("creating {}", link.display()))?;
    }
    let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    print(&format!(
        "rcc: shims for {} in {}\nput them first on PATH:  export PATH=\"{}:$PATH\"\n",
        SHIM_NAMES.join(", "),
        abs.display(),
        abs.display()
    ))
}
