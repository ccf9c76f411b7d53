// The conversation: message items, receipts on your own messages, acknowledgements of urgent
// and stat messages, and read marks for what is displayed while the tab is visible.

import * as api from './api.js';
import {
  $, el, state, nameOf, isMine, listNames, formatTime, formatSize, showError,
} from './ui.js';

const PRIORITY_LABEL = { routine: 'Routine', urgent: 'Urgent', stat: 'STAT' };
let live = null; // the Live socket, for read frames

export function init(socket) {
  live = socket;
  document.addEventListener('visibilitychange', markDisplayedRead);
  $('messages').addEventListener('click', onClick);
}

export function convo(roomId) {
  let c = state.convos.get(roomId);
  if (!c) {
    c = { byId: new Map(), next: null, loaded: false };
    state.convos.set(roomId, c);
  }
  return c;
}

const sorted = (c) => [...c.byId.values()].sort((a, b) => a.seq - b.seq);

/** Loads the newest page of a room (or the page before the oldest loaded with `older`). */
export async function loadHistory(roomId, { older = false } = {}) {
  const c = convo(roomId);
  const page = await api.history(roomId, older ? c.next : undefined);
  if (!older) {
    // Keep only what arrived on the socket after this page was read.
    const top = Math.max(-1, ...page.items.map((m) => m.seq));
    for (const [id, m] of c.byId) if (m.seq <= top) c.byId.delete(id);
  }
  for (const m of page.items) c.byId.set(m.id, m);
  c.next = page.next_cursor || null;
  c.loaded = true;
  if (roomId === state.current) {
    render({ keepScroll: older });
    fetchReceipts(page.items.filter(isMine).slice(0, 20));
  }
}

/** Redraws the open room's messages. */
export function render({ keepScroll = false } = {}) {
  const list = $('messages');
  const c = state.current ? convo(state.current) : null;
  const fromBottom = list.scrollHeight - list.scrollTop;
  list.setAttribute('aria-busy', 'true');
  list.replaceChildren(...(c ? sorted(c).map(item) : []));
  $('load-earlier').hidden = !(c && c.next);
  list.setAttribute('aria-busy', 'false');
  list.scrollTop = keepScroll ? list.scrollHeight - fromBottom : list.scrollHeight;
  markDisplayedRead();
}

/** A message from the socket or a send: stored, and shown if its room is open. */
export function add(m) {
  const c = convo(m.room_id);
  const known = c.byId.has(m.id);
  c.byId.set(m.id, m);
  if (m.room_id !== state.current) return !known;
  const list = $('messages');
  const old = list.querySelector(`li[data-id="${CSS.escape(m.id)}"]`);
  if (old) {
    old.replaceWith(item(m));
    return false;
  }
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const after = [...list.children].find((li) => Number(li.dataset.seq) > m.seq);
  list.insertBefore(item(m), after || null);
  if (nearBottom || isMine(m)) list.scrollTop = list.scrollHeight;
  markDisplayedRead();
  return !known;
}

function find(messageId) {
  for (const c of state.convos.values()) {
    const m = c.byId.get(messageId);
    if (m) return m;
  }
  return null;
}

function refresh(messageId) {
  const m = find(messageId);
  const li = $('messages').querySelector(`li[data-id="${CSS.escape(messageId)}"]`);
  if (m && li) li.querySelector('.msg-foot').replaceWith(footer(m));
}

/** Receipt frames (and fetched receipts) for your own messages. */
export function applyReceipts(list) {
  for (const r of list) {
    let per = state.receipts.get(r.message_id);
    if (!per) state.receipts.set(r.message_id, (per = new Map()));
    const prev = per.get(r.user_id) || {};
    per.set(r.user_id, {
      ...r,
      delivered_at: r.delivered_at || prev.delivered_at || null,
      read_at: r.read_at || prev.read_at || null,
    });
  }
  for (const id of new Set(list.map((r) => r.message_id))) refresh(id);
}

/** An `ack` frame or the answer to your own acknowledgement. */
export function applyAck(messageId, ack) {
  const m = find(messageId);
  if (!m) return;
  if (!m.acks.some((a) => a.user_id === ack.user_id)) m.acks = [...m.acks, ack];
  refresh(messageId);
}

async function fetchReceipts(mine) {
  const results = await Promise.allSettled(mine.map((m) => api.receipts(m.id)));
  const all = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  if (all.length) applyReceipts(all);
}

function markDisplayedRead() {
  if (document.visibilityState !== 'visible' || !state.current) return;
  for (const m of convo(state.current).byId.values()) {
    if (isMine(m) || m.kind === 'system' || state.readSent.has(m.id)) continue;
    state.readSent.add(m.id);
    if (!live.send({ type: 'read', message_id: m.id })) {
      api.markRead(m.id).catch(() => state.readSent.delete(m.id));
    }
  }
}

function item(m) {
  const system = m.kind === 'system';
  const cls = ['msg', `prio-${m.priority}`];
  if (system) cls.push('system');
  if (isMine(m)) cls.push('mine');
  const headId = `mh-${m.id}`;
  const li = el('li', {
    class: cls.join(' '), 'data-testid': 'message', 'data-id': m.id, 'data-seq': m.seq,
    'data-priority': m.priority,
  });
  const head = el('p', { class: 'msg-head', id: headId },
    el('span', { class: 'sender' }, system ? 'Wardline (system)' : nameOf(m.sender_id)),
    ' ',
    el('time', { datetime: m.created_at }, formatTime(m.created_at)),
    ' ',
    el('span', { class: `badge badge-${m.priority}`, 'data-testid': 'priority' }, PRIORITY_LABEL[m.priority] || m.priority));
  const body = el('p', { class: 'msg-body', 'data-testid': 'message-body' });
  body.textContent = m.body;
  li.append(head, body);
  if (m.attachments && m.attachments.length) {
    li.append(el('ul', { class: 'attachments', 'aria-label': 'Attachments' },
      ...m.attachments.map((a) => el('li', {},
        el('a', { href: api.attachmentUrl(a.id), download: a.filename }, a.filename),
        ` (${formatSize(a.size)})`))));
  }
  li.append(footer(m));
  return li;
}

function footer(m) {
  const foot = el('div', { class: 'msg-foot' });
  if (m.requires_ack) {
    const names = m.acks.map((a) => nameOf(a.user_id));
    const acked = state.me && m.acks.some((a) => a.user_id === state.me.id);
    if (names.length) {
      foot.append(el('span', { class: 'acks', 'data-testid': 'ack-status', tabindex: '-1' },
        `Acknowledged by ${listNames(names)}`));
    } else if (isMine(m)) {
      foot.append(el('span', { class: 'acks pending', 'data-testid': 'ack-status' }, 'Awaiting acknowledgement'));
    }
    if (!isMine(m) && !acked) {
      foot.append(el('button', {
        type: 'button', class: 'ack-btn', 'data-ack': m.id, 'aria-describedby': `mh-${m.id}`,
      }, 'Acknowledge'));
    }
  }
  if (isMine(m)) foot.append(el('span', { class: 'receipts', 'data-testid': 'receipts' }, receiptText(m)));
  return foot;
}

function receiptText(m) {
  const per = state.receipts.get(m.id);
  if (!per) return 'Sent';
  const read = [...per.values()].filter((r) => r.read_at && r.user_id !== m.sender_id);
  if (read.length) {
    return read.length <= 3 ? `Read by ${listNames(read.map((r) => nameOf(r.user_id)))}` : `Read by ${read.length}`;
  }
  return [...per.values()].some((r) => r.delivered_at) ? 'Delivered' : 'Sent';
}

async function onClick(ev) {
  const btn = ev.target.closest('button[data-ack]');
  if (!btn) return;
  const id = btn.dataset.ack;
  btn.disabled = true;
  btn.textContent = 'Acknowledging…';
  try {
    const ack = await api.ack(id);
    state.readSent.add(id);
    applyAck(id, ack);
    const status = $('messages').querySelector(`li[data-id="${CSS.escape(id)}"] .acks`);
    if (status) status.focus();
  } catch (e) {
    btn.disabled = false;
    btn.textContent = 'Acknowledge';
    showError(e, 'The acknowledgement was not recorded');
  }
}
