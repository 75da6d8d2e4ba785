//! Resource limits: what the kernel enforces (rlimits, set in the forked child before it becomes bwrap, so
//! bwrap and the action inherit them), and how an ended action is mapped to the limit that stopped it.
//!
//! cgroup v2 controllers are not available on the workers (no memory/cpu/pids controllers delegated), so
//! the limits are per-process rlimits:
//! - `RLIMIT_CPU` (soft = the limit, hard = one second more): `SIGXCPU`, then `SIGKILL`. Each process has
//!   its own budget; the wall-clock timeout bounds the whole.
//! - `RLIMIT_AS`: allocations beyond it fail with `ENOMEM`; the kernel sends no signal, so the limit is
//!   recognised from the action's stderr (see [`classify`]).
//! - `RLIMIT_FSIZE`: writing a file past it raises `SIGXFSZ` (stdout and stderr are pipes, capped by the
//!   worker instead).
//! - `RLIMIT_NPROC`: counts every task of the *real uid*, and real root is exempt. So it is only set when
//!   the worker is root and drops to [`super::SandboxUser`]; it then counts that uid's tasks, i.e. the
//!   sandbox's (two more are allowed for bwrap's own processes).
//! - `RLIMIT_CORE` = 0: no core dumps in the work directory.

use super::{ExitStatus, LimitHit, Limits, SandboxUser};
use std::io;
use std::os::fd::RawFd;

/// Processes bwrap itself keeps in the sandbox's uid: the outer bwrap and the PID-namespace init.
const BWRAP_PROCESSES: u64 = 2;

/// What the child does between `fork` and `exec` of bwrap, computed before the fork (no allocation after).
#[derive(Debug, Clone)]
pub(super) struct ChildSetup {
    /// File descriptors bwrap must inherit (their close-on-exec flag is cleared).
    pub inherit: Vec<RawFd>,
    /// The user to become, when the worker is root.
    pub drop_to: Option<SandboxUser>,
    /// `(resource, soft, hard)` to set, in order.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
}

impl ChildSetup {
    /// The setup for these limits; `drop_to` is the sandbox user when the worker is root.
    pub fn new(limits: &Limits, drop_to: Option<SandboxUser>, inherit: Vec<RawFd>) -> ChildSetup {
        let cpu = limits.cpu.as_secs() + u64::from(limits.cpu.subsec_nanos() > 0);
        let cpu = cpu.max(1);
        let mut rlimits = vec![
            (libc::RLIMIT_CPU, cpu, cpu + 1),
            (libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
            (libc::RLIMIT_FSIZE, limits.output_bytes, limits.output_bytes),
            (libc::RLIMIT_CORE, 0, 0),
        ];
        if drop_to.is_some() {
            let n = limits.processes.saturating_add(BWRAP_PROCESSES);
            rlimits.push((libc::RLIMIT_NPROC, n, n));
        }
        ChildSetup { inherit, drop_to, rlimits }
    }

    /// Runs in the forked child: lets bwrap inherit the descriptors, drops privileges, sets the limits.
    ///
    /// # Safety
    /// Must only be called between `fork` and `exec` (from `CommandExt::pre_exec`): it changes the
    /// process's credentials and limits. It only makes async-signal-safe system calls and allocates
    /// nothing.
    pub unsafe fn apply(&self) -> io::Result<()> {
        for &fd in &self.inherit {
            // SAFETY: fcntl on a descriptor number has no memory-safety requirement; it is open (the
            // parent owns it until the spawn returned).
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(user) = self.drop_to {
            // Groups first (needs root), then the gid, then the uid (after which nothing can be undone).
            // SAFETY: plain system calls with no pointers but setgroups' null, valid for a count of 0.
            unsafe {
                if libc::setgroups(0, std::ptr::null()) == -1
                    || libc::setresgid(user.gid, user.gid, user.gid) == -1
                    || libc::setresuid(user.uid, user.uid, user.uid) == -1
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        // Limits after the uid change: RLIMIT_NPROC is checked against the new uid's tasks.
        for &(resource, soft, hard) in &self.rlimits {
            let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            // SAFETY: `limit` is a valid rlimit that outlives the call.
            if unsafe { libc::setrlimit(resource, &limit) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Which limit stopped an action, from how it ended. `killed_for` is the limit the worker enforced itself
/// by killing the sandbox (wall time, captured output), which wins.
pub fn classify(status: ExitStatus, stderr: &[u8], killed_for: Option<LimitHit>) -> Option<LimitHit> {
    if killed_for.is_some() {
        return killed_for;
    }
    match status {
        ExitStatus::Exited(0) => None,
        ExitStatus::Signaled(libc::SIGXCPU) => Some(LimitHit::Cpu),
        ExitStatus::Signaled(libc::SIGXFSZ) => Some(LimitHit::Output),
        ExitStatus::Killed => None,
        ExitStatus::Exited(_) | ExitStatus::Signaled(_) => {
            // No signal tells these apart: read the messages programs print for ENOMEM and for a refused
            // fork (EAGAIN), as strerror, gcc, glibc and libstdc++ phrase them.
            let text = String::from_utf8_lossy(stderr).to_ascii_lowercase();
            const MEMORY: &[&str] = &[
                "cannot allocate memory",
                "out of memory",
                "memory exhausted",
                "std::bad_alloc",
                "failed to map segment",
            ];
            const PROCESSES: &[&str] = &["resource temporarily unavailable", "cannot fork", "fork: retry"];
            if MEMORY.iter().any(|m| text.contains(m)) {
                Some(LimitHit::Memory)
            } else if PROCESSES.iter().any(|m| text.contains(m)) {
                Some(LimitHit::Processes)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_time_rounds_up_to_whole_seconds() {
        let limits = Limits { cpu: Duration::from_millis(1500), ..Limits::default() };
        let setup = ChildSetup::new(&limits, None, Vec::new());
        assert!(setup.rlimits.contains(&(libc::RLIMIT_CPU, 2, 3)));
        assert!(!setup.rlimits.iter().any(|r| r.0 == libc::RLIMIT_NPROC), "no NPROC without a uid to drop to");
        let setup = ChildSetup::new(&limits, Some(SandboxUser::default()), Vec::new());
        assert!(setup.rlimits.contains(&(libc::RLIMIT_NPROC, 66, 66)));
    }

    #[test]
    fn limits_are_recognised() {
        let hit = |status, stderr: &str| classify(status, stderr.as_bytes(), None);
        assert_eq!(hit(ExitStatus::Exited(0), "out of memory"), None);
        assert_eq!(hit(ExitStatus::Signaled(libc::SIGXCPU), ""), Some(LimitHit::Cpu));
        assert_eq!(hit(ExitStatus::Signaled(libc::SIGXFSZ), ""), Some(LimitHit::Output));
        assert_eq!(hit(ExitStatus::Exited(1), "malloc: Cannot allocate memory"), Some(LimitHit::Memory));
        assert_eq!(hit(ExitStatus::Exited(4), "cc1: out of memory allocating 65536 bytes"), Some(LimitHit::Memory));
        assert_eq!(hit(ExitStatus::Exited(1), "fork: Resource temporarily unavailable"), Some(LimitHit::Processes));
        assert_eq!(hit(ExitStatus::Exited(1), "error: expected ';'"), None);
        assert_eq!(classify(ExitStatus::Killed, b"", Some(LimitHit::Wall)), Some(LimitHit::Wall));
    }
}
