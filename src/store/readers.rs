//! Connections for reads that need no transaction.
//!
//! sqlx's pool tests every connection when it is given back: it spawns a task that pings the
//! connection before the next caller may have it. For SQLite that ping is a round trip to the
//! connection's worker thread, two thread wake-ups for nothing, as many as the read itself: an
//! embedded file does not go away, and a read that was cancelled half-way has already been
//! reset by the worker. So on SQLite the reader connections, once opened, stay out of the
//! pool: a returned connection goes straight back to a stash for the next read, and a
//! semaphore bounds how many are in use (docs/benchmarks.md, "2026-12-04, evening": +8 %
//! FHIR reads a second). On PostgreSQL a connection can break (a server restart, a network
//! failure), so there reads keep going through the pool and its test on release.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// How long a read waits for a free connection before failing (as sqlx's pool did).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The reader connections of one store.
pub(crate) struct Readers {
    pool: AnyPool,
    /// SQLite only: connections in use at most (the pool holds one more, for the checkpoint
    /// task), and the ones not in use.
    stash: Option<Stash>,
}

struct Stash {
    permits: Arc<Semaphore>,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    conns: Vec<PoolConnection<Any>>,
    /// Set by [`Readers::close`]: connections handed back afterwards return to the pool, which
    /// is waiting for them to close.
    closing: bool,
}

impl Readers {
    /// Reads through `pool`; with `stash`, at most `stash` of them at once, on connections
    /// that bypass the pool's test on release.
    pub(crate) fn new(pool: AnyPool, stash: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            pool,
            stash: stash.map(|n| Stash {
                permits: Arc::new(Semaphore::new(n.max(1))),
                idle: Mutex::new(Idle::default()),
            }),
        })
    }

    /// The pool itself, for the few users that take a connection of their own.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A connection for one or more reads; give it back (drop it) before asking for another.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<ReadConn> {
        let Some(stash) = &self.stash else {
            return Ok(ReadConn {
                conn: Some(self.pool.acquire().await?),
                home: None,
            });
        };
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, stash.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Database(sqlx::Error::PoolTimedOut))?
            .map_err(|_| Error::Database(sqlx::Error::PoolClosed))?;
        let kept = lock(&stash.idle).conns.pop();
        let conn = match kept {
            Some(conn) => conn,
            // Fewer connections are open than permits exist, so the pool has one to give.
            None => self.pool.acquire().await?,
        };
        Ok(ReadConn {
            conn: Some(conn),
            home: Some((self.clone(), permit)),
        })
    }

    /// Gives every stashed connection back to the pool and closes it.
    pub(crate) async fn close(&self) {
        if let Some(stash) = &self.stash {
            let conns = {
                let mut idle = lock(&stash.idle);
                idle.closing = true;
                std::mem::take(&mut idle.conns)
            };
            drop(conns);
        }
        self.pool.close().await;
    }
}

fn lock(idle: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
    idle.lock().unwrap_or_else(|p| p.into_inner())
}

/// A reader connection on loan; dereferences to the connection the store's queries take.
pub struct ReadConn {
    conn: Option<PoolConnection<Any>>,
    /// Where it goes back to, with the permit it holds (SQLite only).
    home: Option<(Arc<Readers>, OwnedSemaphorePermit)>,
}

impl Deref for ReadConn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        let (Some(conn), Some((readers, _permit))) = (self.conn.take(), self.home.as_ref()) else {
            return;
        };
        if let Some(stash) = &readers.stash {
            let mut idle = lock(&stash.idle);
            if !idle.closing {
                idle.conns.push(conn);
            }
        }
        // The permit is released after the connection is back in the stash.
    }
}

#[cfg(test)]
mod tests {
    /// Reads on SQLite reuse their connections without the pool's test on release, never use
    /// more than the configured number, and the store still closes.
    #[tokio::test]
    async fn sqlite_reads_reuse_stashed_connections_and_close() {
        let (_dir, store) = super::super::temp_sqlite("readers.db").await;
        let mut first = store.read().await.expect("first");
        let mut second = store.read().await.expect("second");
        async fn one(c: &mut super::AnyConnection) -> i64 {
            let (n,): (i64,) = sqlx::query_as("SELECT 1").fetch_one(c).await.expect("query");
            n
        }
        assert_eq!(one(&mut first).await, 1);
        assert_eq!(one(&mut second).await, 1);
        let third = tokio::time::timeout(std::time::Duration::from_millis(200), store.read()).await;
        assert!(third.is_err(), "a third reader waits while two are on loan");
        drop(first);
        let mut third = store.read().await.expect("third, after one came back");
        assert_eq!(one(&mut third).await, 1);
        drop((second, third));
        // Both connections are stashed, not in the pool (which holds one spare for the
        // checkpoint task): the pool has given out two and has none idle beyond the spare.
        assert_eq!(
            store.readers.pool().num_idle() as u32 + 2,
            store.readers.pool().size()
        );
        tokio::time::timeout(std::time::Duration::from_secs(5), store.close())
            .await
            .expect("closing returns the stashed connections");
    }
}
