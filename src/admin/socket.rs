//! The admin socket: `{data_dir}/admin.sock`, owner-only. One JSON command in, one JSON answer
//! out, per connection. The data directory is created 0700, and the socket is owner-only before
//! it appears at its path (bound under a staging name, then renamed).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::{execute, AdminCommand, Target};
use crate::config::Config;
use crate::gateway::Gateway;

/// Largest command accepted on the socket.
const MAX_COMMAND: u64 = 64 * 1024;

/// The answer to one command.
#[derive(Debug, Serialize, Deserialize)]
pub struct SocketAnswer {
    pub ok: bool,
    pub output: String,
}

/// Where the running gateway listens for admin commands.
pub fn admin_socket_path(config: &Config) -> PathBuf {
    config.server.data_dir.join("admin.sock")
}

/// The admin socket named by the config file at `path`, read leniently: only `server.data_dir`
/// (default `./data`), so a file with mistakes elsewhere still finds its gateway.
pub fn socket_path_of_file(path: &Path) -> std::io::Result<PathBuf> {
    let text = std::fs::read_to_string(path)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not TOML: {}", path.display(), e.message()),
        )
    })?;
    let data_dir = table
        .get("server")
        .and_then(|s| s.get("data_dir"))
        .and_then(|d| d.as_str())
        .unwrap_or("./data");
    Ok(Path::new(data_dir).join("admin.sock"))
}

/// Serves admin commands for the live gateway until the task is dropped.
pub async fn serve_admin_socket(gw: Arc<Gateway>) -> std::io::Result<()> {
    let path = admin_socket_path(&gw.config());
    // Bound under a staging name and renamed into place once owner-only, so the socket never
    // appears at its path with the umask's mode; the rename also replaces a socket file left by
    // a killed process.
    let staged = path.with_extension("sock.new");
    let _ = std::fs::remove_file(&staged);
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&staged, &path)?;
    let target = Arc::new(Target::Live(gw));
    loop {
        let (stream, _) = listener.accept().await?;
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &target).await {
                tracing::warn!(error = %e, "admin socket: a command failed to complete");
            }
        });
    }
}

async fn answer(mut stream: UnixStream, target: &Target) -> std::io::Result<()> {
    let mut request = Vec::new();
    (&mut stream)
        .take(MAX_COMMAND)
        .read_to_end(&mut request)
        .await?;
    let reply = match serde_json::from_slice::<AdminCommand>(&request) {
        Ok(command) => match execute(target, command).await {
            Ok(output) => SocketAnswer { ok: true, output },
            Err(e) => SocketAnswer {
                ok: false,
                output: e.to_string(),
            },
        },
        Err(e) => SocketAnswer {
            ok: false,
            output: format!("malformed admin command: {e}"),
        },
    };
    stream
        .write_all(&serde_json::to_vec(&reply).unwrap_or_default())
        .await?;
    stream.shutdown().await
}

/// Sends a command to a running gateway. `Ok(None)` when none is listening (no socket file, or a
/// stale one nobody accepts on): the caller then works on the store directly.
pub async fn run_via_socket(
    path: &Path,
    command: &AdminCommand,
) -> std::io::Result<Option<SocketAnswer>> {
    let mut stream = match UnixStream::connect(path).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    stream
        .write_all(&serde_json::to_vec(command).unwrap_or_default())
        .await?;
    stream.shutdown().await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    serde_json::from_slice(&reply)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
