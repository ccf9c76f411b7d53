-- Attachments (SPEC §6, §8): content and file name sealed with the room's data key; linked to
-- the message that carries them once it is posted.
CREATE TABLE attachments (
    id            TEXT PRIMARY KEY,
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    uploader_id   TEXT NOT NULL REFERENCES users(id),
    message_id    TEXT REFERENCES messages(id),
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    filename      BLOB NOT NULL,
    data          BLOB NOT NULL,
    key_id        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX attachments_room ON attachments(room_id, created_at);
CREATE INDEX attachments_message ON attachments(message_id);
