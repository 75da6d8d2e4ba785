//! Statistics that outlive the daemon: counters accumulate in memory and are merged into
//! `<dir>/stats.json` under a file lock, so several daemons on one directory add up rather than overwrite.

use rcc_proto::stats::Counters;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

/// The daemon's statistics.
pub struct StatsBook {
    path: PathBuf,
    pending: Mutex<Counters>,
}

impl StatsBook {
    /// Statistics persisted at `path`.
    pub fn new(path: PathBuf) -> StatsBook {
        StatsBook { path, pending: Mutex::new(Counters::default()) }
    }

    /// Updates the in-memory counters.
    pub fn record(&self, update: impl FnOnce(&mut Counters)) {
        update(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Merges pending counts into the file.
    pub fn flush(&self) -> io::Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if pending == Counters::default() {
            return Ok(());
        }
        let result = self.update_file(|c| c.add(&pending));
        if result.is_err() {
            // Keep the counts for the next try.
            self.record(|c| c.add(&pending));
        }
        result
    }

    /// The persisted counters plus pending ones.
    pub fn snapshot(&self) -> io::Result<Counters> {
        self.flush()?;
        let mut total = Counters::default();
        self.update_file(|c| total = c.clone())?;
        Ok(total)
    }

    /// Zeroes everything.
    pub fn zero(&self) -> io::Result<()> {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Counters::default();
        self.update_file(|c| *c = Counters::default())
    }

    fn update_file(&self, change: impl FnOnce(&mut Counters)) -> io::Result<()> {
        let lock = File::options().create(true).truncate(false).write(true).open(self.path.with_extension("lock"))?;
        lock.lock()?;
        // A damaged statistics file is replaced rather than failing every flush.
        let mut counters: Counters =
            fs::read(&self.path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let before = counters.clone();
        change(&mut counters);
        if counters != before || !self.path.exists() {
            let text = serde_json::to_vec_pretty(&counters).map_err(io::Error::other)?;
            rcc_fs::write_atomic(&self.path, &text, rcc_fs::WriteOptions::cache(0o644))?;
        }
        Ok(())
    }
}
