//! Joining a patient's room from the EHR chart (SPEC §5): the EHR has put this clinician in the
//! patient's context, so opening the room from there adds them with their own reason,
//! `ehr_launch`, visible to the room and audited like any membership change.

use serde_json::json;
use uuid::Uuid;

use super::bus::Target;
use super::frames::{MemberChange, ServerFrame};
use super::model::MemberReason;
use super::service::Chat;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::{audit, rooms};

impl Chat {
    /// Adds `who` to the room (unless already a member) and posts `note` as a system message;
    /// returns whether they joined.
    pub async fn join_from_ehr(&self, who: &Principal, room_id: Uuid, note: Option<&str>) -> Result<bool> {
        let now = self.clock.now().timestamp_millis();
        let pending = self.keys.pending();
        let mut tx = self.store.begin().await?;
        let joined = !rooms::is_member(&mut *tx, room_id, who.user_id).await?;
        if joined {
            rooms::add_member(
                &mut tx,
                room_id,
                who.user_id,
                MemberReason::EhrLaunch,
                Some(who.user_id),
                now,
            )
            .await?;
            let event = who
                .event("room.join", "room", room_id)
                .with_detail(json!({"reason": MemberReason::EhrLaunch.as_str()}));
            audit::append(&mut tx, &[event], now).await?;
        }
        let mut notes = Vec::new();
        if let Some(note) = note {
            notes.push(self.post_system(&mut tx, room_id, note, now).await?);
        }
        if let Err(e) = tx.commit().await {
            self.forget_uncommitted(&notes);
            return Err(e.into());
        }
        pending.committed();
        self.deliver_committed(&notes).await;
        if joined {
            let frame = ServerFrame::Member {
                room_id,
                user_id: who.user_id,
                change: MemberChange::Added,
                reason: Some(MemberReason::EhrLaunch),
            };
            self.bus.publish(Target::Room(room_id), &frame).await;
            let room = rooms::room_by_id(&mut *self.store.read().await?, room_id)
                .await?
                .ok_or(Error::NotFound("room"))?;
            self.bus
                .publish(Target::Users(vec![who.user_id]), &ServerFrame::Room { room })
                .await;
        }
        Ok(joined)
    }
}

/// What the web app's patient banner shows (SPEC §5 step 7): who this room is about, so a
/// clinician can confirm it is the patient open in the EHR.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PatientBanner {
    /// `Family, Given`.
    pub name: Option<String>,
    /// Family name.
    pub family: Option<String>,
    /// Given name.
    pub given: Option<String>,
    /// FHIR date.
    pub birth_date: Option<String>,
    /// The MRN.
    pub mrn: Option<String>,
    /// FHIR administrative gender.
    pub gender: Option<String>,
}

impl Chat {
    /// The patient of a patient-encounter room, for its members; audited as a patient view.
    pub async fn patient_banner(
        &self,
        who: &Principal,
        room_id: Uuid,
        mrn_system: &str,
    ) -> Result<PatientBanner> {
        use crate::store::fhir as q;
        self.require_member(who, room_id).await?;
        let mut conn = self.store.read().await?;
        let room = rooms::room_by_id(&mut *conn, room_id)
            .await?
            .ok_or(Error::NotFound("room"))?;
        let encounter_id = room.encounter_id.ok_or(Error::NotFound("patient of this room"))?;
        let query = q::EncounterQuery {
            id: Some(encounter_id.to_string()),
            ..Default::default()
        };
        let page = q::Page { offset: 0, count: 1 };
        let encounter = q::encounters(&mut conn, &query, None, page)
            .await?
            .1
            .into_iter()
            .next()
            .ok_or(Error::NotFound("patient of this room"))?;
        let patient_id = encounter.row.patient_id;
        let query = q::PatientQuery {
            id: Some(patient_id.clone()),
            ..Default::default()
        };
        let patient = q::patients(&mut conn, &query, None, page)
            .await?
            .1
            .into_iter()
            .next()
            .ok_or(Error::NotFound("patient of this room"))?
            .row;
        let mrn = q::identifier_of(&mut conn, &patient_id, mrn_system).await?;
        drop(conn);
        self.audit
            .record(who.event("patient.view", "room", room_id))
            .await?;
        let name = match (&patient.family_name, &patient.given_name) {
            (Some(f), Some(g)) => Some(format!("{f}, {g}")),
            (Some(f), None) => Some(f.clone()),
            (None, Some(g)) => Some(g.clone()),
            (None, None) => None,
        };
        Ok(PatientBanner {
            name,
            family: patient.family_name,
            given: patient.given_name,
            birth_date: patient.birth_date,
            mrn,
            gender: patient.sex,
        })
    }
}
