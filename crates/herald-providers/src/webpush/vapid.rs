//! RFC 8292 VAPID: identifying the application server to push services.
//!
//! Each request carries `Authorization: vapid t=<JWT>, k=<public key>`, where
//! the JWT is ES256-signed and scoped to the push service's origin (`aud`).
//! Signing is cheap but not free, and push services accept tokens valid for
//! up to 24 h, so [`VapidCache`] reuses one token per audience for most of its
//! 12 h lifetime.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// Lifetime of a freshly signed token (RFC 8292 allows at most 24 h).
pub const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;

/// A cached token is replaced once it is this close to expiry, so a request
/// in flight (or a push service with a skewed clock) never sees an expired one.
pub const REFRESH_MARGIN_SECS: u64 = 3600;

/// Bound on cached audiences. Endpoints are limited to allow-listed push
/// services, but suffix rules such as `*.notify.windows.com` admit many hosts,
/// so the map must not grow without limit.
const MAX_CACHED_AUDIENCES: usize = 1024;

/// base64url of `{"typ":"JWT","alg":"ES256"}`; constant, so encoded once.
const JWT_HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9";

/// Errors from VAPID key handling and signing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    /// The private key is not a valid P-256 key.
    #[error("invalid VAPID key: {0}")]
    InvalidKey(String),
    /// The subject is not a `mailto:` or `https:` URI (RFC 8292 section 2.1).
    #[error("VAPID subject must be a mailto: or https: URI")]
    InvalidSubject,
    /// The crypto library failed.
    #[error("internal cryptographic failure")]
    Internal,
}

/// A VAPID signing key (ECDSA P-256).
pub struct VapidKey {
    key_pair: EcdsaKeyPair,
    public_b64: String,
}

/// Shows only the public key; the private key never reaches logs.
impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey").field("public", &self.public_b64).finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Loads a key from an unencrypted PKCS#8 v1 DER document (as produced by
    /// [`herald_core::keys::generate_vapid`], base64-decoded).
    ///
    /// # Errors
    /// [`VapidError::InvalidKey`] if the document is not a P-256 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, VapidError> {
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| VapidError::InvalidKey(e.to_string()))?;
        Ok(Self::from_key_pair(key_pair))
    }

    /// Loads a key from its raw form: the 32-byte big-endian private scalar
    /// and the 65-byte uncompressed public point. This is the format of keys
    /// made by common Web Push libraries (e.g. `web-push generate-vapid-keys`),
    /// so existing applications can keep their key.
    ///
    /// # Errors
    /// [`VapidError::InvalidKey`] if the parts are malformed or do not match.
    pub fn from_raw(private_scalar: &[u8], public_point: &[u8]) -> Result<Self, VapidError> {
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            private_scalar,
            public_point,
        )
        .map_err(|e| VapidError::InvalidKey(e.to_string()))?;
        Ok(Self::from_key_pair(key_pair))
    }

    fn from_key_pair(key_pair: EcdsaKeyPair) -> Self {
        let public_b64 = URL_SAFE_NO_PAD.encode(key_pair.public_key().as_ref());
        Self { key_pair, public_b64 }
    }

    /// The 65-byte uncompressed public key.
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        self.key_pair.public_key().as_ref()
    }

    /// The public key as base64url without padding, as browsers expect it for
    /// `applicationServerKey` and push services in the `k=` parameter.
    #[must_use]
    pub fn public_key_b64(&self) -> String {
        self.public_b64.clone()
    }

    /// The raw 32-byte private scalar, for exporting a key in the format of
    /// [`VapidKey::from_raw`].
    ///
    /// # Errors
    /// [`VapidError::Internal`] if the crypto library fails.
    pub fn private_scalar(&self) -> Result<Vec<u8>, VapidError> {
        let bin = self.key_pair.private_key().as_be_bytes().map_err(|_| VapidError::Internal)?;
        Ok(bin.as_ref().to_vec())
    }

    /// Builds the `Authorization` header value
    /// `vapid t=<JWT>, k=<public key>` for one audience.
    ///
    /// `audience_origin` is the push service's origin (see [`audience_origin`]),
    /// `subject` a `mailto:` or `https:` contact URI, `expires_unix` the `exp`
    /// claim in seconds since the Unix epoch.
    ///
    /// # Errors
    /// [`VapidError::InvalidSubject`] for a bad subject,
    /// [`VapidError::Internal`] if signing fails.
    pub fn authorization(&self, audience_origin: &str, subject: &str, expires_unix: u64) -> Result<String, VapidError> {
        let jwt = self.sign_jwt(audience_origin, subject, expires_unix)?;
        Ok(format!("vapid t={jwt}, k={}", self.public_b64))
    }

    fn sign_jwt(&self, aud: &str, sub: &str, exp: u64) -> Result<String, VapidError> {
        validate_subject(sub)?;
        let claims = serde_json::to_vec(&Claims { aud, exp, sub }).map_err(|_| VapidError::Internal)?;
        let signing_input = format!("{JWT_HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(claims));
        // The FIXED algorithm yields the raw r || s encoding that JWS ES256
        // requires (RFC 7518 section 3.4), not ASN.1 DER.
        let signature =
            self.key_pair.sign(&SystemRandom::new(), signing_input.as_bytes()).map_err(|_| VapidError::Internal)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// JWT claims of RFC 8292 section 2; field order is the serialisation order.
#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

/// Push services (Apple's in particular) reject tokens whose `sub` is not a
/// contact URI, so catch that locally with a clear error.
fn validate_subject(subject: &str) -> Result<(), VapidError> {
    let lower = subject.to_ascii_lowercase();
    let rest = lower.strip_prefix("mailto:").or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => Ok(()),
        _ => Err(VapidError::InvalidSubject),
    }
}

/// The `aud` of a VAPID token for a push endpoint: `scheme://host[:port]`,
/// with the scheme's default port omitted (the WHATWG origin serialisation).
#[must_use]
pub fn audience_origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Per-audience cache of `Authorization` header values for one key and subject.
///
/// Build one per channel (VAPID key); a changed key or subject needs a new cache.
#[derive(Debug)]
pub struct VapidCache {
    key: VapidKey,
    subject: String,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    header: String,
    expires_unix: u64,
}

impl CachedToken {
    fn is_fresh(&self, now_unix: u64) -> bool {
        now_unix.saturating_add(REFRESH_MARGIN_SECS) < self.expires_unix
    }
}

impl VapidCache {
    /// Creates a cache signing with `key` and the contact URI `subject`.
    ///
    /// # Errors
    /// [`VapidError::InvalidSubject`] if `subject` is not `mailto:` or `https:`.
    pub fn new(key: VapidKey, subject: impl Into<String>) -> Result<Self, VapidError> {
        let subject = subject.into();
        validate_subject(&subject)?;
        Ok(Self { key, subject, tokens: Mutex::new(HashMap::new()) })
    }

    /// The signing key.
    #[must_use]
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The `Authorization` header value for `audience_origin`, at the current time.
    ///
    /// # Errors
    /// [`VapidError::Internal`] if signing fails.
    pub fn authorization(&self, audience_origin: &str) -> Result<String, VapidError> {
        self.authorization_at(audience_origin, unix_now())
    }

    /// As [`VapidCache::authorization`], with an explicit clock (for tests).
    /// A cached token is reused while more than [`REFRESH_MARGIN_SECS`] of its
    /// [`TOKEN_LIFETIME_SECS`] remain.
    ///
    /// # Errors
    /// [`VapidError::Internal`] if signing fails.
    pub fn authorization_at(&self, audience_origin: &str, now_unix: u64) -> Result<String, VapidError> {
        if let Some(header) = self.lookup(audience_origin, now_unix) {
            return Ok(header);
        }
        // Sign outside the lock so workers for other audiences do not wait.
        // Two workers may race and both sign; both tokens are valid, last wins.
        let expires_unix = now_unix.saturating_add(TOKEN_LIFETIME_SECS);
        let header = self.key.authorization(audience_origin, &self.subject, expires_unix)?;
        self.store(audience_origin, &header, expires_unix, now_unix);
        Ok(header)
    }

    fn lookup(&self, audience: &str, now_unix: u64) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.get(audience).filter(|t| t.is_fresh(now_unix)).map(|t| t.header.clone())
    }

    fn store(&self, audience: &str, header: &str, expires_unix: u64, now_unix: u64) {
        // A poisoned lock only means another thread panicked mid-update of a
        // cache; every entry is still a complete, valid token.
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MAX_CACHED_AUDIENCES && !tokens.contains_key(audience) {
            tokens.retain(|_, t| t.is_fresh(now_unix));
            if tokens.len() >= MAX_CACHED_AUDIENCES {
                evict_soonest_expiry(&mut tokens);
            }
        }
        let token = CachedToken { header: header.to_owned(), expires_unix };
        tokens.insert(audience.to_owned(), token);
    }
}

fn evict_soonest_expiry(tokens: &mut HashMap<String, CachedToken>) {
    let victim = tokens.iter().min_by_key(|(_, t)| t.expires_unix).map(|(aud, _)| aud.clone());
    if let Some(aud) = victim {
        tokens.remove(&aud);
    }
}

fn unix_now() -> u64 {
    // A clock before 1970 is a broken host; 0 then yields tokens that push
    // services reject as expired, which surfaces the problem.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
