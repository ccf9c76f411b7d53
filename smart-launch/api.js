// The REST client: same-origin fetches with the session cookie, the CSRF header on every
// non-GET request, and RFC 9457 problem details turned into ApiError.

const BASE = '/api/v1';
let csrf = '';
let onSignedOut = () => {};

/** An HTTP failure carrying the server's problem details ({ type, title, status, detail }). */
export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = 'ApiError';
    this.problem = problem;
    this.status = status;
    this.type = problem.type || '';
  }

  /** The last segment of the problem type URN, e.g. `dlp-warning`. */
  get slug() {
    return this.type.split(':').pop();
  }
}

export function setCsrf(token) {
  csrf = token || '';
}

/** Called once with the problem when any request (other than the session probe) gets 401. */
export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

async function problemOf(res) {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') return { status: res.status, ...body };
  } catch (_) { /* not JSON */ }
  return { status: res.status, title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 300) };
}

/**
 * Sends one request. `json` is sent as a JSON body; `raw` (a Blob) as-is with `contentType`.
 * Resolves to the parsed JSON (null for 204); rejects with ApiError.
 */
export async function request(method, path, opts = {}) {
  const { json, raw, contentType, headers: extra = {}, expect401 = false, url } = opts;
  const headers = { Accept: 'application/json', ...extra };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (raw !== undefined) {
    headers['Content-Type'] = contentType || 'application/octet-stream';
    body = raw;
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-Wardline-Csrf'] = csrf;
  let res;
  try {
    res = await fetch(url || BASE + path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new ApiError({
      title: 'Network error',
      detail: 'Wardline could not be reached; check the connection and try again.',
    }, 0);
  }
  if (res.ok) {
    if (res.status === 204) return null;
    const type = res.headers.get('Content-Type') || '';
    return type.includes('json') ? res.json() : res.text();
  }
  const problem = await problemOf(res);
  const err = new ApiError(problem, res.status);
  if (res.status === 401 && !expect401) onSignedOut(err);
  // A stale CSRF token (the session was renewed elsewhere): fetch the current one, retry once.
  if (res.status === 403 && /csrf/i.test(`${err.type} ${problem.detail || ''}`) && method !== 'GET' && !opts.retried) {
    const s = await session().catch(() => null);
    if (s) return request(method, path, { ...opts, retried: true });
  }
  throw err;
}

const enc = encodeURIComponent;

/** The browser session; 401 (ApiError) when not signed in. Also refreshes the CSRF token. */
export async function session() {
  const s = await request('GET', '/session', { expect401: true });
  setCsrf(s.csrf);
  return s;
}

export const logout = () => request('POST', '', { url: '/auth/logout' });
export const rooms = () => request('GET', '/rooms');
export const room = (id) => request('GET', `/rooms/${enc(id)}`);
export const members = (id) => request('GET', `/rooms/${enc(id)}/members`);
export const patient = (id) => request('GET', `/rooms/${enc(id)}/patient`);

/** One page of history, newest first: { items, next_cursor }. */
export function history(roomId, before, limit = 50) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (before) q.set('before', before);
  return request('GET', `/rooms/${enc(roomId)}/messages?${q}`);
}

/** Messages in all your rooms after `afterId`, oldest first (catch-up). */
export function sync(afterId, limit = 1) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (afterId) q.set('after', afterId);
  return request('GET', `/messages?${q}`);
}

/** Posts a message: { body, priority, idempotency_key, confirm_dlp, attachment_ids }. */
export const send = (roomId, draft) => request('POST', `/rooms/${enc(roomId)}/messages`, { json: draft });
export const markRead = (messageId) => request('POST', `/messages/${enc(messageId)}/read`);
export const ack = (messageId) => request('POST', `/messages/${enc(messageId)}/ack`);
export const receipts = (messageId) => request('GET', `/messages/${enc(messageId)}/receipts`);
export const oncall = (service) => request('GET', `/oncall/${enc(service)}`);

/** Uploads a file into a room: resolves to { id, filename, content_type, size }. */
export function upload(roomId, file) {
  const q = new URLSearchParams({ filename: file.name });
  return request('POST', `/rooms/${enc(roomId)}/attachments?${q}`, { raw: file, contentType: file.type });
}

export const attachmentUrl = (id) => `${BASE}/attachments/${enc(id)}`;
