// webauthn.js — the browser-side plumbing shared by the passkey pages.
//
// Owns: base64url, turning the server's `publicKey` JSON into what
// navigator.credentials.create()/get() take, turning the resulting credential
// back into the JSON shape the server reads (PublicKeyCredential.toJSON()), the
// small JSON client for /passkeys/* with its typed errors, the mapping from any
// failure to a sentence a person can act on, and three tiny page utilities
// (status line, busy lock, safe return path).
// Does not own: any page's flow (login.js, enroll.js, account.js) or markup.
// Nothing here touches the DOM at import time, so it can be unit-tested in Node.

// ---------------------------------------------------------------------------
// base64url (RFC 4648 §5, no padding), as used by every WebAuthn JSON field

/** Encodes an ArrayBuffer or typed array as base64url without padding. */
export function base64urlEncode(buffer) {
  const bytes = ArrayBuffer.isView(buffer)
    ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    : new Uint8Array(buffer);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes base64url (padding optional) into an ArrayBuffer; throws TypeError on bad input. */
export function base64urlDecode(text) {
  if (typeof text !== 'string') throw new TypeError('expected a base64url string');
  const base64 = text.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  let binary;
  try {
    binary = atob(padded);
  } catch {
    throw new TypeError('invalid base64url');
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

// ---------------------------------------------------------------------------
// Server JSON options → navigator.credentials arguments

/** True when this browser can do WebAuthn at all. */
export function webauthnSupported() {
  return typeof globalThis.PublicKeyCredential === 'function' &&
    typeof globalThis.navigator?.credentials?.create === 'function';
}

/** Resolves true when passkey autofill (conditional mediation) is available. */
export async function autofillAvailable() {
  if (!webauthnSupported()) return false;
  try {
    return (await PublicKeyCredential.isConditionalMediationAvailable?.()) === true;
  } catch {
    return false;
  }
}

/** Turns the server's `publicKey` creation options JSON into PublicKeyCredentialCreationOptions. */
export function creationOptionsFromJSON(json) {
  const options = withoutNulls(json);
  const native = globalThis.PublicKeyCredential?.parseCreationOptionsFromJSON;
  if (typeof native === 'function') {
    try {
      return native.call(PublicKeyCredential, options);
    } catch {
      // Fall through: the hand-written decoding below is more forgiving of
      // extension members a given browser does not know yet.
    }
  }
  return {
    ...options,
    challenge: base64urlDecode(options.challenge),
    user: { ...options.user, id: base64urlDecode(options.user.id) },
    excludeCredentials: options.excludeCredentials?.map(decodeDescriptor),
  };
}

/** Turns the server's `publicKey` request options JSON into PublicKeyCredentialRequestOptions. */
export function requestOptionsFromJSON(json) {
  const options = withoutNulls(json);
  const native = globalThis.PublicKeyCredential?.parseRequestOptionsFromJSON;
  if (typeof native === 'function') {
    try {
      return native.call(PublicKeyCredential, options);
    } catch {
      // See creationOptionsFromJSON.
    }
  }
  return {
    ...options,
    challenge: base64urlDecode(options.challenge),
    allowCredentials: options.allowCredentials?.map(decodeDescriptor),
  };
}

function decodeDescriptor(descriptor) {
  return { ...descriptor, id: base64urlDecode(descriptor.id) };
}

// WebIDL treats a missing member as "not present" but rejects `null` for
// sequences and dictionaries, and serializers like to emit `null`.
function withoutNulls(value) {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [key, member] of Object.entries(value)) {
    if (member !== null && member !== undefined) out[key] = withoutNulls(member);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Credential → JSON (the PublicKeyCredential.toJSON() shape)

/** Serializes a PublicKeyCredential as RegistrationResponseJSON or AuthenticationResponseJSON. */
export function credentialToJSON(credential) {
  if (typeof credential.toJSON === 'function') {
    try {
      return credential.toJSON();
    } catch {
      // Some password-manager shims expose a broken toJSON; build it by hand.
    }
  }
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: base64urlEncode(credential.rawId),
    type: credential.type,
    clientExtensionResults: buffersToBase64url(credential.getClientExtensionResults?.() ?? {}),
    authenticatorAttachment: credential.authenticatorAttachment ?? null,
  };
  if ('attestationObject' in response) {
    json.response = {
      clientDataJSON: base64urlEncode(response.clientDataJSON),
      attestationObject: base64urlEncode(response.attestationObject),
      transports: response.getTransports?.() ?? [],
    };
  } else {
    json.response = {
      clientDataJSON: base64urlEncode(response.clientDataJSON),
      authenticatorData: base64urlEncode(response.authenticatorData),
      signature: base64urlEncode(response.signature),
    };
    // toJSON() leaves userHandle out when the authenticator returned none.
    if (response.userHandle) json.response.userHandle = base64urlEncode(response.userHandle);
  }
  return json;
}

// Extension outputs (prf, largeBlob) may hold raw bytes; JSON needs base64url.
function buffersToBase64url(value) {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return base64urlEncode(value);
  if (Array.isArray(value)) return value.map(buffersToBase64url);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [key, member] of Object.entries(value)) out[key] = buffersToBase64url(member);
  return out;
}

// ---------------------------------------------------------------------------
// JSON client for the gateway's own endpoints

/** The server answered with an error status; carries its `error` code, `message` and HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterSeconds = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The request never got an HTTP answer (offline, DNS, connection reset, CORS/CSP refusal). */
export class NetworkError extends Error {
  constructor(cause) {
    super('network request failed', { cause });
    this.name = 'NetworkError';
  }
}

/** Thrown when the browser has no WebAuthn API at all. */
export class UnsupportedError extends Error {
  constructor() {
    super('WebAuthn is not available');
    this.name = 'UnsupportedError';
  }
}

/**
 * Sends one same-origin request; resolves with the parsed JSON body, or null
 * for an empty body (204). Throws ApiError, NetworkError, or the AbortError
 * of `signal`.
 */
export async function requestJSON(method, path, body, { signal } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new NetworkError(error);
  }
  let text;
  try {
    text = await response.text();
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new NetworkError(error);
  }
  let parsed = null;
  let parseFailed = false;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parseFailed = true;
    }
  }
  if (!response.ok) {
    const code = typeof parsed?.error === 'string' ? parsed.error : `http_${response.status}`;
    const message = typeof parsed?.message === 'string' ? parsed.message : '';
    throw new ApiError(response.status, code, message, retryAfter(response));
  }
  if (parseFailed) {
    throw new ApiError(response.status, 'unreadable_response', '');
  }
  return parsed;
}

/** POSTs `body` as JSON; see requestJSON. */
export function postJSON(path, body = {}, options = {}) {
  return requestJSON('POST', path, body, options);
}

function retryAfter(response) {
  const header = response.headers.get('Retry-After');
  if (!header) return null;
  const seconds = Number.parseInt(header, 10);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

// ---------------------------------------------------------------------------
// Ceremonies shared by enroll.js and account.js

/**
 * Runs a whole registration: begin (`{token?, name?}`), create, complete.
 * Resolves with the server's stored passkey. `onPrompt` is called just before
 * the browser's passkey prompt opens.
 */
export async function registerPasskey({ token, name, onPrompt } = {}) {
  if (!webauthnSupported()) throw new UnsupportedError();
  const begin = await postJSON('/passkeys/register/begin', { token, name });
  onPrompt?.();
  const credential = await navigator.credentials.create({
    publicKey: creationOptionsFromJSON(begin.publicKey),
  });
  return postJSON('/passkeys/register/complete', {
    session_id: begin.session_id,
    credential: credentialToJSON(credential),
    name,
  });
}

/**
 * Signs in again as `username` while signed in (a re-authentication): the
 * server mints a fresh session, whose age is what credential changes check.
 */
export async function signInAgain(username) {
  if (!webauthnSupported()) throw new UnsupportedError();
  const begin = await postJSON('/passkeys/login/begin', { username });
  const credential = await navigator.credentials.get({
    publicKey: requestOptionsFromJSON(begin.publicKey),
  });
  return postJSON('/passkeys/login/complete', {
    session_id: begin.session_id,
    credential: credentialToJSON(credential),
    return_to: '/passkeys/account',
  });
}

// ---------------------------------------------------------------------------
// WebAuthn Signal API: tell the browser's passkey manager what the server
// knows, so it stops offering deleted passkeys and shows current names.
// Feature-detected and fire-and-forget: never required, never an error.

/**
 * Calls `PublicKeyCredential[name](options)` when this browser has it;
 * 'signalUnknownCredential', 'signalAllAcceptedCredentials' or
 * 'signalCurrentUserDetails'.
 */
export function signal(name, options) {
  const fn = globalThis.PublicKeyCredential?.[name];
  if (typeof fn !== 'function') return;
  try {
    Promise.resolve(fn.call(globalThis.PublicKeyCredential, options)).catch(() => {});
  } catch {
    // A browser that refuses (for example, an rpId it disagrees with) changes nothing here.
  }
}

// ---------------------------------------------------------------------------
// Failure → message

const SERVER_MESSAGES = {
  enrollment_invalid:
    'This enrollment link has expired or was already used. Ask your administrator for a new one.',
  user_disabled: 'This account is disabled. Contact your administrator.',
  ceremony_expired: 'The passkey request expired before it finished. Try again.',
  last_passkey:
    "You can't delete your only passkey. Add another passkey first, then delete this one.",
  reauth_required: 'Confirm it’s you with your passkey to make this change.',
};

/**
 * Maps any failure to a sentence a person can act on. `ceremony` is one of
 * 'login' (discoverable), 'login-username', 'register', or 'other'.
 */
export function describeError(error, ceremony = 'other') {
  if (error instanceof NetworkError) {
    return "Couldn't reach the server. Check your connection and try again.";
  }
  if (error instanceof UnsupportedError) {
    return "This browser doesn't support passkeys. Use an up-to-date browser, or another device.";
  }
  if (error instanceof ApiError) return describeApiError(error);

  switch (error?.name) {
    case 'NotAllowedError':
      if (ceremony === 'login') {
        return 'The passkey prompt was cancelled or timed out, or this device has no passkey ' +
          'for this site. Try again, sign in with your username, or use another device.';
      }
      if (ceremony === 'login-username') {
        return 'The passkey prompt was cancelled or timed out, or this device has no passkey ' +
          'for this account. Try again, or use another device.';
      }
      return 'The passkey prompt was cancelled or timed out. Try again.';
    case 'InvalidStateError':
      return ceremony === 'register'
        ? 'This device already has a passkey for this account. Sign in with it, or create ' +
          'the new passkey on a different device or security key.'
        : 'Your browser is busy with another passkey request. Finish or cancel it, then try again.';
    case 'SecurityError':
      return 'Your browser refused to use passkeys on this address. Make sure you opened the ' +
        'site at its usual address over HTTPS, then try again.';
    case 'NotSupportedError':
      return "This device can't create the kind of passkey this site needs. Try another " +
        'device or a security key.';
    case 'ConstraintError':
      return "This device can't verify you with a PIN, fingerprint or face. Turn on a screen " +
        'lock, or use another device.';
    case 'AbortError':
      return 'The passkey request was stopped. Try again.';
    default:
      return 'Something went wrong. Try again, and if it keeps happening contact your administrator.';
  }
}

function describeApiError(error) {
  if (SERVER_MESSAGES[error.code]) return SERVER_MESSAGES[error.code];
  if (error.code === 'rate_limited' || error.status === 429) {
    const wait = error.retryAfterSeconds;
    return wait
      ? `Too many attempts. Wait ${wait} second${wait === 1 ? '' : 's'} and try again.`
      : 'Too many attempts. Wait a minute and try again.';
  }
  if (error.status === 401) return 'Your session has ended. Sign in again.';
  if (error.status >= 500) return 'The server had a problem. Try again in a moment.';
  if (error.code === 'unreadable_response') {
    return 'The server sent an answer this page could not read. Reload the page and try again.';
  }
  // The contract promises server messages are written for people: show them.
  if (error.message) return error.message;
  return `Something went wrong (HTTP ${error.status}). Try again.`;
}

// ---------------------------------------------------------------------------
// Page utilities

/** Shows `text` in the page's #status region; `tone` is 'info', 'success' or 'error'. */
export function showStatus(text, tone = 'info') {
  const status = document.getElementById('status');
  if (!status) return;
  status.textContent = text;
  status.dataset.tone = tone;
  if (text) status.scrollIntoView?.({ block: 'nearest' });
}

/**
 * Disables every enabled button and input under `root` while a task runs;
 * returns an `unlock()` that re-enables exactly those and puts focus back.
 */
export function lockControls(root = document.body) {
  const focused = document.activeElement;
  const controls = [...root.querySelectorAll('button, input, textarea, select')]
    .filter((control) => !control.disabled);
  for (const control of controls) control.disabled = true;
  root.setAttribute('aria-busy', 'true');
  return function unlock() {
    for (const control of controls) control.disabled = false;
    root.removeAttribute('aria-busy');
    if (focused?.isConnected && !focused.disabled && document.activeElement !== focused) {
      focused.focus();
    }
  };
}

/**
 * Returns `candidate` when it is a path on this origin (one leading "/", not
 * "//" or "/\", no backslash, no control characters (the URL parser drops tabs
 * and newlines, so "/\t/evil" would become "//evil"), else "/". The server validates too; this keeps the client honest.
 */
export function sameOriginPath(candidate) {
  if (typeof candidate !== 'string' || !candidate.startsWith('/')) return '/';
  if (candidate.startsWith('//') || candidate.startsWith('/\\')) return '/';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(candidate)) return '/';
  try {
    const base = globalThis.location?.origin ?? 'http://localhost';
    if (new URL(candidate, base).origin !== new URL(base).origin) return '/';
  } catch {
    return '/';
  }
  return candidate;
}

/** The `return_to` query parameter of the current page, or null. */
export function returnToParam() {
  return new URLSearchParams(globalThis.location.search).get('return_to');
}
