//! Rooms and their membership.

use sqlx::{Any, AnyConnection, Executor, FromRow};
use uuid::Uuid;

use super::parse_id;
use crate::chat::model::{Member, MemberReason, Room, RoomKind, from_ms};
use crate::error::Result;

#[derive(FromRow)]
struct RoomRow {
    id: String,
    kind: String,
    name: String,
    status: String,
    encounter_id: Option<String>,
    role_key: Option<String>,
    created_at: i64,
}

impl TryFrom<RoomRow> for Room {
    type Error = crate::error::Error;
    fn try_from(r: RoomRow) -> Result<Self> {
        Ok(Room {
            id: parse_id(&r.id)?,
            kind: r.kind.parse()?,
            name: r.name,
            status: r.status.parse()?,
            encounter_id: r.encounter_id.as_deref().map(parse_id).transpose()?,
            role_key: r.role_key,
            created_at: from_ms(r.created_at),
        })
    }
}

macro_rules! room_columns {
    () => {
        "r.id, r.kind, r.name, r.status, r.encounter_id, r.role_key, r.created_at"
    };
}

/// Fields of a room to create; `direct_key` makes a direct room between two people unique.
pub struct NewRoom<'a> {
    /// Id to use.
    pub id: Uuid,
    /// Room kind.
    pub kind: RoomKind,
    /// Display name.
    pub name: &'a str,
    /// Encounter for patient rooms.
    pub encounter_id: Option<Uuid>,
    /// Role for role rooms.
    pub role_key: Option<&'a str>,
    /// Sorted pair of user ids for direct rooms.
    pub direct_key: Option<String>,
    /// Creator.
    pub created_by: Option<Uuid>,
}

/// Inserts a room; a unique violation means the encounter, role or pair already has one.
pub async fn insert_room(conn: &mut AnyConnection, room: &NewRoom<'_>, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO rooms (id, kind, name, status, encounter_id, role_key, direct_key, created_by, created_at)
         VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8)",
    )
    .bind(room.id.to_string())
    .bind(room.kind.as_str())
    .bind(room.name)
    .bind(room.encounter_id.map(|id| id.to_string()))
    .bind(room.role_key)
    .bind(room.direct_key.as_deref())
    .bind(room.created_by.map(|id| id.to_string()))
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a room by id.
pub async fn room_by_id<'c, E: Executor<'c, Database = Any>>(ex: E, id: Uuid) -> Result<Option<Room>> {
    let sql = concat!("SELECT ", room_columns!(), " FROM rooms r WHERE r.id = $1");
    let row: Option<RoomRow> = sqlx::query_as(sql)
        .bind(id.to_string())
        .fetch_optional(ex)
        .await?;
    row.map(Room::try_from).transpose()
}

/// Finds the direct room of a pair, so asking twice for the same conversation returns one room.
pub async fn room_by_direct_key(conn: &mut AnyConnection, key: &str) -> Result<Option<Room>> {
    let sql = concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r WHERE r.direct_key = $1"
    );
    let row: Option<RoomRow> = sqlx::query_as(sql).bind(key).fetch_optional(&mut *conn).await?;
    row.map(Room::try_from).transpose()
}

/// The rooms a user belongs to, newest first.
pub async fn rooms_for_user(conn: &mut AnyConnection, user_id: Uuid) -> Result<Vec<Room>> {
    let sql = concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r JOIN room_members m ON m.room_id = r.id
         WHERE m.user_id = $1 ORDER BY r.created_at DESC, r.id"
    );
    let rows: Vec<RoomRow> = sqlx::query_as(sql)
        .bind(user_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(Room::try_from).collect()
}

/// Adds a member; returns false when they already were one (their reason is kept).
pub async fn add_member(
    conn: &mut AnyConnection,
    room_id: Uuid,
    user_id: Uuid,
    reason: MemberReason,
    added_by: Option<Uuid>,
    now_ms: i64,
) -> Result<bool> {
    let added = add_members(conn, room_id, &[(user_id, reason)], added_by, now_ms).await?;
    Ok(!added.is_empty())
}

/// Adds several members in one statement (one round trip, however many the ADT feed names);
/// returns those who were not members already.
pub async fn add_members(
    conn: &mut AnyConnection,
    room_id: Uuid,
    members: &[(Uuid, MemberReason)],
    added_by: Option<Uuid>,
    now_ms: i64,
) -> Result<Vec<Uuid>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql =
        String::from("INSERT INTO room_members (room_id, user_id, reason, added_by, added_at) VALUES ");
    for i in 0..members.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${}, ${}, $2, $3)", 2 * i + 4, 2 * i + 5));
    }
    sql.push_str(" ON CONFLICT (room_id, user_id) DO NOTHING RETURNING user_id");
    // Only numbered placeholders are interpolated; every value is bound.
    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
        .bind(room_id.to_string())
        .bind(added_by.map(|id| id.to_string()))
        .bind(now_ms);
    for (user, reason) in members {
        q = q.bind(user.to_string()).bind(reason.as_str());
    }
    q.fetch_all(conn).await?.iter().map(|id| parse_id(id)).collect()
}

/// Removes several members in one statement; returns those who were members.
pub async fn remove_members(conn: &mut AnyConnection, room_id: Uuid, users: &[Uuid]) -> Result<Vec<Uuid>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (0..users.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "DELETE FROM room_members WHERE room_id = $1 AND user_id IN ({}) RETURNING user_id",
        list.join(", ")
    );
    // Only numbered placeholders are interpolated; every value is bound.
    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(room_id.to_string());
    for user in users {
        q = q.bind(user.to_string());
    }
    q.fetch_all(conn).await?.iter().map(|id| parse_id(id)).collect()
}

/// Removes a member; returns false when they were not one.
pub async fn remove_member(conn: &mut AnyConnection, room_id: Uuid, user_id: Uuid) -> Result<bool> {
    Ok(!remove_members(conn, room_id, &[user_id]).await?.is_empty())
}

/// Whether the user is a member of the room; the gate in front of every read and write.
pub async fn is_member<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(ex)
            .await?;
    Ok(row.is_some())
}

/// Members with display names, in the order they joined.
pub async fn members(conn: &mut AnyConnection, room_id: Uuid) -> Result<Vec<Member>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT m.user_id, u.display_name, m.reason, m.added_at
         FROM room_members m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 ORDER BY m.added_at, u.username",
    )
    .bind(room_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(user_id, display_name, reason, added_at)| {
            Ok(Member {
                user_id: parse_id(&user_id)?,
                display_name,
                reason: reason.parse()?,
                added_at: from_ms(added_at),
            })
        })
        .collect()
}

/// Member ids only: the recipients of a room event.
pub async fn member_ids<'c, E: Executor<'c, Database = Any>>(ex: E, room_id: Uuid) -> Result<Vec<Uuid>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT user_id FROM room_members WHERE room_id = $1")
        .bind(room_id.to_string())
        .fetch_all(ex)
        .await?;
    rows.iter().map(|(id,)| parse_id(id)).collect()
}

/// The patient-encounter room of an encounter.
pub async fn room_for_encounter(conn: &mut AnyConnection, encounter_id: &str) -> Result<Option<Room>> {
    let sql = concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r WHERE r.encounter_id = $1"
    );
    let row: Option<RoomRow> = sqlx::query_as(sql)
        .bind(encounter_id)
        .fetch_optional(conn)
        .await?;
    row.map(Room::try_from).transpose()
}

/// Sets a room's status and its scheduled read-only and archive times (set at discharge,
/// cleared when a discharge is cancelled). Archiving stamps the time retention starts from.
pub async fn set_lifecycle(
    conn: &mut AnyConnection,
    room_id: Uuid,
    status: &str,
    (read_only_at, archive_at): (Option<i64>, Option<i64>),
    now_ms: i64,
) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE rooms SET status = $2, read_only_at = $3, archive_at = $4,
                archived_at = CASE WHEN $2 = 'archived' THEN COALESCE(archived_at, $5) ELSE NULL END
         WHERE id = $1 AND purged_at IS NULL",
    )
    .bind(room_id.to_string())
    .bind(status)
    .bind(read_only_at)
    .bind(archive_at)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Rooms whose scheduled read-only or archive time has come: (room id, new status).
pub async fn lifecycle_due(conn: &mut AnyConnection, now_ms: i64) -> Result<Vec<(Uuid, &'static str)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT id, CASE WHEN archive_at IS NOT NULL AND archive_at <= $1 THEN 1 ELSE 0 END
         FROM rooms
         WHERE purged_at IS NULL AND (
               (status <> 'archived' AND archive_at IS NOT NULL AND archive_at <= $1)
            OR (status = 'active' AND read_only_at IS NOT NULL AND read_only_at <= $1))
         ORDER BY id",
    )
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, archive)| {
            Ok((
                parse_id(&id)?,
                if archive == 1 { "archived" } else { "read_only" },
            ))
        })
        .collect()
}

/// Moves a room on to `status` if it is still in an earlier lifecycle state; false when another
/// node (or a cancelled discharge) got there first.
pub async fn advance_lifecycle(
    conn: &mut AnyConnection,
    room_id: Uuid,
    status: &str,
    now_ms: i64,
) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE rooms SET status = $2,
                archived_at = CASE WHEN $2 = 'archived' THEN $3 ELSE archived_at END
         WHERE id = $1 AND purged_at IS NULL AND status <> 'archived'
           AND (($2 = 'archived' AND archive_at IS NOT NULL AND archive_at <= $3)
             OR ($2 = 'read_only' AND status = 'active' AND read_only_at IS NOT NULL AND read_only_at <= $3))",
    )
    .bind(room_id.to_string())
    .bind(status)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Members and the reason each is there, for membership that follows the ADT feed.
pub async fn member_reasons(conn: &mut AnyConnection, room_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id, reason FROM room_members WHERE room_id = $1")
            .bind(room_id.to_string())
            .fetch_all(conn)
            .await?;
    rows.into_iter().map(|(u, r)| Ok((parse_id(&u)?, r))).collect()
}

/// Renames the patient-encounter rooms of a patient's encounters to `name · visit number`.
pub async fn rename_patient_rooms(conn: &mut AnyConnection, patient_id: &str, name: &str) -> Result<()> {
    sqlx::query(
        "UPDATE rooms SET name = $2 || ' · ' || (SELECT e.visit_number FROM encounters e WHERE e.id = rooms.encounter_id)
         WHERE encounter_id IN (SELECT id FROM encounters WHERE patient_id = $1)",
    )
    .bind(patient_id)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The room of a role (`oncall:cardiology`).
pub async fn room_by_role_key(conn: &mut AnyConnection, key: &str) -> Result<Option<Room>> {
    let sql = concat!("SELECT ", room_columns!(), " FROM rooms r WHERE r.role_key = $1");
    let row: Option<RoomRow> = sqlx::query_as(sql).bind(key).fetch_optional(&mut *conn).await?;
    row.map(Room::try_from).transpose()
}
