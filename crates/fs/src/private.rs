//! What is private to the user running rcc: owner-only directories, and the identity of the process at the
//! other end of a Unix socket. The daemon's directory (store, socket, statistics, scratch files) and the
//! daemon itself must be reachable by their owner only; another local user must neither read cached
//! objects nor talk to the daemon (which runs the compiler a request names), and a daemon that is not the
//! user's own must not be believed.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// The uid this process runs as (its effective uid).
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of the process at the other end of a connected Unix socket (`SO_PEERCRED`: the credentials it
/// had when it connected, or when it listened).
pub fn peer_uid(socket: &impl AsRawFd) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is a live socket borrowed for the call; `cred` and `len` are ours and sized for
    // SO_PEERCRED's `struct ucred`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Makes `dir` (and its missing parents) a directory only its owner can enter: created 0700; an existing
/// one must belong to this process's uid and loses any group or other permission. `Err` when it belongs to
/// someone else (then nothing in it can be trusted) or cannot be made private.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!("{} is not a directory", dir.display())));
    }
    if meta.uid() != own_uid() {
        return Err(io::Error::other(format!(
            "{} belongs to uid {}, not to this user (uid {}): refusing to use it",
            dir.display(),
            meta.uid(),
            own_uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_pair_has_our_own_uid_at_the_other_end() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), own_uid());
    }

    #[test]
    fn a_shared_directory_is_made_private_and_a_new_one_is_private() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o775)).unwrap();
        ensure_private_dir(&shared).unwrap();
        assert_eq!(fs::metadata(&shared).unwrap().mode() & 0o777, 0o700);
        let fresh = root.path().join("a/b");
        ensure_private_dir(&fresh).unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        assert_eq!(own_uid(), 0, "this test needs root (to give a directory to another uid)");
        let root = tempfile::tempdir().unwrap();
        let theirs = root.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let err = ensure_private_dir(&theirs).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    }
}
