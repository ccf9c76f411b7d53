//! Identity endpoints: who am I, the user directory, and (for admins) users and tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::extract::{ApiJson, ApiPath};
use crate::audit::sink::Record;
use crate::auth::{self, Principal, Role};
use crate::error::{Error, Result};
use crate::store::audit;
use crate::store::users::{self, UserRecord};

/// A user as other users see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// `person` or `service`.
    pub kind: String,
    /// Roles.
    pub roles: Vec<String>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            kind: u.kind,
            roles: u.roles,
        }
    }
}

/// The caller's own identity.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = UserView), (status = 401, body = super::error::Problem)),
    security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, who: Principal) -> Result<Json<UserView>> {
    let user = users::user_by_id(&mut *state.store.read().await?, who.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok(Json(user.into()))
}

/// The user directory (for picking people to message or invite).
#[utoipa::path(get, path = "/api/v1/users", tag = "identity",
    responses((status = 200, body = [UserView]), (status = 401, body = super::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_users(State(state): State<AppState>, _who: Principal) -> Result<Json<Vec<UserView>>> {
    let list = users::list_users(&mut *state.store.read().await?).await?;
    Ok(Json(
        list.into_iter()
            .filter(|u| u.active)
            .map(UserView::from)
            .collect(),
    ))
}

/// A user to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique login name.
    pub username: String,
    /// Shown to others.
    pub display_name: String,
    /// `person` (default) or `service`.
    #[serde(default = "person")]
    pub kind: String,
    /// Roles: clinician, scheduler, integration, auditor, admin.
    #[serde(default)]
    pub roles: Vec<String>,
    /// National Provider Identifier.
    pub npi: Option<String>,
    /// Where on-call notifications go (they carry no patient data).
    pub email: Option<String>,
    /// The person's subject (`sub`) at the hospital's identity provider: single sign-on signs
    /// in exactly this person.
    pub idp_subject: Option<String>,
}

fn person() -> String {
    "person".into()
}

/// Creates a user (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "identity", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403, body = super::error::Problem),
              (status = 409, body = super::error::Problem), (status = 422, body = super::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>)> {
    require_admin(&state, &who, "user.create", "user").await?;
    if req.username.is_empty() || req.username.len() > 100 || req.username.contains(char::is_whitespace) {
        return Err(Error::Invalid(
            "username must be 1 to 100 characters without spaces".into(),
        ));
    }
    if req.display_name.trim().is_empty() {
        return Err(Error::Invalid("display_name must not be empty".into()));
    }
    if req.kind != "person" && req.kind != "service" {
        return Err(Error::Invalid("kind must be person or service".into()));
    }
    for r in &req.roles {
        Role::parse(r)?;
    }
    if let Some(email) = &req.email
        && email.parse::<lettre::Address>().is_err()
    {
        return Err(Error::Invalid("email is not an email address".into()));
    }
    let user = UserRecord {
        id: Uuid::now_v7(),
        username: req.username,
        display_name: req.display_name.trim().to_string(),
        kind: req.kind,
        roles: req.roles,
        npi: req.npi,
        active: true,
    };
    let mut tx = state.store.begin().await?;
    if let Err(e) = users::insert_user(&mut tx, &user, state.clock.now().timestamp_millis()).await {
        return Err(if e.is_unique_violation() {
            Error::Conflict("username or NPI already in use".into())
        } else {
            e
        });
    }
    crate::store::oncall::set_email(&mut tx, &user.id.to_string(), req.email.as_deref()).await?;
    if let Some(subject) = req.idp_subject.as_deref().filter(|s| !s.is_empty())
        && let Err(e) = users::set_idp_subject(&mut tx, user.id, subject).await
    {
        return Err(if e.is_unique_violation() {
            Error::Conflict("idp_subject already linked to another user".into())
        } else {
            e
        });
    }
    let event = who
        .event("user.create", "user", user.id)
        .with_detail(serde_json::json!({"kind": user.kind, "roles": user.roles}));
    audit::append(&mut tx, &[event], state.clock.now().timestamp_millis()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// A token to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Whose token.
    pub user_id: Uuid,
    /// What it is for (shown in listings, e.g. "mirth-prod").
    #[serde(default)]
    pub label: String,
    /// Lifetime in days; absent means until revoked.
    pub expires_in_days: Option<u32>,
    /// Limit the token to some of the user's roles and FHIR access to some SMART scopes such as
    /// `system/Encounter.crus` (least privilege); no roles named means all of them, no SMART
    /// scopes named means all the roles allow.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An issued token; the secret is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// Token id, for revocation.
    pub id: Uuid,
    /// The bearer secret.
    pub token: String,
}

/// Issues a bearer token for a user or service account (admins only).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "identity", request_body = NewToken,
    responses((status = 201, body = IssuedToken), (status = 403, body = super::error::Problem),
              (status = 422, body = super::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<IssuedToken>)> {
    require_admin(&state, &who, "token.issue", "token").await?;
    let user = users::user_by_id(&mut *state.store.read().await?, req.user_id)
        .await?
        .ok_or_else(|| Error::Invalid("user_id names no known user".into()))?;
    let scopes = token_scopes(&user, &req.scopes)?;
    let now = state.clock.now().timestamp_millis();
    let expires = req.expires_in_days.map(|d| now + i64::from(d) * 86_400_000);
    let mut tx = state.store.begin().await?;
    let (id, token) = auth::issue_token(&mut tx, req.user_id, &req.label, now, expires, &scopes).await?;
    let event = who
        .event("token.issue", "token", id)
        .with_detail(serde_json::json!({"user_id": req.user_id, "expires_at": expires}));
    audit::append(&mut tx, &[event], now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(IssuedToken { id, token })))
}

/// Revokes a token: your own, or anyone's if you are an admin.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "identity",
    params(("token_id" = Uuid, Path, description = "Token id")),
    responses((status = 204), (status = 403, body = super::error::Problem), (status = 404, body = super::error::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(token_id): ApiPath<Uuid>,
) -> Result<StatusCode> {
    let owner = users::token_owner(&mut *state.store.read().await?, token_id)
        .await?
        .ok_or(Error::NotFound("token"))?;
    if owner != who.user_id && !who.has(Role::Admin) {
        state
            .audit
            .record(who.event("token.revoke", "token", token_id).failed())
            .await?;
        return Err(Error::Forbidden("you may only revoke your own tokens".into()));
    }
    let mut tx = state.store.begin().await?;
    users::revoke_token(&mut tx, token_id, state.clock.now().timestamp_millis()).await?;
    let event = who.event("token.revoke", "token", token_id);
    audit::append(&mut tx, &[event], state.clock.now().timestamp_millis()).await?;
    tx.commit().await?;
    state.tokens.forget_all();
    Ok(StatusCode::NO_CONTENT)
}

/// Checks requested token scopes: each is a role the user holds, or a SMART scope
/// (`system/Patient.rs`) that the user's roles allow.
pub fn token_scopes(user: &UserRecord, requested: &[String]) -> Result<Vec<String>> {
    let roles: Vec<Role> = user.roles.iter().filter_map(|r| Role::parse(r).ok()).collect();
    let ceiling = crate::fhir::scopes::ceiling(&roles);
    requested
        .iter()
        .map(|s| {
            if let Ok(role) = Role::parse(s) {
                return if roles.contains(&role) {
                    Ok(s.clone())
                } else {
                    Err(Error::Invalid(format!("scope '{s}' is not a role of this user")))
                };
            }
            match crate::fhir::scopes::Scope::parse(s) {
                Some(scope) if ceiling.iter().any(|c| scope.within(c)) => Ok(scope.to_string()),
                Some(_) => Err(Error::Invalid(format!(
                    "scope '{s}' is more than this user's roles allow"
                ))),
                None => Err(Error::Invalid(format!(
                    "scope '{s}' is neither a role nor a SMART resource scope"
                ))),
            }
        })
        .collect()
}

/// Fails with 403 unless the caller is an admin, recording the refusal in the audit trail.
async fn require_admin(state: &AppState, who: &Principal, action: &str, entity_type: &str) -> Result<()> {
    state
        .audit
        .gate(who, &[Role::Admin], action, (entity_type, None), Record::Refusals)
        .await
}
