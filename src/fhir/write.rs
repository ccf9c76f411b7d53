//! FHIR create and update: `POST [base]/{type}` (with `If-None-Exist` for conditional create)
//! and `PUT [base]/{type}/{id}`. Patient and Encounter run the ADT event table (`write_adt`);
//! Communication posts a chat message; Practitioner keeps the user directory. Every attempt is
//! audited, refusals as failures.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use uuid::Uuid;
use wardline_fhir_wire::{Kind, from_wire};

use super::http::{find, find_by_id};
use super::input::reference_id;
use super::outcome::{FhirError, FhirResult, fhir_response};
use super::request::FhirRequest;
use super::scopes::{Context, Op};
use super::write_adt;
use crate::chat::model::Priority;
use crate::chat::service::{Draft, SendOutcome};
use crate::error::Error;
use crate::http::AppState;
use crate::store::users::{self, UserRecord};

/// What a write produced: the resource as now stored and whether it is new.
pub struct Written {
    /// The resource, as a read would return it.
    pub resource: Value,
    /// 201 rather than 200.
    pub created: bool,
    /// An OperationOutcome about the write (the roster report), returned instead of the
    /// resource when the client sends `Prefer: return=OperationOutcome`.
    pub outcome: Option<Value>,
}

fn writable(name: &str, op: Op) -> FhirResult<Kind> {
    match (Kind::parse(name), op) {
        (Some(k @ (Kind::Patient | Kind::Encounter | Kind::Practitioner | Kind::PractitionerRole)), _) => {
            Ok(k)
        }
        (Some(Kind::Communication), Op::Create) => Ok(Kind::Communication),
        (Some(_), _) => Err(FhirError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("{name} cannot be written this way (see /fhir/metadata)"),
        )),
        (None, _) => Err(FhirError::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!("resource type '{name}' is not served here"),
        )),
    }
}

/// Refuses bodies that are not FHIR JSON with 415.
pub fn check_media_type(headers: &HeaderMap) -> FhirResult<()> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let base = ctype.split(';').next().unwrap_or_default().trim();
    if base != "application/fhir+json" && base != "application/json" {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "send the resource as application/fhir+json",
        ));
    }
    Ok(())
}

/// Reads the body as the expected resource type, refusing other media types with 415.
fn body(kind: Kind, headers: &HeaderMap, bytes: &[u8]) -> FhirResult<Value> {
    check_media_type(headers)?;
    Ok(from_wire(kind, bytes)?)
}

/// Whether the client asked for the OperationOutcome rather than the resource.
fn wants_outcome(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split([',', ';'])
                .any(|p| p.trim().eq_ignore_ascii_case("return=OperationOutcome"))
        })
}

/// A PractitionerRole write, with its roster report kept for the answer.
async fn shift(state: &AppState, req: &FhirRequest, v: &Value, id: Option<&str>) -> FhirResult<Written> {
    let (mut written, outcome) = super::write_roster::put(state, req, v, id).await?;
    written.outcome = Some(outcome);
    Ok(written)
}

/// `POST [base]/{type}`.
pub async fn create(
    State(state): State<AppState>,
    req: FhirRequest,
    Path(type_name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> FhirResult<Response> {
    let kind = writable(&type_name, Op::Create)?;
    let result = async {
        let context = req.allowed(kind, Op::Create)?;
        let value = body(kind, &headers, &bytes)?;
        if let Some(existing) = conditional(&state, &req, kind, context, &headers).await? {
            return Ok(Written {
                resource: existing,
                created: false,
                outcome: None,
            });
        }
        match kind {
            Kind::Patient => write_adt::patient(&state, &req, &value, None).await,
            Kind::Encounter => write_adt::encounter(&state, &req, &value, None).await,
            Kind::Communication => communication(&state, &req, context, &value).await,
            Kind::PractitionerRole => shift(&state, &req, &value, None).await,
            _ => practitioner(&state, &req, &value, None).await,
        }
    }
    .await;
    respond(&state, &req, kind, "fhir.create", result, wants_outcome(&headers)).await
}

/// `PUT [base]/{type}/{id}`: the body's `id` must be the URL's; the resource must exist (ids are
/// Wardline's, so update-as-create is not offered).
pub async fn update(
    State(state): State<AppState>,
    req: FhirRequest,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> FhirResult<Response> {
    let kind = writable(&type_name, Op::Update)?;
    let result = async {
        req.allowed(kind, Op::Update)?;
        let value = body(kind, &headers, &bytes)?;
        if value["id"].as_str() != Some(id.as_str()) {
            return Err(FhirError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "the resource's id must be present and equal the id in the URL",
            ));
        }
        match kind {
            Kind::Patient => write_adt::patient(&state, &req, &value, Some(&id)).await,
            Kind::Encounter => write_adt::encounter(&state, &req, &value, Some(&id)).await,
            Kind::PractitionerRole => shift(&state, &req, &value, Some(&id)).await,
            _ => practitioner(&state, &req, &value, Some(&id)).await,
        }
    }
    .await;
    respond(&state, &req, kind, "fhir.update", result, wants_outcome(&headers)).await
}

/// Audits the attempt and answers: 201 with `Location` for new resources, 200 otherwise.
async fn respond(
    state: &AppState,
    req: &FhirRequest,
    kind: Kind,
    action: &str,
    result: FhirResult<Written>,
    outcome_wanted: bool,
) -> FhirResult<Response> {
    match result {
        Ok(w) => {
            let id = w.resource["id"].as_str().unwrap_or_default().to_string();
            state
                .audit
                .record(req.who.event(action, kind.as_str(), &id))
                .await?;
            let status = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = match w.outcome {
                Some(outcome) if outcome_wanted => outcome,
                _ => w.resource,
            };
            let mut res = fhir_response(status, body);
            if let Ok(location) = HeaderValue::from_str(&format!("{}/{}/{id}", req.base, kind.as_str())) {
                res.headers_mut().insert(header::LOCATION, location);
            }
            Ok(res)
        }
        Err(e) => {
            let event = crate::audit::Event::new(Some(req.who.user_id), action, kind.as_str(), None)
                .from_source(req.who.source.as_deref())
                .with_detail(serde_json::json!({"status": e.status.as_u16()}))
                .failed();
            state.audit.record(event).await?;
            Err(e)
        }
    }
}

/// `If-None-Exist`: no match → create; one → that resource (200, nothing created); more → 412.
async fn conditional(
    state: &AppState,
    req: &FhirRequest,
    kind: Kind,
    context: Context,
    headers: &HeaderMap,
) -> FhirResult<Option<Value>> {
    let Some(criteria) = headers.get("if-none-exist") else {
        return Ok(None);
    };
    let criteria = criteria.to_str().unwrap_or_default();
    let criteria = criteria.rsplit_once('?').map_or(criteria, |(_, q)| q);
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(criteria).map_err(|_| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "If-None-Exist is not a query string",
        )
    })?;
    if pairs.is_empty() {
        return Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "If-None-Exist names no criteria",
        ));
    }
    pairs.push(("_count".into(), "2".into()));
    let found = find(state, req, kind, context, &pairs, true).await?;
    match found.total {
        0 => Ok(None),
        1 => Ok(found.resources.into_iter().next()),
        _ => Err(FhirError::new(
            StatusCode::PRECONDITION_FAILED,
            "multiple-matches",
            "If-None-Exist matches more than one resource",
        )),
    }
}

/// Communication create: a message from the caller into the room of `encounter` or of the
/// `recipient` CareTeam; `identifier[0].value` is the idempotency key (a retry stores nothing
/// twice).
async fn communication(
    state: &AppState,
    req: &FhirRequest,
    context: Context,
    v: &Value,
) -> FhirResult<Written> {
    let invalid = |m: &str| FhirError::from(Error::Invalid(m.to_string()));
    let text = v["payload"]
        .as_array()
        .and_then(|p| p.iter().find_map(|x| x["contentString"].as_str()))
        .ok_or_else(|| invalid("Communication.payload.contentString (the message text) is required"))?;
    let priority: Priority = match v["priority"].as_str().unwrap_or("routine") {
        "routine" => Priority::Routine,
        "urgent" => Priority::Urgent,
        "stat" => Priority::Stat,
        _ => return Err(invalid("Communication.priority must be routine, urgent or stat")),
    };
    let idempotency_key = v["identifier"][0]["value"].as_str().map(str::to_string);
    // To a role: a recipient identified by service (`urn:wardline:service|cardiology`) reaches
    // whoever is on call for it now, as `POST /api/v1/oncall/{service}/messages` does.
    let service = v["recipient"].as_array().and_then(|list| {
        list.iter()
            .find(|r| r["identifier"]["system"] == super::resources::SERVICE_SYSTEM)
            .and_then(|r| r["identifier"]["value"].as_str())
    });
    if let Some(service) = service {
        let message = state
            .oncall
            .message_role(&req.who, service, text.to_string(), priority, idempotency_key)
            .await?;
        return find_by_id(state, req, Kind::Communication, context, &message.id.to_string())
            .await
            .map(|resource| Written {
                resource,
                created: true,
                outcome: None,
            });
    }
    let room = match (
        reference_id(&v["encounter"], "Encounter"),
        v["recipient"].as_array(),
    ) {
        (Some(encounter), _) => {
            let pairs = [("encounter".to_string(), encounter)];
            let teams = find(state, req, Kind::CareTeam, Context::System, &pairs, false).await?;
            teams
                .resources
                .first()
                .and_then(|t| t["id"].as_str())
                .map(str::to_string)
        }
        (None, Some(list)) => list.iter().find_map(|r| reference_id(r, "CareTeam")),
        (None, None) => None,
    }
    .ok_or_else(|| {
        invalid("Communication.encounter or a recipient CareTeam/{room} must name an existing room")
    })?;
    let room_id: Uuid = room
        .parse()
        .map_err(|_| invalid("Communication.recipient names no room"))?;
    let draft = Draft {
        room_id,
        body: text.to_string(),
        priority,
        idempotency_key,
        confirm_dlp: false,
        attachment_ids: Vec::new(),
    };
    let (message, outcome) = state.chat.send(&req.who, draft).await.map_err(|e| match e {
        Error::NotMember | Error::NotFound(_) => FhirError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "business-rule",
            "the sender is not a member of that room",
        ),
        other => other.into(),
    })?;
    find_by_id(state, req, Kind::Communication, context, &message.id.to_string())
        .await
        .map(|resource| Written {
            resource,
            created: outcome == SendOutcome::Created,
            outcome: None,
        })
}

/// Practitioner create/update: directory sync of a person (NPI and/or `urn:wardline:username`
/// identifier, name, active). A new person gets the clinician role; an existing one (same NPI
/// or login) is updated.
async fn practitioner(
    state: &AppState,
    req: &FhirRequest,
    v: &Value,
    id: Option<&str>,
) -> FhirResult<Written> {
    let ident = |system: &str| {
        v["identifier"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["system"] == system))
            .and_then(|i| i["value"].as_str())
    };
    let npi = ident(super::resources::NPI_SYSTEM);
    let username = ident(super::resources::USERNAME_SYSTEM);
    if npi.is_none() && username.is_none() {
        return Err(Error::Invalid(
            "Practitioner.identifier: an NPI or a urn:wardline:username identifier is required".into(),
        )
        .into());
    }
    let name = &v["name"][0];
    let display = name["text"].as_str().map(str::to_string).or_else(|| {
        let given: Vec<&str> = name["given"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let full = [
            given.join(" "),
            name["family"].as_str().unwrap_or_default().to_string(),
        ]
        .join(" ")
        .trim()
        .to_string();
        (!full.is_empty()).then_some(full)
    });
    let display = display.ok_or_else(|| {
        FhirError::from(Error::Invalid(
            "Practitioner.name (text, or family and given) is required".into(),
        ))
    })?;
    let active = v["active"].as_bool().unwrap_or(true);
    let existing = match id {
        Some(id) => {
            let uid: Uuid = id.parse().map_err(|_| FhirError::not_found("Practitioner", id))?;
            Some(
                users::user_by_id(&mut *state.store.read().await?, uid)
                    .await?
                    .ok_or_else(|| FhirError::not_found("Practitioner", id))?,
            )
        }
        None => users::person_by_npi_or_username(&mut *state.store.read().await?, npi, username).await?,
    };
    let now = state.clock.now().timestamp_millis();
    let mut tx = state.store.begin().await.map_err(Error::from)?;
    let (uid, created) = match existing {
        Some(u) => {
            users::update_directory(&mut tx, u.id, &display, npi.or(u.npi.as_deref()), active)
                .await
                .map_err(conflict)?;
            (u.id, false)
        }
        None => {
            let user = UserRecord {
                id: Uuid::now_v7(),
                username: username.map_or_else(|| format!("npi-{}", npi.unwrap_or_default()), str::to_string),
                display_name: display,
                kind: "person".into(),
                roles: vec!["clinician".into()],
                npi: npi.map(str::to_string),
                active,
            };
            users::insert_user(&mut tx, &user, now).await.map_err(conflict)?;
            (user.id, true)
        }
    };
    tx.commit().await.map_err(Error::from)?;
    // A deactivated practitioner's tokens must stop working on this node at once.
    state.tokens.forget_all();
    let resource = find_by_id(state, req, Kind::Practitioner, Context::System, &uid.to_string()).await?;
    Ok(Written {
        resource,
        created,
        outcome: None,
    })
}

fn conflict(e: Error) -> FhirError {
    if e.is_unique_violation() {
        FhirError::new(
            StatusCode::CONFLICT,
            "conflict",
            "that NPI or login name belongs to another person",
        )
    } else {
        e.into()
    }
}
