//! A short-lived memory of validated API tokens. An interface engine or EHR sends thousands of
//! requests a second with the same bearer token; looking it up in the database every time costs
//! a round trip per request for an answer that rarely changes. A token validated at most
//! `ttl_ms` ago is trusted again without asking the database.
//!
//! What that window means for revocation: a token revoked (or a user deactivated) through *this*
//! node is forgotten at once ([`TokenCache::forget_all`]); revoked through another node or the
//! `wardline token revoke` CLI it stops working within `ttl_ms` (`limits.token_cache_ms`,
//! 2 s by default, 0 turns the cache off). Browser sessions are never cached: their idle clock
//! must see every use.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::users::TokenUser;

/// Entries kept at most; when full, the memory starts over (a burst of distinct tokens must not
/// grow it without bound).
const CAPACITY: usize = 4096;

/// Validated tokens by hash, each with the time it was read from the database.
#[derive(Debug)]
pub struct TokenCache {
    ttl_ms: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, (i64, TokenUser)>,
    /// Bumped by every [`TokenCache::forget_all`], so a lookup that started before a revocation
    /// cannot put the revoked token back.
    generation: u64,
}

impl TokenCache {
    /// A cache that trusts a lookup for `ttl_ms` (0: never).
    pub fn new(ttl_ms: u64) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken before a database lookup and handed to [`TokenCache::put`] with its result.
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The token with hash `hash` as validated within the window, if it is still valid at
    /// `now_ms` by its own expiry.
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<TokenUser> {
        if self.ttl_ms == 0 {
            return None;
        }
        let state = self.state();
        let (fetched, found) = state.entries.get(hash)?;
        let fresh = now_ms >= *fetched && now_ms - fetched < self.ttl_ms;
        let unexpired = found.expires_at.is_none_or(|at| at > now_ms);
        (fresh && unexpired).then(|| found.clone())
    }

    /// Remembers a token the database has just validated at `now_ms` (sessions excepted),
    /// unless something was forgotten since `generation` was taken before that lookup.
    pub fn put(&self, hash: &str, found: &TokenUser, now_ms: i64, generation: u64) {
        if self.ttl_ms == 0 || found.idles_out {
            return;
        }
        let mut state = self.state();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= CAPACITY {
            state.entries.clear();
        }
        state.entries.insert(hash.to_string(), (now_ms, found.clone()));
    }

    /// Forgets every token: called after a revocation or a change to a user's access.
    pub fn forget_all(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::UserRecord;

    fn token(expires_at: Option<i64>, idles_out: bool) -> TokenUser {
        TokenUser {
            token_id: uuid::Uuid::now_v7(),
            scopes: String::new(),
            user: UserRecord {
                id: uuid::Uuid::now_v7(),
                username: "mirth".into(),
                display_name: "Mirth".into(),
                kind: "service".into(),
                roles: vec!["integration".into()],
                npi: None,
                active: true,
            },
            session_last_used: None,
            expires_at,
            idles_out,
        }
    }

    #[test]
    fn a_lookup_is_trusted_for_the_window_only() {
        let cache = TokenCache::new(2_000);
        let t = token(None, false);
        cache.put("h", &t, 10_000, cache.generation());
        assert_eq!(cache.get("h", 10_000).map(|f| f.token_id), Some(t.token_id));
        assert!(cache.get("h", 11_999).is_some());
        assert!(cache.get("h", 12_000).is_none(), "the window has passed");
        assert!(
            cache.get("h", 9_999).is_none(),
            "a clock that went back is not trusted"
        );
        assert!(cache.get("other", 10_000).is_none());
    }

    #[test]
    fn expiry_sessions_revocation_and_zero_ttl_are_honoured() {
        let cache = TokenCache::new(60_000);
        let g = cache.generation();
        cache.put("exp", &token(Some(10_500), false), 10_000, g);
        assert!(cache.get("exp", 10_499).is_some());
        assert!(cache.get("exp", 10_500).is_none(), "expired inside the window");
        cache.put("session", &token(None, true), 10_000, g);
        assert!(
            cache.get("session", 10_000).is_none(),
            "sessions always go to the database"
        );
        cache.put("svc", &token(None, false), 10_000, g);
        cache.forget_all();
        assert!(cache.get("svc", 10_000).is_none(), "revocation forgets at once");
        cache.put("svc", &token(None, false), 10_000, g);
        assert!(
            cache.get("svc", 10_000).is_none(),
            "a lookup that began before the revocation does not put it back"
        );
        let off = TokenCache::new(0);
        off.put("svc", &token(None, false), 10_000, off.generation());
        assert!(off.get("svc", 10_000).is_none());
    }
}
