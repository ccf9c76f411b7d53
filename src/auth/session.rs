//! Browser sessions (SPEC §5 step 7, §8): after a SMART launch or an OIDC sign-in the browser
//! holds a session token in an HttpOnly cookie. A session is a token row with an absolute end and
//! an idle timeout, so revocation, audit and the [`Principal`](super::Principal) work as for any
//! token. Because a cookie rides along on requests other sites trigger, requests that change
//! anything must also carry a CSRF value only Wardline's own pages can read
//! (`GET /api/v1/session`), and WebSocket upgrades must come from Wardline's own origin.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::users::{self, NewToken};

/// The cookie that holds the session token.
pub const SESSION_COOKIE: &str = "wardline_session";
/// The cookie that binds an authorization request to the browser that started it.
pub const BINDING_COOKIE: &str = "wardline_auth";
/// The header that must repeat the session's CSRF value on requests that change state.
pub const CSRF_HEADER: &str = "x-wardline-csrf";
/// How often a session's last use is written (the idle clock's resolution).
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// The `session` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// A session unused this long ends (a workstation left signed in).
    pub idle_timeout_secs: u64,
    /// A session ends this long after sign-in, however busy (a shift).
    pub absolute_timeout_secs: u64,
    /// Whether cookies are `Secure` (and then `SameSite=None`, which an EHR on another site needs
    /// to frame Wardline). Default: when `public_url` is `https://` or TLS is configured; a plain
    /// HTTP development server gets `SameSite=Lax` cookies instead.
    pub secure_cookies: Option<bool>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 15 * 60,
            absolute_timeout_secs: 12 * 3600,
            secure_cookies: None,
        }
    }
}

/// What the EHR launch put in the session, for the web app to open first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchContext {
    /// The patient's encounter room.
    pub room_id: Uuid,
    /// False when the EHR shows its own patient banner.
    pub need_patient_banner: bool,
}

/// Whether this server's cookies are `Secure`.
pub fn secure_cookies(config: &crate::config::Config) -> bool {
    config.session.secure_cookies.unwrap_or_else(|| {
        config.tls.cert_file.is_some()
            || config
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    })
}

/// Starts a session for `user_id`; returns its token id and the secret for the cookie.
pub async fn start(
    store: &Store,
    cfg: &SessionConfig,
    user_id: Uuid,
    context: Option<&LaunchContext>,
    label: &str,
    now_ms: i64,
) -> Result<(Uuid, String)> {
    let token = super::generate_token();
    let id = Uuid::now_v7();
    let context = context
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let new = NewToken {
        id,
        user_id,
        hash: &super::hash_token(&token),
        label,
        scopes: "",
        created_at: now_ms,
        expires_at: Some(now_ms + secs_ms(cfg.absolute_timeout_secs)),
        idle_timeout_ms: Some(secs_ms(cfg.idle_timeout_secs)),
        context: context.as_deref(),
    };
    let mut tx = store.begin().await?;
    users::insert_token(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((id, token))
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The CSRF value of a session: derived from its secret, so it needs no storage and is worthless
/// without the cookie.
pub fn csrf(token: &str) -> String {
    let digest = Sha256::digest(format!("wardline-csrf:{token}").as_bytes());
    hex::encode(&digest[..16])
}

/// The name a cookie really has: with `Secure` cookies, the `__Host-` prefix, which browsers only
/// accept from this host over HTTPS with `Path=/` and no `Domain` — so a sibling subdomain or a
/// plain-HTTP attacker cannot plant a session or a binding (login CSRF, fixation).
fn full_name(name: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// A `Set-Cookie` value for an HttpOnly cookie on the whole site. Secure cookies are also
/// `SameSite=None` (the EHR frames Wardline from another site) and `Partitioned`, so browsers
/// that block third-party cookies still keep them, per EHR.
pub fn set_cookie(name: &'static str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((full_name(name, secure), value.to_string()))
        .http_only(true)
        .path("/")
        .secure(secure)
        .partitioned(secure)
        .same_site(if secure { SameSite::None } else { SameSite::Lax })
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that removes a cookie.
pub fn clear_cookie(name: &'static str, secure: bool) -> HeaderValue {
    set_cookie(name, "", 0, secure)
}

/// The value of cookie `name` in the request, if present (under its `__Host-` name when cookies
/// are secure: an unprefixed one may have been planted).
pub fn cookie(headers: &HeaderMap, name: &str, secure: bool) -> Option<String> {
    let name = full_name(name, secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(|c| c.ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_and_same_site() {
        let dev = set_cookie(SESSION_COOKIE, "wlt_x", 60, false);
        let dev = dev.to_str().unwrap();
        assert!(dev.contains("HttpOnly") && dev.contains("SameSite=Lax") && !dev.contains("Secure"));
        let prod = set_cookie(SESSION_COOKIE, "wlt_x", 60, true);
        let prod = prod.to_str().unwrap();
        assert!(
            prod.contains("Secure") && prod.contains("SameSite=None"),
            "{prod}"
        );
        assert!(
            clear_cookie(SESSION_COOKIE, true)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn cookie_reads_the_named_one_and_csrf_is_stable() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; wardline_session=wlt_abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE, false).as_deref(), Some("wlt_abc"));
        assert_eq!(cookie(&h, "c", false), None);
        // Secure deployments read only the __Host- cookie.
        assert_eq!(cookie(&h, SESSION_COOKIE, true), None);
        assert_eq!(csrf("wlt_abc"), csrf("wlt_abc"));
        assert_ne!(csrf("wlt_abc"), csrf("wlt_abd"));
        assert_eq!(csrf("wlt_abc").len(), 32);
    }
}
