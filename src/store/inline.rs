//! SQLite on the caller's own thread. sqlx runs every SQLite statement on a worker thread per
//! connection, so each statement is two thread hand-offs (wake the worker, wake the task
//! again); for a read by primary key those cost more CPU than the read itself (`perf record` of
//! the FHIR read benchmark, docs/benchmarks.md). The few hot reads by id run here instead,
//! synchronously through rusqlite on the same SQLite library, from a small set of read-only
//! connections. They take microseconds, so running them on a runtime thread is like any other
//! short computation; anything that scans stays on the sqlx readers. The audit sink's group
//! commit also writes here ([`Inline::write`]), on the sink's own thread, while it holds the
//! sqlx writer connection: the single writer's turn.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use sqlx::Any;
use sqlx::pool::PoolConnection;

use crate::error::{Error, Result};

/// How long a read waits for a lock SQLite reports busy (in WAL mode only during recovery of a
/// crashed writer's WAL): a runtime thread must never sit blocked for long.
const BUSY_WAIT: Duration = Duration::from_millis(200);

/// Read-only connections to the database file, each used by one caller at a time.
#[derive(Debug)]
pub struct Inline {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Connections kept between reads; more may be open during a burst, and are closed after.
    keep: usize,
    /// The connection [`Inline::write`] uses, opened at its first use.
    writer: Mutex<Option<Connection>>,
}

impl Inline {
    /// Point reads on the database at `path` (which the sqlx writer has created and migrated),
    /// keeping at most `keep` connections open between reads.
    pub fn new(path: PathBuf, keep: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
            writer: Mutex::new(None),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(BUSY_WAIT)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `read` on an idle connection (opening one if none is idle).
    pub fn run<R>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R> {
        let taken = self.idle().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.open().map_err(read_error)?,
        };
        let out = read(&conn).map_err(read_error);
        let mut idle = self.idle();
        if idle.len() < self.keep {
            idle.push(conn);
        }
        out
    }

    fn open_writer(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        for pragma in super::SQLITE_PRAGMAS
            .into_iter()
            .chain(super::checkpoint::PRAGMAS)
        {
            conn.execute_batch(pragma)?;
        }
        conn.set_prepared_statement_cache_capacity(8);
        Ok(conn)
    }

    /// Runs `write` in a transaction (`BEGIN IMMEDIATE`) on this thread and commits it, or rolls
    /// it back when `write` or the commit fails. `_turn` is the sqlx writer connection
    /// ([`super::Store::begin`]'s), held for the duration: every other write goes through it, so
    /// while it is held this is SQLite's only writer and never waits for a lock. It blocks the
    /// thread for a durable commit (an fdatasync): for a thread of its own, such as the audit
    /// sink's, not for a runtime's.
    pub fn write<R>(
        &self,
        _turn: &mut PoolConnection<Any>,
        write: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<R>,
    ) -> Result<R> {
        let mut slot = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => self.open_writer().map_err(write_error)?,
        };
        let out = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = write(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        // A failed transaction is rolled back when it is dropped; a connection that is somehow
        // still inside one is closed instead of kept.
        if conn.is_autocommit() {
            *slot = Some(conn);
        }
        out.map_err(write_error)
    }
}

fn write_error(e: rusqlite::Error) -> Error {
    Error::Internal(format!("database write failed: {e}"))
}

fn read_error(e: rusqlite::Error) -> Error {
    Error::Internal(format!("database read failed: {e}"))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use crate::chat::model::{MemberReason, RoomKind};
    use crate::store::fhir::{Page, PatientQuery, patient_inline, patients};
    use crate::store::{patients as p, rooms, users};

    /// The inline read finds what the sqlx search finds for the same id and viewer, sees a
    /// commit made just before it, and cannot write.
    #[tokio::test]
    async fn reads_by_id_match_the_search_and_cannot_write() {
        let (_dir, store) = crate::store::temp_sqlite("inline.db").await;
        store.migrate().await.expect("migrate");
        let inline = store.inline().expect("SQLite reads inline");
        let (patient, encounter, room, member, outsider) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let id = patient.to_string();
        assert!(patient_inline(inline, &id, None).expect("read").is_none());

        let mut tx = store.begin().await.expect("begin");
        for (user, name) in [(member, "member"), (outsider, "outsider")] {
            let record = users::UserRecord {
                id: user,
                username: name.into(),
                display_name: name.into(),
                kind: "person".into(),
                roles: vec!["clinician".into()],
                npi: None,
                active: true,
            };
            users::insert_user(&mut tx, &record, 1).await.expect("user");
        }
        let new = p::NewPatient {
            id: patient,
            family: "Inline",
            given: "Pat",
            birth_date: "1970-01-01",
            sex: "unknown",
            mrn_system: "urn:mrn",
            mrn: "MRN-1",
        };
        p::insert_patient(&mut tx, &new, 1).await.expect("patient");
        p::add_identifier(&mut tx, "urn:other", "X-9", &id)
            .await
            .expect("identifier");
        let visit = p::NewEncounter {
            id: encounter,
            patient_id: patient,
            visit_system: "urn:visit",
            visit_number: "V-1",
            class: "inpatient",
            status: "in-progress",
            unit: None,
            room: None,
            bed: None,
            admitted_at: None,
        };
        p::insert_encounter(&mut tx, &visit, 1).await.expect("encounter");
        let new_room = rooms::NewRoom {
            id: room,
            kind: RoomKind::PatientEncounter,
            name: "Inline",
            encounter_id: Some(encounter),
            role_key: None,
            direct_key: None,
            created_by: None,
        };
        rooms::insert_room(&mut tx, &new_room, 1).await.expect("room");
        rooms::add_member(&mut tx, room, member, MemberReason::Attending, None, 1)
            .await
            .expect("member");
        tx.commit().await.expect("commit");

        let query = PatientQuery {
            id: Some(id.clone()),
            ..PatientQuery::default()
        };
        let page = Page { count: 10, offset: 0 };
        for viewer in [None, Some(member.to_string()), Some(outsider.to_string())] {
            let viewer = viewer.as_deref();
            let (_, searched) = patients(&mut store.read().await.expect("reader"), &query, viewer, page)
                .await
                .expect("search");
            let read = patient_inline(inline, &id, viewer).expect("read");
            assert_eq!(
                read.as_ref()
                    .map(|r| (&r.row.id, &r.row.family_name, &r.identifiers, r.updated_at)),
                searched
                    .first()
                    .map(|r| (&r.row.id, &r.row.family_name, &r.identifiers, r.updated_at)),
                "viewer {viewer:?}"
            );
            assert_eq!(read.is_some(), viewer != Some(outsider.to_string().as_str()));
        }
        let identifiers = patient_inline(inline, &id, None)
            .expect("read")
            .expect("found")
            .identifier_pairs();
        assert_eq!(identifiers.expect("pairs").len(), 2);

        let refused = inline.run(|conn| conn.execute("DELETE FROM patients", []));
        assert!(refused.is_err(), "inline connections are read-only");
        store.close().await;
    }
}
