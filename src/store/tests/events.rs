//! Failure tallies, audit retention and the live-ceremony cap.

use super::*;
use crate::store::events::{MAX_TALLIES, TALLY_PERIOD_SECS};

fn failure(client: &str, user_id: Option<Uuid>) -> LoginFailure {
    LoginFailure {
        user_id,
        passkey_id: None,
        client: Some(client.to_string()),
        reason: "login refused".into(),
    }
}

async fn failures_from_one_network_in_one_period_share_a_row(world: World) {
    let t = 1_000 * TALLY_PERIOD_SECS;
    for i in 0..50 {
        let event = world
            .store
            .record_login_failure(failure("2001:db8:1:2::/64", None), t + i)
            .await
            .unwrap();
        assert_eq!(event.count, u64::try_from(i).unwrap() + 1);
    }
    let other = world
        .store
        .record_login_failure(failure("192.0.2.9/32", None), t)
        .await
        .unwrap();
    let next_period = world
        .store
        .record_login_failure(failure("2001:db8:1:2::/64", None), t + TALLY_PERIOD_SECS)
        .await
        .unwrap();
    let events = world.store.events(100).await.unwrap();
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[2].count, 50);
    assert_eq!(events[2].last_at, Some(t + 49));
    assert_eq!(events[2].client.as_deref(), Some("2001:db8:1:2::/64"));
    assert_eq!((other.count, next_period.count), (1, 1));
}

async fn a_busy_period_holds_a_bounded_number_of_rows(world: World) {
    let t = 2_000 * TALLY_PERIOD_SECS;
    for i in 0..(MAX_TALLIES + 50) {
        let client = format!("2001:db8:{i:x}::/64");
        world
            .store
            .record_login_failure(failure(&client, None), t)
            .await
            .unwrap();
    }
    let events = world.store.events(10_000).await.unwrap();
    assert_eq!(events.len(), MAX_TALLIES + 1);
    let overflow = &events[0];
    assert_eq!(
        (overflow.client.as_deref(), overflow.count),
        (Some("*"), 50)
    );
}

async fn retention_deletes_old_events_and_stale_tallies(world: World) {
    let t = 3_000 * TALLY_PERIOD_SECS;
    world
        .store
        .record_login_failure(failure("192.0.2.1/32", None), t)
        .await
        .unwrap();
    world
        .store
        .record_login_failure(failure("192.0.2.2/32", None), t + 10 * TALLY_PERIOD_SECS)
        .await
        .unwrap();
    let purged = world
        .store
        .purge_events(t + 5 * TALLY_PERIOD_SECS, t + 10 * TALLY_PERIOD_SECS)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let left = world.store.events(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].client.as_deref(), Some("192.0.2.2/32"));
    // A tally whose row was purged starts a new row rather than reviving the old one.
    let again = world
        .store
        .record_login_failure(failure("192.0.2.1/32", None), t + 10 * TALLY_PERIOD_SECS)
        .await
        .unwrap();
    assert_eq!(again.count, 1);
}

async fn the_ceremony_cap_counts_stored_ceremonies(world: World) {
    let ceremony = |id| Ceremony {
        id,
        kind: CeremonyKind::Login,
        user_id: None,
        enrollment_token_hash: None,
        state: Vec::new(),
        passkey_name: None,
        expires_at: unix_now() + 300,
    };
    for _ in 0..3 {
        world
            .store
            .put_ceremony(ceremony(Uuid::new_v4()), 3)
            .await
            .unwrap();
    }
    assert!(matches!(
        world.store.put_ceremony(ceremony(Uuid::new_v4()), 3).await,
        Err(StoreError::TooManyCeremonies)
    ));
    assert_eq!(world.store.ceremony_count().await.unwrap(), 3);
    world.store.purge_expired(unix_now() + 301).await.unwrap();
    world
        .store
        .put_ceremony(ceremony(Uuid::new_v4()), 3)
        .await
        .unwrap();
}

// Many writers at once (on PostgreSQL each on a pooled connection of its own, committing in any
// order) and a tailer reading by id meanwhile, as `events --follow` and the webhooks do: the
// tailer sees every event exactly once, ids 1, 2, 3, … with no gap, times never going backwards.
async fn a_tailer_sees_every_event_once_in_order_while_many_write(world: World) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let store = world.store.clone();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let new = NewEvent {
                        kind: EventKind::KeysRotated,
                        user_id: None,
                        passkey_id: None,
                        detail: format!("{w}/{i}"),
                    };
                    store.record_event(new, 1_000 + i as i64).await.unwrap();
                }
            })
        })
        .collect();
    let mut seen: Vec<Event> = Vec::new();
    while seen.len() < WRITERS * EACH {
        let after = seen.last().map_or(0, |e| e.id);
        let page = store.events_after(after, 7).await.unwrap();
        if page.is_empty() {
            tokio::task::yield_now().await;
        }
        seen.extend(page);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let ids: Vec<u64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    assert!(seen.windows(2).all(|pair| pair[0].at <= pair[1].at));
    let mut details: Vec<&str> = seen.iter().map(|e| e.detail.as_str()).collect();
    details.sort_unstable();
    details.dedup();
    assert_eq!(details.len(), WRITERS * EACH);
    assert!(store
        .events_after(ids[ids.len() - 1], 10)
        .await
        .unwrap()
        .is_empty());
}

super::contract_tests!(
    a_tailer_sees_every_event_once_in_order_while_many_write,
    failures_from_one_network_in_one_period_share_a_row,
    a_busy_period_holds_a_bounded_number_of_rows,
    retention_deletes_old_events_and_stale_tallies,
    the_ceremony_cap_counts_stored_ceremonies,
);
