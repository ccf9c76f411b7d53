//! Key-encryption keys from configuration and the cache of unwrapped data keys.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Cipher, CryptoError, cipher, open, random_key, seal};

/// Problems with key configuration; all are fatal at start-up or clear errors at use.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No KEK is configured and none may be generated.
    #[error(
        "no key-encryption key configured: set keys.keks.<id> (base64 of 32 random bytes) and keys.active_kek"
    )]
    Missing,
    /// The active KEK id names no configured KEK.
    #[error("keys.active_kek '{0}' is not among the configured keys")]
    UnknownActive(String),
    /// A KEK's material is unusable.
    #[error("key-encryption key '{id}' is invalid: {reason}")]
    Invalid {
        /// Its id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored data key was wrapped by a KEK this node does not have.
    #[error("data key {key_id} is wrapped by key-encryption key '{kek_id}', which is not configured")]
    UnknownKek {
        /// The data key.
        key_id: String,
        /// The missing KEK.
        kek_id: String,
    },
    /// Unwrapping failed (wrong KEK material or altered wrapped key).
    #[error("data key {key_id} could not be unwrapped: {source}")]
    Unwrap {
        /// The data key.
        key_id: String,
        /// Why.
        source: CryptoError,
    },
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The configured KEKs (one active for wrapping) and a cache of unwrapped data keys.
pub struct Keyring {
    keks: HashMap<String, Cipher>,
    active: String,
    cache: RwLock<HashMap<String, Arc<Cipher>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keks.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("keks", &ids)
            .field("active", &self.active)
            .finish()
    }
}

impl Keyring {
    /// Builds a keyring from `id → base64 key` pairs and the active id.
    pub fn new(keks: &HashMap<String, String>, active: &str) -> Result<Self, KeyringError> {
        if keks.is_empty() {
            return Err(KeyringError::Missing);
        }
        let mut map = HashMap::new();
        for (id, b64) in keks {
            let invalid = |reason: &str| KeyringError::Invalid {
                id: id.clone(),
                reason: reason.into(),
            };
            let bytes = B64.decode(b64.trim()).map_err(|_| invalid("not base64"))?;
            map.insert(
                id.clone(),
                cipher(&bytes).map_err(|_| invalid("must decode to 32 bytes"))?,
            );
        }
        if !map.contains_key(active) {
            return Err(KeyringError::UnknownActive(active.into()));
        }
        Ok(Self {
            keks: map,
            active: active.into(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Reads the KEK in `path`, creating it (owner-only permissions) if absent. For the
    /// zero-set-up single-node SQLite mode only; production supplies KEKs from a secret store.
    pub fn load_or_create_file(path: &Path, id: &str) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path).map_err(io)?;
            writeln!(f, "{}", B64.encode(random_key())).map_err(io)?;
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::new(&HashMap::from([(id.to_string(), text.trim().to_string())]), id)
    }

    /// The KEK id new data keys are wrapped with.
    pub fn active_kek(&self) -> &str {
        &self.active
    }

    /// Wraps data-key material under the active KEK; the key id is bound as associated data.
    pub fn wrap(&self, key_id: &str, material: &[u8]) -> (String, Vec<u8>) {
        let kek = &self.keks[&self.active];
        (self.active.clone(), seal(kek, material, key_id.as_bytes()))
    }

    /// Unwraps a stored data key into a cipher (and caches it).
    pub fn unwrap(&self, key_id: &str, kek_id: &str, wrapped: &[u8]) -> Result<Arc<Cipher>, KeyringError> {
        if let Some(c) = self.cached(key_id) {
            return Ok(c);
        }
        let kek = self.keks.get(kek_id).ok_or_else(|| KeyringError::UnknownKek {
            key_id: key_id.into(),
            kek_id: kek_id.into(),
        })?;
        let unwrap_err = |source| KeyringError::Unwrap {
            key_id: key_id.into(),
            source,
        };
        let material = open(kek, wrapped, key_id.as_bytes()).map_err(unwrap_err)?;
        let c = Arc::new(cipher(&material).map_err(unwrap_err)?);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id.to_string(), c.clone());
        Ok(c)
    }

    /// Re-wraps a stored data key under the active KEK (rotation); returns the new wrapping.
    pub fn rewrap(
        &self,
        key_id: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<(String, Vec<u8>), KeyringError> {
        let kek = self.keks.get(kek_id).ok_or_else(|| KeyringError::UnknownKek {
            key_id: key_id.into(),
            kek_id: kek_id.into(),
        })?;
        let material = open(kek, wrapped, key_id.as_bytes()).map_err(|source| KeyringError::Unwrap {
            key_id: key_id.into(),
            source,
        })?;
        Ok(self.wrap(key_id, &material))
    }

    /// A cached data key.
    pub fn cached(&self, key_id: &str) -> Option<Arc<Cipher>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Forgets a data key (after it was destroyed).
    pub fn forget(&self, key_id: &str) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> String {
        B64.encode(random_key())
    }

    #[test]
    fn wraps_and_unwraps_only_with_the_right_kek() {
        let ring = Keyring::new(&HashMap::from([("k1".into(), kek())]), "k1").unwrap();
        let (kek_id, wrapped) = ring.wrap("dk-1", &random_key());
        assert_eq!(kek_id, "k1");
        assert!(ring.unwrap("dk-1", "k1", &wrapped).is_ok());
        let other = Keyring::new(&HashMap::from([("k1".into(), kek())]), "k1").unwrap();
        assert!(matches!(
            other.unwrap("dk-1", "k1", &wrapped),
            Err(KeyringError::Unwrap { .. })
        ));
    }

    #[test]
    fn rotation_keeps_data_readable_under_the_new_kek() {
        let k1 = kek();
        let k2 = kek();
        let before = Keyring::new(&HashMap::from([("k1".into(), k1.clone())]), "k1").unwrap();
        let material = random_key();
        let (_, wrapped) = before.wrap("dk-1", &material);
        let sealed = seal(&cipher(&material).unwrap(), b"hello", b"m");

        let during = Keyring::new(
            &HashMap::from([("k1".into(), k1), ("k2".into(), k2.clone())]),
            "k2",
        )
        .unwrap();
        let (new_kek, rewrapped) = during.rewrap("dk-1", "k1", &wrapped).unwrap();
        assert_eq!(new_kek, "k2");

        let after = Keyring::new(&HashMap::from([("k2".into(), k2)]), "k2").unwrap();
        let c = after.unwrap("dk-1", "k2", &rewrapped).unwrap();
        assert_eq!(open(&c, &sealed, b"m").unwrap(), b"hello");
        assert!(matches!(
            after.unwrap("dk-2", "k1", &wrapped),
            Err(KeyringError::UnknownKek { .. })
        ));
        // A wrapped key moved to another key id does not unwrap.
        assert!(matches!(
            after.unwrap("dk-3", "k2", &rewrapped),
            Err(KeyringError::Unwrap { .. })
        ));
    }

    #[test]
    fn configuration_errors_are_clear() {
        assert!(matches!(
            Keyring::new(&HashMap::new(), "k1"),
            Err(KeyringError::Missing)
        ));
        assert!(matches!(
            Keyring::new(&HashMap::from([("k1".into(), kek())]), "k9"),
            Err(KeyringError::UnknownActive(_))
        ));
        assert!(matches!(
            Keyring::new(&HashMap::from([("k1".into(), "!!".into())]), "k1"),
            Err(KeyringError::Invalid { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wardline.kek");
        let a = Keyring::load_or_create_file(&p, "local").unwrap();
        let (_, wrapped) = a.wrap("dk", &[7u8; 32]);
        let b = Keyring::load_or_create_file(&p, "local").unwrap();
        assert!(
            b.unwrap("dk", "local", &wrapped).is_ok(),
            "the same file gives the same KEK"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
