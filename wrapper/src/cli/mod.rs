//! rcc's own command line: `rcc stats`, `rcc cache clear`, `rcc config`, `rcc shims install`,
//! `rcc --stop-daemon`, `--help`, `--version`. Each command is a function returning an exit code; errors
//! are printed with what was being attempted.

mod stats;

use crate::daemon_client;
use anyhow::{anyhow, bail, Context, Result};
use rcc_proto::config::Config;
use rcc_proto::frame::{read_msg, write_msg};
use rcc_proto::ipc::{Request, Response};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

const HELP: &str = "\
rcc — a compiler cache for C, C++ (and soon Rust)

Usage:
  rcc <compiler> [args…]        compile through the cache (e.g. rcc gcc -c a.c -o a.o)
  rcc [args…]                   compile with the default compiler: RCC_CXX (c++) for C++ sources, else RCC_CC (cc)
  <shims>/gcc [args…]           masquerade: a link to rcc named like a compiler, first on PATH
  rcc stats [--json] [--zero]   show (or zero) the statistics
  rcc cache clear               empty the local cache
  rcc config                    show the effective settings and where each came from
  rcc shims install <DIR>       create cc, c++, gcc, g++, clang, clang++ links to rcc in DIR
  rcc --stop-daemon             stop the background daemon (rccd)
  rcc --help | --version

Build systems:
  make:   make CC=\"rcc gcc\" CXX=\"rcc g++\"       or   PATH=<shims>:$PATH make
  CMake:  -DCMAKE_C_COMPILER_LAUNCHER=rcc -DCMAKE_CXX_COMPILER_LAUNCHER=rcc

Settings (config file ~/.config/rcc/config.toml, or RCC_CONFIG; each overridden by its variable):
  RCC_DIR  RCC_CACHE_SIZE  RCC_SOCKET  RCC_IDLE_TIMEOUT  RCC_LOG  RCC_DIRECT  RCC_DEPEND  RCC_DISABLE
  RCC_CC  RCC_CXX  RCC_DAEMON
";

/// Runs a CLI command (the arguments after `rcc`) and returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        [] | ["help"] | ["--help"] | ["-h"] => print(HELP),
        ["--version"] | ["-V"] => print(&format!("rcc {}\n", env!("CARGO_PKG_VERSION"))),
        ["--stop-daemon"] => stop_daemon(),
        ["stats", rest @ ..] => stats::run(rest),
        ["cache", "clear"] => cache_clear(),
        ["config"] => show_config(),
        ["shims", "install", dir] => install_shims(Path::new(dir)),
        _ => Err(anyhow!("unknown command `{}`; see `rcc --help`", words.join(" "))),
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
