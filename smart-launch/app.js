// Wardline clinician app: session, rooms, patient banner, live updates, on-call lookup.
// Served by Wardline at /app/ under a strict CSP: no inline script or style, same-origin only.

import * as api from './api.js';
import { Live } from './live.js';
import * as messages from './messages.js';
import * as composer from './composer.js';
import {
  $, el, state, nameOf, formatTime, formatDate, showError, clearError, setStatus,
} from './ui.js';

const KIND_LABEL = {
  patient_encounter: 'Patient', care_team: 'Care team', direct: 'Direct', role: 'On call',
};
const CONNECTION_TEXT = {
  connecting: 'Connecting…', syncing: 'Catching up…', live: 'Live', offline: 'Reconnecting…', stopped: 'Offline',
};
let session = null;
let lastActivity = Date.now();
let typingTimer = null;
let membersTimer = null;

const live = new Live({
  onFrame,
  onState: (s) => {
    setStatus('connection', CONNECTION_TEXT[s] || s);
    $('connection').dataset.state = s;
  },
  onTrouble,
  onResumeLost: () => {
    for (const [id, c] of state.convos) if (id !== state.current) c.loaded = false;
    if (state.current) messages.loadHistory(state.current).catch((e) => showError(e, 'Reloading messages'));
  },
});

function fragment() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  return { room: p.get('room'), banner: p.get('banner') };
}

async function boot() {
  api.setSignedOutHandler(() => signedOut('Your session has ended. Sign in again to continue.'));
  wireStatic();
  try {
    session = await api.session();
  } catch (e) {
    if (e.status === 401) signedOut();
    else fatal(e);
    return;
  }
  state.me = session.user;
  const frag = fragment();
  state.launch = session.launch || (frag.room ? { room_id: frag.room, need_patient_banner: frag.banner !== '0' } : null);
  if (state.launch && frag.banner === '0' && (!frag.room || frag.room === state.launch.room_id)) {
    state.launch.need_patient_banner = false;
  }
  $('user-name').textContent = state.me.display_name;
  $('loading').hidden = true;
  $('app').hidden = false;
  messages.init(live);
  composer.init(live);
  scheduleSessionChecks();
  const roomsLoaded = api.rooms().then((list) => {
    for (const r of list) state.rooms.set(r.id, r);
  }).catch((e) => showError(e, 'Loading your rooms'));
  // The socket registers before any history is read, so no message falls between the two.
  await Promise.all([live.start(), roomsLoaded]);
  renderRooms();
  const first = frag.room || (state.launch && state.launch.room_id) || [...state.rooms.keys()][0];
  if (first) openRoom(first);
  else composer.setRoom(null);
}

function wireStatic() {
  $('alert-close').addEventListener('click', clearError);
  $('sign-out').addEventListener('click', signOut);
  $('oncall-form').addEventListener('submit', lookupOncall);
  $('load-earlier').addEventListener('click', async () => {
    const btn = $('load-earlier');
    btn.disabled = true;
    try {
      await messages.loadHistory(state.current, { older: true });
    } catch (e) {
      showError(e, 'Loading earlier messages');
    } finally {
      btn.disabled = false;
    }
  });
  $('room-list').addEventListener('click', (ev) => {
    const btn = ev.target.closest('button[data-room]');
    if (btn) openRoom(btn.dataset.room);
  });
  window.addEventListener('hashchange', () => {
    const { room } = fragment();
    if (room && room !== state.current && state.me) openRoom(room);
  });
  for (const type of ['keydown', 'pointerdown', 'wheel', 'touchstart']) {
    window.addEventListener(type, () => { lastActivity = Date.now(); }, { passive: true });
  }
}

function fatal(e) {
  $('loading').hidden = true;
  $('app').hidden = false;
  showError(e, 'Wardline could not start');
}

function signedOut(reason) {
  live.stop();
  session = null;
  state.me = null;
  $('app').hidden = true;
  $('loading').hidden = true;
  if ($('dlp-dialog').open) $('dlp-dialog').close();
  $('signed-out-reason').textContent = reason || 'You are not signed in to Wardline.';
  $('signed-out').hidden = false;
  $('signed-out-title').focus();
}

async function signOut() {
  $('sign-out').disabled = true;
  try {
    await api.logout();
    signedOut('You have signed out.');
  } catch (e) {
    $('sign-out').disabled = false;
    if (e.status !== 401) showError(e, 'Signing out');
  }
}

/**
 * Automatic logoff. The server restarts a session's idle clock on any request, including the
 * ones this page makes by itself (read marks, receipts, reconnects), so the page measures idleness
 * from the user's own input: idle past `idle_timeout_secs`, it signs out. At `expires_at` it asks
 * the server, which has ended the session by then.
 */
function scheduleSessionChecks() {
  const idleMs = Math.max(60, Number(session.idle_timeout_secs) || 900) * 1000;
  const timer = setInterval(async () => {
    if (!session) {
      clearInterval(timer);
      return;
    }
    if (Date.now() - lastActivity >= idleMs) {
      clearInterval(timer);
      await api.logout().catch(() => {});
      signedOut('You were signed out after a period of inactivity.');
      return;
    }
    if (session.expires_at && Date.now() >= Date.parse(session.expires_at)) {
      try {
        session = await api.session();
      } catch (e) {
        if (e.status === 401) {
          clearInterval(timer);
          signedOut('Your session has ended. Sign in again to continue.');
        }
      }
    }
  }, 10000);
}

async function onTrouble(afterId) {
  try {
    await api.session();
  } catch (e) {
    if (e.status === 401) {
      signedOut('Your session has ended. Sign in again to continue.');
      return 'stop';
    }
    return 'retry';
  }
  if (!afterId) return 'retry';
  try {
    await api.sync(afterId, 1);
    return 'retry';
  } catch (e) {
    return e.status === 404 || e.status === 403 ? 'reset' : 'retry';
  }
}

function onFrame(f) {
  switch (f.type) {
    case 'message': {
      const m = f.message;
      const fresh = messages.add(m);
      if (fresh && m.room_id !== state.current && m.sender_id !== (state.me && state.me.id)) {
        state.unread.set(m.room_id, (state.unread.get(m.room_id) || 0) + 1);
        if (!state.rooms.has(m.room_id)) refreshRooms();
        else renderRooms();
      }
      break;
    }
    case 'receipt': messages.applyReceipts(f.receipts); break;
    case 'ack':
      if (!state.names.has(f.ack.user_id)) membersChanged(f.room_id);
      messages.applyAck(f.message_id, f.ack);
      break;
    case 'room':
      state.rooms.set(f.room.id, f.room);
      renderRooms();
      if (f.room.id === state.current) showRoomHeader(f.room);
      break;
    case 'member':
      if (state.me && f.user_id === state.me.id && f.change === 'removed') {
        state.rooms.delete(f.room_id);
        renderRooms();
        if (f.room_id === state.current) showError(new Error('You are no longer a member of this room.'), 'Room');
      } else if (state.me && f.user_id === state.me.id) {
        refreshRooms();
      } else {
        membersChanged(f.room_id);
      }
      break;
    case 'presence': showTyping(f); break;
    case 'error': showError({ problem: f }, 'Live update'); break;
    default: break;
  }
}

async function refreshRooms() {
  try {
    for (const r of await api.rooms()) state.rooms.set(r.id, r);
    renderRooms();
  } catch (e) { /* shown on the next explicit action */ }
}

function membersChanged(roomId) {
  if (roomId !== state.current) {
    state.members.delete(roomId);
    return;
  }
  clearTimeout(membersTimer);
  membersTimer = setTimeout(() => loadMembers(roomId).then(() => messages.render({ keepScroll: true })), 300);
}

async function loadMembers(roomId) {
  const list = await api.members(roomId);
  const map = new Map();
  for (const m of list) {
    map.set(m.user_id, m);
    state.names.set(m.user_id, m.display_name);
  }
  state.members.set(roomId, map);
  if (roomId === state.current) {
    setStatus('room-meta', `${KIND_LABEL[state.rooms.get(roomId)?.kind] || ''} · ${list.length} member${list.length === 1 ? '' : 's'}`);
  }
}

function renderRooms() {
  const items = [...state.rooms.values()].map((r) => {
    const unread = state.unread.get(r.id) || 0;
    const btn = el('button', {
      type: 'button', class: 'room-btn', 'data-room': r.id, 'aria-current': r.id === state.current ? 'true' : false,
    },
    el('span', { class: 'room-name' }, r.name),
    el('span', { class: 'room-kind' }, `${KIND_LABEL[r.kind] || r.kind}${r.status === 'active' ? '' : ' · closed'}`),
    unread ? el('span', { class: 'unread' }, el('span', { class: 'vh' }, ', unread: '), String(unread)) : null);
    return el('li', {}, btn);
  });
  $('room-list').replaceChildren(...items);
  $('no-rooms').hidden = items.length > 0;
}

async function openRoom(roomId) {
  clearError();
  let room = state.rooms.get(roomId);
  if (!room) {
    try {
      room = await api.room(roomId);
      state.rooms.set(room.id, room);
    } catch (e) {
      showError(e, 'Opening the room');
      return;
    }
  }
  state.current = room.id;
  state.unread.delete(room.id);
  renderRooms();
  showRoomHeader(room);
  setStatus('typing', '');
  messages.render();
  showBanner(room);
  await loadMembers(room.id).catch((e) => showError(e, 'Loading members'));
  try {
    await messages.loadHistory(room.id);
  } catch (e) {
    showError(e, 'Loading messages');
  }
}

function showRoomHeader(room) {
  $('room-title').textContent = room.name;
  composer.setRoom(room);
}

async function showBanner(room) {
  const banner = $('patient-banner');
  const launched = state.launch && state.launch.room_id === room.id;
  if (room.kind !== 'patient_encounter' || (launched && state.launch.need_patient_banner === false)) {
    banner.hidden = true;
    return;
  }
  banner.hidden = true;
  try {
    const p = await api.patient(room.id);
    if (state.current !== room.id) return;
    $('pt-name').textContent = p.name || [p.family, p.given].filter(Boolean).join(', ') || 'Unknown patient';
    $('pt-dob').textContent = p.birth_date ? formatDate(p.birth_date) : 'Unknown';
    $('pt-mrn').textContent = p.mrn || 'Unknown';
    $('pt-gender').textContent = p.gender ? p.gender.charAt(0).toUpperCase() + p.gender.slice(1) : 'Unknown';
    banner.hidden = false;
  } catch (e) {
    if (e.status !== 404) showError(e, 'Loading the patient banner');
  }
}

function showTyping(f) {
  if (f.room_id !== state.current || (state.me && f.user_id === state.me.id)) return;
  setStatus('typing', `${nameOf(f.user_id)} is typing…`);
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => setStatus('typing', ''), 5000);
}

async function lookupOncall(ev) {
  ev.preventDefault();
  const service = $('oncall-service').value.trim();
  const out = $('oncall-result');
  if (!service) {
    $('oncall-service').focus();
    return;
  }
  out.replaceChildren('Looking up…');
  try {
    const tiers = await api.oncall(service);
    if (!tiers.length) {
      out.replaceChildren(`Nobody is on call for ${service} now.`);
      return;
    }
    out.replaceChildren(el('ul', { class: 'oncall-list', 'aria-label': `On call for ${service}` },
      ...tiers.map((t) => {
        state.names.set(t.user_id, t.display_name);
        return el('li', {}, el('strong', {}, t.display_name), ` (tier ${t.tier}, until ${formatTime(t.end)})`);
      })));
  } catch (e) {
    out.replaceChildren(e.status === 404 ? `No on-call service named ${service}.` : 'The lookup failed.');
    if (e.status !== 404) showError(e, 'On-call lookup');
  }
}

boot().catch(fatal);
