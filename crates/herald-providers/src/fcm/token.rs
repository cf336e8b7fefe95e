//! OAuth2 access tokens for FCM: the service account's JWT-bearer grant (RFC 7523), cached per
//! service account until shortly before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_core::delivery::Outcome;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Client;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};

use super::config::FcmConfig;
use crate::http;

/// The only scope Herald asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of RFC 7523 section 2.1.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for in the assertion; Google's maximum.
const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// A cached token is replaced this long before it expires, so no request carries a token that
/// expires in flight.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// An access token ready to send.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    /// `Bearer <token>`.
    pub authorization: HeaderValue,
    /// When to stop using it (already [`EXPIRY_MARGIN`] before the real expiry).
    pub refresh_at: Instant,
}

/// One service account's token and the lock that makes only one request fetch a new one.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<AccessToken>>,
    fetching: tokio::sync::Mutex<()>,
}

impl Slot {
    fn fresh(&self, now: Instant) -> Option<AccessToken> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|t| now < t.refresh_at).cloned()
    }
}

/// Access tokens cached per (service account, token endpoint).
#[derive(Default)]
pub(crate) struct AccessTokens {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl AccessTokens {
    /// A valid token for `config`, fetching one when none is cached. Concurrent callers wait for
    /// a single fetch instead of each asking Google. `Err` is the outcome for the delivery when
    /// no token can be had.
    pub async fn get(&self, client: &Client, config: &FcmConfig<'_>) -> Result<AccessToken, Outcome> {
        let slot = self.slot(config);
        if let Some(token) = slot.fresh(Instant::now()) {
            return Ok(token);
        }
        let _fetching = slot.fetching.lock().await;
        if let Some(token) = slot.fresh(Instant::now()) {
            return Ok(token);
        }
        let token = fetch(client, config).await?;
        *slot.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` (FCM answered 401 to it) unless another request already replaced it.
    pub fn invalidate(&self, config: &FcmConfig<'_>, stale: &AccessToken) {
        let slot = self.slot(config);
        let mut current = slot.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|t| t.authorization == stale.authorization) {
            *current = None;
        }
    }

    fn slot(&self, config: &FcmConfig<'_>) -> Arc<Slot> {
        let key = format!("{} {}", config.client_email, config.token_uri);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(key).or_default().clone()
    }
}

/// The JWT-bearer assertion's claims (Google's "Using OAuth 2.0 for Server to Server
/// Applications").
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AssertionClaims {
    pub iss: String,
    pub scope: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// Signs the RS256 assertion for `config` at unix time `now`.
pub(crate) fn assertion(config: &FcmConfig<'_>, now: u64) -> Result<String, String> {
    let key = EncodingKey::from_rsa_pem(config.private_key.as_bytes())
        .map_err(|e| format!("FCM service_account.private_key is not an RSA PEM: {e}"))?;
    let claims = AssertionClaims {
        iss: config.client_email.to_owned(),
        scope: SCOPE.to_owned(),
        aud: config.token_uri.to_owned(),
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    encode(&Header::new(Algorithm::RS256), &claims, &key).map_err(|e| format!("FCM assertion signing: {e}"))
}

/// The token endpoint's success body.
#[derive(Deserialize)]
struct Grant {
    access_token: String,
    expires_in: u64,
}

/// Exchanges a fresh assertion for an access token. A 4xx answer means the credentials are
/// wrong (a channel error); 5xx and transport failures are retried later.
async fn fetch(client: &Client, config: &FcmConfig<'_>) -> Result<AccessToken, Outcome> {
    let channel_error = |reason: String| Outcome::ChannelError { status: None, reason };
    let jwt = assertion(config, unix_now()).map_err(channel_error)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("assertion", &jwt)
        .finish();
    let request = client.post(config.token_uri).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
    let started = Instant::now();
    let response = request.send().await.map_err(|e| http::transport_failure("FCM token endpoint", e))?;
    let status = response.status().as_u16();
    let retry_after = http::retry_after(response.headers(), SystemTime::now());
    let body = http::read_body(response).await;
    if status != 200 {
        return Err(token_refused(status, &body, retry_after));
    }
    let grant: Grant = serde_json::from_slice(&body).map_err(|e| Outcome::Retry {
        status: Some(status),
        reason: format!("FCM token endpoint answered unreadable JSON: {e}"),
        retry_after: None,
    })?;
    let authorization = HeaderValue::try_from(format!("Bearer {}", grant.access_token))
        .map_err(|_| channel_error("FCM token endpoint issued a token with invalid characters".into()))?;
    // Counted from when the request started, since Google's clock started before the answer.
    let refresh_at = started + Duration::from_secs(grant.expires_in).saturating_sub(EXPIRY_MARGIN);
    Ok(AccessToken { authorization, refresh_at })
}

/// Maps a token endpoint refusal; OAuth errors look like `{"error":"invalid_grant",
/// "error_description":"Invalid JWT Signature."}`.
pub(crate) fn token_refused(status: u16, body: &[u8], retry_after: Option<Duration>) -> Outcome {
    let detail = serde_json::from_slice::<serde_json::Value>(body).ok().map(|v| {
        let field = |name: &str| v.get(name).and_then(|s| s.as_str()).unwrap_or_default().to_owned();
        [field("error"), field("error_description")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ")
    });
    let reason = match detail.filter(|d| !d.is_empty()) {
        Some(detail) => format!("FCM token endpoint {status} {detail}"),
        None => format!("FCM token endpoint answered {status}"),
    };
    match status {
        429 | 500..=599 => Outcome::Retry { status: Some(status), reason, retry_after },
        _ => Outcome::ChannelError { status: Some(status), reason },
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
