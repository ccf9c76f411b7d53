//! Users (people and service accounts) and their API tokens.

use sqlx::{AnyConnection, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::error::Result;

/// A user as stored.
#[derive(Clone, Debug)]
pub struct UserRecord {
    /// Stable id.
    pub id: Uuid,
    /// Unique login name.
    pub username: String,
    /// Shown to other users.
    pub display_name: String,
    /// `person` or `service`.
    pub kind: String,
    /// Role names, e.g. `clinician`, `admin`.
    pub roles: Vec<String>,
    /// National Provider Identifier, when known (maps HL7 practitioner ids).
    pub npi: Option<String>,
    /// Disabled users cannot authenticate.
    pub active: bool,
}

#[derive(FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    kind: String,
    roles: String,
    npi: Option<String>,
    active: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = crate::error::Error;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(Self {
            id: parse_id(&r.id)?,
            username: r.username,
            display_name: r.display_name,
            kind: r.kind,
            roles: r
                .roles
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            npi: r.npi,
            active: r.active != 0,
        })
    }
}

macro_rules! user_columns {
    () => {
        "id, username, display_name, kind, roles, npi, active"
    };
}

/// Inserts a user; fails with a unique violation when the username or NPI is taken.
pub async fn insert_user(conn: &mut AnyConnection, user: &UserRecord, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, kind, roles, npi, active, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user.id.to_string())
    .bind(&user.username)
    .bind(&user.display_name)
    .bind(&user.kind)
    .bind(user.roles.join(","))
    .bind(&user.npi)
    .bind(i64::from(user.active))
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Looks a user up by login name.
pub async fn user_by_username(conn: &mut AnyConnection, username: &str) -> Result<Option<UserRecord>> {
    let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1");
    let row: Option<UserRow> = sqlx::query_as(sql)
        .bind(username)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(UserRecord::try_from).transpose()
}

/// Looks a user up by id.
pub async fn user_by_id(conn: &mut AnyConnection, id: Uuid) -> Result<Option<UserRecord>> {
    let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
    let row: Option<UserRow> = sqlx::query_as(sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(UserRecord::try_from).transpose()
}

/// Lists users ordered by name, for directories and pickers.
pub async fn list_users(conn: &mut AnyConnection) -> Result<Vec<UserRecord>> {
    let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
    let rows: Vec<UserRow> = sqlx::query_as(sql).fetch_all(&mut *conn).await?;
    rows.into_iter().map(UserRecord::try_from).collect()
}

/// A token to store (its hash only).
pub struct NewToken<'a> {
    /// Token id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// SHA-256 of the secret.
    pub hash: &'a str,
    /// What it is for.
    pub label: &'a str,
    /// Comma-separated roles it is limited to; empty for all of the owner's roles.
    pub scopes: &'a str,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, if it expires.
    pub expires_at: Option<i64>,
    /// For a browser session: it also lapses after this long unused (ms).
    pub idle_timeout_ms: Option<i64>,
    /// For a browser session: the launch context, as JSON.
    pub context: Option<&'a str>,
}

/// Stores a token's hash (never the token itself).
pub async fn insert_token(conn: &mut AnyConnection, t: &NewToken<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, scopes, created_at, expires_at,
                                 idle_timeout_ms, last_used_at, context)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6, $9)",
    )
    .bind(t.id.to_string())
    .bind(t.user_id.to_string())
    .bind(t.hash)
    .bind(t.label)
    .bind(t.scopes)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.idle_timeout_ms)
    .bind(t.context)
    .execute(conn)
    .await?;
    Ok(())
}

/// A valid token and its owner.
#[derive(Clone, Debug)]
pub struct TokenUser {
    /// Token id.
    pub token_id: Uuid,
    /// Comma-separated roles and SMART scopes it is limited to.
    pub scopes: String,
    /// The owner.
    pub user: UserRecord,
    /// For a browser session: when it was last recorded as used (Unix ms).
    pub session_last_used: Option<i64>,
    /// When the token stops being valid (Unix ms), if it expires.
    pub expires_at: Option<i64>,
    /// Whether the token ends after a period without use (browser sessions do).
    pub idles_out: bool,
}

/// Resolves a token hash to its id, its scopes and an active user, if the token is valid at
/// `now_ms` (not revoked, not expired, and for a session not idle for longer than its timeout).
pub async fn user_by_token_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<TokenUser>> {
    #[derive(FromRow)]
    struct Row {
        token_id: String,
        scopes: String,
        expires_at: Option<i64>,
        idle_timeout_ms: Option<i64>,
        last_used_at: Option<i64>,
        #[sqlx(flatten)]
        user: UserRow,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.id AS token_id, t.scopes, t.expires_at, t.idle_timeout_ms, t.last_used_at,
                u.id, u.username, u.display_name, u.kind, u.roles, u.npi, u.active
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL
           AND (t.expires_at IS NULL OR t.expires_at > $2)
           AND (t.idle_timeout_ms IS NULL OR t.last_used_at + t.idle_timeout_ms > $2)
           AND u.active = 1",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(TokenUser {
            token_id: parse_id(&r.token_id)?,
            scopes: r.scopes,
            session_last_used: r.idle_timeout_ms.and(r.last_used_at),
            expires_at: r.expires_at,
            idles_out: r.idle_timeout_ms.is_some(),
            user: UserRecord::try_from(r.user)?,
        })
    })
    .transpose()
}

/// Revokes a token. Returns the owning user when the token existed and was not yet revoked.
pub async fn revoke_token(conn: &mut AnyConnection, token_id: Uuid, now_ms: i64) -> Result<Option<Uuid>> {
    let owner: Option<(String,)> = sqlx::query_as(
        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
         RETURNING user_id",
    )
    .bind(token_id.to_string())
    .bind(now_ms)
    .fetch_optional(conn)
    .await?;
    owner.map(|(id,)| parse_id(&id)).transpose()
}

/// The owner of a token, revoked or not, so authorization can be checked before revoking.
pub async fn token_owner(conn: &mut AnyConnection, token_id: Uuid) -> Result<Option<Uuid>> {
    let owner: Option<(String,)> = sqlx::query_as("SELECT user_id FROM api_tokens WHERE id = $1")
        .bind(token_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    owner.map(|(id,)| parse_id(&id)).transpose()
}

/// Active users among the given usernames and NPIs, found in one statement (an ADT event names
/// several practitioners and unit-team members, and each statement is a round trip):
/// `(id, username, npi)`.
pub async fn active_by_names(
    conn: &mut AnyConnection,
    usernames: &[&str],
    npis: &[&str],
) -> Result<Vec<(String, String, Option<String>)>> {
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut conds = Vec::new();
    if !usernames.is_empty() {
        conds.push(format!("username IN ({})", list(1, usernames.len())));
    }
    if !npis.is_empty() {
        conds.push(format!("npi IN ({})", list(usernames.len() + 1, npis.len())));
    }
    if conds.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, username, npi FROM users WHERE active = 1 AND ({})",
        conds.join(" OR ")
    );
    // Only numbered placeholders are interpolated; every value is bound.
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for v in usernames.iter().chain(npis) {
        q = q.bind(*v);
    }
    Ok(q.fetch_all(conn).await?)
}

/// The id of an active user, when `id` names one (FHIR `Practitioner/{id}` references).
pub async fn active_user_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND active = 1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Updates what a directory sync (FHIR Practitioner) owns: name, NPI and whether active.
pub async fn update_directory(
    conn: &mut AnyConnection,
    id: Uuid,
    display_name: &str,
    npi: Option<&str>,
    active: bool,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE users SET display_name = $1, npi = $2, active = $3 WHERE id = $4 AND kind = 'person'",
    )
    .bind(display_name)
    .bind(npi)
    .bind(i64::from(active))
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The person holding an NPI or a login name, for directory upserts.
pub async fn person_by_npi_or_username(
    conn: &mut AnyConnection,
    npi: Option<&str>,
    username: Option<&str>,
) -> Result<Option<UserRecord>> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE kind = 'person' AND (npi = $1 OR username = $2) ORDER BY username LIMIT 1"
    ))
    .bind(npi)
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(UserRecord::try_from).transpose()
}

/// The active person an EHR's `fhirUser` names: by the full URL recorded as their identity
/// subject, or by the Practitioner id as their Wardline id or NPI, in that order (never by login:
/// an EHR's ids are not Wardline's login names).
pub async fn person_for_fhir_user(
    conn: &mut AnyConnection,
    url: &str,
    id: &str,
) -> Result<Option<UserRecord>> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE kind = 'person' AND active = 1
           AND (idp_subject = $1 OR id = $2 OR npi = $2)
         ORDER BY CASE WHEN idp_subject = $1 THEN 0 WHEN id = $2 THEN 1 ELSE 2 END
         LIMIT 1"
    ))
    .bind(url)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(UserRecord::try_from).transpose()
}

/// Links a person to their identity-provider subject.
pub async fn set_idp_subject(conn: &mut AnyConnection, id: Uuid, subject: &str) -> Result<()> {
    sqlx::query("UPDATE users SET idp_subject = $1 WHERE id = $2")
        .bind(subject)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The active person signing in through the hospital's provider: the one linked to `subject`;
/// with `by_username` (a provider whose `preferred_username` is the unique, immutable login),
/// else the not-yet-linked clinician or scheduler with that login, linked now — exactly one row,
/// so two subjects racing for one person cannot both win. Admins and auditors are never linked
/// this way.
pub async fn person_for_subject(
    conn: &mut AnyConnection,
    subject: &str,
    preferred_username: Option<&str>,
    by_username: bool,
) -> Result<Option<UserRecord>> {
    let linked: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE kind = 'person' AND active = 1 AND idp_subject = $1"
    ))
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = linked {
        return Ok(Some(UserRecord::try_from(row)?));
    }
    let Some(username) = preferred_username.filter(|_| by_username) else {
        return Ok(None);
    };
    let Some(user) = user_by_username_conn(conn, username).await? else {
        return Ok(None);
    };
    let privileged = user.roles.iter().any(|r| r == "admin" || r == "auditor");
    if !user.active || user.kind != "person" || privileged {
        return Ok(None);
    }
    let done = sqlx::query("UPDATE users SET idp_subject = $1 WHERE id = $2 AND idp_subject IS NULL")
        .bind(subject)
        .bind(user.id.to_string())
        .execute(conn)
        .await?;
    Ok((done.rows_affected() == 1).then_some(user))
}

async fn user_by_username_conn(conn: &mut AnyConnection, username: &str) -> Result<Option<UserRecord>> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(conn)
    .await?;
    row.map(UserRecord::try_from).transpose()
}
