// account.js: the signed-in person's page (/passkeys/account).
//
// Owns: who is signed in (#who), the list of their passkeys (#passkeys) with
// provider, synced state, inline rename and a two-step delete, "Add another
// passkey", sign out, and the WebAuthn Signal API calls that keep the
// browser's passkey manager in step.
// One action runs at a time; while it runs every control is disabled. A 401
// from any call means the session is gone (signed out elsewhere, or the
// passkey that created it was just deleted): go to the login page. A
// reauth_required (credential changes need a recent passkey check) opens
// #reauth; once the person confirms, the same action runs again.
// Everything the server sends is inserted with textContent, never as HTML.
// Does not own: encoding, the API client or error wording (webauthn.js), the
// sessions list (account-sessions.js), the add-a-device link (account-link.js).

import {
  ApiError,
  UnsupportedError,
  describeError,
  lockControls,
  registerPasskey,
  requestJSON,
  showStatus,
  signal,
  webauthnSupported,
} from '/passkeys/static/webauthn.js';
import { loadSessions, wireSessions } from '/passkeys/static/account-sessions.js';
import { wireLink } from '/passkeys/static/account-link.js';
import { askToConfirm, reauthNeeded, wireReauth } from '/passkeys/static/account-reauth.js';

const LOGIN_AGAIN = '/passkeys/login?return_to=/passkeys/account';

const main = document.getElementById('main');
const who = document.getElementById('who');
const list = document.getElementById('passkeys');
const listHeading = document.getElementById('passkeys-heading');
const itemTemplate = document.getElementById('passkey-item');
const addForm = document.getElementById('add-form');
const addName = document.getElementById('add-name');
const addButton = document.getElementById('add');
const signoutButton = document.getElementById('signout');

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

let busy = false;
let leaving = false;
// From /passkeys/me: the username (to sign in again) and what Signal API calls name.
let me = null;

// ---------------------------------------------------------------------------
// Running one action at a time

function sessionEnded(error) {
  return error instanceof ApiError && error.status === 401;
}


function leaveFor(url) {
  leaving = true;
  location.assign(url);
}

/** Runs `task` with every control disabled; reports its failure in #status. */
async function run(task, ceremony = 'other') {
  if (busy || leaving) return;
  busy = true;
  const unlock = lockControls(main);
  try {
    await task();
  } catch (error) {
    if (sessionEnded(error)) {
      leaveFor(LOGIN_AGAIN);
    } else if (reauthNeeded(error)) {
      askToConfirm(() => run(task, ceremony));
    } else {
      showStatus(describeError(error, ceremony), 'error');
    }
  } finally {
    busy = false;
    // Leaving: keep everything disabled while the browser navigates.
    if (!leaving) unlock();
  }
}

// ---------------------------------------------------------------------------
// Who is signed in

async function loadWho() {
  me = await requestJSON('GET', '/passkeys/me');
  const username = typeof me?.username === 'string' ? me.username : '';
  const displayName = typeof me?.display_name === 'string' && me.display_name ? me.display_name : username;
  const strong = document.createElement('strong');
  strong.textContent = displayName;
  const parts = ['Signed in as ', strong];
  if (username && username !== displayName) parts.push(` (${username})`);
  if (typeof me?.email === 'string' && me.email) parts.push(` · ${me.email}`);
  parts.push('.');
  who.replaceChildren(...parts);
  const rp = webauthnOf(me);
  if (rp && username) {
    // Keeps the names the browser shows for this account current (an administrator may
    // have renamed it).
    signal('signalCurrentUserDetails', {
      rpId: rp.rpId,
      userId: rp.userId,
      name: username,
      displayName,
    });
  }
}

/** `{rpId, userId}` from /passkeys/me, or null. */
function webauthnOf(profile) {
  const rpId = profile?.webauthn?.rp_id;
  const userId = profile?.webauthn?.user_handle;
  return typeof rpId === 'string' && typeof userId === 'string' ? { rpId, userId } : null;
}

// ---------------------------------------------------------------------------
// The passkey list

async function loadPasskeys() {
  const passkeys = await requestJSON('GET', '/passkeys/credentials');
  if (!Array.isArray(passkeys)) throw new ApiError(200, 'unreadable_response', '');
  renderPasskeys(passkeys);
  const rp = webauthnOf(me);
  const ids = passkeys.map((passkey) => passkey.credential_id).filter((id) => typeof id === 'string');
  // Only a list the server really sent: the browser hides every passkey not in it.
  if (rp && ids.length > 0 && ids.length === passkeys.length) {
    signal('signalAllAcceptedCredentials', {
      rpId: rp.rpId,
      userId: rp.userId,
      allAcceptedCredentialIds: ids,
    });
  }
}

function renderPasskeys(passkeys) {
  const onlyOne = passkeys.length === 1;
  const items = passkeys.map((passkey, index) => renderPasskey(passkey, index, onlyOne));
  if (items.length === 0) {
    const empty = document.createElement('li');
    empty.className = 'empty';
    empty.textContent = 'You have no passkeys yet. Add one below.';
    items.push(empty);
  }
  list.replaceChildren(...items);
  list.removeAttribute('aria-busy');
}

function renderPasskey(passkey, index, onlyOne) {
  const item = itemTemplate.content.firstElementChild.cloneNode(true);
  const name = passkeyName(passkey);
  item.dataset.id = String(passkey.id);
  item.dataset.name = name;
  item.querySelector('.name').textContent = name;
  item.dataset.credentialId = String(passkey.credential_id ?? '');
  item.querySelector('.synced').hidden = passkey.storage !== 'synced';
  item.querySelector('.provider').textContent =
    typeof passkey.provider === 'string' && passkey.provider ? passkey.provider : 'Unknown provider';
  item.querySelector('.storage').textContent = STORAGE[passkey.storage] ?? 'Storage unknown';
  fillTime(item.querySelector('.created'), passkey.created_at);

  const lastUsed = item.querySelector('.last-used');
  const lastUsedAt = parseTimestamp(passkey.last_used_at);
  if (lastUsedAt) {
    const time = document.createElement('time');
    fillTime(time, passkey.last_used_at);
    lastUsed.replaceChildren(time);
  } else {
    lastUsed.textContent = 'never';
  }

  // Unique ids so labels, descriptions and aria-controls point at this item.
  const form = item.querySelector('.rename-form');
  const input = item.querySelector('.rename-input');
  const confirm = item.querySelector('.confirm');
  const note = item.querySelector('.delete-note');
  form.id = `rename-form-${index}`;
  input.id = `rename-input-${index}`;
  item.querySelector('.rename-label').htmlFor = input.id;
  confirm.id = `confirm-delete-${index}`;
  note.id = `delete-note-${index}`;

  const renameButton = item.querySelector('.rename');
  const deleteButton = item.querySelector('.delete');
  renameButton.setAttribute('aria-controls', form.id);
  renameButton.setAttribute('aria-label', `Rename ${name}`);
  deleteButton.setAttribute('aria-controls', confirm.id);
  deleteButton.setAttribute('aria-label', `Delete ${name}`);
  if (onlyOne) {
    deleteButton.disabled = true;
    deleteButton.setAttribute('aria-describedby', note.id);
    note.hidden = false;
  }
  return item;
}

const STORAGE = {
  synced: 'Synced to your other devices',
  sync_allowed: 'Can sync, not backed up yet',
  device_bound: 'On this one device only',
};

function passkeyName(passkey) {
  return typeof passkey.name === 'string' && passkey.name.trim() ? passkey.name : 'Unnamed passkey';
}

/** Accepts RFC 3339 strings, or Unix time in seconds or milliseconds. */
function parseTimestamp(value) {
  if (value === null || value === undefined || value === '') return null;
  const date = typeof value === 'number'
    ? new Date(value < 1e12 ? value * 1000 : value)
    : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function fillTime(element, value) {
  const date = parseTimestamp(value);
  if (!date) {
    element.textContent = 'unknown';
    return;
  }
  element.dateTime = date.toISOString();
  element.textContent = dateFormat.format(date);
}

function itemFor(element) {
  return element.closest('li[data-id]');
}

function focusInItem(id, selector) {
  const item = [...list.children].find((li) => li.dataset.id === id);
  (item?.querySelector(selector) ?? listHeading).focus();
}

// ---------------------------------------------------------------------------
// Rename

function openRename(item) {
  closeConfirm(item, false);
  const form = item.querySelector('.rename-form');
  const input = item.querySelector('.rename-input');
  form.hidden = false;
  item.querySelector('.rename').setAttribute('aria-expanded', 'true');
  input.value = item.dataset.name;
  input.removeAttribute('aria-invalid');
  input.focus();
  input.select();
}

function closeRename(item, returnFocus = true) {
  item.querySelector('.rename-form').hidden = true;
  const button = item.querySelector('.rename');
  button.setAttribute('aria-expanded', 'false');
  if (returnFocus) button.focus();
}

function saveRename(item) {
  const id = item.dataset.id;
  const input = item.querySelector('.rename-input');
  const name = input.value.trim();
  if (!name) {
    input.setAttribute('aria-invalid', 'true');
    showStatus('Enter a name for this passkey.', 'error');
    input.focus();
    return;
  }
  if (name === item.dataset.name) {
    closeRename(item);
    return;
  }
  run(async () => {
    await requestJSON('PATCH', `/passkeys/credentials/${encodeURIComponent(id)}`, { name });
    await loadPasskeys();
    showStatus(`Renamed to “${name}”.`, 'success');
    focusInItem(id, '.rename');
  });
}

// ---------------------------------------------------------------------------
// Delete (two steps: Delete shows the confirmation, Confirm delete deletes)

function openConfirm(item) {
  closeRename(item, false);
  const name = item.dataset.name;
  item.querySelector('.confirm-text').textContent =
    `Delete “${name}”? You won’t be able to sign in with it any more. ` +
    'If you signed in with it just now, you will be signed out.';
  item.querySelector('.confirm').hidden = false;
  item.querySelector('.delete').setAttribute('aria-expanded', 'true');
  item.querySelector('.confirm-delete').focus();
}

function closeConfirm(item, returnFocus = true) {
  item.querySelector('.confirm').hidden = true;
  const button = item.querySelector('.delete');
  button.setAttribute('aria-expanded', 'false');
  if (returnFocus) button.focus();
}

function confirmDelete(item) {
  const id = item.dataset.id;
  const name = item.dataset.name;
  const credentialId = item.dataset.credentialId;
  run(async () => {
    await requestJSON('DELETE', `/passkeys/credentials/${encodeURIComponent(id)}`);
    const rp = webauthnOf(me);
    if (rp && credentialId) {
      signal('signalUnknownCredential', { rpId: rp.rpId, credentialId });
    }
    // If this passkey created the current session, the server revoked it and
    // the reload below answers 401: run() then takes us to the login page.
    await loadPasskeys();
    showStatus(`Deleted “${name}”.`, 'success');
    listHeading.focus();
  });
}

// ---------------------------------------------------------------------------
// Add another passkey, sign out

function addPasskey() {
  const name = addName.value.trim() || undefined;
  run(async () => {
    showStatus('Preparing your new passkey…');
    await registerPasskey({
      name,
      onPrompt: () => showStatus('Follow your browser’s prompt to create the passkey.'),
    });
    addName.value = '';
    await loadPasskeys();
    showStatus(name ? `Added “${name}”.` : 'Passkey added.', 'success');
  }, 'register');
}

function signOut() {
  run(async () => {
    showStatus('Signing you out…');
    try {
      await requestJSON('POST', '/passkeys/logout', {});
    } catch (error) {
      // Already signed out is the outcome we wanted.
      if (!sessionEnded(error)) throw error;
    }
    leaveFor('/passkeys/login');
  });
}

// ---------------------------------------------------------------------------
// Wiring

list.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  const item = button && itemFor(button);
  if (!item || busy) return;
  if (button.classList.contains('rename')) {
    if (item.querySelector('.rename-form').hidden) openRename(item);
    else closeRename(item);
  } else if (button.classList.contains('rename-cancel')) {
    closeRename(item);
  } else if (button.classList.contains('delete')) {
    if (item.querySelector('.confirm').hidden) openConfirm(item);
    else closeConfirm(item);
  } else if (button.classList.contains('cancel-delete')) {
    closeConfirm(item);
  } else if (button.classList.contains('confirm-delete')) {
    confirmDelete(item);
  }
});

list.addEventListener('submit', (event) => {
  const item = itemFor(event.target);
  if (!item) return;
  event.preventDefault();
  if (!busy) saveRename(item);
});

// Escape closes an open rename form or delete confirmation.
list.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  const item = itemFor(event.target);
  if (!item) return;
  if (!item.querySelector('.rename-form').hidden) closeRename(item);
  else if (!item.querySelector('.confirm').hidden) closeConfirm(item);
});

addForm.addEventListener('submit', (event) => {
  event.preventDefault();
  addPasskey();
});

signoutButton.addEventListener('click', signOut);
wireReauth({
  run,
  username: () => me?.username,
  // A new session replaced this one: "This device" moved.
  afterSignIn: () => loadSessions(fillTime),
  focusOnCancel: listHeading,
});
wireSessions(run, fillTime);
wireLink(run, fillTime);

// Back/forward cache may restore a stale list or locked controls: reload.
window.addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});

if (!webauthnSupported()) {
  addName.disabled = true;
  addButton.disabled = true;
}

let loaded = false;
run(async () => {
  await loadWho();
  await Promise.all([loadPasskeys(), loadSessions(fillTime)]);
  loaded = true;
  if (!webauthnSupported()) showStatus(describeError(new UnsupportedError()), 'error');
}).then(() => {
  // run() already put the reason in #status; leave no "Loading…" behind.
  if (!loaded && !leaving) {
    list.removeAttribute('aria-busy');
    who.textContent = 'Your account could not be loaded. Reload the page to try again.';
  }
});
