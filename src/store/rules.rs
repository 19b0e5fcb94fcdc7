//! Record rules every backend applies the same way, kept here once so the redb and PostgreSQL
//! backends cannot drift apart: what a new user and a new event look like, when a stored
//! ceremony may be spent, which session a complete may create, what a revocation records.
//! Each backend still owns its transaction; these are pure functions over the records.

use uuid::Uuid;

use super::model::{
    Ceremony, CeremonyKind, Event, EventKind, NewEvent, NewUser, Passkey, SessionRecord, User,
};
use super::StoreError;

/// A user as created now: enabled, with a fresh id.
pub(super) fn new_user(new: NewUser, now: i64) -> User {
    User {
        id: Uuid::new_v4(),
        username: new.username,
        display_name: new.display_name,
        email: new.email,
        groups: new.groups,
        disabled: false,
        created_at: now,
    }
}

/// The stored ceremony if it is of `kind` and has not expired; else `CeremonyNotFound`.
pub(super) fn spendable(
    found: Option<Ceremony>,
    kind: CeremonyKind,
    now: i64,
) -> Result<Ceremony, StoreError> {
    found
        .filter(|ceremony| ceremony.kind == kind && ceremony.expires_at > now)
        .ok_or(StoreError::CeremonyNotFound)
}

/// A session created by a complete must name the passkey (and so the user) that created it:
/// deleting that passkey revokes it, and a mismatch would sign in the wrong person.
pub(super) fn check_session_source(
    session: &SessionRecord,
    passkey: &Passkey,
) -> Result<(), StoreError> {
    if session.user_id != passkey.user_id || session.passkey_id != passkey.id {
        return Err(StoreError::Invalid(
            "the new session is not for this passkey",
        ));
    }
    Ok(())
}

/// What a revocation of `count` sessions of one user records.
pub(super) fn revoked_event(user_id: Uuid, count: usize) -> NewEvent {
    NewEvent {
        kind: EventKind::SessionRevoked,
        user_id: Some(user_id),
        passkey_id: None,
        detail: format!("{count} session(s) revoked"),
    }
}

/// An appended event at the slot (`id`, `at`) its backend allotted.
pub(super) fn appended_event(new: NewEvent, id: u64, at: i64) -> Event {
    Event {
        id,
        at,
        kind: new.kind,
        user_id: new.user_id,
        passkey_id: new.passkey_id,
        detail: new.detail,
        count: 1,
        client: None,
        last_at: None,
    }
}
