//! Data keys per scope, created on first use inside the writer's transaction, cached unwrapped,
//! and re-wrapped by rotation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::AnyConnection;
use uuid::Uuid;

use super::{Cipher, Keyring, random_key};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::keys::{self, DataKeyRecord};

/// The scope of a room's data key.
pub fn room_scope(room_id: Uuid) -> String {
    format!("room:{room_id}")
}

/// Access to data keys for sealing and opening.
pub struct DataKeys {
    keyring: Arc<Keyring>,
    store: Store,
    scopes: RwLock<HashMap<String, String>>,
}

impl DataKeys {
    /// Data keys stored in `store`, wrapped by `keyring`'s KEKs.
    pub fn new(keyring: Arc<Keyring>, store: Store) -> Self {
        Self {
            keyring,
            store,
            scopes: RwLock::new(HashMap::new()),
        }
    }

    /// The key of `scope`, created (inside the caller's transaction) on first use.
    pub async fn for_scope(
        &self,
        conn: &mut AnyConnection,
        scope: &str,
        now_ms: i64,
    ) -> Result<(String, Arc<Cipher>)> {
        let known = self
            .scopes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            .cloned();
        if let Some(id) = known
            && let Some(c) = self.keyring.cached(&id)
        {
            return Ok((id, c));
        }
        // Insert first: most misses are new scopes (a room just created), which then cost one
        // statement; an existing scope (after a restart) costs the insert that did nothing and
        // the read, as a read-then-insert would.
        let id = Uuid::now_v7().to_string();
        let (kek_id, wrapped) = self.keyring.wrap(&id, &random_key());
        let fresh = DataKeyRecord {
            id,
            scope: scope.into(),
            kek_id,
            wrapped: Some(wrapped),
            destroyed_at: None,
        };
        let rec = if keys::insert(conn, &fresh, now_ms).await? {
            fresh
        } else {
            keys::by_scope(&mut *conn, scope)
                .await?
                .ok_or_else(|| Error::Internal("data key vanished".into()))?
        };
        let cipher = self.unwrap(&rec)?;
        self.scopes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.into(), rec.id.clone());
        Ok((rec.id, cipher))
    }

    /// The key that sealed a stored ciphertext. Unknown, destroyed or unwrappable keys fail closed.
    pub async fn by_id(&self, key_id: &str) -> Result<Arc<Cipher>> {
        if let Some(c) = self.keyring.cached(key_id) {
            return Ok(c);
        }
        let rec = keys::by_id(&mut *self.store.read().await?, key_id)
            .await?
            .ok_or_else(|| Error::Crypto(format!("data key {key_id} does not exist")))?;
        self.unwrap(&rec)
    }

    fn unwrap(&self, rec: &DataKeyRecord) -> Result<Arc<Cipher>> {
        let wrapped = match (&rec.wrapped, rec.destroyed_at) {
            (Some(w), None) => w,
            _ => {
                return Err(Error::Crypto(format!(
                    "data key {} was destroyed; its content is purged",
                    rec.id
                )));
            }
        };
        Ok(self.keyring.unwrap(&rec.id, &rec.kek_id, wrapped)?)
    }

    /// Re-wraps every live data key under the active KEK. Safe while servers run: each row names
    /// its KEK, so readers use whichever wrapping they find. Returns how many keys were re-wrapped.
    pub async fn rotate(&self, now_ms: i64) -> Result<usize> {
        let active = self.keyring.active_kek().to_string();
        let mut done = 0;
        let to_rewrap = keys::wrapped_by_other(&mut *self.store.read().await?, &active).await?;
        for rec in to_rewrap {
            let Some(wrapped) = &rec.wrapped else { continue };
            let (new_kek, rewrapped) = self.keyring.rewrap(&rec.id, &rec.kek_id, wrapped)?;
            let mut tx = self.store.begin().await?;
            if keys::rewrap(&mut tx, &rec.id, &rec.kek_id, &new_kek, &rewrapped, now_ms).await? {
                done += 1;
            }
            tx.commit().await?;
        }
        Ok(done)
    }

    /// Forgets a destroyed scope's key on this node.
    pub fn forget_scope(&self, scope: &str) {
        if let Some(id) = self
            .scopes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(scope)
        {
            self.keyring.forget(&id);
        }
    }

    /// Forgets every scope → key mapping, after a transaction that may have created keys was
    /// rolled back: the next use reads the committed key (or creates one) instead of sealing
    /// with a key whose row never committed (which would leave that data undecryptable).
    pub fn forget_uncommitted(&self) {
        self.scopes.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A guard for a transaction that uses [`DataKeys::for_scope`]: unless [`Pending::committed`]
    /// is called after its commit, dropping it (an early return, an error, a panic) forgets the
    /// keys the transaction may have created.
    pub fn pending(&self) -> Pending<'_> {
        Pending {
            keys: self,
            committed: false,
        }
    }

    /// The active KEK id.
    pub fn active_kek(&self) -> &str {
        self.keyring.active_kek()
    }
}

/// See [`DataKeys::pending`].
pub struct Pending<'a> {
    keys: &'a DataKeys,
    committed: bool,
}

impl Pending<'_> {
    /// The transaction committed: the keys it created are real.
    pub fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.keys.forget_uncommitted();
        }
    }
}
