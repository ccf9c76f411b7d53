//! WebSocket frames (SPEC §6). JSON objects tagged by `type`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::{Ack, MemberReason, Message, Priority, Receipt, Room};

/// What a client may send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Post a message; the idempotency key makes a retry after a lost confirmation harmless.
    Send {
        /// Target room.
        room_id: Uuid,
        /// Text.
        body: String,
        /// Defaults to routine.
        #[serde(default)]
        priority: Option<Priority>,
        /// Client-chosen unique key for this message.
        idempotency_key: String,
        /// Send even though the DLP check warned.
        #[serde(default)]
        confirm_dlp: bool,
        /// Attachments uploaded beforehand over REST.
        #[serde(default)]
        attachment_ids: Vec<Uuid>,
    },
    /// Mark a message read.
    Read {
        /// The message.
        message_id: Uuid,
    },
    /// Acknowledge an urgent or stat message.
    Ack {
        /// The message.
        message_id: Uuid,
    },
    /// Tell the room you are typing.
    Typing {
        /// The room.
        room_id: Uuid,
    },
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A message in one of your rooms (yours included), after it was durably stored.
    Message {
        /// The message.
        message: Message,
    },
    /// Confirms to the sending connection that its `send` is durably stored.
    Sent {
        /// The key the client sent.
        idempotency_key: String,
        /// The stored message id.
        message_id: Uuid,
        /// Its stream position.
        seq: i64,
        /// True when this key had already been stored (a retry); nothing was stored twice.
        replayed: bool,
    },
    /// Delivery or read state changed for one or more of your messages (batched: one push to a
    /// 100-member room yields 99 deliveries, reported together).
    Receipt {
        /// The receipts.
        receipts: Vec<Receipt>,
    },
    /// Someone acknowledged an urgent or stat message in one of your rooms.
    Ack {
        /// The message.
        message_id: Uuid,
        /// Its room.
        room_id: Uuid,
        /// Who and when.
        ack: Ack,
    },
    /// A room you belong to was created or changed.
    Room {
        /// The room.
        room: Room,
    },
    /// Membership of one of your rooms changed.
    Member {
        /// The room.
        room_id: Uuid,
        /// The member.
        user_id: Uuid,
        /// `added` or `removed`.
        change: MemberChange,
        /// Why they were added.
        reason: Option<MemberReason>,
    },
    /// Someone in one of your rooms is typing.
    Presence {
        /// The room.
        room_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Currently always `typing`.
        state: String,
    },
    /// Sent once after connecting: the replay of missed messages is complete.
    Ready {
        /// Number of messages replayed because of `after`.
        replayed: usize,
        /// Highest stream position replayed, if any.
        last_seq: Option<i64>,
    },
    /// A client frame failed; carries problem details.
    Error {
        /// The problem-details type URN, e.g. `urn:wardline:problem:dlp-warning`.
        problem: String,
        /// HTTP-equivalent status.
        status: u16,
        /// Short title.
        title: String,
        /// Explanation.
        detail: String,
        /// The idempotency key of the failed `send`, if it was one.
        idempotency_key: Option<String>,
    },
}

/// Membership change kind.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberChange {
    /// Joined.
    Added,
    /// Left or was removed.
    Removed,
}

impl ServerFrame {
    /// Serialises the frame once so fan-out can share the text between connections.
    pub fn to_json(&self) -> std::sync::Arc<str> {
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"error","problem":"urn:wardline:problem:internal","status":500,"title":"serialisation failed","detail":"","idempotency_key":null}"#.into())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_and_reject_unknown_fields() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","room_id":"0190a000-0000-7000-8000-000000000000","body":"hi","priority":"stat","idempotency_key":"k1"}"#,
        )
        .unwrap();
        assert!(matches!(
            f,
            ClientFrame::Send {
                priority: Some(Priority::Stat),
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"read","message_id":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientFrame>(
                r#"{"type":"typing","room_id":"0190a000-0000-7000-8000-000000000000","extra":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
    }
}
