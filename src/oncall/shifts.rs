//! One shift at a time (FHIR PractitionerRole create, update, delete, SPEC §7): each change is
//! audited and answered with the validation report (gaps, overlaps) of the service around it.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::roster::{self, Report, ShiftIn};
use super::service::{Oncall, resolve_person};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::fhir::Page;
use crate::store::{audit, oncall as store, oncall_shifts};

impl Oncall {
    /// Stores `shift` as a new shift (`id` absent) or in place of shift `id`; returns its id and
    /// the report of its service over the shift's time.
    pub async fn put_shift(
        &self,
        who: &Principal,
        id: Option<&str>,
        shift: &ShiftIn,
    ) -> Result<(String, Report)> {
        let user_id = resolve_person(&mut *self.chat.store.read().await?, &shift.practitioner)
            .await?
            .ok_or_else(|| Error::Invalid("PractitionerRole.practitioner names no active person".into()))?;
        let now = self.chat.clock.now().timestamp_millis();
        let mut tx = self.chat.store.begin().await?;
        let (shift_id, action) = match id {
            Some(id) => {
                if oncall_shifts::delete(&mut tx, id).await?.is_none() {
                    return Err(Error::NotFound("PractitionerRole"));
                }
                (id.to_string(), "roster.shift.update")
            }
            None => (Uuid::now_v7().to_string(), "roster.shift.create"),
        };
        let new = store::NewShift {
            id: shift_id.clone(),
            service: &shift.service,
            tier: shift.tier,
            start_ms: shift.start.timestamp_millis(),
            end_ms: shift.end.timestamp_millis(),
            user_id,
        };
        oncall_shifts::insert(&mut tx, &new, &format!("fhir:{shift_id}"), now).await?;
        let event = who
            .event(action, "roster", &shift_id)
            .with_detail(json!({"service": shift.service, "tier": shift.tier}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        let report = self.report_around(&shift.service, shift.start, shift.end).await?;
        Ok((shift_id, report))
    }

    /// Removes shift `id`; returns the report of its service over the removed shift's time.
    pub async fn delete_shift(&self, who: &Principal, id: &str) -> Result<Report> {
        let query = store::ShiftQuery {
            id: Some(id.to_string()),
            ..Default::default()
        };
        let (_, found) = store::shifts(
            &mut *self.chat.store.read().await?,
            &query,
            Page { offset: 0, count: 1 },
        )
        .await?;
        let shift = found
            .into_iter()
            .next()
            .ok_or(Error::NotFound("PractitionerRole"))?;
        let now = self.chat.clock.now().timestamp_millis();
        let mut tx = self.chat.store.begin().await?;
        if oncall_shifts::delete(&mut tx, id).await?.is_none() {
            return Err(Error::NotFound("PractitionerRole"));
        }
        let event = who
            .event("roster.shift.delete", "roster", id)
            .with_detail(json!({"service": shift.service, "tier": shift.tier}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        self.report_around(&shift.service, at(shift.starts_at), at(shift.ends_at))
            .await
    }

    /// Gaps and overlaps of `service` among the shifts that touch `[from, to)`; a window left
    /// with no shift at all is one gap.
    async fn report_around(&self, service: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Report> {
        let mut conn = self.chat.store.read().await?;
        let query = store::ShiftQuery {
            service: Some(service.to_string()),
            from: Some(from.timestamp_millis() + 1),
            to: Some(to.timestamp_millis() - 1),
            ..Default::default()
        };
        let (_, rows) = store::shifts(
            &mut conn,
            &query,
            Page {
                offset: 0,
                count: 1000,
            },
        )
        .await?;
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let shifts: Vec<ShiftIn> = rows
            .iter()
            .map(|r| ShiftIn {
                service: r.service.clone(),
                tier: u32::try_from(r.tier).unwrap_or(1),
                start: at(r.starts_at),
                end: at(r.ends_at),
                practitioner: r.user_id.clone(),
            })
            .collect();
        if shifts.is_empty() {
            return Ok(Report {
                gaps: vec![roster::Gap {
                    service: service.to_string(),
                    start: from,
                    end: to,
                }],
                overlaps: Vec::new(),
            });
        }
        Ok(roster::validate(&shifts))
    }
}
