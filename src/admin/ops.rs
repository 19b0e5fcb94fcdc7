//! Each admin verb: one function, plain-text output (one line per item, stable for grep).

use std::fmt::Write as _;

use uuid::Uuid;

use super::{AdminError, Target};
use crate::cli::{PasskeyCommand, SessionCommand, UserCommand};
use crate::gateway::rotate_key_file;
use crate::passkey::{issue_enrollment, provider_name, rfc3339, Storage};
use crate::policy::Username;
use crate::session::public_id;
use crate::store::{NewUser, StoreError, User};

pub async fn user(target: &Target, cmd: UserCommand) -> Result<String, AdminError> {
    let store = target.store();
    match cmd {
        UserCommand::Add {
            name,
            display_name,
            email,
            groups,
        } => {
            let username = Username::parse(&name)
                .map_err(|e| AdminError::Refused(format!("`{}` is {e}", name.trim())))?;
            let user = store
                .create_user(NewUser {
                    display_name: display_name.unwrap_or_else(|| name.trim().to_string()),
                    username: username.to_string(),
                    email,
                    groups,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => {
                        AdminError::Refused(format!("a user named `{username}` already exists"))
                    }
                    other => other.into(),
                })?;
            let link = invite(target, &user).await?;
            Ok(format!(
                "created user {} ({})\n{link}",
                user.username, user.id
            ))
        }
        UserCommand::Invite { name } => {
            let user = existing(target, &name).await?;
            invite(target, &user).await
        }
        UserCommand::List => {
            let mut out = String::new();
            for user in store.list_users().await? {
                let passkeys = store.passkeys_of(user.id).await?.len();
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\tgroups={}\tpasskeys={passkeys}",
                    user.username,
                    user.id,
                    if user.disabled { "disabled" } else { "enabled" },
                    user.groups.join(",")
                );
            }
            Ok(out.trim_end().to_string())
        }
        UserCommand::Show { name } => show(target, &name).await,
        UserCommand::Disable { name } => set_disabled(target, &name, true).await,
        UserCommand::Enable { name } => set_disabled(target, &name, false).await,
        UserCommand::Remove { name } => {
            let user = existing(target, &name).await?;
            let revoked = target.sessions().remove_user(&user).await?;
            Ok(format!(
                "removed user {} ({revoked} sessions revoked)",
                user.username
            ))
        }
        UserCommand::Groups { name, groups } => {
            let user = existing(target, &name).await?;
            let user = target.sessions().set_user_groups(&user, groups).await?;
            Ok(format!(
                "groups of {}: {}",
                user.username,
                if user.groups.is_empty() {
                    "-".to_string()
                } else {
                    user.groups.join(",")
                }
            ))
        }
    }
}

pub async fn passkey(target: &Target, cmd: PasskeyCommand) -> Result<String, AdminError> {
    let store = target.store();
    match cmd {
        PasskeyCommand::List { name } => {
            let user = existing(target, &name).await?;
            let mut out = String::new();
            for p in store.passkeys_of(user.id).await? {
                let _ = writeln!(
                    out,
                    "{}\t{}\tprovider={}\tstorage={}\tcreated={}\tlast_used={}{}",
                    p.id,
                    p.name,
                    p.aaguid
                        .as_deref()
                        .and_then(provider_name)
                        .unwrap_or("unknown"),
                    Storage::of(&p).label(),
                    rfc3339(p.created_at),
                    p.last_used_at.map_or("never".to_string(), rfc3339),
                    if p.clone_suspected {
                        "\tCLONE_SUSPECTED"
                    } else {
                        ""
                    }
                );
            }
            Ok(out.trim_end().to_string())
        }
        PasskeyCommand::Revoke { id } => {
            let id: Uuid = id
                .parse()
                .map_err(|_| AdminError::Refused(format!("`{id}` is not a passkey id")))?;
            let revoked = target
                .sessions()
                .revoke_passkey(id)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => {
                        AdminError::Refused(format!("no passkey with id `{id}`"))
                    }
                    other => other.into(),
                })?;
            Ok(format!("revoked passkey {id} ({revoked} sessions revoked)"))
        }
    }
}

pub async fn session(target: &Target, cmd: SessionCommand) -> Result<String, AdminError> {
    let store = target.store();
    match cmd {
        SessionCommand::List { name } => {
            let user_id = match name {
                Some(name) => Some(existing(target, &name).await?.id),
                None => None,
            };
            let users = store.list_users().await?;
            let mut out = String::new();
            for s in target.sessions().list(user_id, target.now()).await? {
                let who = users
                    .iter()
                    .find(|u| u.id == s.user_id)
                    .map_or("?", |u| u.username.as_str());
                let _ = writeln!(
                    out,
                    "{}\t{who}\tcreated={}\tlast_seen={}\texpires={}\tclient={}\tdevice={}",
                    public_id(&s.id_hash),
                    rfc3339(s.created_at),
                    rfc3339(s.last_seen),
                    rfc3339(s.expires_at),
                    s.client.as_deref().unwrap_or("unknown"),
                    s.device.as_deref().unwrap_or("unknown"),
                );
            }
            Ok(out.trim_end().to_string())
        }
        SessionCommand::Revoke {
            user: Some(name), ..
        } => {
            let user = existing(target, &name).await?;
            let revoked = target.sessions().end_all_of(user.id).await?;
            Ok(format!("revoked {revoked} sessions of {}", user.username))
        }
        SessionCommand::Revoke { id: Some(id), .. } => {
            let sessions = target.sessions().list(None, target.now()).await?;
            let found = sessions.iter().find(|s| public_id(&s.id_hash) == id);
            let ended = match found {
                Some(session) => target.sessions().end(session.id_hash).await?,
                None => false,
            };
            if !ended {
                return Err(AdminError::Refused(format!("no session with id `{id}`")));
            }
            Ok(format!("revoked session {id}"))
        }
        SessionCommand::Revoke { .. } => Err(AdminError::Refused(
            "give a session id or --user NAME".into(),
        )),
    }
}

pub async fn rotate_keys(target: &Target) -> Result<String, AdminError> {
    let kid = match target {
        Target::Live(gw) => gw.rotate_keys()?,
        Target::Offline { config, store, .. } if store.keeps_signing_keys() => {
            let identity = &config.identity;
            let shared = crate::gateway::shared_keys(config, store)?;
            let (_, ring) = shared.rotate_blocking(identity.algorithm, identity.key_overlap)?;
            ring.current().kid().to_string()
        }
        Target::Offline { config, .. } => {
            let ring = rotate_key_file(config)?;
            ring.current().kid().to_string()
        }
    };
    let overlap = humantime::format_duration(target.config().identity.key_overlap);
    let done = format!("new signing key {kid}; the previous key stays published for {overlap}");
    // The rotation has happened whatever the audit log says: report, do not fail.
    let event = crate::store::NewEvent {
        kind: crate::store::EventKind::KeysRotated,
        user_id: None,
        passkey_id: None,
        detail: format!("new signing key {kid}"),
    };
    Ok(
        match target.store().record_event(event, target.now()).await {
            Ok(_) => done,
            Err(e) => format!("{done}\n(the audit event could not be written: {e})"),
        },
    )
}

/// A new one-time enrollment link for `user`; only the token's hash is stored.
async fn invite(target: &Target, user: &User) -> Result<String, AdminError> {
    let config = target.config();
    let ttl = config.enrollment.token_ttl;
    let link = issue_enrollment(target.store(), user.id, ttl, target.now()).await?;
    Ok(format!(
        "enrollment link: {}\nexpires: {}",
        link.url(&config.public_origin()),
        rfc3339(link.expires_at)
    ))
}

async fn show(target: &Target, name: &Username) -> Result<String, AdminError> {
    let store = target.store();
    let user = existing(target, name).await?;
    let passkeys = store.passkeys_of(user.id).await?;
    let sessions = target.sessions().list(Some(user.id), target.now()).await?;
    let mut out = format!(
        "username: {}\nid: {}\ndisplay_name: {}\nemail: {}\ngroups: {}\nstatus: {}\ncreated: {}\nsessions: {}\npasskeys: {}",
        user.username,
        user.id,
        user.display_name,
        user.email.as_deref().unwrap_or("-"),
        user.groups.join(","),
        if user.disabled { "disabled" } else { "enabled" },
        rfc3339(user.created_at),
        sessions.len(),
        passkeys.len()
    );
    for p in passkeys {
        let _ = write!(out, "\n  {}\t{}", p.id, p.name);
    }
    Ok(out)
}

async fn set_disabled(
    target: &Target,
    name: &Username,
    disabled: bool,
) -> Result<String, AdminError> {
    let user = existing(target, name).await?;
    let sessions = target.sessions();
    Ok(if disabled {
        let revoked = sessions.disable_user(&user).await?;
        format!("disabled {} ({revoked} sessions revoked)", user.username)
    } else {
        sessions.enable_user(&user).await?;
        format!("enabled {}", user.username)
    })
}

async fn existing(target: &Target, name: &Username) -> Result<User, AdminError> {
    target
        .store()
        .user_by_name(name.as_str())
        .await?
        .ok_or_else(|| AdminError::Refused(format!("no user named `{name}`")))
}
