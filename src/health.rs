//! Liveness and readiness, as the admin listener's `/healthz` and `/readyz` report them.
//!
//! Ready means: the configuration is loaded (a gateway exists only once it is), the signing key
//! is loaded, the listeners accept connections, the store answers a read, and the data
//! directory can be written (the keys, the admin socket and a file-backed store live there).
//! Each check is run at every `/readyz`, so an outage that begins after start is reported, with
//! its reason, as soon as it begins.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::gateway::Gateway;

/// The readiness facts that are set once rather than checked each time.
#[derive(Debug, Default)]
pub struct Readiness {
    listening: AtomicBool,
}

impl Readiness {
    /// The listeners accept connections (set once a connection to each one succeeded, or by a
    /// caller that bound its own listener).
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

/// One check's name and its outcome: what was found, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

/// Every readiness check, in a fixed order.
pub async fn readiness(gw: &Gateway) -> Vec<Check> {
    let config = gw.config();
    let listen = Check {
        name: "listeners",
        outcome: if gw.readiness().listening() {
            Ok("accepting".to_string())
        } else {
            Err("not accepting connections yet".to_string())
        },
    };
    let keys = Check {
        name: "keys",
        // The signer cannot exist without its current key; the kid says which one it is.
        outcome: Ok(format!("signing with {}", gw.signer().kid())),
    };
    let store = Check {
        name: "store",
        outcome: gw
            .store()
            .health()
            .await
            .map(|()| "answers".to_string())
            .map_err(|e| format!("does not answer: {}", error_chain(&e))),
    };
    let dir = config.server.data_dir.clone();
    let data_dir = Check {
        name: "data_dir",
        outcome: tokio::task::spawn_blocking(move || probe_writable(&dir))
            .await
            .unwrap_or_else(|_| Err("the write probe did not finish".to_string())),
    };
    let loaded = Check {
        name: "config",
        outcome: Ok(format!(
            "{} loaded at {}",
            config.source.display(),
            gw.metrics().loaded_at()
        )),
    };
    vec![loaded, keys, listen, store, data_dir]
}

/// Writes, syncs and removes a small file in `dir`: the cheapest proof it can still be written.
fn probe_writable(dir: &Path) -> Result<String, String> {
    use std::io::Write;
    let probe = dir.join(".readyz-probe");
    let attempt = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&probe)?;
        file.write_all(b"ok")?;
        file.sync_all()?;
        std::fs::remove_file(&probe)
    };
    attempt()
        .map(|()| format!("{} writable", dir.display()))
        .map_err(|e| format!("{} cannot be written: {e}", dir.display()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
