//! The patient side of an ADT event: find or create the patient by MRN, newest-wins
//! demographics, other identifiers, and A40 merges (kept reversible in `patient_merges`).

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::adt;
use super::apply::{Applied, ApplyError, Context, full_name};
use super::message::{Adt, Problem, Trigger};
use crate::store::patients::{self, PatientRow};
use crate::store::rooms;

pub(super) async fn upsert_patient(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    adt: &Adt,
    out: &mut Applied,
) -> Result<Option<PatientRow>, ApplyError> {
    let cfg = ctx.cfg;
    let at = adt.event_at.timestamp_millis();
    let mut found = patients::patient_by_identifier(conn, &cfg.mrn_system, &adt.patient.mrn).await?;
    let writes_demographics = matches!(
        adt.trigger,
        Trigger::A01 | Trigger::A04 | Trigger::A05 | Trigger::A08 | Trigger::A31 | Trigger::A40
    );
    let d = &adt.patient.demographics;
    let row = match found.take() {
        Some(p) if p.merged_into.is_some() => {
            out.warnings.push(
                "PID-3: the MRN belongs to a patient merged into another; the survivor was used".into(),
            );
            let survivor = p.merged_into.clone().unwrap_or_default();
            let row = patients::patient_by_id(conn, &survivor).await?;
            row.unwrap_or(p)
        }
        Some(p) => p,
        None if writes_demographics => {
            let row = PatientRow {
                id: Uuid::now_v7().to_string(),
                family_name: d.family.clone(),
                given_name: d.given.clone(),
                birth_date: d.birth_date.clone(),
                sex: d.sex.clone(),
                merged_into: None,
                demographics_at: Some(at),
            };
            patients::save_patient(conn, &row, ctx.now_ms).await?;
            patients::add_identifier(conn, &cfg.mrn_system, &adt.patient.mrn, &row.id).await?;
            add_other_ids(conn, adt, &row.id, out).await?;
            out.audit
                .push(ctx.event("patient.create", "patient", &row.id, json!({"via": ctx.via})));
            out.patient_id = Some(row.id.clone());
            return Ok(Some(row));
        }
        None => return Ok(None),
    };
    out.patient_id = Some(row.id.clone());
    // An event that carries no demographics at all (a FHIR Encounter write, a room opened from
    // the EHR) neither changes them nor moves their timestamp: a later correction with an
    // earlier event time must still apply.
    let writes_demographics = writes_demographics
        && (d.family.is_some() || d.given.is_some() || d.birth_date.is_some() || d.sex.is_some());
    if writes_demographics && adt::demographics_win(row.demographics_at, at) {
        let next = PatientRow {
            family_name: d.family.clone().or(row.family_name.clone()),
            given_name: d.given.clone().or(row.given_name.clone()),
            birth_date: d.birth_date.clone().or(row.birth_date.clone()),
            sex: d.sex.clone().or(row.sex.clone()),
            demographics_at: Some(at),
            ..row.clone()
        };
        let changed = (&next.family_name, &next.given_name, &next.birth_date, &next.sex)
            != (&row.family_name, &row.given_name, &row.birth_date, &row.sex);
        patients::save_patient(conn, &next, ctx.now_ms).await?;
        add_other_ids(conn, adt, &row.id, out).await?;
        if changed {
            rooms::rename_patient_rooms(conn, &row.id, &full_name(&next)).await?;
            out.audit
                .push(ctx.event("patient.update", "patient", &row.id, json!({"via": ctx.via})));
        }
        return Ok(Some(next));
    } else if writes_demographics {
        out.warnings
            .push("PID: demographics older than those held were not applied".into());
    }
    Ok(Some(row))
}

async fn add_other_ids(
    conn: &mut AnyConnection,
    adt: &Adt,
    patient_id: &str,
    out: &mut Applied,
) -> Result<(), ApplyError> {
    for (authority, kind, value) in &adt.patient.other_ids {
        let system = format!("urn:wardline:hl7:{authority}:{kind}");
        let ok = patients::add_identifier(conn, &system, value, patient_id).await?;
        if !ok && !patients::identifier_is(conn, &system, value, patient_id).await? {
            out.warnings.push(format!(
                "PID-3: an identifier of type {kind} already belongs to another patient"
            ));
        }
    }
    Ok(())
}

pub(super) async fn merge(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    adt: &Adt,
    survivor: &PatientRow,
    out: &mut Applied,
) -> Result<(), ApplyError> {
    let prior_mrn = adt.prior_mrn.as_deref().unwrap_or_default();
    let Some(prior) = patients::patient_by_identifier(conn, &ctx.cfg.mrn_system, prior_mrn).await? else {
        return Err(ApplyError::Problem(Problem {
            code: "204",
            location: Some(("MRG".into(), 1, 1)),
            reason: "MRG-1 names no patient known to Wardline".into(),
        }));
    };
    if prior.id == survivor.id || prior.merged_into.as_deref() == Some(survivor.id.as_str()) {
        out.warnings
            .push("MRG-1: already merged into this patient".into());
        return Ok(());
    }
    let (ids, moved) = patients::merge_into(conn, &prior.id, &survivor.id, ctx.now_ms).await?;
    let merge_id = Uuid::now_v7().to_string();
    patients::record_merge(
        conn,
        &merge_id,
        (&survivor.id, &prior.id),
        (&ids, &moved),
        Some(ctx.inbox_id),
        ctx.now_ms,
    )
    .await?;
    rooms::rename_patient_rooms(conn, &survivor.id, &full_name(survivor)).await?;
    for enc in &moved {
        if let Some(room) = rooms::room_for_encounter(conn, enc).await? {
            let note = "Patient records merged: this encounter now belongs to the surviving record.";
            out.messages
                .push(ctx.chat.post_system(conn, room.id, note, ctx.now_ms).await?);
        }
    }
    out.audit.push(ctx.event(
        "patient.merge",
        "patient",
        &survivor.id,
        json!({"via": ctx.via, "prior_id": prior.id, "merge_id": merge_id, "encounters": moved.len()}),
    ));
    Ok(())
}
