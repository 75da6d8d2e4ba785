//! Where a worker's token comes from. Never the command line: `/proc/PID/cmdline` and `ps` show it to
//! every local user. The token is read from a file only its owner can read ([`read_token_file`]), or
//! taken from the environment (`RCC_TOKEN`, which `/proc/PID/environ` shows to the same user and root only).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be opened or read.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a regular file.
    #[error("token file {0}: not a regular file")]
    NotAFile(PathBuf),
    /// Someone else owns it: whoever does can change the token the worker presents.
    #[error("token file {path} is owned by uid {owner}, but the worker runs as uid {uid}: it must belong to the worker's user (chown it)")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The worker's user.
        uid: u32,
    },
    /// Its group or other users may read or write it.
    #[error("token file {path} has mode {mode:04o}: group and other users must have no access; it must be 0600 or 0400 (chmod 600 {path})")]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It holds no token.
    #[error("token file {0} is empty")]
    Empty(PathBuf),
}

/// Longest token file read (tokens are short; this bounds a mistaken path to a large file).
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The token in `path`, its surrounding whitespace trimmed. The file must be a regular file owned by `uid`
/// (the worker's effective user) with no permission for group or others: mode 0600 or 0400.
pub fn read_token_file(path: &Path, uid: u32) -> Result<String, TokenError> {
    let io = |source| TokenError::Io { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(TokenError::NotAFile(path.to_owned()));
    }
    if meta.uid() != uid {
        return Err(TokenError::Owner { path: path.to_owned(), owner: meta.uid(), uid });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Mode { path: path.to_owned(), mode });
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE).read_to_string(&mut text).map_err(io)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty(path.to_owned()));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn token_file(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, "rcc_secret_token\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    fn me() -> u32 {
        // SAFETY: geteuid cannot fail and touches no memory.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn a_private_file_of_the_worker_is_read() {
        for mode in [0o600, 0o400] {
            let (_dir, path) = token_file(mode);
            assert_eq!(read_token_file(&path, me()).unwrap(), "rcc_secret_token");
        }
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_fix() {
        for mode in [0o640, 0o644, 0o604, 0o660] {
            let (_dir, path) = token_file(mode);
            let err = read_token_file(&path, me()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, TokenError::Mode { .. }), "{text}");
            assert!(text.contains("must be 0600 or 0400") && text.contains("chmod 600"), "{text}");
        }
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        let (_dir, path) = token_file(0o600);
        let err = read_token_file(&path, me().wrapping_add(1)).unwrap_err();
        assert!(matches!(err, TokenError::Owner { .. }) && err.to_string().contains("worker's user"), "{err}");
        let (dir, _) = token_file(0o600);
        assert!(matches!(read_token_file(dir.path(), me()), Err(TokenError::NotAFile(_))));
        let empty = dir.path().join("empty");
        fs::write(&empty, "\n").unwrap();
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read_token_file(&empty, me()), Err(TokenError::Empty(_))));
    }
}
