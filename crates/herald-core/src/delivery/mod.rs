//! The delivery seam: what a notification carries, one unit of delivery work ([`Job`]), what a
//! provider answered ([`Outcome`]), and the [`Provider`] trait every push service implements.
//! The engine that drives jobs through providers lives in [`engine`].

pub mod engine;
pub mod hooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::model::{Channel, Environment, SubscriptionKind};

/// What the user sees. Every field is optional; providers map what they support.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Content {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// App data delivered with the notification (an object).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Where a click leads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// APNs: the badge number; Web Push: a badge icon URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub badge: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// Replaces an earlier notification with the same tag on the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Web Push notification actions (`[{action, title, icon?}]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub actions: Option<Value>,
}

/// Web Push `Urgency` (RFC 8030 section 5.3), also mapped to APNs/FCM priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    VeryLow,
    Low,
    #[default]
    Normal,
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// How to deliver, as the sender asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Options {
    /// Seconds the push service may hold the message.
    pub ttl: u32,
    #[serde(default)]
    pub urgency: Urgency,
    /// Replaces an undelivered earlier message with the same key (Web Push `Topic`,
    /// `apns-collapse-id`, FCM `collapse_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// `high` or `normal`; overrides what urgency implies for APNs/FCM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Merged into the provider payload (objects merge recursively).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub apns: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub fcm: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub web_push: Option<Value>,
}

/// Whether a subscription on this channel passes a sender's channel filter (channel types or
/// ids; `None`: every channel). The one definition: direct sends and fan-outs both use it.
pub fn passes_channel_filter(filter: &Option<Vec<String>>, channel_id: &str, channel_type: &str) -> bool {
    filter.as_ref().is_none_or(|f| f.iter().any(|c| c == channel_id || c == channel_type))
}

/// The subscription a job delivers to.
#[derive(Debug, Clone)]
pub struct Target {
    pub subscription_id: i64,
    pub identifier: String,
    pub settings: Value,
    pub kind: SubscriptionKind,
    pub environment: Environment,
}

/// One delivery attempt's worth of work.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: i64,
    /// Stable across retries (APNs `apns-id`), so a repeat is recognisable.
    pub message_id: String,
    pub notification_id: String,
    /// 1 on the first attempt.
    pub attempt: u32,
    pub channel: Arc<Channel>,
    pub target: Target,
    pub content: Arc<Content>,
    pub options: Arc<Options>,
    pub expires_at: Millis,
    /// The delivery's receipt token (`crate::tokens`), carried in the push so the device can
    /// report displayed / clicked / dismissed; `None` only when no key could be read.
    pub receipt: Option<String>,
}

impl Job {
    /// Seconds of TTL left, for the provider's TTL/expiration header.
    pub fn ttl_remaining(&self, now: Millis) -> u32 {
        ((self.expires_at - now).max(0) / 1000).min(u32::MAX as i64) as u32
    }
}

/// What a provider answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted by the push service.
    Delivered { status: u16, provider_message_id: Option<String> },
    /// Transient: 429, 5xx, timeouts, connection errors. Retried with backoff.
    Retry { status: Option<u16>, reason: String, retry_after: Option<Duration> },
    /// The subscription is gone (Web Push 404/410, APNs `Unregistered`/`BadDeviceToken`,
    /// FCM `UNREGISTERED`/`NOT_FOUND`): the subscription is deactivated.
    Gone { status: u16, reason: String },
    /// Our configuration is wrong (VAPID 401/403, APNs `InvalidProviderToken`, FCM auth):
    /// the channel is marked unhealthy; the subscription is left alone.
    ChannelError { status: Option<u16>, reason: String },
    /// This message can never be delivered (payload rejected); no retry.
    Failed { status: Option<u16>, reason: String },
}

/// A push service. Implementations live in `herald-providers`; nothing here knows which one.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Refuses content that would exceed the service's payload limit for `kind`, with a
    /// message naming the provider and the limit.
    fn check_payload(&self, content: &Content, options: &Options, kind: SubscriptionKind) -> Result<(), String>;

    /// The key per-host concurrency limits are counted under (usually the request host).
    fn host_key(&self, job: &Job) -> String;

    /// Delivers one job. Never panics on bad answers; every failure is an [`Outcome`].
    async fn send(&self, job: &Job) -> Outcome;
}
