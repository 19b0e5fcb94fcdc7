//! Record rules every backend applies the same way, kept here once so the redb and PostgreSQL
//! backends cannot drift apart: what a new user and a new event look like, when a stored
//! ceremony may be spent, which session a complete may create, what a revocation records.
//! Each backend still owns its transaction; these are pure functions over the records.

use uuid::Uuid;

use super::model::{
    Ceremony, CeremonyKind, Event, EventKind, LoginCompletion, LoginFailure, NewEvent, NewUser,
    Passkey, SecretHash, SessionRecord, User,
};
use super::StoreError;

/// A sign-in's effect on its passkey, stored as the complete commits. Never backwards: a
/// concurrent sign-in that overtook this one (verified against the same stored count, committed
/// first) left a newer count and credential and a later time of use; keep them. The time matters
/// as much as the count: a login whose count is behind tells a clone from an overtaken second tab
/// by it (`passkey/login.rs`, `count_behind`), so a time moved back would flag a genuine
/// authenticator.
pub(super) fn record_sign_in(passkey: &mut Passkey, completion: &mut LoginCompletion) {
    if completion.new_sign_count >= passkey.sign_count {
        passkey.sign_count = completion.new_sign_count;
        passkey.backup_state = completion.backup_state;
        passkey.backup_eligible = completion.backup_eligible;
        if let Some(credential) = completion.credential.take() {
            passkey.credential = credential;
        }
    }
    passkey.last_used_at = passkey.last_used_at.max(Some(completion.now));
}

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

/// What a registration's complete checks before it writes: the user's passkey cap (`held` is how
/// many they have now), and that a ceremony begun with an enrollment link spends that very link.
pub(super) fn check_registration(
    held: usize,
    max_passkeys_per_user: usize,
    ceremony: &Ceremony,
    spend_enrollment: Option<SecretHash>,
) -> Result<(), StoreError> {
    if held >= max_passkeys_per_user {
        return Err(StoreError::TooManyPasskeys {
            max: max_passkeys_per_user,
        });
    }
    if ceremony.enrollment_token_hash.is_some()
        && ceremony.enrollment_token_hash != spend_enrollment
    {
        return Err(StoreError::EnrollmentInvalid);
    }
    Ok(())
}

/// The first row of a failed-sign-in tally at slot (`id`, `at`); the overflow row of a busy
/// period names no user and the client `*`.
pub(super) fn new_tally(
    (id, at): (u64, i64),
    kind: EventKind,
    failure: LoginFailure,
    client: String,
    overflow: bool,
) -> Event {
    Event {
        id,
        at,
        kind,
        user_id: if overflow { None } else { failure.user_id },
        passkey_id: if overflow { None } else { failure.passkey_id },
        detail: failure.reason,
        count: 1,
        client: Some(if overflow { "*".into() } else { client }),
        last_at: Some(at),
    }
}
