// account-link.js: "Add a device with a link" on the account page.
//
// Owns: asking the server for a one-time add-a-device link for this account
// and showing it as text and as the QR code the server drew (an SVG shown
// through an <img> data: URL, so nothing in it can run and the CSP stays as
// it is). Making a link needs a recent passkey check, like every credential
// change: account.js's run() handles reauth_required.

import { postJSON, showStatus } from '/passkeys/static/webauthn.js';

const button = document.getElementById('make-link');
const panel = document.getElementById('link-panel');
const urlField = document.getElementById('link-url');
const qr = document.getElementById('link-qr');
const expires = document.getElementById('link-expires');

/** Wires "Make a link"; `run(task)` is account.js's runner. */
export function wireLink(run, fillTime) {
  button.addEventListener('click', () => {
    run(async () => {
      const link = await postJSON('/passkeys/enrollments', {});
      if (typeof link?.url !== 'string' || typeof link?.qr_svg !== 'string') {
        throw new Error('unreadable link');
      }
      urlField.value = link.url;
      const image = document.createElement('img');
      image.src = `data:image/svg+xml;base64,${btoa(link.qr_svg)}`;
      image.alt = 'QR code of your one-time link';
      qr.replaceChildren(image);
      fillTime(expires, link.expires_at);
      panel.hidden = false;
      button.textContent = 'Make a new link';
      showStatus('Your link is ready. Open it on your other device, or scan the code.', 'success');
      // After run() has re-enabled the controls (a disabled field cannot take focus); also
      // when this task is the retry after a re-authentication.
      setTimeout(() => {
        urlField.focus();
        urlField.select();
      }, 0);
    });
  });
}
