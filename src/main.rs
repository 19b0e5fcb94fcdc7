//! `passkey-gateway`: parses the command line, runs the command, prints the error chain.

use std::process::ExitCode;

use clap::Parser;
use passkey_gateway::cli::Cli;

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
