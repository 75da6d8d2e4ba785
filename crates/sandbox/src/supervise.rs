//! The worker's side of a sandboxed run: prepare, spawn bwrap, capture output under a cap, enforce the
//! wall-clock timeout, collect the status.
//!
//! The sandbox is watched through a pidfd, so waiting with a timeout is one `poll` and killing cannot hit
//! a recycled pid. Killing bwrap kills everything in the sandbox: with `--die-with-parent` the PID
//! namespace's init gets `SIGKILL` when bwrap dies, and the kernel then kills every process of the
//! namespace.

use super::bwrap::{self, Fds};
use super::limits::{classify, ChildSetup};
use super::{
    seccomp, CancelFlag, ExitStatus, LimitHit, SandboxError, SandboxOutcome, SandboxSpec, SandboxUser, CANCEL_POLL,
};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the spec and waits for it (see [`super::run`], which adds logging).
pub fn run(spec: &SandboxSpec) -> Result<SandboxOutcome, SandboxError> {
    let os = |what| move |source| SandboxError::Os { what, source };
    let bwrap = bwrap::find()?;
    // SAFETY: geteuid cannot fail and touches no memory.
    let drop_to = (unsafe { libc::geteuid() } == 0).then_some(spec.user);
    if let Some(user) = drop_to {
        hand_over(&spec.work_dir.host, user)?;
    }
    let program = seccomp::program_bytes()?;
    let seccomp_file = memfd_with(program).map_err(os("writing the seccomp program to a memfd"))?;
    let (status_read, status_write) = pipe().map_err(os("creating the status pipe"))?;
    let fds = Fds { seccomp: seccomp_file.as_raw_fd(), status: status_write.as_raw_fd() };
    let mut command = bwrap::command(&bwrap, spec, &fds)?;
    let setup = ChildSetup::new(&spec.limits, drop_to, vec![fds.seccomp, fds.status]);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: `apply` runs between fork and exec, only makes async-signal-safe calls and allocates nothing
    // (`setup` was built before the fork and is moved into the closure).
    unsafe {
        command.pre_exec(move || setup.apply());
    }

    let started = Instant::now();
    let mut child = command.spawn().map_err(os("starting bwrap"))?;
    // Only bwrap (and what it hands them to) may hold these now.
    drop(status_write);
    drop(seccomp_file);
    let pidfd = match pidfd_open(child.id()) {
        Ok(fd) => Arc::new(fd),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::Os { what: "opening a pidfd for bwrap", source: e });
        }
    };
    let overflowed = Arc::new(AtomicBool::new(false));
    let cap = spec.limits.output_bytes;
    let stdout = capture(child.stdout.take(), cap, &pidfd, &overflowed);
    let stderr = capture(child.stderr.take(), cap, &pidfd, &overflowed);

    let ended = wait_until(&pidfd, started + spec.limits.wall, &spec.cancel).map_err(os("waiting for bwrap"))?;
    let (timed_out, cancelled) = (ended == Wait::TimedOut, ended == Wait::Cancelled);
    if timed_out || cancelled {
        kill(&pidfd);
    }
    let raw = child.wait().map_err(os("reaping bwrap"))?;
    let wall = started.elapsed();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let mut status_text = Vec::new();
    File::from(status_read).read_to_end(&mut status_text).map_err(os("reading bwrap's status"))?;
    let action_exit = exit_code(&status_text);

    let killed_for = if cancelled {
        Some(LimitHit::Cancelled)
    } else if timed_out {
        Some(LimitHit::Wall)
    } else if overflowed.load(Ordering::SeqCst) {
        Some(LimitHit::Output)
    } else {
        None
    };
    let status = match action_exit {
        Some(code) if code > 128 && code <= 128 + 64 => ExitStatus::Signaled(code - 128),
        Some(code) => ExitStatus::Exited(code),
        None if killed_for.is_some() => ExitStatus::Killed,
        // bwrap ended without the action's exit code: it failed before or at `execve` of the action.
        None => {
            return Err(SandboxError::Setup {
                action: spec.name.clone(),
                code: raw.code(),
                stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
            })
        }
    };
    let limit = classify(status, &stderr, killed_for);
    Ok(SandboxOutcome { status, stdout, stderr, limit, wall })
}

/// Gives the work directory (recursively) to the sandbox user, so that it can write its outputs.
fn hand_over(dir: &Path, user: SandboxUser) -> Result<(), SandboxError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| SandboxError::Io { what, path, source }
    };
    std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))
        .map_err(io("handing over the work directory", dir))?;
    if std::fs::symlink_metadata(dir).map_err(io("examining the work directory", dir))?.is_dir() {
        for entry in std::fs::read_dir(dir).map_err(io("listing the work directory", dir))? {
            let entry = entry.map_err(io("listing the work directory", dir))?;
            hand_over(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// The `exit-code` of bwrap's JSON status documents (present only when the action ran and ended).
fn exit_code(status: &[u8]) -> Option<i32> {
    serde_json::Deserializer::from_slice(status)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .find_map(|doc| doc.get("exit-code")?.as_i64())
        .and_then(|code| i32::try_from(code).ok())
}

/// Reads a stream on a thread, keeping at most `cap` bytes; past that it marks the overflow, kills the
/// sandbox and drains the rest.
fn capture(
    stream: Option<impl Read + Send + 'static>,
    cap: u64,
    pidfd: &Arc<OwnedFd>,
    overflowed: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u8>> {
    let pidfd = Arc::clone(pidfd);
    let overflowed = Arc::clone(overflowed);
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let Some(mut stream) = stream else { return kept };
        let mut buf = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = usize::try_from(cap.saturating_sub(kept.len() as u64)).unwrap_or(usize::MAX);
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    if n > room && !overflowed.swap(true, Ordering::SeqCst) {
                        kill(&pidfd);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        kept
    })
}

/// How waiting for the sandbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Ended,
    TimedOut,
    Cancelled,
}

/// Waits until the process ends, the deadline passes or the action is cancelled (looked at every
/// [`CANCEL_POLL`]).
fn wait_until(pidfd: &OwnedFd, deadline: Instant, cancel: &CancelFlag) -> std::io::Result<Wait> {
    loop {
        if cancel.is_cancelled() {
            return Ok(Wait::Cancelled);
        }
        let left = deadline.saturating_duration_since(Instant::now()).min(CANCEL_POLL);
        // Round up so that a sub-millisecond remainder still waits.
        let ms = i32::try_from(left.as_millis() + u128::from(left > Duration::ZERO)).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, living across the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        match ready {
            1.. => return Ok(Wait::Ended),
            0 if Instant::now() >= deadline => return Ok(Wait::TimedOut),
            0 => continue,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Sends SIGKILL to the process behind the pidfd (a no-op once it has ended).
fn kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo (null) and no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags; the result is a new descriptor we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A close-on-exec memfd holding `bytes`, positioned at its start.
fn memfd_with(bytes: &[u8]) -> std::io::Result<File> {
    // SAFETY: the name is a valid C string; the result is a new descriptor we own, or -1.
    let fd = unsafe { libc::memfd_create(c"rcc-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file)
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
