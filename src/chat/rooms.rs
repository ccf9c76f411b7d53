//! Room lifecycle and membership: who may create which kind of room and who may change its
//! members. Patient-encounter rooms are normally opened by the ADT feed; here only integration
//! accounts and admins may open one by hand.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bus::Target;
use super::frames::{MemberChange, ServerFrame};
use super::model::{Member, MemberReason, Room, RoomKind};
use super::service::Chat;
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::{audit, patients, rooms, users};

/// A request to open a room.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoomRequest {
    /// Kind of room.
    pub kind: RoomKind,
    /// Display name (required for care-team rooms).
    pub name: Option<String>,
    /// Users to add besides the creator (exactly one for a direct room).
    #[serde(default)]
    pub members: Vec<Uuid>,
    /// Encounter of a patient-encounter room.
    pub encounter_id: Option<Uuid>,
    /// Role of a role room, e.g. `oncall:cardiology`.
    pub role_key: Option<String>,
}

/// Whether the room was created now or an existing one was returned (direct rooms are unique
/// per pair).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A new room.
    Created,
    /// The pair's existing direct room.
    Existing,
}

impl Chat {
    /// Rooms the caller belongs to.
    pub async fn rooms(&self, who: &Principal) -> Result<Vec<Room>> {
        self.require_clinical(who, "room.list").await?;
        let list = rooms::rooms_for_user(&mut *self.store.read().await?, who.user_id).await?;
        let event = who
            .event("room.list", "user", who.user_id)
            .with_detail(serde_json::json!({"count": list.len()}));
        self.audit.record(event).await?;
        Ok(list)
    }

    /// One room, for members only.
    pub async fn room(&self, who: &Principal, room_id: Uuid) -> Result<Room> {
        self.require_member(who, room_id).await?;
        self.audit.record(who.event("room.view", "room", room_id)).await?;
        rooms::room_by_id(&mut *self.store.read().await?, room_id)
            .await?
            .ok_or(Error::NotFound("room"))
    }

    /// A room's members, for members only.
    pub async fn members(&self, who: &Principal, room_id: Uuid) -> Result<Vec<Member>> {
        self.require_member(who, room_id).await?;
        self.audit
            .record(who.event("room.members.view", "room", room_id))
            .await?;
        rooms::members(&mut *self.store.read().await?, room_id).await
    }

    /// Opens a room of the requested kind, enforcing who may open which kind.
    pub async fn create_room(&self, who: &Principal, req: NewRoomRequest) -> Result<(Room, Opened)> {
        let mut others: Vec<Uuid> = req
            .members
            .iter()
            .copied()
            .filter(|m| *m != who.user_id)
            .collect();
        others.sort();
        others.dedup();
        let mut direct_key = None;
        let (name, role_key) = match req.kind {
            RoomKind::CareTeam => {
                self.require_clinical(who, "room.create").await?;
                (required_name(req.name.as_deref())?, None)
            }
            RoomKind::Direct => {
                self.require_clinical(who, "room.create").await?;
                let [other] = others[..] else {
                    return Err(Error::Invalid(
                        "a direct room has exactly one other member".into(),
                    ));
                };
                let mut pair = [who.user_id, other];
                pair.sort();
                let key = format!("{}:{}", pair[0], pair[1]);
                let found = rooms::room_by_direct_key(&mut *self.store.read().await?, &key).await?;
                if let Some(room) = found {
                    return Ok((room, Opened::Existing));
                }
                direct_key = Some(key);
                (req.name.unwrap_or_else(|| "Direct message".into()), None)
            }
            RoomKind::Role => {
                if !(who.has(Role::Admin) || who.has(Role::Scheduler)) {
                    return Err(Error::Forbidden(
                        "role rooms are opened by schedulers and admins".into(),
                    ));
                }
                let key = req.role_key.filter(|k| valid_role_key(k)).ok_or_else(|| {
                    Error::Invalid(
                        "role_key is required, e.g. oncall:cardiology (letters, digits, : - _ .)".into(),
                    )
                })?;
                (req.name.unwrap_or_else(|| key.clone()), Some(key))
            }
            RoomKind::PatientEncounter => {
                if !(who.has(Role::Admin) || who.has(Role::Integration)) {
                    return Err(Error::Forbidden(
                        "patient-encounter rooms are opened by the ADT feed, integration accounts or admins"
                            .into(),
                    ));
                }
                let enc = req
                    .encounter_id
                    .ok_or_else(|| Error::Invalid("encounter_id is required".into()))?;
                if !patients::encounter_exists(&mut *self.store.read().await?, enc).await? {
                    return Err(Error::Invalid("encounter_id names no known encounter".into()));
                }
                (required_name(req.name.as_deref())?, None)
            }
        };
        for id in &others {
            if users::user_by_id(&mut *self.store.read().await?, *id)
                .await?
                .is_none()
            {
                return Err(Error::Invalid(format!("member {id} is not a known user")));
            }
        }
        let room_id = Uuid::now_v7();
        let now = self.clock.now().timestamp_millis();
        let new = rooms::NewRoom {
            id: room_id,
            kind: req.kind,
            name: &name,
            encounter_id: req
                .encounter_id
                .filter(|_| req.kind == RoomKind::PatientEncounter),
            role_key: role_key.as_deref(),
            direct_key,
            created_by: Some(who.user_id),
        };
        let mut tx = self.store.begin().await?;
        if let Err(e) = rooms::insert_room(&mut tx, &new, now).await {
            return Err(if e.is_unique_violation() {
                Error::Conflict("a room for this encounter, role or pair already exists".into())
            } else {
                e
            });
        }
        rooms::add_member(
            &mut tx,
            room_id,
            who.user_id,
            MemberReason::Creator,
            Some(who.user_id),
            now,
        )
        .await?;
        for id in &others {
            rooms::add_member(
                &mut tx,
                room_id,
                *id,
                MemberReason::Invited,
                Some(who.user_id),
                now,
            )
            .await?;
        }
        let event = who
            .event("room.create", "room", room_id)
            .with_detail(serde_json::json!({"kind": req.kind.as_str(), "members": others}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        let room = rooms::room_by_id(&mut *self.store.read().await?, room_id)
            .await?
            .ok_or(Error::NotFound("room"))?;
        self.bus
            .publish(Target::Room(room_id), &ServerFrame::Room { room: room.clone() })
            .await;
        Ok((room, Opened::Created))
    }

    /// Adds a member. Members of care-team and patient rooms may invite; role rooms are managed
    /// by schedulers and admins; direct rooms are fixed.
    pub async fn add_member(&self, who: &Principal, room_id: Uuid, user_id: Uuid) -> Result<bool> {
        let room = self.manageable_room(who, room_id).await?;
        if users::user_by_id(&mut *self.store.read().await?, user_id)
            .await?
            .is_none()
        {
            return Err(Error::Invalid(format!("user {user_id} is not a known user")));
        }
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.begin().await?;
        let added = rooms::add_member(
            &mut tx,
            room_id,
            user_id,
            MemberReason::Invited,
            Some(who.user_id),
            now,
        )
        .await?;
        if added {
            let event = who
                .event("room.member.add", "room", room_id)
                .with_detail(serde_json::json!({"user_id": user_id, "reason": "invited"}));
            audit::append(&mut tx, &[event], now).await?;
        }
        tx.commit().await?;
        if added {
            let frame = ServerFrame::Member {
                room_id,
                user_id,
                change: MemberChange::Added,
                reason: Some(MemberReason::Invited),
            };
            self.bus.publish(Target::Room(room_id), &frame).await;
            self.bus
                .publish(Target::Users(vec![user_id]), &ServerFrame::Room { room })
                .await;
        }
        Ok(added)
    }

    /// Removes a member: anyone may leave; admins (and schedulers, for role rooms) may remove.
    pub async fn remove_member(&self, who: &Principal, room_id: Uuid, user_id: Uuid) -> Result<bool> {
        if user_id != who.user_id {
            self.manageable_room(who, room_id).await?;
            if !(who.has(Role::Admin) || who.has(Role::Scheduler)) {
                return Err(Error::Forbidden("only admins remove other members".into()));
            }
        } else {
            self.require_member(who, room_id).await?;
        }
        let mut tx = self.store.begin().await?;
        let removed = rooms::remove_member(&mut tx, room_id, user_id).await?;
        if removed {
            let event = who
                .event("room.member.remove", "room", room_id)
                .with_detail(serde_json::json!({"user_id": user_id}));
            audit::append(&mut tx, &[event], self.clock.now().timestamp_millis()).await?;
        }
        tx.commit().await?;
        if removed {
            let frame = ServerFrame::Member {
                room_id,
                user_id,
                change: MemberChange::Removed,
                reason: None,
            };
            self.bus.publish(Target::Room(room_id), &frame).await;
            self.bus.publish(Target::Users(vec![user_id]), &frame).await;
        }
        Ok(removed)
    }

    async fn manageable_room(&self, who: &Principal, room_id: Uuid) -> Result<Room> {
        let room = rooms::room_by_id(&mut *self.store.read().await?, room_id)
            .await?
            .ok_or(Error::NotFound("room"))?;
        let member = rooms::is_member(&mut *self.store.read().await?, room_id, who.user_id).await?;
        let allowed = match room.kind {
            RoomKind::Direct => false,
            RoomKind::Role => who.has(Role::Admin) || who.has(Role::Scheduler),
            RoomKind::CareTeam | RoomKind::PatientEncounter => member || who.has(Role::Admin),
        };
        if allowed {
            Ok(room)
        } else if !member && !who.has(Role::Admin) {
            Err(Error::NotMember)
        } else {
            Err(Error::Forbidden(format!(
                "members of {} rooms cannot be changed by you",
                room.kind.as_str()
            )))
        }
    }
}

fn required_name(name: Option<&str>) -> Result<String> {
    match name.map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= 200 => Ok(n.to_string()),
        _ => Err(Error::Invalid("name is required (1 to 200 characters)".into())),
    }
}

fn valid_role_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 100
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'))
}
