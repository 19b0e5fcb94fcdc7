//! WebAuthn ceremony state and the atomic completes that consume it.
//!
//! A ceremony is single use: each complete deletes it in the same transaction that stores its
//! result, so two completes racing with one id cannot both succeed. Each complete checks every
//! rule first (ceremony, user, credential uniqueness, passkey cap, enrollment token) and only
//! then writes, so a refused complete changes nothing, not even the ceremony.
//!
//! Not here: verifying the browser's response (webauthn-rs, in the caller) and deciding what a
//! sign count that went backwards means; the caller reports that with `flag_clone_suspected`.

use super::backend::CeremonyStore;
use super::events::append;
use super::model::{
    Ceremony, CeremonyKind, Enrollment, EventKind, LoginCompletion, NewEvent, Passkey,
    RegistrationCompletion, User,
};
use super::rules::{check_registration, check_session_source, record_sign_in, spendable};
use super::tables::{encode, get_by_hash, get_by_id, CEREMONIES};
use super::writer::Batch;
use super::{passkeys, sessions, RedbStore, StoreError};
use async_trait::async_trait;
use redb::{ReadableMultimapTable, ReadableTable, ReadableTableMetadata};
use uuid::Uuid;

#[async_trait]
impl CeremonyStore for RedbStore {
    async fn put_ceremony(&self, ceremony: Ceremony, max_live: u64) -> Result<(), StoreError> {
        // Volatile: a crash may lose a challenge in flight (the browser begins again), never
        // a completed ceremony, whose commit is durable and removes it.
        self.write_volatile(move |batch| {
            // Checked in the writer, which runs one operation at a time: the cap is exact.
            // redb keeps a table's length in its header, so this costs no scan.
            if batch.ceremonies.len()? >= max_live {
                return Err(StoreError::TooManyCeremonies);
            }
            let bytes = encode(&ceremony)?;
            batch
                .ceremonies
                .insert(ceremony.id.as_u128(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError> {
        let now = self.now();
        self.read(move |txn| {
            let ceremony: Option<Ceremony> = get_by_id(&txn.open_table(CEREMONIES)?, id)?;
            Ok(ceremony.filter(|ceremony| ceremony.expires_at > now))
        })
        .await
    }

    async fn ceremony_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(txn.open_table(CEREMONIES)?.len()?))
            .await
    }

    async fn discard_ceremony(&self, id: Uuid) -> Result<(), StoreError> {
        self.write(move |batch| {
            batch.ceremonies.remove(id.as_u128())?;
            Ok(())
        })
        .await
    }

    async fn complete_registration(
        &self,
        completion: RegistrationCompletion,
    ) -> Result<Passkey, StoreError> {
        self.write(move |batch| register(batch, completion)).await
    }

    async fn complete_login(
        &self,
        completion: LoginCompletion,
    ) -> Result<(User, Passkey), StoreError> {
        self.write(move |batch| login(batch, completion)).await
    }

    async fn flag_clone_suspected(
        &self,
        passkey_id: Uuid,
        ceremony_id: Uuid,
    ) -> Result<Passkey, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let mut passkey: Passkey =
                get_by_id(&batch.passkeys, passkey_id)?.ok_or(StoreError::NotFound)?;
            passkey.clone_suspected = true;
            passkeys::put(batch, &passkey)?;
            // Flag even when the ceremony is already gone: the signal matters more.
            batch.ceremonies.remove(ceremony_id.as_u128())?;
            let detail = format!("{:?}: sign count went backwards", passkey.name);
            append(
                batch,
                passkey_event(EventKind::CloneSuspected, &passkey, detail),
                now,
            )?;
            Ok(passkey)
        })
        .await
    }
}

fn register(
    batch: &mut Batch<'_>,
    completion: RegistrationCompletion,
) -> Result<Passkey, StoreError> {
    let RegistrationCompletion {
        ceremony_id,
        passkey,
        spend_enrollment,
        new_session,
        max_passkeys_per_user,
        now,
    } = completion;
    if let Some(session) = &new_session {
        check_session_source(session, &passkey)?;
    }
    let ceremony = live_ceremony(batch, ceremony_id, CeremonyKind::Registration, now)?;
    // A registration ceremony is begun for one user; it cannot be completed for another.
    if ceremony.user_id != Some(passkey.user_id) {
        return Err(StoreError::CeremonyNotFound);
    }
    active_user(batch, passkey.user_id)?;
    if batch
        .credential_ids
        .get(passkey.credential_id.as_slice())?
        .is_some()
        || batch.passkeys.get(passkey.id.as_u128())?.is_some()
    {
        return Err(StoreError::DuplicateCredential);
    }
    let count = batch.user_passkeys.get(passkey.user_id.as_u128())?.len();
    let held = usize::try_from(count).unwrap_or(usize::MAX);
    check_registration(held, max_passkeys_per_user, &ceremony, spend_enrollment)?;
    if let Some(hash) = spend_enrollment {
        let token: Option<Enrollment> = get_by_hash(&batch.enrollments, &hash.0)?;
        match token {
            Some(token) if token.expires_at > now && token.user_id == passkey.user_id => {}
            _ => return Err(StoreError::EnrollmentInvalid),
        }
    }
    // Every check passed; from here on only writes.
    batch.ceremonies.remove(ceremony_id.as_u128())?;
    if let Some(hash) = spend_enrollment {
        batch.enrollments.remove(&hash.0)?;
        batch
            .user_enrollments
            .remove(passkey.user_id.as_u128(), &hash.0)?;
    }
    passkeys::insert(batch, &passkey)?;
    if let Some(session) = &new_session {
        sessions::insert(batch, session)?;
    }
    let how = if spend_enrollment.is_some() {
        "with an enrollment link"
    } else {
        "from a session"
    };
    if spend_enrollment.is_some() {
        let detail = format!("spent by registering {:?}", passkey.name);
        append(
            batch,
            passkey_event(EventKind::EnrollmentSpent, &passkey, detail),
            now,
        )?;
    }
    let detail = format!("{:?} registered {how}", passkey.name);
    append(
        batch,
        passkey_event(EventKind::PasskeyRegistered, &passkey, detail),
        now,
    )?;
    Ok(passkey)
}

fn login(
    batch: &mut Batch<'_>,
    mut completion: LoginCompletion,
) -> Result<(User, Passkey), StoreError> {
    let ceremony = live_ceremony(
        batch,
        completion.ceremony_id,
        CeremonyKind::Login,
        completion.now,
    )?;
    let mut passkey: Passkey =
        get_by_id(&batch.passkeys, completion.passkey_id)?.ok_or(StoreError::NotFound)?;
    // A username-scoped login may only be completed by that user's passkey.
    if ceremony
        .user_id
        .is_some_and(|user_id| user_id != passkey.user_id)
    {
        return Err(StoreError::NotFound);
    }
    let user = active_user(batch, passkey.user_id)?;
    check_session_source(&completion.new_session, &passkey)?;
    // Every check passed; from here on only writes.
    batch.ceremonies.remove(completion.ceremony_id.as_u128())?;
    record_sign_in(&mut passkey, &mut completion);
    passkeys::put(batch, &passkey)?;
    sessions::insert(batch, &completion.new_session)?;
    let detail = format!("with {:?}", passkey.name);
    append(
        batch,
        passkey_event(EventKind::Login, &passkey, detail),
        completion.now,
    )?;
    Ok((user, passkey))
}

/// The ceremony if it exists, is of `kind` and has not expired; else `CeremonyNotFound`.
fn live_ceremony(
    batch: &Batch<'_>,
    id: Uuid,
    kind: CeremonyKind,
    now: i64,
) -> Result<Ceremony, StoreError> {
    spendable(get_by_id(&batch.ceremonies, id)?, kind, now)
}

/// The user if it exists and is not disabled.
fn active_user(batch: &Batch<'_>, id: Uuid) -> Result<User, StoreError> {
    let user: User = get_by_id(&batch.users, id)?.ok_or(StoreError::NotFound)?;
    if user.disabled {
        return Err(StoreError::UserDisabled);
    }
    Ok(user)
}

fn passkey_event(kind: EventKind, passkey: &Passkey, detail: String) -> NewEvent {
    NewEvent {
        kind,
        user_id: Some(passkey.user_id),
        passkey_id: Some(passkey.id),
        detail,
    }
}
