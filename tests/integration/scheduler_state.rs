//! Setting a scheduler up the way the README shows: `rcc-scheduler serve` on a fresh state directory with
//! `rcc-scheduler fingerprint` run at the same moment. The state is made once, under a lock: the
//! fingerprint printed is always the one the server presents, and the server keeps running. A read-only
//! command on a directory never set up creates nothing and says so.

use crate::support::bin_dir;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn scheduler() -> Command {
    Command::new(bin_dir().join("rcc-scheduler"))
}

#[test]
fn serve_and_fingerprint_raced_on_fresh_state_agree_and_the_server_keeps_running() {
    let root = tempfile::tempdir().unwrap();
    let mut agreed = 0;
    for round in 0..10 {
        let state = root.path().join(format!("state-{round}"));
        let mut server = scheduler()
            .arg("--state")
            .arg(&state)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RCC_LOG_LEVEL", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let printed = scheduler().arg("--state").arg(&state).arg("fingerprint").output().unwrap();
        let mut served = String::new();
        let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(word) = line.split_whitespace().find_map(|w| w.strip_prefix("fingerprint=")) {
                served = word.to_owned();
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        assert!(!served.is_empty(), "round {round}: the server started and printed its fingerprint");
        if printed.status.success() {
            assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), served, "round {round}");
            agreed += 1;
        } else {
            // It ran before the server had begun setting up: it says so and made nothing of its own.
            let stderr = String::from_utf8_lossy(&printed.stderr);
            assert!(stderr.contains("has not been set up"), "round {round}: {stderr}");
        }
        // Afterwards it always agrees, and the server is still serving.
        let again = scheduler().arg("--state").arg(&state).arg("fingerprint").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), served, "round {round}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(matches!(server.try_wait(), Ok(None)), "round {round}: the server exited");
        let _ = server.kill();
        let _ = server.wait();
    }
    eprintln!("{agreed} of 10 fingerprints raced with serve's setup printed the served one");
}

#[test]
fn read_only_commands_on_a_state_never_set_up_create_nothing_and_say_so() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("never");
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for state in [&missing, &empty] {
        for command in [&["fingerprint"][..], &["status", "--json"][..]] {
            let out = scheduler().arg("--state").arg(state).args(command).output().unwrap();
            assert!(!out.status.success(), "{command:?} on {} succeeded", state.display());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("has not been set up") && stderr.contains("rcc-scheduler init"),
                "{command:?}: {stderr}"
            );
        }
    }
    assert!(!missing.exists(), "nothing was created");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nothing was created");

    // `init` sets it up and prints the fingerprint `fingerprint` then shows.
    let init = scheduler().arg("--state").arg(&empty).arg("init").output().unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let shown = scheduler().arg("--state").arg(&empty).arg("fingerprint").output().unwrap();
    assert_eq!(shown.stdout, init.stdout);
    use std::os::unix::fs::PermissionsExt;
    let mode = |name: &str| std::fs::metadata(empty.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("key.pem"), mode("status.token")), (0o600, 0o600));
}
