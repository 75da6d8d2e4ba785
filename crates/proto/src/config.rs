//! Effective configuration: defaults, then the TOML config file, then `RCC_*` variables; each value remembers
//! where it came from so `rcc config` can say so.
//!
//! [`Config::resolve`] does no I/O: the caller reads the file and passes the environment lookup in.
//! [`load`] is the one function that does, for the binaries.

use crate::vars;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built-in default.
    Default,
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env(v) => write!(f, "environment {v}"),
        }
    }
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Setting { value, source: Source::Default }
    }
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Path of the config file consulted (it may not exist).
    pub config_file: PathBuf,
    /// Cache directory.
    pub dir: Setting<PathBuf>,
    /// Store size limit in bytes.
    pub cache_size: Setting<u64>,
    /// Daemon socket path.
    pub socket: Setting<PathBuf>,
    /// Daemon idle timeout in seconds.
    pub idle_timeout: Setting<u64>,
    /// Log file, if logging is on.
    pub log: Setting<Option<PathBuf>>,
    /// Direct mode on.
    pub direct: Setting<bool>,
    /// Depend mode on.
    pub depend: Setting<bool>,
    /// Cache bypassed.
    pub disable: Setting<bool>,
    /// Default C compiler for `CC=rcc`.
    pub cc: Setting<String>,
    /// Default C++ compiler for `CXX=rcc`.
    pub cxx: Setting<String>,
    /// Shared-cache scheduler address (`host:port`), if any.
    pub scheduler: Setting<Option<String>>,
    /// Pinned SHA-256 fingerprint of the scheduler's certificate.
    pub scheduler_fingerprint: Setting<Option<String>>,
    /// CA file the scheduler's certificate must chain to.
    pub scheduler_ca: Setting<Option<PathBuf>>,
    /// Bearer token for the scheduler.
    pub token: Setting<Option<String>>,
    /// Never write to the shared cache.
    pub read_only: Setting<bool>,
    /// Longest wait for the scheduler on the compile path, in milliseconds.
    pub remote_timeout_ms: Setting<u64>,
    /// Cache misses compiled locally at once; beyond this they go to the pool when the scheduler offers
    /// remote execution (0: every miss that can run remotely does).
    pub local_jobs: Setting<u64>,
    /// Paths under this directory are made relative to the working directory, so checkouts in different
    /// places share entries.
    pub base_dir: Setting<Option<PathBuf>>,
}

/// The config file's shape. Unknown keys are an error, so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    dir: Option<PathBuf>,
    cache_size: Option<SizeValue>,
    socket: Option<PathBuf>,
    idle_timeout: Option<u64>,
    log: Option<PathBuf>,
    direct: Option<bool>,
    depend: Option<bool>,
    disable: Option<bool>,
    cc: Option<String>,
    cxx: Option<String>,
    scheduler: Option<String>,
    scheduler_fingerprint: Option<String>,
    scheduler_ca: Option<PathBuf>,
    token: Option<String>,
    read_only: Option<bool>,
    remote_timeout_ms: Option<u64>,
    local_jobs: Option<u64>,
    base_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// A setting that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No cache directory: the user has no `HOME` (nor `XDG_CACHE_HOME`, nor `XDG_RUNTIME_DIR`) and
    /// `RCC_DIR` is not set.
    #[error("no cache directory: set HOME, XDG_CACHE_HOME, XDG_RUNTIME_DIR or RCC_DIR (rcc never uses a shared one like /tmp)")]
    NoDirectory,
    /// The config file is not valid TOML of the expected shape.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value (from the file or a variable) is malformed.
    #[error("{origin}: {message}")]
    Value {
        /// Where the value came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Default store size limit: 10 GiB.
pub const DEFAULT_CACHE_SIZE: u64 = 10 << 30;
/// Default daemon idle timeout: 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: u64 = 600;

impl Config {
    /// Resolves the effective settings.
    ///
    /// `file` is the config file's path and, if it exists, its text; `env` looks a variable up;
    /// `default_dir` is the platform cache directory for rcc.
    pub fn resolve(
        file: (&Path, Option<&str>),
        env: &dyn Fn(&str) -> Option<String>,
        default_dir: PathBuf,
    ) -> Result<Config, ConfigError> {
        let (file_path, file_text) = file;
        let parsed: FileConfig = match file_text {
            Some(text) => toml::from_str(text)
                .map_err(|e| ConfigError::File { path: file_path.to_owned(), message: e.to_string() })?,
            None => FileConfig::default(),
        };
        let from_file = || Source::File(file_path.to_owned());
        let env = |name: &'static str| env(name).filter(|v| !v.is_empty()).map(|v| (name, v));

        fn pick<T>(
            default: T,
            file: Option<T>,
            file_src: impl Fn() -> Source,
            env: Option<(&'static str, String)>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Setting<T>, ConfigError> {
            let mut s = Setting::default(default);
            if let Some(v) = file {
                s = Setting { value: v, source: file_src() };
            }
            if let Some((name, raw)) = env {
                let value = parse(&raw)
                    .map_err(|message| ConfigError::Value { origin: format!("environment {name}={raw}"), message })?;
                s = Setting { value, source: Source::Env(name) };
            }
            Ok(s)
        }

        let file_size = match parsed.cache_size {
            None => None,
            Some(SizeValue::Bytes(b)) => Some(b),
            Some(SizeValue::Text(t)) => Some(parse_size(&t).map_err(|message| ConfigError::Value {
                origin: format!("config file {} cache_size", file_path.display()),
                message,
            })?),
        };

        let dir = pick(default_dir, parsed.dir, from_file, env(vars::RCC_DIR), |s| Ok(PathBuf::from(s)))?;
        // The version is in the name: after an upgrade the new wrapper starts its own daemon instead of
        // talking to an old one it cannot understand (both may share the store).
        let default_socket = dir.value.join(concat!("rccd-", env!("CARGO_PKG_VERSION"), ".sock"));
        Ok(Config {
            config_file: file_path.to_owned(),
            cache_size: pick(DEFAULT_CACHE_SIZE, file_size, from_file, env(vars::RCC_CACHE_SIZE), parse_size)?,
            socket: pick(default_socket, parsed.socket, from_file, env(vars::RCC_SOCKET), |s| Ok(PathBuf::from(s)))?,
            idle_timeout: pick(
                DEFAULT_IDLE_TIMEOUT,
                parsed.idle_timeout,
                from_file,
                env(vars::RCC_IDLE_TIMEOUT),
                |s| s.trim().parse::<u64>().map_err(|e| format!("not a number of seconds: {e}")),
            )?,
            log: {
                let d = dir.value.clone();
                pick(None, parsed.log.map(Some), from_file, env(vars::RCC_LOG), move |s| {
                    Ok(match s {
                        "0" | "false" | "off" => None,
                        "1" | "true" | "on" => Some(d.join("rcc.log")),
                        path => Some(PathBuf::from(path)),
                    })
                })?
            },
            direct: pick(true, parsed.direct, from_file, env(vars::RCC_DIRECT), parse_bool)?,
            depend: pick(true, parsed.depend, from_file, env(vars::RCC_DEPEND), parse_bool)?,
            disable: pick(false, parsed.disable, from_file, env(vars::RCC_DISABLE), parse_bool)?,
            cc: pick("cc".to_owned(), parsed.cc, from_file, env(vars::RCC_CC), |s| Ok(s.to_owned()))?,
            cxx: pick("c++".to_owned(), parsed.cxx, from_file, env(vars::RCC_CXX), |s| Ok(s.to_owned()))?,
            scheduler: pick(None, parsed.scheduler.map(Some), from_file, env(vars::RCC_SCHEDULER), |s| {
                Ok(Some(s.to_owned()))
            })?,
            scheduler_fingerprint: pick(
                None,
                parsed.scheduler_fingerprint.map(Some),
                from_file,
                env(vars::RCC_SCHEDULER_FINGERPRINT),
                |s| Ok(Some(s.trim().to_owned())),
            )?,
            scheduler_ca: pick(None, parsed.scheduler_ca.map(Some), from_file, env(vars::RCC_SCHEDULER_CA), |s| {
                Ok(Some(PathBuf::from(s)))
            })?,
            token: pick(None, parsed.token.map(Some), from_file, env(vars::RCC_TOKEN), |s| {
                Ok(Some(s.trim().to_owned()))
            })?,
            read_only: pick(false, parsed.read_only, from_file, env(vars::RCC_READ_ONLY), parse_bool)?,
            base_dir: pick(None, parsed.base_dir.map(Some), from_file, env(vars::RCC_BASE_DIR), |s| {
                Ok(Some(PathBuf::from(s)))
            })?,
            remote_timeout_ms: pick(
                2000,
                parsed.remote_timeout_ms,
                from_file,
                env(vars::RCC_REMOTE_TIMEOUT_MS),
                |s| s.trim().parse::<u64>().map_err(|e| format!("not a number of milliseconds: {e}")),
            )?,
            local_jobs: pick(
                std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
                parsed.local_jobs,
                from_file,
                env(vars::RCC_LOCAL_JOBS),
                |s| s.trim().parse::<u64>().map_err(|e| format!("not a number of jobs: {e}")),
            )?,
            dir,
        })
    }

    /// The settings as `(name, value, source)` rows, in the order `rcc config` prints them.
    pub fn rows(&self) -> Vec<(&'static str, String, String)> {
        let path = |p: &Path| p.display().to_string();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        vec![
            ("dir", path(&self.dir.value), self.dir.source.to_string()),
            ("cache_size", format_size(self.cache_size.value), self.cache_size.source.to_string()),
            ("socket", path(&self.socket.value), self.socket.source.to_string()),
            ("idle_timeout", format!("{}s", self.idle_timeout.value), self.idle_timeout.source.to_string()),
            ("log", self.log.value.as_deref().map(path).unwrap_or_else(|| "off".into()), self.log.source.to_string()),
            ("direct", self.direct.value.to_string(), self.direct.source.to_string()),
            ("depend", self.depend.value.to_string(), self.depend.source.to_string()),
            ("disable", self.disable.value.to_string(), self.disable.source.to_string()),
            ("cc", self.cc.value.clone(), self.cc.source.to_string()),
            ("cxx", self.cxx.value.clone(), self.cxx.source.to_string()),
            ("scheduler", opt(&self.scheduler.value), self.scheduler.source.to_string()),
            (
                "scheduler_fingerprint",
                opt(&self.scheduler_fingerprint.value),
                self.scheduler_fingerprint.source.to_string(),
            ),
            (
                "scheduler_ca",
                self.scheduler_ca.value.as_deref().map(path).unwrap_or_else(|| "none".into()),
                self.scheduler_ca.source.to_string(),
            ),
            // Never shown in full: enough to tell tokens apart.
            (
                "token",
                self.token.value.as_deref().map(mask).unwrap_or_else(|| "none".into()),
                self.token.source.to_string(),
            ),
            ("read_only", self.read_only.value.to_string(), self.read_only.source.to_string()),
            (
                "base_dir",
                self.base_dir.value.as_deref().map(path).unwrap_or_else(|| "none".into()),
                self.base_dir.source.to_string(),
            ),
            (
                "remote_timeout",
                format!("{}ms", self.remote_timeout_ms.value),
                self.remote_timeout_ms.source.to_string(),
            ),
            ("local_jobs", self.local_jobs.value.to_string(), self.local_jobs.source.to_string()),
        ]
    }
}

/// Path of the config file: `RCC_CONFIG`, else `<user config dir>/rcc/config.toml`; `None` when the user
/// has no config directory (no `HOME`): then no file is read — never one in a shared place like `/tmp`,
/// where another user could have put it.
pub fn config_path() -> Option<PathBuf> {
    match std::env::var_os(vars::RCC_CONFIG) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => user_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("rcc").join("config.toml")),
    }
}

/// The default cache directory: `<user cache dir>/rcc`, else `$XDG_RUNTIME_DIR/rcc` (private to the user
/// by the standard); `None` when the user has neither. Never a shared place like `/tmp`.
fn default_dir() -> Option<PathBuf> {
    user_dir("XDG_CACHE_HOME", ".cache").or_else(|| absolute_var("XDG_RUNTIME_DIR")).map(|d| d.join("rcc"))
}

/// The XDG base directory `var` (when absolute), else `$HOME/<under_home>`; `None` without either.
///
/// Read from the environment only: the `dirs` crate falls back to the passwd database (`getpwuid_r`),
/// which crashes rcc's statically linked binaries for a uid with no passwd entry (seen: SIGSEGV under
/// `setpriv --reuid=54321` with no `HOME`). A user with no `HOME` gets no default directory instead.
fn user_dir(var: &str, under_home: &str) -> Option<PathBuf> {
    absolute_var(var).or_else(|| absolute_var("HOME").map(|home| home.join(under_home)))
}

/// The variable's value when it is an absolute path (the XDG rule: relative values are ignored).
fn absolute_var(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute())
}

/// Resolves this process's settings: reads the config file (if present) and the environment.
/// [`ConfigError::NoDirectory`] when no cache directory is known (no `HOME`, no `XDG_RUNTIME_DIR`, no
/// `RCC_DIR`): the wrapper then compiles without the cache.
pub fn load() -> Result<Config, ConfigError> {
    let path = config_path();
    let text = path.as_deref().and_then(|p| std::fs::read_to_string(p).ok());
    let shown_path = path.clone().unwrap_or_else(|| PathBuf::from("(no config directory)"));
    let default = default_dir();
    let config = Config::resolve(
        (&shown_path, text.as_deref()),
        &|name| std::env::var(name).ok(),
        default.clone().unwrap_or_default(),
    )?;
    if default.is_none() && config.dir.source == Source::Default {
        return Err(ConfigError::NoDirectory);
    }
    Ok(config)
}

/// A token as `rcc config` shows it: the first 8 characters, the rest masked.
pub fn mask(token: &str) -> String {
    let shown: String = token.chars().take(8).collect();
    format!("{shown}… (masked)")
}

/// Parses `10G`, `512M`, `64K`, `1.5G`, `4096` (bytes); suffixes are binary (KiB, MiB, GiB, TiB).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let t = t.strip_suffix(['i', 'I']).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("`{text}` is not a size like 10G, 500M or 4096"))?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("`{text}` is not a size like 10G, 500M or 4096"));
    }
    Ok((n * mult as f64) as u64)
}

/// Formats a byte count for people (`1.5 GiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (use 1/0, true/false)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::resolve((Path::new("/cfg/config.toml"), file), &|k| env.get(k).cloned(), "/cache/rcc".into())
    }

    #[test]
    fn defaults() {
        let c = resolve(None, &[]).unwrap();
        assert_eq!(c.dir.value, PathBuf::from("/cache/rcc"));
        assert_eq!(c.socket.value, PathBuf::from(concat!("/cache/rcc/rccd-", env!("CARGO_PKG_VERSION"), ".sock")));
        assert_eq!(c.cache_size.value, DEFAULT_CACHE_SIZE);
        assert_eq!(c.cache_size.source, Source::Default);
    }

    #[test]
    fn env_overrides_file_overrides_default() {
        let c = resolve(Some("cache_size = \"1G\"\ndir = \"/f\""), &[("RCC_DIR", "/e")]).unwrap();
        assert_eq!(c.cache_size.value, 1 << 30);
        assert_eq!(c.cache_size.source, Source::File("/cfg/config.toml".into()));
        assert_eq!(c.dir.value, PathBuf::from("/e"));
        assert_eq!(c.dir.source, Source::Env("RCC_DIR"));
        assert!(c.socket.value.starts_with("/e/"));
    }

    #[test]
    fn bad_values_are_named() {
        let e = resolve(None, &[("RCC_CACHE_SIZE", "lots")]).unwrap_err();
        assert!(e.to_string().contains("RCC_CACHE_SIZE"), "{e}");
        let e = resolve(Some("cache_sise = 3"), &[]).unwrap_err();
        assert!(e.to_string().contains("cache_sise"), "{e}");
    }

    #[test]
    fn token_is_masked_in_rows() {
        let c = resolve(None, &[("RCC_TOKEN", "rcc_0123456789abcdef")]).unwrap();
        let row = c.rows().into_iter().find(|r| r.0 == "token").unwrap();
        assert!(!row.1.contains("89abcdef"), "{}", row.1);
        assert_eq!(c.token.value.as_deref(), Some("rcc_0123456789abcdef"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("-1").is_err());
        assert_eq!(format_size(1536), "1.5 KiB");
    }
}
