//! Webhooks: the account's signed event endpoints (Standard Webhooks) and bnotify-style channel
//! callbacks, both delivered through one durable outbox (`webhook_deliveries`) with leases,
//! retries and backoff — the same at-least-once discipline as push deliveries.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::{Millis, rfc3339, serde_rfc3339};
use crate::store::StoreResult;

/// Every event type a webhook may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "subscription.created",
    "subscription.updated",
    "subscription.deactivated",
    "subscription.deleted",
    "notification.delivered",
    "notification.failed",
    "notification.displayed",
    "notification.clicked",
    "webhook.disabled",
];

/// An endpoint failing this long without a success is disabled.
pub const DISABLE_AFTER_MS: Millis = 5 * 24 * 3600 * 1000;

/// A webhook endpoint of an account.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: String,
    #[serde(skip)]
    pub account_id: i64,
    pub url: String,
    pub events: Vec<String>,
    /// The signing secret; only ever shown when created or rotated.
    #[serde(skip)]
    pub secret: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    #[serde(serialize_with = "serde_rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Millis>,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
    #[serde(serialize_with = "serde_rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Millis,
}

/// Changes to a webhook; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// A new signing secret (rotation).
    pub secret: Option<String>,
}

/// Something that happened, to be delivered to the account's interested endpoints.
#[derive(Debug, Clone)]
pub struct Event {
    pub account_id: i64,
    pub event_type: crate::events::EventType,
    /// The Standard Webhooks body: `{"type", "timestamp", "data"}`.
    pub payload: Value,
    /// For subscription events: the channel, whose `callback_url` (bnotify) also hears of
    /// subscribes and unsubscribes, with this body.
    pub callback: Option<(String, Value)>,
}

impl Event {
    /// An event with the Standard Webhooks envelope.
    pub fn new(account_id: i64, event_type: crate::events::EventType, at: Millis, data: Value) -> Event {
        Event {
            account_id,
            event_type,
            payload: json!({"type": event_type.as_str(), "timestamp": rfc3339(at), "data": data}),
            callback: None,
        }
    }
}

/// A hook claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedHook {
    pub lease: String,
    pub id: i64,
    pub account_id: i64,
    /// `webhook` or `callback`.
    pub kind: String,
    pub webhook_id: Option<String>,
    pub event_id: String,
    pub payload: String,
    pub attempts: i64,
    /// Where to POST: the webhook's URL or the channel's `callback_url` (empty if gone).
    pub url: String,
    /// Webhook: the signing secret. Callback: the `Authorization: Basic` credential.
    pub secret: String,
    pub created_at: Millis,
}

/// What to write back for a hook.
#[derive(Debug, Clone)]
pub struct HookResult {
    pub lease: String,
    pub id: i64,
    pub webhook_id: Option<String>,
    pub delivered: bool,
    /// Retry at this time; `None` when final (delivered, or given up).
    pub next_attempt_at: Option<Millis>,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Storage of webhooks and their outbox.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_webhook(&self, hook: &Webhook) -> StoreResult<()>;
    async fn get_webhook(&self, account_id: i64, id: &str) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(&self, account_id: i64) -> StoreResult<Vec<Webhook>>;
    async fn update_webhook(&self, account_id: i64, id: &str, patch: &WebhookPatch) -> StoreResult<Option<Webhook>>;
    async fn delete_webhook(&self, account_id: i64, id: &str) -> StoreResult<bool>;
    /// Accounts with at least one enabled webhook or channel callback (to skip work for others).
    async fn accounts_listening(&self) -> StoreResult<Vec<i64>>;
    /// Queues each event for every enabled webhook of its account that subscribes to its type,
    /// and for its channel's callback, in one transaction.
    async fn enqueue_events(&self, events: &[Event]) -> StoreResult<u64>;
    /// Leases due hooks, like `claim_deliveries`.
    async fn claim_hooks(&self, lease: &str, now: Millis, lease_ms: i64, limit: u32) -> StoreResult<Vec<ClaimedHook>>;
    /// Writes results; a webhook failing for [`DISABLE_AFTER_MS`] is disabled (and returned,
    /// so a `webhook.disabled` event can be emitted).
    async fn record_hooks(&self, results: &[HookResult], now: Millis) -> StoreResult<Vec<Webhook>>;
}

/// Sends one hook (signing, HTTP, SSRF guard). Implemented in `herald-providers`.
#[async_trait]
pub trait HookSender: Send + Sync {
    /// `Ok(status)` for a 2xx answer; `Err((status, reason))` otherwise.
    async fn send(&self, hook: &ClaimedHook) -> Result<u16, (Option<u16>, String)>;
}
