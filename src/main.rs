//! `passkey-gateway`: parses the command line, runs the command, prints the error chain.

use std::process::ExitCode;

use clap::Parser;
use passkey_gateway::cli::Cli;

// glibc malloc/free was 11 % of the proxy's CPU samples; mimalloc measured 9 % less CPU per
// request (BENCHMARKS.md, "Profile of the misses").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match passkey_gateway::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
