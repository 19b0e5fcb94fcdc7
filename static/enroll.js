// enroll.js: the enrollment page (/passkeys/enroll#token=...).
//
// Owns: taking the one-time token out of the URL fragment (and out of the
// address bar at once, so it is not left in history or on screen), and one
// registration ceremony with it. On success the server has signed the person
// in; we go to `return_to` when it is a safe same-origin path, else "/".
// Does not own: encoding, the ceremony plumbing or error wording (webauthn.js).

import {
  ApiError,
  describeError,
  lockControls,
  registerPasskey,
  returnToParam,
  sameOriginPath,
  showStatus,
  webauthnSupported,
  UnsupportedError,
} from '/passkeys/static/webauthn.js';

const main = document.getElementById('main');
const form = document.getElementById('enroll-form');
const nameInput = document.getElementById('passkey-name');
const createButton = document.getElementById('create');

let token = takeTokenFromFragment();
let busy = false;
let enrolled = false;

/** Reads `token` from `#token=...` and removes the fragment from the address bar. */
function takeTokenFromFragment() {
  const fragment = location.hash.replace(/^#/, '');
  if (location.hash) {
    history.replaceState(history.state, '', location.pathname + location.search);
  }
  for (const pair of fragment.split('&')) {
    const [key, ...rest] = pair.split('=');
    if (key !== 'token') continue;
    try {
      // decodeURIComponent, not URLSearchParams: a "+" in a token is a "+".
      const value = decodeURIComponent(rest.join('=')).trim();
      return value || null;
    } catch {
      return null;
    }
  }
  return null;
}

function disableForm() {
  nameInput.disabled = true;
  createButton.disabled = true;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (busy || !token) return;
  busy = true;
  const name = nameInput.value.trim() || undefined;
  const unlock = lockControls(main);
  showStatus('Preparing your passkey…');
  try {
    await registerPasskey({
      token,
      name,
      onPrompt: () => showStatus('Follow your browser’s prompt to create your passkey.'),
    });
    token = null;
    enrolled = true;
    showStatus('Your passkey is ready and you are signed in. Taking you on…', 'success');
    location.assign(sameOriginPath(returnToParam() ?? '/'));
    // Controls stay locked while the browser navigates.
  } catch (error) {
    unlock();
    busy = false;
    showStatus(describeError(error, 'register'), 'error');
    if (error instanceof ApiError && error.code === 'enrollment_invalid') {
      // Retrying cannot help: the token is spent or expired.
      token = null;
      disableForm();
    }
  }
});

// Back after a successful enrollment may restore this page from the
// back/forward cache: say what happened instead of offering a spent token.
window.addEventListener('pageshow', (event) => {
  if (event.persisted && enrolled) {
    disableForm();
    showStatus('Your passkey was created. Manage your passkeys from your account page.', 'success');
  }
});

// Opening another enrollment link in this tab changes only the fragment, which
// loads nothing: start over so the new token is read.
window.addEventListener('hashchange', () => location.reload());

if (!token) {
  disableForm();
  showStatus(
    'This page needs the full enrollment link from your administrator. Open the link you ' +
      'were given again (it ends with #token=…), or ask for a new one.',
    'error',
  );
} else if (!webauthnSupported()) {
  disableForm();
  showStatus(describeError(new UnsupportedError()), 'error');
}
