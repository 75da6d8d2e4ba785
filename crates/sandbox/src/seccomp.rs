//! The seccomp filter of sandboxed actions, compiled by `seccompiler` into classic BPF.
//!
//! A deny list, not an allow list: compilers, assemblers and their drivers use a wide and changing set of
//! ordinary syscalls (glibc picks `clone3`, `openat2`, `statx`, `rseq`… by kernel), while the mount, PID and
//! network namespaces already decide *what* they can reach. The filter removes what a compile never needs
//! and an escape or an exfiltration would: sockets other than `AF_UNIX` (there is no network device
//! anyway; this makes the attempt fail loudly and early), `io_uring` (which can open sockets and files
//! past this filter), tracing and debugging other processes, changing namespaces or mounts, loading
//! kernel code, BPF, perf, keyrings, rebooting, clock changes and swap. Each fails with `EPERM`, so the
//! program prints an error ("socket: Operation not permitted") that lands in the action's stderr and, as
//! the action fails, in the worker's log.

use super::SandboxError;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Syscalls that fail with `EPERM` whatever their arguments.
const DENIED: &[(&str, i64)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
];

/// The filter as the bytes of a `struct sock_filter` array, which bwrap's `--add-seccomp-fd` reads.
/// Compiled once per process.
pub fn program_bytes() -> Result<&'static [u8], SandboxError> {
    static PROGRAM: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    PROGRAM.get_or_init(|| compile().map(|p| to_bytes(&p))).as_deref().map_err(|e| SandboxError::Seccomp(e.clone()))
}

/// Compiles the filter for the architecture rcc runs on.
fn compile() -> Result<BpfProgram, String> {
    let arch =
        std::env::consts::ARCH.try_into().map_err(|e| format!("architecture {}: {e}", std::env::consts::ARCH))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&(_, nr)| (nr, Vec::new())).collect();
    // socket(domain, …) and socketpair(domain, …): anything but AF_UNIX (the first argument, an int).
    let not_unix = || -> Result<Vec<SeccompRule>, String> {
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, libc::AF_UNIX as u64)
            .map_err(|e| e.to_string())?;
        Ok(vec![SeccompRule::new(vec![cond]).map_err(|e| e.to_string())?])
    };
    rules.insert(libc::SYS_socket, not_unix()?);
    rules.insert(libc::SYS_socketpair, not_unix()?);
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

/// The program in the kernel's layout: `{u16 code; u8 jt; u8 jf; u32 k}` per instruction, native endian.
fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_to_whole_instructions() {
        let bytes = program_bytes().expect("filter compiles");
        assert!(!bytes.is_empty());
        assert_eq!(bytes.len() % 8, 0);
        // BPF_MAXINSNS: the kernel refuses longer programs.
        assert!(bytes.len() / 8 <= 4096, "{} instructions", bytes.len() / 8);
    }
}
