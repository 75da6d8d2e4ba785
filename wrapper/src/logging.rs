//! The wrapper's diagnostics: one line appended to the `RCC_LOG` file, never to the compiler's output.

use rcc_proto::config::Config;
use std::io::Write;

/// Appends a line to the log file when logging is on; failures to log are ignored.
pub fn log(config: Option<&Config>, message: &str) {
    let Some(path) = config.and_then(|c| c.log.value.as_ref()) else { return };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "rcc[{}]: {message}", std::process::id());
    }
}
