// account-reauth.js: "Confirm it’s you" on the account page.
//
// Credential changes (add, rename, delete a passkey; end another session;
// make an add-a-device link) need a passkey sign-in within the server's
// re-authentication window. When the server answers reauth_required,
// account.js's run() calls askToConfirm(retry): #reauth appears; "Confirm
// with passkey" signs in again as the same person (a fresh session replaces
// this one) and then runs the refused action again; "Cancel" changes nothing.

import { ApiError, describeError, showStatus, signInAgain } from '/passkeys/static/webauthn.js';

const panel = document.getElementById('reauth');
const go = document.getElementById('reauth-go');
const cancel = document.getElementById('reauth-cancel');

// The refused action, to run again once the person has confirmed.
let pending = null;

export function reauthNeeded(error) {
  return error instanceof ApiError && error.code === 'reauth_required';
}

/** Shows the prompt; `retry()` runs the refused action again after the sign-in. */
export function askToConfirm(retry) {
  pending = retry;
  showStatus(describeError(new ApiError(403, 'reauth_required', '')), 'info');
  panel.hidden = false;
  // After run() has unlocked the controls it disabled.
  queueMicrotask(() => go.focus());
}

/**
 * Wires the prompt. `run(task, ceremony)` is account.js's runner, `username()`
 * who to sign in as, `afterSignIn()` what to refresh once the session changed,
 * `focusOnCancel` where focus goes when the person cancels.
 */
export function wireReauth({ run, username, afterSignIn, focusOnCancel }) {
  go.addEventListener('click', () => {
    const retry = pending;
    run(async () => {
      showStatus('Follow your browser’s prompt to use your passkey.');
      await signInAgain(username());
      await afterSignIn();
      panel.hidden = true;
      pending = null;
      showStatus('Thanks, that’s you.', 'success');
    }, 'login-username').then(() => {
      if (panel.hidden && retry) retry();
    });
  });
  cancel.addEventListener('click', () => {
    pending = null;
    panel.hidden = true;
    focusOnCancel.focus();
    showStatus('Nothing was changed.');
  });
}
