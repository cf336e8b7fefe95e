//! API keys, user-JWT signing keys and sessions.

use serde::Serialize;

use super::{Service, new_id};
use crate::clock::{Millis, now_ms, serde_rfc3339};
use crate::error::{FieldError, ServiceError};
use crate::jwt;
use crate::keys::{self, mint};
use crate::model::{ApiKey, KeyKind, SigningAlgorithm, SigningKey};
use crate::store::NewApiKey;
use crate::validate::{self, MAX_NAME};

/// Default session lifetime.
pub const DEFAULT_SESSION_TTL: i64 = 24 * 3600;
/// Longest session lifetime.
pub const MAX_SESSION_TTL: i64 = 90 * 24 * 3600;
/// Longest PEM accepted for a signing key.
const MAX_PEM: usize = 16 * 1024;

/// A freshly minted key, the only time its full value is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    pub meta: ApiKey,
    /// The full key. Store it now: Herald keeps only its hash.
    pub key: String,
}

/// A new session token for a user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    /// The session token (`ses_…`), shown once.
    pub session_id: String,
    pub user: String,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Millis,
}

/// Mints a key of `kind` and the row that stores it.
pub(crate) fn mint_key(kind: KeyKind, channel_id: Option<String>) -> (String, NewApiKey) {
    let secret = mint(kind.prefix());
    let row = NewApiKey { id: new_id(), kind, prefix: secret.prefix, hash: secret.hash, channel_id };
    (secret.full, row)
}

impl Service {
    /// Mints an API key; channel keys are bound to one of the account's channels.
    #[tracing::instrument(skip_all, fields(account = account_id, kind = %kind))]
    pub async fn create_key(
        &self,
        account_id: i64,
        kind: KeyKind,
        channel_id: Option<&str>,
    ) -> Result<KeyCreated, ServiceError> {
        let channel_id = match (kind, channel_id) {
            (KeyKind::Channel, None) => {
                return Err(ServiceError::Validation(vec![FieldError::required("channel_id")]));
            }
            (KeyKind::Channel, Some(id)) => Some(self.channel(account_id, id).await?.id),
            (_, Some(_)) => {
                return Err(ServiceError::invalid("channel_id", "invalid", "channel_id applies only to channel keys"));
            }
            (_, None) => None,
        };
        let (full, row) = mint_key(kind, channel_id);
        let meta = self.store.insert_api_key(account_id, &row).await?;
        Ok(KeyCreated { meta, key: full })
    }

    /// The account's keys, prefixes only.
    pub async fn list_keys(&self, account_id: i64) -> Result<Vec<ApiKey>, ServiceError> {
        Ok(self.store.list_api_keys(account_id).await?)
    }

    /// Revokes a key at once.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn revoke_key(&self, account_id: i64, id: &str) -> Result<(), ServiceError> {
        match self.store.revoke_api_key(account_id, id).await? {
            true => Ok(()),
            false => Err(ServiceError::not_found("key", id)),
        }
    }

    /// Registers a public key that verifies the account's user JWTs.
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn create_signing_key(
        &self,
        account_id: i64,
        algorithm: SigningAlgorithm,
        public_key_pem: &str,
        audience: Option<String>,
        issuer: Option<String>,
    ) -> Result<SigningKey, ServiceError> {
        let mut errors = Vec::new();
        for (field, value) in [("audience", &audience), ("issuer", &issuer)] {
            if let Some(v) = value {
                validate::required_str(&mut errors, field, Some(v), MAX_NAME);
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        if public_key_pem.is_empty() {
            return Err(ServiceError::Validation(vec![FieldError::required("public_key_pem")]));
        }
        if public_key_pem.len() > MAX_PEM {
            return Err(ServiceError::Validation(vec![FieldError::too_long("public_key_pem", MAX_PEM)]));
        }
        if public_key_pem.contains("PRIVATE KEY") {
            return Err(ServiceError::invalid(
                "public_key_pem",
                "invalid",
                "this is a private key; send the public key only",
            ));
        }
        if jwt::decoding_key(algorithm, public_key_pem).is_err() || keys::pem_to_der(public_key_pem).is_none() {
            return Err(ServiceError::invalid(
                "public_key_pem",
                "invalid",
                format!("not a PEM public key for {algorithm}"),
            ));
        }
        let key = SigningKey {
            id: new_id(),
            account_id,
            algorithm,
            public_key_pem: public_key_pem.to_string(),
            audience,
            issuer,
            created_at: now_ms(),
        };
        self.store.insert_signing_key(&key).await?;
        Ok(key)
    }

    /// The account's signing keys.
    pub async fn list_signing_keys(&self, account_id: i64) -> Result<Vec<SigningKey>, ServiceError> {
        Ok(self.store.list_signing_keys(account_id).await?)
    }

    /// Deletes a signing key; tokens it signed stop verifying at once.
    pub async fn delete_signing_key(&self, account_id: i64, id: &str) -> Result<(), ServiceError> {
        match self.store.delete_signing_key(account_id, id).await? {
            true => Ok(()),
            false => Err(ServiceError::not_found("signing_key", id)),
        }
    }

    /// Mints a session for a user (created if new).
    #[tracing::instrument(skip_all, fields(account = account_id))]
    pub async fn create_session(
        &self,
        account_id: i64,
        user: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<SessionCreated, ServiceError> {
        let mut errors = Vec::new();
        if let Err(e) = crate::validate::external_id("user", user) {
            errors.push(e);
        }
        let ttl = ttl_seconds.unwrap_or(DEFAULT_SESSION_TTL);
        if !(1..=MAX_SESSION_TTL).contains(&ttl) {
            errors.push(FieldError::new(
                "ttl_seconds",
                "out_of_range",
                format!("ttl_seconds must be 1-{MAX_SESSION_TTL}"),
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let token = mint("ses_");
        let expires_at = now_ms() + ttl * 1000;
        self.store.insert_session(account_id, user, &token.prefix, &token.hash, expires_at).await?;
        Ok(SessionCreated { session_id: token.full, user: user.to_string(), expires_at })
    }

    /// Ends a session; unknown tokens (or another account's) are 404.
    pub async fn delete_session(&self, account_id: i64, token: &str) -> Result<(), ServiceError> {
        match self.store.delete_session(account_id, &keys::hash(token)).await? {
            true => Ok(()),
            false => Err(ServiceError::not_found("session", keys::lookup_prefix(token))),
        }
    }
}
