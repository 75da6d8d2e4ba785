//! Workers on hosts of their own: each `rccd worker` runs in a network namespace of its own (`ip netns`),
//! reaching the scheduler only over a veth link, as a pool machine reaches it over the network. Needs root
//! and iproute2 (as the test machines and CI have); the namespaces and links are removed afterwards.

use crate::pool::{local_objects, objects, open_to_sandbox, pool_client, wait_for, worker, write_project, Worker};
use crate::remote::Scheduler;
use crate::support::{bin_dir, run_ok, TestEnv};
use std::process::{Command, Stdio};

/// A network namespace joined to the host by a veth pair: the host side has `.1`, the namespace `.2` of
/// `10.231.<subnet>.0/30`.
struct Host {
    netns: String,
    link: String,
    subnet: u8,
}

impl Host {
    fn create(subnet: u8) -> Host {
        let tag = format!("{}{subnet}", std::process::id() % 10_000);
        let host = Host { netns: format!("rcc-test-{tag}"), link: format!("rccv{tag}"), subnet };
        let peer = format!("rccp{tag}");
        let ip = |args: &[&str]| {
            run_ok(Command::new("ip").args(args));
        };
        ip(&["netns", "add", &host.netns]);
        ip(&["link", "add", &host.link, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &host.netns]);
        ip(&["addr", "add", &format!("{}/30", host.host_side()), "dev", &host.link]);
        ip(&["link", "set", &host.link, "up"]);
        ip(&["-n", &host.netns, "addr", "add", &format!("10.231.{subnet}.2/30"), "dev", &peer]);
        ip(&["-n", &host.netns, "link", "set", &peer, "up"]);
        ip(&["-n", &host.netns, "link", "set", "lo", "up"]);
        host
    }

    /// The host's address on this link, where the namespace reaches the scheduler.
    fn host_side(&self) -> String {
        format!("10.231.{}.1", self.subnet)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// A worker process inside `host`'s namespace.
fn start_worker_on(host: &Host, scheduler: &Scheduler, env: &TestEnv, name: &str) -> Worker {
    let port = scheduler.addr.rsplit(':').next().expect("scheduler port");
    let log = std::fs::File::create(env.root.join(format!("worker-{name}.log"))).expect("worker log");
    let child = Command::new("ip")
        .args(["netns", "exec", &host.netns])
        .arg(bin_dir().join("rccd"))
        .args(["worker", "--scheduler", &format!("{}:{port}", host.host_side())])
        .args(["--fingerprint", &scheduler.fingerprint])
        .env("RCC_TOKEN", scheduler.token("worker,read,write"))
        .args(["--name", name, "--slots", "1"])
        .arg("--dir")
        .arg(env.root.join(format!("worker-{name}")))
        .env("RCC_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting rccd worker in its namespace");
    Worker(child)
}

#[test]
fn workers_in_network_namespaces_of_their_own_compile_a_make_build() {
    let mut env = TestEnv::new();
    open_to_sandbox(&env);
    let scheduler = Scheduler::start_listening(&env.root, "0.0.0.0:0", &["--heartbeat-ms", "300"]);
    let hosts = [Host::create(1), Host::create(2)];
    // The namespaces really are apart: no route to this machine's loopback, only to its side of the link.
    let isolated = Command::new("ip")
        .args(["netns", "exec", &hosts[0].netns, "ip", "-4", "addr", "show"])
        .output()
        .expect("ip addr in the namespace");
    let addrs = String::from_utf8_lossy(&isolated.stdout);
    assert!(addrs.contains("10.231.1.2") && !addrs.contains("10.231.2.2"), "{addrs}");
    // One slot each: with make -j4 both take actions, whichever holds the toolchain first.
    let _w1 = start_worker_on(&hosts[0], &scheduler, &env, "ns-one");
    let _w2 = start_worker_on(&hosts[1], &scheduler, &env, "ns-two");
    wait_for(&scheduler, "two workers", |s| s["workers"].as_array().is_some_and(|w| w.len() == 2));

    // The client talks to the scheduler on loopback; the workers over their links.
    let port = scheduler.addr.rsplit(':').next().unwrap().to_owned();
    pool_client(&scheduler, &mut env);
    env.set_env("RCC_SCHEDULER", &format!("127.0.0.1:{port}"));
    write_project(&env.proj);
    run_ok(env.command("make").args(["-j4", "DEPFLAGS=-MMD", &format!("CC={} gcc", env.rcc_bin().display())]));
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_compiles"], 7, "{stats:#}\n{}", env.log());
    // Both ran actions: each holds the toolchain, as its next heartbeat says.
    wait_for(&scheduler, "both workers holding the toolchain", |s| {
        ["ns-one", "ns-two"]
            .iter()
            .all(|name| worker(s, name).is_some_and(|w| w["state"] == "active" && w["held_toolchains"] == 1))
    });
    let remote = objects(&env.proj);
    assert_eq!(remote, local_objects(&env), "byte-identical to a local build");
}
