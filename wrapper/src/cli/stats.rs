//! `rcc stats [--json] [--zero]`.

use super::{ask, config, print};
use anyhow::{bail, Context, Result};
use rcc_proto::config::format_size;
use rcc_proto::ipc::{Request, Response};
use rcc_proto::stats::StatsSnapshot;

/// Runs `rcc stats [--json | --zero]`.
pub fn run(json: bool, zero: bool) -> Result<()> {
    let config = config()?;
    if zero {
        return match ask(&config, &Request::ZeroStats)? {
            Response::Ok => print("rcc: statistics zeroed\n"),
            other => bail!("unexpected answer {other:?}"),
        };
    }
    let snapshot = match ask(&config, &Request::Stats)? {
        Response::Stats(s) => *s,
        other => bail!("unexpected answer {other:?}"),
    };
    if json {
        let text = serde_json::to_string_pretty(&snapshot).context("encoding JSON")?;
        print(&format!("{text}\n"))
    } else {
        print(&render(&snapshot))
    }
}

/// The human-readable table.
pub fn render(s: &StatsSnapshot) -> String {
    let c = &s.counters;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<34}{v:>14}\n"));
    line("cache hits (direct)", c.hits_direct.to_string());
    line("cache hits (preprocessor)", c.hits_preprocessor.to_string());
    line("cache hits (shared cache)", c.hits_remote.to_string());
    line("cache misses", c.misses.to_string());
    line("results stored", c.stored.to_string());
    line("hit rate", c.hit_rate().map_or_else(|| "-".to_owned(), |r| format!("{:.1} %", r * 100.0)));
    let uncacheable: u64 = c.uncacheable.values().sum();
    line("uncacheable calls", uncacheable.to_string());
    for (reason, n) in &c.uncacheable {
        line(&format!("  {reason}"), n.to_string());
    }
    let errors: u64 = c.errors.values().sum();
    line("errors (fell back)", errors.to_string());
    for (kind, n) in &c.errors {
        line(&format!("  {kind}"), n.to_string());
    }
    line("results uploaded", c.uploads.to_string());
    line("shared cache downloaded", format_size(c.bytes_down));
    line("shared cache uploaded", format_size(c.bytes_up));
    line("shared cache errors (fell back)", c.remote_errors.to_string());
    line("compile time saved", format!("{:.1} s", c.saved_millis as f64 / 1000.0));
    line("compile time of misses", format!("{:.1} s", c.miss_millis as f64 / 1000.0));
    if c.remote_compiles + c.remote_fallbacks.values().sum::<u64>() > 0 {
        line("compiled on the remote pool", c.remote_compiles.to_string());
        line("  their compile time", format!("{:.1} s", c.remote_millis as f64 / 1000.0));
        line("kept local (pool unavailable)", c.remote_fallbacks.values().sum::<u64>().to_string());
        for (reason, n) in &c.remote_fallbacks {
            line(&format!("  {reason}"), n.to_string());
        }
    }
    let r = &c.rust;
    if r.hits + r.hits_remote + r.misses + r.uncacheable.values().sum::<u64>() > 0 {
        line("rust: cache hits", r.hits.to_string());
        line("rust: cache hits (shared cache)", r.hits_remote.to_string());
        line("rust: cache misses", r.misses.to_string());
        line("rust: results stored", r.stored.to_string());
        line("rust: hit rate", r.hit_rate().map_or_else(|| "-".to_owned(), |x| format!("{:.1} %", x * 100.0)));
        line("rust: uncacheable calls", r.uncacheable.values().sum::<u64>().to_string());
        for (reason, n) in &r.uncacheable {
            line(&format!("  {reason}"), n.to_string());
        }
        line("rust: compile time saved", format!("{:.1} s", r.saved_millis as f64 / 1000.0));
    }
    line("cache size", format_size(s.cache_bytes));
    line("cache entries", s.cache_entries.to_string());
    line("cache size limit", format_size(s.cache_limit));
    out
}
