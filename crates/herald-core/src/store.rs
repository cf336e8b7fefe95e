//! The storage seam: one trait, implemented for SQLite and PostgreSQL in `herald-store`.
//! SQL lives only behind it. Every method that writes more than one row does so in one
//! transaction, so a failed request leaves nothing behind.

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::Millis;
use crate::error::StoreError;
use crate::model::*;

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub status: Option<AccountStatus>,
    pub dev_mode: Option<bool>,
    /// `Some(None)` resets to the server default.
    pub rate_limit_per_minute: Option<Option<i64>>,
    /// Replaces the whole client policy when given.
    pub policy: Option<AccountPolicy>,
}

/// A key to insert (already hashed).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub kind: KeyKind,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub channel_id: Option<String>,
}

/// A channel to insert; `is_default` is decided by the store inside the transaction (the first
/// live channel of a type becomes its account's default).
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub channel_type: ChannelType,
    pub config: Value,
}

/// Changes to a channel; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub config: Option<Value>,
    pub make_default: bool,
}

/// A validated registration, ready for the upsert.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub account_id: i64,
    pub external_id: String,
    pub channel_id: String,
    /// The caller's dedup key; the address unless the caller chose one.
    pub identifier: String,
    /// The canonical device address (endpoint or token): one device, one subscription per user.
    pub address: String,
    pub settings: Value,
    pub kind: SubscriptionKind,
    pub environment: Environment,
    /// Replaces the topic set when given.
    pub topics: Option<Vec<String>>,
}

/// Changes to a subscription; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub muted: Option<bool>,
    pub topics: Option<Vec<String>>,
    pub status: Option<SubscriptionStatus>,
}

/// Which subscriptions to list. `account_id` always applies.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    pub account_id: i64,
    pub external_id: Option<String>,
    pub channel_id: Option<String>,
    pub status: Option<SubscriptionStatus>,
    pub topic: Option<String>,
    /// Return ids greater than this.
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// Result of an upsert: the row, and whether it was created.
#[derive(Debug, Clone)]
pub struct Upserted<T> {
    pub value: T,
    pub created: bool,
    /// Subscriptions of other users this registration took the device from (`moved`).
    pub moved: Vec<i64>,
}

/// Herald's storage.
#[async_trait]
pub trait Store:
    crate::outbox::Outbox
    + crate::webhooks::WebhookStore
    + crate::compat_store::CompatStore
    + crate::pairing_store::PairingStore
    + crate::receipts::ReceiptStore
    + crate::cluster::NodeStore
    + crate::metrics::MetricsStore
    + Send
    + Sync
    + 'static
{
    /// True when the database answers and migrations are applied.
    async fn ready(&self) -> StoreResult<()>;

    /// Re-encrypts every stored secret still under the previous master key (or in clear) with
    /// the current one (`herald secrets rotate`).
    async fn rotate_secrets(&self) -> StoreResult<crate::secrets::ResealReport>;

    // accounts
    async fn create_account(&self, name: &str, dev_mode: bool, keys: &[NewApiKey]) -> StoreResult<Account>;
    async fn get_account(&self, id: i64) -> StoreResult<Option<Account>>;
    async fn list_accounts(&self, after_id: Option<i64>, limit: u32) -> StoreResult<Vec<Account>>;
    async fn update_account(&self, id: i64, patch: &AccountPatch) -> StoreResult<Option<Account>>;

    // API keys
    async fn insert_api_key(&self, account_id: i64, key: &NewApiKey) -> StoreResult<ApiKey>;
    /// Live (unrevoked) keys with this lookup prefix, with their accounts.
    async fn find_api_keys(&self, prefix: &str) -> StoreResult<Vec<(ApiKey, Account)>>;
    async fn list_api_keys(&self, account_id: i64) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; false when the account has no such live key.
    async fn revoke_api_key(&self, account_id: i64, id: &str) -> StoreResult<bool>;

    // signing keys
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()>;
    async fn list_signing_keys(&self, account_id: i64) -> StoreResult<Vec<SigningKey>>;
    async fn delete_signing_key(&self, account_id: i64, id: &str) -> StoreResult<bool>;

    // users and sessions
    async fn upsert_user(
        &self,
        account_id: i64,
        external_id: &str,
        properties: Option<&Value>,
    ) -> StoreResult<Upserted<User>>;
    async fn get_user(&self, account_id: i64, external_id: &str) -> StoreResult<Option<User>>;
    /// Deletes the user with their subscriptions, topics and sessions; false when unknown.
    async fn delete_user(&self, account_id: i64, external_id: &str) -> StoreResult<bool>;
    /// Creates the session's user when needed.
    async fn insert_session(
        &self,
        account_id: i64,
        external_id: &str,
        prefix: &str,
        hash: &[u8],
        expires_at: Millis,
    ) -> StoreResult<()>;
    /// Unexpired sessions with this lookup prefix, with their hashes.
    async fn find_sessions(&self, prefix: &str, now: Millis) -> StoreResult<Vec<(Vec<u8>, Session)>>;
    async fn delete_session(&self, account_id: i64, hash: &[u8]) -> StoreResult<bool>;

    // channels
    async fn insert_channel(&self, channel: &NewChannel) -> StoreResult<Channel>;
    async fn get_channel(&self, account_id: i64, id: &str) -> StoreResult<Option<Channel>>;
    async fn list_channels(&self, account_id: i64) -> StoreResult<Vec<Channel>>;
    async fn default_channel(&self, account_id: i64, channel_type: ChannelType) -> StoreResult<Option<Channel>>;
    async fn update_channel(&self, account_id: i64, id: &str, patch: &ChannelPatch) -> StoreResult<Option<Channel>>;
    /// Soft-deletes a channel, deactivates its subscriptions (reason `channel_deleted`) and hands
    /// the default role to the oldest remaining channel of its type.
    async fn delete_channel(&self, account_id: i64, id: &str) -> StoreResult<bool>;

    // subscriptions
    /// Insert-or-update on (channel, identifier, user) or else (channel, address, user), folding
    /// a second row of the user for the same device into the one kept; then the device-ownership
    /// rule: the same (channel, address) active for any other user becomes inactive (`moved`).
    async fn upsert_subscription(&self, sub: &NewSubscription) -> StoreResult<Upserted<Subscription>>;
    async fn get_subscription(&self, account_id: i64, id: i64) -> StoreResult<Option<Subscription>>;
    async fn list_subscriptions(&self, filter: &SubscriptionFilter) -> StoreResult<Vec<Subscription>>;
    async fn update_subscription(
        &self,
        account_id: i64,
        id: i64,
        patch: &SubscriptionPatch,
    ) -> StoreResult<Option<Subscription>>;
    async fn delete_subscription(&self, account_id: i64, id: i64) -> StoreResult<bool>;
    async fn add_topic(&self, account_id: i64, subscription_id: i64, topic: &str) -> StoreResult<bool>;
    async fn remove_topic(&self, account_id: i64, subscription_id: i64, topic: &str) -> StoreResult<bool>;
}
