//! APNs provider authentication tokens: ES256 JWTs signed with the channel's `.p8` key.
//!
//! Apple rejects a token older than an hour (`ExpiredProviderToken`) and one replaced more often
//! than every 20 minutes (`TooManyProviderTokenUpdates`), so one token per (team, key) is
//! shared by every request and replaced after [`TOKEN_REFRESH_SECS`].

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::header::HeaderValue;
use serde::Serialize;

use super::config::ApnsConfig;

/// Age at which a cached token is replaced: inside Apple's 20–60 minute window, with margin for
/// clock skew at either end.
pub(crate) const TOKEN_REFRESH_SECS: u64 = 40 * 60;

/// The JWT claims Apple expects.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// A signed token ready to send.
struct Cached {
    /// `bearer <jwt>`, built once so each request only clones it.
    authorization: HeaderValue,
    issued_at: u64,
    /// Fingerprint of the private key the token was signed with: a channel whose key is
    /// replaced under the same key id must not keep using a token from the old key.
    key_fingerprint: u64,
}

/// Provider tokens cached per (team id, key id).
#[derive(Default)]
pub(crate) struct ProviderTokens {
    // A std mutex: signing takes well under a millisecond and happens once per 40 minutes per
    // key; holding the lock while signing keeps concurrent requests from minting several
    // tokens at once, which Apple counts as too many updates.
    tokens: Mutex<HashMap<String, Cached>>,
}

impl ProviderTokens {
    /// The `authorization` header value for `config` at unix time `now`, signing a new token
    /// when none is cached, the cached one is [`TOKEN_REFRESH_SECS`] old, or the key changed.
    pub fn authorization(&self, config: &ApnsConfig<'_>, now: u64) -> Result<HeaderValue, String> {
        let fingerprint = fingerprint(config.private_key);
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let key = cache_key(config);
        if let Some(cached) = tokens.get(&key)
            && cached.key_fingerprint == fingerprint
            && is_fresh(cached.issued_at, now)
        {
            return Ok(cached.authorization.clone());
        }
        let jwt = sign(config, now)?;
        let authorization = HeaderValue::try_from(format!("bearer {jwt}")).map_err(|e| e.to_string())?;
        let cached = Cached { authorization: authorization.clone(), issued_at: now, key_fingerprint: fingerprint };
        tokens.insert(key, cached);
        Ok(authorization)
    }

    /// Drops the cached token if it is still `stale` (Apple refused it), so the next request
    /// signs a new one. A token another request already replaced is left alone.
    pub fn invalidate(&self, config: &ApnsConfig<'_>, stale: &HeaderValue) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let key = cache_key(config);
        if tokens.get(&key).is_some_and(|cached| cached.authorization == stale) {
            tokens.remove(&key);
        }
    }
}

/// Whether a token issued at `issued_at` may still be used at `now`. A clock that went
/// backwards also forces a new token, since the old `iat` may then lie in the future.
pub(crate) fn is_fresh(issued_at: u64, now: u64) -> bool {
    now >= issued_at && now - issued_at < TOKEN_REFRESH_SECS
}

fn cache_key(config: &ApnsConfig<'_>) -> String {
    format!("{}/{}", config.team_id, config.key_id)
}

fn fingerprint(private_key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    private_key.hash(&mut hasher);
    hasher.finish()
}

/// Signs `{"alg":"ES256","kid":key_id}.{"iss":team_id,"iat":now}`.
pub(crate) fn sign(config: &ApnsConfig<'_>, now: u64) -> Result<String, String> {
    let key = EncodingKey::from_ec_pem(config.private_key.as_bytes())
        .map_err(|e| format!("APNs private_key is not a P-256 PKCS#8 PEM: {e}"))?;
    let mut header = Header::new(Algorithm::ES256);
    // Apple's examples carry only alg and kid; `typ` is harmless but omitted to match.
    header.typ = None;
    header.kid = Some(config.key_id.to_owned());
    encode(&header, &Claims { iss: config.team_id, iat: now }, &key).map_err(|e| format!("APNs token signing: {e}"))
}
