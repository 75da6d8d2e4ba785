//! Loads the effective configuration (defaults, config file, `RCC_*` variables) for this process.

use rcc_proto::config::{Config, ConfigError};
use rcc_proto::vars;
use std::path::PathBuf;

/// Path of the config file: `RCC_CONFIG`, else `<config dir>/rcc/config.toml`.
pub fn config_path() -> PathBuf {
    match std::env::var_os(vars::RCC_CONFIG) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dirs::config_dir().unwrap_or_else(|| PathBuf::from("/tmp")).join("rcc").join("config.toml"),
    }
}

/// Reads the config file (if any) and the environment.
pub fn load() -> Result<Config, ConfigError> {
    let path = config_path();
    let text = std::fs::read_to_string(&path).ok();
    let default_dir = dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("rcc");
    Config::resolve((&path, text.as_deref()), &|name| std::env::var(name).ok(), default_dir)
}
