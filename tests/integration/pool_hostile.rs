//! Hostile clients against a real worker (issue 11): the real rcc-scheduler, a real `rccd worker` running as
//! root with real bubblewrap sandboxes, and a client speaking the protocol through rcc-link. Each attack is
//! mounted for real against a real host file; the worker must neither write outside its trees nor upload
//! anything but the regular files its sandboxed action wrote. And a hostile worker against real clients:
//! one answering with wrong objects that pass every digest check is caught by the scheduler's audits.

use crate::pool::{
    change_every_unit, local_objects, objects, open_to_sandbox, pool_client, start_faulty_worker, status_json,
    wait_for, worker, write_project,
};
use crate::pool_exec::{action, client, scheduler, start_worker, token_file, try_execute_when_registered};
use crate::remote::Scheduler;
use crate::support::{bin_dir, run_ok, TestEnv};
use rcc_pack::{Entry, Pack};
use rcc_proto::remote::RemoteAction;
use rcc_proto::Digest;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A pack linking `/esc` to a host directory, then holding a file `/esc/.bashrc`: materialized by following
/// the link, it would replace the host's file as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pack_linking_out_of_its_tree_is_refused_and_the_host_file_is_untouched() {
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let _worker = start_worker(&scheduler, &env, "w1", "info");
    let client = client(&scheduler, "read,write,execute").await;

    let victim = env.root.join("home");
    fs::create_dir_all(&victim).unwrap();
    fs::write(victim.join(".bashrc"), "original\n").unwrap();
    let payload = b"echo pwned\n";
    let blob = client.put_blob(payload).await.unwrap();
    let mut pack = Pack::default();
    pack.entries.insert("/esc".into(), Entry::Symlink { target: victim.clone() });
    pack.entries
        .insert("/esc/.bashrc".into(), Entry::File { digest: blob, size: payload.len() as u64, executable: false });
    pack.entries
        .insert("/esc/new/dropped".into(), Entry::File { digest: blob, size: payload.len() as u64, executable: true });
    let toolchain = client.put_blob(&pack.encode()).await.unwrap();
    let unit = client.put_blob(b"int x;\n").await.unwrap();

    let ran = try_execute_when_registered(&client, action(toolchain, unit, &rcc_proto::remote::default_pool())).await;
    assert_eq!(fs::read_to_string(victim.join(".bashrc")).unwrap(), "original\n", "the host file was replaced");
    let mut names: Vec<_> = fs::read_dir(&victim).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec![std::ffi::OsString::from(".bashrc")], "the worker wrote into the host directory");
    assert!(ran.is_err(), "an action on a refused toolchain cannot run: {ran:?}");
    let log = fs::read_to_string(env.root.join("w1.log")).unwrap();
    assert!(log.contains("below the link /esc"), "the worker says why: {log}");
}

/// The host's `sh`, `ln`, `mkdir`, `mkfifo` and `sleep`, packed and uploaded; the pack's digest.
async fn upload_shell(client: &rcc_link::Client) -> Digest {
    let programs: Vec<PathBuf> = ["/bin/sh", "/usr/bin/ln", "/usr/bin/mkdir", "/usr/bin/mkfifo", "/usr/bin/sleep"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let pack = Pack::of_programs(&programs).unwrap();
    for (path, entry) in &pack.entries {
        if let Entry::File { .. } = entry {
            client.put_blob(&fs::read(path).unwrap()).await.unwrap();
        }
    }
    client.put_blob(&pack.encode()).await.unwrap()
}

/// An action of the shell pack running `script`, naming `outputs`.
fn shell_action(toolchain: Digest, unit: Digest, script: &str, outputs: &[&str]) -> RemoteAction {
    let mut action = action(toolchain, unit, &rcc_proto::remote::default_pool());
    action.program = "/bin/sh".into();
    action.args = vec!["-c".into(), script.into()];
    action.outputs = outputs.iter().map(|o| o.to_string()).collect();
    action.kind = Digest::of(script.as_bytes());
    action
}

/// A root-only file (0600) under a root-only directory (0700), holding `content`.
fn secret(dir: &Path, name: &str, content: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The worker process's `/proc/<pid>/<what>`, as the worker itself would read it.
fn proc_file(pid: u32, what: &str) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/{what}")).unwrap()
}

/// The action makes its outputs links to host files (a 0600 secret, the worker's own command line and
/// environment, a file below a linked directory): none of those bytes may reach the scheduler, and the one
/// regular output still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outputs_that_are_links_do_not_leak_host_files() {
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let worker = start_worker(&scheduler, &env, "w1", "info");
    let client = client(&scheduler, "read,write,execute").await;
    let toolchain = upload_shell(&client).await;
    let unit = client.put_blob(b"unused\n").await.unwrap();

    let private = env.root.join("private");
    let shadow = secret(&private, "shadow", "root:$6$top-secret-hash:19000:0:99999:7:::\n");
    secret(&private, "escape.o", "second secret\n");
    let script = format!(
        "echo fine > real.o && ln -s {shadow} secret.o && ln -s /proc/self/cmdline cmdline.o \
         && ln -s /proc/self/environ environ.o && ln -s {private} sub",
        shadow = shadow.display(),
        private = private.display()
    );
    let outputs = ["real.o", "secret.o", "cmdline.o", "environ.o", "sub/escape.o"];
    let ran = tokio::time::timeout(
        Duration::from_secs(90),
        try_execute_when_registered(&client, shell_action(toolchain, unit, &script, &outputs)),
    )
    .await
    .expect("the action ended")
    .expect("the action ran");
    assert_eq!(ran.exit_code, 0, "{ran:?}");

    // What the worker would have read by following the links, had it uploaded them.
    let pid = worker.0.id();
    let leaks = [
        ("the 0600 secret", fs::read(&shadow).unwrap()),
        ("the file below a linked directory", b"second secret\n".to_vec()),
        ("the worker's command line", proc_file(pid, "cmdline")),
        ("the worker's environment", proc_file(pid, "environ")),
    ];
    for (what, bytes) in &leaks {
        let stored = client.get_blob(Digest::of(bytes)).await.unwrap();
        assert!(stored.is_none(), "{what} reached the scheduler");
    }
    let names: Vec<&str> = ran.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["real.o"], "only the regular file is an output: {ran:?}");
    let real = client.get_blob(ran.outputs[0].digest).await.unwrap();
    assert_eq!(real.as_deref(), Some(&b"fine\n"[..]), "the regular output still travels");
}

/// A fifo or a directory as an output is not a file either: the worker neither hangs reading the fifo
/// nor fails, and reports them absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outputs_that_are_fifos_or_directories_are_absent() {
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let _worker = start_worker(&scheduler, &env, "w1", "info");
    let client = client(&scheduler, "read,write,execute").await;
    let toolchain = upload_shell(&client).await;
    let unit = client.put_blob(b"unused\n").await.unwrap();

    let script = "echo fine > real.o && mkfifo fifo.o && mkdir dir.o";
    let action = shell_action(toolchain, unit, script, &["fifo.o", "dir.o", "real.o"]);
    let ran = tokio::time::timeout(Duration::from_secs(90), try_execute_when_registered(&client, action))
        .await
        .expect("the worker did not hang on the fifo")
        .expect("the action ran");
    assert_eq!(ran.exit_code, 0, "{ran:?}");
    let names: Vec<&str> = ran.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["real.o"], "{ran:?}");
}

/// The worker's token is never in its argv (`/proc/PID/cmdline`, readable by every local user) nor in its
/// log; `--token` is refused naming the alternatives, and so is a token file others may read.
#[test]
fn the_worker_token_is_never_on_the_command_line_nor_in_the_log() {
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let worker_args = ["worker", "--scheduler", &scheduler.addr, "--fingerprint", &scheduler.fingerprint];

    let secret = scheduler.token("worker,read,write");
    let out = std::process::Command::new(bin_dir().join("rccd"))
        .args(worker_args)
        .args(["--token", &secret])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--token is refused");
    assert!(stderr.contains("--token-file") && stderr.contains("RCC_TOKEN"), "names the alternatives: {stderr}");

    let readable = token_file(&env, "group-readable", &secret, 0o640);
    let out = std::process::Command::new(bin_dir().join("rccd"))
        .args(worker_args)
        .arg("--token-file")
        .arg(&readable)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a group-readable token file is refused");
    assert!(stderr.contains("mode 0640") && stderr.contains("must be 0600 or 0400"), "says why and the fix: {stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");

    let running = start_worker(&scheduler, &env, "w1", "debug");
    wait_for(&scheduler, "the worker registered", |s| worker(s, "w1").is_some_and(|w| w["state"] == "active"));
    let token = fs::read_to_string(env.root.join("w1.token")).unwrap().trim().to_owned();
    let cmdline = proc_file(running.0.id(), "cmdline");
    assert!(!String::from_utf8_lossy(&cmdline).contains(&token), "the token is in the worker's argv");
    assert!(String::from_utf8_lossy(&cmdline).contains("--token-file"), "control: this is the worker's argv");
    let log = fs::read_to_string(env.root.join("w1.log")).unwrap();
    assert!(log.contains("registered with the scheduler"), "control: the log has the session: {log}");
    assert!(!log.contains(&token), "the token is in the worker's log");
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Clients' files on a worker are private: while a real action runs its work directory is 0700 and the
/// sandbox user's; afterwards the blob cache (clients' sources) is 0700 with 0600 files, which another local
/// user really cannot read, and the worker's directory only lets the sandbox user through (0711).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workers_files_are_private_to_it_and_the_actions_user() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    let scheduler = scheduler(&env);
    let _worker = start_worker(&scheduler, &env, "w1", "info");
    let client = client(&scheduler, "read,write,execute").await;
    let toolchain = upload_shell(&client).await;
    let unit = client.put_blob(b"int client_source;\n").await.unwrap();
    let dir = env.root.join("w1");

    let action = shell_action(toolchain, unit, "test -f unit.i && sleep 3 && echo fine > real.o", &["real.o"]);
    let running = tokio::spawn(async move { try_execute_when_registered(&client, action).await.map(|r| (r, client)) });
    // The worker makes the directory 0700 (as root, writes the inputs), then hands it to the sandbox user.
    let mut seen = 0;
    loop {
        let found = fs::read_dir(dir.join("work")).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        if let Some(meta) = found.and_then(|e| fs::metadata(e.path()).ok()) {
            assert_eq!(meta.permissions().mode() & 0o7777, 0o700, "an action's work directory");
            seen += 1;
            if meta.uid() == 65534 {
                break; // the sandbox user's (nobody) for the action
            }
        }
        assert!(!running.is_finished(), "the action ended before its work directory was seen handed over ({seen})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ran, _client) = running.await.unwrap().expect("the action ran");
    assert_eq!(ran.exit_code, 0, "the sandbox user could reach its work directory and inputs: {ran:?}");

    assert_eq!(mode(&dir), 0o711);
    assert_eq!(mode(&dir.join("work")), 0o711);
    assert_eq!(mode(&dir.join("cas")), 0o700);
    assert_eq!(mode(&dir.join("toolchains")), 0o755, "toolchains (compilers only) stay readable");
    let blobs: Vec<PathBuf> = fs::read_dir(dir.join("cas")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(blobs.len() > 3, "the pack's files and the input are kept: {blobs:?}");
    for blob in &blobs {
        assert_eq!(mode(blob), 0o600, "{}", blob.display());
    }
    // Another local user (daemon, uid 1) really cannot read the client's source.
    let source = dir.join("cas").join(unit.to_hex());
    assert!(source.is_file());
    let other = std::process::Command::new("setpriv")
        .args(["--reuid=1", "--regid=1", "--clear-groups", "cat"])
        .arg(&source)
        .output()
        .expect("setpriv (util-linux)");
    assert!(!other.status.success() && other.stdout.is_empty(), "another user read a client's source: {other:?}");
}

/// The scheduler's audit settings for [`a_worker_answering_with_one_fixed_wrong_object_is_outvoted_and_quarantined`]:
/// a new worker's first two actions are audited, no sampling after.
const AUDITS: [&str; 4] = ["--audit-first", "2", "--audit-share", "0"];

/// The project's objects only (no link: a wrong object would fail it before the comparison).
fn build_objects(env: &TestEnv, compiler: &str) {
    let objs: Vec<String> = (0..6).map(|i| format!("part{i}.o")).chain(["main.o".to_owned()]).collect();
    run_ok(env.command("make").args(["-B", "-j4", &format!("CC={compiler}")]).args(&objs));
}

/// A worker holding a real worker token answers every action with one fixed object, uploaded under that
/// object's own digest, exit 0: every digest check passes. Two honest workers prove each other first; the
/// liar joins and takes actions of a real `rcc gcc` build; audits outvote it on its first answer. Every
/// object the build got is plain gcc's, the liar is quarantined for the audit in `status`, and no
/// action-cache entry names its object (a second machine's build from the shared cache alone is plain gcc's
/// too). Without audits (`--audit-first 0 --audit-share 0`) the liar's object reaches the build.
#[test]
fn a_worker_answering_with_one_fixed_wrong_object_is_outvoted_and_quarantined() {
    let mut env = TestEnv::new();
    open_to_sandbox(&env);
    let mut args = vec!["--heartbeat-ms", "300"];
    args.extend(AUDITS);
    let scheduler = Scheduler::start_with(&env.root, &args);
    let _honest = [
        start_faulty_worker(&scheduler, &env, "honest-1", 2, &[]),
        start_faulty_worker(&scheduler, &env, "honest-2", 2, &[]),
    ];
    wait_for(&scheduler, "two workers", |s| s["workers"].as_array().is_some_and(|w| w.len() == 2));
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    let rcc_gcc = format!("{} gcc", env.rcc_bin().display());
    build_objects(&env, &rcc_gcc);
    let status = status_json(&scheduler);
    for name in ["honest-1", "honest-2"] {
        assert_eq!(worker(&status, name).unwrap()["proven"], true, "{name} proven by agreeing: {status:#}");
    }

    let _liar = start_faulty_worker(&scheduler, &env, "liar", 2, &[("RCC_WORKER_TEST_WRONG", "1")]);
    wait_for(&scheduler, "the liar registered", |s| worker(s, "liar").is_some());
    change_every_unit(&env.proj);
    env.zero_stats();
    build_objects(&env, &rcc_gcc);
    let stats = env.stats()["counters"].clone();
    let built = objects(&env.proj);
    assert_eq!(built, local_objects(&env), "every object is plain gcc's: {stats:#}");
    assert_eq!(stats["remote_compiles"], 6, "the six changed units compiled on the pool: {stats:#}\n{}", env.log());

    let status = status_json(&scheduler);
    let liar = worker(&status, "liar").unwrap();
    assert_eq!(liar["state"], "quarantined", "{status:#}");
    assert_eq!(liar["quarantine_reason"]["kind"], "audit-mismatch", "{status:#}");
    assert!(liar["audit_mismatches"].as_u64() >= Some(1), "{status:#}");
    assert_eq!(liar["proven"], false);
    assert!(status["counters"]["audits_mismatched"].as_u64() >= Some(1), "{status:#}");
    assert!(status["counters"]["audits_passed"].as_u64() >= Some(2), "{status:#}");
    assert_eq!(worker(&status, "honest-1").unwrap()["state"], "active");

    // The action cache under every key this client stored a result under names no object but plain gcc's.
    let gcc: std::collections::HashSet<Digest> = built.iter().map(|(_, o)| Digest::of(o)).collect();
    let keys = stored_result_keys(&env);
    assert!(keys.len() >= 7, "{keys:?}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let reader = client(&scheduler, "read").await;
        for key in keys {
            if let Some(entry) = reader.get_action_result(key).await.unwrap() {
                let foreign: Vec<_> = entry.outputs.iter().filter(|o| !gcc.contains(&o.digest)).collect();
                assert!(foreign.is_empty(), "the action cache names {foreign:?}");
            }
        }
    });

    // As another machine would, from an empty local cache: what the scheduler keeps (action cache, the
    // pool's memo of recent results) answers every unit, and with plain gcc's objects.
    env.rcc_ok(&["cache", "clear"]);
    env.zero_stats();
    build_objects(&env, &rcc_gcc);
    let stats = env.stats()["counters"].clone();
    assert_eq!(objects(&env.proj), built, "the scheduler keeps plain gcc's objects: {stats:#}");
    assert_eq!(worker(&status_json(&scheduler), "liar").unwrap()["running"], 0, "the liar gets nothing more");
}

/// The keys of the results in `env`'s local store (`<RCC_DIR>/store/r/xx/…`): what its daemon looks up in
/// and uploads to the shared action cache.
fn stored_result_keys(env: &TestEnv) -> Vec<Digest> {
    let mut keys = Vec::new();
    for shard in fs::read_dir(env.cache.join("store").join("r")).unwrap().flatten() {
        for entry in fs::read_dir(shard.path()).unwrap().flatten() {
            let hex = format!("{}{}", shard.file_name().to_string_lossy(), entry.file_name().to_string_lossy());
            keys.extend(Digest::from_hex(&hex));
        }
    }
    keys
}
