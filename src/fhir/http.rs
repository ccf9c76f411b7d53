//! FHIR read and search: `GET [base]/{type}/{id}` and `GET [base]/{type}?params`, each checked
//! against the caller's SMART grant, limited to the caller's rooms under `user/` scopes, and
//! audited (parameter names only: values such as a family name are patient data).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use wardline_fhir_wire::Kind;

use super::outcome::{FhirError, FhirResult, fhir_response};
use super::request::FhirRequest;
use super::scopes::{Context, Op};
use super::{include, resources, search};
use crate::audit::Event;
use crate::http::AppState;
use crate::store::fhir::Page;
use crate::store::{fhir as q, fhir_chat as qc};

/// One page of matches.
pub struct Found {
    /// All matches, for `Bundle.total`.
    pub total: i64,
    /// This page's resources.
    pub resources: Vec<Value>,
    /// The parameters applied (for links).
    pub applied: Vec<(String, String)>,
    /// The page served.
    pub page: Page,
}

fn kind_of(name: &str) -> FhirResult<Kind> {
    match Kind::parse(name) {
        Some(
            k @ (Kind::Patient
            | Kind::Encounter
            | Kind::CareTeam
            | Kind::Communication
            | Kind::Practitioner
            | Kind::PractitionerRole
            | Kind::AuditEvent),
        ) => Ok(k),
        _ => Err(FhirError::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!("resource type '{name}' is not served here (see /fhir/metadata)"),
        )),
    }
}

/// `GET [base]/{type}/{id}`.
pub async fn read(
    State(state): State<AppState>,
    req: FhirRequest,
    Path((type_name, id)): Path<(String, String)>,
) -> FhirResult<Response> {
    let kind = kind_of(&type_name)?;
    let event = req.who.event("fhir.view", kind.as_str(), &id);
    let context = match req.allowed(kind, Op::Read) {
        Ok(c) => c,
        Err(e) => {
            state.audit.record(event.failed()).await?;
            return Err(e);
        }
    };
    match find_by_id(&state, &req, kind, context, &id).await {
        Ok(resource) => {
            state.audit.record(event).await?;
            Ok(fhir_response(StatusCode::OK, resource))
        }
        Err(e) => {
            state.audit.record(event.failed()).await?;
            Err(e)
        }
    }
}

/// The resource `kind/id` as `context` may see it, or 404 (also when it exists but is not
/// visible): reads, and the answers to writes.
pub async fn find_by_id(
    state: &AppState,
    req: &FhirRequest,
    kind: Kind,
    context: Context,
    id: &str,
) -> FhirResult<Value> {
    let pairs = [("_id".to_string(), id.to_string())];
    let found = find(state, req, kind, context, &pairs, false).await?;
    found
        .resources
        .into_iter()
        .next()
        .ok_or_else(|| FhirError::not_found(kind.as_str(), id))
}

/// `GET [base]/{type}?params`: a searchset Bundle with `total`, `self` and `next` links.
pub async fn search_type(
    State(state): State<AppState>,
    req: FhirRequest,
    Path(type_name): Path<String>,
) -> FhirResult<Response> {
    let kind = kind_of(&type_name)?;
    let names: Vec<&str> = req.params.iter().map(|(k, _)| k.as_str()).collect();
    let event = Event::new(Some(req.who.user_id), "fhir.search", kind.as_str(), None)
        .from_source(req.who.source.as_deref());
    let context = match req.allowed(kind, Op::Search) {
        Ok(c) => c,
        Err(e) => {
            state.audit.record(event.failed()).await?;
            return Err(e);
        }
    };
    let (pairs, includes) = include::split(kind, &req.params, req.strict)?;
    let mut found = find(&state, &req, kind, context, &pairs, req.strict).await?;
    // Included resources are fetched as the caller may read them; what they may not read is
    // left out, as a read would have refused it.
    let mut included = Vec::new();
    for (target, id) in include::references(&found.resources, &includes) {
        if let Ok(ctx) = req.allowed(target, Op::Read)
            && let Ok(resource) = find_by_id(&state, &req, target, ctx, &id).await
        {
            included.push(resource);
        }
    }
    found.applied.extend(
        includes
            .iter()
            .map(|i| ("_include".to_string(), i.name.to_string())),
    );
    let detail = json!({"parameters": names, "total": found.total, "included": included.len()});
    state.audit.record(event.with_detail(detail)).await?;
    Ok(fhir_response(
        StatusCode::OK,
        bundle(&req.base, kind, found, included),
    ))
}

/// A searchset Bundle for one page, with the `_include`d resources after the matches.
pub fn bundle(base: &str, kind: Kind, found: Found, included: Vec<Value>) -> Value {
    let link = |offset: u32| {
        let mut pairs = found.applied.clone();
        pairs.retain(|(k, _)| k != "_count");
        pairs.push(("_count".into(), found.page.count.to_string()));
        if offset > 0 {
            pairs.push(("_offset".into(), offset.to_string()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("{base}/{}?{query}", kind.as_str())
    };
    let mut links = vec![json!({"relation": "self", "url": link(found.page.offset)})];
    let next = found.page.offset.saturating_add(found.page.count);
    if i64::from(next) < found.total {
        links.push(json!({"relation": "next", "url": link(next)}));
    }
    let entry = |r: Value, mode: &str| {
        let url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        json!({"fullUrl": url, "resource": r, "search": {"mode": mode}})
    };
    let entry: Vec<Value> = found
        .resources
        .into_iter()
        .map(|r| entry(r, "match"))
        .chain(included.into_iter().map(|r| entry(r, "include")))
        .collect();
    let mut out = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": resources::instant(chrono::Utc::now().timestamp_millis()),
        "total": found.total,
        "link": links,
    });
    if !entry.is_empty() {
        out["entry"] = Value::Array(entry);
    }
    out
}

fn found<Q>(s: search::Search<Q>, total: i64, resources: Vec<Value>) -> Found {
    Found {
        total,
        resources,
        applied: s.applied,
        page: s.page,
    }
}

/// A Patient read by id on SQLite, without a trip to a database thread (`store::inline`: the
/// most frequent FHIR request, and there the hand-off cost more than the read); `None` when the
/// search is more than a read by id or the store has no such reads.
fn patient_read_inline(
    state: &AppState,
    pairs: &[(String, String)],
    strict: bool,
    viewer: Option<&str>,
    mrn_system: &str,
) -> FhirResult<Option<Found>> {
    let Some(inline) = state.store.inline() else {
        return Ok(None);
    };
    let s = search::patient(pairs, strict)?;
    let Some(id) = s
        .query
        .id_only()
        .filter(|_| s.page.offset == 0 && s.page.count > 0)
    else {
        return Ok(None);
    };
    let mut resources = Vec::with_capacity(1);
    if let Some(p) = q::patient_inline(inline, id, viewer)? {
        resources.push(resources::patient(&p, &p.identifier_pairs()?, mrn_system));
    }
    Ok(Some(found(s, resources.len() as i64, resources)))
}

/// Runs a search of `kind` in `context` and builds the page's resources.
pub async fn find(
    state: &AppState,
    req: &FhirRequest,
    kind: Kind,
    context: Context,
    pairs: &[(String, String)],
    strict: bool,
) -> FhirResult<Found> {
    let viewer = req.viewer(context);
    let viewer = viewer.as_deref();
    let mrn_system = state.config.hl7.mrn_system.as_str();
    if kind == Kind::Patient
        && let Some(found) = patient_read_inline(state, pairs, strict, viewer, mrn_system)?
    {
        return Ok(found);
    }
    let mut conn = state.store.read().await?;
    Ok(match kind {
        Kind::Patient => {
            let s = search::patient(pairs, strict)?;
            let (total, rows) = q::patients(&mut conn, &s.query, viewer, s.page).await?;
            let mut resources = Vec::with_capacity(rows.len());
            for p in &rows {
                resources.push(resources::patient(p, &p.identifier_pairs()?, mrn_system));
            }
            found(s, total, resources)
        }
        Kind::Encounter => {
            let s = search::encounter(pairs, strict)?;
            let (total, rows) = q::encounters(&mut conn, &s.query, viewer, s.page).await?;
            let mut resources = Vec::with_capacity(rows.len());
            for e in &rows {
                let participants = q::encounter_participants(&mut conn, &e.row.id).await?;
                resources.push(resources::encounter(e, &participants));
            }
            found(s, total, resources)
        }
        Kind::CareTeam => {
            let s = search::care_team(pairs, strict)?;
            let (total, rows) = qc::teams(&mut conn, &s.query, viewer, s.page).await?;
            let mut resources = Vec::with_capacity(rows.len());
            for t in &rows {
                let members = qc::team_members(&mut conn, &t.id).await?;
                resources.push(resources::care_team(t, &members));
            }
            found(s, total, resources)
        }
        Kind::Communication => {
            let s = search::communication(pairs, strict)?;
            let (total, rows) = qc::messages(&mut conn, &s.query, viewer, s.page).await?;
            // Opening and decorating the messages reads keys and receipts on connections of
            // their own.
            drop(conn);
            let mut messages = Vec::with_capacity(rows.len());
            let mut context = Vec::with_capacity(rows.len());
            for row in rows {
                messages.push(crate::chat::history::open(&state.chat.keys, row.message).await?);
                context.push((row.encounter_id, row.patient_id));
            }
            crate::chat::history::decorate(&state.store, &state.chat.keys, &mut messages).await?;
            let downloads = format!("{}/api/v1/attachments", req.base.trim_end_matches("/fhir"));
            let resources = messages
                .iter()
                .zip(&context)
                .map(|(m, (e, p))| resources::communication(m, e.as_deref(), p.as_deref(), &downloads))
                .collect();
            found(s, total, resources)
        }
        Kind::Practitioner => {
            let s = search::practitioner(pairs, strict, resources::NPI_SYSTEM)?;
            let (total, rows) = qc::practitioners(&mut conn, &s.query, s.page).await?;
            let resources = rows.iter().map(resources::practitioner).collect();
            found(s, total, resources)
        }
        Kind::PractitionerRole => {
            let now = state.clock.now().timestamp_millis();
            let s = search::practitioner_role(pairs, strict, now)?;
            let (total, rows) = crate::store::oncall::shifts(&mut conn, &s.query, s.page).await?;
            let resources = rows
                .iter()
                .map(|r| resources::practitioner_role(r, now))
                .collect();
            found(s, total, resources)
        }
        Kind::AuditEvent => {
            let s = search::audit_event(pairs, strict)?;
            let total = crate::store::audit::count(&mut conn, &s.query).await?;
            let entries =
                crate::store::audit::search(&mut conn, &s.query, s.page.count, s.page.offset).await?;
            let resources = entries.iter().map(crate::audit::balp::audit_event).collect();
            found(s, total, resources)
        }
        other => {
            return Err(kind_of(other.as_str())
                .err()
                .unwrap_or_else(|| FhirError::not_found(other.as_str(), "-")));
        }
    })
}
