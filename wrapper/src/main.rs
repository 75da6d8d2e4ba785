//! `rcc`: the compiler wrapper and the user's command line.
//!
//! Run once per compile, it must start fast and never break a build: every failure of rcc itself ends in
//! running the real compiler untouched. See [`invocation`] for how argv is read (explicit compiler,
//! masquerade link, or rcc alone), [`compile`] for the compile path and [`cli`] for the subcommands.

mod cli;
mod compile;
mod daemon_client;
mod invocation;
mod logging;

use std::ffi::OsString;

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let code = match invocation::classify(&argv) {
        invocation::Invocation::Cli(args) => cli::run(&args),
        invocation::Invocation::Compile(compile) => compile::run(compile),
    };
    std::process::exit(code);
}
