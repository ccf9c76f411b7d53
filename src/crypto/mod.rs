//! Encryption at rest (SPEC §8): AES-256-GCM envelope encryption. Each room (or other stream) has
//! a data key; data keys are stored only wrapped by a key-encryption key (KEK) from configuration,
//! and every ciphertext names the data key that sealed it. Rotating the KEK re-wraps data keys
//! without touching the data; destroying a data key makes its data unreadable (crypto-shredding).
//!
//! Ciphertexts are `nonce (12 bytes) || AES-GCM(ciphertext || tag)` with associated data that
//! binds them to their row, so a body moved to another message fails to open instead of being
//! shown in the wrong place.

pub mod datakeys;
pub mod keyring;

pub use keyring::{Keyring, KeyringError};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

/// A usable symmetric key.
pub type Cipher = Aes256Gcm;

const NONCE: usize = 12;

/// Why something could not be decrypted. Never returns partial or unauthenticated plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext, its associated data or the key is wrong: altered or misplaced data.
    #[error("integrity check failed: the stored ciphertext was altered or does not belong here")]
    Integrity,
    /// Shorter than a nonce and a tag.
    #[error("the stored ciphertext is truncated")]
    Truncated,
    /// Key material of the wrong length.
    #[error("key material must be 32 bytes")]
    KeyLength,
}

/// Creates a fresh random 256-bit key.
pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

/// Builds a cipher from 32 bytes of key material.
pub fn cipher(key: &[u8]) -> Result<Cipher, CryptoError> {
    Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::KeyLength)
}

/// Encrypts `plaintext` bound to `aad` under a fresh random nonce.
pub fn seal(cipher: &Cipher, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        // AES-GCM encryption only fails for inputs beyond 64 GiB, which no caller produces.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts and authenticates; any change to ciphertext, nonce, tag or `aad` fails.
pub fn open(cipher: &Cipher, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE + 16 {
        return Err(CryptoError::Truncated);
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| CryptoError::Truncated)?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Integrity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_kind_of_tampering_fails_closed() {
        let c = cipher(&random_key()).unwrap();
        let sealed = seal(&c, "Blutdruck 80/40 — Müller".as_bytes(), b"msg-1");
        assert_eq!(
            open(&c, &sealed, b"msg-1").unwrap(),
            "Blutdruck 80/40 — Müller".as_bytes()
        );
        // Same plaintext twice gives different ciphertexts (fresh nonces).
        assert_ne!(seal(&c, b"x", b"a"), seal(&c, b"x", b"a"));
        for i in [0, 5, 12, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                open(&c, &bad, b"msg-1"),
                Err(CryptoError::Integrity),
                "flip at {i}"
            );
        }
        assert_eq!(open(&c, &sealed, b"msg-2"), Err(CryptoError::Integrity));
        assert_eq!(
            open(&cipher(&random_key()).unwrap(), &sealed, b"msg-1"),
            Err(CryptoError::Integrity)
        );
        assert_eq!(open(&c, &sealed[..20], b"msg-1"), Err(CryptoError::Truncated));
        assert_eq!(cipher(&[0u8; 16]).err(), Some(CryptoError::KeyLength));
    }
}
