// Shared state and small DOM helpers. Text is only ever set with textContent: message bodies,
// names and server details never go through innerHTML.

export const state = {
  me: null, // { id, username, display_name, roles }
  launch: null, // { room_id, need_patient_banner } from the session, or the URL fragment
  rooms: new Map(), // room id -> Room
  unread: new Map(), // room id -> count of messages from others that arrived while elsewhere
  current: null, // the open room's id
  convos: new Map(), // room id -> { byId: Map(message id -> Message), next: cursor|null, loaded }
  members: new Map(), // room id -> Map(user id -> Member)
  names: new Map(), // user id -> display name (from members, acks, on-call lookups)
  receipts: new Map(), // message id -> Map(user id -> Receipt), for your own messages
  readSent: new Set(), // message ids this page already marked read
};

export const $ = (id) => document.getElementById(id);

/** Creates an element: attrs are set as attributes (class, data-*, aria-*), children appended. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function nameOf(userId) {
  if (!userId) return 'Wardline';
  if (state.me && userId === state.me.id) return state.me.display_name;
  return state.names.get(userId) || 'Former member';
}

export function isMine(message) {
  return Boolean(state.me && message.sender_id === state.me.id);
}

/** Lists names as "A", "A and B", "A, B and C", or "A, B and N others". */
export function listNames(names) {
  if (names.length <= 1) return names.join('');
  if (names.length <= 3) return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return `${names.slice(0, 2).join(', ')} and ${names.length - 2} others`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, {
  day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
});
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });

export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dayTimeFmt.format(d);
}

/** A birth date "YYYY-MM-DD" shown without time-zone shifts. */
export function formatDate(ymd) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(ymd || '');
  if (!m) return ymd || '';
  return dateFmt.format(new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], 12)));
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A random UUID; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function uuid() {
  if (window.isSecureContext && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Shows an error (an ApiError's problem details, or any Error) in the alert region. */
export function showError(err, context) {
  const p = (err && err.problem) || {};
  const title = p.title || (err && err.name !== 'Error' && err.name) || 'Something went wrong';
  const detail = p.detail || (err && err.message) || String(err);
  const text = context ? `${context}: ${detail}` : detail;
  $('alert-title').textContent = title;
  $('alert-text').textContent = text.charAt(0).toUpperCase() + text.slice(1);
  $('alert').hidden = false;
  if (!(err && err.problem)) console.warn(context || 'error', err);
}

export function clearError() {
  $('alert').hidden = true;
  $('alert-title').textContent = '';
  $('alert-text').textContent = '';
}

/** A short spoken/visible status (connection state, uploads) in a polite status region. */
export function setStatus(id, text) {
  const node = $(id);
  if (node && node.textContent !== text) node.textContent = text;
}
