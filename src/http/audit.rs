//! Audit endpoints for auditors: search, export (NDJSON) and chain verification. Each use is
//! itself audited.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::Problem;
use super::extract::ApiQuery;
use crate::audit::Entry;
use crate::audit::balp;
use crate::audit::chain::{self, Report};
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::audit::{self, Filter};

/// Search filters; all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Acting user id.
    pub actor_id: Option<String>,
    /// Exact action, e.g. `room.view`.
    pub action: Option<String>,
    /// Entity kind, e.g. `room`.
    pub entity_type: Option<String>,
    /// Entity id.
    pub entity_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// From (RFC 3339, inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until (RFC 3339, exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Page cursor: only entries before this sequence number.
    pub before: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries.
    pub items: Vec<Entry>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

async fn require_auditor(state: &AppState, who: &Principal, action: &str) -> Result<()> {
    state
        .audit
        .gate(who, &[Role::Auditor], action, ("audit_log", None), Record::Always)
        .await
}

/// Searches the audit trail (auditors only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(SearchQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<AuditPage>> {
    require_auditor(&state, &who, "audit.search").await?;
    if let Some(o) = &q.outcome
        && o != "success"
        && o != "failure"
    {
        return Err(Error::BadRequest("outcome must be success or failure".into()));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = Filter {
        actor_id: q.actor_id,
        action: q.action,
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        outcome: q.outcome,
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        before_seq: q.before,
        seq: None,
    };
    let items = audit::search(&mut *state.store.read().await?, &filter, limit + 1, 0).await?;
    let more = items.len() > limit as usize;
    let items: Vec<Entry> = items.into_iter().take(limit as usize).collect();
    let next_before = if more { items.last().map(|e| e.seq) } else { None };
    Ok(Json(AuditPage { items, next_before }))
}

/// Export format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `ndjson` (default: Wardline entries) or `fhir` (FHIR R4 AuditEvent per line, IHE BALP).
    pub format: Option<String>,
}

/// The whole trail, oldest first, one entry per line (auditors only).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportQuery),
    responses((status = 200, description = "application/x-ndjson or application/fhir+ndjson"), (status = 400, body = Problem),
              (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<impl IntoResponse> {
    let fhir = match q.format.as_deref() {
        None | Some("ndjson") => false,
        Some("fhir") => true,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "unknown format '{other}'; use ndjson or fhir"
            )));
        }
    };
    require_auditor(&state, &who, "audit.export").await?;
    let mut body = String::new();
    chain::for_each_page(&state.store, |page| {
        for e in page {
            let line = if fhir {
                balp::audit_event(e).to_string()
            } else {
                serde_json::to_string(e).map_err(|e| Error::Internal(e.to_string()))?
            };
            body.push_str(&line);
            body.push('\n');
        }
        Ok(())
    })
    .await?;
    let content_type = if fhir {
        "application/fhir+ndjson"
    } else {
        "application/x-ndjson"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}

/// Recomputes the hash chain and reports the first break (auditors only).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Report), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn verify(State(state): State<AppState>, who: Principal) -> Result<Json<Report>> {
    require_auditor(&state, &who, "audit.verify").await?;
    Ok(Json(chain::verify(&state.store).await?))
}
