//! Chat domain types. Enumerations parse from and print to the exact strings stored in the
//! database and sent on the wire, so there is one spelling of each everywhere.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Declares a string-backed enum with `as_str` and `FromStr`, matching its serde spelling.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::error::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(crate::error::Error::Invalid(format!(
                        concat!("unknown ", stringify!($name), " '{}'"), other
                    ))),
                }
            }
        }
    };
}

string_enum!(
    /// What a room is for; decides who may create it and how membership is managed.
    RoomKind {
        /// One patient's encounter; membership follows ADT (attending, consulting, unit team).
        PatientEncounter = "patient_encounter",
        /// A standing team (e.g. a ward's nurses).
        CareTeam = "care_team",
        /// Two people.
        Direct = "direct",
        /// An on-call role such as `oncall:cardiology`.
        Role = "role",
    }
);

string_enum!(
    /// Lifecycle of a room: discharged encounters become read-only, then archived.
    RoomStatus {
        /// Messages may be sent.
        Active = "active",
        /// History readable, no new messages.
        ReadOnly = "read_only",
        /// Closed; subject to retention.
        Archived = "archived",
    }
);

string_enum!(
    /// Why someone is in a room; shown to users and audited.
    MemberReason {
        /// Attending practitioner of the encounter (PV1-7).
        Attending = "attending",
        /// Consulting practitioner (PV1-9).
        Consulting = "consulting",
        /// Admitting practitioner (PV1-17).
        Admitting = "admitting",
        /// Member of the unit's care team for the patient's location.
        UnitTeam = "unit_team",
        /// Currently on call for the room's role.
        OnCall = "on_call",
        /// Added by another member.
        Invited = "invited",
        /// Emergency access with a stated reason, flagged for review.
        BreakGlass = "break_glass",
        /// Created the room.
        Creator = "creator",
        /// Opened the patient's room from the EHR chart (SMART launch, SPEC §5).
        EhrLaunch = "ehr_launch",
    }
);

string_enum!(
    /// Clinical urgency; urgent and stat messages must be acknowledged.
    Priority {
        /// Normal conversation.
        Routine = "routine",
        /// Needs attention soon; acknowledgement expected.
        Urgent = "urgent",
        /// Needs attention now; acknowledgement expected.
        Stat = "stat",
    }
);

string_enum!(
    /// Whether a person wrote the message or Wardline did (e.g. "transferred from X to Y").
    MessageKind {
        /// Written by a user.
        User = "user",
        /// Written by Wardline itself.
        System = "system",
    }
);

impl Priority {
    /// Urgent and stat messages need an explicit acknowledgement from a recipient.
    pub fn requires_ack(self) -> bool {
        !matches!(self, Priority::Routine)
    }
}

/// A conversation space.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Room {
    /// Stable id.
    pub id: Uuid,
    /// What the room is for.
    pub kind: RoomKind,
    /// Display name.
    pub name: String,
    /// Lifecycle state.
    pub status: RoomStatus,
    /// The encounter of a `patient_encounter` room.
    pub encounter_id: Option<Uuid>,
    /// The role of a `role` room, e.g. `oncall:cardiology`.
    pub role_key: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A member of a room and why they are there.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// The user's display name.
    pub display_name: String,
    /// Why they are a member.
    pub reason: MemberReason,
    /// Since when.
    pub added_at: DateTime<Utc>,
}

/// One acknowledgement of an urgent or stat message.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Ack {
    /// Who acknowledged.
    pub user_id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
}

/// A chat message as clients see it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// UUIDv7 id.
    pub id: Uuid,
    /// Position in the server's commit-ordered stream; resume and paging use it.
    pub seq: i64,
    /// The room it was posted in.
    pub room_id: Uuid,
    /// The author; absent for system messages.
    pub sender_id: Option<Uuid>,
    /// User or system message.
    pub kind: MessageKind,
    /// Clinical urgency.
    pub priority: Priority,
    /// The text.
    pub body: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// True for urgent and stat messages.
    pub requires_ack: bool,
    /// Acknowledgements so far.
    pub acks: Vec<Ack>,
    /// Files attached to it.
    #[serde(default)]
    pub attachments: Vec<super::attachments::AttachmentInfo>,
}

/// Delivery and read state of one message for one recipient.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// The message.
    pub message_id: Uuid,
    /// The recipient.
    pub user_id: Uuid,
    /// When it reached one of the recipient's devices.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the recipient read it.
    pub read_at: Option<DateTime<Utc>>,
}

/// Converts stored Unix milliseconds to a timestamp.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Converts a timestamp to stored Unix milliseconds.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_spelling() {
        for p in [Priority::Routine, Priority::Urgent, Priority::Stat] {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(
            "patient_encounter".parse::<RoomKind>().unwrap(),
            RoomKind::PatientEncounter
        );
        assert!("emergency".parse::<Priority>().is_err());
        assert!(Priority::Stat.requires_ack() && !Priority::Routine.requires_ack());
    }

    #[test]
    fn millis_round_trip() {
        let t = from_ms(1_700_000_000_123);
        assert_eq!(to_ms(t), 1_700_000_000_123);
    }
}
