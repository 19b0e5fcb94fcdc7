//! Cross-replica revocations on PostgreSQL: published with `pg_notify` inside the transaction
//! that makes them (so delivered exactly when it commits, never for a rollback), and followed
//! by one listener connection per replica, on a thread of its own.
//!
//! The listener proves it is alive with a round trip every `REVOCATION_BOUND / 4`; because the
//! server sends notifications and replies on one connection in order, a reply means every
//! notification committed before it has been handed to the sink first. When the connection
//! drops, the sink stops being confirmed (so after the bound it trusts no cached session); when
//! it is back, the sink is told to resync, then confirmed again.

use std::sync::Arc;

use deadpool_postgres::Transaction;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::cached::Cached;
use super::PostgresStore;
use crate::store::revocations::{Revocation, RevocationSink, REVOCATION_BOUND};
use crate::store::StoreError;

/// The channel every replica listens on.
const CHANNEL: &str = "pkgw_revocations";

/// The listener connection's `application_name`.
pub const LISTENER_NAME: &str = "passkey-gateway revocations";

/// Notification payloads stay under PostgreSQL's 8000-byte limit.
const MAX_PAYLOAD: usize = 7_000;

/// Publishes `revocations` when `txn` commits.
pub(super) async fn publish(
    txn: &Transaction<'_>,
    revocations: &[Revocation],
) -> Result<(), StoreError> {
    let mut payload = String::new();
    for revocation in revocations {
        let item = revocation.encode();
        if !payload.is_empty() && payload.len() + item.len() + 1 > MAX_PAYLOAD {
            send(txn, &payload).await?;
            payload.clear();
        }
        if !payload.is_empty() {
            payload.push(' ');
        }
        payload.push_str(&item);
    }
    if !payload.is_empty() {
        send(txn, &payload).await?;
    }
    Ok(())
}

async fn send(txn: &Transaction<'_>, payload: &str) -> Result<(), StoreError> {
    txn.run("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await?;
    Ok(())
}

impl PostgresStore {
    /// Starts following other processes' revocations into `sink`, on a thread of its own,
    /// for as long as the process runs.
    pub fn listen_for_revocations(&self, sink: Arc<dyn RevocationSink>) {
        let config = self.inner.config.clone();
        let target = self.inner.target.clone();
        let spawned = std::thread::Builder::new()
            .name("pkgw-revocations".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot start the revocation listener");
                        return;
                    }
                };
                runtime.block_on(listen_forever(config, target, sink));
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the revocation listener");
        }
    }
}

/// Connects, listens, and follows; after any failure, again (every `BOUND / 4`).
async fn listen_forever(
    config: tokio_postgres::Config,
    target: String,
    sink: Arc<dyn RevocationSink>,
) {
    let pause = REVOCATION_BOUND / 4;
    let mut was_down = false;
    loop {
        match follow(&config, &target, &*sink, was_down).await {
            Ok(()) => {}
            Err(error) => {
                if !was_down {
                    tracing::warn!(%error, "revocation listener lost; cached sessions are re-checked in the store until it is back");
                }
            }
        }
        was_down = true;
        tokio::time::sleep(pause).await;
    }
}

/// One listening connection, until it fails.
async fn follow(
    config: &tokio_postgres::Config,
    target: &str,
    sink: &dyn RevocationSink,
    resync: bool,
) -> Result<(), StoreError> {
    let mut config = config.clone();
    // Named, so an operator (or a test) can tell it from the pool's connections.
    config.application_name(LISTENER_NAME);
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(StoreError::from)?;
    let (tx, mut notifications) = mpsc::unbounded_channel::<String>();
    // Drives the connection and forwards notifications, in the order the server sent them.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if tx.send(note.payload().to_string()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if resync {
        tracing::info!(target, "revocation listener back; session cache flushed");
        sink.resync();
    }
    let beat = REVOCATION_BOUND / 4;
    let result = loop {
        let heartbeat = tokio::time::timeout(beat, client.simple_query("SELECT 1")).await;
        match heartbeat {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => break Err(error.into()),
            Err(_) => {
                break Err(super::storage(
                    "the revocation listener's heartbeat timed out".into(),
                ))
            }
        }
        // Everything the server sent before the reply is queued: deliver it, then confirm.
        while let Ok(payload) = notifications.try_recv() {
            deliver(sink, &payload);
        }
        sink.confirmed();
        let deadline = tokio::time::Instant::now() + beat;
        loop {
            match tokio::time::timeout_at(deadline, notifications.recv()).await {
                Ok(Some(payload)) => deliver(sink, &payload),
                Ok(None) => break,
                Err(_) => break,
            }
        }
    };
    driver.abort();
    result
}

fn deliver(sink: &dyn RevocationSink, payload: &str) {
    let revocations: Vec<Revocation> = payload.split(' ').filter_map(Revocation::decode).collect();
    if !revocations.is_empty() {
        sink.revoked(&revocations);
    }
}
