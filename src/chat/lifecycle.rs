//! Patient-room lifecycle after discharge (SPEC §3, A03): the ADT feed schedules when a room
//! becomes read-only and when it is archived; this job carries the schedule out. Each room moves
//! in its own transaction with a conditional update, so several nodes may run it at once.

use serde_json::json;
use uuid::Uuid;

use super::bus::Target;
use super::frames::ServerFrame;
use super::service::Chat;
use crate::audit::Event;
use crate::error::Result;
use crate::store::{audit, rooms};

impl Chat {
    /// Moves every room whose scheduled time has come; returns the rooms moved and their new
    /// status.
    pub async fn advance_room_lifecycle(&self) -> Result<Vec<(Uuid, &'static str)>> {
        let now = self.clock.now().timestamp_millis();
        let mut moved = Vec::new();
        let due = rooms::lifecycle_due(&mut *self.store.read().await?, now).await?;
        for (room_id, status) in due {
            let mut tx = self.store.begin().await?;
            if !rooms::advance_lifecycle(&mut tx, room_id, status, now).await? {
                continue;
            }
            let event = Event::new(None, "room.status", "room", Some(room_id.to_string()))
                .from_source(Some("lifecycle-job"))
                .with_detail(json!({"status": status, "reason": "discharge schedule"}));
            audit::append(&mut tx, &[event], now).await?;
            tx.commit().await?;
            let found = rooms::room_by_id(&mut *self.store.read().await?, room_id).await?;
            if let Some(room) = found {
                self.bus
                    .publish(Target::Room(room_id), &ServerFrame::Room { room })
                    .await;
            }
            moved.push((room_id, status));
        }
        Ok(moved)
    }
}
