//! Wrapped data keys.

use sqlx::{Any, AnyConnection, Executor, FromRow};

use crate::error::Result;

/// A stored data key (still wrapped).
#[derive(Debug, Clone, FromRow)]
pub struct DataKeyRecord {
    /// Key id, stored beside every ciphertext it sealed.
    pub id: String,
    /// What it protects, e.g. `room:<uuid>`.
    pub scope: String,
    /// The key-encryption key that wraps it.
    pub kek_id: String,
    /// Wrapped material; absent once destroyed.
    pub wrapped: Option<Vec<u8>>,
    /// When it was destroyed (crypto-shredded).
    pub destroyed_at: Option<i64>,
}

macro_rules! columns {
    () => {
        "id, scope, kek_id, wrapped, destroyed_at"
    };
}

/// The key of a scope, if one exists.
pub async fn by_scope<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    scope: &str,
) -> Result<Option<DataKeyRecord>> {
    Ok(
        sqlx::query_as(concat!("SELECT ", columns!(), " FROM data_keys WHERE scope = $1"))
            .bind(scope)
            .fetch_optional(ex)
            .await?,
    )
}

/// A key by id.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<DataKeyRecord>> {
    Ok(
        sqlx::query_as(concat!("SELECT ", columns!(), " FROM data_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Stores a new key unless the scope already has one (a concurrent creator won).
pub async fn insert(conn: &mut AnyConnection, rec: &DataKeyRecord, now_ms: i64) -> Result<bool> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO data_keys (id, scope, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope) DO NOTHING RETURNING id",
    )
    .bind(&rec.id)
    .bind(&rec.scope)
    .bind(&rec.kek_id)
    .bind(&rec.wrapped)
    .bind(now_ms)
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

/// Live keys wrapped by a KEK other than `kek_id` (what rotation must re-wrap).
pub async fn wrapped_by_other(conn: &mut AnyConnection, kek_id: &str) -> Result<Vec<DataKeyRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM data_keys WHERE kek_id <> $1 AND destroyed_at IS NULL ORDER BY id"
    ))
    .bind(kek_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Replaces a key's wrapping, only if it is still wrapped as the caller read it.
pub async fn rewrap(
    conn: &mut AnyConnection,
    id: &str,
    old_kek: &str,
    new_kek: &str,
    wrapped: &[u8],
    now_ms: i64,
) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE data_keys SET kek_id = $3, wrapped = $4, rotated_at = $5
         WHERE id = $1 AND kek_id = $2 AND destroyed_at IS NULL",
    )
    .bind(id)
    .bind(old_kek)
    .bind(new_kek)
    .bind(wrapped)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}
