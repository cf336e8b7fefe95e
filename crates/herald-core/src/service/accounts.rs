//! Accounts: created and paused by the operator.

use serde::Serialize;

use super::{Service, credentials::mint_key, paginate};
use crate::error::{FieldError, ServiceError};
use crate::model::{Account, AccountPolicy, KeyKind, Page};
use crate::store::AccountPatch;
use crate::validate::{self, MAX_NAME, required_str};

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

    /// The account's client policy with the given changes applied and validated, or `None`
    /// when nothing changes.
    pub async fn account_policy_patch(
        &self,
        id: i64,
        reserved_topic_prefixes: Option<Vec<String>>,
        client_topic_patterns: Option<Option<Vec<String>>>,
        allowed_origins: Option<Option<Vec<String>>>,
    ) -> Result<Option<AccountPolicy>, ServiceError> {
        if reserved_topic_prefixes.is_none() && client_topic_patterns.is_none() && allowed_origins.is_none() {
            return Ok(None);
        }
        let mut errors = Vec::new();
        let mut origins = Vec::new();
        for (i, origin) in allowed_origins.iter().flatten().flatten().enumerate() {
            // An origin is scheme://host[:port], exactly as browsers send it in `Origin`.
            let parsed = url::Url::parse(origin).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
            match parsed.map(|u| u.origin().ascii_serialization()) {
                Some(o) if o.eq_ignore_ascii_case(origin.trim_end_matches('/')) => origins.push(o),
                _ => errors.push(FieldError::new(
                    format!("allowed_origins[{i}]"),
                    "invalid",
                    "an origin is scheme://host[:port], e.g. https://app.example.com",
                )),
            }
        }
        if origins.len() > MAX_POLICY_ENTRIES {
            errors.push(FieldError::new(
                "allowed_origins",
                "too_long",
                format!("at most {MAX_POLICY_ENTRIES} entries"),
            ));
        }
        let lists = [
            ("reserved_topic_prefixes", reserved_topic_prefixes.as_ref()),
            ("client_topic_patterns", client_topic_patterns.as_ref().and_then(Option::as_ref)),
        ];
        for (field, list) in lists {
            let Some(list) = list else { continue };
            if list.len() > MAX_POLICY_ENTRIES {
                errors.push(FieldError::new(field, "too_long", format!("at most {MAX_POLICY_ENTRIES} entries")));
            }
            for (i, entry) in list.iter().enumerate() {
                // Topic characters plus `*`, so every entry can match a valid topic.
                if let Err(e) = validate::topic_name(&format!("{field}[{i}]"), &entry.replace('*', "a")) {
                    errors.push(e);
                }
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let mut policy =
            self.store.get_account(id).await?.ok_or_else(|| ServiceError::not_found("account", id))?.policy;
        if let Some(prefixes) = reserved_topic_prefixes {
            policy.reserved_topic_prefixes = prefixes;
        }
        if let Some(patterns) = client_topic_patterns {
            policy.client_topic_patterns = patterns;
        }
        if let Some(list) = allowed_origins {
            policy.allowed_origins = list.map(|_| origins);
        }
        Ok(Some(policy))
    }
}

/// Most entries in one policy list.
const MAX_POLICY_ENTRIES: usize = 100;
