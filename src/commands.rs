//! What each CLI command does, in terms of the library.

use std::sync::Arc;

use anyhow::{bail, Context};
use pingora::server::RunArgs;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::gateway::Gateway;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::Check => {
            let config = Config::load(&cli.config)?;
            println!("{}", config.summary());
            Ok(())
        }
        Command::Demo(args) => crate::demo::run(args),
        other => bail!(
            "`{}` is not yet available in this build",
            command_name(&other)
        ),
    }
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    crate::logging::init(config.server.log_format);
    let gw: Arc<Gateway> = Gateway::new(config).context("cannot start the gateway")?;
    tracing::info!(listen = ?gw.config.server.listen, "passkey-gateway starting");
    crate::server::run(gw, RunArgs::default())?;
    Ok(())
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Serve => "serve",
        Command::Check => "check",
        Command::Demo(_) => "demo",
        Command::User(_) => "user",
        Command::Passkey(_) => "passkey",
        Command::Session(_) => "session",
        Command::Keys(_) => "keys",
    }
}
