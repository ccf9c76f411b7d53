//! Messages, receipts and acknowledgements. Bodies are stored as bytes with an optional key id so
//! that sealed (encrypted) bodies and plain ones share one column; opening them is the chat
//! layer's job, not SQL's.

use sqlx::{Any, AnyConnection, Connection, Executor, FromRow};
use uuid::Uuid;

use super::{Backend, Store, parse_id};
use crate::chat::model::{Ack, Receipt, from_ms};
use crate::error::Result;

/// A message row as stored.
#[derive(Clone, Debug, FromRow)]
pub struct MessageRecord {
    /// UUIDv7 text.
    pub id: String,
    /// Global stream position.
    pub seq: i64,
    /// Room id text.
    pub room_id: String,
    /// Sender id text; none for system messages.
    pub sender_id: Option<String>,
    /// `user` or `system`.
    pub kind: String,
    /// `routine`, `urgent` or `stat`.
    pub priority: String,
    /// Body bytes (sealed when `body_key_id` is set).
    pub body: Vec<u8>,
    /// Key that sealed the body.
    pub body_key_id: Option<String>,
    /// Hash of the sender's request, to tell a replay from a reused idempotency key.
    pub request_hash: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

macro_rules! message_columns {
    () => {
        "m.id, m.seq, m.room_id, m.sender_id, m.kind, m.priority, m.body, m.body_key_id, m.request_hash, m.created_at"
    };
}

/// What the chat layer hands over to store a message.
pub struct NewMessage<'a> {
    /// UUIDv7.
    pub id: Uuid,
    /// Room.
    pub room_id: Uuid,
    /// Author, none for system messages.
    pub sender_id: Option<Uuid>,
    /// `user` or `system`.
    pub kind: &'a str,
    /// Priority spelling.
    pub priority: &'a str,
    /// Body bytes.
    pub body: &'a [u8],
    /// Sealing key id.
    pub body_key_id: Option<&'a str>,
    /// Client idempotency key.
    pub idempotency_key: Option<&'a str>,
    /// Hash of the request content.
    pub request_hash: Option<&'a str>,
    /// Unix ms.
    pub created_at: i64,
}

/// Inserts a message at the next global stream position and returns that position, in one
/// round trip. Taking the position moves the `stream_position` row, whose lock (held until
/// commit) is what makes positions commit-ordered; PostgreSQL does both in a data-modifying
/// `WITH`, SQLite as two statements of one query (its driver runs them in one call and binds the
/// numbered arguments by name in each).
pub async fn insert_message(conn: &mut AnyConnection, m: &NewMessage<'_>) -> Result<i64> {
    let postgres = super::on_postgres(conn);
    let sql = if postgres {
        "WITH s AS (UPDATE stream_position SET seq = seq + 1 WHERE id = 1 RETURNING seq)
         INSERT INTO messages (id, seq, room_id, sender_id, kind, priority, body, body_key_id,
                               idempotency_key, request_hash, created_at)
         SELECT $1, s.seq, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM s RETURNING seq"
    } else {
        "UPDATE stream_position SET seq = seq + 1 WHERE id = 1;
         INSERT INTO messages (id, seq, room_id, sender_id, kind, priority, body, body_key_id,
                               idempotency_key, request_hash, created_at)
         VALUES ($1, (SELECT seq FROM stream_position WHERE id = 1), $2, $3, $4, $5, $6, $7, $8,
                 $9, $10) RETURNING seq"
    };
    // `fetch_all`, not `fetch_one`: the Any driver's single-row fetch looks only at the first
    // result of a query, which on SQLite is the UPDATE's (no row), and leaves the INSERT unrun.
    let rows: Vec<(i64,)> = sqlx::query_as(sql)
        .bind(m.id.to_string())
        .bind(m.room_id.to_string())
        .bind(m.sender_id.map(|id| id.to_string()))
        .bind(m.kind)
        .bind(m.priority)
        .bind(m.body)
        .bind(m.body_key_id)
        .bind(m.idempotency_key)
        .bind(m.request_hash)
        .bind(m.created_at)
        .fetch_all(conn)
        .await?;
    rows.first()
        .map(|(seq,)| *seq)
        .ok_or_else(|| crate::error::Error::Internal("message insert returned no position".into()))
}

/// The message a sender already stored under an idempotency key, if any.
pub async fn by_idempotency_key<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    sender_id: Uuid,
    key: &str,
) -> Result<Option<MessageRecord>> {
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages m WHERE m.sender_id = $1 AND m.idempotency_key = $2"
    );
    Ok(sqlx::query_as(sql)
        .bind(sender_id.to_string())
        .bind(key)
        .fetch_optional(ex)
        .await?)
}

/// One message by id.
pub async fn by_id<'c, E: Executor<'c, Database = Any>>(ex: E, id: Uuid) -> Result<Option<MessageRecord>> {
    let sql = concat!("SELECT ", message_columns!(), " FROM messages m WHERE m.id = $1");
    Ok(sqlx::query_as(sql)
        .bind(id.to_string())
        .fetch_optional(ex)
        .await?)
}

/// A page of a room's history, newest first, strictly before `before_seq` when given.
pub async fn page(
    conn: &mut AnyConnection,
    room_id: Uuid,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<MessageRecord>> {
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages m
         WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
    );
    Ok(sqlx::query_as(sql)
        .bind(room_id.to_string())
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?)
}

/// Messages after `after_seq` in every room the user belongs to, oldest first: what a client
/// missed while disconnected.
pub async fn after_for_user(
    conn: &mut AnyConnection,
    user_id: Uuid,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<MessageRecord>> {
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages m
         JOIN room_members rm ON rm.room_id = m.room_id AND rm.user_id = $1
         WHERE m.seq > $2 ORDER BY m.seq ASC LIMIT $3"
    );
    Ok(sqlx::query_as(sql)
        .bind(user_id.to_string())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?)
}

/// Acknowledgements of a room's messages within a stream range, for decorating a page.
pub async fn acks_in_range(
    conn: &mut AnyConnection,
    room_id: Uuid,
    min_seq: i64,
    max_seq: i64,
) -> Result<Vec<(Uuid, Ack)>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT a.message_id, a.user_id, a.acked_at FROM message_acks a
         JOIN messages m ON m.id = a.message_id
         WHERE m.room_id = $1 AND m.seq BETWEEN $2 AND $3 ORDER BY a.acked_at",
    )
    .bind(room_id.to_string())
    .bind(min_seq)
    .bind(max_seq)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(m, u, at)| {
            Ok((
                parse_id(&m)?,
                Ack {
                    user_id: parse_id(&u)?,
                    at: from_ms(at),
                },
            ))
        })
        .collect()
}

/// Records an acknowledgement; false when this user had already acknowledged.
pub async fn insert_ack(
    conn: &mut AnyConnection,
    message_id: Uuid,
    user_id: Uuid,
    at_ms: i64,
) -> Result<bool> {
    let res = sqlx::query(
        "INSERT INTO message_acks (message_id, user_id, acked_at) VALUES ($1, $2, $3)
         ON CONFLICT (message_id, user_id) DO NOTHING",
    )
    .bind(message_id.to_string())
    .bind(user_id.to_string())
    .bind(at_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Marks messages delivered, several (message, recipient) pairs in one statement. The first
/// delivery time is kept (a repeat delivery after a reconnect changes nothing).
async fn mark_delivered_batch(conn: &mut AnyConnection, pairs: &[(Uuid, Uuid)], at_ms: i64) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut sql = String::from("INSERT INTO message_receipts (message_id, user_id, delivered_at) VALUES ");
    for i in 0..pairs.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${}, ${}, $1)", 2 * i + 2, 2 * i + 3));
    }
    sql.push_str(" ON CONFLICT (message_id, user_id) DO NOTHING");
    // Only numbered placeholders are interpolated; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at_ms);
    for (m, u) in pairs {
        q = q.bind(m.to_string()).bind(u.to_string());
    }
    q.execute(conn).await?;
    Ok(())
}

/// Records deliveries in a write transaction whose commit does not wait for the disk. Nobody was
/// promised these rows, and an fsync per batch would take the writer away from messages; a crash
/// may lose the last moments of deliveries, never anything else. SQLite relaxes `synchronous` for
/// this transaction only; PostgreSQL uses `SET LOCAL synchronous_commit = off`.
pub async fn record_deliveries(store: &Store, pairs: &[(Uuid, Uuid)], at_ms: i64) -> Result<()> {
    let mut conn = store.write.acquire().await?;
    let sqlite = store.backend == Backend::Sqlite;
    if sqlite {
        conn.execute("PRAGMA synchronous = NORMAL").await?;
    }
    let result: Result<()> = async {
        let mut tx = conn.begin().await?;
        if !sqlite {
            tx.execute("SET LOCAL synchronous_commit = off").await?;
        }
        mark_delivered_batch(&mut tx, pairs, at_ms).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    // Restore full durability before the connection serves anything else; if even that fails,
    // close it rather than let a relaxed connection back into the pool.
    if sqlite && conn.execute("PRAGMA synchronous = FULL").await.is_err() {
        conn.close_on_drop();
    }
    result
}

/// Marks a message read (and so delivered); false when it was already read.
pub async fn mark_read(
    conn: &mut AnyConnection,
    message_id: Uuid,
    user_id: Uuid,
    at_ms: i64,
) -> Result<bool> {
    let res = sqlx::query(
        "INSERT INTO message_receipts (message_id, user_id, delivered_at, read_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (message_id, user_id) DO UPDATE
           SET read_at = excluded.read_at,
               delivered_at = COALESCE(message_receipts.delivered_at, excluded.delivered_at)
         WHERE message_receipts.read_at IS NULL",
    )
    .bind(message_id.to_string())
    .bind(user_id.to_string())
    .bind(at_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Receipts of one message for every current member except the sender (pending ones included).
pub async fn receipts(
    conn: &mut AnyConnection,
    message_id: Uuid,
    room_id: Uuid,
    sender_id: Option<Uuid>,
) -> Result<Vec<Receipt>> {
    let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT rm.user_id, r.delivered_at, r.read_at FROM room_members rm
         LEFT JOIN message_receipts r ON r.user_id = rm.user_id AND r.message_id = $1
         WHERE rm.room_id = $2 AND rm.user_id <> $3 ORDER BY rm.added_at, rm.user_id",
    )
    .bind(message_id.to_string())
    .bind(room_id.to_string())
    .bind(sender_id.map(|s| s.to_string()).unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(u, d, r)| {
            Ok(Receipt {
                message_id,
                user_id: parse_id(&u)?,
                delivered_at: d.map(from_ms),
                read_at: r.map(from_ms),
            })
        })
        .collect()
}
