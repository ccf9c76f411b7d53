//! `private_key_jwt` client authentication (RFC 7523, SMART "confidential asymmetric" clients,
//! SPEC §5 step 3): instead of a shared secret, Wardline proves who it is at the EHR's token
//! endpoint with a short-lived JWT signed by its own RSA key, and publishes the public half at
//! `GET /smart/jwks.json` for the EHR to register. The signing is openidconnect's; this module
//! only lays out the JWS.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use serde_json::json;

/// The `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Wardline's signing key for one EHR registration.
pub struct ClientKey {
    key: CoreRsaPrivateSigningKey,
    kid: String,
}

impl ClientKey {
    /// Reads a PKCS#1 RSA private key (`BEGIN RSA PRIVATE KEY`; convert others with
    /// `openssl rsa -traditional`).
    pub fn load(path: &Path, kid: &str) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("client key {}: {e}", path.display()))?;
        Self::from_pem(&pem, kid)
    }

    /// A key from PEM text.
    pub fn from_pem(pem: &str, kid: &str) -> Result<Self, String> {
        let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.to_string())))
            .map_err(|e| format!("client key: {e}"))?;
        Ok(Self {
            key,
            kid: kid.to_string(),
        })
    }

    /// The public key as a JWK, for the JWKS the EHR reads.
    pub fn public(&self) -> CoreJsonWebKey {
        self.key.as_verification_key()
    }

    /// A client assertion for `client_id` at `token_url`, valid for five minutes from `now`
    /// (RS384, as SMART recommends); `jti` must be fresh for every request.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: DateTime<Utc>,
        jti: &str,
    ) -> Result<String, String> {
        let header = json!({"alg": "RS384", "typ": "JWT", "kid": self.kid});
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "jti": jti,
            "iat": now.timestamp(),
            "exp": now.timestamp() + 300,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                signing_input.as_bytes(),
            )
            .map_err(|e| format!("signing the client assertion: {e}"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use openidconnect::JsonWebKey;

    use super::*;

    #[test]
    fn the_assertion_verifies_with_the_published_key() {
        let key =
            ClientKey::from_pem(include_str!("../../fixtures/smart/mock-ehr-key-2.pem"), "wl-1").unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let jwt = key
            .assertion("wardline", "https://ehr/token", now, "j-1")
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "wardline");
        assert_eq!(claims["sub"], "wardline");
        assert_eq!(claims["aud"], "https://ehr/token");
        assert_eq!(claims["exp"], 1_800_000_300);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        key.public()
            .verify_signature(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                input.as_bytes(),
                &signature,
            )
            .expect("valid signature");
        assert!(
            key.public()
                .verify_signature(
                    &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                    b"other",
                    &signature
                )
                .is_err()
        );
    }
}
