//! The systemd units in `deploy/systemd/`: `systemd-analyze verify` accepts them (with their binaries
//! pointed at the ones just built), and every flag their `ExecStart=` passes is one the binary takes.

use crate::support::{bin_dir, have};
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd")
}

/// The `ExecStart=` line of a unit, split into words.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart= line");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_units_verify_and_pass_only_flags_their_binaries_take() {
    assert!(have("systemd-analyze"), "systemd-analyze is missing: scripts/install-deps installs systemd");
    let work = tempfile::tempdir().unwrap();
    for (name, binary, subcommand_help) in [
        ("rcc-worker.service", "rccd", &["worker", "--help"][..]),
        ("rcc-scheduler.service", "rcc-scheduler", &["serve", "--help"][..]),
    ] {
        let unit = std::fs::read_to_string(deploy_dir().join(name)).unwrap();
        let words = exec_start(&unit);
        assert_eq!(words[0], format!("/usr/local/bin/{binary}"), "{name}");
        for needed in ["NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=", "Restart=", "User="] {
            assert!(unit.lines().any(|l| l.starts_with(needed)), "{name} lacks {needed}");
        }
        // Every flag of ExecStart= exists: in the subcommand's help or the global one.
        let help = |args: &[&str]| {
            let out = Command::new(bin_dir().join(binary)).args(args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let known = format!("{}{}", help(subcommand_help), help(&["--help"]));
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(known.contains(&format!("{flag} ")), "{name}: {binary} has no {flag}:\n{known}");
        }
        // The token never on the command line.
        assert!(!words.iter().any(|w| w.contains("token")), "{name}: {words:?}");
        // systemd-analyze checks the keys, their values and that ExecStart= names an executable: point
        // it at the binary just built.
        let local = unit.replace(&format!("/usr/local/bin/{binary}"), &bin_dir().join(binary).to_string_lossy());
        std::fs::write(work.path().join(name), local).unwrap();
        let out = Command::new("systemd-analyze").arg("verify").arg(work.path().join(name)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
        assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify {name}:\n{stderr}");
    }
}
