//! Reaching the daemon: connect to its socket, or start it (one starter at a time, under a lock) and wait
//! until it listens.

use rcc_proto::config::Config;
use rcc_proto::vars;
use std::fs::File;
use std::io;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Connects to the running daemon without starting one. The process listening must be this user's own:
/// a socket another user planted (a shared or pre-created directory) is refused, since the daemon's
/// answers decide what the wrapper runs.
pub fn connect_existing(config: &Config) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(&config.socket.value)?;
    let (theirs, ours) = (rcc_fs::private::peer_uid(&stream)?, rcc_fs::private::own_uid());
    if theirs != ours {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the daemon on {} runs as uid {theirs}, not as this user (uid {ours})",
                config.socket.value.display()
            ),
        ));
    }
    Ok(stream)
}

/// Connects to the daemon, starting it if none listens.
pub fn connect_or_start(config: &Config) -> io::Result<UnixStream> {
    match connect_existing(config) {
        Ok(stream) => return Ok(stream),
        // Another user's daemon holds the socket: no daemon of ours can start there.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(e),
        Err(_) => {}
    }
    let timeout = start_timeout();
    let deadline = Instant::now() + timeout;
    let dir = &config.dir.value;
    rcc_fs::private::ensure_private_dir(dir)?;
    let lock_path = config.socket.value.with_extension("start-lock");
    let lock = File::options().create(true).truncate(false).write(true).open(&lock_path)?;
    // Only one wrapper starts the daemon; the others wait here and then find it listening.
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for the daemon start lock"))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    if let Ok(stream) = connect_existing(config) {
        return Ok(stream);
    }
    spawn_daemon()?;
    loop {
        match connect_existing(config) {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    // `lock` is released when dropped here.
}

fn start_timeout() -> Duration {
    let ms = std::env::var(vars::RCC_START_TIMEOUT).ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    Duration::from_millis(ms)
}

/// The `rccd` binary: `RCC_DAEMON`, else beside this executable.
pub fn daemon_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(vars::RCC_DAEMON).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?.canonicalize()?;
    Ok(me.with_file_name("rccd"))
}

fn spawn_daemon() -> io::Result<()> {
    let mut cmd = Command::new(daemon_binary()?);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec: setsid detaches the daemon from the build's
    // session and terminal (make's ^C must not kill it); close_range drops inherited descriptors (make's
    // jobserver pipes, the build's output pipes) so the daemon holds nothing of the build open.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    // The daemon double-forks nothing: it is reparented to init when this wrapper exits; reap nothing.
    cmd.spawn().map(drop)
}
