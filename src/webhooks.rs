//! Webhooks (`[[events.webhook]]`): every audit event of the configured kinds is POSTed as
//! JSON, signed with HMAC-SHA256, retried with exponential backoff.
//!
//! Nothing on a request's path waits for a receiver: the dispatcher reads committed events from
//! the store (by id, after the last one it saw, every [`POLL_EVERY`]) on its own task, and each
//! webhook has its own bounded in-memory queue and worker. Stated limits: at most
//! `events.queue_size` deliveries wait per webhook (beyond it the oldest is dropped); each is
//! tried `events.max_attempts` times, `events.timeout` each, waiting `events.retry_backoff`
//! doubled after every failure (capped at [`MAX_BACKOFF`]); the queue is lost on restart, and
//! events from before the start are not sent. Drops are logged and counted
//! (`webhook_deliveries_total{outcome="dropped"}`).
//!
//! Signature: `X-Passkey-Gateway-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256 with the webhook's secret over `<t>.<body>`; a receiver recomputes it, compares
//! in constant time, and refuses an old `t` (replay). `X-Passkey-Gateway-Delivery` is the
//! event id (the same across retries, for deduplication).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::config::{EventsConfig, WebhookConfig};
use crate::gateway::Gateway;
use crate::store::Event;

/// How often the dispatcher looks for new events.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Events read per poll at most.
const PAGE: usize = 512;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-passkey-gateway-signature";

/// `t=<now>,v1=<hex HMAC-SHA256(secret, "<now>.<body>")>`.
pub fn signature(secret: &str, now: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(now.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={now},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends events to every configured webhook until the task is dropped; returns at once when
/// none is configured. Events committed from when it has read the log's end on are sent.
pub async fn run(gw: Arc<Gateway>) {
    let cursor = log_end(&gw).await;
    run_from(gw, cursor).await;
}

/// Reads the log's end first, then runs the webhooks in a task: every event committed after
/// this returns is sent (for callers, such as tests, that act right after starting them).
pub async fn start(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    let cursor = log_end(&gw).await;
    tokio::spawn(run_from(gw, cursor))
}

/// The newest event's id now (0 for an empty log); retried while the store does not answer.
async fn log_end(gw: &Gateway) -> u64 {
    loop {
        match gw.store().events(1).await {
            Ok(newest) => return newest.first().map_or(0, |e| e.id),
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot read the event log yet"),
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn run_from(gw: Arc<Gateway>, cursor: u64) {
    let config = gw.config();
    let events = config.events.clone();
    if events.webhooks.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(events.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; none will be sent");
            return;
        }
    };
    let hooks: Vec<Arc<Hook>> = events
        .webhooks
        .iter()
        .map(|config| Arc::new(Hook::new(config.clone(), events.queue_size)))
        .collect();
    let mut workers = Vec::new();
    for hook in &hooks {
        let (hook, gw, client, events) = (hook.clone(), gw.clone(), client.clone(), events.clone());
        workers.push(tokio::spawn(async move {
            hook.work(&gw, &client, &events).await
        }));
    }
    // Dropped with this task: the workers stop too.
    let _stop = AbortAll(workers);
    dispatch(&gw, &hooks, cursor).await;
}

/// Aborts the workers when the dispatcher's task ends.
struct AbortAll(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for worker in &self.0 {
            worker.abort();
        }
    }
}

/// Reads new events and queues each for the webhooks that want its kind.
/// Only events after `cursor`: a restart does not resend the whole log.
async fn dispatch(gw: &Gateway, hooks: &[Arc<Hook>], mut cursor: u64) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        tick.tick().await;
        let page = match gw.store().events_after(cursor, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot read new events");
                continue;
            }
        };
        for event in page {
            cursor = event.id;
            for hook in hooks {
                if hook.config.kinds.is_empty() || hook.config.kinds.contains(&event.kind) {
                    hook.push(&event, gw);
                }
            }
        }
    }
}

/// One webhook: its config, its queue of JSON bodies, and the bell its worker waits on.
struct Hook {
    config: WebhookConfig,
    queue: Mutex<VecDeque<(u64, String, Vec<u8>)>>,
    capacity: usize,
    bell: Notify,
}

impl Hook {
    fn new(config: WebhookConfig, capacity: usize) -> Hook {
        Hook {
            config,
            queue: Mutex::new(VecDeque::new()),
            capacity,
            bell: Notify::new(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, String, Vec<u8>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one event; a full queue drops its oldest delivery.
    fn push(&self, event: &Event, gw: &Gateway) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot encode an event");
                return;
            }
        };
        let dropped = {
            let mut queue = self.queue();
            let dropped = (queue.len() >= self.capacity)
                .then(|| queue.pop_front())
                .flatten();
            queue.push_back((event.id, event.kind.as_str().to_string(), body));
            dropped
        };
        if let Some((id, _, _)) = dropped {
            gw.metrics().webhook("dropped");
            tracing::warn!(url = %self.config.url, event = id, "webhook queue full: oldest delivery dropped");
        }
        self.bell.notify_one();
    }

    /// Delivers the queue in order, one delivery at a time, until the task is dropped.
    async fn work(&self, gw: &Gateway, client: &reqwest::Client, limits: &EventsConfig) {
        loop {
            let next = self.queue().front().cloned();
            let Some((id, kind, body)) = next else {
                self.bell.notified().await;
                continue;
            };
            let mut backoff = limits.retry_backoff;
            let mut delivered = false;
            for attempt in 1..=limits.max_attempts {
                match self.attempt(client, gw.now(), id, &kind, &body).await {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(why) if attempt < limits.max_attempts => {
                        gw.metrics().webhook("retried");
                        tracing::debug!(url = %self.config.url, event = id, attempt, %why, "webhook attempt failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(why) => {
                        tracing::warn!(url = %self.config.url, event = id, attempts = attempt, %why, "webhook delivery dropped");
                    }
                }
            }
            gw.metrics()
                .webhook(if delivered { "delivered" } else { "dropped" });
            // The head is ours unless `push` dropped it meanwhile (queue full): remove by id.
            let mut queue = self.queue();
            if queue.front().is_some_and(|(head, _, _)| *head == id) {
                queue.pop_front();
            }
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        now: i64,
        id: u64,
        kind: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let response = client
            .post(self.config.url.clone())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("passkey-gateway/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-passkey-gateway-event", kind)
            .header("x-passkey-gateway-delivery", id.to_string())
            .header(SIGNATURE_HEADER, signature(&self.config.secret, now, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // RFC 4231-style check against an independent computation of the same construction.
        let sig = signature("0123456789abcdef", 1_700_000_000, b"{\"id\":1}");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"0123456789abcdef").expect("key");
        mac.update(b"1700000000.{\"id\":1}");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={want}"));
        assert_ne!(
            signature("another secret!!", 1_700_000_000, b"{\"id\":1}"),
            sig
        );
    }
}
