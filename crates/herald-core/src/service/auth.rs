//! Authentication of the credentials of DESIGN.md section 3. Surfaces extract the presented
//! values from their own header names and call these; the rules live here once.

use super::Service;
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::jwt::{self, ExpPolicy};
use crate::keys;
use crate::model::{Account, AccountStatus, ApiKey, KeyKind};

/// A browser or app acting for one user of one account.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    pub account: Account,
    pub external_id: String,
}

fn unauthenticated(msg: &str) -> ServiceError {
    ServiceError::Unauthenticated(msg.to_string())
}

fn scope(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Secret => "secret_key",
        KeyKind::Public => "public_key",
        KeyKind::Channel => "channel_key",
    }
}

impl Service {
    /// Authenticates an API key of `kind`: 401 when unknown or revoked, 403 when the key is of
    /// another kind or its account is paused.
    pub async fn authenticate_key(&self, presented: &str, kind: KeyKind) -> Result<(Account, ApiKey), ServiceError> {
        let (account, key) = self.lookup_key(presented).await?.ok_or_else(|| unauthenticated("invalid API key"))?;
        if key.kind != kind {
            return Err(ServiceError::forbidden(
                format!("this endpoint needs a {} key", kind.as_str()),
                Some(scope(kind)),
            ));
        }
        ensure_active(&account)?;
        Ok((account, key))
    }

    async fn lookup_key(&self, presented: &str) -> Result<Option<(Account, ApiKey)>, ServiceError> {
        let hash = keys::hash(presented);
        let candidates = self.store.find_api_keys(keys::lookup_prefix(presented)).await?;
        Ok(candidates.into_iter().find(|(key, _)| keys::ct_eq(&key.key_hash, &hash)).map(|(k, a)| (a, k)))
    }

    /// Authenticates a session token (`ses_…`).
    pub async fn authenticate_session(&self, token: &str) -> Result<ClientCtx, ServiceError> {
        let hash = keys::hash(token);
        let sessions = self.store.find_sessions(keys::lookup_prefix(token), now_ms()).await?;
        let session = sessions
            .into_iter()
            .find(|(h, _)| keys::ct_eq(h, &hash))
            .map(|(_, s)| s)
            .ok_or_else(|| unauthenticated("invalid or expired session"))?;
        let account =
            self.store.get_account(session.account_id).await?.ok_or_else(|| unauthenticated("invalid session"))?;
        ensure_active(&account)?;
        Ok(ClientCtx { account, external_id: session.external_id })
    }

    /// Authenticates a browser/app: a public key plus either a user JWT signed by one of the
    /// account's signing keys or, in dev mode only, a plain user id.
    pub async fn authenticate_client(
        &self,
        public_key: &str,
        user_token: Option<&str>,
        dev_user_id: Option<&str>,
        exp: ExpPolicy,
    ) -> Result<ClientCtx, ServiceError> {
        let (account, _) = self.authenticate_key(public_key, KeyKind::Public).await?;
        let external_id = match (user_token, dev_user_id) {
            (Some(token), _) => {
                let signing_keys = self.store.list_signing_keys(account.id).await?;
                jwt::verify_user_token(token, &signing_keys, exp).map_err(unauthenticated)?
            }
            (None, Some(user)) if account.dev_mode => user.to_string(),
            (None, Some(_)) => {
                return Err(unauthenticated("plain user ids are accepted only in dev mode; send a user token"));
            }
            (None, None) => {
                return Err(unauthenticated("a user token is required with a public key"));
            }
        };
        crate::validate::external_id("sub", &external_id).map_err(|e| unauthenticated(&e.message))?;
        Ok(ClientCtx { account, external_id })
    }
}

fn ensure_active(account: &Account) -> Result<(), ServiceError> {
    match account.status {
        AccountStatus::Active => Ok(()),
        AccountStatus::Paused => Err(ServiceError::forbidden("account is paused", None)),
    }
}
