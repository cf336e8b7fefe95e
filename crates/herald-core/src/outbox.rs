//! The storage seam of delivery: notifications, the delivery outbox, fan-out, the inbox.
//! Implemented next to [`crate::store::Store`] for both engines.

use async_trait::async_trait;
use serde_json::Value;

use crate::clock::Millis;
use crate::delivery::Outcome;
use crate::model::*;
use crate::store::StoreResult;

/// How long an `Idempotency-Key` replays its first response: 24 hours.
pub const IDEMPOTENCY_WINDOW_MS: Millis = 24 * 3600 * 1000;

/// A notification to insert.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: String,
    pub account_id: i64,
    pub target: Value,
    pub content: Value,
    pub options: Value,
    pub channel_filter: Option<Vec<String>>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub response: Value,
    pub broadcast: bool,
    pub created_at: Millis,
    pub send_at: Millis,
    pub expires_at: Millis,
}

/// One delivery row to insert with a notification.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub subscription_id: i64,
    pub user_id: i64,
    pub channel_id: String,
    pub channel_type: ChannelType,
    /// Muted subscriptions get a `skipped_muted` row instead of a push.
    pub muted: bool,
}

/// A delivery claimed by a worker, with what it needs to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The lease token this row is held under (results must quote it).
    pub lease: String,
    pub delivery_id: i64,
    pub message_id: String,
    pub notification_id: String,
    pub account_id: i64,
    pub attempts: i64,
    pub channel_id: String,
    pub subscription_id: i64,
    pub identifier: String,
    pub settings: String,
    pub kind: String,
    pub environment: String,
    /// False when the subscription was deactivated after the row was queued.
    pub subscription_active: bool,
    pub content: String,
    pub options: String,
    pub expires_at: Millis,
    /// When the notification was due to go out (accepted, or its `send_at`): delivery latency
    /// is measured from here.
    pub due_at: Millis,
}

/// What to write back for one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    /// The lease the row was claimed under; a result for an expired lease is dropped.
    pub lease: String,
    pub delivery_id: i64,
    pub account_id: i64,
    pub notification_id: String,
    pub subscription_id: i64,
    pub channel_id: String,
    pub status: DeliveryStatus,
    pub provider_status: Option<u16>,
    pub provider_reason: Option<String>,
    pub provider_message_id: Option<String>,
    /// For `queued` (a retry): when to try again.
    pub next_attempt_at: Millis,
    /// The outcome, so the store can deactivate a gone subscription or mark a channel unhealthy.
    pub outcome: Option<Outcome>,
}

/// Progress of one fan-out step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutStep {
    pub added: u64,
    pub done: bool,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub account_id: i64,
    pub notification_id: Option<String>,
    pub subscription_id: Option<i64>,
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// Storage for notifications and their deliveries.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// The stored request hash and response of a send with this idempotency key made at or
    /// after `since`.
    async fn find_idempotent(&self, account_id: i64, key: &str, since: Millis) -> StoreResult<Option<(String, Value)>>;
    /// Writes a notification with its delivery and inbox rows in one transaction. A key older
    /// than [`IDEMPOTENCY_WINDOW_MS`] is released first; a live repeated key is a `Conflict`.
    async fn insert_notification(
        &self,
        n: &NewNotification,
        deliveries: &[NewDelivery],
        inbox_users: &[i64],
    ) -> StoreResult<()>;
    async fn get_notification(&self, account_id: i64, id: &str) -> StoreResult<Option<Notification>>;
    /// Newest first; `before` is a creation-time cursor (`created_at`, `id`).
    async fn list_notifications(
        &self,
        account_id: i64,
        before: Option<(Millis, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;
    async fn delivery_counts(&self, notification_id: &str) -> StoreResult<Vec<(DeliveryStatus, i64)>>;
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<Delivery>>;
    /// Active subscriptions (with their users' internal ids) of these external users.
    async fn subscriptions_of_users(&self, account_id: i64, external_ids: &[String]) -> StoreResult<Vec<Subscription>>;

    /// Broadcasts whose fan-out is not finished, oldest first.
    async fn pending_fanouts(&self, limit: u32) -> StoreResult<Vec<Notification>>;
    /// Expands up to `batch` more subscriptions of a broadcast into delivery rows, advancing
    /// its cursor in the same transaction.
    async fn fanout_step(&self, notification: &Notification, batch: u32) -> StoreResult<FanoutStep>;

    /// Leases up to `limit` due deliveries under the token `lease` (`<owner>:<n>`, unique per
    /// claim) until `now + lease_ms`; rows whose lease expired (a crashed worker) are due again.
    async fn claim_deliveries(&self, lease: &str, now: Millis, lease_ms: i64, limit: u32) -> StoreResult<Vec<Claimed>>;
    /// Writes results in one transaction, only for rows still held under their lease.
    async fn record_results(&self, results: &[DeliveryResult]) -> StoreResult<()>;
    /// Puts the rows leased by `owner` (any of its lease tokens) back in the queue (graceful shutdown).
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;
    /// A signal each time another node queues work, where the engine supports it (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` means rely on polling (SQLite has a single node anyway).
    async fn work_signals(&self) -> Option<tokio::sync::mpsc::Receiver<()>>;
    /// The earliest time a queued or leased row becomes due, if any.
    async fn next_due_at(&self) -> StoreResult<Option<Millis>>;

    async fn list_inbox(
        &self,
        account_id: i64,
        external_id: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<InboxItem>>;
    /// Marks an inbox entry read (idempotent); `None` when the user has no such notification.
    async fn mark_read(
        &self,
        account_id: i64,
        external_id: &str,
        notification_id: &str,
        now: Millis,
    ) -> StoreResult<Option<InboxItem>>;
}
