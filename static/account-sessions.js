// account-sessions.js: "Where you’re signed in" on the account page.
//
// Owns: the list of the person's live sessions (#sessions) with "This device"
// on the one this page runs in, "Sign out" on each other one, and "Sign out
// everywhere else". Ending a session needs a recent passkey check: the
// server's reauth_required goes back to account.js's run(), which asks for
// the passkey inline and runs the action again.
// Everything the server sends is inserted with textContent, never as HTML.

import { ApiError, requestJSON, showStatus } from '/passkeys/static/webauthn.js';

const list = document.getElementById('sessions');
const heading = document.getElementById('sessions-heading');
const template = document.getElementById('session-item');
const othersButton = document.getElementById('signout-others');

/** Fetches and shows the sessions; `fillTime(element, value)` formats times. */
export async function loadSessions(fillTime) {
  const sessions = await requestJSON('GET', '/passkeys/sessions');
  if (!Array.isArray(sessions)) throw new ApiError(200, 'unreadable_response', '');
  const items = sessions.map((session) => renderSession(session, fillTime));
  list.replaceChildren(...items);
  list.removeAttribute('aria-busy');
  othersButton.hidden = !sessions.some((session) => session.current !== true);
}

function renderSession(session, fillTime) {
  const item = template.content.firstElementChild.cloneNode(true);
  const device = typeof session.device === 'string' && session.device ? session.device : 'Unknown device';
  item.dataset.id = String(session.id);
  item.dataset.current = session.current === true ? 'true' : 'false';
  item.querySelector('.device').textContent = device;
  item.querySelector('.this-device').hidden = session.current !== true;
  fillTime(item.querySelector('.created'), session.created_at);
  fillTime(item.querySelector('.seen'), session.last_seen_at);
  item.querySelector('.via').textContent =
    typeof session.passkey_name === 'string' ? `“${session.passkey_name}”` : 'a passkey';
  item.querySelector('.from').textContent =
    typeof session.client === 'string' && session.client ? `from ${session.client}` : '';
  const end = item.querySelector('.end');
  if (session.current === true) {
    end.remove();
  } else {
    end.setAttribute('aria-label', `Sign out ${device}`);
  }
  return item;
}

/** Wires the buttons; `run(task)` is account.js's one-action-at-a-time runner. */
export function wireSessions(run, fillTime) {
  list.addEventListener('click', (event) => {
    const button = event.target.closest('button.end');
    const item = button?.closest('li[data-id]');
    if (!item) return;
    const device = item.querySelector('.device').textContent;
    run(async () => {
      await requestJSON('DELETE', `/passkeys/sessions/${encodeURIComponent(item.dataset.id)}`);
      await loadSessions(fillTime);
      showStatus(`Signed out ${device}.`, 'success');
      heading.focus();
    });
  });
  othersButton.addEventListener('click', () => {
    run(async () => {
      const result = await requestJSON('DELETE', '/passkeys/sessions/others');
      await loadSessions(fillTime);
      const ended = Number(result?.ended) || 0;
      showStatus(
        ended === 1 ? 'Signed out 1 other session.' : `Signed out ${ended} other sessions.`,
        'success',
      );
      heading.focus();
    });
  });
}
