//! The shared cache's trust model on the real scheduler: a writer cannot replace what another stored
//! (first writer wins), a forged manifest entry cannot lead to another unit's result, namespaces keep a
//! laptop's uploads to itself, and an admin drops entries by uploader, key, namespace or time.

use crate::remote::Scheduler;
use crate::support::{bin_dir, rcc_and_gcc, run_ok, TestEnv};
use rcc_link::client::Recorded;
use rcc_link::tls::Trust;
use rcc_link::Client;
use rcc_proto::Digest;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `rcc-scheduler --state … ARGS` and returns its standard output.
fn cli(scheduler: &Scheduler, args: &[&str]) -> String {
    let out = run_ok(Command::new(bin_dir().join("rcc-scheduler")).arg("--state").arg(&scheduler.state).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A token created with `token create ARGS`.
fn token(scheduler: &Scheduler, args: &[&str]) -> String {
    cli(scheduler, &[&["token", "create"], args].concat()).trim().to_owned()
}

/// A client machine of `scheduler` holding `token`.
fn machine(scheduler: &Scheduler, token: &str) -> TestEnv {
    let mut env = TestEnv::new();
    env.set_env("RCC_SCHEDULER", &scheduler.addr);
    env.set_env("RCC_SCHEDULER_FINGERPRINT", &scheduler.fingerprint);
    env.set_env("RCC_TOKEN", token);
    env
}

async fn connect(scheduler: &Scheduler, token: &str) -> Client {
    let trust = Trust::Fingerprint(Digest::from_hex(&scheduler.fingerprint).unwrap());
    Client::connect(scheduler.addr.parse().unwrap(), &trust, token).await.expect("connecting to the scheduler")
}

/// `n` small units, each returning its own number, so that every object differs.
fn units(env: &TestEnv, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("u{i}.c");
            env.write(&name, &format!("#include \"common.h\"\nint unit_{i}(void) {{ return BASE + {i}; }}\n"));
            name
        })
        .chain(std::iter::once({
            env.write("common.h", "#define BASE 1000\n");
            String::new()
        }))
        .filter(|n| !n.is_empty())
        .collect()
}

fn build(env: &TestEnv, sources: &[String]) {
    for s in sources {
        env.rcc_ok(&["gcc", "-O2", "-c", s, "-o", &s.replace(".c", ".o")]);
    }
}

fn wait_for(env: &TestEnv, counter: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.counter(counter) < at_least {
        assert!(Instant::now() < deadline, "{counter} never reached {at_least}\n{}", env.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The (manifest key, result key) of every shared result the machine uploaded, from its debug log.
fn uploaded_keys(env: &TestEnv) -> Vec<(Digest, Digest)> {
    let log = env.log();
    let mut keys = Vec::new();
    for line in log.lines().filter(|l| l.contains("shared result uploaded")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| Digest::from_hex(v.trim_matches(|c: char| !c.is_ascii_hexdigit())))
        };
        if let (Some(manifest), Some(result)) = (field("manifest="), field("result=")) {
            keys.push((manifest, result));
        }
    }
    keys
}

/// Each unit built by `env` is byte-identical to plain gcc's; how many.
fn all_correct(env: &TestEnv, sources: &[String]) -> usize {
    let mut correct = 0;
    for s in sources {
        let (rcc, gcc) = rcc_and_gcc(env, &["-O2", "-c", s, "-o", &s.replace(".c", ".o")]);
        assert_eq!(rcc, gcc, "{s}: the object served is not the unit's own");
        correct += 1;
    }
    correct
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_can_neither_replace_ci_results_nor_redirect_its_manifests() {
    let root = TestEnv::new();
    let scheduler = Scheduler::start(&root.root);
    // CI uploads a build.
    let mut ci = machine(&scheduler, &token(&scheduler, &["--scope", "read,write", "--label", "ci"]));
    ci.set_env("RCC_LOG_LEVEL", "debug");
    let sources = units(&ci, 8);
    build(&ci, &sources);
    wait_for(&ci, "uploads", sources.len() as u64);
    let keys = uploaded_keys(&ci);
    assert_eq!(keys.len(), sources.len(), "one upload per unit\n{}", ci.log());

    // Mallory holds a write token of the same namespace and knows every key (it can compute them as rcc does).
    let mallory = connect(&scheduler, &token(&scheduler, &["--scope", "read,write", "--label", "mallory"])).await;
    let evil = mallory.put_blob(b"\x7fELF not the object you compiled").await.unwrap();
    let mut kept = 0;
    for (_, result_key) in &keys {
        // 1. Replace each result with one whose object is Mallory's.
        let mut forged = mallory.get_action_result(*result_key).await.unwrap().expect("CI's result is readable");
        let object = forged.outputs.iter_mut().find(|o| o.name == "object").expect("an object output");
        object.digest = evil;
        if mallory.update_action_result(*result_key, forged).await.unwrap() == Recorded::Kept {
            kept += 1;
        }
    }
    // 2. Forge manifest entries: each unit's own facts, leading to the next unit's result.
    for (i, (manifest, _)) in keys.iter().enumerate() {
        let (next_manifest, _) = keys[(i + 1) % keys.len()];
        let own = mallory.get_manifest(*manifest).await.unwrap();
        let next = mallory.get_manifest(next_manifest).await.unwrap();
        let mut entry = mallory.get_blob(own[0]).await.unwrap().unwrap();
        let next_entry = mallory.get_blob(next[0]).await.unwrap().unwrap();
        // An entry ends with its result field (32 bytes): put the next unit's there.
        let at = entry.len() - 32;
        entry[at..].copy_from_slice(&next_entry[next_entry.len() - 32..]);
        let forged = mallory.put_blob(&entry).await.unwrap();
        mallory.add_manifest_entry(*manifest, forged).await.unwrap();
        assert_eq!(mallory.get_manifest(*manifest).await.unwrap()[0], forged, "the forged entry is listed first");
    }

    // 3. An entry far larger than any real one, listed first: readers skip it without fetching it.
    let huge = mallory.put_blob(&vec![0u8; 5 << 20]).await.unwrap();
    mallory.add_manifest_entry(keys[0].0, huge).await.unwrap();

    // A fresh machine reading the shared cache gets every unit's own object, from the cache.
    let reader = machine(&scheduler, &token(&scheduler, &["--scope", "read", "--label", "reader"]));
    units(&reader, 8);
    assert_eq!(all_correct(&reader, &sources), sources.len());
    assert_eq!(reader.counter("hits_remote"), sources.len() as u64, "{}", reader.log());
    assert_eq!(kept, keys.len(), "every replacement was answered Kept");
    let status: serde_json::Value = serde_json::from_str(&cli(&scheduler, &["status", "--json"])).unwrap();
    assert_eq!(status["action_cache"]["kept_first_writer"], keys.len(), "{status:#}");
    let table = cli(&scheduler, &["status"]);
    assert!(table.contains(&format!("action cache: {} different results kept out", keys.len())), "{table}");

    // The admin drops what Mallory wrote (her manifest entries: the forged ones and the huge one), then
    // everything CI wrote.
    let dropped = cli(&scheduler, &["invalidate", "--uploader", "mallory"]);
    assert!(dropped.contains(&format!("0 action result(s) and {} manifest", keys.len() + 1)), "{dropped}");
    let (manifest, result_key) = keys[0];
    let dropped = cli(&scheduler, &["invalidate", "--key", &result_key.to_hex()]);
    assert!(dropped.contains("1 action result(s) and 0 manifest"), "{dropped}");
    assert_eq!(mallory.get_action_result(result_key).await.unwrap(), None);
    assert_eq!(mallory.get_manifest(manifest).await.unwrap().len(), 1, "CI's entry stays");
    let dropped = cli(&scheduler, &["invalidate", "--since", "1h"]);
    let expected = format!("{} action result(s) and {} manifest", keys.len() - 1, keys.len());
    assert!(dropped.contains(&expected), "{dropped}");
    let late = machine(&scheduler, &token(&scheduler, &["--scope", "read", "--label", "late"]));
    units(&late, 8);
    assert_eq!(all_correct(&late, &sources), sources.len());
    assert_eq!(late.counter("hits_remote"), 0, "nothing left to hit");
}

#[test]
fn namespaces_keep_a_laptops_uploads_to_itself_while_everyone_reads_ci() {
    let root = TestEnv::new();
    let scheduler = Scheduler::start(&root.root);
    let ci = machine(&scheduler, &token(&scheduler, &["--scope", "read,write", "--label", "ci", "--namespace", "ci"]));
    let laptop_token = |label: &str| {
        token(&scheduler, &["--scope", "read,write", "--label", label, "--namespace", label, "--read", "ci"])
    };
    let (alice, bob) = (machine(&scheduler, &laptop_token("alice")), machine(&scheduler, &laptop_token("bob")));
    let sources = units(&ci, 4);
    build(&ci, &sources);
    wait_for(&ci, "uploads", sources.len() as u64);
    let list = cli(&scheduler, &["token", "list"]);
    assert!(list.contains("alice (ci)"), "{list}");

    // Both laptops hit CI's results.
    for laptop in [&alice, &bob] {
        units(laptop, 4);
        build(laptop, &sources);
        assert_eq!(laptop.counter("hits_remote"), sources.len() as u64, "{}", laptop.log());
    }
    // Alice's own change goes to her namespace only: Bob and CI miss it, a second machine of Alice's hits.
    alice.write("mine.c", "int mine(void) { return 42; }\n");
    alice.rcc_ok(&["gcc", "-O2", "-c", "mine.c", "-o", "mine.o"]);
    wait_for(&alice, "uploads", 1);
    for other in [&bob, &ci] {
        other.zero_stats();
        other.write("mine.c", "int mine(void) { return 42; }\n");
        other.rcc_ok(&["gcc", "-O2", "-c", "mine.c", "-o", "mine.o"]);
        assert_eq!(other.counter("hits_remote"), 0, "alice's upload is hers alone");
    }
    let alice2 = machine(&scheduler, &laptop_token("alice"));
    alice2.write("mine.c", "int mine(void) { return 42; }\n");
    alice2.rcc_ok(&["gcc", "-O2", "-c", "mine.c", "-o", "mine.o"]);
    assert_eq!(alice2.counter("hits_remote"), 1, "{}", alice2.log());
    // Dropping a namespace leaves the others.
    let dropped = cli(&scheduler, &["invalidate", "--namespace", "alice"]);
    assert!(dropped.contains("1 action result(s)"), "{dropped}");
    let status: serde_json::Value = serde_json::from_str(&cli(&scheduler, &["status", "--json"])).unwrap();
    assert_eq!(status["action_cache"]["invalidated"], 1, "{status:#}");
}
