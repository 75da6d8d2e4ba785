//! Integration tests: the real `rcc` and `rccd` binaries with real gcc, clang, make, cmake and ninja.
//! One target, modules by area; every case has its own project, cache directory and daemon.

mod support;

mod build_systems;
mod cli;
mod daemon;
mod depfiles;
mod deploy;
mod failures;
mod help;
mod hits;
mod local_trust;
mod mutations;
mod passthrough;
mod pool;
mod pool_exec;
mod pool_hostile;
mod pool_netns;
mod remote;
mod rust;
mod scheduler_budgets;
mod scheduler_crash;
mod scheduler_state;
mod scheduler_tokens;
mod shared_trust;
