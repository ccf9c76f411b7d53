// The composer: Enter sends, Shift+Enter adds a line; attachments are uploaded over REST first
// and then carried by the message; a DLP warning asks "Send anyway?" and resends with
// confirm_dlp; retries reuse the idempotency key so nothing is ever stored twice.

import * as api from './api.js';
import * as messages from './messages.js';
import { $, el, state, uuid, showError, clearError, formatSize } from './ui.js';

const ACCEPTED = ['image/png', 'image/jpeg', 'application/pdf', 'text/plain'];
const DLP_KINDS = {
  ssn: 'a social security number',
  card: 'a payment card number',
};
let live = null;
let draft = null; // the message being sent: kept across a DLP prompt and network retries
let lastTyping = 0;
let shownRoom = null; // the room the chosen files belong to

export function init(socket) {
  live = socket;
  const text = $('composer-text');
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit();
  });
  text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      submit();
    }
  });
  text.addEventListener('input', () => {
    if (!state.current || !text.value || Date.now() - lastTyping < 4000) return;
    lastTyping = Date.now();
    live.send({ type: 'typing', room_id: state.current });
  });
  $('attachment').addEventListener('change', showChosenFiles);
  $('dlp-send').addEventListener('click', () => {
    $('dlp-dialog').close('send');
  });
  $('dlp-edit').addEventListener('click', () => $('dlp-dialog').close('edit'));
  $('dlp-dialog').addEventListener('close', () => {
    const confirmed = $('dlp-dialog').returnValue === 'send';
    $('dlp-dialog').returnValue = '';
    if (confirmed && draft) {
      draft.confirm_dlp = true;
      deliver();
    } else {
      draft = null;
      setBusy(false);
      $('composer-text').focus();
    }
  });
}

/** Enables or disables the composer for the open room (read-only and archived rooms). */
export function setRoom(room) {
  const active = Boolean(room) && room.status === 'active';
  for (const id of ['composer-text', 'priority', 'attachment', 'send']) $(id).disabled = !active || Boolean(draft);
  const note = $('composer-note');
  if (!room) {
    note.textContent = 'Choose a room to start.';
  } else if (room.status === 'read_only') {
    note.textContent = 'This room is read-only: the encounter has ended. History stays readable; no new messages can be sent.';
  } else if (room.status === 'archived') {
    note.textContent = 'This room is archived. No new messages can be sent.';
  } else {
    note.textContent = '';
  }
  note.hidden = !note.textContent;
  if ((room && room.id) !== shownRoom) {
    shownRoom = room && room.id;
    $('attachment').value = '';
    showChosenFiles();
  }
}

function showChosenFiles() {
  const files = [...$('attachment').files];
  const list = $('chosen-files');
  list.replaceChildren(...files.map((f) => el('li', {}, `${f.name} (${formatSize(f.size)})`)));
  list.hidden = files.length === 0;
}

function setBusy(busy) {
  $('composer').setAttribute('aria-busy', String(busy));
  $('send').disabled = busy;
  $('send').textContent = busy ? 'Sending…' : 'Send';
  const room = state.rooms.get(state.current);
  if (!busy) setRoom(room);
}

async function submit() {
  if (draft || !state.current || $('send').disabled) return;
  const room = state.rooms.get(state.current);
  if (!room || room.status !== 'active') return;
  const files = [...$('attachment').files];
  let body = $('composer-text').value;
  if (!body.trim() && files.length === 0) {
    $('composer-text').focus();
    return;
  }
  const bad = files.find((f) => !ACCEPTED.includes(f.type));
  if (bad) {
    showError(new Error(`"${bad.name}" cannot be attached: only PNG and JPEG images, PDF documents and plain text files are accepted.`), 'Attachment refused');
    return;
  }
  if (!body.trim()) body = `Attached: ${files.map((f) => f.name).join(', ')}`;
  clearError();
  draft = {
    roomId: room.id,
    files,
    attachment_ids: [],
    body,
    priority: $('priority').value,
    idempotency_key: uuid(),
    confirm_dlp: false,
  };
  setBusy(true);
  deliver();
}

async function deliver() {
  const d = draft;
  setBusy(true);
  try {
    while (d.attachment_ids.length < d.files.length) {
      const f = d.files[d.attachment_ids.length];
      $('send').textContent = `Uploading ${f.name}…`;
      const info = await api.upload(d.roomId, f);
      d.attachment_ids.push(info.id);
    }
    $('send').textContent = 'Sending…';
    const payload = {
      body: d.body,
      priority: d.priority,
      idempotency_key: d.idempotency_key,
      confirm_dlp: d.confirm_dlp,
      attachment_ids: d.attachment_ids,
    };
    let message;
    for (let attempt = 0; ; attempt += 1) {
      try {
        message = await api.send(d.roomId, payload);
        break;
      } catch (e) {
        // Lost connection: the same idempotency key makes the retry safe.
        if (e.status !== 0 || attempt >= 2) throw e;
        await new Promise((r) => setTimeout(r, 1000 * 2 ** attempt));
      }
    }
    messages.add(message);
    draft = null;
    $('composer-text').value = '';
    $('priority').value = 'routine';
    $('attachment').value = '';
    showChosenFiles();
    setBusy(false);
    $('composer-text').focus();
  } catch (e) {
    if (e instanceof api.ApiError && e.slug === 'dlp-warning') {
      askDlp(e);
      return;
    }
    draft = null;
    setBusy(false);
    showError(e, e.slug === 'dlp-blocked' ? 'Not sent' : 'The message was not sent');
    if (e.status === 409 || e.status === 403) refreshRoom(d.roomId);
  }
}

/** "the message appears to contain: card, ssn; check it, ..." -> the kinds in plain words. */
function dlpKinds(detail) {
  const m = /contain:?\s*([^;]+)/.exec(detail || '');
  if (!m) return null;
  const kinds = m[1].split(',').map((k) => k.trim()).filter(Boolean);
  const words = kinds.map((k) => DLP_KINDS[k] || `"${k.replace(/_/g, ' ')}" data`);
  return words.length > 1 ? `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}` : words[0];
}

function askDlp(err) {
  const what = dlpKinds(err.problem.detail) || 'sensitive information';
  $('dlp-text').textContent = `This message looks like it contains ${what}. Send anyway?`;
  $('dlp-dialog').returnValue = '';
  $('dlp-dialog').showModal();
  $('dlp-edit').focus();
}

async function refreshRoom(roomId) {
  try {
    const room = await api.room(roomId);
    state.rooms.set(room.id, room);
    if (room.id === state.current) setRoom(room);
  } catch (_) { /* the error shown already says enough */ }
}
