//! `passkey-gateway events`: the audit log, filtered, oldest first, once or `--follow`ing.
//!
//! The query runs where the store is (the live gateway through its admin socket, or the store
//! file when none runs) and pages through the log by id, so a filter never misses a match that
//! a "newest N" read would have cut off. `--follow` asks again for events after the last id it
//! printed, every [`FOLLOW_EVERY`]: the cursor makes it lose and repeat nothing.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AdminError, Target};
use crate::store::{Event, EventKind};

/// How often `--follow` asks for new events.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Events read from the store per page.
const PAGE: usize = 1000;

/// Events one answer carries at most (the newest matches when more match).
pub const MAX_EVENTS: usize = 10_000;

/// What to show: the CLI's filters, as they travel over the admin socket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventQuery {
    /// Only events with an id above this (the `--follow` cursor).
    pub after: u64,
    /// Only events at most this many seconds old, by the answering gateway's clock.
    pub since_secs: Option<u64>,
    /// Only this user's events (by username).
    pub user: Option<String>,
    pub kind: Option<EventKind>,
    /// The newest this many matches at most.
    pub limit: usize,
}

/// One event as printed: the stored record and its user's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLine {
    #[serde(flatten)]
    pub event: Event,
    pub username: Option<String>,
}

/// One answer: the matching events, oldest first, and the id to ask after next time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventLine>,
    /// The last id read (matching or not): `--follow` continues after it.
    pub cursor: u64,
}

/// Runs `query` against the store.
pub async fn query(target: &Target, query: EventQuery) -> Result<EventPage, AdminError> {
    let store = target.store();
    let user_id = match &query.user {
        Some(name) => Some(
            store
                .user_by_name(name)
                .await?
                .ok_or_else(|| AdminError::Refused(format!("no user named {name:?}")))?
                .id,
        ),
        None => None,
    };
    let not_before = query.since_secs.map(|secs| {
        target
            .now()
            .saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX))
    });
    let limit = query.limit.clamp(1, MAX_EVENTS);
    let mut matches = VecDeque::with_capacity(limit.min(PAGE));
    let mut cursor = query.after;
    loop {
        let page = store.events_after(cursor, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = last.id;
        for event in page {
            let wanted = user_id.is_none_or(|id| event.user_id == Some(id))
                && query.kind.is_none_or(|kind| event.kind == kind)
                && not_before.is_none_or(|t| event.last_at.unwrap_or(event.at) >= t);
            if wanted {
                if matches.len() == limit {
                    matches.pop_front();
                }
                matches.push_back(event);
            }
        }
    }
    let names: HashMap<Uuid, String> = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let events = matches
        .into_iter()
        .map(|event| EventLine {
            username: event.user_id.and_then(|id| names.get(&id).cloned()),
            event,
        })
        .collect();
    Ok(EventPage { events, cursor })
}

/// One event as a line of text: time, kind, user, detail, and a tally's count and client.
pub fn render(line: &EventLine) -> String {
    let e = &line.event;
    let when = u64::try_from(e.at)
        .ok()
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut text = format!(
        "{}  #{:<6} {:<20} {:<16} {}",
        humantime::format_rfc3339_seconds(when),
        e.id,
        e.kind.as_str(),
        line.username.as_deref().unwrap_or("-"),
        e.detail
    );
    if e.count > 1 {
        text.push_str(&format!(" (x{})", e.count));
    }
    if let Some(client) = &e.client {
        text.push_str(&format!(" [client {client}]"));
    }
    text
}

/// Parses `--kind`: the snake_case names the log prints.
pub fn parse_kind(text: &str) -> Result<EventKind, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("unknown event kind {text:?}"))
}

/// The `events` command: one query, or a query every [`FOLLOW_EVERY`] with `--follow`.
pub fn run(config: &std::path::Path, args: &crate::cli::EventsArgs) -> anyhow::Result<()> {
    let kind = args
        .kind
        .as_deref()
        .map(parse_kind)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut query = EventQuery {
        after: 0,
        since_secs: args.since.map(|d| d.as_secs()),
        user: args.user.clone(),
        kind,
        limit: args.limit,
    };
    loop {
        let answer =
            crate::commands::admin_output(config, super::AdminCommand::Events(query.clone()))?;
        let page: EventPage = serde_json::from_str(&answer)?;
        for line in &page.events {
            if args.json {
                println!("{}", serde_json::to_string(line)?);
            } else {
                println!("{}", render(line));
            }
        }
        if !args.follow {
            return Ok(());
        }
        // From here on everything after the cursor is new: none is cut by the limit.
        query.after = page.cursor;
        query.limit = MAX_EVENTS;
        std::thread::sleep(FOLLOW_EVERY);
    }
}
