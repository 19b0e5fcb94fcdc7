// login.js: the sign-in page (/passkeys/login).
//
// Owns three ways into the same login ceremony:
//   1. "Sign in with a passkey": discoverable login, begin with `{}`;
//   2. the username form: begin with `{username}` for authenticators without
//      discoverable credentials;
//   3. passkey autofill: a conditional request started on load, so the
//      browser offers passkeys in the username field's autofill menu.
// Only one WebAuthn request may be pending, so 1 and 2 abort 3 first and
// restart it after a failure. `return_to` from the query string is passed to
// the server untouched: the server decides where we may go.
// Does not own: encoding, the API client or error wording (webauthn.js).

import {
  autofillAvailable,
  credentialToJSON,
  describeError,
  lockControls,
  postJSON,
  requestOptionsFromJSON,
  returnToParam,
  sameOriginPath,
  showStatus,
  signal,
  webauthnSupported,
  ApiError,
  UnsupportedError,
} from '/passkeys/static/webauthn.js';

const BEGIN = '/passkeys/login/begin';
const COMPLETE = '/passkeys/login/complete';
// The server's ceremony expires (default 300 s); renew the autofill request
// a little before that so a passkey picked late still completes.
const DEFAULT_CEREMONY_MS = 300_000;
const AUTOFILL_RENEW_MARGIN_MS = 20_000;
// Upper bound on waiting for an aborted autofill request to settle.
const ABORT_SETTLE_MS = 1_000;

const main = document.getElementById('main');
const signinButton = document.getElementById('signin');
const usernameForm = document.getElementById('username-form');
const usernameInput = document.getElementById('username');
const returnTo = returnToParam();

let busy = false;      // an explicit sign-in (or a picked autofill passkey) is running
let autofill = null;   // { controller, settled, renewTimer } while a conditional request is pending

// ---------------------------------------------------------------------------
// Explicit sign-in: the button and the username form

async function signIn(beginBody, ceremony) {
  if (busy) return;
  busy = true;
  const unlock = lockControls(main);
  showStatus('Follow your browser’s prompt to use your passkey.');
  await stopAutofill();
  try {
    if (!webauthnSupported()) throw new UnsupportedError();
    const begin = await postJSON(BEGIN, beginBody);
    const credential = await navigator.credentials.get({
      publicKey: requestOptionsFromJSON(begin.publicKey),
    });
    await completeLogin(begin.session_id, credential, begin.publicKey?.rpId);
    // Success navigates away; the controls stay locked until the page goes.
  } catch (error) {
    unlock();
    busy = false;
    showStatus(describeError(error, ceremony), 'error');
    startAutofill();
  }
}

async function completeLogin(sessionId, credential, rpId) {
  showStatus('Checking your passkey…');
  const body = { session_id: sessionId, credential: credentialToJSON(credential) };
  if (returnTo !== null) body.return_to = returnTo;
  let result;
  try {
    result = await postJSON(COMPLETE, body);
  } catch (error) {
    // The browser offered a passkey this site no longer has (deleted, or its
    // account removed): ask its passkey manager to stop offering it.
    if (error instanceof ApiError && error.code === 'unknown_credential' && rpId) {
      signal('signalUnknownCredential', { rpId, credentialId: credential.id });
    }
    throw error;
  }
  const who = result?.user?.display_name || result?.user?.username;
  showStatus(who ? `Signed in as ${who}. Taking you back…` : 'Signed in. Taking you back…', 'success');
  location.assign(redirectTarget(result?.redirect_to));
}

// The server already validated redirect_to (it may name a configured other
// host); never follow anything but a same-origin path or an http(s) URL.
function redirectTarget(value) {
  if (typeof value !== 'string' || value === '') return '/';
  if (value.startsWith('/')) return sameOriginPath(value);
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : '/';
  } catch {
    return '/';
  }
}

// ---------------------------------------------------------------------------
// Passkey autofill (conditional mediation)

async function startAutofill() {
  if (busy || autofill || !(await autofillAvailable())) return;
  if (busy || autofill) return; // state may have changed while we asked
  const controller = new AbortController();
  const state = { controller, settled: null, renewTimer: null };
  autofill = state;
  state.settled = runAutofill(state);
}

async function runAutofill(state) {
  const { signal } = state.controller;
  let credential;
  let begin;
  try {
    begin = await postJSON(BEGIN, {}, { signal });
    const lifetime = Number(begin.publicKey?.timeout) || DEFAULT_CEREMONY_MS;
    state.renewTimer = setTimeout(renewAutofill, Math.max(30_000, lifetime - AUTOFILL_RENEW_MARGIN_MS));
    credential = await navigator.credentials.get({
      mediation: 'conditional',
      publicKey: requestOptionsFromJSON(begin.publicKey),
      signal,
    });
  } catch (error) {
    // An AbortError is us stopping it. Anything else (server unreachable,
    // rate limited) stays quiet: autofill is a convenience and the buttons
    // still work and will report errors themselves.
    if (!signal.aborted && error?.name !== 'AbortError') {
      console.warn('passkey autofill unavailable:', error);
    }
    return;
  } finally {
    clearTimeout(state.renewTimer);
    if (autofill === state) autofill = null;
  }
  if (!credential || signal.aborted || busy) return;

  // The person picked a passkey from the autofill menu: finish like a click.
  busy = true;
  const unlock = lockControls(main);
  try {
    await completeLogin(begin.session_id, credential, begin.publicKey?.rpId);
  } catch (error) {
    unlock();
    busy = false;
    showStatus(describeError(error, 'login'), 'error');
    startAutofill();
  }
}

async function stopAutofill() {
  const state = autofill;
  if (!state) return;
  autofill = null;
  clearTimeout(state.renewTimer);
  state.controller.abort();
  // Let the aborted request settle so the browser has no pending request
  // when the next one starts; never wait long for it.
  await Promise.race([
    state.settled,
    new Promise((resolve) => setTimeout(resolve, ABORT_SETTLE_MS)),
  ]);
}

async function renewAutofill() {
  if (busy) return;
  await stopAutofill();
  startAutofill();
}

// ---------------------------------------------------------------------------
// Wiring

signinButton.addEventListener('click', () => {
  usernameInput.removeAttribute('aria-invalid');
  signIn({}, 'login');
});

usernameForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const username = usernameInput.value.trim();
  if (!username) {
    usernameInput.setAttribute('aria-invalid', 'true');
    showStatus('Enter your username, or use “Sign in with a passkey”.', 'error');
    usernameInput.focus();
    return;
  }
  usernameInput.removeAttribute('aria-invalid');
  signIn({ username }, 'login-username');
});

// Coming back with the Back button may restore this page from the
// back/forward cache with its controls locked: start over cleanly.
window.addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});

if (webauthnSupported()) {
  startAutofill();
} else {
  for (const control of main.querySelectorAll('button, input')) control.disabled = true;
  showStatus(describeError(new UnsupportedError()), 'error');
}
