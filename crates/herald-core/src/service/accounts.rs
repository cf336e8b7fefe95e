//! Accounts: created and paused by the operator.

use serde::Serialize;

use super::{Service, credentials::mint_key, paginate};
use crate::error::ServiceError;
use crate::model::{Account, KeyKind, Page};
use crate::store::AccountPatch;
use crate::validate::{MAX_NAME, required_str};

/// A new account with its first secret and public keys, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountCreated {
    #[serde(flatten)]
    pub account: Account,
    pub secret_key: String,
    pub public_key: String,
}

impl Service {
    /// Creates an account and mints its first secret and public keys, in one transaction.
    #[tracing::instrument(skip_all)]
    pub async fn create_account(&self, name: &str, dev_mode: bool) -> Result<AccountCreated, ServiceError> {
        let mut errors = Vec::new();
        required_str(&mut errors, "name", Some(name), MAX_NAME);
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let (secret, secret_row) = mint_key(KeyKind::Secret, None);
        let (public, public_row) = mint_key(KeyKind::Public, None);
        let account = self.store.create_account(name, dev_mode, &[secret_row, public_row]).await?;
        Ok(AccountCreated { account, secret_key: secret, public_key: public })
    }

    /// One account.
    pub async fn get_account(&self, id: i64) -> Result<Account, ServiceError> {
        self.store.get_account(id).await?.ok_or_else(|| ServiceError::not_found("account", id))
    }

    /// Accounts in id order.
    pub async fn list_accounts(&self, after: Option<i64>, limit: u32) -> Result<Page<Account>, ServiceError> {
        let rows = self.store.list_accounts(after, limit + 1).await?;
        Ok(paginate(rows, limit, |a| a.id))
    }

    /// Pauses or resumes an account, switches its dev mode, or sets its rate limit.
    #[tracing::instrument(skip_all, fields(account = id))]
    pub async fn update_account(&self, id: i64, patch: AccountPatch) -> Result<Account, ServiceError> {
        if let Some(Some(limit)) = patch.rate_limit_per_minute
            && !(1..=1_000_000).contains(&limit)
        {
            return Err(ServiceError::invalid(
                "rate_limit_per_minute",
                "out_of_range",
                "rate_limit_per_minute must be 1-1000000",
            ));
        }
        self.store.update_account(id, &patch).await?.ok_or_else(|| ServiceError::not_found("account", id))
    }
}
