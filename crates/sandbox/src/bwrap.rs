//! The bubblewrap command line for a spec.

use super::{Mount, SandboxError, SandboxSpec};
use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where bwrap is: the first `bwrap` on the worker's `PATH`, else `/usr/bin/bwrap`.
pub fn find() -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("bwrap"))
        .find(|candidate| candidate.is_file())
        .ok_or(SandboxError::NoBwrap)
}

/// Descriptors bwrap reads its extra input from and writes its status to.
pub struct Fds {
    /// The compiled seccomp program (`--add-seccomp-fd`).
    pub seccomp: RawFd,
    /// Where bwrap writes JSON status documents (`--json-status-fd`): the child's pid once it started, its
    /// exit code when it ended.
    pub status: RawFd,
}

/// The bwrap command running `spec` (environment cleared; stdio, limits and privileges are the caller's).
pub fn command(bwrap: &Path, spec: &SandboxSpec, fds: &Fds) -> Result<Command, SandboxError> {
    let invalid = |why: String| SandboxError::Spec { action: spec.name.clone(), why };
    let absolute = |what: &str, path: &Path| {
        if path.is_absolute() {
            Ok(())
        } else {
            Err(invalid(format!("{what} {} is not an absolute path", path.display())))
        }
    };
    absolute("the work directory (inside)", &spec.work_dir.inside)?;
    absolute("the working directory", &spec.cwd)?;
    absolute("the program", &spec.program)?;

    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&OsStr]| args.extend(items.iter().map(|s| s.to_os_string()));
    // Every namespace, including the user namespace (explicit: as root, bwrap would otherwise not create
    // one), and no further user namespaces inside. --die-with-parent: if the worker dies, so does the
    // action. --new-session: the action cannot inject input into the worker's terminal (TIOCSTI).
    push(&[
        "--unshare-all".as_ref(),
        "--unshare-user".as_ref(),
        "--disable-userns".as_ref(),
        "--die-with-parent".as_ref(),
        "--new-session".as_ref(),
        "--clearenv".as_ref(),
    ]);
    for (key, value) in &spec.env {
        if key.is_empty() || key.as_bytes().contains(&b'=') || key.as_bytes().contains(&0) {
            return Err(invalid(format!("environment variable name {key:?}")));
        }
        push(&["--setenv".as_ref(), key, value]);
    }
    let size = spec.limits.output_bytes.to_string();
    // /dev holds null, zero, full, random, urandom, tty and pts; read-only, so that nothing but those
    // device nodes can be written there.
    push(&[
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--remount-ro".as_ref(),
        "/dev".as_ref(),
    ]);
    push(&["--perms".as_ref(), "1777".as_ref(), "--size".as_ref(), size.as_ref(), "--tmpfs".as_ref(), "/tmp".as_ref()]);
    for mount in &spec.mounts {
        absolute("a mount point", mount.inside())?;
        match mount {
            Mount::Bind { host, inside, writable } => {
                absolute("a mount source", host)?;
                let flag = if *writable { "--bind" } else { "--ro-bind" };
                push(&[flag.as_ref(), host.as_os_str(), inside.as_os_str()]);
            }
            Mount::Symlink { target, inside } => {
                push(&["--symlink".as_ref(), target.as_os_str(), inside.as_os_str()]);
            }
        }
    }
    push(&["--bind".as_ref(), spec.work_dir.host.as_os_str(), spec.work_dir.inside.as_os_str()]);
    // The root (a tmpfs bwrap made, holding only mount points) becomes read-only last: nothing can be
    // written outside the work directory and /tmp.
    push(&["--remount-ro".as_ref(), "/".as_ref(), "--chdir".as_ref(), spec.cwd.as_os_str()]);
    let seccomp = fds.seccomp.to_string();
    let status = fds.status.to_string();
    push(&["--add-seccomp-fd".as_ref(), seccomp.as_ref(), "--json-status-fd".as_ref(), status.as_ref()]);
    push(&["--".as_ref(), spec.program.as_os_str()]);
    args.extend(spec.args.iter().cloned());

    let mut command = Command::new(bwrap);
    command.args(args).env_clear().current_dir("/");
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        let mut spec = SandboxSpec::new("t", "/usr/bin/gcc", "/host/w".into(), "/work".into());
        spec.args = vec!["-c".into(), "a.c".into()];
        spec.env = vec![("PATH".into(), "/usr/bin".into())];
        spec.mounts = vec![
            Mount::read_only("/h/a.c", "/work/a.c"),
            Mount::Symlink { target: "usr/lib".into(), inside: "/lib".into() },
        ];
        spec
    }

    #[test]
    fn command_line_has_namespaces_mounts_and_program_last() {
        let cmd = command(Path::new("/usr/bin/bwrap"), &spec(), &Fds { seccomp: 5, status: 6 }).expect("command");
        let args: Vec<&str> = cmd.get_args().map(|a| a.to_str().expect("utf-8")).collect();
        let line = args.join(" ");
        for expected in [
            "--unshare-all --unshare-user --disable-userns --die-with-parent --new-session --clearenv",
            "--setenv PATH /usr/bin",
            "--ro-bind /h/a.c /work/a.c --symlink usr/lib /lib --bind /host/w /work --remount-ro / --chdir /work",
            "--add-seccomp-fd 5 --json-status-fd 6 -- /usr/bin/gcc -c a.c",
        ] {
            assert!(line.contains(expected), "{expected:?} not in {line}");
        }
        assert!(line.ends_with("-- /usr/bin/gcc -c a.c"));
        assert_eq!(cmd.get_envs().count(), 0, "bwrap itself runs with an empty environment");
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec();
        s.env.push(("A=B".into(), "x".into()));
        assert!(command(Path::new("bwrap"), &s, &Fds { seccomp: 5, status: 6 }).is_err());
        let mut s = spec();
        s.mounts.push(Mount::read_only("relative", "/x"));
        assert!(command(Path::new("bwrap"), &s, &Fds { seccomp: 5, status: 6 }).is_err());
        let mut s = spec();
        s.cwd = "work".into();
        assert!(command(Path::new("bwrap"), &s, &Fds { seccomp: 5, status: 6 }).is_err());
    }
}
