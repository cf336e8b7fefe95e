//! Row types as the database returns them, and their conversion into the domain model.
//! Enums are stored as their wire names; an unknown name is reported as corrupt data.

use herald_core::StoreError;
use herald_core::model::*;
use herald_core::secrets::Keyring;
use serde_json::Value;

/// Parses a stored enum name.
pub(crate) fn parse<T>(value: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("unknown stored value {value:?}")))
}

/// Parses a stored JSON document.
pub(crate) fn json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: i64,
    name: String,
    status: String,
    dev_mode: bool,
    rate_limit_per_minute: Option<i64>,
    policy: String,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            id: r.id,
            name: r.name,
            status: parse(&r.status, AccountStatus::parse)?,
            dev_mode: r.dev_mode,
            rate_limit_per_minute: r.rate_limit_per_minute,
            policy: serde_json::from_str(&r.policy).map_err(|e| StoreError::Corrupt(format!("account policy: {e}")))?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    account_id: i64,
    kind: String,
    prefix: String,
    key_hash: Vec<u8>,
    channel_id: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: r.id,
            account_id: r.account_id,
            kind: parse(&r.kind, KeyKind::parse)?,
            prefix: r.prefix,
            key_hash: r.key_hash,
            channel_id: r.channel_id,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// An API key joined with its account.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyAccountRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    a_id: i64,
    a_name: String,
    a_status: String,
    a_dev_mode: bool,
    a_rate_limit_per_minute: Option<i64>,
    a_policy: String,
    a_created_at: i64,
}

impl TryFrom<KeyAccountRow> for (ApiKey, Account) {
    type Error = StoreError;
    fn try_from(r: KeyAccountRow) -> Result<Self, StoreError> {
        let account = AccountRow {
            id: r.a_id,
            name: r.a_name,
            status: r.a_status,
            dev_mode: r.a_dev_mode,
            rate_limit_per_minute: r.a_rate_limit_per_minute,
            policy: r.a_policy,
            created_at: r.a_created_at,
        };
        Ok((r.key.try_into()?, account.try_into()?))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    id: String,
    account_id: i64,
    algorithm: String,
    public_key_pem: String,
    audience: Option<String>,
    issuer: Option<String>,
    created_at: i64,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;
    fn try_from(r: SigningKeyRow) -> Result<Self, StoreError> {
        Ok(SigningKey {
            id: r.id,
            account_id: r.account_id,
            algorithm: parse(&r.algorithm, SigningAlgorithm::parse)?,
            public_key_pem: r.public_key_pem,
            audience: r.audience,
            issuer: r.issuer,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    account_id: i64,
    external_id: String,
    properties: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: r.id,
            account_id: r.account_id,
            external_id: r.external_id,
            properties: json(&r.properties)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    token_hash: Vec<u8>,
    account_id: i64,
    user_id: i64,
    external_id: String,
    expires_at: i64,
}

impl From<SessionRow> for (Vec<u8>, Session) {
    fn from(r: SessionRow) -> Self {
        (
            r.token_hash,
            Session {
                account_id: r.account_id,
                user_id: r.user_id,
                external_id: r.external_id,
                expires_at: r.expires_at,
            },
        )
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChannelRow {
    id: String,
    account_id: i64,
    name: String,
    #[sqlx(rename = "type")]
    channel_type: String,
    config: String,
    is_default: bool,
    health: String,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl ChannelRow {
    /// The channel with its config's secrets opened: there is no conversion that skips them.
    pub(crate) fn into_domain(self, secrets: &Keyring) -> Result<Channel, StoreError> {
        Ok(Channel {
            config: secrets.open_channel_config(&self.id, json(&self.config)?)?,
            id: self.id,
            account_id: self.account_id,
            name: self.name,
            channel_type: parse(&self.channel_type, ChannelType::parse)?,
            is_default: self.is_default,
            health: parse(&self.health, ChannelHealth::parse)?,
            last_error: self.last_error,
            last_error_at: self.last_error_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriptionRow {
    id: i64,
    account_id: i64,
    user_id: i64,
    external_id: String,
    channel_id: String,
    channel_type: String,
    identifier: String,
    settings: String,
    kind: String,
    environment: String,
    status: String,
    inactive_reason: Option<String>,
    muted: bool,
    created_at: i64,
    updated_at: i64,
    last_seen_at: i64,
}

impl SubscriptionRow {
    /// Converts, attaching the topics fetched separately.
    pub(crate) fn into_domain(self, topics: Vec<String>) -> Result<Subscription, StoreError> {
        Ok(Subscription {
            id: self.id,
            account_id: self.account_id,
            user_id: self.user_id,
            external_id: self.external_id,
            channel_id: self.channel_id,
            channel_type: parse(&self.channel_type, ChannelType::parse)?,
            identifier: self.identifier,
            settings: json(&self.settings)?,
            kind: parse(&self.kind, SubscriptionKind::parse)?,
            environment: parse(&self.environment, Environment::parse)?,
            status: parse(&self.status, SubscriptionStatus::parse)?,
            inactive_reason: self.inactive_reason,
            muted: self.muted,
            topics,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_seen_at: self.last_seen_at,
        })
    }

    pub(crate) fn id(&self) -> i64 {
        self.id
    }
}
