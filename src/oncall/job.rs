//! The on-call timer loop, run by every node every `oncall.tick_ms`: adopt new urgent messages
//! sent to a role (a timer row each; the tier-1 person is emailed), hand role rooms and their
//! waiting messages over at shift change, and take the next escalation step of every timer that
//! is due. Timers are rows claimed inside a transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`),
//! so a step fires once across nodes and survives restarts; emails go out after commit.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Oncall;
use super::escalation::{Step, due_after, fallback_tier, next_step};
use super::mail::compose;
use crate::audit::Event;
use crate::chat::bus::Target;
use crate::chat::frames::{MemberChange, ServerFrame};
use crate::chat::model::{MemberReason, Message};
use crate::error::Result;
use crate::store::oncall::{self as store, Escalation};
use crate::store::{audit, parse_id, rooms, users};

/// What one tick did (for tests and `POST /api/v1/oncall/run`).
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Tick {
    /// Urgent role messages that got a timer.
    pub adopted: usize,
    /// Escalation steps taken.
    pub escalated: usize,
    /// Timers stopped by an acknowledgement.
    pub acknowledged: usize,
    /// Role rooms whose on-call member changed.
    pub handed_over: usize,
}

/// Everything to do once the transaction has committed.
#[derive(Default)]
struct After {
    messages: Vec<Message>,
    frames: Vec<(Target, ServerFrame)>,
    emails: Vec<(String, bool, String)>,
}

impl Oncall {
    /// One pass of the loop at the clock's current time, read once: a shift change and a timeout
    /// falling in the same pass are judged at the same instant (the handover first).
    pub async fn tick(&self) -> Result<Tick> {
        let now = self.chat.clock.now().timestamp_millis();
        let mut tick = Tick::default();
        self.adopt(&mut tick, now).await?;
        self.hand_over(&mut tick, now).await?;
        self.escalate_due(&mut tick, now).await?;
        Ok(tick)
    }

    async fn adopt(&self, tick: &mut Tick, now: i64) -> Result<()> {
        let unadopted = store::unadopted(&mut *self.chat.store.read().await?, now - 86_400_000).await?;
        for (message_id, room_id, role_key, _) in unadopted {
            let service = role_key.trim_start_matches("oncall:").to_string();
            let tiers = self.cfg.tiers(&service);
            let (tier, notified) = match self.holder(&service, 1, now).await? {
                Some(user) => (1, Some(user)),
                None => match self.step(&service, 0, now).await? {
                    Step::Notify { tier, user_id } => (i64::from(tier), Some(user_id)),
                    Step::Fallback { user_id } => (i64::from(fallback_tier(tiers)), Some(user_id)),
                    Step::Exhausted => (0, None),
                },
            };
            let e = Escalation {
                id: Uuid::now_v7().to_string(),
                message_id: message_id.clone(),
                room_id: room_id.clone(),
                service: service.clone(),
                tier,
                notified_id: notified.clone(),
                due_at: due_after(now, self.cfg.timeout_ms(&service)),
                state: if notified.is_some() {
                    "waiting"
                } else {
                    "exhausted"
                }
                .into(),
                steps: 0,
            };
            let mut after = After::default();
            let mut tx = self.chat.store.begin().await?;
            if !store::adopt(&mut tx, &e, now).await? {
                continue;
            }
            let mut events = vec![self.event(
                "oncall.notify",
                &message_id,
                json!({"service": service, "tier": tier, "user_id": notified}),
            )];
            if let Some(user) = &notified {
                self.ensure_member(&mut tx, &room_id, user, now, &mut after, &mut events)
                    .await?;
                after.emails.push((user.clone(), false, room_id.clone()));
            }
            audit::append(&mut tx, &events, now).await?;
            tx.commit().await?;
            self.finish(after).await;
            tick.adopted += 1;
        }
        Ok(())
    }

    async fn hand_over(&self, tick: &mut Tick, now: i64) -> Result<()> {
        let role_rooms = store::role_rooms(&mut *self.chat.store.read().await?).await?;
        for (room_id, service) in role_rooms {
            let Some(holder) = self.holder(&service, 1, now).await? else {
                continue;
            };
            let room = parse_id(&room_id)?;
            let mut tx = self.chat.store.begin().await?;
            let members = rooms::member_reasons(&mut tx, room).await?;
            let holder_id = parse_id(&holder)?;
            let waiting = store::waiting_in_room(&mut tx, &room_id).await?;
            let to_move = waiting
                .iter()
                .any(|e| e.tier == 1 && e.notified_id.as_deref() != Some(holder.as_str()));
            if members.iter().any(|(u, _)| *u == holder_id)
                && members.iter().filter(|(_, r)| r == "on_call").count() <= 1
                && !to_move
            {
                continue;
            }
            let mut after = After::default();
            let mut events = Vec::new();
            let added = self
                .ensure_member(&mut tx, &room_id, &holder, now, &mut after, &mut events)
                .await?;
            // Outgoing on-call members leave unless they hold another tier or wait on a message.
            let on_shift: Vec<String> = store::covering(&mut *self.chat.store.read().await?, &service, now)
                .await?
                .into_iter()
                .map(|h| h.user_id)
                .collect();
            for (user, reason) in &members {
                let u = user.to_string();
                if reason == "on_call"
                    && u != holder
                    && !on_shift.contains(&u)
                    && !waiting
                        .iter()
                        .any(|e| e.notified_id.as_deref() == Some(u.as_str()) && e.tier > 1)
                    && rooms::remove_member(&mut tx, room, *user).await?
                {
                    events.push(self.event(
                        "room.member.remove",
                        &room_id,
                        json!({"user_id": user, "reason": "on_call", "via": "oncall"}),
                    ));
                    let frame = ServerFrame::Member {
                        room_id: room,
                        user_id: *user,
                        change: MemberChange::Removed,
                        reason: None,
                    };
                    after.frames.push((Target::Users(vec![*user]), frame));
                }
            }
            let name = users::user_by_id(&mut *self.chat.store.read().await?, holder_id)
                .await?
                .map(|u| u.display_name)
                .unwrap_or_default();
            if added {
                after.messages.push(
                    self.chat
                        .post_system(&mut tx, room, &format!("On call now: {name}."), now)
                        .await?,
                );
            }
            for mut e in waiting
                .into_iter()
                .filter(|e| e.tier == 1 && e.notified_id.as_deref() != Some(holder.as_str()))
            {
                e.notified_id = Some(holder.clone());
                e.due_at = due_after(now, self.cfg.timeout_ms(&service));
                e.steps += 1;
                store::save(&mut tx, &e, now).await?;
                events.push(self.event(
                    "oncall.handover",
                    &e.message_id,
                    json!({"service": service, "user_id": holder}),
                ));
                let note = format!("Shift change: an unacknowledged urgent message now goes to {name}.");
                after
                    .messages
                    .push(self.chat.post_system(&mut tx, room, &note, now).await?);
                after.emails.push((holder.clone(), true, room_id.clone()));
            }
            audit::append(&mut tx, &events, now).await?;
            tx.commit().await?;
            self.finish(after).await;
            tick.handed_over += 1;
        }
        Ok(())
    }

    async fn escalate_due(&self, tick: &mut Tick, now: i64) -> Result<()> {
        let mut tx = self.chat.store.begin().await?;
        let due = store::claim_due(&mut tx, now, 50).await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut after = After::default();
        let mut events = Vec::new();
        for mut e in due {
            if store::acknowledged(&mut tx, &e.message_id).await? {
                e.state = "acknowledged".into();
                store::save(&mut tx, &e, now).await?;
                tick.acknowledged += 1;
                continue;
            }
            let minutes = self.cfg.timeout_ms(&e.service) / 60_000;
            let room = parse_id(&e.room_id)?;
            let from = e.tier;
            let (note, target) = match self
                .step(&e.service, u32::try_from(e.tier).unwrap_or(0), now)
                .await?
            {
                Step::Notify { tier, user_id } => {
                    e.tier = i64::from(tier);
                    (
                        format!("Not acknowledged after {minutes} min: escalated to tier {tier}"),
                        Some(user_id),
                    )
                }
                Step::Fallback { user_id } => {
                    e.tier = i64::from(fallback_tier(self.cfg.tiers(&e.service)));
                    (
                        format!("Not acknowledged after {minutes} min: escalated to the fallback"),
                        Some(user_id),
                    )
                }
                Step::Exhausted => (
                    "Not acknowledged, and nobody is left to escalate to.".to_string(),
                    None,
                ),
            };
            e.steps += 1;
            let note = match &target {
                Some(user) => {
                    self.ensure_member(&mut tx, &e.room_id, user, now, &mut after, &mut events)
                        .await?;
                    after.emails.push((user.clone(), true, e.room_id.clone()));
                    let name = users::user_by_id(&mut *self.chat.store.read().await?, parse_id(user)?)
                        .await?
                        .map(|u| u.display_name)
                        .unwrap_or_default();
                    e.notified_id = Some(user.clone());
                    e.due_at = due_after(now, self.cfg.timeout_ms(&e.service));
                    format!("{note} ({name}).")
                }
                None => {
                    e.state = "exhausted".into();
                    note
                }
            };
            events.push(self.event(
                "oncall.escalate",
                &e.message_id,
                json!({"service": e.service, "from_tier": from, "to_tier": e.tier, "user_id": target}),
            ));
            after
                .messages
                .push(self.chat.post_system(&mut tx, room, &note, now).await?);
            store::save(&mut tx, &e, now).await?;
            tick.escalated += 1;
        }
        audit::append(&mut tx, &events, now).await?;
        tx.commit().await?;
        self.finish(after).await;
        Ok(())
    }

    async fn step(&self, service: &str, tier: u32, now: i64) -> Result<Step> {
        let shifts = store::covering(&mut *self.chat.store.read().await?, service, now).await?;
        let fallback = match self.cfg.fallback(service) {
            Some(login) => users::user_by_username(&mut *self.chat.store.read().await?, login)
                .await?
                .filter(|u| u.active)
                .map(|u| u.id.to_string()),
            None => None,
        };
        let holder = |t| super::roster::holder(&shifts, t, now).map(|h| h.user_id.clone());
        Ok(next_step(
            tier,
            self.cfg.tiers(service),
            holder,
            fallback.as_deref(),
        ))
    }

    /// Adds `user` to the room as on-call member unless already a member; true if added.
    async fn ensure_member(
        &self,
        tx: &mut sqlx::AnyConnection,
        room_id: &str,
        user: &str,
        now: i64,
        after: &mut After,
        events: &mut Vec<Event>,
    ) -> Result<bool> {
        let (room, uid) = (parse_id(room_id)?, parse_id(user)?);
        if !rooms::add_member(tx, room, uid, MemberReason::OnCall, None, now).await? {
            return Ok(false);
        }
        events.push(self.event(
            "room.member.add",
            room_id,
            json!({"user_id": user, "reason": "on_call", "via": "oncall"}),
        ));
        let audience = rooms::member_ids(&mut *tx, room).await?;
        let frame = ServerFrame::Member {
            room_id: room,
            user_id: uid,
            change: MemberChange::Added,
            reason: Some(MemberReason::OnCall),
        };
        after.frames.push((Target::Users(audience), frame));
        Ok(true)
    }

    fn event(&self, action: &str, id: &str, detail: serde_json::Value) -> Event {
        let entity = if action.starts_with("room.") {
            "room"
        } else {
            "message"
        };
        Event::new(None, action, entity, Some(id.to_string())).with_detail(detail)
    }

    /// Delivers what a committed step produced and sends its emails (a failed email is audited;
    /// the room already shows the step).
    async fn finish(&self, after: After) {
        self.chat.deliver_committed(&after.messages).await;
        for (target, frame) in after.frames {
            self.chat.bus.publish(target, &frame).await;
        }
        let Some(mailer) = &self.mailer else { return };
        for (user, escalated, room_id) in after.emails {
            let address: Result<_> =
                async { store::email_of(&mut *self.chat.store.read().await?, &user).await }.await;
            let address = address.ok().flatten();
            let outcome = match address {
                Some(to) => {
                    let (subject, body) = compose(&self.link(&room_id), escalated);
                    mailer.send(&to, &subject, &body).await
                }
                None => Err(crate::error::Error::Invalid("no email address".into())),
            };
            let mut event = Event::new(None, "oncall.email", "user", Some(user.clone()));
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "on-call email not sent");
                event = event.with_detail(json!({"error": e.to_string()})).failed();
            }
            if let Err(e) = self.chat.audit.record(event).await {
                tracing::error!(error = %e, "on-call email not audited");
            }
        }
    }
}

/// Runs [`Oncall::tick`] every `oncall.tick_ms` until shutdown; errors are logged and retried.
pub fn spawn(oncall: Arc<Oncall>, shutdown: CancellationToken) -> JoinHandle<()> {
    let every = std::time::Duration::from_millis(oncall.cfg.tick_ms.max(50));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = oncall.tick().await {
                tracing::warn!(error = %e, "on-call tick failed");
            }
        }
    })
}
