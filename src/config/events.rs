//! `[events]` and `[[events.webhook]]`: where audit events are sent, signed, and the bounds of
//! the delivery queue.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::store::EventKind;

/// `[events]`: the webhooks and their delivery bounds (shared by all webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    #[serde(rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// Deliveries waiting per webhook at most; beyond it the oldest is dropped (and counted).
    pub queue_size: usize,
    /// Attempts per delivery, the first included, before it is dropped (and counted).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled at each next one, up to 5 minutes.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// How long one attempt may take, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            webhooks: Vec::new(),
            queue_size: 1024,
            max_attempts: 8,
            retry_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One `[[events.webhook]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: url::Url,
    /// Event kinds to send; empty sends every kind.
    #[serde(default)]
    pub kinds: Vec<EventKind>,
    /// The HMAC-SHA256 key the receiver verifies the signature header with.
    pub secret: String,
}

// By hand: the secret never reaches a log line or a `{:?}`.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_str())
            .field("kinds", &self.kinds)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Shortest secret accepted: 128 bits of hex, or a long passphrase.
const MIN_SECRET: usize = 16;

pub(super) fn check(events: &EventsConfig) -> Result<(), (String, String)> {
    let fail = |key: String, reason: &str| Err((key, reason.to_string()));
    if events.queue_size == 0 {
        return fail("events.queue_size".into(), "must be at least 1");
    }
    if events.max_attempts == 0 {
        return fail("events.max_attempts".into(), "must be at least 1");
    }
    if events.retry_backoff.is_zero() {
        return fail("events.retry_backoff".into(), "must be longer than zero");
    }
    if events.timeout.is_zero() {
        return fail("events.timeout".into(), "must be longer than zero");
    }
    for (i, hook) in events.webhooks.iter().enumerate() {
        if !matches!(hook.url.scheme(), "http" | "https") {
            return fail(
                format!("events.webhook[{i}].url"),
                "must be an http:// or https:// URL",
            );
        }
        if hook.secret.chars().count() < MIN_SECRET {
            return fail(
                format!("events.webhook[{i}].secret"),
                "must be at least 16 characters (e.g. `openssl rand -hex 32`)",
            );
        }
    }
    Ok(())
}
