//! What each CLI command does, in terms of the library.

use std::sync::Arc;

use anyhow::Context;
use pingora::server::RunArgs;

use crate::admin::{admin_socket_path, execute, run_via_socket, AdminCommand, Target};
use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::gateway::create_private_dir;
use crate::gateway::Gateway;
use crate::session::Sessions;
use crate::store::{Store, StoreError};

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
        Command::User(cmd) => admin(&cli.config, AdminCommand::User(cmd)),
        Command::Passkey(cmd) => admin(&cli.config, AdminCommand::Passkey(cmd)),
        Command::Session(cmd) => admin(&cli.config, AdminCommand::Session(cmd)),
        Command::Keys(cmd) => admin(&cli.config, AdminCommand::Keys(cmd)),
        Command::Events(args) => crate::admin::events::run(&cli.config, &args),
        Command::Reload => reload(&cli.config),
        Command::Store(crate::cli::StoreCommand::Migrate(args)) => {
            let config = Config::load(&cli.config)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            println!(
                "{}",
                runtime.block_on(crate::admin::migrate(&config, &args))?
            );
            Ok(())
        }
    }
}

/// An admin verb: through the running gateway's socket when there is one, else on the store.
fn admin(path: &std::path::Path, command: AdminCommand) -> anyhow::Result<()> {
    println!("{}", admin_output(path, command)?);
    Ok(())
}

/// What an admin verb answers, from the live gateway or the store.
pub fn admin_output(path: &std::path::Path, command: AdminCommand) -> anyhow::Result<String> {
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(async {
        let socket = admin_socket_path(&config);
        if let Some(answer) = run_via_socket(&socket, &command)
            .await
            .context("admin socket")?
        {
            return if answer.ok {
                Ok(answer.output)
            } else {
                Err(anyhow::anyhow!(answer.output))
            };
        }
        create_private_dir(&config.server.data_dir)?;
        let store = Store::open_configured(&config, Default::default()).map_err(|e| match e {
            StoreError::Locked { .. } => anyhow::anyhow!(
                "the store is in use by a running gateway, but its admin socket {} does not answer",
                socket.display()
            ),
            other => anyhow::anyhow!(other),
        })?;
        let sessions = Arc::new(Sessions::for_config(store.clone(), &config));
        let target = Target::Offline {
            store,
            config: Arc::new(config),
            sessions,
        };
        execute(&target, command).await.map_err(anyhow::Error::from)
    })?;
    Ok(output)
}

/// `reload`: asks the running gateway to re-read the file. The file may be the broken one the
/// gateway is about to refuse, so only its `server.data_dir` is read here (to find the socket);
/// the gateway itself reports what is wrong with the rest.
fn reload(path: &std::path::Path) -> anyhow::Result<()> {
    let socket = crate::admin::socket_path_of_file(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(run_via_socket(&socket, &AdminCommand::Reload))
        .context("admin socket")?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no gateway is running (its admin socket {} does not answer): nothing to reload",
                socket.display()
            )
        })?;
    if !answer.ok {
        return Err(anyhow::anyhow!(answer.output));
    }
    println!("{}", answer.output);
    Ok(())
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let _log = crate::logging::init(config.server.log_format);
    let gw: Arc<Gateway> = Gateway::new(config).context("cannot start the gateway")?;
    tracing::info!(listen = ?gw.config().server.listen, "passkey-gateway starting");
    crate::server::run(gw, RunArgs::default())?;
    Ok(())
}
